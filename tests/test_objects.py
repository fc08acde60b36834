"""fastqueue.ObjectQueue: any picklable object in, an equal one out; numpy arrays out-of-band
(one copy in, one out, the result owns its memory); custom serializers; errors leave the queue
unchanged; JoinableQueue / JoinableObjectQueue are the same queues with the multiprocessing name."""

from __future__ import annotations

import datetime
import decimal
import fractions
import hashlib
import json
import multiprocessing
import pickle
import platform
import struct
import threading
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import _obj_children as children
import fastqueue
from fastqueue import JoinableObjectQueue, JoinableQueue, ObjectQueue, Queue

NameFactory = Callable[[], str]
IS_PYPY = platform.python_implementation() == "PyPy"

try:
    import numpy as np
except ImportError:  # only tolerated on PyPy, where numpy is optional (see just test-pypy)
    if not IS_PYPY:
        raise
    np = None  # type: ignore[assignment]

needs_numpy = pytest.mark.skipif(np is None, reason="numpy is not installed for this PyPy")

SPAWN = multiprocessing.get_context("spawn")


# ------------------------------------------------------------------------------ plain objects

VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**100),
    1.5,
    complex(1, -2),
    "text é ✓",
    b"bytes\x00",
    bytearray(b"mutable"),
    [1, [2, [3]]],
    (1, "a", None),
    {"k": [1, 2], 3: {"nested": True}},
    {1, 2, 3},
    frozenset({"a"}),
    range(3, 10, 2),
    decimal.Decimal("1.10"),
    fractions.Fraction(3, 7),
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    ValueError("an exception"),
    b"",
    "",
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_of_builtin_objects(qname: NameFactory, value: Any) -> None:
    with ObjectQueue(qname(), element_size=4096, capacity=4) as q:
        q.put(value)
        got = q.get(timeout=5)
        if isinstance(value, Exception):
            assert type(got) is type(value) and got.args == value.args
        else:
            assert got == value and type(got) is type(value)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner) | st.tuples(inner, inner),
    max_leaves=30,
)


@given(items=st.lists(json_like, max_size=12))
def test_hypothesis_objects_come_out_equal_and_in_order(items: list[Any]) -> None:
    with ObjectQueue(element_size=1 << 16, capacity=16) as q:
        for item in items:
            q.put(item)
        assert [q.get_nowait() for _ in items] == items
        with pytest.raises(fastqueue.Empty):
            q.get_nowait()


def test_out_of_band_pickle_buffer(qname: NameFactory) -> None:
    data = bytearray(range(256)) * 10
    with ObjectQueue(qname(), element_size=8192, capacity=2) as q:
        q.put(pickle.PickleBuffer(data))
        got = q.get()
        # A PickleBuffer unpickles as the buffer it was given: a memoryview over our copy.
        assert bytes(got) == bytes(data)


def test_objects_cross_processes_both_ways(qname: NameFactory) -> None:
    values = [v for v in VALUES if not isinstance(v, Exception)]
    with (
        ObjectQueue(qname(), element_size=4096, capacity=4) as q,
        ObjectQueue(qname(), element_size=8192, capacity=4) as back,
    ):
        p = SPAWN.Process(target=children.echo_objects, args=(q, back, len(values)))
        p.start()
        try:
            for v in values:
                q.put(v, timeout=60)
                assert back.get(timeout=60) == (type(v).__name__, v)
        finally:
            p.join(60)
        assert p.exitcode == 0


# ------------------------------------------------------------------------------ numpy


def _arrays() -> list[Any]:
    rng = np.random.default_rng(5)
    base = rng.standard_normal((64, 48))
    return [
        np.arange(10, dtype=np.int8),
        np.arange(1000, dtype=np.uint16).reshape(10, 100),
        base,  # float64, C order
        np.asfortranarray(base),  # F order: out-of-band too
        base[::2, ::3],  # non-contiguous: pickled in-band
        base.T,  # a transposed view (F-contiguous)
        base.astype(np.float32)[:, 5],  # a strided column
        (base + 1j * base).astype(np.complex128),
        base > 0,  # bool
        np.array(3.5),  # 0-d
        np.zeros((0, 7)),  # empty
        np.array([("a", 1, 2.0), ("bc", -3, 4.5)], dtype=[("s", "U2"), ("i", "<i4"), ("f", ">f8")]),
        np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]"),
        np.array(["x", "yy", "zzz"], dtype=object),  # object dtype: in-band pickle
        rng.integers(0, 2**63, size=(3, 4, 5), dtype=np.uint64),
    ]


@needs_numpy
def test_numpy_round_trips_of_many_dtypes_and_shapes(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=1 << 16, capacity=4) as q:
        for a in _arrays():
            q.put(a)
            b = q.get(timeout=5)
            assert type(b) is np.ndarray
            assert b.dtype == a.dtype and b.shape == a.shape
            np.testing.assert_array_equal(b, a)
            assert b.flags.writeable
            out_of_band = a.flags.c_contiguous or a.flags.f_contiguous
            if out_of_band or not IS_PYPY:
                # (numpy on PyPy unpickles in-band data unaligned, whatever the transport.)
                assert b.flags.aligned
            if a.flags.f_contiguous and not a.flags.c_contiguous:
                assert b.flags.f_contiguous  # the layout travels too


@needs_numpy
def test_numpy_array_data_goes_out_of_band_into_the_slot(qname: NameFactory) -> None:
    # Read the raw frame with a plain Queue on the same segment: the array's bytes must sit in
    # it verbatim (after a small pickle), at a 16-byte aligned offset: written straight from
    # the array, not pickled in-band.
    name = qname()
    a = np.arange(4096, dtype=np.float64)
    with ObjectQueue(name, element_size=1 << 16, capacity=2) as q, Queue(name, create=False) as raw:
        q.put(a)
        frame = raw.get()
    tag, count, stream_len = struct.unpack_from("<4sIQ", frame)
    assert (tag, count) == (b"FQO5", 1)
    (buf_len,) = struct.unpack_from("<Q", frame, 16)
    assert buf_len == a.nbytes
    assert stream_len < 300  # the pickle stream carries no array data
    offset = frame.index(a.tobytes())
    assert offset % 16 == 0 and offset >= 24 + stream_len
    assert len(frame) == offset + a.nbytes


@needs_numpy
@pytest.mark.parametrize("mib", [1, 8])
def test_large_array_owns_its_memory(qname: NameFactory, mib: int) -> None:
    n = mib * (1 << 20) // 8
    a = np.arange(n, dtype=np.float64)
    with ObjectQueue(qname(), element_size=mib * (1 << 20) + 4096, capacity=1) as q:
        q.put(a)
        b = q.get()
        # Later messages reuse the same (only) slot; b must not change.
        q.put(np.full(n, -1.0))
        assert q.get()[0] == -1.0
        b += 1.0  # writable, and it is ours
    # The queue and its segment are gone; b is still valid.
    np.testing.assert_array_equal(b, a + 1.0)


@needs_numpy
@pytest.mark.timeout(120)
def test_numpy_arrays_cross_processes(qname: NameFactory) -> None:
    arrays = _arrays()[:13]  # numeric and structured dtypes
    with ObjectQueue(qname(), element_size=1 << 16, capacity=4) as q:
        recv, send = SPAWN.Pipe(duplex=False)
        p = SPAWN.Process(target=children.array_digests, args=(q, send))
        p.start()
        send.close()
        try:
            for a in arrays:
                q.put(a, timeout=60)
            q.put(None, timeout=60)
            assert recv.poll(60)
            got = recv.recv()
        finally:
            p.join(60)
        assert p.exitcode == 0
    want = [(a.shape, str(a.dtype), hashlib.sha256(a.tobytes()).hexdigest(), True) for a in arrays]
    assert got == want


# ------------------------------------------------------------------------------ errors


def test_too_big_names_both_sizes_and_leaves_the_queue_unchanged(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=100, capacity=2) as q:
        with pytest.raises(ValueError, match=r"encodes to \d+ bytes.*element_size of 100") as info:
            q.put("x" * 200)
        assert isinstance(info.value, fastqueue.MessageTooBigError)
        with pytest.raises(ValueError):
            q.put_nowait(b"y" * 100)  # 100 bytes of payload + the frame > 100
        assert q.qsize() == 0 and q.stats()["puts"] == 0
        q.put("fits")
        assert q.get() == "fits"


@pytest.mark.parametrize(
    "bad",
    [lambda: None, threading.Lock(), (x for x in ())],
    ids=["lambda", "lock", "generator"],
)
def test_unpicklable_raises_at_put_and_puts_nothing(qname: NameFactory, bad: object) -> None:
    with ObjectQueue(qname(), element_size=1024, capacity=2) as q:
        with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
            q.put(bad)
        with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
            q.put_many([1, bad])  # the whole batch is rejected
        assert q.qsize() == 0 and q.stats()["puts"] == 0


def test_failure_while_writing_aborts_the_claim(
    qname: NameFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ObjectQueue(qname(), element_size=1024, capacity=2) as q:
        real = fastqueue._ffi.lend

        def broken(address: int, n: int) -> memoryview:
            raise MemoryError("simulated failure while copying into the slot")

        monkeypatch.setattr(fastqueue._ffi, "lend", broken)
        with pytest.raises(MemoryError):
            q.put({"lost": True})
        monkeypatch.setattr(fastqueue._ffi, "lend", real)
        with pytest.raises(fastqueue.Empty):
            q.get_nowait()  # the aborted slot is skipped, never delivered
        q.put("next")
        assert q.get() == "next"
        assert q.stats()["skipped"] == 1


def test_a_message_that_is_not_a_frame(qname: NameFactory) -> None:
    name = qname()
    with ObjectQueue(name, element_size=64, capacity=2) as q, Queue(name, create=False) as raw:
        raw.put(b"not a pickle frame")
        with pytest.raises(ValueError, match="not an object put by an ObjectQueue"):
            q.get()
        raw.put(b"FQO5" + b"\xff" * 20)  # a frame whose lengths run past its end
        with pytest.raises(ValueError, match="not an object put by an ObjectQueue"):
            q.get()


def test_timeouts_full_empty_and_batches(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=2) as q:
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.05)
        with pytest.raises(fastqueue.Empty):
            q.get_many(3, block=False)
        q.put_many([1, 2])
        with pytest.raises(fastqueue.Full):
            q.put(3, timeout=0.05)
        with pytest.raises(fastqueue.Full):
            q.put_nowait(3)
        assert q.get_many(5) == [1, 2]
        with pytest.raises(fastqueue.Full) as info:
            q.put_many([3, 4, 5], timeout=0.05)
        assert info.value.done == 2  # type: ignore[attr-defined]
        assert q.get_many(5) == [3, 4]


def test_shutdown_and_closed_handles(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=4) as q:
        q.put({"a": 1})
        q.shutdown()
        with pytest.raises(fastqueue.ShutDown):
            q.put(2)
        assert q.get() == {"a": 1}
        with pytest.raises(fastqueue.ShutDown):
            q.get()
    for op in (lambda: q.put(1), q.get, q.get_nowait, lambda: q.put_many([1])):
        with pytest.raises(ValueError, match="closed"):
            op()


# ------------------------------------------------------------------------------ serializers


class Reversed:
    """A serializer of str that stores them reversed (and says so)."""

    def dumps(self, obj: str) -> bytes:
        return obj[::-1].encode()

    def loads(self, data: bytes) -> str:
        assert type(data) is bytes
        return data.decode()[::-1]


def test_custom_serializers(qname: NameFactory) -> None:
    name = qname()
    with ObjectQueue(name, element_size=256, capacity=4, serializer=json) as q:
        q.put({"id": 7, "tags": ["a", "b"]})
        with Queue(name, create=False) as raw:
            q.put([1, 2])
            assert raw.get() == b'{"id": 7, "tags": ["a", "b"]}'  # exactly what dumps made
        assert q.get() == [1, 2]
        assert q.serializer is json
    with ObjectQueue(qname(), element_size=16, capacity=4, serializer=Reversed()) as q:
        q.put("hello")
        assert q.get() == "hello"
        with pytest.raises(ValueError, match="element_size of 16"):
            q.put("x" * 17)


def test_bad_serializer_is_type_error() -> None:
    with pytest.raises(TypeError, match="dumps"):
        ObjectQueue(element_size=16, capacity=4, serializer=object())  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_queue_with_module_serializer_pickles_to_a_child(qname: NameFactory) -> None:
    # The json module is not picklable itself; the queue sends it by name.
    with (
        ObjectQueue(qname(), element_size=256, capacity=4, serializer=json) as q,
        ObjectQueue(qname(), element_size=256, capacity=4, serializer=json) as back,
    ):
        copy = pickle.loads(pickle.dumps(q))
        assert type(copy) is ObjectQueue and copy.serializer is json
        copy.close()
        p = SPAWN.Process(target=children.echo_objects, args=(q, back, 1))
        p.start()
        q.put({"x": [1, 2]})
        assert back.get(timeout=60) == ["dict", {"x": [1, 2]}]  # json: tuples become lists
        p.join(60)
        assert p.exitcode == 0


# ------------------------------------------------------------------------------ classes


@pytest.mark.parametrize("cls", [ObjectQueue, JoinableQueue, JoinableObjectQueue])
def test_subclasses_pickle_and_print_as_themselves(qname: NameFactory, cls: type[Queue]) -> None:
    with cls(qname(), element_size=64, capacity=2) as q:
        assert isinstance(q, Queue)
        assert repr(q).startswith(f"<fastqueue.{cls.__name__} ")
        copy = pickle.loads(pickle.dumps(q))
        assert type(copy) is cls and "attached" in repr(copy)
        copy.close()


def test_joinable_queue_counts_tasks(qname: NameFactory) -> None:
    with JoinableQueue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        assert q.join(timeout=0) is False
        assert q.get() == b"a"
        q.task_done()
        assert q.join(timeout=0) is True
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()
    with JoinableObjectQueue(qname(), element_size=64, capacity=4) as oq:
        oq.put({"n": 1})
        assert oq.get() == {"n": 1}
        oq.task_done()
        assert oq.join(timeout=5) is True
        assert oq.stats()["tasks_done"] == 1
