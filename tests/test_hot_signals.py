"""The hot paths of Queue.put / get under an exception at the one point where CPython can run a
signal handler inside them: the check right after the library call returns (issue 18 A; see
the comments in _putget). A hook in place of the library function makes the call and then
raises, as a handler would there, deterministically; the storms of test_signals.py do the same
with real signals, at random.

A get so interrupted has taken a message: it must keep it for the next get (nothing lost, the
order kept). A put so interrupted has put: the exception is deferred to the handle's next call
(nothing duplicated by a caller that retries). Where the call took or put nothing, the
exception is simply raised.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fastqueue
from _landing import Landed, hook_take, raising_after
from fastqueue import _putget

NameFactory = Callable[[], str]


@pytest.fixture
def q(qname: NameFactory) -> Iterator[fastqueue.Queue]:
    queue = fastqueue.Queue(qname(), element_size=8, capacity=2)
    try:
        yield queue
    finally:
        queue.close()


@pytest.mark.parametrize("form", ["get", "get_nowait"])
def test_get_interrupted_after_the_take_keeps_the_message(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    q.put(b"one")
    q.put(b"two")
    times = [1]
    hook_take(monkeypatch, raising_after(_putget._try_take_in, times))
    get = getattr(q, form)
    with pytest.raises(Landed):
        get()
    assert times == [0]  # (the hook ran: the take happened, then the exception)
    assert q.qsize() == 1  # "one" is out of the queue: kept by this handle
    assert get() == b"one"  # handed over first
    assert get() == b"two"
    with pytest.raises(fastqueue.Empty):
        q.get_nowait()


def test_get_interrupted_twice_in_a_row_loses_nothing(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception as the kept message is handed over again keeps it again."""
    q.put(b"one")
    times = [2]
    hook_take(monkeypatch, raising_after(_putget._try_take_in, times))
    for _ in range(2):
        with pytest.raises(Landed):
            q.get()
    assert q.get() == b"one"
    with pytest.raises(fastqueue.Empty):
        q.get_nowait()


def test_get_interrupted_after_an_empty_take_takes_nothing(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = [1]
    hook_take(monkeypatch, raising_after(_putget._try_take_in, times))
    with pytest.raises(Landed):
        q.get_nowait()
    assert q._hot.word[0] == -1  # nothing held
    q.put(b"one")
    assert q.get_nowait() == b"one"


@pytest.mark.parametrize("form", ["put", "put_nowait"])
def test_put_interrupted_after_the_put_defers_the_exception(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    times = [1]
    monkeypatch.setattr(_putget, "_try_put_in", raising_after(_putget._try_put_in, times))
    put = getattr(q, form)
    put(b"one")  # put, then the exception: deferred, not raised
    assert times == [0]
    assert q.qsize() == 1
    with pytest.raises(Landed):  # the handle's next call raises it, doing nothing else
        put(b"two")
    assert q.qsize() == 1
    put(b"two")
    assert [q.get(), q.get()] == [b"one", b"two"]


def test_put_interrupted_after_a_full_attempt_puts_nothing(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    q.put(b"a")
    q.put(b"b")  # full (capacity 2)
    times = [1]
    monkeypatch.setattr(_putget, "_try_put_in", raising_after(_putget._try_put_in, times))
    with pytest.raises(Landed):
        q.put_nowait(b"c")
    with pytest.raises(Landed):  # (put's flag is cleared before each call: not the last put's)
        times[0] = 1
        q.put(b"c", timeout=0.01)
    assert [q.get(), q.get()] == [b"a", b"b"]
    with pytest.raises(fastqueue.Empty):
        q.get_nowait()


def test_put_flag_is_this_calls_even_after_a_put(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put that succeeded leaves the flag set; the next put, interrupted after finding the
    queue full, must not read that as its own: it raises, and put nothing."""
    q.put(b"a")
    q.put(b"b")  # succeeded: the flag says so
    real = _putget._try_put_in
    calls: list[int] = []

    def hook(*args: Any) -> Any:
        status = real(*args)
        calls.append(status)
        raise Landed

    monkeypatch.setattr(_putget, "_try_put_in", hook)
    with pytest.raises(Landed):
        q.put_nowait(b"c")
    assert calls == [fastqueue._ffi.FULL]
    assert q.qsize() == 2


def test_take_in_and_put_in_follow_their_blocks(q: fastqueue.Queue) -> None:
    """The C side of the hot calls (fastqueue.h: fq_try_take_in, fq_try_put_in): each reads
    the handle from its block; the put's flag is set by every call (1: put, 0: not); NULL or
    misaligned blocks and NULL handles are refused with ERR_NULL, taking and putting nothing."""
    from fastqueue import _ffi

    bias = _ffi.TRY_BIAS
    h = q._h
    assert h is not None
    block = _ffi.PutBlock(h)
    flag = block.flag
    assert _ffi.try_put_in(block.arg, b"abc", 3) == _ffi.OK and flag[8] == 1
    assert _ffi.try_put_in(block.arg, b"d", 1) == _ffi.OK
    assert _ffi.try_put_in(block.arg, b"e", 1) == _ffi.FULL and flag[8] == 0
    assert _ffi.try_put_in(None, b"e", 1) == _ffi.ERR_NULL
    unbound = _ffi.PutBlock(None)
    unbound.flag[8] = 1
    assert _ffi.try_put_in(unbound.arg, b"e", 1) == _ffi.ERR_NULL and unbound.flag[8] == 0
    raw = ctypes.create_string_buffer(32)
    assert _ffi.try_put_in(ctypes.byref(raw, 1), b"e", 1) == _ffi.ERR_NULL  # misaligned
    held = h.held(hot=True)
    assert _ffi.try_take_in(*held.take_args) == 3 and held.buf[:3] == b"abc"
    assert held.word[0] == 3  # held until the caller stores -1
    assert _ffi.try_take_in(*held.take_args) == _ffi.ERR_BUSY - bias  # took nothing
    held.word[0] = -2 - 3  # kept: handed over again, nothing taken
    assert _ffi.try_take_in(*held.take_args) == 3 and held.buf[:3] == b"abc"
    held.word[0] = -1
    assert _ffi.try_take_in(*held.take_args) == 1 and held.buf[:1] == b"d"
    held.word[0] = -1
    assert _ffi.try_take_in(*held.take_args) == _ffi.EMPTY - bias and held.word[0] == -1
    assert _ffi.try_take_in(None) == _ffi.ERR_NULL - bias
    assert _ffi.try_take_in(ctypes.byref(held.block, 4)) == _ffi.ERR_NULL - bias
    q.put(b"f")
    stopped = ctypes.create_string_buffer(32)  # no handle: nothing taken
    ctypes.c_int64.from_buffer(stopped, 16).value = -1
    assert _ffi.try_take_in(ctypes.byref(stopped)) == _ffi.ERR_NULL - bias
    assert q.get_nowait() == b"f"
