"""The raw layer's part for signal safety: the calls and receive buffers that let a get or put
interrupted by an exception from a Python signal handler lose, duplicate and hold nothing.

CPython runs a pending signal handler at its *check points*: after a call returns (the result
is then dropped if the handler raises), at a backward jump, as a Python function starts; not
between other instructions, and not as an inlined Python-to-Python call returns (3.11+). So:

* a get takes into a receive buffer with a *held word* (:class:`Held`, fq_take / fq_take_many /
  fq_take_many_exact): the word describes the message until the caller stores -1 right before
  it returns; an ``except`` clause that finds it set marks it *kept* (a single store), and the
  next take into that buffer hands the same message over again;
* a put notes whether it put (fq_put_noted's flag): an exception that lands after the put is
  deferred to the handle's next call instead of raised (QueueCore._pending);
* a zero-copy claim interrupted before its caller has it is given up (writes: fq_write_abort)
  or kept (reads: fq_read_keep), by the first call of the ``except`` clause, its arguments
  prepared beforehand, so that no second signal can land before it; a lease's finish makes its
  library call the same way, and leases whose finalizer a signal interrupted are swept.

The library's blocking calls return FQ_INTERRUPTED when a signal interrupts their sleep (the
handle is made interruptible when opened), so that a handler runs at once, nothing taken.

The hot paths of Queue.get / put call fq_try_take_in / fq_try_put_in: the same protocols, with
the handle, sizes, word and flag in one block of memory per queue (:class:`Held`'s block,
:class:`PutBlock`), so that a get passes one prepared argument and a put three (ctypes' cost
grows with each argument: ~370 instructions; 8b9e5f9's untimed hot path passed three each).

On the held word's compare-and-swap (core/src/held.rs): on CPython the hot calls go through
the PyDLL, which keeps the GIL, so two threads are never inside C with one word at once and a
load and a store would do; on PyPy the calls release the GIL, two threads sharing a handle can
be there together, and the CAS is what makes one of them the buffer's only user (the other
gets FQ_ERR_BUSY). Uncontended it costs a few cycles; it stays.
"""

from __future__ import annotations

import ctypes
import functools
from array import array
from ctypes import POINTER, byref, c_int32, c_int64, c_uint8, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Final

from ._library import (
    _NOW,
    ERR_BUSY,
    GET_COPY_LIMIT,
    OK,
    PYPY,
    TRY_BIAS,
    _arg_i64,
    _arg_u64,
    _declare,
    _declare_wire,
    _lib,
    _lib_nogil,
    _read_begin_now,
    _read_begin_wait,
    _read_end_now,
    _u64_args,
    _u64p,
    _write_abort_now,
    _write_commit_now,
    lend,
)

#: A :class:`~fastqueue._ffi.Handle` (not imported here: _ffi stands on this module).
Handle = Any

__all__ = [
    "Held",
    "HeldOps",
    "Lease",
    "PutBlock",
    "done_cell",
    "stopped_take_args",
    "try_put_in",
    "try_take_in",
]

# Declarations (fastqueue.h), with argtypes, as in _library:
_fq_set_interruptible = _declare("fq_set_interruptible", c_int32, c_void_p, c_int32)
_fq_take = _declare("fq_take", c_int64, c_void_p, c_void_p, c_uint64, POINTER(c_int64), c_int64)
_fq_try_take = _declare("fq_try_take", c_int64, c_void_p, c_void_p, c_uint64, POINTER(c_int64))
_fq_put_noted = _declare(
    "fq_put_noted", c_int32, c_void_p, c_void_p, c_uint64, c_int64, POINTER(c_uint8)
)
_fq_try_put_noted = _declare(
    "fq_try_put_noted", c_int32, c_void_p, POINTER(c_uint8), c_void_p, c_uint64
)
_fq_read_keep = _declare(
    "fq_read_keep", c_int32, c_void_p, c_uint64, c_uint64, c_void_p, c_uint64, POINTER(c_int64)
)
_fq_take_many = _declare(
    "fq_take_many",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    _u64p,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)
_fq_take_many_exact = _declare(
    "fq_take_many_exact",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)

# The same, called with prepared arguments (see _library's hot path notes):
# A get / put that an interrupt cannot lose a message to (fq_take's held word, fq_put_noted's
# flag), never waiting and waiting:
_take_now = _declare_wire(
    _lib_nogil, "fq_take", c_int64, c_void_p, c_void_p, c_uint64, POINTER(c_int64), c_int64
)
_try_take_now = _declare_wire(
    _lib_nogil, "fq_try_take", c_int64, c_void_p, c_void_p, c_uint64, POINTER(c_int64)
)
_take_wait = _declare_wire(
    _lib, "fq_take", c_int64, c_void_p, c_void_p, c_uint64, POINTER(c_int64), c_int64
)
_read_keep_now = _declare_wire(
    _lib_nogil,
    "fq_read_keep",
    c_int32,
    c_void_p,
    c_uint64,
    c_uint64,
    c_void_p,
    c_uint64,
    POINTER(c_int64),
)
_take_many_now = _declare_wire(
    _lib_nogil,
    "fq_take_many",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    _u64p,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)
_take_many_wait = _declare_wire(
    _lib,
    "fq_take_many",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    _u64p,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)
_take_many_exact_now = _declare_wire(
    _lib_nogil,
    "fq_take_many_exact",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)
_take_many_exact_wait = _declare_wire(
    _lib,
    "fq_take_many_exact",
    c_int64,
    c_void_p,
    c_void_p,
    c_uint64,
    c_uint64,
    POINTER(c_int64),
    c_int64,
)
# One-argument get and three-argument put of the hot paths (blocks of their own: _hot_block):
_fq_try_take_in = _declare("fq_try_take_in", c_int64, c_void_p)
_fq_try_put_in = _declare("fq_try_put_in", c_int32, c_void_p, c_void_p, c_uint64)
try_take_in: Final = _declare_wire(_lib_nogil, "fq_try_take_in", c_int64, c_void_p)
try_put_in: Final = _declare_wire(
    _lib_nogil, "fq_try_put_in", c_int32, c_void_p, c_void_p, c_uint64
)
_put_noted_now = _declare_wire(
    _lib_nogil, "fq_put_noted", c_int32, c_void_p, c_void_p, c_uint64, c_int64, POINTER(c_uint8)
)
_try_put_noted_now = _declare_wire(
    _lib_nogil, "fq_try_put_noted", c_int32, c_void_p, POINTER(c_uint8), c_void_p, c_uint64
)
_put_noted_wait = _declare_wire(
    _lib, "fq_put_noted", c_int32, c_void_p, c_void_p, c_uint64, c_int64, POINTER(c_uint8)
)


class Lease:
    """A zero-copy claim on one slot of a queue (a write from fq_write_begin, or a read from
    fq_read_begin) and the memory of the slot lent with it by :meth:`Handle.lend`.

    The claim is finished exactly once, by :meth:`finish`: a write is committed as a message of
    ``length`` bytes (aborted if ``length`` is None), a read is ended. :meth:`Handle.lend` calls
    it when the lent memory has no user left, i.e. when every memoryview of it (and anything
    made from one, such as a numpy array) is gone or released; the slot is never given back
    while its memory can still be read or written.
    """

    __slots__ = (
        "__weakref__",
        "_h",
        "_targ",
        "_token",
        "_write",
        "finished",
        "handed",
        "length",
        "length_arg",
        "memory",
        "status",
    )

    def __init__(self, h: Handle, token: int, write: bool, length: int = 0) -> None:
        self._h = h
        self._token = token
        #: A read: whether its memory was handed to the caller. Until then finishing keeps
        #: the message (fq_read_keep into the handle's spare Held) instead of ending the read:
        #: the memory's finalizer may run first when an exception unwinds Handle.read_lend.
        self.handed = write
        self.length_arg: Any = _u64_args[length] if not write else None
        #: The token as a prepared argument (finish makes its library call with nothing
        #: before it that a signal could interrupt).
        self._targ = _arg_u64(token)
        self._write = write
        #: Bytes to publish (writes); None aborts. Set length_arg (a prepared argument of the
        #: same value) with it.
        self.length: int | None = None
        #: A weak reference to the memory lent with it (see Handle.lend), if any.
        self.memory: Any = None
        self.finished = False
        #: The status of the commit / abort / read_end, once finished.
        self.status = OK

    def finish(self) -> None:
        """Commits, aborts or ends the claim, once. Signals: the flag is set, then the library
        call is the first call made: an exception from a signal handler lands before the flag
        (nothing done: :meth:`Handle.sweep_leases` finishes it later) or after the call."""
        if self.finished:
            return
        self.finished = True
        h = self._h
        spare = h._spare
        if not self.handed and spare is not None:
            status = _read_keep_now(
                h._arg, self._targ, self.length_arg, spare.buf, spare.cap_arg, spare.word_arg
            )
            if status == OK:
                h._spare = None
                h.kept.append(spare)
        elif not self._write:
            status = _read_end_now(h._arg, self._targ)
        elif self.length is None or self.length_arg is None:
            status = _write_abort_now(h._arg, self._targ)
        else:
            status = _write_commit_now(h._arg, self._targ, self.length_arg)
        self.status = int(status)
        h.lent.pop(self._token, None)


#: No token: what a token cell holds until the library claims a slot (claims never use it).
_NO_TOKEN: Final = (1 << 64) - 1


#: Bytes before the receive buffer in a Held's block (fq_try_take_in): handle, size, word.
_HEADER: Final = 24
#: ctypes array types of the blocks of hot Helds, by size (a type of their own, so that an
#: instance can hold a reference to its handle; see _hot_block).
_block_types: dict[int, Any] = {}


def _hot_block(size: int, handle: Handle) -> Any:
    """A zeroed block of ``size`` bytes (c_char array: malloc-aligned) that keeps ``handle``
    alive while anything, such as a prepared argument in a call in flight, refers to it."""
    cls = _block_types.get(size)
    if cls is None:
        cls = type("_HotBlock", (ctypes.Array,), {"_type_": ctypes.c_char, "_length_": size})
        if len(_block_types) < 64:
            _block_types[size] = cls
    block = cls()
    block.handle = handle
    return block


class Held:
    """A receive buffer and its *held word* (fq_take): the word says whether the buffer holds a
    message handed over and not yet consumed, so that an exception from a signal handler that
    lands between the take and the use of the message cannot lose it.

    The protocol (see fastqueue.h, fq_take): ``take()`` returns the length n of the message now
    in ``buf`` (the word is then n) or ``status - TRY_BIAS``. The caller consumes the message
    (``buf[:n]``, and whatever it does with it), then stores -1 (:meth:`done`). If anything
    raises before that, it calls :meth:`keep` in its ``except`` clause: the word becomes
    -(n + 2) and the next take into this buffer hands the same message over again, taking
    nothing from the queue. Both are single stores (no call), so that a second signal cannot
    land inside them. One Held serves one thread at a time.

    A hot one (``keep_alive``, Queue.get's) has its memory in one block laid out for
    fq_try_take_in (handle, size, word, buffer), so that the hot path's get passes one prepared
    argument, ``take_args``: ``try_take_in(*take_args)`` does what ``take()`` does; its
    ``word`` is a memoryview (format ``q``) of the block's word. Others (``take_args`` None)
    have a buffer of their own and an array('q') word.
    """

    __slots__ = ("_args", "block", "buf", "cap", "cap_arg", "take", "take_args", "word", "word_arg")

    def __init__(self, h: Handle, size: int, keep_alive: bool = False) -> None:
        self.cap = size
        if keep_alive:
            # The hot path's: one block (fq_try_take_in's layout) that keeps h alive. Its
            # buffer is only ever copied out of (never lent: PyPy's views of it would not
            # keep the block alive, and it is 8-byte aligned only).
            self.block: Any = _hot_block(_HEADER + max(size, 1), h)
            ctypes.c_void_p.from_buffer(self.block, 0).value = h._ptr.value
            ctypes.c_uint64.from_buffer(self.block, 8).value = size
            cell: Any = ctypes.c_int64.from_buffer(self.block, 16)
            #: The held word, as something Python reads and writes with one subscript.
            self.word: Any = memoryview(self.block).cast("B")[16:_HEADER].cast("q")
            self.word[0] = -1
            self.buf: Any = (ctypes.c_char * max(size, 1)).from_buffer(self.block, _HEADER)
            #: The same as the arguments of try_take_in (see the class's doc).
            self.take_args: Any = (byref(self.block),)
        else:  # a receive buffer of its own (ObjectQueue lends it as a frame: malloc-aligned)
            self.block = None
            self.buf = ctypes.create_string_buffer(max(size, 1))
            self.word = array("q", [-1])
            cell = (ctypes.c_int64 * 1).from_buffer(self.word)
            self.take_args = None
        self._args = (byref(self.buf), _u64_args[size], byref(cell))
        #: The size and the held word as prepared arguments.
        self.cap_arg = self._args[1]
        self.word_arg = self._args[2]
        #: fq_take of this buffer that never waits: ``take()``.
        self.take: Callable[[], int] = functools.partial(
            _try_take_now, h._arg, self._args[0], self._args[1], self._args[2]
        )
        if keep_alive:  # for a Held used without the caller holding h (no cycle: not pooled)
            self.take.handle = h  # type: ignore[attr-defined]

    def handover(self) -> int:
        """``take()``, for a buffer that keeps a message: hands it over again (see
        QueueCore._drain_kept)."""
        return self.take()

    def extract(self, n: int) -> list[bytes]:
        """The message of ``n`` bytes a take left in the buffer, as a list of one."""
        return [self.buf[:n]]

    def take_upto(self, h: Handle, cap: int, timeout_ns: int) -> int:
        """fq_take of a message of at most ``cap`` (<= the buffer's size) bytes: as ``take()``
        (ERR_BUFFER leaves a longer one queued); waits (GIL released) if ``timeout_ns`` != 0."""
        a = self._args
        if timeout_ns == 0:
            return _take_now(h._arg, a[0], _u64_args[cap], a[2], _NOW)  # type: ignore[no-any-return]
        return _take_wait(h._arg, a[0], _u64_args[cap], a[2], _arg_i64(timeout_ns))  # type: ignore[no-any-return]

    def take_wait(self, h: Handle, timeout_ns: int) -> int:
        """fq_take waiting at most ``timeout_ns`` (GIL released): as ``take()``."""
        a = self._args
        return _take_wait(h._arg, a[0], a[1], a[2], _arg_i64(timeout_ns))  # type: ignore[no-any-return]


def stopped_take_args() -> tuple[Any]:
    """Arguments for try_take_in like a Held's ``take_args``, of a block with no handle: the
    call takes nothing and returns ERR_NULL (biased). For a hot path that must not be used."""
    block = ctypes.create_string_buffer(_HEADER + 8)
    ctypes.c_int64.from_buffer(block, 16).value = -1  # (the word: free; no handle, no size)
    return (byref(block),)


class _Anchor(ctypes.c_char):
    """The first byte of a put block held in a bytearray (see PutBlock): an instance can hold
    a reference to the block's handle."""


class PutBlock:
    """The block of fq_try_put_in for a handle (the handle, then a flag the call sets to 1 if
    it put): ``flag[8] = 0`` then ``try_put_in(arg, data, u64_arg[len(data)])``; afterwards
    ``flag[8]`` (one subscript) says whether that call put. The argument keeps the handle
    alive while it is referred to (a call in flight); a block made with None for the handle
    puts nothing (FQ_ERR_NULL).

    ``flag`` is the block itself where it can be a bytearray (CPython: 8-byte aligned, and its
    stores the cheapest), else a memoryview of ctypes memory (PyPy: a bytearray's data is not
    malloc-aligned there)."""

    __slots__ = ("arg", "flag")

    def __init__(self, h: Handle | None) -> None:
        ptr = h._ptr.value if h is not None and h._ptr is not None else None
        mem = bytearray(16)
        anchor = _Anchor.from_buffer(mem)
        if not PYPY and ctypes.addressof(anchor) % 8 == 0:
            anchor.handle = h  # type: ignore[attr-defined]
            ctypes.c_void_p.from_buffer(mem, 0).value = ptr
            self.arg: Any = byref(anchor)
            self.flag: Any = mem
        else:
            del anchor
            block = _hot_block(16, h)
            ctypes.c_void_p.from_buffer(block, 0).value = ptr
            self.arg = byref(block)
            self.flag = memoryview(block).cast("B")


def done_cell() -> tuple[array[int], Any]:
    """A one-byte flag fq_put_noted stores 1 in when it put, as (an array Python clears and
    reads with one subscript, the same memory as a prepared argument for the library)."""
    flag = array("B", [0])
    return flag, byref((ctypes.c_uint8 * 1).from_buffer(flag))


class HeldOps:
    """Handle's operations of this module (see :class:`~fastqueue._ffi.Handle`, which holds the
    state: ``_held``, ``kept``, ``lent``, ``_spare``)."""

    __slots__ = ()

    if TYPE_CHECKING:  # (Handle's slots)
        _arg: Any
        max_msg: int
        _held: list[Held]
        _spare: Held | None
        _free: list[Any]
        kept: list[Any]
        lent: dict[int, Lease]

        def _new_scratch(self) -> Any: ...

        def lend(self, address: int, n: int, lease: Lease) -> memoryview: ...

    def held(self, size: int | None = None, hot: bool = False) -> Held:
        """A Held receive buffer of ``size`` bytes (default: the hot path's, min(max_msg,
        GET_COPY_LIMIT)) from the pool, or a new one. Give it back with :meth:`give_held`.
        ``hot``: a new one whose ``take`` keeps this handle alive, for a caller that calls it
        without holding the handle (never give it back to the pool)."""
        default = min(self.max_msg, GET_COPY_LIMIT)
        if hot:
            return Held(self, default if size is None else size, keep_alive=True)
        if size is None or size <= default:
            pool = self._held
            try:
                held = pool.pop()
            except IndexError:
                return Held(self, default)
            # A get gives its buffer back to the pool *before* it stores the word free (so that
            # no signal can land between that store and its return): another thread may pop
            # it in between, its word still the giver's message. Leave such a one to the
            # giver (it is garbage once the giver returns) and take a new one; taking into it
            # would be refused (BUSY).
            if held.word[0] == -1:
                return held
            return Held(self, default)
        return Held(self, size)

    def give_held(self, held: Held) -> None:
        """Returns a Held taken with :meth:`held` to the pool (one of the default size)."""
        if held.cap == min(self.max_msg, GET_COPY_LIMIT):
            self._held.append(held)

    def get_big(self) -> list[bytes] | int:
        """Takes the next message (without waiting), however long, into a Held of max_msg
        bytes of its own: [the message], or the status as an int. Kept (see :attr:`kept`)
        if a signal handler raises before it is out."""
        held = Held(self, self.max_msg)
        try:
            n = held.take()
            if n >= 0:
                out = [held.buf[:n]]
                held.word[0] = -1
                return out
        except BaseException:
            w = held.word
            if w[0] >= 0:
                w[0] = -2 - w[0]
                self.kept.append(held)
            raise
        return n + TRY_BIAS

    def put_noted(self, data: object, n: int, timeout_ns: int, done: Any) -> int:
        """fq_put_noted: as :meth:`put`, storing 1 through ``done`` (a byref of a c_uint8) if
        the message went in."""
        if timeout_ns == 0:
            return _put_noted_now(self._arg, data, _u64_args[n], _NOW, done)  # type: ignore[no-any-return]
        return _put_noted_wait(self._arg, data, _u64_args[n], _arg_i64(timeout_ns), done)  # type: ignore[no-any-return]

    def bind_put_noted(self, done: Any) -> Callable[[bytes, Any], int]:
        """fq_try_put_noted with this handle and ``done`` (byref of a c_uint8) bound, for the
        hot path: ``f(data, u64_arg[len(data)])``; as :meth:`bind_put`, and stores 1 through
        ``done`` when it put."""
        bound = functools.partial(_try_put_noted_now, self._arg, done)
        bound.handle = self  # type: ignore[attr-defined]
        return bound

    def sweep_leases(self) -> None:
        """Finishes every lease whose lent memory is gone but whose finish did not run (a
        signal handler raised as the memory's finalizer began: the exception was ignored, and
        the claim would stay held)."""
        for token, lease in list(self.lent.items()):
            if lease.finished:
                self.lent.pop(token, None)
            elif lease.memory is not None and lease.memory() is None:
                lease.finish()

    def collect_spare(self) -> bool:
        """Whether the spare receive buffer holds a message kept into it by an interrupted
        finish (see :meth:`Lease.finish`); it is then moved to :attr:`kept`, which the next get
        hands on first."""
        spare = self._spare
        if spare is None or spare.word[0] == -1:
            return False
        self._spare = None  # type: ignore[misc]  # (Handle's slot)
        self.kept.append(spare)  # (no call between the store and this one)
        return True

    def read_lend(self, timeout_ns: int) -> tuple[int, memoryview | None]:
        """fq_read_begin, and the message lent as a read-only memoryview (see :meth:`lend`;
        on PyPy a copy, the slot given back at once): (OK, view), or (status, None).

        Signals: an exception from a signal handler that lands after the claim and before the
        view is returned keeps the message (fq_read_keep, the first call of the except clause,
        its arguments ready: the scratch's cells pass their values) in a Held put in
        :attr:`kept`, and gives the slot back: the queue's next get hands the message on."""
        if self.collect_spare():  # an older message, kept by a finish: it goes first
            return ERR_BUSY, None
        spare = self._spare
        if spare is None:
            spare = self._spare = Held(self, self.max_msg)  # type: ignore[misc]
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        _, length, address, token, _, len_arg, address_arg, token_arg = scratch
        token.value = _NO_TOKEN
        try:
            if timeout_ns == 0:
                status = _read_begin_now(self._arg, address_arg, len_arg, token_arg, _NOW)
            else:
                status = _read_begin_wait(
                    self._arg, address_arg, len_arg, token_arg, _arg_i64(timeout_ns)
                )
            if status != OK:
                free.append(scratch)
                return int(status), None
            lease = Lease(self, token.value, write=False, length=length.value)
            if PYPY:
                view = memoryview(bytes(lend(address.value or 0, length.value)))
                lease.handed = True
                lease.finish()
            else:
                view = self.lend(address.value or 0, length.value, lease).toreadonly()
            free.append(scratch)
            lease.handed = True  # (no call between this and the return)
            return OK, view
        except BaseException:
            kept = token.value != _NO_TOKEN and (
                _read_keep_now(self._arg, token, length, spare.buf, spare.cap_arg, spare.word_arg)
                == OK
            )
            if kept:
                self._spare = None  # type: ignore[misc]
                self.kept.append(spare)
            raise
