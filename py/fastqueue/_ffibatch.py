"""The batch operations of the raw layer's :class:`~fastqueue._ffi.Handle`: ``put_many`` /
``get_many`` (many messages with one library call, as a list) and ``get_many_exact`` (packed back
to back), with the receive buffers they reuse. :class:`BatchOps` is a base class of ``Handle``.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import sys
from array import array
from ctypes import (
    byref,
    c_int64,
    c_uint64,
)
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final

from ._ffiheld import (
    _take_many_exact_now,
    _take_many_exact_wait,
    _take_many_now,
    _take_many_wait,
)
from ._library import (
    _NOW,
    EMPTY,
    ERR_BUFFER,
    ERR_BUSY,
    GET_COPY_LIMIT,
    OK,
    TRY_BIAS,
    _arg_i64,
    _arg_ptr,
    _arg_u64,
    _get_many_exact_wait,
    _put_many_now,
    _put_many_wait,
    _try_put_many_now,
    _u64_args,
    array_arg,
)

__all__ = ["BatchOps"]


def _no_handover() -> int:
    return EMPTY - TRY_BIAS


class _Batch:
    """The receive side of one fq_get_many: a buffer for the messages, back to back, an
    ``array('Q')`` for their lengths, the count, and all as prepared arguments."""

    __slots__ = (
        "buf",
        "buf_arg",
        "cap_arg",
        "count",
        "count_arg",
        "handover",
        "lens",
        "lens_arg",
        "max_items",
        "now",
        "word",
        "word_arg",
    )

    #: The buffer holds max_items messages of max_msg bytes, but at most this many bytes (and at
    #: least one message of up to GET_COPY_LIMIT bytes): get_many stops at a message that does
    #: not fit; a first message that does not fit is taken in place.
    MAX_BYTES: Final = 1 << 20
    #: To cut a buffer into equal-length messages: (length, count) -> (a Struct that unpacks
    #: them, the lengths array's bytes when all ``count`` lengths are ``length``).
    _splitters: ClassVar[dict[tuple[int, int], tuple[struct.Struct, bytes]]] = {}

    def __init__(self, max_msg: int, max_items: int) -> None:
        cap = max(min(max_msg, GET_COPY_LIMIT), min(max_items * max_msg, self.MAX_BYTES))
        self.max_items = max_items
        self.buf = ctypes.create_string_buffer(cap)
        self.buf_arg = byref(self.buf)
        self.cap_arg = _arg_u64(cap)
        self.lens = array("Q", bytes(8 * max_items))
        self.lens_arg = _arg_ptr(self.lens.buffer_info()[0])  # never resized
        self.count = c_uint64(0)
        self.count_arg = byref(self.count)
        #: max_items -> fq_take_many into this batch that never waits, every argument bound
        #: (one batch serves one handle: the pool is the handle's).
        self.now: dict[int, Callable[[], int]] = {}
        #: The held word (see _ffi.Held): the number of messages handed over and not yet
        #: consumed, or -(n + 2) for n kept.
        self.word = array("q", [-1])
        self.word_arg = byref((c_int64 * 1).from_buffer(self.word))
        #: fq_take_many into this batch that never waits (hands kept messages over again)
        self.handover: Callable[[], int] = _no_handover

    def extract(self, n: int) -> list[bytes]:
        """The ``n`` messages handed over (see _ffi.Held.extract)."""
        return self.messages(n)

    def messages(self, n: int) -> list[bytes]:
        """The ``n`` messages the last fq_get_many left in the buffer, as bytes."""
        first = self.lens[0]
        split = self._splitters.get((first, n))
        if split is None:
            split = (struct.Struct(f"{first}s" * n), first.to_bytes(8, sys.byteorder) * n)
            if len(self._splitters) < 256:
                self._splitters[(first, n)] = split
        # All of one length (the common case): one C call cuts them all. The lengths are
        # compared as bytes (perf/: 4x cheaper than counting them as ints).
        if self.lens.tobytes().startswith(split[1]):
            return list(split[0].unpack_from(self.buf))
        buf = self.buf
        out: list[bytes] = []
        start = 0
        for length in self.lens[:n]:
            end = start + length
            out.append(buf[start:end])  # type: ignore[arg-type]
            start = end
        return out


class _Taken:
    """Messages a get had out of its receive buffer, the buffer's word already stored free,
    when an exception from a signal handler landed before it returned (PyPy may run one before
    any bytecode): kept in ``Handle.kept`` like a kept buffer (the same protocol: see
    QueueCore._drain_kept), so that the queue's next get hands them on first."""

    __slots__ = ("msgs", "word")

    def __init__(self, msgs: list[bytes]) -> None:
        self.msgs = msgs
        self.word = array("q", [-2 - len(msgs)])  # kept: -(n + 2)

    def handover(self) -> int:
        w = self.word
        if w[0] <= -2:
            w[0] = -2 - w[0]
            return w[0]
        return EMPTY - TRY_BIAS

    def extract(self, n: int) -> list[bytes]:
        return self.msgs[:n]


class _Exact:
    """The receive side of fq_get_many_exact for one handle, itemsize and count: the buffer
    (slicing it makes the bytes returned), and the non-waiting call with every argument
    bound."""

    __slots__ = (
        "buf",
        "buf_arg",
        "count",
        "count_arg",
        "itemsize",
        "max_arg",
        "size_arg",
        "take",
        "word",
        "word_arg",
    )

    #: At most this many bytes per call (max_items is cut down to fit, but is at least 1).
    MAX_BYTES: Final = 1 << 20

    @staticmethod
    def fitting(itemsize: int, max_items: int) -> int:
        """``max_items`` cut down so that the messages fit in MAX_BYTES (at least 1)."""
        return max(1, min(max_items, _Exact.MAX_BYTES // max(itemsize, 1)))

    def __init__(self, h: BatchOps, itemsize: int, max_items: int) -> None:
        self.buf = ctypes.create_string_buffer(max(1, itemsize * max_items))
        self.buf_arg = byref(self.buf)
        self.size_arg = _arg_u64(itemsize)
        self.max_arg = _arg_u64(max_items)
        self.count = c_uint64(0)
        self.count_arg = byref(self.count)
        self.itemsize = itemsize
        self.word = array("q", [-1])
        self.word_arg = byref((c_int64 * 1).from_buffer(self.word))
        #: fq_take_many_exact into this buffer that never waits: the number of records, or
        #: ``status - TRY_BIAS``; the caller stores -1 in ``word`` once it has them (see
        #: _ffi.Held).
        self.take: Callable[[], int] = functools.partial(
            _take_many_exact_now,
            h._arg,
            self.buf_arg,
            self.size_arg,
            self.max_arg,
            self.word_arg,
            _NOW,
        )

    def handover(self) -> int:
        """See _ffi.Held.handover."""
        return self.take()

    def extract(self, n: int) -> list[bytes]:
        """The ``n`` records handed over, one bytes each (see _ffi.Held.extract)."""
        k = self.itemsize
        data: bytes = self.buf[: n * k]  # type: ignore[assignment]  # slicing makes bytes
        return [data[i * k : (i + 1) * k] for i in range(n)]


class BatchOps:
    """Handle's batch operations (see :class:`~fastqueue._ffi.Handle`, which holds the state)."""

    __slots__ = ()

    if TYPE_CHECKING:
        _arg: Any
        max_msg: int
        _many: list[_Batch]
        _exact: dict[tuple[int, int], list[_Exact]]
        kept: list[Any]

        def get_big(self) -> list[bytes] | int: ...

    def bind_put_packed(self, lens: array[int]) -> Callable[[bytes], int]:
        """fq_try_put_many with this handle and the lengths ``lens`` bound, for put_many's hot
        path: ``f(data)`` puts ``data`` (bytes, ``sum(lens)`` long) cut at ``lens``; returns the
        number of messages put (the first ones), or ``status - TRY_BIAS``. Never waits, keeps
        the GIL, keeps this handle (and ``lens``) alive while anyone holds it."""
        bound = functools.partial(
            _try_put_many_now, self._arg, array_arg(lens), _u64_args[len(lens)]
        )
        bound.handle = self  # type: ignore[attr-defined]
        bound.lens = lens  # type: ignore[attr-defined]
        return bound

    def put_many(
        self, data: bytes, lens: array[int], timeout_ns: int, lens_arg: Any = None
    ) -> tuple[int, int]:
        """fq_put_many of ``data`` cut at ``lens`` (an ``array('Q')``; ``lens_arg``, if given,
        is :func:`array_arg` of it, made once for a lengths array that is reused); returns
        (status, number of messages put). Keeps the GIL when timeout_ns is 0."""
        done = c_uint64(0)
        if lens_arg is None:
            lens_arg = _arg_ptr(lens.buffer_info()[0])  # lens stays alive meanwhile
        if timeout_ns == 0:
            status = _put_many_now(
                self._arg, data, lens_arg, _u64_args[len(lens)], _NOW, byref(done)
            )
        else:
            status = _put_many_wait(
                self._arg, data, lens_arg, _u64_args[len(lens)], _arg_i64(timeout_ns), byref(done)
            )
        return int(status), done.value

    def _take_now(self, batch: _Batch, max_items: int) -> Any:
        """fq_take_many of up to ``max_items`` messages into ``batch``, never waiting, bound to
        this handle: a batch's prepared call (``batch.now``) and its handover."""
        return functools.partial(
            _take_many_now,
            self._arg,
            batch.buf_arg,
            batch.cap_arg,
            batch.lens_arg,
            _u64_args[max_items],
            batch.word_arg,
            _NOW,
        )

    def get_many(self, max_items: int, timeout_ns: int) -> list[bytes] | int:
        """fq_take_many of up to ``max_items`` messages: the messages, or the status as an int.
        Keeps the GIL when timeout_ns is 0.

        Signals: the batch's held word (see _ffi.Held) describes the messages taken until they
        are in the list returned; an exception from a signal handler that lands before that
        keeps them there and puts the batch in ``kept`` (the queue's next get hands them on).

        FQ_ERR_BUSY (the batch popped is another thread's still: it put it back a moment before
        it stored its word) leaves that batch to it and tries again with the next one: each
        round takes one batch out of the pool, and a new batch is never busy, so this ends
        after at most ``len(pool) + 1`` rounds (a loop, not a recursion: the pool may be long).
        """
        pool = self._many
        out: list[bytes] | int | None = None
        while True:
            batch = pool.pop() if pool else None
            if batch is None or batch.max_items < max_items:
                batch = _Batch(self.max_msg, max_items)
                batch.handover = self._take_now(batch, max_items)  # (see _ffi.Held.handover)
            try:
                if timeout_ns == 0:
                    take = batch.now.get(max_items)
                    if take is None:  # the prepared call for this handle and count
                        take = batch.now[max_items] = self._take_now(batch, max_items)
                    n = take()
                else:
                    n = _take_many_wait(
                        self._arg,
                        batch.buf_arg,
                        batch.cap_arg,
                        batch.lens_arg,
                        _u64_args[max_items],
                        batch.word_arg,
                        _arg_i64(timeout_ns),
                    )
                if n > 0:  # the common case, shortest way
                    out = batch.messages(n)
                    pool.append(batch)  # (a get that pops it before the store below: BUSY)
                    batch.word[0] = -1
                    return out
            except BaseException:
                # Stores, then the append as the first call: no second signal lands before it.
                w = batch.word
                if w[0] >= 0:
                    w[0] = -2 - w[0]
                    self.kept.append(batch)
                    if batch in pool:
                        pool.remove(batch)
                elif out.__class__ is list:  # (PyPy: after the store, before the return)
                    self.kept.append(_Taken(out))
                raise
            status = n + TRY_BIAS
            if status != ERR_BUSY:
                break
        pool.append(batch)
        if status == ERR_BUFFER:  # the first message is longer than the buffer
            return self.get_big()
        return int(status)

    def exact_pool(self, itemsize: int, max_items: int) -> list[_Exact]:
        """The pool of get_many_exact buffers for ``itemsize`` and ``max_items`` (cut down as
        _Exact.fitting does): list.pop()/append() give each thread its own buffer. A caller
        may pop an entry, call ``entry.take()`` and put the entry back, as get_many_exact
        does (Queue.get_many's hot path)."""
        key = (itemsize, _Exact.fitting(itemsize, max_items))
        pool = self._exact.get(key)
        if pool is None:
            pool = self._exact.setdefault(key, [])
        return pool

    def get_many_exact(
        self, itemsize: int, max_items: int, timeout_ns: int
    ) -> bytes | int | tuple[int, int]:
        """fq_get_many_exact of up to ``max_items`` messages of exactly ``itemsize`` bytes (fewer
        if they would not fit in _Exact.MAX_BYTES): their bytes back to back; or the status as
        an int; or ``(ERR_BUFFER, length)`` when the first message has another length (it stays
        queued). Keeps the GIL when timeout_ns is 0. FQ_ERR_BUSY: as get_many."""
        pool = self.exact_pool(itemsize, max_items)
        while True:
            entry = (
                pool.pop() if pool else _Exact(self, itemsize, _Exact.fitting(itemsize, max_items))
            )
            # Signals: as get_many (the entry's held word).
            try:
                if timeout_ns == 0:
                    n = entry.take()
                else:
                    n = _take_many_exact_wait(
                        self._arg,
                        entry.buf_arg,
                        entry.size_arg,
                        entry.max_arg,
                        entry.word_arg,
                        _arg_i64(timeout_ns),
                    )
                if n > 0:  # the common case, shortest way
                    out: bytes | int | tuple[int, int] = entry.buf[: n * itemsize]  # type: ignore[assignment]
                    pool.append(entry)  # (a get that pops it before the store below: BUSY)
                    entry.word[0] = -1
                    return out
            except BaseException:
                w = entry.word  # (as get_many's)
                if w[0] >= 0:
                    w[0] = -2 - w[0]
                    self.kept.append(entry)
                    if entry in pool:
                        pool.remove(entry)
                raise
            status = n + TRY_BIAS
            if status != ERR_BUSY:  # (BUSY: another thread is putting it back: use another)
                break
        if status == ERR_BUFFER:  # ask the way that tells the length of the message in the way
            status = _get_many_exact_wait(
                self._arg,
                entry.buf_arg,
                entry.size_arg,
                entry.max_arg,
                entry.count_arg,
                _NOW,
            )
            if status == OK:  # (another consumer took the one in the way: not kept, rare)
                out = entry.buf[: entry.count.value * itemsize]  # type: ignore[assignment]
                pool.append(entry)
                return out
        count = entry.count.value
        if status == OK:
            out = entry.buf[: count * itemsize]  # type: ignore[assignment]
        elif status == ERR_BUFFER:
            out = (ERR_BUFFER, count)
        else:
            out = int(status)
        pool.append(entry)
        return out
