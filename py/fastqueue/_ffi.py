"""The raw layer's handle: :class:`Handle` (one attached queue and its operations, each one or
two calls of the C library with arguments prepared ahead), :class:`Lease` (a zero-copy claim on
a slot), and :func:`create` / :func:`open_` / :func:`observe`, which make handles.

It stands on :mod:`fastqueue._library` (finding, loading and declaring the library, status
codes, buffers), whose public names it re-exports: the rest of the package talks to the C
library through this module alone (public face -> ``_ffi`` -> the C ABI). It knows nothing about
exceptions or queue semantics (``_errors`` and ``queue`` do).
"""

from __future__ import annotations

import ctypes
import functools
import sys
import weakref
from ctypes import (
    byref,
    c_uint64,
    c_void_p,
)
from typing import Any, Callable, Final

from ._ffibatch import BatchOps, _Batch, _Exact
from ._ffiheld import (
    _NO_TOKEN,
    Held,
    HeldOps,
    Lease,
    PutBlock,
    _fq_set_interruptible,
    done_cell,
    stopped_take_args,
    try_put_in,
    try_take_in,
)
from ._library import (
    _NOW,
    ABI_VERSION,
    EMPTY,
    ERR_BAD_SEGMENT,
    ERR_BUFFER,
    ERR_BUSY,
    ERR_CLOSED,
    ERR_EXISTS,
    ERR_INTERNAL,
    ERR_INVALID,
    ERR_NO_SPACE,
    ERR_NOT_FOUND,
    ERR_NOT_READY,
    ERR_NULL,
    ERR_OS,
    ERR_PERMISSION,
    ERR_TOO_BIG,
    ERR_TOO_MANY,
    ERR_VERSION,
    FULL,
    GET_COPY_LIMIT,
    INTERRUPTED,
    LIBRARY_ENV,
    MAGIC,
    NATIVE_DIR,
    NATIVE_PATTERNS,
    OK,
    PYPY,
    SHUTDOWN,
    STAT_NAMES,
    TEMP_PREFIX,
    TIMEOUT,
    TRY_BIAS,
    WAIT_READABLE,
    WAIT_WRITABLE,
    _arg_i64,
    _arg_ptr,
    _arg_u64,
    _declare,
    _fq_capacity,
    _fq_clone,
    _fq_close,
    _fq_create,
    _fq_join,
    _fq_live_participants,
    _fq_max_msg,
    _fq_observe,
    _fq_open,
    _fq_shutdown,
    _fq_size,
    _fq_stats,
    _fq_task_done,
    _fq_unlink_same,
    _fq_wait,
    _fq_wake,
    _get_now,
    _get_wait,
    _put_now,
    _put_wait,
    _read_begin_now,
    _read_begin_wait,
    _read_end_now,
    _try_get_now,
    _try_put_now,
    _u64_args,
    _voidpp,
    _write_abort_now,
    _write_begin_now,
    _write_begin_wait,
    _write_commit_now,
    abi_version,
    array_arg,
    as_c_buffer,
    c_order_bytes,
    copy_out,
    get_errno,
    layout_version,
    lend,
    library_path,
    memory_room,
    remove_leftover,
    segment_size,
    status_str,
    u64_arg,
    unlink,
    unlink_force,
    writable_buffer,
)
from ._library import _fq_noop as _fq_noop  # (perf/ reaches in here)
from ._library import _lib as _lib  # (perf/ reaches in here)
from ._library import _noop_now as _noop_now  # (perf/ reaches in here)

__all__ = [
    "ABI_VERSION",
    "EMPTY",
    "ERR_BAD_SEGMENT",
    "ERR_BUFFER",
    "ERR_BUSY",
    "ERR_CLOSED",
    "ERR_EXISTS",
    "ERR_INTERNAL",
    "ERR_INVALID",
    "ERR_NOT_FOUND",
    "ERR_NOT_READY",
    "ERR_NO_SPACE",
    "ERR_NULL",
    "ERR_OS",
    "ERR_PERMISSION",
    "ERR_TOO_BIG",
    "ERR_TOO_MANY",
    "ERR_VERSION",
    "FULL",
    "GET_COPY_LIMIT",
    "INTERRUPTED",
    "LIBRARY_ENV",
    "MAGIC",
    "NATIVE_DIR",
    "NATIVE_PATTERNS",
    "OK",
    "PYPY",
    "REDELIVER",
    "SHUTDOWN",
    "STAT_NAMES",
    "TEMP_PREFIX",
    "TIMEOUT",
    "TRY_BIAS",
    "WAIT_READABLE",
    "WAIT_WRITABLE",
    "Handle",
    "Held",
    "Lease",
    "PutBlock",
    "abi_version",
    "array_arg",
    "as_c_buffer",
    "c_order_bytes",
    "copy_out",
    "create",
    "done_cell",
    "get_errno",
    "layout_version",
    "lend",
    "library_path",
    "memory_room",
    "observe",
    "open_",
    "remove_leftover",
    "segment_size",
    "status_str",
    "stopped_take_args",
    "try_put_in",
    "try_take_in",
    "u64_arg",
    "unlink",
    "unlink_force",
    "writable_buffer",
]


#: A receive buffer, the c_uint64 that receives a message's length, the c_void_p and c_uint64
#: that receive a lent message's address and token, and the four as prepared arguments (byref).
_Scratch = tuple["ctypes.Array[ctypes.c_char]", c_uint64, c_void_p, c_uint64, Any, Any, Any, Any]


class Handle(BatchOps, HeldOps):
    """One attached fq_queue* and the per-handle objects its calls reuse.

    ``put`` and ``get`` are the hot path: the library is called with prepared arguments (see
    ``_declare_wire``), through the GIL-keeping loading when the call does not wait. The handle
    is freed by fq_close when this object is collected; the Python layer drops its last
    reference on close, so a call in flight on another thread (which holds a reference)
    finishes on a valid handle before it is freed.
    """

    __slots__ = (
        "__weakref__",
        "_arg",
        "_cap_arg",
        "_exact",
        "_free",
        "_held",
        "_lent_type",
        "_many",
        "_ptr",
        "_slot_type",
        "_spare",
        "abort_write",
        "capacity",
        "kept",
        "leases",
        "lent",
        "max_msg",
        "redeliver",
    )

    def __init__(self, ptr: c_void_p) -> None:
        self._ptr: c_void_p | None = ptr
        #: The handle as a prepared argument.
        self._arg: Any = _arg_ptr(ptr.value)
        #: Capacity in messages and largest message in bytes, read once from the segment.
        self.capacity: int = int(_fq_capacity(ptr))
        self.max_msg: int = int(_fq_max_msg(ptr))
        #: Acknowledged delivery (fq_flags & FQ_CREATE_REDELIVER) and its number of leases.
        self.redeliver: bool = bool(int(_fq_flags(ptr)) & REDELIVER)
        self.leases: int = int(_fq_lease_count(ptr))
        # Size of the receive buffers of get (a longer message is read in place).
        cap = min(self.max_msg, GET_COPY_LIMIT)
        self._cap_arg: Any = _arg_u64(cap)
        # A ctypes array type of max_msg bytes, to lay over a slot lent by the library.
        self._slot_type: Any = ctypes.c_char * self.max_msg
        # Its subclass for memory lent to the caller (made when first needed): instances take
        # attributes and weak references.
        self._lent_type: Any = None
        # Pool of receive buffers (see _Scratch). list.pop()/append() are atomic, so threads
        # sharing this handle never share a buffer; a single thread reuses one entry forever.
        self._free: list[_Scratch] = []
        # The same for get_many.
        self._many: list[_Batch] = []
        # And for get_many_exact: (itemsize, max_items) -> pool of _Exact.
        self._exact: dict[tuple[int, int], list[_Exact]] = {}
        # Pool of Held receive buffers for the gets that an interrupt must not lose a message to
        # (see Held): a thread pops one, uses it, and appends it back.
        self._held: list[Held] = []
        #: Leases whose memory is lent (token -> lease), until finished (see sweep_leases).
        self.lent: dict[int, Lease] = {}
        #: A Held of max_msg bytes made ready before a zero-copy read claims a slot, into
        #: which an interrupted read keeps its message (fq_read_keep); None until needed.
        self._spare: Held | None = None
        #: fq_write_abort with this handle bound: ``abort_write(token_arg)`` with the token as
        #: a prepared argument (:func:`u64_arg`), one call with nothing before it in Python
        #: (for except clauses that a second signal must not interrupt before the abort).
        self.abort_write: Callable[[Any], int] = functools.partial(_write_abort_now, self._arg)
        #: Receive buffers (Held, batches) whose messages a get took and could not hand to its
        #: caller before a signal handler raised: their word keeps them until the queue's next
        #: get (QueueCore._drain_kept) or close hands them on.
        self.kept: list[Any] = []
        # Blocked calls end on a signal (FQ_INTERRUPTED), so that Python's handlers run at once.
        _fq_set_interruptible(ptr, 1)

    def put(self, data: object, n: int, timeout_ns: int) -> int:
        """fq_put of ``n`` bytes at ``data`` (bytes, None for n = 0, or what
        :func:`as_c_buffer` made); returns the status. Keeps the GIL when timeout_ns is 0."""
        if timeout_ns == 0:
            return _put_now(self._arg, data, _u64_args[n], _NOW)  # type: ignore[no-any-return]
        return _put_wait(self._arg, data, _u64_args[n], _arg_i64(timeout_ns))  # type: ignore[no-any-return]

    def get(self, timeout_ns: int) -> bytes | int:
        """One get: the message as bytes, or the status (EMPTY, or an error) as an int. Keeps
        the GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        buf, length, _, _, buf_arg, len_arg, _, _ = scratch
        if timeout_ns == 0:
            status = _get_now(self._arg, buf_arg, self._cap_arg, len_arg, _NOW)
        else:
            status = _get_wait(self._arg, buf_arg, self._cap_arg, len_arg, _arg_i64(timeout_ns))
        if status == OK:
            # The one copy out of the receive buffer: slicing a c_char array makes a bytes
            # object (typeshed says list).
            data: bytes | int = buf[: length.value]  # type: ignore[assignment]
        elif status == ERR_BUFFER:  # longer than the receive buffer (and than GET_COPY_LIMIT)
            data = self._get_in_place(scratch)
        else:
            data = int(status)
        free.append(scratch)
        return data

    def bind_put(self) -> Callable[[bytes, Any], int]:
        """fq_try_put with this handle bound, for the hot path: ``f(data, u64_arg[len(data)])``
        with ``data`` bytes; returns the status, never waits, keeps the GIL. The function keeps
        this handle (and so the library handle) alive while anyone holds it."""
        bound = functools.partial(_try_put_now, self._arg)
        bound.handle = self  # type: ignore[attr-defined]
        return bound

    def bind_get(self) -> tuple[Any, Callable[[], int]]:
        """(receive buffer, fq_try_get into it with this handle bound): ``f()`` returns the
        length of the message now in the buffer (slice the buffer to get it as bytes), or
        ``status - TRY_BIAS`` (nothing taken; ERR_BUFFER for one longer than the buffer, which
        holds min(max_msg, GET_COPY_LIMIT) bytes). Never waits, keeps the GIL, and keeps this
        handle alive while anyone holds it. One pair serves one thread at a time."""
        buf = ctypes.create_string_buffer(min(self.max_msg, GET_COPY_LIMIT))
        bound = functools.partial(_try_get_now, self._arg, byref(buf), self._cap_arg)
        bound.handle = self  # type: ignore[attr-defined]
        return buf, bound

    def get_in_place(self) -> bytes | int:
        """Takes the next message (without waiting) with one copy, straight from its slot: for
        a message longer than the receive buffers. The message, or the status as an int."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        out = self._get_in_place(scratch)
        free.append(scratch)
        return out

    def _get_in_place(self, scratch: _Scratch) -> bytes | int:
        """Takes the next message (without waiting) with one copy, from its slot."""
        _, length, address, token, _, len_arg, address_arg, token_arg = scratch
        status = _read_begin_now(self._arg, address_arg, len_arg, token_arg, _NOW)
        if status != OK:
            return int(status)
        try:
            data: bytes = self._slot_type.from_address(address.value)[: length.value]
            return data
        finally:
            _read_end_now(self._arg, _arg_u64(token.value))

    def try_get_into(self, buf_arg: object, cap: int) -> int:
        """fq_try_get into the caller's memory (``buf_arg`` from :func:`writable_buffer`,
        ``cap`` bytes): the message's length, or ``status - TRY_BIAS``. Never waits, keeps the
        GIL."""
        return _try_get_now(self._arg, buf_arg, _u64_args[cap])  # type: ignore[no-any-return]

    def get_into(self, buf_arg: object, cap: int, timeout_ns: int) -> tuple[int, int]:
        """fq_get into the caller's memory (``buf_arg`` from :func:`writable_buffer`, ``cap``
        bytes): (status, the message's length; on ERR_BUFFER the length needed). Keeps the GIL
        when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        length, len_arg = scratch[1], scratch[5]
        if timeout_ns == 0:
            status = _get_now(self._arg, buf_arg, _u64_args[cap], len_arg, _NOW)
        else:
            status = _get_wait(self._arg, buf_arg, _u64_args[cap], len_arg, _arg_i64(timeout_ns))
        n = length.value
        free.append(scratch)
        return int(status), n

    def lend(self, address: int, n: int, lease: Lease) -> memoryview:
        """A writable memoryview (format ``B``) of the ``n`` bytes at ``address`` in this
        handle's mapping (a slot claimed as ``lease``). ``lease.finish()`` runs as soon as the
        memory has no user left: the view and every view or object made from it gone or
        released (with CPython's reference counting, at once). Until then the memory keeps this
        handle, and so the mapping, alive: closing the queue meanwhile unmaps nothing."""
        if self._lent_type is None:
            self._lent_type = type("LentSlot", (self._slot_type,), {"__del__": _finish_lease})
        memory = self._lent_type.from_address(address)
        memory.handle = self
        memory.lease = lease
        lease.memory = weakref.ref(memory)
        self.lent[lease._token] = lease  # (see sweep_leases)
        return memoryview(memory).cast("B")[:n]

    def _new_scratch(self) -> _Scratch:
        buf = ctypes.create_string_buffer(min(self.max_msg, GET_COPY_LIMIT))
        length, address, token = c_uint64(0), c_void_p(), c_uint64(0)
        return buf, length, address, token, byref(buf), byref(length), byref(address), byref(token)

    def unlink_same(self, name: bytes) -> int:
        """fq_unlink_same: removes ``name`` only if it still names this handle's segment (not a
        later queue that took the name); returns the status (ERR_NOT_FOUND if it does not)."""
        return int(_fq_unlink_same(self._ptr, name))

    def size(self) -> int:
        """Approximate number of queued messages."""
        return int(_fq_size(self._ptr))

    def stats(self) -> tuple[int, ...]:
        """The segment's counters (fq_stats), in STAT_NAMES order."""
        out = (c_uint64 * len(STAT_NAMES))()
        _fq_stats(self._ptr, out, len(STAT_NAMES))
        return tuple(int(v) for v in out)

    def shutdown(self, immediate: bool) -> int:
        """fq_shutdown; returns the status."""
        return int(_fq_shutdown(self._ptr, 1 if immediate else 0))

    def task_done(self, n: int) -> int:
        """fq_task_done; returns the status."""
        return int(_fq_task_done(self._ptr, n))

    def join(self, timeout_ns: int) -> int:
        """fq_join; returns the status (OK or TIMEOUT)."""
        return int(_fq_join(self._ptr, timeout_ns))

    def live_participants(self) -> int:
        """Processes attached whose liveness lock is held."""
        return int(_fq_live_participants(self._ptr))

    def wait(self, what: int, timeout_ns: int) -> int:
        """fq_wait (WAIT_READABLE / WAIT_WRITABLE): OK, TIMEOUT, SHUTDOWN or an error status.
        Takes and claims nothing."""
        return int(_fq_wait(self._ptr, what, timeout_ns))

    def wake(self, what: int) -> int:
        """fq_wake (WAIT_READABLE / WAIT_WRITABLE): passes on the wake-up a wait that returned
        OK may have used, for a caller that will not take or put after all. Returns OK."""
        return int(_fq_wake(self._ptr, what))

    def write_begin(self, timeout_ns: int) -> tuple[int, int, int, Any]:
        """fq_write_begin: (status, address of the lent slot's max_msg bytes, token, the token
        as a prepared argument for :attr:`abort_write`). Keeps the GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        _, _, address, token, _, _, address_arg, token_arg = scratch
        # Signals: the library writes the token only when it claimed a slot. An exception from a
        # signal handler that lands on the way back gives the claim up (before the next call
        # no second signal can land: the abort is the first call of the except clause).
        token.value = _NO_TOKEN
        claimed = _NO_TOKEN
        try:
            if timeout_ns == 0:
                status = _write_begin_now(self._arg, address_arg, token_arg, _NOW)
            else:
                status = _write_begin_wait(self._arg, address_arg, token_arg, _arg_i64(timeout_ns))
            claimed = token.value  # (the scratch may be another thread's once appended)
            out = int(status), address.value or 0, claimed, _arg_u64(claimed)
            free.append(scratch)
            return out
        except BaseException:
            # The abort is the first call here, its arguments ready (the token cell passes its
            # value): no second signal can land before it.
            if claimed != _NO_TOKEN or token.value != _NO_TOKEN:
                _write_abort_now(self._arg, token)
            raise

    def write_commit(self, token: int, n: int) -> int:
        """fq_write_commit: publishes the claimed slot as a message of ``n`` bytes."""
        return int(_write_commit_now(self._arg, _arg_u64(token), _u64_args[n]))

    def write_abort(self, token: int) -> int:
        """fq_write_abort: gives the claimed slot up (consumers skip it)."""
        return int(_write_abort_now(self._arg, _arg_u64(token)))

    def read_begin(self, timeout_ns: int) -> tuple[int, int, int, int]:
        """fq_read_begin: (status, address of the lent message, its length, token). Keeps the
        GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        _, length, address, token, _, len_arg, address_arg, token_arg = scratch
        if timeout_ns == 0:
            status = _read_begin_now(self._arg, address_arg, len_arg, token_arg, _NOW)
        else:
            status = _read_begin_wait(
                self._arg, address_arg, len_arg, token_arg, _arg_i64(timeout_ns)
            )
        out = int(status), address.value or 0, length.value, token.value
        free.append(scratch)
        return out

    def read_end(self, token: int) -> int:
        """fq_read_end: returns the slot of a zero-copy read to producers."""
        return int(_read_end_now(self._arg, _arg_u64(token)))

    def reattach_after_fork(self) -> int:
        """In a child after fork(): switch to a handle of this process's own (fq_clone), so that
        crash recovery can tell the child from the parent, and close the inherited one (which
        never disturbs the parent). Returns the status: if cloning fails, nothing changed, and
        the caller must not use the inherited handle (it is the parent's participant)."""
        old = self._ptr
        if old is None:
            return ERR_CLOSED
        new = c_void_p()
        status = int(_fq_clone(old, new))
        if status != OK:
            return status
        self._ptr = new
        self._arg = _arg_ptr(new.value)
        self.abort_write = functools.partial(_write_abort_now, self._arg)
        _fq_set_interruptible(new, 1)
        self._held = []
        self.kept = []  # (the parent's: its own to hand on, not the child's)
        # The batch buffers carry calls bound to the inherited handle, which is closed below:
        # drop them (the child has one thread, so nothing uses them meanwhile).
        self._many = []
        self._exact = {}
        _fq_close(old)
        return OK

    def __del__(self, _close: Any = _fq_close) -> None:
        # Default argument: still bound at interpreter shutdown, when module globals are None.
        ptr = self._ptr
        if ptr is not None:
            self._ptr = None
            _close(ptr)


def create(name: bytes, max_msg: int, capacity: int, mode: int) -> tuple[int, Handle | None]:
    """fq_create; returns (status, handle or None)."""
    ptr = c_void_p()
    status = int(_fq_create(name, max_msg, capacity, mode, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


#: fq_create_ex's flag for acknowledged delivery (FQ_CREATE_REDELIVER).
REDELIVER: Final = 1

# Acknowledged delivery's functions of fastqueue.h, declared here (the raw layer) with
# _library's _declare, beside the only code that calls them.
_fq_create_ex = _declare(
    "fq_create_ex", ctypes.c_int32, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64,
    ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64, _voidpp,
)  # fmt: skip
_fq_flags = _declare("fq_flags", ctypes.c_uint32, c_void_p)
_fq_lease_count = _declare("fq_lease_count", ctypes.c_uint64, c_void_p)


def create_ex(
    name: bytes, max_msg: int, capacity: int, mode: int, flags: int, leases: int
) -> tuple[int, Handle | None]:
    """fq_create_ex; returns (status, handle or None)."""
    ptr = c_void_p()
    status = int(_fq_create_ex(name, max_msg, capacity, mode, flags, leases, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def observe(name: bytes) -> tuple[int, Handle | None]:
    """fq_observe (sizes, stats and liveness only; not counted as a user); (status, handle)."""
    ptr = c_void_p()
    status = int(_fq_observe(name, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def open_(name: bytes) -> tuple[int, Handle | None]:
    """fq_open; returns (status, handle or None)."""
    ptr = c_void_p()
    status = int(_fq_open(name, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def _finish_lease(memory: Any, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
    """``__del__`` of the memory :meth:`Handle.lend` lends: its lease finishes when the last
    user of the memory is gone (with CPython's reference counting, at once; cheaper than a
    weakref.finalize per lend: perf/, zero-copy put+get of 8 B 7.7 -> 6.2 us). Memory still
    lent when the interpreter shuts down may be collected after the module's globals: its
    claim is then released by the library when the handle closes (or, if the process just
    ends, recovered by the others), so an error there is not reported."""
    try:
        memory.lease.finish()
    except AttributeError:  # (lend was interrupted before it gave the memory its lease)
        pass
    except Exception:
        if not _finalizing():
            raise
