"""Buffers and zero-copy: Queue.get_into, Queue.put_slot and Queue.get_slot.

The safety rules under test: a view lent by put_slot / get_slot is released when its block ends
(any later use raises); memory that something made from a view still uses is never given back to
the queue while it is used (get_slot: the slot is returned once that object is gone; put_slot:
BufferError and nothing published); closing the queue while a slot is lent unmaps nothing.
"""

from __future__ import annotations

import array
import gc
import mmap
import platform
import threading
import time
from typing import Any, Callable

import pytest

import fastqueue
from fastqueue import Empty, Full, MessageTooBigError, Queue, WriteSlot

NameFactory = Callable[[], str]
PYPY = platform.python_implementation() == "PyPy"
cpython_only = pytest.mark.skipif(PYPY, reason="on PyPy the views are copies")


def _np() -> Any:
    return pytest.importorskip("numpy")


# ------------------------------------------------------------------------------ get_into


def test_get_into_fills_the_front_of_many_kinds_of_buffer(qname: NameFactory) -> None:
    np = _np()
    with Queue(qname(), element_size=16, capacity=8) as q:
        targets: list[Any] = [
            bytearray(b"." * 16),
            memoryview(bytearray(b"." * 16)),
            array.array("B", b"." * 16),
            np.full(16, ord("."), dtype=np.uint8),
            np.full((4, 4), ord("."), dtype=np.uint8),
        ]
        m = mmap.mmap(-1, 16)
        m.write(b"." * 16)
        targets.append(m)
        for i, buf in enumerate(targets):
            q.put(b"msg%d" % i)
            assert q.get_into(buf) == 4
            assert bytes(memoryview(buf).cast("B")) == b"msg%d" % i + b"." * 12
        m.close()


def test_get_into_a_buffer_of_exactly_the_size_and_empty_messages(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=4) as q:
        q.put(b"1234")
        q.put(b"")
        q.put(b"")
        buf = bytearray(4)
        assert q.get_into(buf) == 4
        assert buf == b"1234"
        assert q.get_into(buf) == 0
        assert q.get_into(bytearray()) == 0  # an empty message fits an empty buffer


def test_get_into_a_too_small_buffer_names_the_size_and_keeps_the_message(
    qname: NameFactory,
) -> None:
    with Queue(qname(), element_size=64, capacity=4) as q:
        q.put(b"x" * 40)
        buf = bytearray(b"untouched")
        with pytest.raises(ValueError, match=r"40 bytes long, the buffer only 9.*at least 40"):
            q.get_into(buf)
        assert buf == b"untouched"
        with pytest.raises(ValueError, match="40 bytes"):
            q.get_into(bytearray(), block=False)
        assert q.qsize() == 1
        assert q.get() == b"x" * 40


@pytest.mark.parametrize(
    "bad",
    [b"read-only", memoryview(b"read-only"), "text", 42, None],
    ids=["bytes", "readonly-view", "str", "int", "None"],
)
def test_get_into_rejects_what_is_not_a_writable_buffer(qname: NameFactory, bad: object) -> None:
    with Queue(qname(), element_size=16, capacity=2) as q:
        q.put(b"kept")
        with pytest.raises(TypeError):
            q.get_into(bad)  # type: ignore[arg-type]
        assert q.get() == b"kept"


def test_get_into_rejects_a_strided_array(qname: NameFactory) -> None:
    np = _np()
    with Queue(qname(), element_size=16, capacity=2) as q:
        q.put(b"kept")
        with pytest.raises(TypeError, match="C-contiguous"):
            q.get_into(np.zeros(32, dtype=np.uint8)[::2])
        assert q.get() == b"kept"


def test_get_into_waits_times_out_and_respects_block(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        buf = bytearray(8)
        with pytest.raises(Empty):
            q.get_into(buf, block=False)
        start = time.monotonic()
        with pytest.raises(Empty):
            q.get_into(buf, timeout=0.1)
        assert time.monotonic() - start >= 0.1
        with pytest.raises(ValueError):
            q.get_into(buf, timeout=-1)
        timer = threading.Timer(0.1, q.put, (b"late",))
        timer.start()
        assert q.get_into(buf, timeout=30) == 4
        timer.join()
        assert buf[:4] == b"late"


@cpython_only  # PyPy does not lock an exported bytearray: get_into receives via a copy there
def test_a_buffer_cannot_be_resized_while_get_into_waits_on_it(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        buf = bytearray(8)
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(q.get_into(buf, timeout=30)))
        t.start()
        time.sleep(0.1)  # t is now waiting, holding an export of buf
        with pytest.raises(BufferError):
            buf.extend(b"more")
        q.put(b"done")
        t.join(30)
        assert result == [4]
        assert buf[:4] == b"done"
        buf.extend(b"!")  # released again


def test_get_into_on_a_closed_queue(qname: NameFactory) -> None:
    q = Queue(qname(), element_size=8, capacity=2)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.get_into(bytearray(8))


# ------------------------------------------------------------------------------ put_slot


def test_put_slot_publishes_length_bytes_of_the_slot(qname: NameFactory) -> None:
    with Queue(qname(), element_size=32, capacity=4) as q:
        with q.put_slot() as slot:
            assert isinstance(slot, WriteSlot)
            assert len(slot.buffer) == 32 and slot.length == 32
            assert not slot.buffer.readonly and slot.buffer.format == "B"
            slot.buffer[:5] = b"hello"
            slot.length = 5
        with q.put_slot(3) as slot:
            assert len(slot.buffer) == 3
            slot.buffer[:] = b"abc"
        with q.put_slot(0) as slot:
            pass
        assert [q.get(), q.get(), q.get()] == [b"hello", b"abc", b""]


def test_put_slot_with_numpy_temporaries(qname: NameFactory) -> None:
    np = _np()
    with Queue(qname(), element_size=80, capacity=2) as q:
        data = np.linspace(0.0, 1.0, 10)
        with q.put_slot(data.nbytes) as slot:
            np.frombuffer(slot.buffer, dtype=data.dtype)[:] = data
        assert np.array_equal(np.frombuffer(q.get(), dtype=data.dtype), data)


def test_put_slot_view_is_released_after_the_block(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        with q.put_slot() as slot:
            slot.buffer[:2] = b"ok"
            slot.length = 2
        with pytest.raises(ValueError, match="released"):
            slot.buffer[0] = 1
        with pytest.raises(ValueError, match="released"):
            bytes(slot.buffer)
        assert q.get() == b"ok"


def test_an_exception_in_the_block_puts_nothing(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        with pytest.raises(RuntimeError, match="oops"), q.put_slot() as slot:
            slot.buffer[:4] = b"half"
            raise RuntimeError("oops")
        with pytest.raises(ValueError, match="released"):
            slot.buffer[0] = 1
        with pytest.raises(Empty):
            q.get_nowait()
        q.put(b"next")  # the aborted slot is skipped
        assert q.get() == b"next"


@pytest.mark.parametrize("length", [-1, 9, 2.0, None, True])
def test_a_bad_length_puts_nothing(qname: NameFactory, length: object) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:

        def put_with_length() -> None:
            with q.put_slot() as slot:
                slot.length = length  # type: ignore[assignment]

        with pytest.raises(ValueError, match=r"it must be an int in 0..8"):
            put_with_length()
        with pytest.raises(Empty):
            q.get_nowait()


def test_put_slot_size_is_checked_first(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        with pytest.raises(MessageTooBigError, match="9 bytes"), q.put_slot(9):
            pass
        with (
            pytest.raises(ValueError, match=r"size=-1 is not allowed: it must be in 0\.\.8"),
            q.put_slot(-1),
        ):
            pass
        with pytest.raises(TypeError), q.put_slot(2.0):  # type: ignore[arg-type]
            pass
        with pytest.raises(ValueError), q.put_slot(timeout=-1):
            pass
        assert q.qsize() == 0


def test_put_slot_waits_for_room_as_put_does(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        q.put(b"full")
        with pytest.raises(Full), q.put_slot(block=False):
            pass
        start = time.monotonic()
        with pytest.raises(Full), q.put_slot(timeout=0.1):
            pass
        assert time.monotonic() - start >= 0.1
        timer = threading.Timer(0.1, q.get)
        timer.start()
        with q.put_slot(4, timeout=30) as slot:
            slot.buffer[:] = b"room"
        timer.join()
        assert q.get() == b"room"


def test_consumers_wait_for_a_lent_slot_and_order_is_kept(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=4) as q, Queue(name, create=False) as other:
        with q.put_slot(5) as slot:
            other.put(b"after")  # claimed after the lent slot: may not overtake it
            with pytest.raises(Empty):
                other.get(timeout=0.05)
            slot.buffer[:] = b"first"
        assert [other.get(), other.get()] == [b"first", b"after"]


@cpython_only
def test_memory_still_used_after_put_slot_raises_and_publishes_nothing(
    qname: NameFactory,
) -> None:
    np = _np()
    with Queue(qname(), element_size=8, capacity=2) as q:
        with pytest.raises(BufferError, match="nothing was put"), q.put_slot() as slot:
            arr = np.frombuffer(slot.buffer, dtype=np.uint8)
            arr[:] = 7
        arr[:] = 9  # still valid memory: the slot is held while arr lives
        with pytest.raises(Empty):
            q.get(timeout=0.05)  # consumers wait behind the held slot
        del arr
        gc.collect()
        q.put(b"next")
        assert q.get() == b"next"  # the held slot was given up (skipped), nothing torn
        with pytest.raises(BufferError), q.put_slot() as slot:
            part = slot.buffer[2:4]  # a memoryview slice counts too
        del part
        q.put(b"again")
        assert q.get() == b"again"
        assert q.stats()["skipped"] == 2


@cpython_only
def test_memory_still_used_after_an_exception_in_put_slot_keeps_the_slot(
    qname: NameFactory,
) -> None:
    """The block raised, so nothing is put; but an array made from the slot outlives it, so the
    slot is given up only once the array is gone: until then no producer may write a message
    where the array can still write."""
    np = _np()
    with Queue(qname(), element_size=8, capacity=2) as q:
        with pytest.raises(RuntimeError, match="oops"), q.put_slot() as slot:
            arr = np.frombuffer(slot.buffer, dtype=np.uint8)
            raise RuntimeError("oops")
        q.put(b"AAAAAAAA")
        with pytest.raises(Empty):
            q.get(timeout=0.05)  # consumers wait behind the held slot
        with pytest.raises(Full):  # and no producer gets it
            q.put(b"BBBBBBBB", timeout=0.05)
        arr[:] = 9  # still the slot's memory, and still nobody else's
        del arr
        gc.collect()
        assert q.get(timeout=5) == b"AAAAAAAA"  # the held slot was given up (skipped)
        for m in (b"CCCCCCCC", b"DDDDDDDD"):
            q.put(m, timeout=5)
        assert q.get_many(4) == [b"CCCCCCCC", b"DDDDDDDD"]
        assert q.stats()["skipped"] == 1


def test_close_while_a_slot_is_lent_unmaps_nothing(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        reader = Queue(name, create=False)
        with q.put_slot(4) as slot:
            q.close()  # the handle stays attached until the slot is given back
            slot.buffer[:] = b"late"
            assert q.closed
        assert reader.get(timeout=5) == b"late"
        with pytest.raises(ValueError, match="closed"), q.put_slot():
            pass
        reader.close()


def test_put_slot_on_a_closed_queue(qname: NameFactory) -> None:
    q = Queue(qname(), element_size=8, capacity=2)
    q.close()
    with pytest.raises(ValueError, match="closed"), q.put_slot():
        pass


# ------------------------------------------------------------------------------ get_slot


def test_get_slot_lends_the_message_read_only(qname: NameFactory) -> None:
    with Queue(qname(), element_size=16, capacity=2) as q:
        q.put(b"hello")
        q.put(b"")
        with q.get_slot() as view:
            assert isinstance(view, memoryview)
            assert view.readonly and view.format == "B" and len(view) == 5
            assert bytes(view) == b"hello"
            with pytest.raises(TypeError):
                view[0] = 1  # type: ignore[index]
        with pytest.raises(ValueError, match="released"):
            bytes(view)
        with q.get_slot() as view:
            assert len(view) == 0
        assert q.empty()


def test_get_slot_with_numpy(qname: NameFactory) -> None:
    np = _np()
    with Queue(qname(), element_size=64, capacity=2) as q:
        data = np.arange(8, dtype=np.int64)
        q.put(data)
        with q.get_slot() as view:
            arr = np.frombuffer(view, dtype=np.int64)
            assert np.array_equal(arr, data)
            assert not arr.flags.writeable
            total = int(arr.sum())
            del arr
        assert total == 28


def test_an_exception_in_get_slot_still_consumes_and_returns_the_slot(
    qname: NameFactory,
) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        q.put(b"gone")
        with pytest.raises(KeyError), q.get_slot():
            raise KeyError("x")
        q.put(b"next", timeout=5)  # the only slot came back
        assert q.get() == b"next"


@cpython_only
def test_an_array_made_from_the_view_keeps_its_slot_until_it_is_gone(
    qname: NameFactory,
) -> None:
    np = _np()
    with Queue(qname(), element_size=8, capacity=2) as q:
        q.put(b"AAAAAAAA")
        q.put(b"BBBBBBBB")
        with q.get_slot() as view:
            arr = np.frombuffer(view, dtype=np.uint8)
        assert bytes(arr) == b"AAAAAAAA"
        with pytest.raises(Full):  # the next put's slot is A's, held by arr
            q.put(b"CCCCCCCC", timeout=0.05)
        assert bytes(arr) == b"AAAAAAAA"  # never overwritten while arr lives
        del arr
        gc.collect()
        q.put(b"CCCCCCCC", timeout=5)
        assert q.get_many(4) == [b"BBBBBBBB", b"CCCCCCCC"]


def test_get_slot_waits_times_out_and_respects_block(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        with pytest.raises(Empty), q.get_slot(block=False):
            pass
        start = time.monotonic()
        with pytest.raises(Empty), q.get_slot(timeout=0.1):
            pass
        assert time.monotonic() - start >= 0.1
        with pytest.raises(ValueError), q.get_slot(timeout=-1):
            pass
        timer = threading.Timer(0.1, q.put, (b"late",))
        timer.start()
        with q.get_slot(timeout=30) as view:
            assert bytes(view) == b"late"
        timer.join()


def test_close_while_a_message_is_lent_keeps_it_readable(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    q.put(b"readable")
    with q.get_slot() as view:
        q.close()
        gc.collect()
        assert bytes(view) == b"readable"
    with pytest.raises(ValueError, match="closed"), q.get_slot():
        pass


def test_get_slot_after_shutdown(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        q.put(b"last")
        q.shutdown()
        with q.get_slot() as view:
            assert bytes(view) == b"last"
        with pytest.raises(fastqueue.ShutDown), q.get_slot():
            pass
        with pytest.raises(fastqueue.ShutDown), q.put_slot():
            pass


def test_slots_are_claimed_on_entering_the_block_only(qname: NameFactory) -> None:
    """put_slot() / get_slot() claim nothing until their block is entered, and a block cannot
    be entered twice."""
    with Queue(qname(), element_size=8, capacity=1) as q:
        writer = q.put_slot(3)
        q.put(b"first")  # the slot writer above holds nothing: the only slot is free
        reader = q.get_slot()
        assert q.qsize() == 1  # ... and the reader took nothing
        with reader as view:
            assert bytes(view) == b"first"
            with pytest.raises(RuntimeError, match="entered twice"), reader:
                pass
        with writer as slot:
            slot.buffer[:] = b"abc"
            with pytest.raises(RuntimeError, match="entered twice"), writer:
                pass
        assert q.get() == b"abc"
