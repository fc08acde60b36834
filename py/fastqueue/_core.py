"""The state every queue class shares, and what its rooms share: the handle, the hot path's
bound calls, the errors of a closed handle or a failed call, and the waiting loop.

The public :class:`~fastqueue.Queue` is made of rooms, one job each, all on this core:
``_putget`` (put / get of one message), ``_batches`` (put_many / get_many), ``_slots``
(zero-copy put_slot / get_slot), ``_joining`` (task_done / join / shutdown), ``_aio``
(aget / aput); ``queue`` itself holds creating, attaching, closing, counting and the lifetime.
Data flows one way: the rooms -> ``_ffi`` -> the C library.
"""

from __future__ import annotations

import time
import warnings
from array import array
from typing import TYPE_CHECKING, Any, Final, TypeVar

from . import _ffi
from ._args import SLICE_NS as _SLICE_NS
from ._args import slice_ns as _slice
from ._errors import (
    Empty,
    Full,
    MessageTooBigError,
    QueueClosedError,
    error_from_status,
)
from ._ffi import status_str
from ._words import nbytes

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ["QueueCore"]

_T = TypeVar("_T")
_OK: Final = _ffi.OK
_EMPTY: Final = _ffi.EMPTY
_FULL: Final = _ffi.FULL
_TRY_BIAS: Final = _ffi.TRY_BIAS
#: What the hot-path put returns while stopped (see _put_stopped): no handle in its block.
_CLOSED: Final = _ffi.ERR_NULL
_INTERRUPTED: Final = _ffi.INTERRUPTED
#: A closed queue's bound packed puts: none (never written to: the slow path raises first).
_NO_PACKED: Final[dict[tuple[int, int], Any]] = {}
#: The same for get_many(..., itemsize=): never written to.
#: A closed queue's kept receive buffers: none (never appended to: _bind gives each queue a list).
_NO_KEPT: Final[list[Any]] = []
_NO_EXACT: Final[dict[tuple[int, int], list[Any]]] = {}


#: The hot path's put (argument, flag) while it must not be used: puts nothing, returns
#: ERR_NULL (see _ffi.PutBlock), which sends put on to its slow path.
_put_stopped: Final = (lambda b: (b.arg, b.flag))(_ffi.PutBlock(None))
#: The hot path's get arguments while it must not be used (closed, or a message kept
#: elsewhere or an exception deferred: see QueueCore): see _ffi.stopped_take_args.
_take_stopped: Final = _ffi.stopped_take_args()
#: How many times an except clause that a second signal may interrupt (PyPy) redoes its steps.
_REDO: Final = 8


class QueueCore:
    """The state of a queue handle (see :class:`~fastqueue.Queue`) and the helpers its rooms
    share. Not used on its own."""

    # Class-level defaults, so that __del__ and __repr__ work on a half-constructed object.
    # The handle; None once closed. In a child forked while it was open it is missing until the
    # child's first use, when ``Queue._h`` (a descriptor) attaches a handle of the child's own (a
    # missing ``_h`` on a half-constructed object reads as None).
    _h: _ffi.Handle | None
    #: In a forked child: the handle inherited from the parent, until the child's first use.
    _inherited: _ffi.Handle | None = None
    _name: str = "?"
    _raw: bytes = b""
    _element_size: int = 0
    _maxsize: int = 0
    # pid of the process that created the segment with this handle; 0 if attached.
    _owner_pid: int = 0
    _unlinked: bool = False
    # The hot path's bound library calls (see _bind); while closed, every call takes the slow
    # path, which raises.
    _try_put: Any = _put_stopped
    _take: Any = _take_stopped
    _bound_put: Any = None
    #: get's hot receive buffer (see _ffi.Held); _take is its take_args, or _take_stopped.
    _hot: Any = None
    #: An exception from a signal handler that arrived after a call had put (or taken) what
    #: it was asked to: that call returned normally, and the next put or get on this handle
    #: raises it before doing anything (see _defer).
    _pending: BaseException | None = None
    #: The last timeout put or get found valid: an exact float or int >= 0 (immutable, so its
    #: identity stands for its value), compared by identity before any other check.
    _valid_timeout: object = None
    #: Messages taken by gets that a signal interrupted, drained from the handle's kept
    #: receive buffers (see _drain_kept): the next gets return them first, in order.
    _kept_msgs: list[bytes] = _NO_KEPT
    _packed: dict[tuple[int, int], tuple[Callable[[bytes], int], int, array[int]]] = _NO_PACKED
    _exact: dict[tuple[int, int], list[Any]] = _NO_EXACT

    def _closed_error(self) -> QueueClosedError:
        return QueueClosedError(
            f"operation on a closed queue: fastqueue.Queue({self._name!r}) is closed; attach "
            f"a new handle with Queue({self._name!r}, create=False)"
        )

    def _too_big(self, n: int) -> MessageTooBigError:
        return MessageTooBigError(
            f"Queue({self._name!r}): a message of {nbytes(n)} is longer than the queue's "
            f"element_size of {nbytes(self._element_size)}; split it into smaller messages, or "
            f"use a queue created with element_size={n} or more"
        )

    def _put_error(self, status: int, n: int | None = None) -> Exception:
        if status == _FULL:
            return Full()
        if status == _ffi.ERR_TOO_BIG and n is not None:
            return self._too_big(n)
        return error_from_status(status, f"Queue({self._name!r}).put", self._name)

    def _get_error(self, status: bytes | int) -> Exception:
        if status == _EMPTY:
            return Empty()
        return error_from_status(int(status), f"Queue({self._name!r}).get", self._name)

    def _raise_pending(self) -> None:
        """Raises the exception a signal handler raised after an earlier call had done its work
        (see _pending), and puts the hot path back."""
        exc = self._pending
        self._pending = None
        h = self._h
        if h is not None:
            self._try_put = self._bound_put
            self._restore_take(h)
        if exc is not None:
            raise exc

    def _defer(self, exc: BaseException) -> None:
        """Defers ``exc`` (a signal handler's, landing after a get had taken its message and
        before it returned: PyPy) to the handle's next call, as put does (see _pending). A
        second signal landing in here is coalesced with the first: every step can be redone
        (a few times: anything that still fails is no signal's, and is raised)."""
        for attempt in range(_REDO):
            try:
                if self._pending is None:
                    self._pending = exc
                self._try_put = _put_stopped
                self._take = _take_stopped
                return
            except BaseException:
                if attempt == _REDO - 1:
                    raise

    def _restore_take(self, h: _ffi.Handle) -> None:
        """Puts get's hot path back, unless something must be handed over or raised first.
        Every get-family call that finds it stopped (``_take is _take_stopped``) hands on
        what _drain_kept finds before it takes anything from the queue."""
        hot = self._hot
        if self._pending is None and not self._kept_msgs and not h.kept and hot.word[0] > -2:
            self._take = hot.take_args

    def _drain_kept(self, h: _ffi.Handle) -> None:
        """Moves the messages of the handle's kept receive buffers (taken by gets, batches
        included, that a signal interrupted before their caller had them; see _ffi.Held) into
        _kept_msgs, in the order they were kept. Each buffer's word says what it holds until
        its messages are in _kept_msgs: an exception anywhere in between keeps them."""
        kept = h.kept
        km = self._kept_msgs
        while True:
            # The hot get's buffer first: it keeps a message only while the hot path is
            # stopped (see PutGetMixin.get), which nothing is kept before, so it is the oldest.
            recv = self._hot
            if recv is None or recv.word[0] > -2:
                if not kept:
                    break
                recv = kept[0]
            k = len(km)
            try:
                n = recv.handover()  # the kept messages again (the word: their number)
                if n >= 0:
                    msgs = recv.extract(n)
                    # Moved, then the word stored free: an exception in between (PyPy can
                    # run a handler between any two bytecodes) finds them moved, below.
                    km.extend(msgs)
                    recv.word[0] = -1
            except BaseException:
                w = recv.word
                if w[0] >= 0:
                    w[0] = -1 if len(km) > k else -2 - w[0]
                raise
            if recv is self._hot:
                if n < 0:  # (not handed over: a closed handle; close puts it back)
                    break
            else:
                del kept[0]

    def _give_back_kept(self, h: _ffi.Handle) -> None:
        """On close: puts the messages this handle kept (taken, then interrupted before the
        caller had them) back into the queue, at its end, so that they are not lost with the
        handle; waits up to a second for room. (Messages it put after an exception was deferred
        are in the queue already; the deferred exception itself is dropped.)"""
        self._drain_kept(h)
        msgs = list(self._kept_msgs)
        self._kept_msgs.clear()
        hot = self._hot
        if hot is not None:
            v = hot.word[0]
            if v <= -2 or v >= 0:
                msgs.append(hot.buf[: (-v - 2) if v <= -2 else v])
                hot.word[0] = -1
        self._put_back(h, msgs)

    def _put_back(self, h: _ffi.Handle, msgs: list[bytes]) -> None:
        """close's way to put kept messages back (see _give_back_kept)."""
        for msg in msgs:
            status = h.put(msg, len(msg), 0)
            if status == _FULL:
                status = h.put(msg, len(msg), 1_000_000_000)
            if status != _OK:
                warnings.warn(
                    f"Queue({self._name!r}).close: a message taken by a get that a signal "
                    f"interrupted could not be put back ({status_str(status)}); it is lost",
                    ResourceWarning,
                    stacklevel=4,
                )

    def _retry(
        self, h: _ffi.Handle, attempt: Callable[[int], _T], busy: int, timeout: float | None
    ) -> _T | int:
        """The waiting path of a call whose first attempt found the queue ``busy`` (FULL, EMPTY,
        or join's TIMEOUT): ``attempt(timeout_ns)`` again, one slice at a time, until it
        returns something else or ``timeout`` (seconds, validated; None: forever) runs out;
        then the last result (``busy`` if time ran out first). A library wait that a signal
        interrupts returns at once (INTERRUPTED, or ``INTERRUPTED - TRY_BIAS`` for the calls
        that count, having taken nothing): Python runs the handler as the call returns, and,
        unless the handler raised, the wait goes on. The slices only bound how long a signal
        delivered to another thread, or a handle closed by another thread, goes unnoticed."""
        status: _T | int = busy
        biased = busy not in (_EMPTY, _FULL, _ffi.TIMEOUT)
        interrupted = _INTERRUPTED - _TRY_BIAS if biased else _INTERRUPTED
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        try:
            while status in (busy, interrupted):
                if deadline is None:
                    wait = _SLICE_NS
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        break
                    wait = _slice(remaining)
                if self._h is not h:
                    raise self._closed_error()
                status = attempt(wait)
            return busy if status == interrupted else status
        except BaseException:
            # A batch get_many took, on its way back (PyPy may run a handler before any
            # bytecode; CPython has no check point here once attempt returned): kept for the
            # next get, which hands _kept_msgs on first (a single call, the first here).
            if status.__class__ is list and self._h is h:  # (closed: its list is shared)
                self._kept_msgs.extend(status)
                self._take = _take_stopped
            raise
