"""The chain of gets (issue 19): a put whose message sits behind one that no get has claimed yet,
or that is still being written, wakes nobody; the get that claims the earlier message wakes a
sleeper for what is still waiting, so every message still reaches a sleeping consumer.

Counted with the segment's counters (``getters_woken``); nothing here asserts how long anything
took. The loom models of core/tests/loom_wait.rs check that no wake-up is lost (a model without
the chain deadlocks).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from fastqueue import Queue

NameFactory = Callable[[], str]


def wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Waits (polling) until ``condition()`` holds; fails the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        time.sleep(0.005)


@pytest.mark.timeout(120)
def test_a_put_behind_a_slot_being_written_wakes_nobody_and_the_chain_delivers(
    qname: NameFactory,
) -> None:
    name = qname()
    getters = 2
    with Queue(name, element_size=8, capacity=16) as q, Queue(name, create=False) as writer:
        got: list[bytes] = []
        lock = threading.Lock()

        def getter() -> None:
            with Queue(name, create=False) as mine:
                m = mine.get(timeout=60)
                with lock:
                    got.append(m)

        threads = [threading.Thread(target=getter) for _ in range(getters)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: q.stats()["getter_sleeps"] >= getters, "every getter asleep")
            with writer.put_slot() as slot:
                # Position 0 is being written: the put of position 1 sits behind it. Its
                # wake-up is left to whoever publishes position 0 and to the chain: none now
                # (before the chain, this put woke a getter that found position 0 still being
                # written and slept again).
                before = q.stats()["getters_woken"]
                q.put(b"second\0\0")
                assert q.stats()["getters_woken"] == before
                slot.buffer[:] = b"first\0\0\0"
            # The publish of position 0 wakes one getter; its claim finds position 1 waiting
            # and wakes the other (or the other, awake for its wait slice, takes it itself).
            wait_for(lambda: len(got) == 2, "both messages taken")
        finally:
            for t in threads:
                t.join(60)
        assert sorted(got) == [b"first\0\0\0", b"second\0\0"]
        assert q.stats()["depth"] == 0


@pytest.mark.timeout(120)
def test_a_backlog_reaches_every_sleeping_getter(qname: NameFactory) -> None:
    # Many puts in a row while getters sleep: most of them find the message before theirs
    # unclaimed and wake nobody; the chain of gets still hands every message to a getter, each
    # exactly once.
    name = qname()
    getters, per = 4, 50
    with Queue(name, element_size=8, capacity=256) as q:
        got: list[list[bytes]] = [[] for _ in range(getters)]

        def getter(k: int) -> None:
            with Queue(name, create=False) as mine:
                while True:
                    m = mine.get(timeout=60)
                    if m == b"stop\0\0\0\0":
                        return
                    got[k].append(m)

        threads = [threading.Thread(target=getter, args=(k,)) for k in range(getters)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: q.stats()["getter_sleeps"] >= getters, "every getter asleep")
            for i in range(getters * per):
                q.put(i.to_bytes(8, "little"))
            wait_for(lambda: sum(map(len, got)) == getters * per, "every message taken")
            for _ in range(getters):
                q.put(b"stop\0\0\0\0")
        finally:
            for t in threads:
                t.join(60)
        taken = sorted(int.from_bytes(m, "little") for g in got for m in g)
        assert taken == list(range(getters * per))
        # Each getter's messages arrive in the order they were put.
        for g in got:
            seq = [int.from_bytes(m, "little") for m in g]
            assert seq == sorted(seq)
