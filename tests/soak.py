"""Soak test: the cross-process stress check of ``test_stress.py`` (spawned producers and
consumers, exactly-once delivery, per-producer order, intact payloads) on random examples, for
as long as asked. Prints progress and the totals; exits 1 on any violation (with the example's
configuration), 0 otherwise.

    just soak minutes="10"
    FASTQUEUE_LIBRARY=target/release/libfastqueue.so python tests/soak.py --minutes 10

``--seed`` replays a run's sequence of examples (each example's config is printed on failure).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Like pytest (pyproject's pythonpath): a checkout soaks its own package; _stress_workers is here.
sys.path[:0] = [str(HERE), str(HERE.parent / "py")]

import _stress_workers as w  # noqa: E402
import fastqueue  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the examples (random)")
    parser.add_argument(
        "--messages", type=int, default=200_000, help="messages per example, at most (200000)"
    )
    parser.add_argument(
        "--mib", type=int, default=512, help="payload MiB per example, at most (512)"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("spawn")
    total = w.StressResult()
    start = time.monotonic()
    deadline = start + args.minutes * 60
    next_report = start + 30
    print(
        f"soak: {args.minutes:g} min, seed {seed}, library {fastqueue._ffi.library_path()}",
        flush=True,
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="fq-soak-") as tmp:
        while time.monotonic() < deadline:
            cfg = w.random_config(rng, args.messages, args.mib << 20)
            name = f"fq-soak-{os.getpid()}-{total.examples}"
            try:
                total.add(w.run_stress(ctx, cfg, name, Path(tmp)))
            except AssertionError as exc:
                print(f"soak: VIOLATION in example {total.examples + 1}: {exc}", flush=True)
                failed = True
                break
            except KeyboardInterrupt:
                print("soak: interrupted", flush=True)
                break
            finally:
                with contextlib.suppress(FileNotFoundError):
                    fastqueue.unlink(name)
            if time.monotonic() >= next_report:
                next_report += 30
                report("progress", total, time.monotonic() - start)
    report("FAILED" if failed else "done", total, time.monotonic() - start)
    return 1 if failed else 0


def report(what: str, total: w.StressResult, elapsed: float) -> None:
    rate = total.messages / elapsed if elapsed > 0 else 0.0
    print(
        f"soak: {what}: {total.examples} examples, {total.messages} messages "
        f"({rate:,.0f}/s), {total.bytes} payload bytes, {elapsed:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
