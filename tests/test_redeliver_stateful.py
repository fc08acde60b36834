"""Hypothesis state machine of acknowledged delivery: a ``redeliver=True`` queue and a second
handle, against a model of the ring, each handle's leases and the returned messages."""

from __future__ import annotations

import struct
from collections import deque

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import fastqueue
from conftest import shm_names, unique_prefix
from fastqueue import Queue


class RedeliverMachine(RuleBasedStateMachine):
    """Non-blocking puts, gets, task_done and closes through either handle. The model: FIFO for
    first deliveries; leases take no ring slot; at most ``leases`` messages leased (held or
    waiting for redelivery); task_done acknowledges the handle's oldest lease; a closed handle's
    leases are delivered again before any new message, oldest first; join() is done exactly when
    every message put was acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix = unique_prefix("rsm")
        self.handles: list[Queue] = []
        self.ring: deque[bytes] = deque()
        self.held: list[deque[bytes]] = [deque(), deque()]
        self.returned: list[bytes] = []
        self.seq = 0
        self.acked = 0
        self.redelivered = 0

    @initialize(capacity=st.integers(1, 5), leases=st.integers(1, 6), pad=st.integers(8, 40))
    def create(self, capacity: int, leases: int, pad: int) -> None:
        self.capacity, self.leases, self.size = capacity, leases, pad
        name = self.prefix + "q"
        owner = Queue(name, element_size=pad, capacity=capacity, redeliver=True, leases=leases)
        self.handles = [owner, Queue(name, create=False)]
        assert self.handles[1].redeliver and self.handles[1].leases == leases

    def leased(self) -> int:
        return len(self.held[0]) + len(self.held[1]) + len(self.returned)

    @rule(which=st.integers(0, 1), extra=st.integers(0, 30))
    def put(self, which: int, extra: int) -> None:
        msg = struct.pack("<Q", self.seq) + bytes(min(extra, self.size - 8))
        if len(self.ring) == self.capacity:
            with pytest.raises(fastqueue.Full):
                self.handles[which].put_nowait(msg)
            return
        self.handles[which].put_nowait(msg)
        self.seq += 1
        self.ring.append(msg)

    @rule(which=st.integers(0, 1), kind=st.sampled_from(["get", "get_many", "get_into", "slot"]))
    def get(self, which: int, kind: str) -> None:
        q = self.handles[which]
        if self.returned:
            want = min(self.returned, key=lambda m: struct.unpack_from("<Q", m)[0])  # oldest
        elif self.ring and self.leased() < self.leases:
            want = self.ring[0]
        else:
            with pytest.raises(fastqueue.Empty):
                q.get_nowait()
            return
        if kind == "get":
            got = q.get_nowait()
        elif kind == "get_many":
            many = q.get_many(1, timeout=0)
            assert len(many) == 1
            got = many[0]
        elif kind == "get_into":
            buf = bytearray(self.size)
            n = q.get_into(buf, timeout=0)
            got = bytes(buf[:n])
        else:
            with q.get_slot(timeout=0) as view:
                got = bytes(view)
        assert got == want
        if self.returned and want in self.returned:
            self.returned.remove(want)
            self.redelivered += 1
        else:
            self.ring.popleft()
        self.held[which].append(want)

    @rule(which=st.integers(0, 1))
    def task_done(self, which: int) -> None:
        q = self.handles[which]
        if not self.held[which]:
            with pytest.raises(ValueError, match="holds no unacknowledged"):
                q.task_done()
            return
        q.task_done()
        self.held[which].popleft()
        self.acked += 1

    @rule()
    def close_second_handle(self) -> None:
        name = self.handles[0].name
        self.handles[1].close()
        self.returned.extend(self.held[1])
        self.held[1].clear()
        self.handles[1] = Queue(name, create=False)

    @invariant()
    def counters_agree(self) -> None:
        if not self.handles:
            return
        s = self.handles[0].stats()
        assert self.handles[0].qsize() == len(self.ring)
        assert s["leased"] == len(self.held[0]) + len(self.held[1]) + len(self.returned)
        assert s["redelivered"] == self.redelivered
        assert s["tasks_done"] == self.acked
        assert s["unfinished"] == self.seq - self.acked
        assert self.handles[1].join(timeout=0) == (self.acked == self.seq)

    def teardown(self) -> None:
        for q in reversed(self.handles):
            q.close()
        assert not shm_names(self.prefix)


RedeliverMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
test_redeliver_machine = RedeliverMachine.TestCase


class PooledRedeliverMachine(RedeliverMachine):
    """The same model on large messages (the pooled layout: a get hands the message's pool
    buffer over to its lease and gives the slot a spare one, instead of copying). Every
    message starts with its own number, so a pool buffer with two owners would show as a
    message changed under its lease or in the ring."""

    @initialize(capacity=st.integers(2, 4), leases=st.integers(1, 4), pad=st.just(64 * 1024))
    def create(self, capacity: int, leases: int, pad: int) -> None:
        super().create(capacity, leases, pad)


PooledRedeliverMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None
)
test_pooled_redeliver_machine = PooledRedeliverMachine.TestCase
