"""``fastqueue demo``: a quick cross-process race against :class:`multiprocessing.Queue`.

For each workload (many small messages, then a few large ones) and each queue, a *spawned* producer
process puts ``count`` messages of ``size`` bytes, one blocking ``put`` each, and this process
gets them, one blocking ``get`` each. Both queues are bounded to the same capacity.

What the clock measures is the transport, the way the guide's benchmarks measure it
(perf/bench_cross.py, "throughput" and "frames"), so that its figures can be set beside them: it
runs from the moment the producer is told to start until the last message has been received;
starting the process and building the messages (before the start line) are not timed. Every byte
of every message is still checked against what was sent, outside the clock, and that time is shown
on its own (the ``check`` column): small messages are kept and compared after the run (one
comparison of the whole list), large ones as they arrive, each comparison timed and taken out of
the transport time. Checking each small message in Python as it arrives would cost more than the
queue does (a few hundred ns each) and show the checking loop's speed, not the queue's.

Small messages carry their sequence number and are all distinct; large ones cycle through four
prepared payloads, each marked with its number at both ends, as perf's "frames" does: a lost,
repeated, reordered or torn message fails the check.

Only the public API is used: ``fastqueue.Queue(element_size=..., capacity=...)``, ``put``, ``get``,
and passing the queue to the child process, where it re-attaches by name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Protocol, TextIO

import fastqueue

__all__ = ["Result", "Workload", "build_parser", "main", "race"]

#: How long either side waits for the other before the demo gives up (a crashed peer).
PATIENCE_S = 60.0
#: Messages of at least this many bytes cycle through LARGE_PAYLOADS prepared payloads and are
#: checked as they arrive; smaller ones are all distinct and checked after the run.
LARGE: int = 4096
LARGE_PAYLOADS = 4


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
    """One queue's time for one workload: ``seconds`` moving the messages (the transport, which
    the rates are computed from) and ``check_seconds`` checking every byte of them (not in
    ``seconds``)."""

    queue: str
    workload: Workload
    seconds: float
    check_seconds: float = 0.0

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


def _messages(workload: Workload) -> list[bytes]:
    """The distinct messages of ``workload``; message ``i`` is ``messages[i % len(messages)]``.
    Small: every message, each with its sequence number. Large: LARGE_PAYLOADS payloads, each
    with its number at both ends (a torn message shows a wrong end)."""
    body = _payload_body(workload.size)
    if workload.size < LARGE:
        return [_message(i, body) for i in range(workload.count)]
    return [
        (_message(k, body)[: workload.size - 8] + k.to_bytes(8, "little"))[: workload.size]
        for k in range(LARGE_PAYLOADS)
    ]


def _produce(
    channel: _Channel, workload: Workload, ready: Event, go: Event
) -> None:  # runs in the spawned child
    messages = _messages(workload)  # built before the start line, not timed
    n = len(messages)
    put = channel.put
    ready.set()
    if not go.wait(PATIENCE_S):
        raise SystemExit("producer: the consumer never said go")
    if n == workload.count:
        for m in messages:
            put(m)
    else:
        for i in range(workload.count):
            put(messages[i % n])


def _wrong(i: int, msg: bytes, workload: Workload) -> RuntimeError:
    return RuntimeError(
        f"message {i} arrived wrong: {len(msg)} bytes, starting {msg[:16].hex()} "
        f"(expected {workload.size} bytes)"
    )


class _Go(Protocol):
    """The start line: ``set()`` tells the producer to start (an Event of either kind)."""

    def set(self) -> None: ...


def _consume(channel: _Channel, workload: Workload, go: _Go) -> tuple[float, float]:
    """Gets every message; returns (transport seconds, checking seconds)."""
    expected = _messages(workload)
    n = len(expected)
    get = channel.get
    clock = time.perf_counter
    if n == workload.count:  # small: keep them all, compare after the clock stops
        got: list[bytes] = []
        append = got.append
        start = clock()
        go.set()
        for _ in range(workload.count):
            append(get())
        seconds = clock() - start
        t = clock()
        if got != expected:
            i = next(i for i, (m, e) in enumerate(zip(got, expected)) if m != e)
            raise _wrong(i, got[i], workload)
        return seconds, clock() - t
    checking = 0.0  # large: compare each as it arrives, that time taken out of the clock
    start = clock()
    go.set()
    for i in range(workload.count):
        msg = get()
        t = clock()
        if msg != expected[i % n]:
            raise _wrong(i, msg, workload)
        checking += clock() - t
    return clock() - start - checking, checking


def _unblock(channel: _Channel, producer: BaseProcess, done: threading.Event) -> None:
    """Watches the producer: if it exits and the consumer still waits PATIENCE_S later (the
    producer died before putting everything), feeds the consumer empty messages until it is done,
    so that it fails the check instead of blocking forever in ``get``."""
    multiprocessing.connection.wait([producer.sentinel])
    if done.wait(PATIENCE_S):
        return
    while not done.is_set():
        try:
            channel.put(b"", timeout=0.1)
        except Exception:  # full (the consumer is draining): try again
            continue


def _run(name: str, channel: _Channel, workload: Workload) -> Result:
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    producer = ctx.Process(
        target=_produce,
        args=(channel, workload, ready, go),
        name=f"fastqueue-demo-producer-{name}",
        daemon=True,
    )
    producer.start()
    done = threading.Event()
    watchdog = threading.Thread(target=_unblock, args=(channel, producer, done), daemon=True)
    watchdog.start()
    try:
        if not ready.wait(PATIENCE_S):
            raise RuntimeError(f"the {name} producer process did not start")
        try:
            seconds, check_seconds = _consume(channel, workload, go)
        finally:
            done.set()
        producer.join(PATIENCE_S)
        if producer.exitcode != 0:
            raise RuntimeError(
                f"the {name} producer process failed (exit code {producer.exitcode})"
            )
    except RuntimeError:
        producer.join(1.0)
        if producer.exitcode not in (0, None):  # the first failure: the producer's
            raise RuntimeError(
                f"the {name} producer process failed (exit code {producer.exitcode})"
            ) from None
        raise
    finally:
        done.set()
        if producer.is_alive():
            producer.kill()
            producer.join()
        watchdog.join()
    return Result(name, workload, seconds, check_seconds)


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
    header = (
        f"{'workload':<18} {'queue':<22} {'msgs/s':>12} {'MB/s':>10} {'time':>8} {'check':>8} "
        f"{'ratio':>7}"
    )
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
            f"{r.seconds:>7.2f}s {r.check_seconds:>7.3f}s {ratio:>6.1f}x",
            file=out,
        )
    print(file=out)
    print(
        "msgs/s, MB/s and time: moving the messages from one spawned producer process to this\n"
        "process, one blocking put and one blocking get each, both queues bounded to the same\n"
        "capacity (how the cross-process benchmarks of perf/ measure it; they use 8 B messages).\n"
        "ratio = multiprocessing.Queue's time / this queue's time (higher is faster).\n"
        "check: the time spent checking every byte of every message against what was sent, not\n"
        "counted in time (in Python, one by one, it would cost more than the queue itself).\n"
        "A single run on a shared machine: expect noise.",
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
