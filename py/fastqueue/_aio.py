"""asyncio for fastqueue: ``await q.aget()`` and ``await q.aput(item)`` (:class:`AsyncMixin`, a
base class of :class:`~fastqueue.Queue` and so of every queue class).

How it works, and why a cancelled ``aget`` never loses a message: the take always happens on the
event loop's thread, with a non-blocking ``get_nowait``. Only when that finds the queue empty does
the coroutine wait — in a worker thread that calls the library's ``fq_wait``, which sleeps in the
kernel until a get *could* succeed but takes nothing. Cancelling the coroutine therefore leaves
nothing half-done: at worst a worker thread sleeps on until its wait slice ends (at most
:data:`WAIT_SLICE_S`), having taken nothing. ``aput`` is the mirror image (``put_nowait``, and a
wait until a put could claim a slot).

The worker threads form one small pool per process (:data:`MAX_WAIT_THREADS` at most, made on
first use). Coroutines waiting on the same queue, in the same direction, on the same loop share one
wait, so a thousand ``aget`` on one queue cost one thread. The event loop is never blocked, and an
idle waiter burns no CPU.

>>> import asyncio, fastqueue
>>> async def main():
...     with fastqueue.Queue(element_size=64, capacity=4) as q:
...         asyncio.get_running_loop().call_later(0.05, q.put, b"late")
...         return await q.aget(timeout=10)
>>> asyncio.run(main())
b'late'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import weakref
from typing import Any, Callable, Final, Protocol, TypeVar

from . import _ffi
from ._args import check_timeout
from ._errors import Empty, Full, error_from_status

__all__ = ["MAX_WAIT_THREADS", "WAIT_SLICE_S", "AsyncMixin"]

#: Longest single fq_wait of a worker thread, in seconds: a worker whose coroutine was cancelled
#: (or timed out) is free again after at most this long.
WAIT_SLICE_S: Final = 0.1
_WAIT_SLICE_NS: Final = int(WAIT_SLICE_S * 1e9)
#: Size of the per-process pool of waiting threads. Each thread serves every coroutine waiting
#: on one queue in one direction; beyond this many such (queue, direction) pairs, waits queue up
#: for a thread (for at most WAIT_SLICE_S each round).
MAX_WAIT_THREADS: Final = 32

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_T_contra = TypeVar("_T_contra", contravariant=True)


class _Getter(Protocol[_T_co]):
    _h: _ffi.Handle | None

    def get_nowait(self) -> _T_co: ...

    def _closed_error(self) -> ValueError: ...


class _Putter(Protocol[_T_contra]):
    _h: _ffi.Handle | None

    def put_nowait(self, item: _T_contra) -> None: ...

    def _nowait_putter(self, item: _T_contra) -> Callable[[], None]: ...

    def _closed_error(self) -> ValueError: ...


# ------------------------------------------------------------------------------ the thread pool

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            pool = _pool
            if pool is None:
                pool = _pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=MAX_WAIT_THREADS, thread_name_prefix="fastqueue-wait"
                )
    return pool


def _after_fork_in_child() -> None:
    # The parent's worker threads do not exist here: start a new pool when needed.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()
    _waits.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------------------ shared waits


class _SharedWait:
    """One fq_wait in a worker thread, awaited by every coroutine of one loop that waits on the
    same handle in the same direction.

    A put wakes at most one sleeping getter per message (a get, one putter per slot), so a wait
    that returns OK may hold the only wake-up for that message. If every coroutine sharing it
    is gone (cancelled, timed out) without trying to take or put, the wake-up is passed on with
    fq_wake, whichever finishes last: the worker thread or the last coroutine (``lock`` orders
    the two)."""

    __slots__ = ("abandoned", "future", "lock", "ready", "used", "users")

    #: The worker's fq_wait (set right after construction: `run` is what it runs).
    future: asyncio.Future[int]

    def __init__(self) -> None:
        self.users = 0
        self.lock = threading.Lock()
        self.ready = False  # the worker's fq_wait returned OK
        self.used = False  # a coroutine went on to try after the wait ended
        self.abandoned = False  # every coroutine left without trying

    def run(self, h: _ffi.Handle, what: int) -> int:
        """The worker thread's job: one fq_wait slice."""
        status = h.wait(what, _WAIT_SLICE_NS)
        with self.lock:
            self.ready = status == _ffi.OK
            if self.ready and self.abandoned:
                h.wake(what)
        return status

    def abandon(self, h: _ffi.Handle, what: int) -> None:
        """The last coroutine left without trying: pass on a wake-up the wait may have used."""
        with self.lock:
            self.abandoned = True
            if self.ready:
                h.wake(what)


# handle -> {(direction, id(loop)): wait in flight}. Only touched from event-loop threads; the
# key includes the loop, so two loops never share an entry.
_waits: weakref.WeakKeyDictionary[_ffi.Handle, dict[tuple[int, int], _SharedWait]] = (
    weakref.WeakKeyDictionary()
)


async def _wait(h: _ffi.Handle, what: int, timeout: float | None, op: str, name: str) -> None:
    """Waits until the handle is readable/writable (or shut down), at most `timeout` seconds and
    at most one slice; takes nothing. Raises for a library error."""
    loop = asyncio.get_running_loop()
    key = (what, id(loop))
    per_handle = _waits.setdefault(h, {})
    shared = per_handle.get(key)
    if shared is None or shared.future.done():
        shared = per_handle[key] = _SharedWait()
        shared.future = future = loop.run_in_executor(_executor(), shared.run, h, what)

        def forget(_: object, shared: _SharedWait = shared) -> None:
            if per_handle.get(key) is shared:
                del per_handle[key]

        future.add_done_callback(forget)
    future = shared.future
    shared.users += 1
    used = False
    try:
        # asyncio.wait never cancels what it waits for: other coroutines keep sharing it.
        await asyncio.wait((future,), timeout=timeout)
        used = future.done()  # the caller tries to take (or put) next
    finally:
        shared.users -= 1
        shared.used = shared.used or used
        if shared.users == 0 and not shared.used:
            shared.abandon(h, what)
            if not future.done():
                # Nobody waits any more: drop the result (the thread finishes its slice, taking
                # nothing), and let a wait not started yet never start.
                future.cancel()
    if future.done() and not future.cancelled():
        status = future.result()
        if status < 0:
            raise error_from_status(status, op, name)


def _remaining(deadline: float | None, loop: asyncio.AbstractEventLoop) -> float | None:
    return None if deadline is None else deadline - loop.time()


def _deadline(timeout: float | None, loop: asyncio.AbstractEventLoop) -> float | None:
    if timeout is None:
        return None
    return loop.time() + check_timeout(timeout)


class AsyncMixin:
    """``aget`` and ``aput``: the asyncio face of a queue (see the module's documentation)."""

    def _nowait_putter(self, item: Any) -> Callable[[], None]:
        """A callable that tries once to put `item` without waiting (raising Full if the queue
        is full); aput calls it until it succeeds. Subclasses that encode items (ObjectQueue)
        encode once here."""
        return functools.partial(self.put_nowait, item)  # type: ignore[attr-defined]

    async def aget(self: _Getter[_T], timeout: float | None = None) -> _T:
        """Removes and returns the oldest item without blocking the event loop: ``await
        q.aget()`` waits as long as it takes, ``await q.aget(timeout=s)`` at most ``s`` seconds,
        then raises :class:`~fastqueue.Empty`. Raises :class:`~fastqueue.ShutDown` once a shut
        down queue is drained (a waiting ``aget`` wakes when the queue is shut down).

        Cancelling the coroutine (``task.cancel()``, ``asyncio.wait_for``) never loses an item:
        either ``aget`` returned it, or it is still in the queue. Items are taken on the loop's
        thread; the waiting is done by a worker thread that takes nothing.

        >>> import asyncio, fastqueue
        >>> async def main():
        ...     with fastqueue.Queue(element_size=8, capacity=2) as q:
        ...         await q.aput(b"one")
        ...         first = await q.aget()
        ...         try:
        ...             await q.aget(timeout=0.01)
        ...         except fastqueue.Empty:
        ...             return first, "then empty"
        >>> asyncio.run(main())
        (b'one', 'then empty')
        """
        loop = asyncio.get_running_loop()
        deadline = _deadline(timeout, loop)
        while True:
            try:
                return self.get_nowait()
            except Empty:
                pass
            h = self._h
            if h is None:
                raise self._closed_error()
            remaining = _remaining(deadline, loop)
            if remaining is not None and remaining <= 0.0:
                raise Empty
            await _wait(h, _ffi.WAIT_READABLE, remaining, "aget", getattr(self, "name", "?"))

    async def aput(self: _Putter[_T], item: _T, timeout: float | None = None) -> None:
        """Puts ``item`` without blocking the event loop: waits while the queue is full, as long
        as it takes or at most ``timeout`` seconds, then raises :class:`~fastqueue.Full`.
        Raises :class:`~fastqueue.ShutDown` if the queue is (or gets) shut down. The item is
        checked (and, for an ObjectQueue, encoded) first: errors raise before any waiting.
        Cancelling the coroutine puts nothing, unless ``aput`` had already returned.
        """
        attempt = self._nowait_putter(item)
        loop = asyncio.get_running_loop()
        deadline = _deadline(timeout, loop)
        while True:
            try:
                attempt()
                return
            except Full:
                pass
            h = self._h
            if h is None:
                raise self._closed_error()
            remaining = _remaining(deadline, loop)
            if remaining is not None and remaining <= 0.0:
                raise Full
            await _wait(h, _ffi.WAIT_WRITABLE, remaining, "aput", getattr(self, "name", "?"))
