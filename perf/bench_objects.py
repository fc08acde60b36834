"""numpy arrays as Python objects across processes: fastqueue.ObjectQueue side by side with
multiprocessing.Queue and faster-fifo, in the same run.

For each array size (float64, 1 MiB and 8 MiB by default) and each queue, a *spawned* producer
process puts ``count`` copies of one array (then ``None``) into a queue of 4 slots, and this process
gets them and checks each one's first and last element. The clock runs from the moment the
producer is told to go until the last array has been received; starting the process is not timed.
Each measurement is repeated and the median reported, with the ratios to fastqueue.

* fastqueue.ObjectQueue: pickle protocol 5, the array's data written out-of-band straight into the
  shared-memory slot (one copy in) and copied once out of it into memory the new array owns.
* multiprocessing.Queue (spawn context): pickles in a feeder thread, sends through a pipe.
* faster_fifo.Queue: pickles (its default ``dumps``) into its shared circular buffer.

Run from a checkout (``python perf/bench_objects.py``; ``--quick`` for a short run). The machine is
shared and noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "py"))

import numpy as np

import fastqueue

SPAWN = multiprocessing.get_context("spawn")
SLOTS = 4
PATIENCE_S = 120.0
NAMES = ("fastqueue.ObjectQueue", "faster-fifo", "multiprocessing.Queue")


def make_queue(kind: str, nbytes: int) -> Any:
    room = nbytes + 4096  # the array and its pickle
    if kind == "fastqueue.ObjectQueue":
        return fastqueue.ObjectQueue(element_size=room, capacity=SLOTS)
    if kind == "faster-fifo":
        import faster_fifo

        return faster_fifo.Queue(max_size_bytes=SLOTS * room)
    if kind == "multiprocessing.Queue":
        return SPAWN.Queue(maxsize=SLOTS)
    raise ValueError(kind)


def close_queue(kind: str, q: Any) -> None:
    if kind == "fastqueue.ObjectQueue":
        q.close()
    elif kind == "multiprocessing.Queue":
        q.close()
        q.join_thread()
    else:
        q.close()


def producer(q: Any, n: int, count: int, ready: Any, go: Any) -> None:
    a = np.arange(n, dtype=np.float64)
    ready.set()
    go.wait(PATIENCE_S)
    for _ in range(count):
        q.put(a, timeout=PATIENCE_S)
    q.put(None, timeout=PATIENCE_S)


def one_run(kind: str, n: int, count: int) -> float:
    """Seconds for `count` arrays of n float64 from a spawned producer to this process."""
    q = make_queue(kind, n * 8)
    ready, go = SPAWN.Event(), SPAWN.Event()
    proc = SPAWN.Process(target=producer, args=(q, n, count, ready, go))
    proc.start()
    try:
        if not ready.wait(PATIENCE_S):
            raise RuntimeError(f"{kind}: the producer never started")
        last = float(n - 1)
        start = time.perf_counter()
        go.set()
        got = 0
        while True:
            a = q.get(timeout=PATIENCE_S)
            if a is None:
                break
            if a.shape != (n,) or a[0] != 0.0 or a[-1] != last:
                raise RuntimeError(f"{kind}: received a wrong array")
            got += 1
        elapsed = time.perf_counter() - start
        if got != count:
            raise RuntimeError(f"{kind}: received {got} of {count} arrays")
    finally:
        proc.join(PATIENCE_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
        close_queue(kind, q)
    return elapsed


def measure(kind: str, mib: int, count: int, repeats: int) -> float:
    """Median seconds per array."""
    n = mib * (1 << 20) // 8
    one_run(kind, n, max(2, count // 10))  # warm-up: page faults, imports
    return statistics.median(one_run(kind, n, count) / count for _ in range(repeats))


def available(kind: str) -> str | None:
    if kind == "faster-fifo":
        try:
            import faster_fifo  # noqa: F401
        except ImportError:
            return "faster-fifo not installed (pip install faster-fifo)"
    return None


def fmt(seconds: float | None, mib: int) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e3:.2f} ms ({mib / 1024 / seconds:.2f} GiB/s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8", help="array sizes in MiB (default 1,8)")
    parser.add_argument("--repeats", type=int, default=7, help="measurements per cell (median)")
    parser.add_argument("--quick", action="store_true", help="fewer arrays and repeats")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    repeats = 3 if args.quick else args.repeats
    results: dict[tuple[str, int], float | None] = {}
    notes = {kind: available(kind) for kind in NAMES}
    for mib in sizes:
        count = max(8, (64 if args.quick else 256) // mib)
        for kind in NAMES:
            if notes[kind]:
                results[kind, mib] = None
                continue
            results[kind, mib] = measure(kind, mib, count, repeats)
            print(f"  {kind:<22} {mib} MiB: {fmt(results[kind, mib], mib)}", file=sys.stderr)
    report(results, sizes, notes, repeats, sys.stdout)
    return 0


def report(
    results: dict[tuple[str, int], float | None],
    sizes: list[int],
    notes: dict[str, str | None],
    repeats: int,
    out: Any,
) -> None:
    def ratio(kind: str, mib: int) -> str:
        fq, other = results["fastqueue.ObjectQueue", mib], results[kind, mib]
        return "n/a" if fq is None or other is None else f"{other / fq:.1f}×"

    cpu = _cpu_model()
    print(
        f"numpy float64 array, put in a spawned process and got in another, {SLOTS}-slot queues; "
        f"median of {repeats}; {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs ({cpu}), load {_load()}",
        file=out,
    )
    print(file=out)
    header = ["array", *NAMES, "faster-fifo / fastqueue", "mp.Queue / fastqueue"]
    print("| " + " | ".join(header) + " |", file=out)
    print("|" + "---|" * len(header), file=out)
    for mib in sizes:
        cells = [fmt(results[k, mib], mib) for k in NAMES]
        ratios = [ratio("faster-fifo", mib), ratio("multiprocessing.Queue", mib)]
        print("| " + " | ".join([f"{mib} MiB", *cells, *ratios]) + " |", file=out)
    for kind, note in notes.items():
        if note:
            print(f"\n{kind}: {note}", file=out)
    print("\n(time per array, lower is better; a ratio > 1 means fastqueue is faster)", file=out)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
