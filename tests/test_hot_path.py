"""The hot path of put/get (fastqueue._ffi.Handle): both ways a message leaves the queue give the
same bytes, whatever its size relative to the receive buffers, on every kind of call.

Messages up to ``_ffi.GET_COPY_LIMIT`` bytes are copied through a pooled receive buffer; longer
ones straight out of their slot (fq_read_begin / fq_read_end). These tests prove behaviour only;
which way is faster is measured in perf/.
"""

from __future__ import annotations

import ctypes
import itertools
import numbers
import os
import sys
import threading
from typing import Callable

import pytest

from fastqueue import Empty, Full, MessageTooBigError, ObjectQueue, Queue, ShutDown, _ffi

NameFactory = Callable[[], str]
LIMIT = _ffi.GET_COPY_LIMIT


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n)) if n < 4096 else os.urandom(n)


@pytest.mark.parametrize("n", [0, 1, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT + 5])
def test_messages_around_the_copy_limit(qname: NameFactory, n: int) -> None:
    with Queue(qname(), element_size=4 * LIMIT, capacity=3) as q:
        msgs = [_payload(n, s) for s in range(3)]
        for m in msgs:
            q.put(m)
        assert q.get() == msgs[0]
        assert q.get_nowait() == msgs[1]
        assert q.get(timeout=5) == msgs[2]
        with pytest.raises(Empty):
            q.get_nowait()


def test_small_and_large_messages_interleaved_keep_order(qname: NameFactory) -> None:
    sizes = [3, LIMIT + 10, 0, 2 * LIMIT, LIMIT, 17, LIMIT + 1] * 3
    with Queue(qname(), element_size=2 * LIMIT, capacity=4) as q:
        sent = [_payload(n, i) for i, n in enumerate(sizes)]
        got = []
        for m in sent:
            q.put(m)
            if q.full():
                got.append(q.get())
                got.append(q.get())
        while not q.empty():
            got.append(q.get())
        assert got == sent
        assert q.stats()["depth"] == 0


def test_a_long_message_taken_meanwhile_by_another_consumer(qname: NameFactory) -> None:
    """A long message is taken in place by a second attempt after fq_get said it does not fit
    the receive buffer. If another consumer took it in between, that attempt finds the queue
    empty and get goes on waiting (here: times out) instead of failing."""
    with Queue(qname(), element_size=2 * LIMIT, capacity=2) as q:
        h = q._h
        assert h is not None
        assert h._get_in_place(h._new_scratch()) == _ffi.EMPTY  # the race, made deterministic
        msg = _payload(LIMIT + 1)
        q.put(msg)
        assert h._get_in_place(h._new_scratch()) == msg
        with pytest.raises(Empty):
            q.get(timeout=0.05)


@pytest.mark.parametrize("n", [8, LIMIT + 3])
def test_threads_sharing_one_handle_never_share_a_buffer(qname: NameFactory, n: int) -> None:
    """Each thread's get uses its own receive buffer from the handle's pool: with 4 threads
    taking concurrently, every message arrives exactly once and intact."""
    count = 400 if n < LIMIT else 60
    with Queue(qname(), element_size=max(n, 16), capacity=8) as q:
        got: list[bytes] = []
        lock = threading.Lock()

        def consume() -> None:
            while True:
                m = q.get(timeout=30)
                if m == b"":
                    return
                with lock:
                    got.append(m)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        sent = [i.to_bytes(4, "little") * (n // 4) for i in range(count)]
        for m in sent:
            q.put(m, timeout=30)
        for _ in threads:
            q.put(b"", timeout=30)
        for t in threads:
            t.join(60)
        assert sorted(got) == sorted(sent)


def test_put_rejects_a_too_long_item_of_every_kind(qname: NameFactory) -> None:
    """The length is checked by the library now; the error is the same as before."""
    with Queue(qname(), element_size=4, capacity=2) as q:
        for item in (b"12345", bytearray(b"12345"), memoryview(b"12345")):
            with pytest.raises(ValueError, match=r"5 bytes is longer than .*element_size of 4"):
                q.put(item)
            with pytest.raises(ValueError, match="5 bytes"):
                q.put_nowait(item)
        assert q.qsize() == 0


def test_negative_timeout_is_rejected_even_when_no_wait_is_needed(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=2) as q:
        with pytest.raises(ValueError):
            q.put(b"x", timeout=-1)
        q.put(b"x")
        with pytest.raises(ValueError):
            q.get(timeout=-1)
        assert q.get() == b"x"


class _Seconds:
    """A number of seconds whose value can change: a Real (registered), not a float or int."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


numbers.Real.register(_Seconds)


def test_a_timeout_found_valid_lets_no_invalid_one_through(qname: NameFactory) -> None:
    """put and get remember the last timeout they found valid (by identity, so that a worker
    loop's constant costs one comparison): what comes after it is still checked, as stdlib's
    queue checks it, before anything is taken or put."""
    ok, bad = 1.5, -1.5
    with Queue(qname(), element_size=4, capacity=2) as q:
        for good, wrong in ((ok, bad), (2, -2), (ok, float("nan")), (ok, True - 2)):
            q.put(b"a", timeout=good)
            q.put(b"b", timeout=good)
            with pytest.raises(ValueError, match="timeout"):
                q.get(timeout=wrong)
            assert q.get(timeout=good) == b"a"
            with pytest.raises(ValueError, match="timeout"):
                q.put(b"c", timeout=wrong)
            with pytest.raises(TypeError, match="timeout"):
                q.put(b"c", timeout="1")  # type: ignore[arg-type]
            assert q.get(timeout=good) == b"b"
            with pytest.raises(Empty):
                q.get(timeout=0)
            assert q.qsize() == 0
        # A timeout whose value can change is checked each time, never remembered.
        t = _Seconds(0.5)
        q.put(b"d", timeout=t)  # type: ignore[arg-type]
        assert q.get(timeout=t) == b"d"  # type: ignore[arg-type]
        q.put(b"e")
        t.value = -0.5
        with pytest.raises(ValueError, match="timeout"):
            q.put(b"f", timeout=t)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            q.get(timeout=t)  # type: ignore[arg-type]
        assert q.get() == b"e" and q.qsize() == 0


# ------------------------------------------------------------------------------ batches


def test_put_many_of_bytes_and_bytearrays_in_any_iterable(qname: NameFactory) -> None:
    """The joined fast path (bytes and bytearray only) and the general one give the same
    messages; lists, tuples and generators are all taken."""
    with Queue(qname(), element_size=16, capacity=64) as q:
        batch = [b"a", bytearray(b"bc"), b"", b"0123456789abcdef", bytearray()]
        q.put_many(batch)
        q.put_many(tuple(batch))
        q.put_many(x for x in batch)
        q.put_many([*batch, memoryview(b"mv")])  # a memoryview: the general path
        assert q.get_many(64) == [bytes(x) for x in batch] * 3 + [
            *(bytes(x) for x in batch),
            b"mv",
        ]


def test_put_many_names_the_first_item_that_is_too_long(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=8) as q:
        for batch in ([b"ok", b"12345", b"1234567"], [b"ok", bytearray(5), memoryview(b"1234567")]):
            with pytest.raises(ValueError, match="message of 5 bytes"):
                q.put_many(batch)
        assert q.empty()


@pytest.mark.parametrize(
    "lengths",
    [[8] * 64, [0] * 5, [3], [1, 2, 3, 4, 5], [8, 8, 8, 7], [0, 8, 0, 8], list(range(9)) * 7],
)
def test_get_many_splits_equal_and_unequal_lengths(qname: NameFactory, lengths: list[int]) -> None:
    with Queue(qname(), element_size=8, capacity=len(lengths)) as q:
        msgs = [bytes([i % 251]) * n for i, n in enumerate(lengths)]
        q.put_many(msgs)
        assert q.get_many(len(msgs)) == msgs
        q.put_many(msgs)
        got: list[bytes] = []
        while len(got) < len(msgs):
            got += q.get_many(3)
        assert got == msgs


def test_get_many_with_a_first_message_longer_than_its_buffer(qname: NameFactory) -> None:
    """get_many's buffer holds at most 1 MiB; a longer first message is taken in place, alone."""
    size = 3 << 19  # 1.5 MiB
    with Queue(qname(), element_size=size, capacity=3) as q:
        big, small = os.urandom(size), b"small"
        q.put_many([big, small, big])
        assert q.get_many(3) == [big]
        assert q.get_many(1) == [small]
        assert q.get_many(3, timeout=5) == [big]
        with pytest.raises(Empty):
            q.get_many(3, block=False)


def test_get_many_with_growing_max_items_on_one_handle(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=300) as q:
        msgs = [i.to_bytes(4, "little") for i in range(300)]
        q.put_many(msgs)
        got: list[bytes] = []
        for k in (1, 2, 100, 3, 200):
            got += q.get_many(k)
        assert got == msgs


def test_hot_path_receive_buffers_are_never_shared_between_threads(qname: NameFactory) -> None:
    """get_nowait / get on their hot path (a message there at once) from 4 threads, with the
    interpreter switching threads as often as it can: every message arrives exactly once and
    intact. A receive buffer shared between threads would hand one thread another's message."""
    per_thread = 10_000
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with Queue(qname(), element_size=16, capacity=64) as q:
            sent = [i.to_bytes(8, "little") * 2 for i in range(4 * per_thread)]
            got: list[list[bytes]] = [[] for _ in range(4)]
            todo = iter(sent)
            lock = threading.Lock()

            def work(k: int) -> None:
                mine = got[k]
                while True:
                    with lock:
                        batch = list(itertools.islice(todo, 8))
                    if not batch:
                        return
                    for m in batch:
                        q.put(m, timeout=30)
                    for i in range(len(batch)):
                        while True:
                            try:
                                mine.append(q.get_nowait() if i % 2 else q.get(timeout=30))
                                break
                            except Empty:
                                pass

            threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not any(t.is_alive() for t in threads)
            assert sorted(m for ms in got for m in ms) == sorted(sent)
    finally:
        sys.setswitchinterval(old)


def test_a_pooled_receive_buffer_not_yet_stored_free_is_left_to_its_giver(
    qname: NameFactory,
) -> None:
    """A get gives its receive buffer back to the handle's pool before it stores the held word
    free (so that no signal can land between that store and its return). Another thread that
    pops the buffer in between must leave it, not take into it: the take would be refused
    (BUSY: an InternalError, and on PyPy, which switches threads between any two bytecodes,
    test_hot_path_receive_buffers_are_never_shared_between_threads lost messages so)."""
    with Queue(qname(), element_size=16, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        h = q._h
        assert h is not None
        held = h.held()
        assert held.take() == 1  # b"a" taken: the word says so until the store below
        assert held.buf[:1] == b"a"
        h.give_held(held)  # a get's order: pooled first ...
        other = h.held()  # ... another thread's get pops it here
        assert other is not held
        assert other.take() == 1 and other.buf[:1] == b"b"
        other.word[0] = -1
        held.word[0] = -1  # ... then the giver's store
        assert q.qsize() == 0


def test_batches_in_a_forked_child_use_the_childs_handle(qname: NameFactory) -> None:
    """get_many keeps buffers with library calls bound to the handle; a child forked after the
    parent used them gets its own handle (the inherited one is closed), so the buffers must not
    follow: a child's get_many, list or packed, works instead of calling a closed handle (it
    crashed with SIGSEGV before)."""
    q = Queue(qname(), element_size=8, capacity=8)
    try:
        q.put_many([b"a", b"b"])
        assert q.get_many(4) == [b"a", b"b"]
        q.put_many(b"cdef", itemsize=2)
        assert q.get_many(4, itemsize=2) == b"cdef"
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 if both forms still work
            code = 1
            try:
                q.put_many([b"x", b"y"])
                ok = q.get_many(4) == [b"x", b"y"]
                q.put_many(b"zzww", itemsize=2)
                ok = ok and q.get_many(4, itemsize=2) == b"zzww"
                code = 0 if ok else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        q.put(b"after")
        assert q.get_many(4) == [b"after"]
    finally:
        q.close()


def test_hot_path_after_close_and_after_fork(qname: NameFactory) -> None:
    """The hot path's bound library calls follow the handle: closed, put and get raise
    ValueError (never touch a freed handle); in a forked child they use the child's own handle
    (so that recovery can tell the child from the parent), attached at the child's first use."""
    q = Queue(qname(), element_size=8, capacity=4)
    q.put(b"one")
    parent_ptr = q._h._ptr  # type: ignore[union-attr]
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 if its hot path is bound to its own handle
        q.put(b"child")  # the first use attaches the child's own handle
        h = q._h
        ok = h is not None and h._ptr != parent_ptr
        # The blocks the hot calls pass hold the child's handle (and keep it alive).
        (put_arg, put_flag), hot = q._try_put, q._hot
        ok = ok and hot.block.handle is h and q._take is hot.take_args
        if sys.implementation.name == "cpython":  # (PyPy's byref has no _obj of its own)
            ok = ok and put_arg._obj.handle is h
        ok = ok and ctypes.c_void_p.from_buffer(put_flag, 0).value == h._ptr.value
        ok = ok and ctypes.c_void_p.from_buffer(hot.block, 0).value == h._ptr.value
        os._exit(0 if ok and q.get() == b"one" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert q.get_nowait() == b"child"
    q.close()
    for call in (lambda: q.put(b"x"), q.get, q.get_nowait, lambda: q.put_nowait(b"x")):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_put_many_packed_cuts_one_buffer_into_messages(qname: NameFactory) -> None:
    """put_many(buffer, itemsize=k): the buffer's bytes (C order, whatever its type and layout)
    cut into k-byte messages, in order; an empty buffer puts nothing."""
    np = pytest.importorskip("numpy")
    grid = np.arange(24, dtype=np.uint16).reshape(6, 4)
    with Queue(qname(), element_size=8, capacity=64) as q:
        q.put_many(b"aabbcc", itemsize=2)
        q.put_many(bytearray(b"xyz"), itemsize=1)
        q.put_many(memoryview(b"12345678"), itemsize=8)
        q.put_many(b"", itemsize=3)
        q.put_many(grid, itemsize=8)  # each row of 4 uint16 is one message
        q.put_many(grid[::2, ::2], itemsize=4)  # not contiguous: copied in C order
        assert q.get_many(64) == [
            b"aa",
            b"bb",
            b"cc",
            b"x",
            b"y",
            b"z",
            b"12345678",
            *(row.tobytes() for row in grid),
            *(row.tobytes() for row in grid[::2, ::2]),
        ]


def test_put_many_packed_rejects_bad_sizes_and_puts_nothing(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=4) as q:
        with pytest.raises(ValueError, match="not a whole number of 3-byte messages"):
            q.put_many(b"abcdefg", itemsize=3)
        with pytest.raises(MessageTooBigError, match="element_size of 4"):
            q.put_many(b"abcdefgh" * 2, itemsize=8)
        for bad in (0, -1):
            with pytest.raises(ValueError, match="is not allowed: it must be >= 1"):
                q.put_many(b"ab", itemsize=bad)
        for wrong in (True, 2.0, "2"):
            with pytest.raises(TypeError, match="itemsize must be an int"):
                q.put_many(b"ab", itemsize=wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="one bytes-like object"):
            q.put_many([b"ab", b"cd"], itemsize=2)
        assert q.qsize() == 0
        # Full part-way: the first messages went in, and Full says how many.
        with pytest.raises(Full) as info:
            q.put_many(b"aabbccddee", itemsize=2, timeout=0.01)
        assert info.value.done == 4  # type: ignore[attr-defined]
        assert q.get_many(8) == [b"aa", b"bb", b"cc", b"dd"]


def test_object_queue_put_many_refuses_itemsize(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=4) as q:
        with pytest.raises(TypeError, match=r"itemsize= .* is for fastqueue\.Queue"):
            q.put_many([b"ab"], itemsize=2)
        assert q.qsize() == 0


def test_put_many_packed_hot_path_behaves_as_the_first_put(qname: NameFactory) -> None:
    """The second put_many of a packed size takes the bound hot path: same results, same
    errors -- a full ring part-way, a bool itemsize, a shut-down queue, a closed one."""
    with Queue(qname(), element_size=2, capacity=4) as q:
        for _ in range(2):
            q.put_many(b"aabb", itemsize=2)  # the first of this size binds, the second uses it
            assert q.get_many(4) == [b"aa", b"bb"]
        q.put_many(b"aabb", itemsize=2)
        with pytest.raises(Full) as info:
            q.put_many(b"ccdd", itemsize=2, block=False)  # fills the ring
            q.put_many(b"eeff", itemsize=2, block=False)
        assert info.value.done == 0  # type: ignore[attr-defined]
        assert q.get_many(8) == [b"aa", b"bb", b"cc", b"dd"]
        q.put_many(b"gghh", itemsize=2)
        q.put_many(b"iijj", itemsize=2)
        assert q.get_many(1) == [b"gg"]
        with pytest.raises(Full) as info:
            q.put_many(b"kkll", itemsize=2, timeout=0.01)  # one fits, then full
        assert info.value.done == 1  # type: ignore[attr-defined]
        assert q.get_many(8) == [b"hh", b"ii", b"jj", b"kk"]
        q.put_many(b"x", itemsize=1)
        with pytest.raises(TypeError, match="itemsize must be an int"):
            q.put_many(b"x", itemsize=True)  # equal to 1 as a dict key: still refused
        q.shutdown()
        with pytest.raises(ShutDown):
            q.put_many(b"aabb", itemsize=2)
    with pytest.raises(ValueError, match="closed"):
        q.put_many(b"aabb", itemsize=2)


def test_get_many_packed_returns_records_back_to_back(qname: NameFactory) -> None:
    """get_many(n, itemsize=k): up to n messages of exactly k bytes as one bytes object; it
    stops before a message of another length, which stays queued; a first message of another
    length raises ValueError naming it and stays queued."""
    np = pytest.importorskip("numpy")
    records = np.arange(12, dtype="<u4")
    with Queue(qname(), element_size=8, capacity=16) as q:
        q.put_many(records, itemsize=8)  # 6 records of two uint32
        q.put(b"odd")
        q.put_many(b"xxxxxxxx", itemsize=8)
        got = q.get_many(4, itemsize=8)
        assert got == records[:8].tobytes()
        assert (np.frombuffer(got, dtype="<u4") == records[:8]).all()
        assert q.get_many(10, itemsize=8) == records[8:].tobytes()  # stops before b"odd"
        for k in (2, 4):  # shorter and longer than the message
            with pytest.raises(ValueError, match="next message is 3 bytes long, not itemsize"):
                q.get_many(4, itemsize=k)
        assert q.qsize() == 2
        assert q.get() == b"odd"
        assert q.get_many(4, itemsize=8, block=False) == b"xxxxxxxx"
        with pytest.raises(Empty):
            q.get_many(4, itemsize=8, block=False)
        with pytest.raises(Empty):
            q.get_many(4, itemsize=8, timeout=0.02)


def test_get_many_packed_waits_for_the_first_record(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=8) as q:
        timer = threading.Timer(0.05, lambda: q.put_many(b"abcdefgh", itemsize=4))
        timer.start()
        try:
            assert q.get_many(8, itemsize=4, timeout=10) == b"abcdefgh"
        finally:
            timer.join()
        q.shutdown()
        with pytest.raises(ShutDown):
            q.get_many(8, itemsize=4)
    with pytest.raises(ValueError, match="closed"):
        q.get_many(8, itemsize=4)


def test_get_many_packed_rejects_bad_itemsizes(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=4) as q:
        q.put(b"abcd")
        for bad in (0, -1, 5):
            with pytest.raises(ValueError, match=r"is not allowed: it must be in 1\.\.4"):
                q.get_many(4, itemsize=bad)
        for wrong in (True, 2.0, "2"):
            with pytest.raises(TypeError, match="itemsize must be an int"):
                q.get_many(4, itemsize=wrong)  # type: ignore[call-overload]
        assert q.get_many(4, itemsize=4) == b"abcd"  # nothing was taken meanwhile


def test_get_many_packed_large_records_come_in_calls_of_at_most_1_mib(
    qname: NameFactory,
) -> None:
    with Queue(qname(), element_size=300_000, capacity=8) as q:
        rec = [bytes([i]) * 300_000 for i in range(5)]
        q.put_many(rec)
        got = q.get_many(5, itemsize=300_000)
        assert got == b"".join(rec[:3])  # 3 x 300 kB fit in 1 MiB, 4 would not
        assert q.get_many(5, itemsize=300_000) == b"".join(rec[3:])


def test_object_queue_get_many_refuses_itemsize(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=4) as q:
        q.put(1)
        with pytest.raises(TypeError, match=r"itemsize= .* is for fastqueue\.Queue"):
            q.get_many(4, itemsize=2)  # type: ignore[call-arg]
        assert q.get_many(4) == [1]
