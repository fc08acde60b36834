"""The basic queue: :meth:`~fastqueue.Queue.put` and :meth:`~fastqueue.Queue.get` of one
message (and their ``_nowait`` forms, and ``get_into``), with their hot paths: bytes, one bound
library call, nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _ffi
from ._args import check_timeout as _check_timeout
from ._args import not_bytes_like as _not_bytes_like
from ._core import _CLOSED, _EMPTY, _FULL, _OK, _TRY_BIAS, QueueCore
from ._errors import (
    ArgumentTypeError,
    InvalidArgumentError,
)
from ._ffi import u64_arg as _u64_arg
from ._words import nbytes

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["PutGetMixin"]


class PutGetMixin(QueueCore):
    """put / get of one message (part of :class:`~fastqueue.Queue`)."""

    def put(self, item: Buffer, block: bool = True, timeout: float | None = None) -> None:
        """Puts ``item`` (any bytes-like object of 0..element_size bytes) into the queue.

        With ``block=True`` waits while the queue is full: forever if ``timeout`` is None, else
        at most ``timeout`` seconds (never less), then raises :class:`~fastqueue.Full`. With
        ``block=False`` raises ``Full`` at once if the queue is full (``timeout`` is ignored).

        Accepted: bytes, bytearray, memoryview, array.array, numpy arrays and anything else with
        the buffer protocol; the message is the object's raw bytes (``memoryview(item).nbytes``
        of them). bytes and writable contiguous buffers are read in place; read-only and
        non-contiguous buffers (e.g. a strided numpy slice) are first copied into bytes.

        Raises ``TypeError`` for an object that is not bytes-like, ``ValueError`` (a
        :class:`~fastqueue.MessageTooBigError`) for one longer than element_size and for a
        negative timeout; the queue is then unchanged. A blocked put can be interrupted with
        Ctrl-C (KeyboardInterrupt): nothing is then put.

        >>> with Queue(element_size=4, capacity=1) as q:
        ...     q.put(b"1234")
        ...     q.put(b"5", timeout=0.01)
        Traceback (most recent call last):
        ...
        fastqueue.Full
        """
        if timeout is not None and block:
            _check_timeout(timeout)
        # The hot path: bytes, and a slot free at once (one library call, GIL kept). Anything
        # else -- another buffer type, a full queue, an error, a closed handle -- goes on below.
        if type(item) is bytes:
            status: int | None = self._try_put(item, _u64_arg[len(item)])
            if status == _OK:
                return
        else:
            status = None
        self._put_rest(item, block, timeout, status)

    def _put_rest(
        self, item: Buffer, block: bool, timeout: float | None, status: int | None
    ) -> None:
        """put beyond its hot path: other buffer types, waiting, errors (timeout validated).
        ``status`` is what the hot path's attempt returned, None if it made none."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if status == _CLOSED:  # a forked child's first put: `self._h` just attached its handle
            status = None
        if type(item) is bytes:
            data: object = item
            n = len(item)
        else:
            try:
                data, n = _ffi.as_c_buffer(item)
            except TypeError:
                raise _not_bytes_like(f"Queue({self._name!r}).put: item", item) from None
        if status is None:
            status = h.put(data, n, 0)  # the first attempt never waits
        if status == _FULL and block:
            status = self._wait_to_put(h, data, n, timeout)
        if status != _OK:
            raise self._put_error(status, n)

    def _wait_to_put(self, h: _ffi.Handle, data: object, n: int, timeout: float | None) -> int:
        """put's waiting path, after a first attempt found the queue full: library waits of at
        most one slice each (so that signal handlers run), until the put is done, fails, or
        ``timeout`` (seconds, validated) runs out. Returns the status."""
        return self._retry(h, lambda ns: h.put(data, n, ns), _FULL, timeout)

    def put_nowait(self, item: Buffer) -> None:
        """``put(item, block=False)``: raises :class:`~fastqueue.Full` at once when full."""
        # put's hot path, inlined: this is a hot call.
        if type(item) is bytes:
            status: int | None = self._try_put(item, _u64_arg[len(item)])
            if status == _OK:
                return
        else:
            status = None
        self._put_rest(item, False, None, status)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Removes and returns the oldest message, as bytes.

        With ``block=True`` waits while the queue is empty: forever if ``timeout`` is None, else
        at most ``timeout`` seconds (never less), then raises :class:`~fastqueue.Empty`. With
        ``block=False`` raises ``Empty`` at once if there is no message (``timeout`` is
        ignored). A negative timeout raises ``ValueError``. A blocked get can be interrupted
        with Ctrl-C (KeyboardInterrupt): no message is then taken.

        >>> with Queue(element_size=8, capacity=2) as q:
        ...     q.put(b"first"); q.put(b"second")
        ...     q.get(), q.get(timeout=1.0)
        (b'first', b'second')
        """
        if timeout is not None and block:
            _check_timeout(timeout)
        # The hot path: a message at once, no longer than the receive buffer (one library call,
        # GIL kept). Each receive buffer serves one thread at a time (list.pop/append are
        # atomic); a thread that finds none (another thread holds it, or the queue is closed)
        # goes on below, as does an empty queue or an error.
        rx = self._rx
        try:
            pair = rx.pop()
        except IndexError:
            return self._get_rest(block, timeout, None)
        n = pair[1]()
        if n >= 0:
            msg: bytes = pair[0][:n]  # the one copy, into a new bytes object
            rx.append(pair)  # the same pair back: no tuple made per get
            return msg
        rx.append(pair)
        return self._get_rest(block, timeout, n + _TRY_BIAS)

    def _get_rest(self, block: bool, timeout: float | None, status: int | None) -> bytes:
        """get beyond its hot path (timeout validated): ``status`` is what the hot path's
        attempt returned, None if it made none."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if status is None:
            self._rx.append(h.bind_get())  # a receive buffer for this thread's next get
        # h.get returns the message (bytes) or a status (int): EMPTY or an error. It reads a
        # message too long for the receive buffer in place; the first attempt never waits. A
        # message the hot path found too long is read in place at once (perf/breakdown.py,
        # 256 KiB put+get: one library call fewer, 7.8 -> 7.4 us).
        if status == _ffi.ERR_BUFFER:
            result: bytes | int = h.get_in_place()
        else:
            result = h.get(0) if status is None else status
        if result == _EMPTY and block:
            result = self._wait_to_get(h, timeout)
        if type(result) is bytes:
            return result
        raise self._get_error(result)

    def _wait_to_get(self, h: _ffi.Handle, timeout: float | None) -> bytes | int:
        """get's waiting path, after a first attempt found the queue empty (see _wait_to_put):
        the message, or the status."""
        return self._retry(h, h.get, _EMPTY, timeout)

    def get_nowait(self) -> bytes:
        """``get(block=False)``: raises :class:`~fastqueue.Empty` at once if there is no message."""
        rx = self._rx  # get's hot path, inlined: this is a hot call.
        try:
            pair = rx.pop()
        except IndexError:
            return self._get_rest(False, None, None)
        n = pair[1]()
        if n >= 0:
            msg: bytes = pair[0][:n]
            rx.append(pair)
            return msg
        rx.append(pair)
        return self._get_rest(False, None, n + _TRY_BIAS)

    def get_into(self, buffer: Buffer, block: bool = True, timeout: float | None = None) -> int:
        """Removes the oldest message, copies it into ``buffer`` and returns its length in bytes
        (the rest of ``buffer`` is left as it was). One copy, into memory you own and reuse.

        ``buffer`` is any writable, C-contiguous bytes-like object (bytearray, memoryview,
        array.array, numpy array, mmap, ...), else ``TypeError``. A message longer than
        ``buffer`` raises ``ValueError`` naming the size needed, and stays in the queue.
        ``block`` and ``timeout`` are as for :meth:`get`.

        >>> with Queue(element_size=16, capacity=2) as q:
        ...     q.put(b"hello")
        ...     buf = bytearray(16)
        ...     n = q.get_into(buf)
        ...     bytes(buf[:n])
        b'hello'
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        try:
            arg, cap, copy_back = _ffi.writable_buffer(buffer)
        except TypeError as exc:
            raise ArgumentTypeError(
                f"Queue({self._name!r}).get_into: buffer must be a writable, C-contiguous "
                f"bytes-like object (bytearray, numpy array...), not {type(buffer).__name__}"
                f" ({exc})"
            ) from None
        if timeout is not None and block:
            _check_timeout(timeout)
        length = h.try_get_into(arg, cap)  # the first attempt: one call, never waits
        if length >= 0:
            if copy_back is not None:
                copy_back(length)
            return length
        status = length + _TRY_BIAS
        if status == _ffi.ERR_BUFFER:  # the size needed: ask the way that tells it
            status, length = h.get_into(arg, cap, 0)
        if status == _EMPTY and block:

            def attempt(timeout_ns: int) -> int:
                nonlocal length
                status, length = h.get_into(arg, cap, timeout_ns)
                return status

            status = self._retry(h, attempt, _EMPTY, timeout)
        if status == _OK:
            if copy_back is not None:
                copy_back(length)
            return length
        if status == _ffi.ERR_BUFFER:
            raise InvalidArgumentError(
                f"Queue({self._name!r}).get_into: the next message is {nbytes(length)} long, the "
                f"buffer only {nbytes(cap)}; pass a buffer of at least {nbytes(length)} (the "
                f"message was left in the queue)"
            )
        raise self._get_error(status)
