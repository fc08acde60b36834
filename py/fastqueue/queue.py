"""The public face of fastqueue: :class:`Queue`, a bounded multi-producer / multi-consumer queue of
byte messages in a named POSIX shared-memory segment, shaped like :class:`queue.Queue`.

Any process on the machine attaches to a queue by its name; a queue object passed to a child
process (spawn or fork, as a ``Process`` argument or through a pipe) arrives attached to the same
queue.

>>> import fastqueue
>>> with fastqueue.Queue(element_size=64, capacity=8) as q:
...     q.put(b"hello")
...     q.put(bytearray(b"world"))
...     with fastqueue.Queue(q.name, create=False) as other:  # a second handle, same queue
...         print(other.qsize(), other.get(), q.get())
2 b'hello' b'world'

This module never touches ctypes: every library call goes through ``fastqueue._ffi``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import math
import numbers
import operator
import os
import secrets
import time
import weakref
from array import array
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from . import _aio, _ffi
from ._errors import (
    Empty,
    Full,
    MessageTooBigError,
    error_from_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from typing_extensions import Buffer, Self

__all__ = ["Queue", "WriteSlot", "unlink"]

#: Longest single wait inside the library. A blocked put/get returns to Python this often, so
#: Ctrl-C (KeyboardInterrupt) and other signal handlers run within about this long. Each return
#: costs a little CPU (the library spins briefly before it sleeps again): a consumer blocked 2 s
#: burnt ~5 ms with 50 ms slices, ~2.7 ms with 100 ms, ~1.4 ms with 200 ms (perf/, same run).
_SLICE_NS: Final = 100_000_000

_T = TypeVar("_T")
#: Longest name the library takes, in bytes (fastqueue.h, "Names").
_MAX_NAME: Final = 250
#: Largest value of the library's uint64 size parameters.
_U64_MAX: Final = 2**64 - 1

_OK: Final = _ffi.OK
#: Types whose len() is their size in bytes: put_many joins a batch of them in one call.
_BYTES_TYPES: Final = frozenset((bytes, bytearray))
_EMPTY: Final = _ffi.EMPTY
_FULL: Final = _ffi.FULL
_TRY_BIAS: Final = _ffi.TRY_BIAS
#: What the closed queue's hot-path put returns: any status but OK.
_CLOSED: Final = -(1 << 40)
#: A closed queue's receive buffers: none (never appended to: the slow path raises first).
_NO_BUFFERS: Final[list[tuple[Any, Any]]] = []
#: A closed queue's bound packed puts: none (never written to: the slow path raises first).
_NO_PACKED: Final[dict[tuple[int, int], Any]] = {}
#: The same for get_many(..., itemsize=): never written to.
_NO_EXACT: Final[dict[tuple[int, int], list[Any]]] = {}
#: put_many(..., itemsize=): (itemsize >= 1, a byte count that it divides) -> the lengths of
#: the messages (all itemsize), and the same as a prepared argument (never mutated: the
#: library only reads them).
_packed_cuts: Final[dict[tuple[int, int], tuple[array[int], Any]]] = {}
_u64_arg: Final = _ffi.u64_arg

# Every open Queue of this process, so that a forked child can attach handles of its own.
_live: weakref.WeakSet[Queue] = weakref.WeakSet()


def _check_name(name: object) -> tuple[str, bytes]:
    """Validates a queue name; returns (name without leading '/', its bytes)."""
    if not isinstance(name, str):
        raise TypeError(f"queue name must be a str, not {type(name).__name__}")
    bare = name[1:] if name.startswith("/") else name
    if not bare:
        raise ValueError("queue name must not be empty")
    if "/" in bare or "\0" in bare:
        raise ValueError(f"queue name {name!r} must not contain '/' (after a leading one) or NUL")
    raw = os.fsencode(bare)
    if len(raw) > _MAX_NAME:
        raise ValueError(f"queue name is {len(raw)} bytes long; at most {_MAX_NAME} are allowed")
    return bare, raw


def _check_size(value: object, what: str) -> int:
    """Validates element_size / capacity: an int (not bool) in 1..2**64-1."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if not 1 <= n <= _U64_MAX:
        raise ValueError(f"{what} must be at least 1 (and below 2**64), got {n}")
    return n


def _check_timeout(timeout: float) -> float:
    """Validates a timeout in seconds; returns it as a float (inf for 'forever')."""
    if isinstance(timeout, (str, bytes)) or not isinstance(timeout, numbers.Real):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        )
    t = float(timeout)
    if not t >= 0.0:  # also rejects NaN
        raise ValueError(
            f"timeout must be a non-negative number of seconds or None, got {timeout!r}"
        )
    return t


def _slice(remaining: float) -> int:
    """Nanoseconds to wait in the next library call: the rest of the timeout, at most one slice."""
    if remaining * 1e9 >= _SLICE_NS:
        return _SLICE_NS
    return max(1, math.ceil(remaining * 1e9))


class WriteSlot:
    """What ``with q.put_slot() as slot:`` gives (see :meth:`Queue.put_slot`): ``buffer`` is a
    writable memoryview (format ``B``) of a free slot of the queue, ``length`` the number of its
    first bytes that form the message when the block ends (initially ``len(buffer)``)."""

    __slots__ = ("buffer", "length")

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.length = len(buffer)

    def __repr__(self) -> str:
        return f"<fastqueue.WriteSlot length={self.length}>"


class _SlotWriter:
    """The context manager :meth:`Queue.put_slot` returns: claims the slot on entering,
    publishes it on leaving normally, gives it up on leaving by an exception. (A class rather
    than a generator: perf/, zero-copy put+get of 8 B 6.2 -> 5 us.)"""

    __slots__ = ("_args", "_held", "_q")

    def __init__(self, q: Queue, size: int | None, block: bool, timeout: float | None) -> None:
        self._q = q
        self._args = (size, block, timeout)
        self._held: tuple[WriteSlot, _ffi.Lease, memoryview, int, int] | None = None

    def __enter__(self) -> WriteSlot:
        if self._held is not None:
            raise RuntimeError("a put_slot() block cannot be entered twice")
        self._held = self._q._claim_slot(*self._args)
        return self._held[0]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if exc_type is not None:
            self._q._drop_slot(held[1], held[2])
            return
        self._q._publish_slot(*held)


class _SlotReader:
    """The context manager :meth:`Queue.get_slot` returns: takes the message on entering,
    releases the view on leaving (the slot goes back once nothing made from it is left)."""

    __slots__ = ("_args", "_q", "_view")

    def __init__(self, q: Queue, block: bool, timeout: float | None) -> None:
        self._q = q
        self._args = (block, timeout)
        self._view: memoryview | None = None

    def __enter__(self) -> memoryview:
        if self._view is not None:
            raise RuntimeError("a get_slot() block cannot be entered twice")
        self._view = self._q._take_slot(*self._args)
        return self._view

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        view, self._view = self._view, None
        if view is not None:
            with contextlib.suppress(BufferError):
                view.release()  # if nothing made from it is left, the slot goes back now


class Queue(_aio.AsyncMixin):
    """A bounded MPMC queue of byte messages in the shared-memory segment ``/dev/shm/<name>``.

    ``Queue(name=None, element_size=None, capacity=None, create=True, *, mode=0o600)``

    With ``create=True`` (the default) a new queue is made that holds up to ``capacity`` messages
    of 0..``element_size`` bytes each (both are ints >= 1; capacity need not be a power of two).
    ``name=None`` picks a unique name (see :attr:`name`). The segment gets permission bits
    ``mode``. This handle *owns* the name: closing or collecting it removes the name (processes
    still attached keep working). Raises ``FileExistsError`` if the name is taken.

    With ``create=False`` the existing queue ``name`` is attached and its sizes read from the
    segment; ``element_size`` / ``capacity``, if given, must match it (else ``ValueError``).
    Raises ``FileNotFoundError`` if there is no such queue and :class:`~fastqueue.SegmentError`
    if the segment is not a valid queue. Attached handles never remove the name.

    Sizes must be ints: a bool, float or other non-integer raises ``TypeError``; a missing size
    (with ``create=True``) or one below 1 raises ``ValueError``. Nothing is created when an
    argument is rejected.

    >>> q = Queue(element_size=16, capacity=3)
    >>> q.maxsize, q.element_size, q.empty()
    (3, 16, True)
    >>> q.put(b"abc"); q.put_nowait(b""); len(q)
    2
    >>> q.get(), q.get_nowait()
    (b'abc', b'')
    >>> q.get(timeout=0.01)
    Traceback (most recent call last):
    ...
    fastqueue.Empty
    >>> q.close()
    """

    # Class-level defaults, so that __del__ and __repr__ work on a half-constructed object.
    _h: _ffi.Handle | None = None
    _name: str = "?"
    _raw: bytes = b""
    _element_size: int = 0
    _maxsize: int = 0
    # pid of the process that created the segment with this handle; 0 if attached.
    _owner_pid: int = 0
    _unlinked: bool = False
    # The hot path's bound library calls (see _bind); while closed, every call takes the slow
    # path, which raises.
    _try_put: Any = staticmethod(lambda data, n: _CLOSED)
    _rx: list[tuple[Any, Any]] = _NO_BUFFERS
    _packed: dict[tuple[int, int], tuple[Callable[[bytes], int], int, array[int]]] = _NO_PACKED
    _exact: dict[tuple[int, int], list[Any]] = _NO_EXACT

    def __init__(
        self,
        name: str | None = None,
        element_size: int | None = None,
        capacity: int | None = None,
        create: bool = True,
        *,
        mode: int = 0o600,
    ) -> None:
        if create:
            if element_size is None or capacity is None:
                raise ValueError(
                    "Queue(create=True) needs element_size= (largest message in bytes) and "
                    "capacity= (number of messages); to attach to an existing queue pass "
                    "create=False"
                )
            size = _check_size(element_size, "element_size")
            cap = _check_size(capacity, "capacity")
            if isinstance(mode, bool) or not isinstance(mode, int):
                raise TypeError(f"mode must be an int such as 0o600, not {type(mode).__name__}")
            if not 0 <= mode <= 0o7777:
                raise ValueError(f"mode must be permission bits in 0..0o7777, got {oct(mode)}")
            if mode & 0o060 == 0o040 or mode & 0o006 == 0o004:
                raise ValueError(
                    f"mode={oct(mode)} lets users read the queue who cannot write it, and read "
                    "access would let them lock others out; use mode=0o600 (owner only), 0o660 "
                    "(and the group) or 0o666 (everyone)"
                )
            if name is None:
                handle, bare, raw = self._create_unique(size, cap, mode)
            else:
                bare, raw = _check_name(name)
                status, h = _ffi.create(raw, size, cap, mode)
                if h is None:
                    raise self._create_error(status, bare, size, cap)
                handle = h
            self._owner_pid = os.getpid()
        else:
            if name is None:
                raise ValueError("Queue(create=False) needs the name of the queue to attach to")
            bare, raw = _check_name(name)
            want_size = None if element_size is None else _check_size(element_size, "element_size")
            want_cap = None if capacity is None else _check_size(capacity, "capacity")
            status, h = _ffi.open_(raw)
            if h is None:
                raise error_from_status(status, f"Queue({bare!r}, create=False)", bare)
            if (want_size is not None and want_size != h.max_msg) or (
                want_cap is not None and want_cap != h.capacity
            ):
                actual = (h.max_msg, h.capacity)
                del h  # detaches (fq_close): nothing is leaked
                raise ValueError(
                    f"queue {bare!r} has element_size={actual[0]} and capacity={actual[1]}, "
                    f"not element_size={element_size} and capacity={capacity}; pass the "
                    f"queue's sizes or leave them out"
                )
            handle = h
        self._name = bare
        self._raw = raw
        self._element_size = handle.max_msg
        self._maxsize = handle.capacity
        self._h = handle
        self._bind(handle)
        _live.add(self)

    def _bind(self, h: _ffi.Handle) -> None:
        """Makes the hot path's library calls with ``h`` bound (put's, and a first receive
        buffer for get). They keep ``h`` alive while a call is in flight."""
        self._try_put = h.bind_put()
        self._rx = [h.bind_get()]
        #: put_many(bytes, itemsize=k) of n bytes -> (fq_try_put_many bound for it, n // k, the
        #: lengths); made by the first such put of each size (at most 64 sizes).
        self._packed: dict[tuple[int, int], tuple[Callable[[bytes], int], int, array[int]]] = {}
        #: get_many(n, itemsize=k) -> the handle's pool of receive buffers for it, each with
        #: fq_try_get_many_exact bound (see Handle.exact_pool); made by the first such get of
        #: each (k, n) (at most 64).
        self._exact: dict[tuple[int, int], list[Any]] = {}

    @staticmethod
    def _create_error(status: int, name: str, size: int, cap: int) -> Exception:
        needed = None
        if status == _ffi.ERR_NO_SPACE:
            st, n = _ffi.segment_size(size, cap)
            needed = n if st == _OK else None
        return error_from_status(
            status,
            f"Queue({name!r}, element_size={size}, capacity={cap}, create=True)",
            name,
            needed=needed,
        )

    def _create_unique(self, size: int, cap: int, mode: int) -> tuple[_ffi.Handle, str, bytes]:
        for _ in range(16):
            bare = f"fq-{os.getpid()}-{secrets.token_hex(6)}"
            raw = bare.encode()
            status, h = _ffi.create(raw, size, cap, mode)
            if h is not None:
                return h, bare, raw
            if status != _ffi.ERR_EXISTS:
                raise self._create_error(status, bare, size, cap)
        raise self._create_error(_ffi.ERR_EXISTS, bare, size, cap)  # pragma: no cover

    # ------------------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The queue's name, without a leading '/': attach to it with ``Queue(name, create=False)``.

        Automatically chosen names look like ``fq-<pid>-<12 hex digits>``.
        """
        return self._name

    @property
    def element_size(self) -> int:
        """The largest message the queue takes, in bytes."""
        return self._element_size

    @property
    def maxsize(self) -> int:
        """The queue's capacity in messages (as in :class:`queue.Queue`)."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._h is None

    # ------------------------------------------------------------------------------ put / get

    def _closed_error(self) -> ValueError:
        return ValueError(f"operation on a closed queue: fastqueue.Queue({self._name!r}) is closed")

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
        if type(item) is bytes:
            data: object = item
            n = len(item)
        else:
            data, n = _ffi.as_c_buffer(item)
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

    def _too_big(self, n: int) -> MessageTooBigError:
        return MessageTooBigError(
            f"message of {n} bytes is longer than queue {self._name!r}'s element_size of "
            f"{self._element_size} bytes"
        )

    def _put_error(self, status: int, n: int | None = None) -> Exception:
        if status == _FULL:
            return Full()
        if status == _ffi.ERR_TOO_BIG and n is not None:
            return self._too_big(n)
        return error_from_status(status, f"Queue({self._name!r}).put", self._name)

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

    def _get_error(self, status: bytes | int) -> Exception:
        if status == _EMPTY:
            return Empty()
        return error_from_status(int(status), f"Queue({self._name!r}).get", self._name)

    # ------------------------------------------------------------------------------ batches

    def put_many(
        self,
        items: Iterable[Buffer] | Buffer,
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> None:
        """Puts every item of ``items``, in order, with one library call per batch: the cheap
        way to move many small messages. Other producers' messages may land between them.

        Every item is checked first: one that is not bytes-like (``TypeError``) or longer than
        element_size (``ValueError``) rejects the whole batch and nothing is put. Blocking and
        ``timeout`` are as for :meth:`put`, for the batch as a whole; if the queue stays full,
        :class:`~fastqueue.Full` is raised with the number of items that were put (the first
        ones) in its ``done`` attribute.

        With ``itemsize=`` (an int >= 1), ``items`` is instead *one* bytes-like object (bytes,
        a numpy array of records...) holding messages of ``itemsize`` bytes back to back; its
        size must be a multiple of itemsize (else ``ValueError``). This is the fastest way to
        put many fixed-size messages: no Python work per message.

        >>> with Queue(element_size=8, capacity=5) as q:
        ...     q.put_many([b"a", bytearray(b"b"), memoryview(b"c")])
        ...     q.put_many(b"xxyy", itemsize=2)
        ...     q.get_many(10)
        [b'a', b'b', b'c', b'xx', b'yy']
        """
        if timeout is not None and block:
            _check_timeout(timeout)
        if itemsize is not None and type(items) is bytes and type(itemsize) is int:
            # The hot path: packed bytes of a size put before through this handle, with one
            # bound library call that never waits (see _bind).
            hit = self._packed.get((itemsize, len(items)))
            if hit is not None:
                put, count, lens = hit
                done = put(items)
                if done == count:
                    return
                self._put_packed_rest(items, lens, done, block, timeout)
                return
        h = self._h
        if h is None:
            raise self._closed_error()
        lens_arg = None
        if itemsize is not None:
            data, lens, lens_arg = self._cut_packed(items, itemsize)
            packed = self._packed
            if type(items) is bytes and len(packed) < 64 and type(itemsize) is int:
                packed[(itemsize, len(data))] = (h.bind_put_packed(lens), len(lens), lens)
        else:
            if type(items) is not list:
                items = list(items)  # type: ignore[arg-type]  # TypeError if not iterable
            if _BYTES_TYPES.issuperset(map(type, items)):
                # Only bytes and bytearray: len() is the byte count; one join copies them all.
                data = b"".join(items)
                lens = array("Q", map(len, items))
            else:
                data, lens = self._join_buffers(items)
        if not lens:
            return
        # One library call puts the batch (it checks every length first: FQ_ERR_TOO_BIG puts
        # nothing). The first attempt never waits.
        status, done = h.put_many(data, lens, 0, lens_arg)
        if status == _OK:
            return
        self._put_many_rest(h, data, lens, status, done, block, timeout)

    def _put_packed_rest(
        self, data: bytes, lens: array[int], done: int, block: bool, timeout: float | None
    ) -> None:
        """put_many's hot path after a first attempt that put only ``done`` messages (or
        ``status - TRY_BIAS``: none, for another reason than a full ring)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        if done < 0:
            raise self._put_error(done + _TRY_BIAS)
        # Fewer than all: the ring filled up (or, in a race, the queue was shut down meanwhile,
        # which the next attempt reports).
        self._put_many_rest(h, data, lens, _FULL, done, block, timeout)

    def _check_itemsize(self, itemsize: object) -> int:
        """get_many(..., itemsize=): an int in 1..element_size."""
        if isinstance(itemsize, bool) or not isinstance(itemsize, int):
            raise TypeError(f"itemsize must be an int, not {type(itemsize).__name__}")
        if not 1 <= itemsize <= self._element_size:
            raise ValueError(
                f"itemsize must be in 1..{self._element_size} (the queue's element_size), "
                f"got {itemsize}"
            )
        return itemsize

    def _cut_packed(self, items: object, itemsize: object) -> tuple[bytes, array[int], Any]:
        """put_many(items, itemsize=...): (the bytes of ``items``, the length of each message,
        the lengths as a prepared argument)."""
        if isinstance(itemsize, bool) or not isinstance(itemsize, int):
            raise TypeError(f"itemsize must be an int, not {type(itemsize).__name__}")
        if itemsize < 1:
            raise ValueError(f"itemsize must be at least 1, got {itemsize}")
        if itemsize > self._element_size:
            raise self._too_big(itemsize)
        if type(items) is bytes:
            data = items
        else:
            try:
                view = memoryview(items)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError(
                    f"put_many(items, itemsize=...) takes one bytes-like object holding the "
                    f"messages back to back, not {type(items).__name__}"
                ) from None
            with view:
                data = _ffi.c_order_bytes(items, view)  # C order, whatever the layout
        n, extra = divmod(len(data), itemsize)
        if extra:
            raise ValueError(
                f"put_many(itemsize={itemsize}): {len(data)} bytes are not a whole number of "
                f"{itemsize}-byte messages ({extra} left over); nothing was put"
            )
        cut = _packed_cuts.get((itemsize, len(data)))
        if cut is None:
            lens = array("Q", [itemsize]) * n
            cut = (lens, _ffi.array_arg(lens))
            if len(_packed_cuts) < 256:
                _packed_cuts[(itemsize, len(data))] = cut
        return data, cut[0], cut[1]

    def _join_buffers(self, items: list[Buffer]) -> tuple[bytes, array[int]]:
        """put_many of items other than bytes / bytearray: (their bytes, back to back; the
        length of each). TypeError for an item that is not bytes-like."""
        parts: list[object] = []
        lens = array("Q")
        for item in items:
            if type(item) is bytes:
                part: object = item
                n = len(item)
            else:
                with memoryview(item) as view:  # TypeError if not bytes-like
                    n = view.nbytes
                    part = view.cast("B") if view.c_contiguous else _ffi.c_order_bytes(item, view)
            parts.append(part)
            lens.append(n)
        return b"".join(parts), lens  # type: ignore[arg-type]  # bytes-like parts

    def _put_many_rest(
        self,
        h: _ffi.Handle,
        data: bytes,
        lens: array[int],
        status: int,
        done: int,
        block: bool,
        timeout: float | None,
    ) -> None:
        """put_many after a first attempt that did not put everything: waits (as put does) and
        puts the rest, or raises."""
        total = len(lens)
        put = done

        def attempt(wait: int) -> int:
            """Puts what is left (after the ``done`` put by the last attempt)."""
            nonlocal data, lens, done, put
            if done:
                data = data[sum(lens[:done]) :]
                lens = lens[done:]
            status, done = h.put_many(data, lens, wait)
            put += done
            return status

        if status == _FULL and block:
            status = self._retry(h, attempt, _FULL, timeout)
        if status == _OK:
            return
        if status == _FULL:
            full = Full(f"put {put} of {total} items; then the queue stayed full")
            full.done = put  # type: ignore[attr-defined]
            raise full
        if status == _ffi.ERR_TOO_BIG:
            raise self._too_big(next(n for n in lens if n > self._element_size))
        raise self._put_error(status)

    @overload
    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[bytes]: ...

    @overload
    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None, *, itemsize: int
    ) -> bytes: ...

    def get_many(
        self,
        max_items: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> list[bytes] | bytes:
        """Removes and returns up to ``max_items`` (>= 1) of the oldest messages, in order, with
        one library call: waits (as :meth:`get` does) for the first message only, then takes
        what is there without waiting. Raises :class:`~fastqueue.Empty` if nothing arrived in
        time, :class:`~fastqueue.ShutDown` once a shut-down queue is drained.

        With ``itemsize=k`` (1 <= k <= element_size), the packed form, the counterpart of
        ``put_many(buffer, itemsize=k)``: the messages must be exactly ``k`` bytes each, and
        come back as one ``bytes`` of n x k bytes, back to back (ready for
        ``numpy.frombuffer``), with no Python object per message. It stops before a message of
        another length, which stays queued; if the first message has another length it raises
        ``ValueError`` naming that length (the message stays queued: take it with :meth:`get`).
        At most 1 MiB is returned per call (max_items is cut down to fit, but is at least 1).

        >>> with Queue(element_size=8, capacity=4) as q:
        ...     q.put(b"1"); q.put(b"2"); q.put(b"3")
        ...     q.get_many(2), q.get_many(2)
        ([b'1', b'2'], [b'3'])
        >>> with Queue(element_size=8, capacity=4) as q:
        ...     q.put_many(b"aabbcc", itemsize=2)
        ...     q.get_many(8, itemsize=2)
        b'aabbcc'
        """
        if itemsize is not None and type(itemsize) is int and type(max_items) is int:
            # The hot path: records of a size (and count) taken before through this handle,
            # with one bound library call that never waits, into a receive buffer of this
            # thread's own (see Handle.exact_pool). The local ``h`` keeps the handle alive
            # while the call is in flight, even if another thread closes the queue meanwhile.
            h = self._h
            pool = self._exact.get((itemsize, max_items))
            if pool and h is not None:
                try:
                    entry = pool.pop()
                except IndexError:  # another thread took the last buffer meanwhile
                    pool = None
                if pool is not None:
                    if timeout is not None and block:
                        _check_timeout(timeout)
                    got = entry.take()
                    if got > 0:
                        data: bytes = entry.buf[: got * itemsize]  # slicing makes bytes
                        pool.append(entry)
                        return data
                    pool.append(entry)  # empty, or an error: the way below tells
        h = self._h
        if h is None:
            raise self._closed_error()
        n = (
            max_items
            if type(max_items) is int and max_items > 0
            else _check_size(max_items, "max_items")
        )
        t = None if timeout is None or not block else _check_timeout(timeout)
        if itemsize is not None:
            return self._get_many_exact(h, n, block, t, itemsize)
        result = h.get_many(n, 0)
        if type(result) is list:
            return result
        if result == _EMPTY and block:
            result = self._retry(h, lambda ns: h.get_many(n, ns), _EMPTY, t)
            if type(result) is list:
                return result
        raise self._get_error(result)  # type: ignore[arg-type]  # an int

    def _get_many_exact(
        self, h: _ffi.Handle, n: int, block: bool, t: float | None, itemsize: object
    ) -> bytes:
        """get_many(n, itemsize=k): the packed form (``t``: the validated timeout)."""
        k = self._check_itemsize(itemsize)
        result = h.get_many_exact(k, n, 0)
        exact = self._exact
        if type(itemsize) is int and (k, n) not in exact and len(exact) < 64:
            exact[(k, n)] = h.exact_pool(k, n)
        if type(result) is bytes:
            return result
        if result == _EMPTY and block:
            result = self._retry(h, lambda ns: h.get_many_exact(k, n, ns), _EMPTY, t)
            if type(result) is bytes:
                return result
        if type(result) is tuple:
            raise ValueError(
                f"Queue({self._name!r}).get_many: the next message is {result[1]} bytes long, "
                f"not itemsize={k}; it was left in the queue (take it with get())"
            )
        raise self._get_error(result)  # type: ignore[arg-type]  # an int

    # ---------------------------------------------------------------------- buffers, zero-copy

    def _retry(
        self, h: _ffi.Handle, attempt: Callable[[int], _T], busy: int, timeout: float | None
    ) -> _T | int:
        """The waiting path of a call whose first attempt found the queue ``busy`` (FULL, EMPTY,
        or join's TIMEOUT): ``attempt(timeout_ns)`` again, one slice at a time (so that Ctrl-C
        works), until it returns something else or ``timeout`` (seconds, validated; None:
        forever) runs out; then the last result (``busy`` if time ran out first)."""
        status: _T | int = busy
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while status == busy:
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
        return status

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
        arg, cap, copy_back = _ffi.writable_buffer(buffer)
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
            raise ValueError(
                f"Queue({self._name!r}).get_into: the next message is {length} bytes long, the "
                f"buffer only {cap}; pass a buffer of at least {length} bytes (the message was "
                f"left in the queue)"
            )
        raise self._get_error(status)

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
        n = self._element_size if size is None else self._check_message_size(size, "size")
        if timeout is not None and block:
            _check_timeout(timeout)
        status, address, token = h.write_begin(0)
        if status == _FULL and block:
            claim = (0, 0)

            def attempt(timeout_ns: int) -> int:
                nonlocal claim
                status, address, token = h.write_begin(timeout_ns)
                claim = (address, token)
                return status

            status = self._retry(h, attempt, _FULL, timeout)
            address, token = claim
        if status != _OK:
            raise self._put_error(status)
        lease = _ffi.Lease(h, token, write=True)
        view = memoryview(bytearray(n)) if _ffi.PYPY else h.lend(address, n, lease)
        return WriteSlot(view), lease, view, n, address

    def _publish_slot(
        self, slot: WriteSlot, lease: _ffi.Lease, view: memoryview, n: int, address: int
    ) -> None:
        """put_slot, leaving its block normally: publishes ``slot.length`` bytes."""
        length = slot.length
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= n:
            self._drop_slot(lease, view)
            raise ValueError(f"slot.length must be an int in 0..{n}, not {length!r}")
        if _ffi.PYPY:
            _ffi.lend(address, n)[:length] = view[:length]  # the one copy
            view.release()
            lease.length = length
            lease.finish()
        else:
            lease.length = length
            with contextlib.suppress(BufferError):
                view.release()  # the last use of the memory: lease.finish() commits now
            if not lease.finished:
                lease.length = None  # abort once the memory is let go
                raise BufferError(
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
        status, address, length, token = h.read_begin(0)
        if status == _EMPTY and block:
            claim = (0, 0, 0)

            def attempt(timeout_ns: int) -> int:
                nonlocal claim
                status, address, length, token = h.read_begin(timeout_ns)
                claim = (address, length, token)
                return status

            status = self._retry(h, attempt, _EMPTY, timeout)
            address, length, token = claim
        if status != _OK:
            raise self._get_error(status)
        lease = _ffi.Lease(h, token, write=False)
        if _ffi.PYPY:
            try:
                return memoryview(bytes(_ffi.lend(address, length)))
            finally:
                lease.finish()
        return h.lend(address, length, lease).toreadonly()

    def _check_message_size(self, size: object, what: str) -> int:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"{what} must be an int, not {type(size).__name__}")
        if size < 0:
            raise ValueError(f"{what} must be >= 0, got {size}")
        if size > self._element_size:
            raise self._too_big(size)
        return size

    # ------------------------------------------------------------------------------ tasks, shutdown

    def task_done(self) -> None:
        """Marks one fetched message as processed, as :meth:`queue.Queue.task_done` does; the
        count lives in the segment, so any process may mark a message done. Raises ValueError
        if called more times than there were messages put.

        >>> with Queue(element_size=8, capacity=2) as q:
        ...     q.put(b"job"); _ = q.get(); q.task_done()
        ...     q.join(timeout=0)
        True
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        status = h.task_done(1)
        if status == _OK:
            return
        if status == _ffi.ERR_INVALID:
            raise ValueError("task_done() called too many times")
        raise error_from_status(status, f"Queue({self._name!r}).task_done()", self._name)

    def join(self, timeout: float | None = None) -> bool:
        """Waits until every message ever put has been marked done with :meth:`task_done` (by
        any process), as :meth:`queue.Queue.join` does; messages a dead process took with it
        count as done. With a ``timeout`` (seconds) gives up after it and returns False;
        returns True once everything is done. Ctrl-C interrupts the wait.
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

    # ------------------------------------------------------------------------------ size

    def qsize(self) -> int:
        """The number of messages in the queue (approximate while other handles are busy).

        >>> with Queue(element_size=1, capacity=5) as q:
        ...     q.put(b"a"); q.put(b"b")
        ...     q.qsize(), len(q), bool(q), q.full()
        (2, 2, True, False)
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        return min(h.size(), h.capacity)

    def empty(self) -> bool:
        """True if the queue holds no message (approximate while other handles are busy)."""
        return self.qsize() == 0

    def full(self) -> bool:
        """True if the queue holds ``maxsize`` messages (approximate while others are busy)."""
        return self.qsize() >= self._maxsize

    def stats(self) -> dict[str, int]:
        """Counters kept in the segment since its creation, shared by every attached process.

        ``puts`` / ``gets``: messages ever claimed by puts / taken or skipped by gets;
        ``full_hits`` / ``empty_hits``: calls that found the queue full / empty; ``recoveries``:
        slots taken back from processes that died mid-operation; ``reclaimed``: participant
        entries of dead processes reused; ``depth``: messages queued now; ``getters_woken`` /
        ``putters_woken``: blocked gets / puts woken by the other side (a put wakes at most one
        sleeping get, so with many idle consumers this grows by about one per message, not by
        one per consumer); ``getter_sleeps`` / ``putter_sleeps``: times a blocked call slept in
        the kernel.

        >>> with Queue(element_size=8, capacity=2) as q:
        ...     q.put(b"a"); q.put(b"b"); _ = q.get()
        ...     s = q.stats()
        ...     s["puts"], s["gets"], s["depth"]
        (2, 1, 1)
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        return dict(zip(_ffi.STAT_NAMES, h.stats()))

    def __len__(self) -> int:
        return self.qsize()

    def __bool__(self) -> bool:
        """True when the queue holds at least one message."""
        return self.qsize() > 0

    # ------------------------------------------------------------------------------ lifetime

    def unlink(self) -> None:
        """Removes the queue's name, so that nobody else can attach to it.

        Handles already attached (this one included) keep working; the memory is freed when the
        last one closes. For the handle that created the queue, unlinking a name that is already
        gone is not an error (and closing it later does not unlink again). For an attached
        handle it raises ``FileNotFoundError``.
        """
        if self._h is None:
            raise self._closed_error()
        self._unlinked = True  # so that closing the owner never removes a later queue of this name
        status = _ffi.unlink(self._raw)
        if status == _OK:
            return
        if status == _ffi.ERR_NOT_FOUND and self._owner_pid == os.getpid():
            return
        raise error_from_status(status, f"Queue({self._name!r}).unlink()", self._name)

    def close(self) -> None:
        """Detaches this handle; idempotent. The creating handle also removes the queue's name.

        Any later operation on this handle raises ``ValueError``. A blocking call that another
        thread is making on this handle raises ``ValueError`` within one wait slice (100 ms); the
        library handle itself is freed once no call is using it.
        """
        self._close(os.getpid, _ffi.unlink)
        if _ffi.PYPY:  # no reference counting there: collect now, so that the handle detaches now
            gc.collect()

    def _close(self, getpid: Any, unlink_name: Any) -> None:
        h = self._h
        if h is None:
            return
        self._h = None
        # Back to the class's bound calls: every later call takes the slow path (and raises).
        self.__dict__.pop("_try_put", None)
        self.__dict__.pop("_rx", None)
        self.__dict__.pop("_packed", None)
        self.__dict__.pop("_exact", None)
        if self._owner_pid == getpid() and not self._unlinked:
            self._unlinked = True
            unlink_name(self._raw)  # a name someone else already removed is fine
        # Dropping the last reference to h calls fq_close (a call in flight keeps h alive).
        del h

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self, _getpid: Any = os.getpid, _unlink: Any = _ffi.unlink) -> None:
        # Default arguments stay bound at interpreter shutdown, when module globals may be gone.
        with contextlib.suppress(Exception):  # nothing sensible to do in a finalizer
            self._close(_getpid, _unlink)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the queue's name and sizes: the copy attaches (``create=False``)."""
        if self._h is None:
            raise self._closed_error()
        return (type(self), (self._name, self._element_size, self._maxsize, False))

    def __repr__(self) -> str:
        if self._h is None:
            state = "closed"
        elif self._owner_pid == os.getpid():
            state = "owner"  # this handle created the queue and removes its name on close
        else:
            state = "attached"
        return (
            f"<fastqueue.{type(self).__name__} {self._name!r} element_size={self._element_size} "
            f"maxsize={self._maxsize} {state}>"
        )

    def _after_fork_in_child(self) -> None:
        h = self._h
        if h is not None:
            h.reattach_after_fork()
            self._bind(h)  # the bound calls name the inherited handle


def unlink(name: str) -> None:
    """Removes the queue named ``name`` (with or without a leading '/').

    Processes attached to it keep working; nobody can attach any more. Raises
    ``FileNotFoundError`` if there is no such queue.

    >>> q = Queue(element_size=8, capacity=4)
    >>> unlink(q.name)
    >>> try:
    ...     Queue(q.name, create=False)
    ... except FileNotFoundError:
    ...     print("gone")
    gone
    >>> q.put(b"still"); q.get()  # the handle keeps working
    b'still'
    >>> q.close()
    """
    bare, raw = _check_name(name)
    status = _ffi.unlink(raw)
    if status != _OK:
        raise error_from_status(status, f"fastqueue.unlink({bare!r})", bare)


def _after_fork_in_child() -> None:
    for q in list(_live):
        q._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_all_at_exit() -> None:
    for q in list(_live):
        q.close()


if _ffi.PYPY:  # PyPy runs no __del__ at exit: close what is open, so that creators remove names
    atexit.register(_close_all_at_exit)
