"""The room of :class:`~fastqueue.Queue` that marks messages done, joins and shuts down, as
Python 3.13's :class:`queue.Queue` does, across processes (the counts live in the segment).
"""

from __future__ import annotations

from . import _ffi
from ._args import check_timeout as _check_timeout
from ._core import _OK, QueueCore
from ._errors import InvalidArgumentError, error_from_status

__all__ = ["JoinMixin"]


class JoinMixin(QueueCore):
    """task_done, join and shutdown of :class:`~fastqueue.Queue`."""

    def task_done(self) -> None:
        """Marks one fetched message as processed, as :meth:`queue.Queue.task_done` does; the
        count lives in the segment, so any process may mark a message done. Raises ValueError
        if called more times than there were messages put.

        >>> with Queue(element_size=8, capacity=2) as q:
        ...     q.put(b"job"); _ = q.get(); q.task_done()
        ...     q.join(timeout=0)
        True
        """
        self._task_done(1)

    def _task_done(self, n: int) -> None:
        """task_done ``n`` times in one library call (the bridge acknowledges its batches so)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        status = h.task_done(n)
        if status == _OK:
            return
        if status == _ffi.ERR_INVALID:
            if h.redeliver:
                raise InvalidArgumentError(
                    f"Queue({self._name!r}).task_done(): this handle holds no unacknowledged "
                    f"message (on a redeliver=True queue each task_done acknowledges a message "
                    f"this handle got)"
                )
            raise InvalidArgumentError(
                f"Queue({self._name!r}).task_done() called too many times (more than messages "
                f"were put)"
            )
        raise error_from_status(status, f"Queue({self._name!r}).task_done()", self._name)

    def join(self, timeout: float | None = None) -> bool:
        """Waits until every message ever put has been marked done with :meth:`task_done` (by
        any process), as :meth:`queue.Queue.join` does; messages a dead (or closed) handle
        took and did not mark done count as done, except on a :attr:`redeliver` queue, where
        they are delivered again and waited for. With a ``timeout`` (seconds) gives up after
        it and returns False; returns True once everything is done. Ctrl-C interrupts the wait.
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        t = None if timeout is None else _check_timeout(timeout)
        status = h.join(0)
        if status == _ffi.TIMEOUT:
            status = self._retry(h, h.join, _ffi.TIMEOUT, t)
        if status == _OK:
            return True
        if status == _ffi.TIMEOUT:
            return False
        raise error_from_status(status, f"Queue({self._name!r}).join()", self._name)

    def shutdown(self, immediate: bool = False) -> None:
        """Shuts the queue down for every process attached to it, as Python 3.13's
        :meth:`queue.Queue.shutdown` does: later puts raise :class:`~fastqueue.ShutDown`; gets
        return what is left, then raise ShutDown. With ``immediate=True`` what is left is
        discarded (and counted as done for :meth:`join`) and gets raise ShutDown at once. Every
        blocked put, get and join wakes. It cannot be undone.

        >>> q = Queue(element_size=8, capacity=2)
        >>> q.put(b"last"); q.shutdown()
        >>> q.get()
        b'last'
        >>> q.get()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fastqueue.ShutDown: Queue(...).get: queue ... was shut down
        >>> q.close()
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        status = h.shutdown(bool(immediate))
        if status != _OK:
            raise error_from_status(status, f"Queue({self._name!r}).shutdown()", self._name)
