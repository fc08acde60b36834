"""Unit tests of every public method of fastqueue.Queue and every error path, in one process."""

from __future__ import annotations

import array
import gc
import os
import pickle
import queue as stdlib_queue
import re
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from fastqueue import Empty, Full, Queue

SHM = Path("/dev/shm")

NameFactory = Callable[[], str]


def exists(name: str) -> bool:
    return (SHM / name).exists()


def mappings_of(name: str) -> int:
    """How many of this process's memory mappings and descriptors refer to /dev/shm/<name>."""
    maps = Path("/proc/self/maps").read_text().count(f"/dev/shm/{name}")
    fds = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd).startswith(f"/dev/shm/{name}"):
                fds += 1
        except OSError:
            pass
    return maps + fds


# ------------------------------------------------------------------------------ construction


def test_create_sets_properties_and_segment(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=100, capacity=7)
    assert (q.name, q.element_size, q.maxsize) == (name, 100, 7)
    assert not q.closed
    assert exists(name)
    assert name in repr(q) and "element_size=100" in repr(q) and "maxsize=7" in repr(q)
    q.close()


def test_create_positional_arguments(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, 8, 3, True) as q:
        assert (q.element_size, q.maxsize) == (8, 3)


def test_leading_slash_is_the_same_queue(qname: NameFactory) -> None:
    name = qname()
    with Queue("/" + name, element_size=4, capacity=2) as q:
        assert q.name == name
        with Queue(name, create=False) as a, Queue("/" + name, create=False) as b:
            a.put(b"x")
            assert b.get_nowait() == b"x"


def test_automatic_name_is_unique_and_removed_on_close() -> None:
    with Queue(element_size=8, capacity=2) as a, Queue(element_size=8, capacity=2) as b:
        assert re.fullmatch(rf"fq-{os.getpid()}-[0-9a-f]{{12}}", a.name)
        assert a.name != b.name
        assert exists(a.name) and exists(b.name)
        names = (a.name, b.name)
    assert not any(exists(n) for n in names)


def test_create_existing_name_raises_and_leaves_original(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        q.put(b"keep")
        with pytest.raises(FileExistsError, match=re.escape(name)) as info:
            Queue(name, element_size=8, capacity=2)
        assert isinstance(info.value, fastqueue.QueueExistsError)
        assert isinstance(info.value, fastqueue.FastQueueError)
        assert exists(name)
        assert q.get_nowait() == b"keep"


@pytest.mark.parametrize(
    ("element_size", "capacity"), [(None, 4), (4, None), (None, None)], ids=str
)
def test_create_without_sizes_is_value_error(
    qname: NameFactory, element_size: int | None, capacity: int | None
) -> None:
    name = qname()
    with pytest.raises(ValueError, match=r"element_size= .* capacity="):
        Queue(name, element_size=element_size, capacity=capacity)
    assert not exists(name)


@pytest.mark.parametrize("bad", [0, -1, -(2**70), 2**64], ids=str)
@pytest.mark.parametrize("which", ["element_size", "capacity"])
def test_create_with_out_of_range_size_is_value_error(
    qname: NameFactory, which: str, bad: int
) -> None:
    name = qname()
    sizes = {"element_size": 8, "capacity": 4, which: bad}
    with pytest.raises(ValueError, match=which):
        Queue(name, **sizes)
    assert not exists(name)


@pytest.mark.parametrize("bad", [True, False, 1.0, 4.5, "8", b"8", [8]], ids=repr)
@pytest.mark.parametrize("which", ["element_size", "capacity"])
def test_create_with_non_int_size_is_type_error(
    qname: NameFactory, which: str, bad: object
) -> None:
    name = qname()
    sizes: dict[str, object] = {"element_size": 8, "capacity": 4, which: bad}
    with pytest.raises(TypeError, match=which):
        Queue(name, **sizes)  # type: ignore[arg-type]
    assert not exists(name)


def test_create_accepts_integer_like_sizes(qname: NameFactory) -> None:
    np = pytest.importorskip("numpy")
    with Queue(qname(), element_size=np.int64(16), capacity=np.uint8(3)) as q:
        assert (q.element_size, q.maxsize) == (16, 3)
        assert type(q.element_size) is int and type(q.maxsize) is int


def test_create_absurdly_large_is_rejected_without_leftovers(qname: NameFactory) -> None:
    name = qname()
    with pytest.raises((ValueError, fastqueue.NoSpaceError)):
        Queue(name, element_size=2**63, capacity=2**63)
    assert not exists(name)


def test_create_larger_than_shm_is_no_space_error(qname: NameFactory) -> None:
    st = os.statvfs(SHM)
    free = st.f_bavail * st.f_frsize
    element_size = 1 << 20
    capacity = free // element_size + 4096  # 4 GiB more than /dev/shm has free
    name = qname()
    with pytest.raises(fastqueue.NoSpaceError) as info:
        Queue(name, element_size=element_size, capacity=capacity)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, fastqueue.FastQueueError)
    assert err.errno is not None
    message = str(err)
    assert "bytes" in message and "/dev/shm" in message
    assert re.search(r"needs \d+ bytes", message), message
    assert re.search(r"has \d+ bytes free", message), message
    assert not exists(name)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (123, TypeError),
        (b"bytes-name", TypeError),
        ("", ValueError),
        ("/", ValueError),
        ("a/b", ValueError),
        ("nul\0name", ValueError),
        ("x" * 251, ValueError),
    ],
    ids=["int", "bytes", "empty", "slash", "inner-slash", "nul", "too-long"],
)
def test_bad_names(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Queue(bad, element_size=8, capacity=2)  # type: ignore[arg-type]
    with pytest.raises(error):
        Queue(bad, create=False)  # type: ignore[arg-type]
    with pytest.raises(error):
        fastqueue.unlink(bad)  # type: ignore[arg-type]


def test_longest_name_works() -> None:
    from conftest import unique_prefix

    prefix = unique_prefix()
    name = prefix + "x" * (250 - len(prefix))
    with Queue(name, element_size=8, capacity=2) as q:
        assert q.name == name and exists(name)
    assert not exists(name)


# 0o606: the umask 0o022 below would take the others' write bit away; the mode keeps it.
@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666, 0o606], ids=oct)
def test_mode_sets_permission_bits_exactly(qname: NameFactory, mode: int) -> None:
    name = qname()
    old_umask = os.umask(0o022)  # the mode is applied as given, not masked by the umask
    try:
        with Queue(name, element_size=8, capacity=2, mode=mode):
            assert (SHM / name).stat().st_mode & 0o7777 == mode
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("0o600", TypeError), (True, TypeError), (-1, ValueError), (0o10000, ValueError)],
)
def test_bad_mode(qname: NameFactory, mode: object, error: type[Exception]) -> None:
    name = qname()
    with pytest.raises(error):
        Queue(name, element_size=8, capacity=2, mode=mode)  # type: ignore[arg-type]
    assert not exists(name)


# ------------------------------------------------------------------------------ attaching


def test_attach_reads_sizes_from_segment(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=33, capacity=5) as q, Queue(name, create=False) as a:
        assert (a.name, a.element_size, a.maxsize) == (name, 33, 5)
        assert "attached" in repr(a) and "owner" in repr(q)
        q.put(b"hello")
        assert a.qsize() == 1
        assert a.get() == b"hello"


def test_attach_with_matching_sizes(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=33, capacity=5), Queue(name, 33, 5, create=False) as a:
        assert a.maxsize == 5
    with Queue(name, element_size=33, capacity=5), Queue(name, capacity=5, create=False) as a:
        assert a.element_size == 33


@pytest.mark.parametrize(("element_size", "capacity"), [(32, 5), (33, 6), (1, 1)])
def test_attach_with_other_sizes_is_value_error_and_leaks_nothing(
    qname: NameFactory, element_size: int, capacity: int
) -> None:
    name = qname()
    with Queue(name, element_size=33, capacity=5) as q:
        before = mappings_of(name)
        with pytest.raises(ValueError, match="element_size=33 and capacity=5"):
            Queue(name, element_size=element_size, capacity=capacity, create=False)
        gc.collect()
        assert mappings_of(name) == before
        q.put(b"still fine")
        assert q.get() == b"still fine"


def test_attach_with_bad_size_types_checks_before_opening(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2):
        with pytest.raises(TypeError):
            Queue(name, element_size=8.0, create=False)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Queue(name, capacity=0, create=False)


def test_attach_missing_is_file_not_found(qname: NameFactory) -> None:
    name = qname()
    with pytest.raises(FileNotFoundError, match=re.escape(name)) as info:
        Queue(name, create=False)
    assert isinstance(info.value, fastqueue.QueueNotFoundError)
    assert not exists(name)


def test_attach_without_name_is_value_error() -> None:
    with pytest.raises(ValueError, match="name"):
        Queue(create=False)


def test_attached_close_does_not_unlink(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2):
        Queue(name, create=False).close()
        assert exists(name)
        a = Queue(name, create=False)
        del a
        gc.collect()
        assert exists(name)


def test_owner_close_unlinks_but_attached_keeps_working(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    a = Queue(name, create=False)
    q.put(b"one")
    q.close()
    assert not exists(name)
    a.put(b"two")
    assert [a.get(), a.get()] == [b"one", b"two"]
    a.close()


def test_owner_collected_unlinks(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    assert exists(name)
    del q
    gc.collect()
    assert not exists(name)


def test_owner_in_reference_cycle_is_collected_and_unlinked(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    cycle: list[object] = [q]
    cycle.append(cycle)
    del q, cycle
    gc.collect()
    assert not exists(name)


# ------------------------------------------------------------------------------ unlink


def test_unlink_method_removes_name_and_handle_keeps_working(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        q.unlink()
        assert not exists(name)
        q.put(b"x")
        assert q.get() == b"x"
        q.unlink()  # the owner may unlink again
    with pytest.raises(FileNotFoundError):
        Queue(name, create=False)


def test_owner_unlink_after_someone_else_unlinked_is_fine(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        fastqueue.unlink(name)
        q.unlink()


def test_owner_close_after_unlink_spares_a_new_queue_of_the_same_name(qname: NameFactory) -> None:
    name = qname()
    old = Queue(name, element_size=8, capacity=2)
    old.unlink()
    with Queue(name, element_size=16, capacity=3) as new:
        old.close()
        assert exists(name)
        with Queue(name, create=False) as a:
            assert a.element_size == 16
        assert new.maxsize == 3


def test_attached_unlink(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q, Queue(name, create=False) as a:
        a.unlink()
        assert not exists(name)
        with pytest.raises(FileNotFoundError):
            a.unlink()
        q.put(b"x")
        assert a.get() == b"x"


def test_module_unlink(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        fastqueue.unlink("/" + name)
        assert not exists(name)
        with pytest.raises(FileNotFoundError, match=re.escape(name)):
            fastqueue.unlink(name)
        q.put(b"x")
        assert q.get() == b"x"


# ------------------------------------------------------------------------------ put / get


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 7, 8, 13, 64, 100])
def test_fifo_over_many_laps(qname: NameFactory, capacity: int) -> None:
    with Queue(qname(), element_size=16, capacity=capacity) as q:
        expected: list[bytes] = []
        sent = 0
        for _ in range(7):  # fill and drain, wrapping the ring several times
            for _ in range(capacity):
                msg = f"m{sent}".encode()
                q.put_nowait(msg)
                expected.append(msg)
                sent += 1
            assert q.full()
            with pytest.raises(Full):
                q.put_nowait(b"over")
            got = [q.get_nowait() for _ in range(capacity)]
            assert got == expected[-capacity:]
            assert q.empty()
        # Interleaved, never full: one in, one out, more laps.
        for i in range(3 * capacity + 1):
            q.put(b"%d" % i)
            assert q.get() == b"%d" % i


def test_zero_length_and_exactly_element_size(qname: NameFactory) -> None:
    with Queue(qname(), element_size=5, capacity=4) as q:
        q.put(b"")
        q.put(b"12345")
        q.put(bytearray())
        assert q.qsize() == 3
        assert [q.get(), q.get(), q.get()] == [b"", b"12345", b""]


def test_capacity_one(qname: NameFactory) -> None:
    with Queue(qname(), element_size=1, capacity=1) as q:
        for i in range(10):
            assert q.empty() and not q.full()
            q.put(bytes([i]))
            assert q.full() and not q.empty() and len(q) == 1
            with pytest.raises(Full):
                q.put(b"x", block=False)
            assert q.get() == bytes([i])


def test_get_returns_bytes(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        q.put(bytearray(b"abc"))
        got = q.get()
        assert type(got) is bytes and got == b"abc"


def test_too_long_message_is_value_error_naming_both_sizes(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=2) as q:
        q.put(b"keep")
        for item in (b"12345", bytearray(10), memoryview(b"123456")):
            with pytest.raises(ValueError, match=r"\b\d+ bytes.*element_size of 4 bytes") as info:
                q.put(item)
            assert isinstance(info.value, fastqueue.MessageTooBigError)
            with pytest.raises(ValueError):
                q.put_nowait(item)
        assert q.qsize() == 1 and q.get() == b"keep" and q.empty()


@pytest.mark.parametrize(
    "item", ["text", 5, None, [1, 2], object(), 3.5], ids=lambda x: type(x).__name__
)
def test_not_bytes_like_is_type_error(qname: NameFactory, item: object) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        with pytest.raises(TypeError):
            q.put(item)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            q.put_nowait(item)  # type: ignore[arg-type]
        assert q.empty()


def test_bytes_like_variety(qname: NameFactory) -> None:
    ints = array.array("i", [1, -2, 3])
    doubles = array.array("d", [0.5, 2.0])
    writable = bytearray(b"0123456789")
    items: list[tuple[object, bytes]] = [
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"readonly view"), b"readonly view"),
        (memoryview(writable), bytes(writable)),
        (memoryview(writable)[2:5], b"234"),
        (memoryview(writable)[::3], b"0369"),  # non-contiguous: copied
        (memoryview(b"abcdefgh")[::2], b"aceg"),  # read-only and non-contiguous
        (memoryview(writable).cast("H"), bytes(writable)),
        (ints, ints.tobytes()),
        (doubles, doubles.tobytes()),
        (memoryview(bytearray()), b""),
    ]
    with Queue(qname(), element_size=64, capacity=len(items)) as q:
        for item, _ in items:
            q.put_nowait(item)  # type: ignore[arg-type]
        for _, expected in items:
            assert q.get_nowait() == expected


def test_numpy_arrays(qname: NameFactory) -> None:
    np = pytest.importorskip("numpy")
    a = np.arange(12, dtype=np.int32)
    m = np.arange(12, dtype=np.float64).reshape(3, 4)
    ro = np.arange(5, dtype=np.uint8)
    ro.setflags(write=False)
    items = [a, m, m[:, 1], m.T, a[::2], ro, np.zeros(0, dtype=np.int8), np.float64(1.5)]
    with Queue(qname(), element_size=128, capacity=len(items)) as q:
        for item in items:
            q.put(item)
        for item in items:
            assert q.get() == np.ascontiguousarray(item).tobytes()


def test_put_does_not_keep_the_buffer_exported(qname: NameFactory) -> None:
    buf = bytearray(b"abc")
    with Queue(qname(), element_size=8, capacity=2) as q:
        q.put(buf)
        buf.extend(b"def")  # would raise BufferError if put still held an export
        q.put(buf)
        assert [q.get(), q.get()] == [b"abc", b"abcdef"]


def test_empty_and_full_are_stdlib_exceptions(qname: NameFactory) -> None:
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)
    with Queue(qname(), element_size=8, capacity=1) as q:
        with pytest.raises(stdlib_queue.Empty):
            q.get_nowait()
        with pytest.raises(Empty):
            q.get(block=False)
        with pytest.raises(Empty):
            q.get(timeout=0)
        q.put(b"x")
        with pytest.raises(stdlib_queue.Full):
            q.put_nowait(b"y")
        with pytest.raises(Full):
            q.put(b"y", block=False)
        with pytest.raises(Full):
            q.put(b"y", timeout=0)
        assert q.get() == b"x"


def test_non_blocking_ignores_timeout(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        start = time.monotonic()
        with pytest.raises(Empty):
            q.get(block=False, timeout=30)
        q.put(b"x")
        with pytest.raises(Full):
            q.put(b"y", block=False, timeout=30)
        assert time.monotonic() - start < 20  # it did not wait the 30 s


@pytest.mark.parametrize("timeout", [0.01, 0.12, 0.3])
def test_get_timeout_waits_at_least_the_timeout(qname: NameFactory, timeout: float) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        start = time.monotonic()
        with pytest.raises(Empty):
            q.get(timeout=timeout)
        assert time.monotonic() - start >= timeout
        assert q.empty()


@pytest.mark.parametrize("timeout", [0.01, 0.12, 0.3])
def test_put_timeout_waits_at_least_the_timeout(qname: NameFactory, timeout: float) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        q.put(b"full")
        start = time.monotonic()
        with pytest.raises(Full):
            q.put(b"more", timeout=timeout)
        assert time.monotonic() - start >= timeout
        assert q.qsize() == 1 and q.get() == b"full"


@pytest.mark.parametrize("timeout", [-1, -0.001, float("nan"), float("-inf")], ids=repr)
def test_bad_timeout_is_value_error_and_changes_nothing(qname: NameFactory, timeout: float) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        with pytest.raises(ValueError, match="timeout"):
            q.get(timeout=timeout)
        with pytest.raises(ValueError, match="timeout"):
            q.put(b"x", timeout=timeout)
        assert q.empty()
        q.put(b"y")
        with pytest.raises(ValueError, match="timeout"):
            q.get(timeout=timeout)
        assert q.get() == b"y"


@pytest.mark.parametrize("timeout", ["1", b"1", [1], object()], ids=repr)
def test_non_number_timeout_is_type_error(qname: NameFactory, timeout: object) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        with pytest.raises(TypeError, match="timeout"):
            q.get(timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout"):
            q.put(b"x", timeout=timeout)  # type: ignore[arg-type]
        assert q.empty()


def test_infinite_timeout_means_forever(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        threading.Timer(0.2, q.put, (b"late",)).start()
        assert q.get(timeout=float("inf")) == b"late"


def _later(delay: float, func: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        func()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_blocked_get_is_woken_by_put_from_another_handle(
    qname: NameFactory, timeout: float | None
) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=1) as q, Queue(name, create=False) as a:
        t = _later(0.2, lambda: a.put(b"wake"))
        assert q.get(timeout=timeout) == b"wake"
        t.join()


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_blocked_put_is_woken_by_get_from_another_handle(
    qname: NameFactory, timeout: float | None
) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=1) as q, Queue(name, create=False) as a:
        q.put(b"first")
        got: list[bytes] = []
        t = _later(0.2, lambda: got.append(a.get()))
        q.put(b"second", timeout=timeout)
        t.join()
        assert got == [b"first"] and a.get() == b"second"


def test_threads_sharing_one_handle_exchange_every_message_once(qname: NameFactory) -> None:
    per_producer, producers, consumers = 2000, 3, 3
    received: list[list[bytes]] = [[] for _ in range(consumers)]
    with Queue(qname(), element_size=32, capacity=5) as q:

        def produce(p: int) -> None:
            for i in range(per_producer):
                q.put(b"%d:%d:" % (p, i) + b"x" * (i % 20))

        def consume(c: int) -> None:
            while True:
                msg = q.get(timeout=30)
                if msg == b"":
                    return
                received[c].append(msg)

        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        threads += [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
        for t in threads:
            t.start()
        for t in threads[:producers]:
            t.join()
        for _ in range(consumers):
            q.put(b"")
        for t in threads[producers:]:
            t.join()
    seen: dict[int, list[int]] = {p: [] for p in range(producers)}
    for msgs in received:
        last: dict[int, int] = {}
        for m in msgs:
            p, i, pad = m.split(b":")
            assert pad == b"x" * (int(i) % 20)
            assert int(i) > last.get(int(p), -1)  # per-producer order, as each consumer sees it
            last[int(p)] = int(i)
            seen[int(p)].append(int(i))
    for p in range(producers):
        assert sorted(seen[p]) == list(range(per_producer))


# ------------------------------------------------------------------------------ sizes


def test_qsize_len_empty_full_bool(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=3) as q, Queue(name, create=False) as a:
        for n in range(3):
            for h in (q, a):
                assert h.qsize() == len(h) == n
                assert (h.empty(), h.full(), bool(h)) == (n == 0, False, n > 0)
            q.put(b"m")
        for h in (q, a):
            assert (h.qsize(), len(h), h.empty(), h.full(), bool(h)) == (3, 3, False, True, True)
        while q:
            q.get()
        assert q.empty() and not a and len(a) == 0


def test_stats_count_operations_of_every_handle(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q, Queue(name, create=False) as a:
        assert {"puts", "gets", "full_hits", "empty_hits", "recoveries", "depth"} <= set(q.stats())
        assert all(type(v) is int for v in q.stats().values())
        q.put(b"1")
        a.put(b"2")
        with pytest.raises(Full):
            a.put_nowait(b"3")
        assert q.get() == b"1"
        s = a.stats()
        assert (s["puts"], s["gets"], s["full_hits"], s["depth"]) == (2, 1, 1, 1)
        assert q.stats() == s
        assert s["recoveries"] == 0


# ------------------------------------------------------------------------------ batches


def test_put_many_and_get_many_keep_order(qname: NameFactory) -> None:
    np = pytest.importorskip("numpy")
    items = [b"", b"a", bytearray(b"bc"), memoryview(b"defg")[::2], np.arange(2, dtype=np.int16)]
    expected = [b"", b"a", b"bc", b"df", np.arange(2, dtype=np.int16).tobytes()]
    with Queue(qname(), element_size=8, capacity=7) as q:
        q.put(b"first")
        q.put_many(items)
        q.put_many([])
        q.put_many(iter([b"z"]))
        assert q.qsize() == 7
        assert q.get_many(1) == [b"first"]
        assert q.get_many(100) == [*expected, b"z"]
        assert q.empty()


def test_put_many_checks_every_item_first(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=8) as q:
        with pytest.raises(ValueError, match="element_size of 4"):
            q.put_many([b"ok", b"too long"])
        with pytest.raises(TypeError):
            q.put_many([b"ok", "text"])  # type: ignore[list-item]
        assert q.empty()


def test_put_many_into_too_little_room(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=3) as q:
        q.put(b"x")
        with pytest.raises(Full) as info:
            q.put_many([b"1", b"2", b"3"], block=False)
        assert info.value.done == 2  # type: ignore[attr-defined]
        assert q.get_many(5) == [b"x", b"1", b"2"]
        q.put_many([b"1", b"2", b"3"])
        start = time.monotonic()
        with pytest.raises(Full) as info:
            q.put_many([b"4"], timeout=0.1)
        assert time.monotonic() - start >= 0.1
        assert info.value.done == 0  # type: ignore[attr-defined]
        with pytest.raises(Full):
            q.put_many([b"4"], timeout=0)


def test_blocking_put_many_larger_than_the_queue(qname: NameFactory) -> None:
    name = qname()
    items = [b"%d" % i for i in range(200)]
    got: list[bytes] = []
    with Queue(name, element_size=4, capacity=3) as q, Queue(name, create=False) as a:

        def consume() -> None:
            while len(got) < len(items):
                got.extend(a.get_many(2, timeout=30))

        t = threading.Thread(target=consume)
        t.start()
        q.put_many(items, timeout=60)
        t.join(60)
        assert got == items


def test_get_many_waits_and_times_out(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=3) as q:
        start = time.monotonic()
        with pytest.raises(Empty):
            q.get_many(3, timeout=0.1)
        assert time.monotonic() - start >= 0.1
        with pytest.raises(Empty):
            q.get_many(3, block=False)
        t = _later(0.2, lambda: q.put(b"late"))
        assert q.get_many(3) == [b"late"]
        t.join()


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-1, ValueError), (1.0, TypeError)])
def test_get_many_rejects_bad_counts(qname: NameFactory, bad: object, error: type) -> None:
    with Queue(qname(), element_size=4, capacity=3) as q:
        q.put(b"x")
        with pytest.raises(error):
            q.get_many(bad)  # type: ignore[arg-type]
        assert q.qsize() == 1


def test_get_many_of_large_messages_in_several_calls(qname: NameFactory) -> None:
    size = 1 << 19  # two fit in get_many's 1 MiB buffer
    with Queue(qname(), element_size=size, capacity=4) as q:
        msgs = [bytes([i]) * size for i in range(4)]
        q.put_many(msgs)
        got: list[bytes] = []
        while len(got) < 4:
            got += q.get_many(4, timeout=5)
        assert got == msgs


def test_batches_after_shutdown(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=3) as q:
        q.put(b"x")
        q.shutdown()
        with pytest.raises(fastqueue.ShutDown):
            q.put_many([b"y"])
        assert q.get_many(3) == [b"x"]
        with pytest.raises(fastqueue.ShutDown):
            q.get_many(3)


# ------------------------------------------------------------------------------ tasks, shutdown


def test_task_done_and_join_across_handles(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=4) as q, Queue(name, create=False) as a:
        assert q.join(timeout=0) is True  # nothing was ever put
        q.put(b"1")
        q.put(b"2")
        start = time.monotonic()
        assert q.join(timeout=0.1) is False
        assert time.monotonic() - start >= 0.1
        assert a.get() == b"1" and a.get() == b"2"
        a.task_done()
        assert q.join(timeout=0) is False
        t = _later(0.2, a.task_done)
        assert q.join() is True  # woken by the other handle's task_done
        t.join()
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()
        assert q.stats()["unfinished"] == 0


@pytest.mark.parametrize("timeout", [-1, float("nan")], ids=repr)
def test_join_with_bad_timeout_is_value_error(qname: NameFactory, timeout: float) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q, pytest.raises(ValueError):
        q.join(timeout=timeout)


def test_shutdown_lets_gets_drain_then_raises_everywhere(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=4) as q, Queue(name, create=False) as a:
        q.put(b"1")
        q.put(b"2")
        a.shutdown()
        for h in (q, a):
            with pytest.raises(fastqueue.ShutDown):
                h.put(b"late")
            with pytest.raises(fastqueue.ShutDown):
                h.put_nowait(b"late")
        assert q.get() == b"1" and a.get_nowait() == b"2"
        for h in (q, a):
            for get in (h.get, h.get_nowait, lambda h=h: h.get(timeout=5)):
                with pytest.raises(fastqueue.ShutDown) as info:
                    get()
                assert isinstance(info.value, fastqueue.FastQueueError)
                if hasattr(stdlib_queue, "ShutDown"):
                    assert isinstance(info.value, stdlib_queue.ShutDown)
                assert name in str(info.value)
        q.shutdown()  # again: no error


def test_immediate_shutdown_discards_and_counts_as_done(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"1")
        q.put(b"2")
        q.shutdown(immediate=True)
        with pytest.raises(fastqueue.ShutDown):
            q.get_nowait()
        assert q.join(timeout=5) is True


@pytest.mark.parametrize("side", ["get", "put"])
def test_shutdown_wakes_blocked_callers(qname: NameFactory, side: str) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=1) as q, Queue(name, create=False) as a:
        if side == "put":
            q.put(b"full")
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                q.get() if side == "get" else q.put(b"more")
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=blocked, daemon=True)
        t.start()
        time.sleep(0.2)
        a.shutdown()
        t.join(10)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], fastqueue.ShutDown), errors


# ------------------------------------------------------------------------------ closing


CLOSED_OPS: dict[str, Callable[[Queue], object]] = {
    "put": lambda q: q.put(b"x"),
    "put-timeout": lambda q: q.put(b"x", timeout=1),
    "put-nonblocking": lambda q: q.put(b"x", block=False),
    "put_nowait": lambda q: q.put_nowait(b"x"),
    "get": lambda q: q.get(),
    "get-timeout": lambda q: q.get(timeout=1),
    "get_nowait": lambda q: q.get_nowait(),
    "qsize": lambda q: q.qsize(),
    "len": len,
    "bool": bool,
    "empty": lambda q: q.empty(),
    "full": lambda q: q.full(),
    "unlink": lambda q: q.unlink(),
    "pickle": pickle.dumps,
    "stats": lambda q: q.stats(),
    "task_done": lambda q: q.task_done(),
    "join": lambda q: q.join(),
    "join-timeout": lambda q: q.join(timeout=1),
    "shutdown": lambda q: q.shutdown(),
    "put_many": lambda q: q.put_many([b"x"]),
    "get_many": lambda q: q.get_many(1),
}


@pytest.mark.parametrize("op", list(CLOSED_OPS))
@pytest.mark.parametrize("owner", [True, False], ids=["owner", "attached"])
def test_operations_on_closed_handle_raise_value_error(
    qname: NameFactory, op: str, owner: bool
) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        h = q if owner else Queue(name, create=False)
        h.close()
        h.close()  # idempotent
        assert h.closed
        with pytest.raises(ValueError, match="closed"):
            CLOSED_OPS[op](h)
        # What needs no handle still answers.
        assert (h.name, h.element_size, h.maxsize) == (name, 8, 2)
        assert "closed" in repr(h)


def test_with_statement_closes(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        assert not q.closed
    assert q.closed and not exists(name)


def test_close_while_another_thread_is_blocked_in_get(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            q.get()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=blocked, daemon=True)
    t.start()
    time.sleep(0.2)
    q.close()
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert "closed" in str(errors[0])


def test_failed_constructor_leaves_a_safe_object() -> None:
    # __del__ and __repr__ of a half-built Queue (argument rejected) must not raise.
    q = Queue.__new__(Queue)
    repr(q)
    q.close()
    del q
    gc.collect()


# ------------------------------------------------------------------------------ pickling


def test_pickle_in_process_gives_an_attached_handle(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2) as q:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            a = pickle.loads(pickle.dumps(q, protocol))
            assert isinstance(a, Queue) and a is not q
            assert (a.name, a.element_size, a.maxsize) == (name, 8, 2)
            assert "attached" in repr(a)
            q.put(b"via q")
            assert a.get() == b"via q"
            a.close()
            assert exists(name)  # the copy never unlinks


def test_unpickling_after_the_queue_is_gone(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    data = pickle.dumps(q)
    q.close()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


def test_unpickling_onto_a_different_queue_of_the_same_name(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=8, capacity=2)
    data = pickle.dumps(q)
    q.close()
    with Queue(name, element_size=9, capacity=2), pytest.raises(ValueError, match="element_size"):
        pickle.loads(data)


# ------------------------------------------------------------------------------ module


def test_version_and_exports() -> None:
    assert isinstance(fastqueue.__version__, str) and fastqueue.__version__
    for name in fastqueue.__all__:
        assert hasattr(fastqueue, name), name
    assert issubclass(fastqueue.SegmentError, fastqueue.FastQueueError)
    assert fastqueue.Empty.__module__ == "fastqueue"
