"""The wake protocol seen from outside: a put wakes at most one sleeping get (no thundering
herd), room made by gets reaches sleeping puts (also when the wake-up is deferred until a part of
the ring is free), and fq_wake passes a wake-up on.

These tests count wake-ups with the segment's counters (``getters_woken``, ``getter_sleeps``...);
they assert what happened, never how long it took.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from fastqueue import Full, Queue, _ffi

NameFactory = Callable[[], str]


def wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Waits (polling) until ``condition()`` holds; fails the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        time.sleep(0.005)


@pytest.mark.timeout(120)
def test_a_put_wakes_one_of_many_sleeping_getters(qname: NameFactory) -> None:
    name = qname()
    sleepers = 6
    rounds = 3
    with Queue(name, element_size=8, capacity=16) as q:
        got: list[bytes] = []
        lock = threading.Lock()

        def getter() -> None:
            with Queue(name, create=False) as mine:
                m = mine.get(timeout=60)
                with lock:
                    got.append(m)

        threads = [threading.Thread(target=getter) for _ in range(sleepers)]
        for t in threads:
            t.start()
        try:
            # Every getter has slept in the kernel at least once: all of them are waiting.
            wait_for(lambda: q.stats()["getter_sleeps"] >= sleepers, "every getter asleep")
            before = q.stats()["getters_woken"]
            for i in range(rounds):
                q.put(b"%d" % i)
                wait_for(lambda i=i: len(got) == i + 1, f"message {i} taken")
            woken = q.stats()["getters_woken"] - before
            # One wake-up per message (a getter whose wait slice ended just as it was chosen may
            # pass its wake-up on: a little slack). Waking every sleeper, as a herd does, would
            # be about sleepers + (sleepers - 1) + ... wake-ups.
            assert woken <= rounds + 2, f"{woken} wake-ups for {rounds} messages"
        finally:
            for i in range(rounds, sleepers):
                q.put(b"%d" % i)
            for t in threads:
                t.join(60)
        assert sorted(got) == sorted(b"%d" % i for i in range(sleepers))
        assert q.empty()


@pytest.mark.timeout(120)
def test_room_reaches_sleeping_putters_even_one_slot(qname: NameFactory) -> None:
    """Gets wake blocked puts once a part of the ring is free, not slot by slot; a single freed
    slot still reaches a blocked put (the deferred wake-up is bounded), and every put blocked on
    a full queue completes once a consumer drains it."""
    name = qname()
    capacity = 64
    putters = 4
    with Queue(name, element_size=8, capacity=capacity) as q:
        for i in range(capacity):
            q.put(i.to_bytes(8, "little"))
        done: list[int] = []
        lock = threading.Lock()

        def putter(k: int) -> None:
            with Queue(name, create=False) as mine:
                mine.put((1000 + k).to_bytes(8, "little"), timeout=60)
                with lock:
                    done.append(k)

        threads = [threading.Thread(target=putter, args=(k,)) for k in range(putters)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: q.stats()["putter_sleeps"] >= putters, "every putter asleep")
            assert q.full() and not done
            first = q.get()  # one slot: fewer than the batch a get waits for before waking
            assert first == (0).to_bytes(8, "little")
            wait_for(lambda: len(done) == 1, "one blocked put took the freed slot")
            assert q.full()
            taken = [q.get() for _ in range(capacity)]  # drain: the others get room too
            wait_for(lambda: len(done) == putters, "every blocked put completed")
        finally:
            while not q.empty():
                q.get()
            for t in threads:
                t.join(60)
        assert taken[: capacity - 1] == [i.to_bytes(8, "little") for i in range(1, capacity)]


@pytest.mark.timeout(60)
def test_a_timed_put_gets_a_slot_freed_before_its_deadline(qname: NameFactory) -> None:
    name = qname()
    capacity = 64
    with Queue(name, element_size=8, capacity=capacity) as q:
        for i in range(capacity):
            q.put(i.to_bytes(8, "little"))
        outcome: list[object] = []

        def putter() -> None:
            with Queue(name, create=False) as mine:
                try:
                    mine.put(b"late", timeout=20)
                    outcome.append("put")
                except Full:
                    outcome.append("full")

        t = threading.Thread(target=putter)
        t.start()
        try:
            wait_for(lambda: q.stats()["putter_sleeps"] >= 1, "the putter asleep")
            q.get()
            t.join(40)
        finally:
            while not q.empty():
                q.get()
            t.join(40)
        assert outcome == ["put"]


def test_wake_passes_a_wake_up_on_and_checks_its_argument(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        h = q._h
        assert h is not None
        assert h.wake(_ffi.WAIT_READABLE) == _ffi.OK
        assert h.wake(_ffi.WAIT_WRITABLE) == _ffi.OK
        assert h.wake(3) == _ffi.ERR_INVALID
        # Nobody slept: nothing was woken, and the queue is unchanged.
        s = q.stats()
        assert s["getters_woken"] == s["putters_woken"] == 0
        q.put(b"x")
        assert q.get() == b"x"
