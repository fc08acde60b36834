"""Hypothesis state machine: a Queue and a second handle attached to it, against a deque model."""

from __future__ import annotations

from collections import deque

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import fastqueue
from conftest import shm_names, unique_prefix
from fastqueue import Queue


class QueueMachine(RuleBasedStateMachine):
    """Random non-blocking puts and gets through either handle must behave exactly like a
    bounded deque: FIFO, Full when len == capacity, Empty when len == 0, sizes always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix = unique_prefix("sm")
        self.handles: list[Queue] = []
        self.model: deque[bytes] = deque()
        self.capacity = 0
        self.element_size = 0

    @initialize(
        capacity=st.integers(1, 9) | st.sampled_from([16, 31]),
        element_size=st.integers(1, 70),
    )
    def create(self, capacity: int, element_size: int) -> None:
        name = self.prefix + "q"
        self.capacity, self.element_size = capacity, element_size
        owner = Queue(name, element_size=element_size, capacity=capacity)
        self.handles = [owner, Queue(name, create=False)]

    @rule(
        which=st.integers(0, 1),
        data=st.data(),
    )
    def put(self, which: int, data: st.DataObject) -> None:
        length = data.draw(st.integers(0, self.element_size), label="length")
        msg = data.draw(st.binary(min_size=length, max_size=length), label="message")
        h = self.handles[which]
        if len(self.model) == self.capacity:
            with pytest.raises(fastqueue.Full):
                h.put_nowait(msg)
        else:
            h.put_nowait(msg)
            self.model.append(msg)

    @rule(which=st.integers(0, 1), extra=st.integers(1, 5))
    def put_too_long(self, which: int, extra: int) -> None:
        with pytest.raises(ValueError):
            self.handles[which].put(b"x" * (self.element_size + extra), block=False)

    @rule(which=st.integers(0, 1), kind=st.sampled_from(["bytearray", "memoryview"]))
    def put_other_buffer(self, which: int, kind: str) -> None:
        msg = bytes(range(self.element_size % 256))[: self.element_size]
        item = bytearray(msg) if kind == "bytearray" else memoryview(msg)
        if len(self.model) == self.capacity:
            with pytest.raises(fastqueue.Full):
                self.handles[which].put(item, block=False)
        else:
            self.handles[which].put(item, block=False)
            self.model.append(msg)

    @rule(which=st.integers(0, 1))
    def get(self, which: int) -> None:
        h = self.handles[which]
        if not self.model:
            with pytest.raises(fastqueue.Empty):
                h.get_nowait()
        else:
            assert h.get_nowait() == self.model.popleft()

    @rule(which=st.integers(0, 1))
    def drain(self, which: int) -> None:
        h = self.handles[which]
        while self.model:
            assert h.get(block=False) == self.model.popleft()
        assert h.empty()

    @rule()
    def reattach(self) -> None:
        # Replace the attached handle by a fresh one: the queue's content is unaffected.
        self.handles[1].close()
        self.handles[1] = Queue(self.handles[0].name, create=False)

    @invariant()
    def sizes_agree(self) -> None:
        n = len(self.model)
        for h in self.handles:
            assert h.qsize() == len(h) == n
            assert h.empty() == (n == 0)
            assert h.full() == (n == self.capacity)
            assert bool(h) == (n > 0)
            assert (h.maxsize, h.element_size) == (self.capacity, self.element_size)

    def teardown(self) -> None:
        for h in reversed(self.handles):
            h.close()
        left = shm_names(self.prefix)
        for name in left:
            fastqueue.unlink(name)
        assert not left, f"segments left behind: {left}"


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(stateful_step_count=40)  # on top of conftest's profile
