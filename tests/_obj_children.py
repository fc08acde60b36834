"""Code that runs in spawned children of test_objects, test_aio and test_join_shutdown (spawned
children import it by name). Each reports through a multiprocessing Connection when it has one,
and exits 0 when it did its job."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import fastqueue


def echo_objects(q: fastqueue.ObjectQueue, back: fastqueue.ObjectQueue, count: int) -> None:
    """Gets `count` objects and puts each back as (type name, object)."""
    for _ in range(count):
        obj = q.get(timeout=60)
        back.put((type(obj).__name__, obj), timeout=60)


def array_digests(q: fastqueue.ObjectQueue, result: Connection) -> None:
    """Gets numpy arrays until None; reports [(shape, dtype, sha256 of the bytes, writable)]."""
    out = []
    while (a := q.get(timeout=60)) is not None:
        digest = hashlib.sha256(a.tobytes()).hexdigest()
        out.append((a.shape, str(a.dtype), digest, bool(a.flags.writeable)))
    result.send(out)


def blocked_call(q: fastqueue.Queue, op: str, ready: Event, result: Connection) -> None:
    """Blocks in q.get() / q.put() / q.join() (op) and reports how it ended."""
    ready.set()
    try:
        if op == "get":
            got: Any = q.get(timeout=60)
        elif op == "put":
            q.put(b"more", timeout=60)
            got = None
        elif op == "join":
            got = q.join(timeout=60)
        elif op == "aget":
            got = asyncio.run(q.aget(timeout=60))
        else:
            raise ValueError(op)
        result.send(("returned", got))
    except fastqueue.ShutDown as exc:
        result.send(("ShutDown", str(exc)))
    except KeyboardInterrupt:
        result.send(("interrupted", None))
    except BaseException as exc:
        result.send(("error", repr(exc)))


def drain_after_shutdown(q: fastqueue.Queue, result: Connection) -> None:
    """Takes what is left of a shut-down queue, then reports the ShutDown it gets."""
    got = []
    try:
        while True:
            got.append(q.get(timeout=60))
    except fastqueue.ShutDown:
        result.send(("drained", got))
    except BaseException as exc:
        result.send(("error", repr(exc)))


def shut_down(q: fastqueue.Queue, immediate: bool, delay: float) -> None:
    time.sleep(delay)
    q.shutdown(immediate=immediate)


def worker(q: fastqueue.JoinableQueue, done: fastqueue.Queue) -> None:
    """Takes jobs until an empty one, marks each done (the end marker too), reports the jobs."""
    while True:
        job = q.get(timeout=60)
        if not job:
            q.task_done()
            return
        done.put(job, timeout=60)
        q.task_done()


def object_worker(q: fastqueue.JoinableObjectQueue, results: fastqueue.ObjectQueue) -> None:
    """The same for objects: squares numbers until None."""
    while (n := q.get(timeout=60)) is not None:
        results.put(n * n, timeout=60)
        q.task_done()
    q.task_done()


def async_producer(q: fastqueue.Queue, count: int, start: int) -> None:
    """Puts `count` 8-byte sequence numbers from `start` on, with aput, in an event loop."""

    async def main() -> None:
        for i in range(start, start + count):
            await q.aput(i.to_bytes(8, "little"), timeout=60)

    asyncio.run(main())


def plain_producer(q: fastqueue.Queue, count: int, start: int) -> None:
    for i in range(start, start + count):
        q.put(i.to_bytes(8, "little"), timeout=60)


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
