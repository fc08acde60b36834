"""Every CPython check point a get passes, hit by a KeyboardInterrupt in turn (issue 18 A).

A signal handler's exception can land at any check point the library's Python code passes
(see tests/_checkpoints.py). For each get-family call, this makes one land at the first, then
the second, ... point, until the call passes no more: after each, whatever the call returned
plus what the next gets return must be every message exactly once, in order. Deterministic,
where the storms of test_signals.py hit the same points at random (the first calls of a
process, while the code is cold and even ``type(x)`` is a check point, are the ones a storm
rarely hits: get_many lost a batch there in ~1 storm in 30).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import fastqueue
from _checkpoints import interrupt_at

pytestmark = [
    pytest.mark.skipif(
        sys.implementation.name != "cpython",
        reason="CPython's check points (PyPy may run a handler before any bytecode: "
        "test_signal_windows.py)",
    ),
    # An aget interrupted before it awaits leaves its wait unawaited.
    pytest.mark.filterwarnings("ignore:coroutine '_wait' was never awaited:RuntimeWarning"),
]

NameFactory = Callable[[], str]

#: The messages each sweep step puts: bytes for Queue, ints for ObjectQueue (their digits).
COUNT = 6
CAPACITY = 8


def _bytes_of(items: list[Any]) -> bytes:
    return b"".join(i if isinstance(i, bytes) else str(i).encode() for i in items)


def _get_into(q: Any, got: list[Any]) -> None:
    buf = bytearray(16)
    got.append(bytes(buf[: q.get_into(buf)]))


def _get_slot(q: Any, got: list[Any]) -> None:
    with q.get_slot() as v:
        got.append(bytes(v))  # (the message is the caller's once in its hands)


def _aget(q: Any, got: list[Any]) -> None:
    async def take() -> None:
        got.append(await q.aget())

    asyncio.run(take())


#: name -> the call under test, as a caller writes it: what it returns goes into ``got`` with
#: one call (the caller's own code loses nothing to a signal on its way).
TAKES: dict[str, Callable[[Any, list[Any]], None]] = {
    "get": lambda q, got: got.append(q.get()),
    "get_nowait": lambda q, got: got.append(q.get_nowait()),
    "get-timeout": lambda q, got: got.append(q.get(timeout=30)),
    "get_into": _get_into,
    "get_many": lambda q, got: got.extend(q.get_many(4)),
    "get_many-itemsize": lambda q, got: got.append(q.get_many(4, itemsize=1)),
    "get_slot": _get_slot,
    "aget": _aget,
}
OBJECT_TAKES: dict[str, Callable[[Any, list[Any]], None]] = {
    "get": lambda q, got: got.append(q.get()),
    "get_nowait": lambda q, got: got.append(q.get_nowait()),
    "get_many": lambda q, got: got.extend(q.get_many(4)),
}


@contextmanager
def _late_put(q: Any, item: Any, blocked: bool) -> Iterator[None]:
    """With ``blocked``, a thread puts ``item`` 20 ms into the block (the call under test
    finds the queue empty and waits for it); else it is put at once."""
    if not blocked:
        q.put(item)
        yield
        return

    def put() -> None:
        time.sleep(0.02)
        q.put(item)

    t = threading.Thread(target=put)
    t.start()
    try:
        yield
    finally:
        t.join()


def _sweep(make: Callable[[], Any], take: Callable[[Any, list[Any]], None], blocked: bool) -> int:
    """Sweeps ``take``'s check points (see the module's doc); returns how many it passed."""
    # A finalizer the exception interrupts reports it to sys.unraisablehook. pytest's hook
    # keeps it, traceback and all, which resurrects the finalized object (the memory of a lent
    # slot, whose lease would then never be swept); a program's default hook prints it.
    sys.unraisablehook = lambda _: None
    expected = _bytes_of([str(i).encode() for i in range(COUNT)])
    for k in range(10_000):
        with make() as q:
            obj = isinstance(q, fastqueue.ObjectQueue)
            for i in range(COUNT - 1):
                q.put(i if obj else str(i).encode())
            got: list[Any] = []
            last = COUNT - 1 if obj else str(COUNT - 1).encode()
            if blocked:  # the first messages are gone (first call, untraced): it waits
                got.extend(q.get_many(COUNT))
            gc.collect()
            gc.disable()  # no finalizer of another object runs inside the sweep
            try:
                with _late_put(q, last, blocked), interrupt_at(k) as it:
                    try:
                        take(q, got)
                    except KeyboardInterrupt:
                        assert it.fired
            finally:
                gc.enable()
            while True:  # what the interrupted call kept comes first
                try:
                    got.append(q.get_nowait())
                except fastqueue.Empty:
                    break
            assert _bytes_of(got) == expected, (
                f"interrupted at check point {k} ({it.where}): got {got}"
            )
            if take is _get_slot:
                # A lent slot whose finalizer the exception interrupted goes back at the
                # handle's next slot call (Handle.sweep_leases): make one.
                with pytest.raises(fastqueue.Empty), q.get_slot(block=False):
                    pass
            for _ in range(CAPACITY):  # every slot free: nothing left held
                q.put_nowait(last)
            assert [q.get_nowait() for _ in range(CAPACITY)] == [last] * CAPACITY
        if not it.fired:
            return k
    raise AssertionError("the call never ended")


@pytest.mark.parametrize("blocked", [False, True], ids=["ready", "blocked"])
@pytest.mark.parametrize("take", list(TAKES))
def test_queue_get_interrupted_at_each_check_point_loses_nothing(
    qname: NameFactory, take: str, blocked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # (restored: see _sweep)
    if take == "get_nowait" and blocked:
        pytest.skip("get_nowait does not wait")

    def make() -> fastqueue.Queue:
        return fastqueue.Queue(qname(), element_size=16, capacity=CAPACITY)

    assert _sweep(make, TAKES[take], blocked) > 0


@pytest.mark.parametrize("take", list(OBJECT_TAKES))
def test_object_queue_get_interrupted_at_each_check_point_loses_nothing(
    qname: NameFactory, take: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # (restored: see _sweep)

    def make() -> fastqueue.ObjectQueue:
        return fastqueue.ObjectQueue(qname(), element_size=64, capacity=CAPACITY)

    assert _sweep(make, OBJECT_TAKES[take], False) > 0
