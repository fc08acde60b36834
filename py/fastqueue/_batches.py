"""Batches: :meth:`~fastqueue.Queue.put_many` and :meth:`~fastqueue.Queue.get_many`, many
messages with one library call, as a list or packed back to back (``itemsize=``).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, Final, overload

from . import _ffi
from ._args import check_size as _check_size
from ._args import check_timeout as _check_timeout
from ._args import not_bytes_like as _not_bytes_like
from ._args import one_message_given as _one_message_given
from ._core import _EMPTY, _FULL, _OK, _TRY_BIAS, QueueCore, _take_stopped
from ._errors import (
    ArgumentTypeError,
    Full,
    InvalidArgumentError,
)
from ._words import count as _count
from ._words import nbytes as _nbytes

if TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Buffer

__all__ = ["BatchMixin"]

#: What fq_take_many_exact returns for a receive buffer another thread is putting back.
_BUSY: Final = _ffi.ERR_BUSY - _TRY_BIAS

#: Types whose len() is their size in bytes: put_many joins a batch of them in one call.
_BYTES_TYPES: Final = frozenset((bytes, bytearray))
#: put_many(..., itemsize=): (itemsize >= 1, a byte count that it divides) -> the lengths of
#: the messages (all itemsize), and the same as a prepared argument (never mutated: the
#: library only reads them).
_packed_cuts: Final[dict[tuple[int, int], tuple[array[int], Any]]] = {}


class BatchMixin(QueueCore):
    """put_many / get_many (part of :class:`~fastqueue.Queue`)."""

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
                if isinstance(items, (bytes, bytearray, memoryview, str)):
                    raise _one_message_given(f"Queue({self._name!r}).put_many", items)
                try:
                    items = list(items)  # type: ignore[arg-type]
                except TypeError:
                    raise ArgumentTypeError(
                        f"Queue({self._name!r}).put_many: items must be an iterable of "
                        f"bytes-like objects (or, with itemsize=, one bytes-like object), not "
                        f"{type(items).__name__}"
                    ) from None
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
            raise ArgumentTypeError(
                f"itemsize must be an int in 1..{self._element_size} (the queue's "
                f"element_size), not {type(itemsize).__name__} ({itemsize!r})"
            )
        if not 1 <= itemsize <= self._element_size:
            raise InvalidArgumentError(
                f"itemsize={itemsize} is not allowed: it must be in 1..{self._element_size} "
                f"(the queue's element_size)"
            )
        return itemsize

    def _cut_packed(self, items: object, itemsize: object) -> tuple[bytes, array[int], Any]:
        """put_many(items, itemsize=...): (the bytes of ``items``, the length of each message,
        the lengths as a prepared argument)."""
        if isinstance(itemsize, bool) or not isinstance(itemsize, int):
            raise ArgumentTypeError(
                f"itemsize must be an int >= 1, not {type(itemsize).__name__} ({itemsize!r})"
            )
        if itemsize < 1:
            raise InvalidArgumentError(f"itemsize={itemsize} is not allowed: it must be >= 1")
        if itemsize > self._element_size:
            raise self._too_big(itemsize)
        if type(items) is bytes:
            data = items
        else:
            try:
                view = memoryview(items)  # type: ignore[arg-type]
            except TypeError:
                raise ArgumentTypeError(
                    f"put_many(items, itemsize=...) takes one bytes-like object holding the "
                    f"messages back to back, not {type(items).__name__}"
                ) from None
            with view:
                try:
                    data = _ffi.c_order_bytes(items, view)  # C order, whatever the layout
                except TypeError as exc:  # (PyPy: a layout it cannot copy reliably)
                    raise ArgumentTypeError(str(exc)) from None
        n, extra = divmod(len(data), itemsize)
        if extra:
            raise InvalidArgumentError(
                f"put_many(itemsize={itemsize}): {_nbytes(len(data))} are not a whole number of "
                f"{itemsize}-byte messages ({_count(extra, 'byte')} left over); nothing was put"
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
        for i, item in enumerate(items):
            if type(item) is bytes:
                part: object = item
                n = len(item)
            else:
                try:
                    view = memoryview(item)
                    with view:
                        n = view.nbytes
                        part = (
                            view.cast("B") if view.c_contiguous else _ffi.c_order_bytes(item, view)
                        )
                except TypeError:
                    raise _not_bytes_like(
                        f"Queue({self._name!r}).put_many: items[{i}]", item
                    ) from None
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
            full = Full(f"put {put} of {_count(total, 'item')}; then the queue stayed full")
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
            # (Stopped: something kept, handed on first by the way below.)
            if pool and h is not None and self._take is not _take_stopped:
                try:
                    entry = pool.pop()
                except IndexError:  # another thread took the last buffer meanwhile
                    pool = None
                if pool is not None:
                    if timeout is not None and block:
                        _check_timeout(timeout)
                    # Signals: the entry's held word keeps the records until they are in
                    # ``data`` (see _ffi.Held, Handle.get_many_exact).
                    try:
                        got = entry.take()
                        if got > 0:
                            data: bytes = entry.buf[: got * itemsize]  # slicing makes bytes
                            pool.append(entry)  # (a get popping it before the store: BUSY)
                            entry.word[0] = -1
                            return data
                    except BaseException:
                        w = entry.word
                        if w[0] >= 0:
                            w[0] = -2 - w[0]
                            self._take = _take_stopped
                            h.kept.append(entry)  # (the first call: see Handle.get_many)
                            if entry in pool:
                                pool.remove(entry)
                        raise
                    if got != _BUSY:
                        pool.append(entry)  # empty, or an error: the way below tells
        h = self._h
        if h is None:
            raise self._closed_error()
        if self._pending is not None:
            self._raise_pending()
        if self._take is _take_stopped or h.kept or self._kept_msgs:
            self._drain_kept(h)  # taken by an interrupted get: these come first
            km = self._kept_msgs
            if km:
                k = max_items if type(max_items) is int and max_items > 0 else 1
                if itemsize is None:
                    out = km[:k]
                    del km[:k]  # (no call between this and the return: no signal lands there)
                    return out
                size = self._check_itemsize(itemsize)
                same = 0
                while same < min(k, len(km)) and len(km[same]) == size:
                    same += 1
                if not same:
                    raise InvalidArgumentError(
                        f"Queue({self._name!r}).get_many: the next message is {len(km[0])} "
                        f"bytes long, not itemsize={size}; it was left in the queue (take it "
                        f"with get())"
                    )
                data = b"".join(km[:same])
                del km[:same]  # (as above)
                return data
            self._restore_take(h)
        n = (
            max_items
            if type(max_items) is int and max_items > 0
            else _check_size(max_items, "max_items")
        )
        t = None if timeout is None or not block else _check_timeout(timeout)
        # Signals: Handle.get_many keeps a batch that a handler's exception interrupts before
        # it returns (see there). Once it has returned, nothing here may be a check point
        # before the return: no call, not even type() (a call while this code is still cold,
        # in a process's first calls: a batch lost there). ``.__class__`` is an attribute.
        # PyPy may run a handler before any bytecode: one that lands once ``result`` holds the
        # batch is deferred (see _defer) and the batch returned.
        result: list[bytes] | int | None = None
        try:
            if itemsize is not None:
                return self._get_many_exact(h, n, block, t, itemsize)
            result = h.get_many(n, 0)
            if result.__class__ is list:
                return result
            if result == _EMPTY and block:
                result = self._retry(h, lambda ns: h.get_many(n, ns), _EMPTY, t)
                if result.__class__ is list:
                    return result
        except BaseException as exc:
            if result.__class__ is list:  # (never on CPython: no check point after the take)
                self._defer(exc)
                return result
            if h.kept:
                self._take = _take_stopped  # the next get hands the kept batch on first
            raise
        raise self._get_error(result)  # type: ignore[arg-type]  # an int

    def _get_many_exact(
        self, h: _ffi.Handle, n: int, block: bool, t: float | None, itemsize: object
    ) -> bytes:
        """get_many(n, itemsize=k): the packed form (``t``: the validated timeout)."""
        k = self._check_itemsize(itemsize)
        exact = self._exact
        if type(itemsize) is int and (k, n) not in exact and len(exact) < 64:
            exact[(k, n)] = h.exact_pool(k, n)  # (before the take: signals, as get_many's)
        result = h.get_many_exact(k, n, 0)
        if result.__class__ is bytes:
            return result
        if result == _EMPTY and block:
            result = self._retry(h, lambda ns: h.get_many_exact(k, n, ns), _EMPTY, t)
            if result.__class__ is bytes:
                return result
        if type(result) is tuple:
            raise InvalidArgumentError(
                f"Queue({self._name!r}).get_many: the next message is {_nbytes(result[1])} long, "
                f"not itemsize={k}; it was left in the queue (take it with get())"
            )
        raise self._get_error(result)  # type: ignore[arg-type]  # an int
