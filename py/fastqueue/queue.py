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

:class:`Queue` is assembled from rooms of one job each (mixins over one
:class:`~fastqueue._core.QueueCore`): this module creates, attaches, counts and closes;
``_putget`` puts and gets one message, ``_batches`` many, ``_slots`` lends slots (zero-copy),
``_joining`` marks done, joins and shuts down, ``_aio`` awaits. None of them touches ctypes:
every library call goes through ``fastqueue._ffi``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import secrets
import threading
import weakref
from array import array
from typing import TYPE_CHECKING, Any, Final

from . import _aio, _ffi
from ._args import check_mode as _check_mode
from ._args import check_name as _check_name
from ._args import check_size as _check_size
from ._args import limits_error as _limits_error
from ._batches import BatchMixin
from ._errors import ArgumentTypeError, InvalidArgumentError, error_from_status, unlink_refused
from ._joining import JoinMixin
from ._putget import PutGetMixin
from ._slots import SlotMixin, WriteSlot

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

__all__ = ["Queue", "WriteSlot", "unlink"]

_OK: Final = _ffi.OK

# Every open Queue of this process, so that a forked child can attach handles of its own.
_live: weakref.WeakSet[Queue] = weakref.WeakSet()


class _AttachOnFirstUse:
    """``Queue._h`` where the instance has no ``_h`` of its own: in a forked child, until its
    first use (see :meth:`Queue._after_fork_in_child`), or on a half-constructed object (None).

    A non-data descriptor (``__get__`` only), so the handle an instance holds in its
    ``__dict__`` hides it and it runs only when ``_h`` is missing. (It replaced a
    ``__getattr__``: a class with one reads every attribute through a slower hook, and CPython
    does not specialise those reads; the hot path's five reads cost ~10 % of a put+get.)"""

    def __get__(self, obj: Queue | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._attach_in_child()


class Queue(PutGetMixin, BatchMixin, SlotMixin, JoinMixin, _aio.AsyncMixin):
    """A bounded MPMC queue of byte messages in the shared-memory segment ``/dev/shm/<name>``.

    ``Queue(name=None, element_size=None, capacity=None, create=True, *, mode=0o600,
    redeliver=None, leases=None)``

    With ``create=True`` (the default) a new queue is made that holds up to ``capacity`` messages
    of 0 to ``element_size`` bytes each (both are ints >= 1; capacity need not be a power of two).
    ``name=None`` picks a unique name (see :attr:`name`). The segment gets permission bits
    ``mode``. This handle *owns* the name: closing or collecting it removes the name (processes
    still attached keep working). Raises ``FileExistsError`` if the name is taken.

    With ``create=False`` the existing queue ``name`` is attached and its sizes read from the
    segment; ``element_size`` / ``capacity``, if given, must match it (else ``ValueError``).
    Raises ``FileNotFoundError`` if there is no such queue and :class:`~fastqueue.SegmentError`
    if the segment is not a valid queue. Attached handles never remove the name.

    ``redeliver=True`` (with ``create=True``) makes a queue with acknowledged delivery
    (at-least-once, see :attr:`redeliver` and the guide page "When a worker dies"): every get
    leases the message it returns to this handle until :meth:`task_done` acknowledges it, and the
    messages of a handle that closes or whose process dies are delivered again. ``leases=``
    bounds how many messages are leased at once (default: the capacity). The setting is stored in
    the segment: with ``create=False``, leaving ``redeliver`` out adopts it, and asking for the
    other setting raises ``ValueError``.

    Sizes must be ints: a bool, float or other non-integer raises ``TypeError``; a missing size
    (with ``create=True``) or one below 1 raises ``ValueError``, as does a ``mode`` outside
    0..0o777. Nothing is created when an argument is rejected. Every exception raised is also a
    :class:`~fastqueue.FastQueueError` (see :mod:`fastqueue` for the family).

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

    def __init__(
        self,
        name: str | None = None,
        element_size: int | None = None,
        capacity: int | None = None,
        create: bool = True,
        *,
        mode: int = 0o600,
        redeliver: bool | None = None,
        leases: int | None = None,
    ) -> None:
        if redeliver is not None and not isinstance(redeliver, bool):
            raise ArgumentTypeError(f"redeliver must be True or False, not {redeliver!r}")
        if leases is not None:
            _check_size(leases, "leases")
            if create and not redeliver:
                raise InvalidArgumentError(
                    "leases= bounds the messages leased by a redeliver=True queue; pass "
                    "redeliver=True with it, or leave it out"
                )
        flags = _ffi.REDELIVER if create and redeliver else 0
        self._flags = (flags, leases or 0)
        if create:
            if element_size is None or capacity is None:
                missing = " and ".join(
                    arg
                    for arg, value in (("element_size", element_size), ("capacity", capacity))
                    if value is None
                )
                were = "were" if " and " in missing else "was"
                raise InvalidArgumentError(
                    f"Queue(create=True) needs element_size= (largest message in bytes) and "
                    f"capacity= (number of messages), and {missing} {were} not given; to attach "
                    f"to an existing queue pass create=False"
                )
            size = _check_size(element_size, "element_size")
            cap = _check_size(capacity, "capacity")
            _check_mode(mode)
            if name is not None:
                bare, raw = _check_name(name)
            too_big = _limits_error(
                f"Queue({'' if name is None else f'{bare!r}, '}element_size={size}, "
                f"capacity={cap}, create=True)",
                None if name is None else bare,
                size,
                cap,
            )
            if too_big is not None:
                raise too_big
            if name is None:
                handle, bare, raw = self._create_unique(size, cap, mode)
            else:
                status, h = self._create_raw(raw, size, cap, mode)
                if h is None:
                    raise self._create_error(status, bare, size, cap)
                handle = h
            self._owner_pid = os.getpid()
        else:
            if name is None:
                raise InvalidArgumentError(
                    "Queue(create=False) needs the name of the queue to attach to (name=None "
                    "was given)"
                )
            bare, raw = _check_name(name)
            want_size = None if element_size is None else _check_size(element_size, "element_size")
            want_cap = None if capacity is None else _check_size(capacity, "capacity")
            status, h = _ffi.open_(raw)
            if h is None:
                raise error_from_status(status, f"Queue({bare!r}, create=False)", bare)
            if (redeliver is not None and redeliver != h.redeliver) or (
                leases is not None and leases != h.leases
            ):
                has = f"redeliver={h.redeliver}" + (f", leases={h.leases}" if h.redeliver else "")
                del h
                raise InvalidArgumentError(
                    f"Queue({bare!r}, create=False): the queue was created with {has}; pass "
                    f"that, or leave redeliver= and leases= out to adopt the queue's setting"
                )
            if (want_size is not None and want_size != h.max_msg) or (
                want_cap is not None and want_cap != h.capacity
            ):
                wrong = [
                    f"{arg}={want}"
                    for arg, want, has in (
                        ("element_size", want_size, h.max_msg),
                        ("capacity", want_cap, h.capacity),
                    )
                    if want is not None and want != has
                ]
                actual = f"element_size={h.max_msg} and capacity={h.capacity}"
                del h  # detaches (fq_close): nothing is leaked
                raise InvalidArgumentError(
                    f"Queue({bare!r}, create=False): the queue has {actual}, not the "
                    f"{' and '.join(wrong)} given; pass the queue's sizes or leave them out"
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
        # put's hot path calls fq_try_put_in with a block of its own, whose flag says whether
        # it put (see _putget); get's takes into _hot, a receive buffer with a held word (see
        # _ffi.Held), with its take_args.
        put_block = _ffi.PutBlock(h)
        self._try_put = self._bound_put = (put_block.arg, put_block.flag)
        self._hot = h.held(hot=True)
        self._take = self._hot.take_args
        self._kept_msgs = []
        self._valid_timeout = None  # (on every handle from the start: its read stays specialised)
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

    def _create_raw(
        self, raw: bytes, size: int, cap: int, mode: int
    ) -> tuple[int, _ffi.Handle | None]:
        flags, leases = self._flags
        if flags:
            return _ffi.create_ex(raw, size, cap, mode, flags, leases)
        return _ffi.create(raw, size, cap, mode)

    def _create_unique(self, size: int, cap: int, mode: int) -> tuple[_ffi.Handle, str, bytes]:
        for _ in range(16):
            bare = f"fq-{os.getpid()}-{secrets.token_hex(6)}"
            raw = bare.encode()
            status, h = self._create_raw(raw, size, cap, mode)
            if h is not None:
                return h, bare, raw
            if status != _ffi.ERR_EXISTS:
                raise self._create_error(status, bare, size, cap)
        raise self._create_error(_ffi.ERR_EXISTS, bare, size, cap)  # pragma: no cover

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
    def redeliver(self) -> bool:
        """True for a queue with acknowledged delivery (created with ``redeliver=True``; the
        setting lives in the segment, so every handle tells the same).

        On such a queue every get-family call (``get``, ``get_nowait``, ``get_into``,
        ``get_many``, ``get_slot``, ``aget``, and their object forms) *leases* what it returns
        to this handle until :meth:`task_done` acknowledges it (each call acknowledges the
        handle's oldest lease). When the handle closes, or its process dies (even by SIGKILL),
        its unacknowledged messages go back and are delivered again, before any new message and
        oldest first (``stats()["redelivered"]`` counts them); ``join()`` waits for their
        acknowledgement. Leases take no ring slot; at most :attr:`leases` are held at once and a
        get beyond that waits for an acknowledgement.

        >>> with Queue(element_size=16, capacity=4, redeliver=True) as q:
        ...     q.put(b"job")
        ...     with Queue(q.name, create=False) as worker:
        ...         worker.get()          # leased to worker, which closes without task_done
        ...     q.get(), q.stats()["redelivered"]
        ...     q.task_done(); q.join(timeout=0)
        b'job'
        (b'job', 1)
        True
        """
        h = self._h
        if h is None:
            raise self._closed_error()
        return h.redeliver

    @property
    def leases(self) -> int:
        """How many messages a :attr:`redeliver` queue leases at once (0 for other queues)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return h.leases

    @property
    def maxsize(self) -> int:
        """The queue's capacity in messages (as in :class:`queue.Queue`)."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._inherited is None and self._h is None

    @property
    def is_shutdown(self) -> bool:
        """True once the queue was shut down (by any process), as Python 3.13's
        :attr:`queue.Queue.is_shutdown`."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return bool(h.stats()[_ffi.STAT_NAMES.index("shutdown")])

    @property
    def unfinished_tasks(self) -> int:
        """Messages put and not yet marked done with :meth:`task_done` (nor discarded), as
        :attr:`queue.Queue.unfinished_tasks`; :meth:`join` waits for it to be 0."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return h.stats()[_ffi.STAT_NAMES.index("unfinished")]

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
        the kernel; ``redelivered`` / ``leased`` (:attr:`redeliver` queues): messages delivered
        again after their holder closed or died / messages leased or waiting to be delivered
        again now; ``abandoned`` (other queues): messages that handles took and did not mark
        done before they closed or died, counted as done.

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

    def unlink(self) -> None:
        """Removes the queue's name, so that nobody else can attach to it.

        Handles already attached (this one included) keep working; the memory is freed when the
        last one closes. For the handle that created the queue, unlinking a name that is already
        gone is not an error (and closing it later does not unlink again). For an attached
        handle it raises ``FileNotFoundError``. If the name now holds something that is not a
        fastqueue segment, that stays and ``SegmentError`` is raised (see :func:`unlink`).
        """
        if self._h is None:
            raise self._closed_error()
        self._unlinked = True  # so that closing the owner never removes a later queue of this name
        status = _ffi.unlink(self._raw)
        if status == _OK:
            return
        if status == _ffi.ERR_NOT_FOUND and self._owner_pid == os.getpid():
            return
        op = f"Queue({self._name!r}).unlink()"
        if status in (_ffi.ERR_BAD_SEGMENT, _ffi.ERR_NOT_READY):
            raise unlink_refused(status, op, self._name)
        raise error_from_status(status, op, self._name)

    def close(self) -> None:
        """Detaches this handle; idempotent. The creating handle also removes the queue's name.

        Any later operation on this handle raises ``ValueError``. A blocking call that another
        thread is making on this handle raises ``ValueError`` within one wait slice (100 ms); the
        library handle itself is freed once no call is using it.
        """
        self._close(os.getpid, _ffi.Handle.unlink_same)
        if _ffi.PYPY:  # no reference counting there: collect now, so that the handle detaches now
            gc.collect()

    def _close(self, getpid: Any, unlink_name: Any) -> None:
        inherited = self._inherited
        if inherited is not None:  # a forked child that never used it: never attached here
            self._inherited = None
            self._h = None
            del inherited  # fq_close of the inherited handle (the parent's stays as it is)
            return
        h = self._h
        if h is None:
            return
        self._h = None
        # Back to the class's bound calls: every later call takes the slow path (and raises).
        if h.lent:
            h.sweep_leases()
        self._give_back_kept(h)
        self.__dict__.pop("_try_put", None)
        self.__dict__.pop("_bound_put", None)
        self.__dict__.pop("_kept_msgs", None)
        self.__dict__.pop("_pending", None)
        self.__dict__.pop("_take", None)
        self.__dict__.pop("_hot", None)
        self.__dict__.pop("_packed", None)
        self.__dict__.pop("_exact", None)
        if self._owner_pid == getpid() and not self._unlinked:
            self._unlinked = True
            # Only if the name still names this queue: a name someone else already removed
            # is fine, and a later queue (or anything else) that took it stays.
            unlink_name(h, self._raw)
        # Dropping the last reference to h calls fq_close (a call in flight keeps h alive).
        del h

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self, _getpid: Any = os.getpid, _unlink: Any = _ffi.Handle.unlink_same) -> None:
        # Default arguments stay bound at interpreter shutdown, when module globals may be gone.
        with contextlib.suppress(Exception):  # nothing sensible to do in a finalizer
            self._close(_getpid, _unlink)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the queue's name and sizes: the copy attaches (``create=False``)."""
        if self.closed:
            raise self._closed_error()
        return (type(self), (self._name, self._element_size, self._maxsize, False))

    def __repr__(self) -> str:
        if self.closed:
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
        """In a child after fork(): the inherited handle is the parent's participant, which the
        child must never act as (if the child died mid-claim, nobody could tell and its slot
        would stay claimed while the parent lives). It is put aside, and the child's first use
        attaches a handle of its own (:meth:`_attach_in_child`): lazily, so that a fork with many
        queues open costs nothing per queue."""
        h = self.__dict__.pop("_h", None)
        if h is None:
            return
        self._inherited = h
        # The class's bound calls: the child's first call takes the slow path, which attaches.
        self.__dict__.pop("_try_put", None)
        self.__dict__.pop("_bound_put", None)
        self.__dict__.pop("_take", None)
        self.__dict__.pop("_hot", None)
        self.__dict__.pop("_packed", None)
        self.__dict__.pop("_exact", None)

    def _attach_in_child(self) -> _ffi.Handle | None:
        """The handle of a queue inherited through fork, attached as this process's own at its
        first use (fq_clone). Raises TooManyAttachedError if the participant table has no
        entry for the child (each later use tries again); the parent's handle is never used."""
        with _fork_lock[0]:
            h: _ffi.Handle | None = self.__dict__.get("_h")
            inherited = self._inherited
            if h is not None or inherited is None:
                return h
            status = inherited.reattach_after_fork()
            if status != _OK:
                raise error_from_status(
                    status,
                    f"Queue({self._name!r}) used in a process forked while it was open (which "
                    f"needs a participant entry of its own)",
                    self._name,
                )
            self._inherited = None
            self._bind(inherited)
            self._h = inherited
            return inherited

    if not TYPE_CHECKING:  # (mypy sees QueueCore's declaration of _h)
        _h = _AttachOnFirstUse()


def unlink(name: str, *, force: bool = False) -> None:
    """Removes the queue named ``name`` (with or without a leading '/').

    Processes attached to it keep working; nobody can attach any more. Raises
    ``FileNotFoundError`` if there is no such queue. Only fastqueue segments (of any layout
    version) are removed: anything else in ``/dev/shm`` under that name (another program's
    shared memory, an empty or zeroed file) stays, and ``SegmentError`` is raised.
    ``force=True`` removes whatever the name holds, like ``fastqueue rm --force``.

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
    status = _ffi.unlink_force(raw) if force else _ffi.unlink(raw)
    if status == _OK:
        return
    op = f"fastqueue.unlink({bare!r}{', force=True' if force else ''})"
    if status in (_ffi.ERR_BAD_SEGMENT, _ffi.ERR_NOT_READY):
        raise unlink_refused(status, op, bare)
    raise error_from_status(status, op, bare)


#: Serialises a forked child's first uses of a queue (a fresh lock in each child).
_fork_lock = [threading.Lock()]


def _after_fork_in_child() -> None:
    _fork_lock[0] = threading.Lock()
    for q in list(_live):
        q._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_all_at_exit() -> None:
    for q in list(_live):
        q.close()


if _ffi.PYPY:  # PyPy runs no __del__ at exit: close what is open, so that creators remove names
    atexit.register(_close_all_at_exit)
