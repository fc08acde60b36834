"""Shutdown (Python 3.13 semantics) and task_done/join across spawned processes: the state and
the counters live in the segment, so every blocked put/get/join in every process wakes, and
workers in other processes mark tasks done for a joining parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any, Callable

import pytest

import _obj_children as children
import fastqueue
from _procs import receive_all
from fastqueue import JoinableObjectQueue, JoinableQueue, ObjectQueue, Queue

NameFactory = Callable[[], str]
SPAWN = multiprocessing.get_context("spawn")


def start_blocked(q: Queue, op: str) -> tuple[Any, Any]:
    """A spawned child blocked in q.<op>(); returns (process, result connection)."""
    ready = SPAWN.Event()
    recv, send = SPAWN.Pipe(duplex=False)
    proc = SPAWN.Process(target=children.blocked_call, args=(q, op, ready, send))
    proc.start()
    send.close()
    assert ready.wait(60), "child never got ready"
    time.sleep(0.5)  # let it block inside the call
    assert proc.is_alive()
    assert not recv.poll(0), "the child's call returned although nothing could happen"
    return proc, recv


def finish(proc: Any, recv: Any) -> list[Any]:
    try:
        messages = receive_all(recv, proc, 30)
        proc.join(30)
        assert proc.exitcode == 0, f"child exit code {proc.exitcode}"
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return messages


# ------------------------------------------------------------------------------ shutdown


@pytest.mark.timeout(120)
@pytest.mark.parametrize("op", ["get", "aget", "put"])
def test_shutdown_in_the_parent_wakes_a_child_blocked_in(qname: NameFactory, op: str) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        if op == "put":
            q.put(b"full")
        proc, recv = start_blocked(q, op)
        q.shutdown()
        messages = finish(proc, recv)
    assert len(messages) == 1 and messages[0][0] == "ShutDown", messages


@pytest.mark.timeout(120)
def test_immediate_shutdown_wakes_a_child_blocked_in_join(qname: NameFactory) -> None:
    with JoinableQueue(qname(), element_size=8, capacity=4) as q:
        q.put(b"undone 1")
        q.put(b"undone 2")
        proc, recv = start_blocked(q, "join")
        q.shutdown(immediate=True)  # discards both: they count as done
        messages = finish(proc, recv)
        assert messages == [("returned", True)]
        assert q.stats()["shutdown"] == 2 and q.stats()["unfinished"] == 0


@pytest.mark.timeout(120)
def test_shutdown_in_a_child_wakes_the_parent(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        proc = SPAWN.Process(target=children.shut_down, args=(q, False, 0.5))
        proc.start()
        try:
            with pytest.raises(fastqueue.ShutDown):
                q.get(timeout=60)
            with pytest.raises(fastqueue.ShutDown):
                q.put(b"late")
        finally:
            proc.join(60)
        assert proc.exitcode == 0


@pytest.mark.timeout(120)
def test_a_child_drains_what_is_left_then_gets_shutdown(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=4) as q:
        for item in ({"a": 1}, [2], "three"):
            q.put(item)
        q.shutdown()
        with pytest.raises(fastqueue.ShutDown):
            q.put("four")
        recv, send = SPAWN.Pipe(duplex=False)
        proc = SPAWN.Process(target=children.drain_after_shutdown, args=(q, send))
        proc.start()
        send.close()
        messages = finish(proc, recv)
    assert messages == [("drained", [{"a": 1}, [2], "three"])]


@pytest.mark.timeout(120)
def test_immediate_shutdown_in_a_child_discards_for_everyone(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"1")
        q.put(b"2")
        proc = SPAWN.Process(target=children.shut_down, args=(q, True, 0.0))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        with pytest.raises(fastqueue.ShutDown):
            q.get_nowait()
        assert q.join(timeout=5) is True


# ------------------------------------------------------------------------------ join


@pytest.mark.timeout(120)
def test_join_waits_for_workers_in_other_processes(qname: NameFactory) -> None:
    workers = 3
    jobs = [b"job%d" % i for i in range(30)]
    with (
        JoinableQueue(qname(), element_size=8, capacity=64) as q,
        Queue(qname(), element_size=8, capacity=64) as done,
    ):
        for job in jobs:
            q.put(job)
        for _ in range(workers):
            q.put(b"")  # one end marker per worker
        assert q.join(timeout=0) is False  # no worker has started yet
        procs = [SPAWN.Process(target=children.worker, args=(q, done)) for _ in range(workers)]
        for p in procs:
            p.start()
        try:
            assert q.join() is True  # woken by the workers' task_done
            finished = [done.get_nowait() for _ in jobs]
        finally:
            for p in procs:
                p.join(60)
        assert [p.exitcode for p in procs] == [0] * workers
        assert sorted(finished) == sorted(jobs)
        stats = q.stats()
        assert stats["tasks_done"] == len(jobs) + workers and stats["unfinished"] == 0
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()


@pytest.mark.timeout(120)
def test_joinable_object_queue_across_processes(qname: NameFactory) -> None:
    with (
        JoinableObjectQueue(qname(), element_size=64, capacity=16) as q,
        ObjectQueue(qname(), element_size=64, capacity=16) as results,
    ):
        p = SPAWN.Process(target=children.object_worker, args=(q, results))
        p.start()
        try:
            for n in range(10):
                q.put(n)
            q.put(None)
            assert q.join(timeout=60) is True
        finally:
            p.join(60)
        assert p.exitcode == 0
        assert sorted(results.get_many(20)) == [n * n for n in range(10)]


@pytest.mark.timeout(90)
def test_sigint_interrupts_a_blocked_join(qname: NameFactory) -> None:
    with JoinableQueue(qname(), element_size=8, capacity=2) as q:
        q.put(b"undone")
        proc, recv = start_blocked(q, "join")
        os.kill(proc.pid, signal.SIGINT)
        messages = finish(proc, recv)
    assert messages == [("interrupted", None)]
