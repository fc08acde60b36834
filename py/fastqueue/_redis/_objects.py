"""Queues of Python objects over a Redis stream: :class:`RedisObjectQueue` and
:class:`JoinableRedisObjectQueue`, :class:`~fastqueue.ObjectQueue`'s behaviour across hosts.

The object layer is :class:`fastqueue._codec.ObjectCodec`, the one ObjectQueue uses: the same
frame (pickle protocol 5, numpy arrays and other ``PickleBuffer`` s out of band, aligned), the
same ``serializer=`` option and default, the same errors. A frame is one stream entry. On
``get`` the frame is cut out of the reply into memory of its own, writable, so that a numpy
array comes back writable and aligned, as from an ObjectQueue (a frame without out-of-band
buffers is decoded from a bytes slice).

Usage (needs a Redis server)::

    q = fastqueue.RedisObjectQueue("redis://localhost:6379/0/jobs", maxsize=1000)
    q.put({"job": 1, "data": numpy.zeros(10)}); q.get()
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from .._args import check_size as _check_size
from .._codec import ModuleRef, ObjectCodec, Serializer, check_serializer, needs_own_memory
from .._errors import ArgumentTypeError
from ._queue import RedisQueue

__all__ = ["JoinableRedisObjectQueue", "RedisObjectQueue"]

#: Bytes 4..8 of a frame without out-of-band buffers (their count, 0).
_NO_BUFFERS = b"\0\0\0\0"


def _own_memory_cut(data: bytes, start: int, end: int) -> Any:
    """A frame out of a take's reply: writable memory of its own if it has out-of-band
    buffers (numpy arrays), else a bytes slice (one copy either way)."""
    if data[start + 4 : start + 8] != _NO_BUFFERS and needs_own_memory(data, start, end):
        return bytearray(memoryview(data)[start:end])
    return data[start:end]


class RedisObjectQueue(ObjectCodec, RedisQueue):
    """A :class:`~fastqueue.RedisQueue` of Python objects, as :class:`~fastqueue.ObjectQueue`
    is a :class:`~fastqueue.Queue` of them: ``put`` takes any picklable object (numpy arrays
    included), ``get`` returns an equal one, on whichever host gets it.

    ``RedisObjectQueue(url, *, maxsize=None, element_size=None, claim_after=30.0,
    redeliver=None, create=True, serializer=None)``

    Everything else is :class:`~fastqueue.RedisQueue`'s (the stream's maxsize, waiting,
    ``shutdown``, ``task_done`` / ``join``, ``redeliver``, pickling the handle to a child).
    ``element_size``, when given, bounds an object's encoding. ``put`` encodes the object
    first: an unpicklable object raises the pickling error and one whose encoding is too long
    raises :class:`~fastqueue.MessageTooBigError`; the stream is unchanged either way. An object
    whose unpickling fails in ``get`` raises that error; the message is then consumed.
    ``get_slot`` hands over the frame (bytes), as ObjectQueue's does.
    """

    _label = "RedisObjectQueue"
    _codec_label = "RedisObjectQueue"

    def __init__(
        self,
        url: str,
        *,
        maxsize: int | None = None,
        element_size: int | None = None,
        claim_after: float = 30.0,
        redeliver: bool | None = None,
        create: bool = True,
        serializer: Serializer | None = None,
    ) -> None:
        self._serializer = check_serializer(serializer)
        # A custom serializer's loads gets bytes, as from an ObjectQueue.
        self._cut = None if serializer is not None else _own_memory_cut
        super().__init__(
            url,
            maxsize=maxsize,
            element_size=element_size,
            claim_after=claim_after,
            redeliver=redeliver,
            create=create,
        )

    def _check_item(self, item: object) -> Any:
        """The object's frame, one buffer (the encoding errors of ObjectQueue)."""
        return self._frame(item)

    def put_many(  # type: ignore[override]  # objects, never one packed buffer
        self,
        items: Iterable[object],
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> None:
        """Puts every object of ``items`` in order, in one round trip when they fit. All are
        encoded first: one that cannot be (or is too big) rejects the whole batch and nothing
        is put. If the stream stays full, :class:`~fastqueue.Full` says how many were put in
        its ``done`` attribute."""
        if itemsize is not None:
            raise ArgumentTypeError(
                f"{self._label}.put_many takes an iterable of objects; itemsize= (packed raw "
                "messages) is for fastqueue.RedisQueue"
            )
        frame = self._frame
        batch: list[Any] = [frame(item) for item in items]
        if batch:
            self._put_batch(batch, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes the oldest object and returns it (see :meth:`RedisQueue.get
        <fastqueue.RedisQueue.get>`)."""
        return self._decode(self._get_batch(1, block, timeout, True)[1][0])

    def get_nowait(self) -> Any:
        """``get(block=False)``: raises :class:`~fastqueue.Empty` at once if there is none."""
        return self.get(block=False)

    def get_many(
        self,
        max_items: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> list[Any]:
        """Removes up to ``max_items`` of the oldest objects in one round trip: waits (as
        :meth:`get` does) for the first only, then takes what is there."""
        if itemsize is not None:
            raise ArgumentTypeError(
                f"{self._label}.get_many returns a list of objects; itemsize= (packed raw "
                "messages) is for fastqueue.RedisQueue"
            )
        n = _check_size(max_items, "max_items")
        decode = self._decode
        return [decode(frame) for frame in self._get_batch(n, block, timeout, True)[1]]

    def _out(self, frame: Any) -> Any:
        return self._decode(frame)  # (aget)

    def _settings(self) -> dict[str, Any]:
        ser: Any = self._serializer
        if isinstance(ser, types.ModuleType):
            ser = ModuleRef(ser.__name__)
        return {**super()._settings(), "serializer": ser}


class JoinableRedisObjectQueue(RedisObjectQueue):
    """A :class:`RedisObjectQueue` used as :class:`multiprocessing.JoinableQueue` across hosts:
    consumers call :meth:`task_done` for each object they finished with, and :meth:`join`
    waits until every object ever put was marked done, by any handle. (Every RedisQueue keeps
    this count; this class exists so that code written for ``JoinableObjectQueue`` reads the
    same. With ``redeliver=True`` an object whose worker died is delivered again.)
    """

    _label = "JoinableRedisObjectQueue"
