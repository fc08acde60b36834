"""The bridge between a local queue and a Redis stream: ``fastqueue bridge SOURCE DEST`` and
:func:`bridge`.

One of SOURCE and DEST is the name of an existing local :class:`~fastqueue.Queue` (the bridge
attaches to it), the other a :class:`~fastqueue.RedisQueue` URL. Messages move in batches of at
most ``batch``, until the bridge is stopped (SIGINT/SIGTERM, or the ``stop`` event), which it
obeys after finishing the batch in hand. Its guarantees:

- **Redis -> local**, take then commit: a batch is taken from the stream *unacknowledged* (it
  stays pending to the bridge's consumer), put into the local queue, and only then
  acknowledged. Stopped, the bridge acknowledges what it put and leaves the rest pending. Killed
  (SIGKILL), nothing is lost: a restarted bridge (same consumer name, by default
  ``bridge-<local queue name>``) first re-delivers what was pending to it, which may put that
  batch twice; those re-deliveries are counted as (possible) duplicates. A message another
  consumer claimed while the bridge held it (longer than that consumer's ``claim_after``) is
  detected at the acknowledgement and counted as a duplicate too.
- **local -> Redis**: a batch is taken from the local queue (``get_many``), then appended to
  the stream in one script. From a local queue created with ``redeliver=True`` the batch is
  leased, and acknowledged (``task_done``) only once the stream has it: a bridge killed by
  SIGKILL loses nothing, since its leases go back to the local queue and are delivered again,
  first, to the next bridge (which may so put up to one batch twice; the messages it gets
  again are counted as possible duplicates). From any other local queue, a bridge killed
  between the two loses that one in-flight batch, at most ``batch`` messages, and cannot count
  it. Stopped, it finishes the batch: it keeps trying the stream for ``grace`` seconds, then
  gives what is left back to the local queue (a redeliver queue's leases go back on close, in
  order; otherwise it is put back at its tail) rather than lose it. A batch re-sent after a
  connection failure whose outcome was unknown is counted as (possible) duplicates.

Both counts are in the returned :class:`BridgeReport` and the command's report line.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .._errors import (
    Empty,
    FastQueueError,
    Full,
    InvalidArgumentError,
    QueueNotFoundError,
    QueueOSError,
)
from .._words import count
from ..queue import Queue
from ._queue import RedisQueue

__all__ = ["BridgeReport", "add_parser", "bridge"]

#: Longest single wait of the bridge's loop (seconds): how soon it notices a stop.
_SLICE = 0.2


@dataclasses.dataclass
class BridgeReport:
    """What one run of the bridge did: what :func:`fastqueue.bridge` returns, and what
    ``fastqueue bridge`` prints (:meth:`line`) when it stops."""

    #: The SOURCE the bridge took from (a local queue name or a Redis URL).
    source: str
    #: The DEST the bridge delivered to.
    dest: str
    #: Messages delivered to DEST.
    moved: int = 0
    #: Batches moved.
    batches: int = 0
    #: Messages that may have reached DEST twice (re-delivered after a restart or a claim,
    #: re-sent after a connection failure); an upper bound.
    duplicates: int = 0
    #: Messages known to be lost (taken from SOURCE, neither delivered nor put back).
    lost: int = 0
    #: Messages put back into the local SOURCE queue because the stream refused them at stop.
    returned: int = 0
    #: How long the bridge ran, in seconds.
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.moved / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line report the command prints."""
        back = f", {self.returned} put back into {self.source!r}" if self.returned else ""
        return (
            f"bridge {self.source} -> {self.dest}: moved {count(self.moved, 'message')} in "
            f"{count(self.batches, 'batch', 'batches')} in {self.seconds:.1f} s "
            f"({self.rate:,.0f} msg/s); duplicates "
            f"{self.duplicates}, lost {self.lost}{back}"
        )


def _is_url(s: str) -> bool:
    return "://" in s


@contextmanager
def _signals(stop: threading.Event, install: bool) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (in the main thread only), then the old handlers return."""
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Progress:
    def __init__(self, out: TextIO | None, report: BridgeReport, start: float) -> None:
        self.out = out if out is not None and out.isatty() else None
        self.report = report
        self.start = start
        self.next = start + 0.5

    def tick(self, now: float, last: bool = False) -> None:
        if self.out is None or (now < self.next and not last):
            return
        self.next = now + 0.5
        rate = self.report.moved / max(now - self.start, 1e-9)
        moved = self.report.moved
        self.out.write(f"\r{moved:,} message{'' if moved == 1 else 's'}, {rate:,.0f} msg/s   ")
        self.out.flush()

    def done(self) -> None:
        if self.out is not None:
            self.tick(time.monotonic(), last=True)
            self.out.write("\n")
            self.out.flush()


def bridge(
    source: str,
    dest: str,
    *,
    batch: int = 256,
    maxsize: int | None = None,
    claim_after: float = 30.0,
    consumer: str | None = None,
    stop: threading.Event | None = None,
    max_messages: int | None = None,
    grace: float = 10.0,
    progress: TextIO | None = None,
    handle_signals: bool = True,
) -> BridgeReport:
    """Moves messages from ``source`` to ``dest`` (a local queue name and a RedisQueue URL, in
    either order) until stopped; returns the :class:`BridgeReport`.

    ``batch``: most messages per batch. ``maxsize`` / ``claim_after``: the RedisQueue's
    settings (``maxsize=None`` takes the stream's). ``consumer``: the bridge's consumer name
    in the stream's group (Redis -> local; default ``bridge-<local name>``: a restarted bridge
    resumes what its predecessor held).
    It stops when ``stop`` is set, on SIGINT/SIGTERM (when ``handle_signals`` and called from
    the main thread), or after ``max_messages``. ``progress``: a terminal to print a progress
    line on (nothing is printed if it is not a terminal).
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch must be an int >= 1, got {batch!r}")
    if _is_url(source) == _is_url(dest):
        raise InvalidArgumentError(
            "bridge needs one local queue name and one Redis URL (redis://HOST:PORT/DB/STREAM "
            f"or unix:///path?db=N&stream=NAME), got {source!r} and {dest!r}"
        )
    stop = stop if stop is not None else threading.Event()
    report = BridgeReport(source, dest)
    local_name = dest if _is_url(source) else source
    local = Queue(local_name, create=False)
    try:
        rq = RedisQueue(
            source if _is_url(source) else dest, maxsize=maxsize, claim_after=claim_after
        )
    except BaseException:
        local.close()
        raise
    start = time.monotonic()
    shown = _Progress(progress, report, start)
    try:
        with _signals(stop, handle_signals):
            if _is_url(source):
                rq._consumer = (consumer or f"bridge-{local.name}").encode()
                _from_redis(rq, local, batch, stop, max_messages, report, shown)
            else:
                _to_redis(local, rq, batch, stop, max_messages, grace, report, shown)
    finally:
        report.seconds = time.monotonic() - start
        shown.done()
        rq.close()
        local.close()
    return report


def _retrying(stop: threading.Event, what: Any, *args: Any) -> Any:
    """Calls ``what(*args)`` until the Redis server answers; None if stopped meanwhile."""
    pause = 0.05
    while True:
        try:
            return what(*args)
        except QueueOSError:
            if stop.is_set():
                return None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _from_redis(
    rq: RedisQueue,
    local: Queue,
    batch: int,
    stop: threading.Event,
    max_messages: int | None,
    report: BridgeReport,
    shown: _Progress,
) -> None:
    resuming = True  # first, what an earlier bridge of this consumer name held
    unacked: list[bytes] = []  # put locally; acknowledged by the next take, in its round trip
    try:
        while not stop.is_set() and (max_messages is None or report.moved < max_messages):
            n = batch if max_messages is None else min(batch, max_messages - report.moved)
            if resuming:
                got = _retrying(stop, rq._own_pending, n)
                if got is None:
                    break
                ids, msgs = got
                if not ids:
                    resuming = False
                    continue
                report.duplicates += len(ids)  # may have been put before the predecessor died
            else:
                took = _retrying(stop, rq._take_pending, n, _SLICE, unacked)
                if took is None:
                    break
                acked, ids, msgs = took
                report.duplicates += len(unacked) - acked  # claimed by another meanwhile
                unacked = []
                if not msgs:
                    shown.tick(time.monotonic())
                    continue
            put = 0
            while put < len(msgs):
                try:
                    local.put_many(msgs[put:] if put else msgs, timeout=_SLICE)
                    put = len(msgs)
                except Full as full:
                    put += getattr(full, "done", 0)
                    if stop.is_set():
                        break  # the rest stays pending to this consumer, for the next run
            if resuming:  # acknowledged now: the next _own_pending must not see them again
                _ack_last(rq, ids[:put], report)
            else:
                unacked = ids[:put]
            report.moved += put
            report.batches += 1
            shown.tick(time.monotonic())
            if put < len(msgs):
                break
    finally:
        if unacked:
            _ack_last(rq, unacked, report)


def _ack_last(rq: RedisQueue, ids: list[bytes], report: BridgeReport) -> None:
    """Acknowledges the last batch put locally, trying for a few seconds; if the server stays
    away, the batch stays pending and the next run re-delivers it (counted as duplicates)."""
    pause = 0.05
    deadline = time.monotonic() + 5.0
    while True:
        try:
            report.duplicates += len(ids) - rq._ack(ids)
            return
        except QueueOSError:
            if time.monotonic() > deadline:
                report.duplicates += len(ids)
                return
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _to_redis(
    local: Queue,
    rq: RedisQueue,
    batch: int,
    stop: threading.Event,
    max_messages: int | None,
    grace: float,
    report: BridgeReport,
    shown: _Progress,
) -> None:
    leased = local.redeliver
    while not stop.is_set() and (max_messages is None or report.moved < max_messages):
        n = batch if max_messages is None else min(batch, max_messages - report.moved)
        again = local.stats()["redelivered"] if leased else 0
        try:
            msgs = local.get_many(n, timeout=_SLICE)
        except Empty:
            shown.tick(time.monotonic())
            continue
        if leased:  # leases a dead holder (an earlier bridge?) gave back: maybe in Redis already
            report.duplicates += min(len(msgs), local.stats()["redelivered"] - again)
        rest = msgs
        given_up_at: float | None = None
        uncertain = False
        pause = 0.05
        while rest:
            try:
                rq.put_many(rest, timeout=_SLICE)
                rest = []
            except Full as full:
                rest = rest[getattr(full, "done", 0) :]
            except QueueOSError:
                if not uncertain:  # the script may have run: re-sending may repeat the batch
                    report.duplicates += len(rest)
                    uncertain = True
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            if rest and stop.is_set():
                now = time.monotonic()
                given_up_at = given_up_at or now + grace
                if now >= given_up_at and leased:
                    # Left leased: closing the handle gives them back, before any newer message.
                    report.returned += len(rest)
                    msgs = msgs[: len(msgs) - len(rest)]
                    rest = []
                elif now >= given_up_at:
                    try:
                        local.put_many(rest, block=False)
                        report.returned += len(rest)
                    except Full as full:
                        report.returned += getattr(full, "done", 0)
                        report.lost += len(rest) - getattr(full, "done", 0)
                    except FastQueueError:
                        report.lost += len(rest)
                    msgs = msgs[: len(msgs) - len(rest)]
                    rest = []
        if leased and msgs:
            local._task_done(len(msgs))  # the stream has them: acknowledge the oldest leases
        report.moved += len(msgs)
        report.batches += 1
        shown.tick(time.monotonic())


# ------------------------------------------------------------------------------ command line


def add_parser(sub: Any) -> None:
    """Registers ``fastqueue bridge`` on the command line's subparsers (called by _cli)."""
    p = sub.add_parser(
        "bridge",
        help="move messages between a local queue and a Redis stream until interrupted",
        description="Moves messages from SOURCE to DEST, one a local queue name (it must exist) "
        "and the other a Redis URL (redis://HOST:PORT/DB/STREAM or "
        "unix:///path/to/redis.sock?db=N&stream=NAME), in batches, until SIGINT/SIGTERM; then "
        "prints a report line (moved, duplicates, lost) and exits 0.",
    )
    p.add_argument("source", help="local queue name or Redis URL")
    p.add_argument("dest", help="Redis URL or local queue name")
    p.add_argument(
        "--batch", type=int, default=256, help="most messages per batch (default: %(default)s)"
    )
    p.add_argument(
        "--maxsize",
        type=int,
        default=None,
        help="bound on the stream's unacknowledged messages (default: the stream's own, no bound "
        "for a new one)",
    )
    p.add_argument(
        "--claim-after",
        type=float,
        default=30.0,
        help="seconds before claiming stale messages (default: %(default)s)",
    )
    p.add_argument(
        "--consumer",
        default=None,
        help="consumer name in the stream's group (default: bridge-<local queue name>)",
    )
    p.add_argument(
        "--count",
        type=int,
        default=None,
        help="stop after this many messages (default: run until SIGINT/SIGTERM)",
    )
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        report = bridge(
            args.source,
            args.dest,
            batch=args.batch,
            maxsize=args.maxsize,
            claim_after=args.claim_after,
            consumer=args.consumer,
            max_messages=args.count,
            progress=sys.stderr,
        )
    except QueueNotFoundError:
        local = args.dest if _is_url(args.source) else args.source
        print(
            f"{getattr(args, 'prog', 'fastqueue')} bridge: no queue named {local!r} exists on "
            "this machine; the bridge attaches to an existing local queue, so create it first "
            f"(e.g. fastqueue.Queue({local!r}, element_size=..., capacity=...) in the program "
            "that uses it), or check the name",
            file=sys.stderr,
        )
        return 1
    except (FastQueueError, ValueError, ImportError, OSError) as exc:
        # An OSError's str() starts with "[Errno N]": the sentence alone reads better.
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"{getattr(args, 'prog', 'fastqueue')} bridge: {text}", file=sys.stderr)
        return 1
    print(report.line(), file=out)
    return 0
