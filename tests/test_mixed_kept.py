"""get-family calls mixed on one handle after a signal (issue 18): a message (or batch) that an
interrupted call of one form kept comes first for the next call of *any* form, in order, once.

The hot ``get`` keeps an interrupted take in its own buffer's held word; get_many, get_slot,
get_into, aget and the packed get_many took newer messages first from the ring before (out of
order, nothing lost). Two ways here: a hook in place of the hot path's library call that makes
the take and then raises (as tests/test_hot_signals.py does; also on PyPy), and a sweep that
lands a KeyboardInterrupt at every check point of one form and then takes with another
(tests/_checkpoints.py, CPython only).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fastqueue
from _landing import Landed, hook_take, raising_after
from fastqueue import _putget

NameFactory = Callable[[], str]


@pytest.fixture
def q(qname: NameFactory) -> Iterator[fastqueue.Queue]:
    queue = fastqueue.Queue(qname(), element_size=8, capacity=8)
    try:
        yield queue
    finally:
        queue.close()


def _get_into(q: Any) -> list[bytes]:
    buf = bytearray(16)
    return [bytes(buf[: q.get_into(buf)])]


def _get_slot(q: Any) -> list[bytes]:
    with q.get_slot() as v:
        return [bytes(v)]


def _aget(q: Any) -> list[bytes]:
    async def take() -> bytes:
        return await q.aget()  # type: ignore[no-any-return]

    return [asyncio.run(take())]


def _packed(q: Any) -> list[bytes]:
    return list(q.get_many(3, itemsize=1))


#: The form that takes after the interrupted call: what it returns, as a list of messages.
FOLLOWERS: dict[str, Callable[[Any], list[bytes]]] = {
    "get": lambda q: [q.get()],
    "get_nowait": lambda q: [q.get_nowait()],
    "get_many": lambda q: q.get_many(3),  # type: ignore[no-any-return]
    "get_many-itemsize": lambda q: [bytes([b]) for b in q.get_many(3, itemsize=1)],
    "get_into": _get_into,
    "get_slot": _get_slot,
    "aget": _aget,
}


def _rest(q: fastqueue.Queue) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except fastqueue.Empty:
            return out


@pytest.mark.parametrize("follower", list(FOLLOWERS))
@pytest.mark.parametrize("form", ["get", "get_nowait"])
def test_hot_get_kept_message_comes_first_for_every_form(
    q: fastqueue.Queue, monkeypatch: pytest.MonkeyPatch, form: str, follower: str
) -> None:
    for m in (b"1", b"2", b"3", b"4"):
        q.put(m)
    assert q.get_many(1, itemsize=1) == b"1"  # (the packed form's hot path now bound)
    times = [1]
    hook_take(monkeypatch, raising_after(_putget._try_take_in, times))
    with pytest.raises(Landed):
        getattr(q, form)()
    assert times == [0]  # the hot path took "2", then the exception landed: "2" is kept
    assert q.qsize() == 2
    got = FOLLOWERS[follower](q)
    assert got[0] == b"2", f"{follower} after an interrupted {form}: {got}"
    assert got + _rest(q) == [b"2", b"3", b"4"]


@pytest.mark.parametrize("follower", list(FOLLOWERS))
def test_kept_packed_batch_comes_first_for_every_form(q: fastqueue.Queue, follower: str) -> None:
    """A packed get_many interrupted after its take (its hot path: a pooled receive buffer)
    keeps the batch; every form, the packed hot path included, hands it on first."""
    for m in (b"1", b"2", b"3", b"4", b"5", b"6"):
        q.put(m)
    assert q.get_many(2, itemsize=1) == b"12"  # binds the pool of (1, 2)
    assert q.get_many(3, itemsize=1) == b"345"  # and of (1, 3): the packed follower's
    for m in (b"7", b"8"):
        q.put(m)
    pool = q._exact[(1, 2)]
    times = [1]
    for entry in pool:
        entry.take = raising_after(entry.take, times)
    with pytest.raises(Landed):
        q.get_many(2, itemsize=1)
    assert times == [0]  # took "67", then the exception landed: kept
    got = FOLLOWERS[follower](q)
    assert got[0] == b"6", f"{follower} after an interrupted packed get_many: {got}"
    assert got + _rest(q) == [b"6", b"7", b"8"]


#: The interrupted form of the sweep, as a caller writes it: what it returns goes into ``got``.
SWEPT: dict[str, Callable[[Any, list[bytes]], None]] = {
    "get": lambda q, got: got.append(q.get()),
    "get_many": lambda q, got: got.extend(q.get_many(2)),
    "get_many-itemsize": lambda q, got: got.extend(bytes([b]) for b in q.get_many(2, itemsize=1)),
    "get_slot": lambda q, got: _get_slot_into(q, got),
}


def _get_slot_into(q: Any, got: list[bytes]) -> None:
    with q.get_slot() as v:
        got.append(bytes(v))  # (the message is the caller's once in its hands)


@pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="CPython's check points (tests/_checkpoints.py)"
)
@pytest.mark.parametrize(
    "follower", ["get", "get_many", "get_many-itemsize", "get_slot", "get_into"]
)
@pytest.mark.parametrize("swept", list(SWEPT))
def test_interrupted_at_each_check_point_then_another_form(
    qname: NameFactory, monkeypatch: pytest.MonkeyPatch, swept: str, follower: str
) -> None:
    """``swept`` interrupted at its k-th check point (k = 0, 1, ...), then ``follower`` and
    get_nowait take the rest: every message once, in order."""
    import gc

    from _checkpoints import interrupt_at

    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)  # (see test_checkpoint_sweep)
    expected = [b"1", b"2", b"3", b"4", b"5", b"6"]
    for k in range(10_000):
        with fastqueue.Queue(qname(), element_size=8, capacity=8) as q:
            q.put_many(b"abcde", itemsize=1)  # both packed forms' hot paths bound:
            assert q.get_many(2, itemsize=1) == b"ab"  # the sweep hits them too
            assert q.get_many(3, itemsize=1) == b"cde"
            for m in expected:
                q.put(m)
            got: list[bytes] = []
            gc.collect()
            gc.disable()
            try:
                with interrupt_at(k) as it:
                    try:
                        SWEPT[swept](q, got)
                    except KeyboardInterrupt:
                        assert it.fired
            finally:
                gc.enable()
            got += FOLLOWERS[follower](q)
            got += _rest(q)
            assert got == expected, f"interrupted at check point {k} ({it.where}): got {got}"
            if swept == "get_slot" or follower == "get_slot":
                with pytest.raises(fastqueue.Empty), q.get_slot(block=False):
                    pass  # (a lent slot whose finalizer was interrupted goes back here)
            for _ in range(8):  # every slot free: nothing left held
                q.put_nowait(b"x")
            assert [q.get_nowait() for _ in range(8)] == [b"x"] * 8
        if not it.fired:
            assert k > 0
            return
    raise AssertionError("the call never ended")


def _aget_obj(q: Any) -> list[Any]:
    async def take() -> Any:
        return await q.aget()

    return [asyncio.run(take())]


OBJECT_FORMS: dict[str, Callable[[Any, list[Any]], None]] = {
    "get": lambda q, got: got.append(q.get()),
    "get_many": lambda q, got: got.extend(q.get_many(2)),
    "aget": lambda q, got: got.extend(_aget_obj(q)),
}


@pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="CPython's check points (tests/_checkpoints.py)"
)
@pytest.mark.parametrize("follower", list(OBJECT_FORMS))
@pytest.mark.parametrize("swept", ["get", "get_many"])
def test_object_queue_interrupted_at_each_check_point_then_another_form(
    qname: NameFactory, monkeypatch: pytest.MonkeyPatch, swept: str, follower: str
) -> None:
    """As above, for ObjectQueue's forms (what get or get_many kept, get_many, get, aget
    hand on first)."""
    import gc

    from _checkpoints import interrupt_at

    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    expected = list(range(6))
    for k in range(10_000):
        with fastqueue.ObjectQueue(qname(), element_size=64, capacity=8) as q:
            for i in expected:
                q.put(i)
            got: list[Any] = []
            gc.collect()
            gc.disable()
            try:
                with interrupt_at(k) as it:
                    try:
                        OBJECT_FORMS[swept](q, got)
                    except KeyboardInterrupt:
                        assert it.fired
            finally:
                gc.enable()
            OBJECT_FORMS[follower](q, got)
            while True:
                try:
                    got.append(q.get_nowait())
                except fastqueue.Empty:
                    break
            assert got == expected, f"interrupted at check point {k} ({it.where}): got {got}"
        if not it.fired:
            assert k > 0
            return
    raise AssertionError("the call never ended")
