"""Queues of Python objects: :class:`ObjectQueue`, and the joinable flavours
:class:`JoinableQueue` and :class:`JoinableObjectQueue`.

An :class:`ObjectQueue` is a :class:`~fastqueue.Queue` whose ``put`` takes any picklable object
and whose ``get`` returns it. By default an object is pickled with protocol 5 and *out-of-band
buffers*: the pickle stream is small and the large buffers (a numpy array's data, any
``pickle.PickleBuffer``) are written straight from the object's memory into the queue's slot,
and copied once out of it on ``get``. A contiguous numpy array thus crosses with one copy in and
one copy out, and the array ``get`` returns owns its memory (it stays valid after the queue is
closed or the slot reused) and is writable like the original.

>>> import fastqueue
>>> with fastqueue.ObjectQueue(element_size=4096, capacity=8) as q:
...     q.put({"job": 1, "args": [1.5, "x"]})
...     q.put(None)
...     q.get(), q.get()
({'job': 1, 'args': [1.5, 'x']}, None)

What goes into a slot (the *frame* of the default serializer), all integers little-endian::

    b"FQO5" | u32 number of buffers k | u64 pickle length | k x u64 buffer lengths
    | the pickle stream | each buffer, starting at a multiple of 16 bytes from the frame's start

``serializer=`` replaces all that with any object that has ``dumps(obj) -> bytes-like`` and
``loads(bytes) -> obj`` (the ``json`` module, ``msgpack``, an instance of your own class); the
slot then holds exactly what ``dumps`` returned (a ``str`` is sent UTF-8 encoded, so the ``json``
module works as it is). Every process using a queue must use the same
serializer.

This module never touches ctypes: the slot memory comes from ``fastqueue._ffi``. The encoding
and decoding (the frame, the serializer option, their errors) are ``fastqueue._codec``'s,
shared with the object queues over Redis.
"""

from __future__ import annotations

import time
import types
from typing import TYPE_CHECKING, Any, Callable, Final, TypeVar

from . import _ffi
from ._args import check_size as _check_size
from ._args import check_timeout as _check_timeout
from ._codec import Encoded as _Encoded
from ._codec import ModuleRef as _ModuleRef
from ._codec import ObjectCodec, Serializer, check_serializer
from ._core import _put_stopped, _take_stopped
from ._errors import ArgumentTypeError, Full
from ._words import count
from .queue import Queue

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["JoinableObjectQueue", "JoinableQueue", "ObjectQueue", "Serializer"]

_OK: Final = _ffi.OK
_EMPTY: Final = _ffi.EMPTY
_FULL: Final = _ffi.FULL
#: What fq_take returns for EMPTY, and for a receive buffer another thread uses.
_EMPTY_N: Final = _ffi.EMPTY - _ffi.TRY_BIAS
_BUSY: Final = _ffi.ERR_BUSY - _ffi.TRY_BIAS
#: A message at least this long is decoded straight from its receive buffer (no second copy).
_HAND_OVER: Final = 64 << 10

_T = TypeVar("_T")


def _rebuild(cls: type[ObjectQueue], args: tuple[Any, ...], serializer: Any) -> ObjectQueue:
    return cls(*args, serializer=serializer)


class ObjectQueue(ObjectCodec, Queue):
    """A :class:`~fastqueue.Queue` of Python objects: ``put`` takes any picklable object, ``get``
    returns an equal one (in whichever process gets it).

    ``ObjectQueue(name=None, element_size=None, capacity=None, create=True, *, mode=0o600,
    serializer=None, redeliver=None, leases=None)``

    The constructor, blocking, timeouts, ``shutdown``, ``task_done`` / ``join``, ``stats``,
    ``close`` / ``unlink``, passing the queue to a child process, ``aget`` / ``aput`` all work
    as for :class:`~fastqueue.Queue`. ``element_size`` bounds an object's *encoding* (for a
    numpy array: its ``nbytes`` plus about 200 bytes of pickle and frame).

    ``put`` encodes the object first: an unpicklable object raises the pickling error
    (``pickle.PicklingError``, ``TypeError``, ``AttributeError``...) and one whose encoding is
    longer than ``element_size`` raises ``ValueError`` (a :class:`~fastqueue.MessageTooBigError`)
    naming both sizes; the queue is unchanged either way. An object whose unpickling fails in
    ``get`` (e.g. its class cannot be imported there) raises that error; the message is then
    consumed.

    >>> import numpy as np
    >>> q = ObjectQueue(element_size=1024, capacity=4)
    >>> q.put(np.arange(6.0).reshape(2, 3))
    >>> a = q.get()
    >>> a, a.flags.writeable
    (array([[0., 1., 2.],
           [3., 4., 5.]]), True)
    >>> q.put(np.zeros(1024))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastqueue.MessageTooBigError: ...object encodes to 8... bytes, more than ... of 1024 bytes...
    >>> q.close()

    A custom serializer (every process using the queue must use the same one):

    >>> import json
    >>> with ObjectQueue(element_size=256, capacity=4, serializer=json) as q:
    ...     q.put({"id": 7, "tags": ["a", "b"]})
    ...     q.get()
    {'id': 7, 'tags': ['a', 'b']}
    """

    def __init__(
        self,
        name: str | None = None,
        element_size: int | None = None,
        capacity: int | None = None,
        create: bool = True,
        *,
        mode: int = 0o600,
        serializer: Serializer | None = None,
        redeliver: bool | None = None,
        leases: int | None = None,
    ) -> None:
        self._serializer = check_serializer(serializer)
        super().__init__(
            name, element_size, capacity, create, mode=mode, redeliver=redeliver, leases=leases
        )

    def _bind(self, h: _ffi.Handle) -> None:
        super()._bind(h)
        #: (handle, the Held receive buffer of max_msg bytes that get takes into).
        self._obj_held: tuple[_ffi.Handle, _ffi.Held] | None = None
        #: Objects a get_many took before a signal interrupted it: the next gets return them.
        self._kept_objects: list[Any] = []
        #: Receive buffers whose frame a get took and kept when a signal interrupted it (other
        #: than _obj_held's, which its next take hands over by itself): the next get first.
        self._kept_frames: list[_ffi.Held] = []

    def _give_back_kept(self, h: _ffi.Handle) -> None:
        """On close, also the frames and objects kept by interrupted gets (see Queue's)."""
        frames = []
        mine = self._obj_held
        for held in [*self._kept_frames, *([mine[1]] if mine is not None else [])]:
            v = held.word[0]
            if v <= -2 or v >= 0:
                frames.append(held.buf[: (-v - 2) if v <= -2 else v])
                held.word[0] = -1
        self._kept_frames.clear()
        self._put_back(h, frames)
        for obj in self._kept_objects:
            self._write(h, self._encode(obj), 1_000_000_000)
        self._kept_objects.clear()
        super()._give_back_kept(h)

    # ------------------------------------------------------------------------------ slot access

    def _write(self, h: _ffi.Handle, encoded: _Encoded, timeout_ns: int) -> int:
        """One zero-copy write of an encoded object; returns the status (FULL: nothing done)."""
        parts, total = encoded
        status, address, token, token_arg = h.write_begin(timeout_ns)
        if status != _OK:
            return status
        try:
            slot = _ffi.lend(address, total)
            for offset, part in parts:
                n = len(part) if isinstance(part, bytes) else part.nbytes
                slot[offset : offset + n] = part  # the one copy in
            slot.release()
            return h.write_commit(token, total)
        except BaseException as exc:
            # Signals too: if the abort finds the slot no longer claimed, the commit happened,
            # so the put did: the exception is deferred to this handle's next call instead
            # (see Queue._pending). No call before the abort, none after it but the raise.
            if h.abort_write(token_arg) == _OK:
                raise
            if self._pending is None:
                self._pending = exc
            self._try_put = _put_stopped
            self._take = _take_stopped
            return _OK

    def _read(self, h: _ffi.Handle, block: bool, timeout: float | None) -> tuple[int, Any]:
        """Takes one message: (OK, its object), or (the status: EMPTY..., None). ``timeout``
        validated.

        Signals: the message is taken into a receive buffer with a held word (see _ffi.Held),
        decoded, and only then is the word stored back: an exception from a signal handler
        anywhere before that keeps the message there (a store and at most one call, the first
        of the except clause), and the next get hands it over again. A message that cannot be
        decoded is consumed (the error is raised)."""
        if self._pending is not None:
            self._raise_pending()
        kept = self._kept_frames
        if kept:
            held = kept[0]
        else:
            mine = self._obj_held
            if mine is None or mine[0] is not h:
                mine = self._obj_held = (h, h.held(h.max_msg))
            held = mine[1]
        try:
            n = held.take()
            if n == _BUSY:  # another thread uses it: a buffer of this call's own
                held = h.held(h.max_msg)
                n = held.take()
            if n == _EMPTY_N and block:
                n = self._retry(h, lambda ns: held.take_wait(h, ns), n, timeout)
            if n < 0:
                return n + _ffi.TRY_BIAS, None
            view = memoryview(held.buf).cast("B")[:n]
            if self._serializer is not None:
                frame: bytes | memoryview = bytes(view)  # the one copy out
            elif n >= _HAND_OVER:
                # The receive buffer itself becomes the frame (writable, aligned, its own
                # memory): arrays unpickled over it keep it; the next get makes a new one.
                frame = view
            else:
                frame = memoryview(bytearray(view))  # writable memory of its own
            try:
                obj = self._decode(frame)
            except Exception:
                held.word[0] = -1  # a message that cannot be decoded is consumed
                raise
            if frame is view:
                self._obj_held = None
            if kept and kept[0] is held:
                del kept[0]
            held.word[0] = -1
            return _OK, obj
        except BaseException:
            w = held.word
            if w[0] >= 0:
                w[0] = -2 - w[0]
                mine = self._obj_held
                if held not in kept and (mine is None or held is not mine[1]):
                    kept.append(held)
                    self._take = _take_stopped  # (the raw get hands kept buffers over too)
            raise

    def _handle(self) -> _ffi.Handle:
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def _blocking(
        self, h: _ffi.Handle, attempt: Callable[[int], _T], busy: int, block: bool, timeout: Any
    ) -> _T:
        """Calls attempt(timeout_ns) until it returns something other than `busy` (FULL or
        EMPTY) or the time is up, in slices so that Ctrl-C works; Queue.put's rules."""
        if not block:
            return attempt(0)
        t = None if timeout is None else _check_timeout(timeout)
        result = attempt(0)
        if result == busy:
            return self._retry(h, attempt, busy, t)  # type: ignore[return-value]
        return result

    # ------------------------------------------------------------------------------ put / get

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        """Puts any picklable object (see :meth:`fastqueue.Queue.put` for blocking and
        timeouts). The object is encoded before anything else happens: encoding errors and
        ``MessageTooBigError`` leave the queue unchanged."""
        h = self._handle()
        encoded = self._encode(item)
        status = self._blocking(h, lambda ns: self._write(h, encoded, ns), _FULL, block, timeout)
        if status != _OK:
            raise self._put_error(status)

    def put_nowait(self, item: object) -> None:
        """``put(item, block=False)``: raises :class:`~fastqueue.Full` at once when full."""
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes the oldest object and returns it (see :meth:`fastqueue.Queue.get`)."""
        h = self._handle()
        if timeout is not None and block:
            _check_timeout(timeout)
        objs = self._kept_objects
        if objs:  # taken by a get_many that a signal interrupted: these come first
            obj = objs[0]
            del objs[0]  # (no call between this and the return: no signal lands there)
            return obj
        status, obj = self._read(h, block, timeout)
        if status != _OK:
            raise self._get_error(status)
        return obj

    def get_nowait(self) -> Any:
        """``get(block=False)``: raises :class:`~fastqueue.Empty` at once if there is none."""
        return self.get(block=False)

    def put_many(  # type: ignore[override]  # objects, never one packed buffer
        self,
        items: Iterable[object],
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> None:
        """Puts every object of ``items`` in order. All are encoded first: one that cannot be
        (or is too big) rejects the whole batch and nothing is put. If the queue stays full,
        :class:`~fastqueue.Full` says how many were put in its ``done`` attribute.

        >>> with ObjectQueue(element_size=64, capacity=4) as q:
        ...     q.put_many([1, "two", (3,)])
        ...     q.get_many(10)
        [1, 'two', (3,)]
        """
        if itemsize is not None:
            raise ArgumentTypeError(
                "ObjectQueue.put_many takes an iterable of objects; itemsize= (packed raw "
                "messages) is for fastqueue.Queue"
            )
        h = self._handle()
        encoded = [self._encode(item) for item in items]
        deadline = None
        if block and timeout is not None:
            deadline = time.monotonic() + _check_timeout(timeout)
        for done, enc in enumerate(encoded):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())

            def write(ns: int, enc: _Encoded = enc) -> int:
                return self._write(h, enc, ns)

            status = self._blocking(h, write, _FULL, block, left)
            if status == _FULL:
                items = count(len(encoded), "item")
                full = Full(f"put {done} of {items}; then the queue stayed full")
                full.done = done  # type: ignore[attr-defined]
                raise full
            if status != _OK:
                raise self._put_error(status)

    def get_many(  # type: ignore[override]  # objects, never one packed buffer
        self,
        max_items: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> list[Any]:
        """Removes up to ``max_items`` of the oldest objects: waits (as :meth:`get` does) for the
        first only, then takes what is there without waiting."""
        if itemsize is not None:
            raise ArgumentTypeError(
                "ObjectQueue.get_many returns a list of objects; itemsize= (packed raw "
                "messages) is for fastqueue.Queue"
            )
        n = _check_size(max_items, "max_items")
        h = self._handle()  # (before the get: after it, a check point would drop its object)
        out = [self.get(block, timeout)]
        try:
            while len(out) < n:
                objs = self._kept_objects
                if objs:
                    out.append(objs[0])
                    del objs[0]
                    continue
                status, obj = self._read(h, False, None)
                if status != _OK:
                    if status in (_EMPTY, _ffi.SHUTDOWN):
                        break
                    raise self._get_error(status)
                out.append(obj)
        except BaseException:
            # Signals: what was taken is not lost with the exception: the next gets return it
            # first (a single call, the first of the except clause).
            self._kept_objects.extend(out)
            raise
        return out

    # ------------------------------------------------------------------------------ asyncio

    def _nowait_putter(self, item: object) -> Callable[[], None]:
        """For aput: encodes once (errors raise now), then each call tries one write."""
        h = self._handle()
        encoded = self._encode(item)

        def attempt() -> None:
            if self._h is not h:
                raise self._closed_error()
            status = self._write(h, encoded, 0)
            if status != _OK:
                raise self._put_error(status)

        return attempt

    # ------------------------------------------------------------------------------ pickling

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the queue's name, sizes and serializer: the copy attaches."""
        if self._h is None:
            raise self._closed_error()
        ser: Any = self._serializer
        if isinstance(ser, types.ModuleType):
            ser = _ModuleRef(ser.__name__)
        args = (self._name, self._element_size, self._maxsize, False)
        return (_rebuild, (type(self), args, ser))


class JoinableQueue(Queue):
    """A :class:`~fastqueue.Queue` used as :class:`multiprocessing.JoinableQueue`: consumers call
    :meth:`task_done` for each message they finished with, and :meth:`join` waits (sleeping in
    the kernel) until every message ever put was marked done — by any process, since the
    counters live in the segment.

    Every fastqueue queue keeps this count, so :class:`~fastqueue.Queue` has ``task_done`` and
    ``join`` too; this class exists so that code written for ``multiprocessing.JoinableQueue``
    reads the same. A message that a process took and did not mark done counts as done once
    that process dies or closes its handle, so :meth:`join` never hangs on a dead worker. With
    ``redeliver=True`` such a message is delivered again instead, and :meth:`join` waits for its
    acknowledgement (see :attr:`~fastqueue.Queue.redeliver`).

    >>> import threading
    >>> with JoinableQueue(element_size=16, capacity=8) as q:
    ...     def worker():
    ...         while (job := q.get()) != b"stop":
    ...             q.task_done()
    ...         q.task_done()
    ...     t = threading.Thread(target=worker); t.start()
    ...     for i in range(5):
    ...         q.put(b"job %d" % i)
    ...     q.put(b"stop")
    ...     q.join()
    ...     t.join()
    True
    """

    def _bind(self, h: _ffi.Handle) -> None:
        super()._bind(h)
        # A join that does not wait turns on the queue's accounting of what each process takes
        # (fq_join does it), so that a worker that dies before its first task_done is counted.
        h.join(0)


class JoinableObjectQueue(ObjectQueue, JoinableQueue):
    """An :class:`ObjectQueue` used as :class:`multiprocessing.JoinableQueue` (see
    :class:`JoinableQueue`).

    >>> with JoinableObjectQueue(element_size=64, capacity=4) as q:
    ...     q.put({"n": 1}); q.get()["n"]
    ...     q.join(timeout=0)
    ...     q.task_done(); q.join(timeout=0)
    1
    False
    True
    """
