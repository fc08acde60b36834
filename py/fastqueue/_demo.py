"""``python -m fastqueue demo``: a quick cross-process race against :class:`multiprocessing.Queue`.

For each workload (many small messages, then a few large ones) and each queue, a *spawned* producer
process puts ``count`` messages of ``size`` bytes and this process gets them, checking every byte.
Both queues are bounded to the same capacity. The clock runs from the moment the producer is told
to start until the last message has been received and checked; starting the process is not timed.

Only the public API is used: ``fastqueue.Queue(element_size=..., capacity=...)``, ``put``, ``get``,
and passing the queue to the child process, where it re-attaches by name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.queues
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Protocol, TextIO

import fastqueue

__all__ = ["Result", "Workload", "build_parser", "main", "race"]

#: How long either side waits for the other before the demo gives up (a crashed peer).
PATIENCE_S = 60.0


class _Channel(Protocol):
    """What the race needs from a queue; both fastqueue.Queue and multiprocessing.Queue have it."""

    def put(self, item: bytes, /, block: bool = True, timeout: float | None = None) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> bytes: ...


@dataclass(frozen=True)
class Workload:
    """``count`` messages of ``size`` bytes through a queue of ``capacity`` slots."""

    count: int
    size: int
    capacity: int


@dataclass(frozen=True)
class Result:
    """One queue's time for one workload."""

    queue: str
    workload: Workload
    seconds: float

    @property
    def msgs_per_s(self) -> float:
        return self.workload.count / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.workload.count * self.workload.size / self.seconds / 1e6


def _payload_body(size: int) -> bytes:
    """The bytes after each message's 8-byte sequence number (a fixed, non-trivial pattern)."""
    pattern = bytes(range(251))  # a prime length, so the pattern does not line up with pages
    body_len = max(size - 8, 0)
    return (pattern * (body_len // len(pattern) + 1))[:body_len]


def _message(i: int, body: bytes) -> bytes:
    """Message ``i``: its sequence number (little-endian u64), then the body."""
    return i.to_bytes(8, "little") + body


def _produce(
    channel: _Channel, count: int, size: int, ready: Event, go: Event
) -> None:  # runs in the spawned child
    body = _payload_body(size)
    ready.set()
    if not go.wait(PATIENCE_S):
        raise SystemExit("producer: the consumer never said go")
    for i in range(count):
        channel.put(_message(i, body), timeout=PATIENCE_S)


def _consume(channel: _Channel, workload: Workload, go: Event) -> float:
    body = _payload_body(workload.size)
    start = time.perf_counter()
    go.set()
    for i in range(workload.count):
        msg = channel.get(timeout=PATIENCE_S)
        if msg != _message(i, body):
            raise RuntimeError(
                f"message {i} arrived wrong: {len(msg)} bytes, "
                f"starting {msg[:16].hex()} (expected {workload.size} bytes)"
            )
    return time.perf_counter() - start


def _run(name: str, channel: _Channel, workload: Workload) -> Result:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    producer = ctx.Process(
        target=_produce,
        args=(channel, workload.count, workload.size, ready, go),
        name=f"fastqueue-demo-producer-{name}",
        daemon=True,
    )
    producer.start()
    try:
        if not ready.wait(PATIENCE_S):
            raise RuntimeError(f"the {name} producer process did not start")
        seconds = _consume(channel, workload, go)
        producer.join(PATIENCE_S)
        if producer.exitcode != 0:
            raise RuntimeError(
                f"the {name} producer process failed (exit code {producer.exitcode})"
            )
    finally:
        if producer.is_alive():
            producer.kill()
            producer.join()
    return Result(name, workload, seconds)


def race(workload: Workload) -> list[Result]:
    """Runs ``workload`` through fastqueue.Queue, then multiprocessing.Queue; returns both times."""
    results = []
    with fastqueue.Queue(element_size=workload.size, capacity=workload.capacity) as fq:
        results.append(_run("fastqueue.Queue", fq, workload))
    mpq: multiprocessing.queues.Queue[bytes] = multiprocessing.get_context("spawn").Queue(
        maxsize=workload.capacity
    )
    try:
        results.append(_run("multiprocessing.Queue", mpq, workload))
    finally:
        mpq.close()
        mpq.join_thread()
    return results


def _fmt_size(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1 << 10 and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def _print_table(results: Sequence[Result], out: TextIO) -> None:
    header = f"{'workload':<18} {'queue':<22} {'msgs/s':>12} {'MB/s':>10} {'time':>8} {'ratio':>7}"
    print(header, file=out)
    print("-" * len(header), file=out)
    baseline: dict[Workload, float] = {
        r.workload: r.seconds for r in results if r.queue == "multiprocessing.Queue"
    }
    for r in results:
        w = r.workload
        ratio = baseline[w] / r.seconds if w in baseline else float("nan")
        label = f"{w.count:,} x {_fmt_size(w.size)}"
        print(
            f"{label:<18} {r.queue:<22} {r.msgs_per_s:>12,.0f} {r.mb_per_s:>10,.1f} "
            f"{r.seconds:>7.2f}s {ratio:>6.1f}x",
            file=out,
        )
    print(file=out)
    print(
        "ratio = multiprocessing.Queue's time / this queue's time (higher is faster).\n"
        "One spawned producer process -> this process; every byte of every message checked;\n"
        "both queues bounded to the same capacity. A single run on a shared machine: expect noise.",
        file=out,
    )


def default_workloads(scale: float = 1.0) -> list[Workload]:
    """The demo's workloads: 100k x 64 B and 2k x 1 MiB, with counts multiplied by ``scale``."""
    return [
        Workload(max(1, round(100_000 * scale)), 64, 1024),
        Workload(max(1, round(2_000 * scale)), 1 << 20, 16),
    ]


def build_parser(prog: str = "fastqueue demo") -> argparse.ArgumentParser:
    """The demo's command-line parser (``prog``: the name it was run as)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Race fastqueue.Queue against multiprocessing.Queue across two processes.",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the message counts (default 1: 100,000 x 64 B and 2,000 x 1 MiB)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO = sys.stdout, prog: str = "fastqueue demo"
) -> int:
    """Entry point of ``fastqueue demo`` (and ``bench``); returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")
    print(
        f"fastqueue {fastqueue.__version__}: cross-process race against multiprocessing.Queue\n",
        file=out,
        flush=True,
    )
    results: list[Result] = []
    for workload in default_workloads(args.scale):
        print(f"  racing {workload.count:,} x {_fmt_size(workload.size)} ...", file=out, flush=True)
        results.extend(race(workload))
    print(file=out)
    _print_table(results, out)
    return 0
