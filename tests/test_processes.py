"""Tests across processes: passing a queue to spawned and forked children, Ctrl-C in a blocked
call, and many messages between spawned producers and consumers."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Callable

import pytest

import _children
from _procs import receive_all, run_child
from fastqueue import Queue

NameFactory = Callable[[], str]
SPAWN = multiprocessing.get_context("spawn")
FORK = multiprocessing.get_context("fork")


# ------------------------------------------------------------------------------ handing over


@pytest.mark.timeout(60)
def test_queue_passed_to_spawned_child_arrives_attached(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        q.put(b"ping")
        code, messages = run_child(SPAWN, _children.echo, q)
        assert code == 0
        assert messages == [("attached", name, 32, 2)]
        assert (Path("/dev/shm") / name).exists()  # the child's close did not unlink
        assert q.get(timeout=10) == b"echo:ping"


@pytest.mark.timeout(60)
def test_queue_inherited_by_forked_child_is_not_its_owner(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        q.put(b"ping")
        code, messages = run_child(FORK, _children.echo, q)  # inherited, not pickled
        assert code == 0
        assert messages == [("attached", name, 32, 2)]
        assert (Path("/dev/shm") / name).exists()  # the child's close did not unlink
        assert q.get(timeout=10) == b"echo:ping"
        assert repr(q).endswith("owner>")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ctx", [SPAWN, FORK], ids=["spawn", "fork"])
def test_queue_pickled_through_a_pipe_to_a_child(qname: NameFactory, ctx: BaseContext) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        q.put(b"pong")
        source_recv, source_send = ctx.Pipe(duplex=False)  # type: ignore[attr-defined]
        recv, send = ctx.Pipe(duplex=False)  # type: ignore[attr-defined]
        proc = ctx.Process(target=_children.echo_from_pipe, args=(source_recv, send))  # type: ignore[attr-defined]
        proc.start()
        send.close()
        source_send.send(q)  # pickled here, unpickled in the child
        messages = receive_all(recv, proc, 60)
        proc.join(60)
        assert proc.exitcode == 0
        assert messages == [("attached", name, 32, 2)]
        assert q.get(timeout=10) == b"echo:pong"


@pytest.mark.timeout(60)
def test_pickled_bytes_to_a_forked_child(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        q.put(b"bytes")
        code, messages = run_child(FORK, _children.echo_from_pickle, pickle.dumps(q))
        assert code == 0 and messages == [("attached", name, 32, 2)]
        assert q.get(timeout=10) == b"echo:bytes"


@pytest.mark.timeout(60)
def test_forked_child_may_use_a_queue_whose_name_is_gone(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        q.unlink()
        q.put(b"anon")
        code, messages = run_child(FORK, _children.echo, q)
        assert code == 0 and messages == [("attached", name, 32, 2)]
        assert q.get(timeout=10) == b"echo:anon"


# ------------------------------------------------------------------------------ Ctrl-C


def interrupt_child(q: Queue, target: Callable[..., None]) -> list[Any]:
    ready = SPAWN.Event()
    recv, send = SPAWN.Pipe(duplex=False)
    proc = SPAWN.Process(target=target, args=(q, ready, send))
    proc.start()
    send.close()
    try:
        assert ready.wait(60), "child never got ready"
        time.sleep(0.5)  # let it block inside the call
        assert proc.is_alive()
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # type: ignore[arg-type]
        messages = receive_all(recv, proc, 30)
        proc.join(30)
        assert proc.exitcode == 0, f"child exit code {proc.exitcode}"
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert messages, "child reported nothing"
    kind, when = messages[0]
    assert kind == "interrupted", messages
    # Promptly: within a few wait slices, not at the end of the wait (forever / 60 s).
    assert when - sent < 10
    return messages


@pytest.mark.timeout(90)
def test_sigint_interrupts_blocked_get(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=2) as q:
        interrupt_child(q, _children.blocked_get)
        # The queue is consistent: the child's put after the interrupt is the only message.
        assert q.get(timeout=10) == b"after interrupt"
        assert q.empty()
        q.put(b"x")
        assert q.get_nowait() == b"x"


@pytest.mark.timeout(90)
def test_sigint_interrupts_blocked_put(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=32, capacity=1) as q:
        q.put(b"full")
        messages = interrupt_child(q, _children.blocked_put)
        # The interrupted put put nothing; the child then took the one message.
        assert messages[1:] == [("got", b"full")]
        assert q.empty()


# ------------------------------------------------------------------------------ many messages


@pytest.mark.timeout(180)
def test_spawned_producers_and_consumers_exchange_every_message_once_in_order(
    qname: NameFactory,
) -> None:
    producers, consumers, per_producer = 2, 2, 10_000
    with Queue(qname(), element_size=200, capacity=61) as q:
        results = []
        procs = []
        for _ in range(consumers):
            recv, send = SPAWN.Pipe(duplex=False)
            p = SPAWN.Process(target=_children.consume, args=(q, send))
            p.start()
            send.close()
            results.append(recv)
            procs.append(p)
        makers = [
            SPAWN.Process(target=_children.produce, args=(q, i, per_producer, 1000 + i))
            for i in range(producers)
        ]
        for p in makers:
            p.start()
        try:
            for p in makers:
                p.join(150)
                assert p.exitcode == 0, f"producer exit code {p.exitcode}"
            for _ in range(consumers):
                q.put(b"", timeout=60)  # one stop message per consumer
            outcomes = []
            for recv, p in zip(results, procs):
                assert recv.poll(120), "consumer sent no result"
                outcomes.append(recv.recv())
                p.join(60)
                assert p.exitcode == 0, f"consumer exit code {p.exitcode}"
        finally:
            for p in makers + procs:
                if p.is_alive():
                    p.kill()
                    p.join()
    seen: dict[int, list[int]] = {i: [] for i in range(producers)}
    for got, corrupt in outcomes:
        assert corrupt == 0
        last: dict[int, int] = {}
        for producer, seq in got:
            assert seq > last.get(producer, -1), "a consumer saw a producer's messages reordered"
            last[producer] = seq
            seen[producer].append(seq)
    for i in range(producers):
        assert sorted(seen[i]) == list(range(per_producer)), f"producer {i}: lost or duplicated"
