"""What ``core/include/fastqueue.h`` promises where a C programmer would otherwise have to guess,
called through the C ABI itself (ctypes on the library the package loads, declared here from the
header, not through ``fastqueue._ffi``): fq_size(NULL), the name limit and its leading '/', a
zero-copy token used twice, fq_wait with both directions, and a timed wait that never gives up
before its deadline."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import _cheader
import fastqueue

NameFactory = Callable[[], str]
HEADER = Path(__file__).resolve().parent.parent / "core" / "include" / "fastqueue.h"
c_u64p = ctypes.POINTER(ctypes.c_uint64)


C = _cheader.constants()


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(fastqueue.library_path())
    vp, i32, i64, u64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
    for name, res, args in [
        ("fq_create", i32, [ctypes.c_char_p, u64, u64, ctypes.c_uint32, ctypes.POINTER(vp)]),
        ("fq_open", i32, [ctypes.c_char_p, ctypes.POINTER(vp)]),
        ("fq_close", None, [vp]),
        ("fq_unlink", i32, [ctypes.c_char_p]),
        ("fq_size", u64, [vp]),
        ("fq_put", i32, [vp, ctypes.c_char_p, u64, i64]),
        ("fq_get", i32, [vp, ctypes.c_char_p, u64, c_u64p, i64]),
        ("fq_write_begin", i32, [vp, ctypes.POINTER(vp), c_u64p, i64]),
        ("fq_write_commit", i32, [vp, u64, u64]),
        ("fq_write_abort", i32, [vp, u64]),
        ("fq_read_begin", i32, [vp, ctypes.POINTER(vp), c_u64p, c_u64p, i64]),
        ("fq_read_end", i32, [vp, u64]),
        ("fq_wait", i32, [vp, i32, i64]),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


LIB = _lib()


@pytest.fixture
def queue(qname: NameFactory) -> Iterator[ctypes.c_void_p]:
    """A handle on a fresh queue of 4 messages of up to 16 bytes (closed and unlinked after)."""
    name = qname().encode()
    q = ctypes.c_void_p()
    assert LIB.fq_create(name, 16, 4, 0o600, ctypes.byref(q)) == C["FQ_OK"]
    try:
        yield q
    finally:
        LIB.fq_close(q)
        LIB.fq_unlink(name)


def test_fq_size_of_null_is_zero() -> None:
    assert LIB.fq_size(None) == 0


def test_the_leading_slash_does_not_count_in_the_250_byte_limit(qname: NameFactory) -> None:
    prefix = qname()
    longest = (prefix + "x" * (250 - len(prefix))).encode()
    assert len(longest) == 250
    for spelling in (longest, b"/" + longest):  # 250 and 251 bytes: the same queue, both fine
        q = ctypes.c_void_p()
        assert LIB.fq_create(spelling, 8, 2, 0o600, ctypes.byref(q)) == C["FQ_OK"]
        LIB.fq_close(q)
        assert LIB.fq_unlink(longest) == C["FQ_OK"]
    for too_long in (longest + b"x", b"/" + longest + b"x"):  # 251 bytes without the '/'
        q = ctypes.c_void_p()
        status = LIB.fq_create(too_long, 8, 2, 0o600, ctypes.byref(q))
        assert status == C["FQ_ERR_INVALID"], status
    for bad in (b".", b"/..", b"", b"/"):
        assert (
            LIB.fq_create(bad, 8, 2, 0o600, ctypes.byref(ctypes.c_void_p())) == C["FQ_ERR_INVALID"]
        )


def test_a_write_token_works_once(queue: ctypes.c_void_p) -> None:
    data, token = ctypes.c_void_p(), ctypes.c_uint64()
    assert LIB.fq_write_begin(queue, ctypes.byref(data), ctypes.byref(token), 0) == C["FQ_OK"]
    assert LIB.fq_write_abort(queue, token) == C["FQ_OK"]
    assert LIB.fq_write_abort(queue, token) == C["FQ_ERR_INVALID"]
    assert LIB.fq_write_commit(queue, token, 1) == C["FQ_ERR_INVALID"]

    assert LIB.fq_write_begin(queue, ctypes.byref(data), ctypes.byref(token), 0) == C["FQ_OK"]
    ctypes.memmove(data, b"once", 4)
    assert LIB.fq_write_commit(queue, token, 4) == C["FQ_OK"]
    assert LIB.fq_write_commit(queue, token, 4) == C["FQ_ERR_INVALID"]
    assert LIB.fq_write_abort(queue, token) == C["FQ_ERR_INVALID"]
    # The second calls changed nothing: the aborted slot is skipped, the message is there once.
    buf, got = ctypes.create_string_buffer(16), ctypes.c_uint64()
    assert LIB.fq_get(queue, buf, 16, ctypes.byref(got), 0) == C["FQ_OK"]
    assert buf.raw[: got.value] == b"once"
    assert LIB.fq_get(queue, buf, 16, ctypes.byref(got), 0) == C["FQ_EMPTY"]
    assert LIB.fq_size(queue) == 0


def test_a_read_token_works_once(queue: ctypes.c_void_p) -> None:
    for msg in (b"first", b"second"):
        assert LIB.fq_put(queue, msg, len(msg), 0) == C["FQ_OK"]
    data, length, token = ctypes.c_void_p(), ctypes.c_uint64(), ctypes.c_uint64()
    args = (ctypes.byref(data), ctypes.byref(length), ctypes.byref(token), 0)
    assert LIB.fq_read_begin(queue, *args) == C["FQ_OK"]
    assert ctypes.string_at(data, length.value) == b"first"
    assert LIB.fq_read_end(queue, token) == C["FQ_OK"]
    assert LIB.fq_read_end(queue, token) == C["FQ_ERR_INVALID"]
    assert LIB.fq_read_end(queue, token.value + 1) == C["FQ_ERR_INVALID"]  # never claimed
    buf, got = ctypes.create_string_buffer(16), ctypes.c_uint64()
    assert LIB.fq_get(queue, buf, 16, ctypes.byref(got), 0) == C["FQ_OK"]
    assert buf.raw[: got.value] == b"second"  # the second fq_read_end took nothing


def test_fq_wait_takes_one_direction_per_call(queue: ctypes.c_void_p) -> None:
    readable, writable = C["FQ_WAIT_READABLE"], C["FQ_WAIT_WRITABLE"]
    assert LIB.fq_wait(queue, writable, 0) == C["FQ_OK"]
    assert LIB.fq_wait(queue, readable, 0) == C["FQ_TIMEOUT"]
    for what in (readable | writable, 0, -1, 4):
        assert LIB.fq_wait(queue, what, 0) == C["FQ_ERR_INVALID"], what


def _timed_get(q: ctypes.c_void_p, timeout_ns: int, outcome: list[tuple[int, int]]) -> None:
    """fq_get with a timeout; appends (status, nanoseconds it took) to `outcome`."""
    buf, got = ctypes.create_string_buffer(16), ctypes.c_uint64()
    start = time.monotonic_ns()
    status = LIB.fq_get(q, buf, 16, ctypes.byref(got), timeout_ns)
    outcome.append((status, time.monotonic_ns() - start))


def test_a_timed_get_never_gives_up_before_its_deadline(qname: NameFactory) -> None:
    """A waiter woken for a message that another consumer then takes goes back to sleep: when it
    reports FQ_EMPTY, its whole timeout has passed (a lower bound only, so load cannot fail it)."""
    name = qname().encode()
    q = ctypes.c_void_p()
    assert LIB.fq_create(name, 16, 4, 0o600, ctypes.byref(q)) == C["FQ_OK"]
    thief = ctypes.c_void_p()
    assert LIB.fq_open(name, ctypes.byref(thief)) == C["FQ_OK"]
    timeout_ns = 300_000_000
    try:
        for _ in range(3):
            outcome: list[tuple[int, int]] = []

            waiter = threading.Thread(target=_timed_get, args=(q, timeout_ns, outcome))
            waiter.start()
            time.sleep(0.02)
            # A message appears and is taken at once by another handle: the waiter may be woken
            # for it and find nothing (or, rarely, win it).
            assert LIB.fq_put(thief, b"m", 1, 0) == C["FQ_OK"]
            buf, got = ctypes.create_string_buffer(16), ctypes.c_uint64()
            LIB.fq_get(thief, buf, 16, ctypes.byref(got), 0)
            waiter.join(30)
            assert not waiter.is_alive()
            ((status, elapsed),) = outcome
            assert status in (C["FQ_OK"], C["FQ_EMPTY"]), status
            if status == C["FQ_EMPTY"]:
                assert elapsed >= timeout_ns, f"gave up after {elapsed} ns of {timeout_ns}"
            assert LIB.fq_size(q) == 0
    finally:
        LIB.fq_close(thief)
        LIB.fq_close(q)
        LIB.fq_unlink(name)
