"""Zero-copy slots: :meth:`~fastqueue.Queue.put_slot` lends a free slot to write a message in
place, :meth:`~fastqueue.Queue.get_slot` lends the oldest message in its slot.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from . import _ffi
from ._args import check_timeout as _check_timeout
from ._core import _EMPTY, _FULL, _OK, QueueCore, _put_stopped, _take_stopped
from ._errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    SlotError,
    SlotInUseError,
)

__all__ = ["SlotMixin", "WriteSlot"]


class WriteSlot:
    """What ``with q.put_slot() as slot:`` gives (see :meth:`Queue.put_slot`): ``buffer`` is a
    writable memoryview (format ``B``) of a free slot of the queue, ``length`` the number of its
    first bytes that form the message when the block ends (initially ``len(buffer)``)."""

    __slots__ = ("buffer", "length", "published")

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.length = len(buffer)
        #: True once the message is in the queue. CPython looks for pending signals as a
        #: ``with`` statement ends, after ``__exit__`` returned: an exception from a signal
        #: handler can come from the ``with`` line after the message was put. Check this in
        #: your ``except`` clause to tell.
        self.published = False

    def __repr__(self) -> str:
        return f"<fastqueue.WriteSlot length={self.length}>"


class _SlotWriter:
    """The context manager :meth:`Queue.put_slot` returns: claims the slot on entering,
    publishes it on leaving normally, gives it up on leaving by an exception. (A class rather
    than a generator: perf/, zero-copy put+get of 8 B 6.2 -> 5 us.)"""

    __slots__ = ("_args", "_held", "_q")

    def __init__(self, q: SlotMixin, size: int | None, block: bool, timeout: float | None) -> None:
        self._q = q
        self._args = (size, block, timeout)
        self._held: tuple[WriteSlot, _ffi.Lease, memoryview, int, int] | None = None

    def __enter__(self) -> WriteSlot:
        if self._held is not None:
            raise SlotError("a put_slot() block cannot be entered twice")
        # (No f(*args): a call made that way is not inlined, and a signal handler's exception
        # can land as it returns, after the claim: see the module Signals notes in _core.)
        size, block, timeout = self._args
        self._held = self._q._claim_slot(size, block, timeout)
        return self._held[0]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if exc_type is not None:
            self._q._drop_slot(held[1], held[2])
            return
        slot, lease, view, n, address = held
        self._q._publish_slot(slot, lease, view, n, address)


class _SlotReader:
    """The context manager :meth:`Queue.get_slot` returns: takes the message on entering,
    releases the view on leaving (the slot goes back once nothing made from it is left)."""

    __slots__ = ("_args", "_q", "_view")

    def __init__(self, q: SlotMixin, block: bool, timeout: float | None) -> None:
        self._q = q
        self._args = (block, timeout)
        self._view: memoryview | None = None

    def __enter__(self) -> memoryview:
        if self._view is not None:
            raise SlotError("a get_slot() block cannot be entered twice")
        block, timeout = self._args
        self._view = self._q._take_slot(block, timeout)
        return self._view

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        view, self._view = self._view, None
        if view is not None:
            with contextlib.suppress(BufferError):
                view.release()  # if nothing made from it is left, the slot goes back now


class SlotMixin(QueueCore):
    """put_slot / get_slot (part of :class:`~fastqueue.Queue`)."""

    def put_slot(
        self, size: int | None = None, block: bool = True, timeout: float | None = None
    ) -> AbstractContextManager[WriteSlot]:
        """Lends a free slot of the queue to write a message into in place (zero-copy):
        ``with q.put_slot() as slot:`` gives a :class:`WriteSlot`, whose ``slot.buffer`` is a
        writable memoryview of the slot (``size`` bytes, default element_size) and
        ``slot.length`` the number of its first bytes that form the message (default: all of
        them). When the ``with`` block ends the message is published; if the block raises,
        nothing is put. Waits for a free slot as :meth:`put` does (``Full`` if none in time).

        While a slot is lent, consumers wait for it (messages put after it are not overtaken),
        so keep the block short. ``slot.buffer`` is released when the block ends: using it later
        raises ``ValueError``. Anything else still using the slot's memory at that point (a
        numpy array made with ``numpy.frombuffer(slot.buffer)``, a memoryview sliced from it)
        would go on writing into a published message: then nothing is put, ``BufferError`` is
        raised, and the slot is given up only once that object is gone. Drop such objects
        inside the block (``del``), or write through temporaries as below.

        >>> import numpy as np
        >>> with Queue(element_size=64, capacity=2) as q:
        ...     with q.put_slot() as slot:
        ...         slot.buffer[:5] = b"hello"
        ...         slot.length = 5
        ...     with q.put_slot(16) as slot:
        ...         np.frombuffer(slot.buffer, dtype=np.float64)[:] = [1.5, 2.5]
        ...     q.get(), np.frombuffer(q.get(), dtype=np.float64)
        (b'hello', array([1.5, 2.5]))

        On PyPy, which cannot tell when memory is no longer used, ``slot.buffer`` is memory of
        its own, copied into the slot when the block ends (one copy).
        """
        return _SlotWriter(self, size, block, timeout)

    def _claim_slot(
        self, size: int | None, block: bool, timeout: float | None
    ) -> tuple[WriteSlot, _ffi.Lease, memoryview, int, int]:
        """put_slot, entering its block: (the slot lent, its lease, the view, its size, the
        slot's address)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if h.lent:
            h.sweep_leases()
        n = self._element_size if size is None else self._check_message_size(size, "size")
        if timeout is not None and block:
            _check_timeout(timeout)
        status, address, token, token_arg = h.write_begin(0)
        if status == _FULL and block:
            claim: tuple[int, int, object] = (0, 0, None)

            def attempt(timeout_ns: int) -> int:
                nonlocal claim
                status, address, token, token_arg = h.write_begin(timeout_ns)
                claim = (address, token, token_arg)
                return status

            status = self._retry(h, attempt, _FULL, timeout)
            address, token, token_arg = claim
        if status != _OK:
            raise self._put_error(status)
        # Signals: until the view is made (whose memory gives the claim up when it dies), an
        # exception gives the claim up here (the first call of the except clause).
        lease = view = None
        try:
            lease = _ffi.Lease(h, token, write=True)
            view = memoryview(bytearray(n)) if _ffi.PYPY else h.lend(address, n, lease)
            return WriteSlot(view), lease, view, n, address
        except BaseException:
            if view is None:
                h.abort_write(token_arg)
                if lease is not None:
                    lease.finished = True
            raise

    def _publish_slot(
        self, slot: WriteSlot, lease: _ffi.Lease, view: memoryview, n: int, address: int
    ) -> None:
        """put_slot, leaving its block normally: publishes ``slot.length`` bytes.

        Signals: an exception that lands once the message is committed (it was put) is
        deferred to this handle's next call (see _pending); before that, nothing is put."""
        try:
            self._publish(slot, lease, view, n, address)
            slot.published = True
        except BaseException as exc:
            if lease.finished and lease.length is not None and lease.status == _OK:
                slot.published = True
                if self._pending is None:
                    self._pending = exc
                self._try_put = _put_stopped
                self._take = _take_stopped
                return
            if not lease.finished:
                lease.length = None  # abort once the memory is let go
            raise

    def _publish(
        self, slot: WriteSlot, lease: _ffi.Lease, view: memoryview, n: int, address: int
    ) -> None:
        length = slot.length
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= n:
            self._drop_slot(lease, view)
            raise InvalidArgumentError(
                f"slot.length={length!r} is not allowed: it must be an int in 0..{n} (the size of "
                f"slot.buffer); nothing was put"
            )
        if _ffi.PYPY:
            _ffi.lend(address, n)[:length] = view[:length]  # the one copy
            view.release()
            lease.length_arg = _ffi.u64_arg[length]
            lease.length = length
            lease.finish()
        else:
            lease.length_arg = _ffi.u64_arg[length]
            lease.length = length
            with contextlib.suppress(BufferError):
                view.release()  # the last use of the memory: lease.finish() commits now
            if not lease.finished:
                lease._h.sweep_leases()  # (a finalizer a signal interrupted: see there)
            if not lease.finished:
                lease.length = None  # abort once the memory is let go
                raise SlotInUseError(
                    f"Queue({self._name!r}).put_slot: the slot's memory is still used after the "
                    f"with block (by an object made from slot.buffer, e.g. a numpy array or a "
                    f"memoryview slice), so nothing was put; delete such objects inside the block"
                )
        if lease.status != _OK:
            raise self._put_error(lease.status)

    @staticmethod
    def _drop_slot(lease: _ffi.Lease, view: memoryview) -> None:
        """put_slot, leaving its block by an exception: nothing is put. The claim is aborted
        once the slot's memory has no user left: at once, or, if an object made from the view
        (a numpy array...) still uses it, when that object is gone (the slot must not go back
        to producers while it can still be written)."""
        with contextlib.suppress(BufferError):
            view.release()  # if that was the last use of the memory, the lease aborts now
        if _ffi.PYPY:  # the view is a copy there: the slot itself was never lent
            lease.finish()

    def get_slot(
        self, block: bool = True, timeout: float | None = None
    ) -> AbstractContextManager[memoryview]:
        """Takes the oldest message and lends it in place (zero-copy): ``with q.get_slot() as
        view:`` gives a read-only memoryview (format ``B``) of the message in its slot. The
        message has left the queue; its slot goes back to producers when the block ends. Waits
        for a message as :meth:`get` does (``Empty`` if none in time).

        ``view`` is released when the block ends: using it later raises ``ValueError``. An
        object made from it that is still alive then (``numpy.frombuffer(view)``, a memoryview
        slice) stays valid: the slot is given back only once the last such object is gone
        (producers that come round to that slot wait for it meanwhile, so do not keep them
        long). Copy what you want to keep (``bytes(view)``, ``array.copy()``).

        >>> import numpy as np
        >>> with Queue(element_size=64, capacity=2) as q:
        ...     q.put(np.arange(4, dtype=np.int32))
        ...     with q.get_slot() as view:
        ...         int(np.frombuffer(view, dtype=np.int32).sum())
        6

        On PyPy, which cannot tell when memory is no longer used, ``view`` is a copy of the
        message (one copy) and the slot goes back at once.
        """
        return _SlotReader(self, block, timeout)

    def _take_slot(self, block: bool, timeout: float | None) -> memoryview:
        """get_slot, entering its block: the read-only view of the message taken."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if timeout is not None and block:
            _check_timeout(timeout)
        if h.lent:
            h.sweep_leases()
        if self._pending is not None:
            self._raise_pending()
        h.collect_spare()
        if self._take is _take_stopped or h.kept or self._kept_msgs:
            return self._kept_slot(h, block, timeout)  # taken by an interrupted get: first
        view: memoryview | None = None

        def attempt(timeout_ns: int) -> int:
            nonlocal view
            status, view = h.read_lend(timeout_ns)
            return status

        try:
            status = attempt(0)
            if status == _EMPTY and block:
                status = self._retry(h, attempt, _EMPTY, timeout)
        except BaseException:
            if h.kept:
                self._take = _take_stopped  # the next get hands the kept message on
            raise
        if status == _ffi.ERR_BUSY:  # read_lend found an older message kept: that one first
            return self._kept_slot(h, block, timeout)
        if status != _OK or view is None:
            raise self._get_error(status)
        return view

    def _kept_slot(self, h: _ffi.Handle, block: bool, timeout: float | None) -> memoryview:
        """get_slot of a message an interrupted get kept: it comes before any in the queue."""
        self._drain_kept(h)
        km = self._kept_msgs
        if km:
            first = memoryview(km[0])
            del km[0]  # (no call between this and the return: no signal lands there)
            return first
        self._restore_take(h)
        return self._take_slot(block, timeout)

    def _check_message_size(self, size: object, what: str) -> int:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ArgumentTypeError(
                f"{what} must be an int in 0..{self._element_size} (the queue's element_size), "
                f"not {type(size).__name__} ({size!r})"
            )
        if size < 0:
            raise InvalidArgumentError(
                f"{what}={size} is not allowed: it must be in 0..{self._element_size} (the "
                f"queue's element_size)"
            )
        if size > self._element_size:
            raise self._too_big(size)
        return size
