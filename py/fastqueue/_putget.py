"""The basic queue: :meth:`~fastqueue.Queue.put` and :meth:`~fastqueue.Queue.get` of one
message (and their ``_nowait`` forms, and ``get_into``), with their hot paths: bytes, one bound
library call, nothing else.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from . import _ffi
from ._args import check_timeout as _check_timeout
from ._args import not_bytes_like as _not_bytes_like
from ._core import (
    _CLOSED,
    _EMPTY,
    _FULL,
    _OK,
    _TRY_BIAS,
    QueueCore,
    _put_stopped,
    _take_stopped,
)
from ._errors import (
    ArgumentTypeError,
    InvalidArgumentError,
)
from ._ffi import try_put_in as _try_put_in
from ._ffi import try_take_in as _try_take_in
from ._ffi import u64_arg as _u64_arg
from ._words import nbytes

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["PutGetMixin"]

_PYPY: Final = _ffi.PYPY


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
        # (The timeout is checked before anything is put, as stdlib's queue does. The last one
        # found valid, an exact float or int >= 0 and so immutable, is remembered by identity
        # (see QueueCore._valid_timeout): a worker loop's constant then costs one comparison,
        # and a timed call that succeeds at once about what an untimed one does. Another float
        # or int >= 0 is checked inline, anything else the long way.)
        if timeout is not None and timeout is not self._valid_timeout and block:
            tc = type(timeout)
            if (tc is float or tc is int) and timeout >= 0.0:
                self._valid_timeout = timeout
            else:
                _check_timeout(timeout)
        # The hot path: bytes, and a slot free at once (one library call, GIL kept). Anything
        # else -- another buffer type, a full queue, an error, a closed handle -- goes on below.
        # Signals: the call is fq_try_put_in with the queue's block (see _ffi.PutBlock), whose
        # flag this code clears and the call sets to whether it put. CPython runs a signal
        # handler at its check points: here the `len` call (before the flag is cleared:
        # nothing put yet), and the check right after the library call returns (the CALL
        # instruction's own), where an exception discards the status. Between the clearing
        # and that check nothing can run: the store, loading an attribute or a global run no
        # Python code, and the library function is C (even while stopped: then a block without
        # a handle). So the except clause reads the flag of this call (0 if anything raised
        # before it): if it put, the exception is deferred, not raised (see _pending), since
        # the put happened. No call between the except and the return: no second signal can
        # land there. (A handler that itself puts through this handle from another thread
        # could rewrite the flag meanwhile; as the shared flag always could.)
        if type(item) is bytes:
            n_arg = _u64_arg[len(item)]
            arg, flag = self._try_put
            flag[8] = 0
            try:
                status: int | None = _try_put_in(arg, item, n_arg)
            except BaseException as exc:
                if flag[8]:
                    if self._pending is None:
                        self._pending = exc
                    self._try_put = _put_stopped
                    self._take = _take_stopped
                    return
                raise
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
        if self._pending is not None:
            self._raise_pending()
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
        # As on the hot path: a flag of this call's own tells whether it put.
        done, done_arg = _ffi.done_cell()
        try:
            if status is None or status == _CLOSED:
                status = h.put_noted(data, n, 0, done_arg)  # the first attempt never waits
            if status == _FULL and block:
                status = self._retry(
                    h, lambda ns: h.put_noted(data, n, ns, done_arg), _FULL, timeout
                )
        except BaseException as exc:
            if done[0]:
                if self._pending is None:
                    self._pending = exc
                self._try_put = _put_stopped
                self._take = _take_stopped
                return
            raise
        if status != _OK:
            raise self._put_error(status, n)

    def put_nowait(self, item: Buffer) -> None:
        """``put(item, block=False)``: raises :class:`~fastqueue.Full` at once when full."""
        # put's hot path, inlined: this is a hot call (signals: see put).
        if type(item) is bytes:
            n_arg = _u64_arg[len(item)]
            arg, flag = self._try_put
            flag[8] = 0
            try:
                status: int | None = _try_put_in(arg, item, n_arg)
            except BaseException as exc:
                if flag[8]:
                    if self._pending is None:
                        self._pending = exc
                    self._try_put = _put_stopped
                    self._take = _take_stopped
                    return
                raise
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
        if timeout is not None and timeout is not self._valid_timeout and block:
            tc = type(timeout)  # (checked as put checks it, before anything is taken)
            if (tc is float or tc is int) and timeout >= 0.0:
                self._valid_timeout = timeout
            else:
                _check_timeout(timeout)
        # The hot path: a message at once, no longer than the receive buffer (one library call,
        # GIL kept). Anything else -- an empty queue, a longer message, the buffer in use by
        # another thread, an error, a closed handle -- goes on below. Signals: the message
        # stays described by the buffer's held word (see _ffi.Held) until it is stored back to
        # -1 right before the return; an exception that lands before that keeps it there (a
        # single store, no call: no second signal can land in between), and the next get
        # hands it over. The call is fq_try_take_in with the prepared argument of the hot
        # buffer's block (self._take is _hot.take_args, or _take_stopped: a block without a
        # handle, taking nothing). Where a handler can run (CPython's check points): only at
        # the check of the CALL_FUNCTION_EX right after the library call returns. Loading the
        # global and the attribute runs no Python code, and from that check to the return
        # there is none: a comparison, the slice (C: bytes are made, no check point) and the
        # store. So the word is n >= 0 exactly while this call's message is out of the queue
        # and not yet returned.
        held = self._hot
        try:
            n = _try_take_in(*self._take)
            if n >= 0:
                msg: bytes = held.buf[:n]  # the one copy, into a new bytes object
                held.word[0] = -1
                return msg
        except BaseException:
            if held is not None:
                w = held.word
                if w[0] >= 0:
                    w[0] = -2 - w[0]
                    # Stopped: every get form (get_many, get_slot...) then hands it on first.
                    self._take = _take_stopped
            raise
        return self._get_rest(block, timeout, n + _TRY_BIAS)

    def _get_rest(self, block: bool, timeout: float | None, status: int) -> bytes:
        """get beyond its hot path (timeout validated): ``status`` is what the hot path's
        attempt returned."""
        if self._pending is not None:
            self._raise_pending()
        h = self._h
        if h is None:
            raise self._closed_error()
        if self._take is _take_stopped or h.kept or self._kept_msgs:
            self._drain_kept(h)  # taken by an interrupted get: these come first
            km = self._kept_msgs
            if km:
                msg: bytes = km[0]
                k = len(km)
                try:
                    del km[0]  # (no call between this and the return: no signal lands there)
                    return msg
                except BaseException as exc:  # (PyPy: a handler may run before any bytecode)
                    if len(km) < k:  # this call took it: it returns it
                        self._defer(exc)
                        return msg
                    raise
        self._restore_take(h)
        # A receive buffer of this call's own (the hot one may be another thread's meanwhile;
        # one of max_msg bytes for a message longer than the hot one, also when one arrives
        # while this call waits).
        held = h.held(h.max_msg if status == _ffi.ERR_BUFFER else None)
        too_long = _ffi.ERR_BUFFER - _TRY_BIAS
        while True:
            try:
                n = held.take()  # the first attempt never waits
                if n == _EMPTY - _TRY_BIAS and block:
                    n = self._retry(h, functools.partial(held.take_wait, h), n, timeout)
                if n >= 0:
                    msg = held.buf[:n]
                    # Pooled before the store (no call between the store and the return);
                    # a thread that pops it meanwhile leaves it (see Handle.held).
                    h.give_held(held)
                    held.word[0] = -1
                    return msg
            except BaseException:
                w = held.word
                if w[0] >= 0:
                    w[0] = -2 - w[0]
                    # Kept in a buffer of this call's own: the next get hands it over first.
                    self._take = _take_stopped
                    h.kept.append(held)
                raise
            h.give_held(held)
            if n != too_long or held.cap >= h.max_msg:
                raise self._get_error(n + _TRY_BIAS)
            held = h.held(h.max_msg)  # a longer message came: take it with one that fits

    def get_nowait(self) -> bytes:
        """``get(block=False)``: raises :class:`~fastqueue.Empty` at once if there is no message."""
        held = self._hot  # get's hot path, inlined: this is a hot call (signals: see get).
        try:
            n = _try_take_in(*self._take)
            if n >= 0:
                msg: bytes = held.buf[:n]
                held.word[0] = -1
                return msg
        except BaseException:
            if held is not None:
                w = held.word
                if w[0] >= 0:
                    w[0] = -2 - w[0]
                    # Stopped: every get form (get_many, get_slot...) then hands it on first.
                    self._take = _take_stopped
            raise
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
        if self._pending is not None:
            self._raise_pending()
        if self._take is _take_stopped or h.kept or self._kept_msgs:
            self._drain_kept(h)  # taken by an interrupted get: these come first
            km = self._kept_msgs
            if km and len(km[0]) > cap:
                status, length = _ffi.ERR_BUFFER, len(km[0])
            elif km:
                view = memoryview(buffer).cast("B")
                msg = km[0]
                view[: len(msg)] = msg
                del km[0]
                return len(msg)
            self._restore_take(h)
        # Signals: the message goes through a receive buffer with a held word (see _ffi.Held)
        # and is copied into ``buffer`` before the word is stored back: an exception before
        # that keeps it for the next get. (Two copies: the message must survive the exception.)
        held = h.held(cap)
        status = _OK
        n = -1
        try:
            n = held.take_upto(h, cap, 0)
            if n == _EMPTY - _TRY_BIAS and block:
                n = self._retry(h, lambda ns: held.take_upto(h, cap, ns), n, timeout)
            if n >= 0:
                view = memoryview(buffer).cast("B")
                view[:n] = memoryview(held.buf).cast("B")[:n]
                h.give_held(held)  # (before the store: as in get)
                held.word[0] = -1
                return n
        except BaseException as exc:
            w = held.word
            if w[0] >= 0:
                w[0] = -2 - w[0]
                self._take = _take_stopped
                h.kept.append(held)
            elif n >= 0:  # copied and stored free, not returned (PyPy): as _pypyget's get
                self._defer(exc)
                return n
            raise
        h.give_held(held)
        status = n + _TRY_BIAS
        if status == _ffi.ERR_BUFFER:  # the size needed: ask the way that tells it
            status, length = h.get_into(arg, cap, 0)
            if status == _OK:  # (another consumer took the long one meanwhile: got one)
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


if _PYPY:  # a handler may run between any two bytecodes there: get defers as put does
    from . import _pypyget

    PutGetMixin.get = _pypyget.get  # type: ignore[method-assign]
    PutGetMixin.get_nowait = _pypyget.get_nowait  # type: ignore[method-assign]
