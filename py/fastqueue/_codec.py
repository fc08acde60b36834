"""The object layer of fastqueue, over any transport: how an object becomes the bytes of one
message (a *frame*) and back, with the ``serializer=`` option and its errors. :class:`ObjectCodec`
is a mixin of :class:`~fastqueue.ObjectQueue` (frames written straight into shared-memory
slots) and of the object queues over Redis (a frame is one stream entry), so both encode, decode
and fail alike.

The frame of the default serializer (pickle protocol 5 with out-of-band buffers), all integers
little-endian::

    b"FQO5" | u32 number of buffers k | u64 pickle length | k x u64 buffer lengths
    | the pickle stream | each buffer, starting at a multiple of 16 bytes from the frame's start

A custom serializer's frame is exactly what its ``dumps`` returned (a ``str`` UTF-8 encoded).
"""

from __future__ import annotations

import importlib
import pickle
import struct
from typing import Any, Final, Protocol

from . import _ffi
from ._errors import ArgumentTypeError, InvalidArgumentError, MessageTooBigError
from ._words import nbytes

__all__ = [
    "Encoded",
    "ModuleRef",
    "ObjectCodec",
    "Serializer",
    "check_serializer",
    "joined",
    "needs_own_memory",
]

#: First bytes of a frame of the default serializer, and its fixed part: tag, number of
#: out-of-band buffers, length of the pickle stream.
_TAG: Final = b"FQO5"
_HEAD: Final = struct.Struct("<4sIQ")
_LEN: Final = struct.Struct("<Q")
#: Out-of-band buffers start at multiples of this many bytes from the frame's start (the copy
#: made on get is malloc-aligned, so numpy arrays of any dtype come out aligned).
_ALIGN: Final = 16
#: The first 8 bytes of a frame without out-of-band buffers.
_NO_BUFFERS: Final = _TAG + b"\0\0\0\0"


class Serializer(Protocol):
    """What ``serializer=`` takes: ``dumps(obj) -> bytes-like`` and ``loads(bytes) -> obj``
    (e.g. the ``json`` module, or ``msgpack``)."""

    def dumps(self, obj: Any, /) -> Any: ...

    def loads(self, data: bytes, /) -> Any: ...


#: An encoded object: [(offset in the frame, bytes-like part)], and the frame's total length.
Encoded = tuple[list[tuple[int, Any]], int]


class ModuleRef:
    """Pickles a serializer that is a module (``json``) by its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, (self.name,))


def check_serializer(serializer: object) -> Serializer | None:
    """``serializer`` if it is None or has ``dumps`` and ``loads``; else a clear TypeError."""
    if serializer is not None and not (
        callable(getattr(serializer, "dumps", None))
        and callable(getattr(serializer, "loads", None))
    ):
        raise ArgumentTypeError(
            "serializer must have dumps(obj) -> bytes-like and loads(bytes) -> obj methods "
            f"(e.g. the json module), not {type(serializer).__name__}"
        )
    return serializer  # type: ignore[return-value]


def joined(encoded: Encoded) -> bytes | memoryview:
    """The frame of an encoded object as one buffer (for transports that send a message as one
    buffer; the gaps before aligned buffers are zeros): bytes, or a memoryview of format B."""
    parts, total = encoded
    if len(parts) == 1:
        part: bytes | memoryview = parts[0][1]
        return part
    if len(parts) == 2:  # no out-of-band buffer: the head and the pickle stream, both bytes
        return parts[0][1] + parts[1][1]  # type: ignore[no-any-return]
    out = bytearray(total)
    for offset, part in parts:
        n = len(part) if isinstance(part, bytes) else part.nbytes
        out[offset : offset + n] = part
    return bytes(out) if total < 4096 else memoryview(out)


def needs_own_memory(data: bytes, start: int, end: int) -> bool:
    """True if the default serializer's frame at ``data[start:end]`` has out-of-band buffers:
    decoded, they must lie in writable memory of the frame's own (a numpy array comes back
    writable and outlives the message); a frame without them decodes from any bytes."""
    return end - start >= _HEAD.size and data[start + 4 : start + 8] != b"\0\0\0\0"


class ObjectCodec:
    """Encoding and decoding of objects for a queue that has ``_serializer``, ``_element_size``
    (None: no bound) and ``_name``. ``_decode`` of the default serializer wants a writable
    frame of its own (numpy arrays unpickled over it are writable and outlive the message)."""

    _serializer: Serializer | None = None
    _element_size: Any  # int, or None (no bound)
    _name: Any
    #: The class named in a frame error.
    _codec_label: str = "ObjectQueue"

    @property
    def serializer(self) -> Serializer | None:
        """The ``serializer=`` given, or None for pickle protocol 5 with out-of-band buffers."""
        return self._serializer

    # ------------------------------------------------------------------------------ encoding

    def _encode(self, obj: object) -> Encoded:
        """The parts of obj's frame; raises the serializer's error, or MessageTooBigError."""
        ser = self._serializer
        if ser is not None:
            out = ser.dumps(obj)
            out = out.encode() if isinstance(out, str) else out
            data = memoryview(out)
            if not data.c_contiguous:
                data = memoryview(_ffi.c_order_bytes(out, data))
            data = data.cast("B")
            parts: list[tuple[int, Any]] = [(0, data)]
            total = data.nbytes
        else:
            buffers: list[pickle.PickleBuffer] = []
            stream = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
            if not buffers:  # the common case, made short: the head and the stream
                total = _HEAD.size + len(stream)
                if self._element_size is not None and total > self._element_size:
                    raise self._too_big(total)
                return [(0, _HEAD.pack(_TAG, 0, len(stream))), (_HEAD.size, stream)], total
            try:
                raws = [b.raw() for b in buffers]
            except BufferError:  # an out-of-band buffer that is not contiguous: go in-band
                stream = pickle.dumps(obj, protocol=5)
                raws = []
            head = _HEAD.pack(_TAG, len(raws), len(stream)) + b"".join(
                _LEN.pack(r.nbytes) for r in raws
            )
            parts = [(0, head), (len(head), stream)]
            total = len(head) + len(stream)
            for raw in raws:
                total = -(-total // _ALIGN) * _ALIGN
                parts.append((total, raw))
                total += raw.nbytes
        if self._element_size is not None and total > self._element_size:
            raise self._too_big(total)
        return parts, total

    def _frame(self, obj: object) -> bytes | memoryview:
        """obj's frame as one buffer (for transports that send a message as one), the errors
        of :meth:`_encode`. An object without out-of-band buffers takes a short path (one
        pickling, one concatenation); one with them is pickled again by ``_encode`` (cheap:
        out-of-band data is not copied by pickling)."""
        if self._serializer is None:
            buffers: list[pickle.PickleBuffer] = []
            stream = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
            if not buffers:
                total = _HEAD.size + len(stream)
                if self._element_size is not None and total > self._element_size:
                    raise self._too_big(total)
                return _HEAD.pack(_TAG, 0, len(stream)) + stream
        return joined(self._encode(obj))

    def _too_big(self, total: int) -> MessageTooBigError:
        return MessageTooBigError(
            f"{self._codec_label}({self._name!r}).put: the object encodes to {nbytes(total)}, "
            f"more than the queue's element_size of {nbytes(self._element_size)}; create the "
            f"queue with element_size={total} or more, or put smaller objects"
        )

    def _decode(self, frame: bytes | memoryview) -> Any:
        ser = self._serializer
        if ser is not None:
            return ser.loads(frame)  # type: ignore[arg-type]  # bytes for custom serializers
        if (  # the common case, made short: no out-of-band buffers
            type(frame) is bytes
            and frame[:8] == _NO_BUFFERS
            and len(frame) == _HEAD.size + _LEN.unpack_from(frame, 8)[0]
        ):
            return pickle.loads(frame[_HEAD.size :])
        view = memoryview(frame)
        size = view.nbytes
        if size < _HEAD.size or view[:4].tobytes() != _TAG:
            raise InvalidArgumentError(self._not_a_frame(size))
        _, count, stream_len = _HEAD.unpack_from(frame)
        at = _HEAD.size + count * _LEN.size
        if at > size:
            raise InvalidArgumentError(self._not_a_frame(size))
        lens = [_LEN.unpack_from(frame, _HEAD.size + i * _LEN.size)[0] for i in range(count)]
        stream = view[at : at + stream_len]
        at += stream_len
        buffers = []
        for n in lens:
            at = -(-at // _ALIGN) * _ALIGN
            buffers.append(view[at : at + n])
            at += n
        if at > size:
            raise InvalidArgumentError(self._not_a_frame(size))
        return pickle.loads(stream, buffers=buffers)

    def _not_a_frame(self, size: int) -> str:
        return (
            f"{self._codec_label}({self._name!r}).get: a message of {size} bytes is not an "
            f"object put by an {self._codec_label} with the default serializer (was it put by a "
            "plain Queue, or with another serializer=?); it was consumed"
        )
