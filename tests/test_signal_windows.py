"""The windows PyPy leaves open to a signal handler (it may run one before any bytecode, not only
at CPython's check points), each made to happen on purpose: a handler's exception landing right
after a get's last store, or between two steps of handing a kept message on. Each get either
returns its message (the exception then raised by the handle's next call) or keeps it for the
next get; none is lost or handed over twice. Deterministic, so on both interpreters; the storms
of test_signals.py show the same at random points.
"""

from __future__ import annotations

import gc
import sys
import threading
from array import array
from contextlib import suppress
from typing import Any, Callable

import pytest

from _checkpoints import interrupt_at
from fastqueue import Empty, Queue, _pypyget
from fastqueue._core import _take_stopped

NameFactory = Callable[[], str]
_PYPY = sys.implementation.name == "pypy"


class _Word:
    """A held word that raises KeyboardInterrupt (as a handler would) right after the first
    store of ``value`` into it: the store itself is done (the library's word changes)."""

    def __init__(self, real: array[int], value: int) -> None:
        self.real = real
        self.value = value
        self.armed = True

    def __getitem__(self, i: int) -> int:
        return self.real[i]

    def __setitem__(self, i: int, v: int) -> None:
        self.real[i] = v
        if self.armed and v == self.value:
            self.armed = False
            raise KeyboardInterrupt


def test_get_interrupted_after_its_last_store_returns_and_defers(qname: NameFactory) -> None:
    """PyPy: a handler may run between get's store of the held word (the message consumed)
    and its return. The message is returned; the exception comes with the next call."""
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        hot: Any = q._hot
        real = hot.word
        hot.word = _Word(real, -1)
        try:
            assert _pypyget.get(q) == b"a"
        finally:
            hot.word = real
        with pytest.raises(KeyboardInterrupt):
            q.get_nowait()  # the deferred exception, nothing taken
        assert q.get_nowait() == b"b"
        with pytest.raises(Empty):
            q.get_nowait()


def test_get_interrupted_before_its_last_store_keeps_the_message(qname: NameFactory) -> None:
    """An exception before the store (the message copied out, the word still set) keeps the
    message: the next get hands it over, once."""
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        hot: Any = q._hot

        class Early(_Word):
            def __setitem__(self, i: int, v: int) -> None:
                if self.armed and v == -1:
                    self.armed = False
                    raise KeyboardInterrupt
                self.real[i] = v

        real = hot.word
        hot.word = Early(real, -1)
        try:
            with pytest.raises(KeyboardInterrupt):
                _pypyget.get(q)
        finally:
            hot.word = real
        assert [q.get_nowait(), q.get_nowait()] == [b"a", b"b"]
        with pytest.raises(Empty):
            q.get_nowait()


def _keep_one(q: Queue) -> Any:
    """Takes the next message into a receive buffer of the handle's and leaves it kept, as a
    get interrupted on its slow path does: the next get hands it over first."""
    h: Any = q._h
    held = h.held()
    n = held.take()
    assert n >= 0
    held.word[0] = -2 - n
    h.kept.append(held)
    q._take = _take_stopped  # as the hot path is meanwhile: the next get takes the slow path
    return held


def test_handing_on_a_kept_message_interrupted_after_its_store(qname: NameFactory) -> None:
    """_drain_kept moves a kept message into the handle's list, then stores the buffer's word
    free: a handler's exception right after that store loses nothing (the store came after
    the move; in the other order the message was lost there)."""
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        held = _keep_one(q)
        real = held.word
        held.word = _Word(real, -1)
        with pytest.raises(KeyboardInterrupt):
            q.get()
        held.word = real
        assert [q.get_nowait(), q.get_nowait()] == [b"a", b"b"]
        with pytest.raises(Empty):
            q.get_nowait()


def test_handing_on_a_kept_message_interrupted_before_its_store(qname: NameFactory) -> None:
    """The same, the exception landing after the move and before the store: the word is then
    stored free by the except clause (the message is moved), not kept: no second copy."""
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        held = _keep_one(q)

        class Moved(list):  # type: ignore[type-arg]
            armed = True

            def extend(self, items: Any) -> None:
                super().extend(items)
                if self.armed:
                    self.armed = False
                    raise KeyboardInterrupt

        q._kept_msgs = Moved()
        with pytest.raises(KeyboardInterrupt):
            q.get()
        assert held.word[0] == -1
        assert [q.get_nowait(), q.get_nowait()] == [b"a", b"b"]
        with pytest.raises(Empty):
            q.get_nowait()


def test_returning_a_kept_message_interrupted_after_taking_it(qname: NameFactory) -> None:
    """A get that returns a kept message takes it off the handle's list, then returns: a
    handler's exception in between (PyPy) is deferred, the message returned."""
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")

        class Taken(list):  # type: ignore[type-arg]
            armed = True

            def __delitem__(self, i: Any) -> None:
                super().__delitem__(i)
                if self.armed:
                    self.armed = False
                    raise KeyboardInterrupt

        q._kept_msgs = Taken([b"k"])
        q._take = _take_stopped
        assert q.get() == b"k"
        with pytest.raises(KeyboardInterrupt):
            q.get_nowait()
        assert [q.get_nowait(), q.get_nowait()] == [b"a", b"b"]
        with pytest.raises(Empty):
            q.get_nowait()


def _get_into(q: Queue) -> bytes:
    buf = bytearray(16)
    return bytes(buf[: q.get_into(buf)])


#: The get forms whose code both interpreters share, and PyPy's get (_pypyget: its form there),
#: each as a caller writes it (what it returns into a list with one call).
_EVERY_OPCODE_TAKES: dict[str, Callable[[Queue, list[bytes]], None]] = {
    "get": lambda q, got: got.append(_pypyget.get(q)),
    "get_many": lambda q, got: got.extend(q.get_many(4)),
    "get_into": lambda q, got: got.append(_get_into(q)),
}


@pytest.mark.parametrize(
    "take,blocked",
    [(t, False) for t in _EVERY_OPCODE_TAKES] + [("get_many", True)],
    ids=[*_EVERY_OPCODE_TAKES, "get_many-blocked"],
)
def test_a_handler_before_any_bytecode_loses_only_across_a_return(
    qname: NameFactory, take: str, blocked: bool
) -> None:
    """PyPy may run a handler before any bytecode: made to land before each bytecode the
    library runs, in turn (tests/_checkpoints.py), an exception loses the message only where
    no library code can keep it: before a function's own RETURN_VALUE (the try block already
    popped) and before the caller's store of what a call returned (the value is on the stack
    between the frames: ``result = h.get_many(...)``), the window that the caller's own
    ``m = q.get()`` has too. Anywhere else the message is kept for the next get, or returned
    and the exception deferred (Handle.get_many's taken batch, Queue.get_many's result and
    get_into's copy were lost there before: 12 and 3 points)."""
    expected = [str(i).encode() for i in range(6)]
    losses: list[str] = []
    start = 0
    if _PYPY:  # (tracing is slow there: the last 100 bytecodes, from before the take on)
        with Queue(qname(), element_size=16, capacity=8) as q:
            for m in expected:
                q.put(m)
            with interrupt_at(1 << 30, every_opcode=True) as it:
                _EVERY_OPCODE_TAKES[take](q, [])
            start = max(0, it.seen - 100)
    k = start
    for k in range(start, 2_000):
        with Queue(qname(), element_size=16, capacity=8) as q:
            for m in expected[:5]:
                q.put(m)
            got: list[bytes] = []
            late = None
            if blocked:  # the call finds the queue empty and waits (the wait loop, _retry)
                got.extend(q.get_many(8))
                late = threading.Timer(0.05, q.put, (expected[5],))
                late.start()
            gc.disable()  # (no finalizer of an earlier queue runs inside the sweep)
            try:
                with interrupt_at(k, every_opcode=True) as it, suppress(KeyboardInterrupt):
                    _EVERY_OPCODE_TAKES[take](q, got)
            finally:
                gc.enable()
                if late is not None:
                    late.join()
            rest: list[bytes] = []
            while late is None:  # what was kept comes first; a deferred exception comes once
                try:
                    q.put(expected[5])
                    break
                except KeyboardInterrupt:
                    pass
            while True:
                try:
                    rest.append(q.get_nowait())
                except Empty:
                    break
                except KeyboardInterrupt:
                    pass
            if got + rest != expected:
                lost = [m for m in expected if m not in got + rest]
                assert got + rest == [m for m in expected if m not in lost], (
                    f"{it.where}: {got} + {rest}"  # (lost, never duplicated or reordered)
                )
                op, place = it.where.split(" at ")
                losses.append(f"{op} in {place.split(':')[0]}")
        if not it.fired:
            break
    assert k > start + 20  # (it ran: the call passed that many bytecodes)
    # A RETURN_VALUE's, anywhere; the store of a call's result into the caller's local.
    for loss in losses:
        assert loss.startswith("before RETURN_VALUE") or loss in (
            "before STORE_FAST in _batches.py",  # result = h.get_many(...)
            "before STORE_FAST in _core.py",  # _retry's status = attempt(wait)
        ), losses
