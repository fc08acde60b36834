"""asyncio: ``await q.aget()`` / ``await q.aput()`` on Queue and ObjectQueue. The loop is never
blocked, idle waiters burn no CPU, timeouts raise Empty/Full, shutdown wakes waiters, and a
cancelled aget/aput never loses or invents a message."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import _obj_children as children
import fastqueue
from fastqueue import ObjectQueue, Queue, _aio, _ffi

NameFactory = Callable[[], str]
SPAWN = multiprocessing.get_context("spawn")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def later(delay: float, fn: Callable[[], object]) -> threading.Thread:
    def go() -> None:
        time.sleep(delay)
        fn()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def seq(i: int) -> bytes:
    return i.to_bytes(8, "little")


# ------------------------------------------------------------------------------ basics


def test_aget_waits_for_a_put_from_another_thread(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        t = later(0.1, lambda: q.put(b"late"))
        assert run(q.aget()) == b"late"
        t.join()
        q.put(b"ready")
        assert run(q.aget(timeout=0)) == b"ready"  # no waiting needed


def test_aput_waits_for_room(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        q.put(b"1")
        t = later(0.1, q.get)
        run(q.aput(b"2", timeout=30))
        t.join()
        assert q.get_nowait() == b"2"


def test_timeouts_raise_empty_and_full(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:
        for timeout in (0, 0.05):
            with pytest.raises(fastqueue.Empty):
                run(q.aget(timeout=timeout))
        q.put(b"x")
        for timeout in (0, 0.05):
            with pytest.raises(fastqueue.Full):
                run(q.aput(b"y", timeout=timeout))
        with pytest.raises(ValueError):
            run(q.aget(timeout=-1))
        assert q.get_nowait() == b"x"


def test_aput_checks_the_item_before_waiting(qname: NameFactory) -> None:
    with Queue(qname(), element_size=4, capacity=1) as q:
        q.put(b"full")
        with pytest.raises(ValueError, match="element_size"):
            run(q.aput(b"too long"))  # raises at once, although the queue is full
        with pytest.raises(TypeError):
            run(q.aput("text"))  # type: ignore[arg-type]


def test_object_queue_aget_aput(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=1024, capacity=1) as q:

        async def main() -> list[Any]:
            await q.aput({"a": [1, 2]})
            blocked = asyncio.ensure_future(q.aput(("second", None)))
            first = await q.aget()
            await blocked
            return [first, await q.aget(timeout=5)]

        assert run(main()) == [{"a": [1, 2]}, ("second", None)]
        q.put(1)
        with pytest.raises((TypeError, pickle.PicklingError)):  # unpicklable: raised at once
            run(q.aput(threading.Lock()))
        assert q.qsize() == 1


def test_closed_queue_and_closing_while_waiting(qname: NameFactory) -> None:
    q = Queue(qname(), element_size=8, capacity=1)

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.1, q.close)
        await q.aget()

    with pytest.raises(ValueError, match="closed"):
        run(main())
    with pytest.raises(ValueError, match="closed"):
        run(q.aput(b"x"))


# ------------------------------------------------------------------------------ shutdown


@pytest.mark.parametrize("side", ["aget", "aput"])
def test_shutdown_wakes_a_waiting_coroutine(qname: NameFactory, side: str) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=1) as q, Queue(name, create=False) as other:
        if side == "aput":
            q.put(b"full")
        t = later(0.2, other.shutdown)
        with pytest.raises(fastqueue.ShutDown):
            run(q.aget() if side == "aget" else q.aput(b"more"))
        t.join()


def test_aget_drains_a_shut_down_queue_then_raises(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=64, capacity=4) as q:
        q.put(1)
        q.put(2)
        q.shutdown()

        async def main() -> list[Any]:
            got = [await q.aget(), await q.aget()]
            with pytest.raises(fastqueue.ShutDown):
                await q.aget()
            with pytest.raises(fastqueue.ShutDown):
                await q.aput(3)
            return got

        assert run(main()) == [1, 2]


# ------------------------------------------------------------------------------ the loop, CPU


def test_the_loop_keeps_running_while_aget_waits(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:

        async def main() -> int:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.ensure_future(ticker())
            with pytest.raises(fastqueue.Empty):
                await q.aget(timeout=0.5)
            task.cancel()
            return ticks

        # About 50 ticks; a loop blocked by the wait would see at most one or two.
        assert run(main()) >= 10


def test_an_idle_aget_burns_no_cpu(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=1) as q:

        async def main() -> float:
            start = time.process_time()  # every thread of this process
            with pytest.raises(fastqueue.Empty):
                await q.aget(timeout=1.0)
            return time.process_time() - start

        # A generous bound on behaviour, not a timing: polling or spinning for the whole second
        # would cost about a second of CPU; sleeping in the kernel costs a few milliseconds.
        assert run(main()) < 0.3


# ------------------------------------------------------------------------------ threads


def test_waiters_on_one_queue_share_one_wait(
    qname: NameFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    active = 0
    most = 0
    lock = threading.Lock()
    real_wait = _ffi.Handle.wait

    def counting_wait(self: _ffi.Handle, what: int, timeout_ns: int) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            return real_wait(self, what, timeout_ns)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(_ffi.Handle, "wait", counting_wait)
    n = 200
    with Queue(qname(), element_size=8, capacity=n) as q:

        async def main() -> list[bytes]:
            tasks = [asyncio.ensure_future(q.aget(timeout=60)) for _ in range(n)]
            # They are waiting, in a worker thread (which a loaded machine may start late).
            deadline = time.monotonic() + 30
            while active < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert active >= 1
            q.put_many([seq(i) for i in range(n)])
            return list(await asyncio.gather(*tasks))

        got = run(main())
    assert sorted(got) == [seq(i) for i in range(n)]
    # One wait for all 200 coroutines (plus, at most, one still finishing its slice).
    assert most <= 2


def test_more_queues_than_threads_all_complete(qname: NameFactory) -> None:
    queues = [Queue(qname(), element_size=8, capacity=1) for _ in range(_aio.MAX_WAIT_THREADS + 8)]
    try:

        async def main() -> list[bytes]:
            tasks = [asyncio.ensure_future(q.aget(timeout=60)) for q in queues]
            await asyncio.sleep(0.2)
            for i, q in enumerate(queues):
                q.put(seq(i))
            return list(await asyncio.gather(*tasks))

        assert run(main()) == [seq(i) for i in range(len(queues))]
        waiting = [t for t in threading.enumerate() if t.name.startswith("fastqueue-wait")]
        assert len(waiting) <= _aio.MAX_WAIT_THREADS
    finally:
        for q in queues:
            q.close()


def test_two_event_loops_in_two_threads(qname: NameFactory) -> None:
    name = qname()
    results: list[Any] = []
    with Queue(name, element_size=8, capacity=4) as q:

        def consumer() -> None:
            results.append(asyncio.run(q.aget(timeout=60)))

        threads = [threading.Thread(target=consumer) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        q.put(b"a")
        q.put(b"b")
        for t in threads:
            t.join(60)
    assert sorted(results) == [b"a", b"b"]


# ------------------------------------------------------------------------------ cancellation


async def _cancellation_storm(
    q: Queue, rng: random.Random, keep_going: Callable[[], bool]
) -> list[bytes]:
    """Starts bursts of aget tasks and cancels most of them at random moments, until
    keep_going() is false; returns what the tasks that were not cancelled received."""
    received: list[bytes] = []
    cancelled = 0
    while keep_going():
        tasks = [
            asyncio.ensure_future(q.aget(timeout=rng.choice([None, 0.002, 1.0]))) for _ in range(8)
        ]
        await asyncio.sleep(rng.choice([0, 0, 0.0005, 0.002, 0.01]))
        for t in tasks:
            if rng.random() < 0.7:
                t.cancel()
        # Tasks that wait without a timeout once the producers are done are cancelled too.
        _, pending = await asyncio.wait(tasks, timeout=2.0)
        for t in pending:
            t.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, bytes):
                received.append(outcome)
            elif isinstance(outcome, asyncio.CancelledError):
                cancelled += 1
            elif not isinstance(outcome, fastqueue.Empty):
                raise outcome
    assert cancelled > 0  # the storm did cancel waiting agets
    return received


def _exactly_once(received: list[bytes], left: list[bytes], count: int) -> None:
    everything = [int.from_bytes(m, "little") for m in received + left]
    assert len(everything) == len(set(everything)), "a message was delivered twice"
    assert sorted(everything) == list(range(count)), (
        f"lost {sorted(set(range(count)) - set(everything))[:10]}..."
    )


def _drain(q: Queue) -> list[bytes]:
    left = []
    while True:
        try:
            left.append(q.get_nowait())
        except fastqueue.Empty:
            return left


@pytest.mark.timeout(120)
def test_cancelled_agets_never_lose_messages_put_by_a_thread(qname: NameFactory) -> None:
    count = 3000
    with Queue(qname(), element_size=8, capacity=8) as q:
        producer = threading.Thread(
            target=lambda: [q.put(seq(i), timeout=60) for i in range(count)], daemon=True
        )
        producer.start()
        received = run(_cancellation_storm(q, random.Random(1), producer.is_alive))
        producer.join()
        left = _drain(q)
    assert received, "no aget ever completed"
    _exactly_once(received, left, count)


@pytest.mark.timeout(180)
def test_cancelled_agets_never_lose_messages_put_by_other_processes(qname: NameFactory) -> None:
    per_producer = 2000
    with Queue(qname(), element_size=8, capacity=16) as q:
        producers = [
            SPAWN.Process(target=children.plain_producer, args=(q, per_producer, 0)),
            SPAWN.Process(target=children.async_producer, args=(q, per_producer, per_producer)),
        ]
        for p in producers:
            p.start()
        try:
            alive = lambda: any(p.is_alive() for p in producers)  # noqa: E731
            received = run(_cancellation_storm(q, random.Random(2), alive))
        finally:
            for p in producers:
                p.join(60)
        assert [p.exitcode for p in producers] == [0, 0]
        left = _drain(q)
    _exactly_once(received, left, 2 * per_producer)


@pytest.mark.timeout(120)
def test_a_cancelled_aput_puts_nothing(qname: NameFactory) -> None:
    rng = random.Random(3)
    with Queue(qname(), element_size=8, capacity=4) as q:

        async def main() -> tuple[list[int], list[bytes]]:
            completed: list[int] = []
            got: list[bytes] = []

            async def put(i: int) -> None:
                try:
                    await q.aput(seq(i), timeout=rng.choice([0, 0.002, 0.02]))
                except fastqueue.Full:
                    return
                completed.append(i)

            i = 0
            for _ in range(300):
                tasks = []
                for _ in range(6):
                    tasks.append(asyncio.ensure_future(put(i)))
                    i += 1
                await asyncio.sleep(rng.choice([0, 0.0005, 0.002]))
                for t in tasks:
                    if rng.random() < 0.5:
                        t.cancel()
                # Make room for the next round, from "another consumer".
                got += q.get_many(rng.randint(1, 6), block=False) if q.qsize() else []
                await asyncio.gather(*tasks, return_exceptions=True)
            return completed, got

        completed, got = run(main())
        got += _drain(q)
    # Exactly the aputs that returned put their item, once each.
    assert sorted(int.from_bytes(m, "little") for m in got) == sorted(completed)
    assert 0 < len(completed) < 1800


def test_interpreter_exits_cleanly_after_cancelled_and_timed_out_waits(tmp_path: Path) -> None:
    script = tmp_path / "exit_after_cancel.py"
    script.write_text(
        "import asyncio, fastqueue\n"
        "async def main():\n"
        "    with fastqueue.Queue(element_size=8, capacity=1) as q:\n"
        "        t = asyncio.ensure_future(q.aget())\n"
        "        await asyncio.sleep(0.05)\n"
        "        t.cancel()\n"
        "        try:\n"
        "            await q.aget(timeout=0.01)\n"
        "        except fastqueue.Empty:\n"
        "            pass\n"
        "asyncio.run(main())\n"
        "print('done')\n",
        encoding="utf-8",
    )
    py_dir = str(Path(__file__).resolve().parent.parent / "py")
    env = {**os.environ, "PYTHONPATH": py_dir + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert proc.stderr == ""  # no "exception calling callback" from a closed loop
