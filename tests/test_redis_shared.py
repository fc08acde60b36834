"""What every handle of a Redis stream shares, on every host: the stream's maxsize and
redeliver setting, shutdown, task_done/join, leases (redeliver=True), and puts that wait in a
line and are woken by the get that makes room (tests against the suite's redis-server)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Callable

import pytest

import _redis_children as kids
import fastqueue
from _redis_server import redis_server, rq_url
from fastqueue import RedisQueue

pytestmark = pytest.mark.timeout(60)
#: The fixtures this module uses from _redis_server.
FIXTURES = (redis_server, rq_url)

Url = Callable[..., str]


def _calls(server: Any, *commands: str) -> int:
    """How many times the server ran these commands so far (INFO commandstats)."""
    client = server.client()
    stats = client.info("commandstats")
    client.close()
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands)


# ------------------------------------------------------------------------------ settings


def test_maxsize_is_the_streams(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=3) as first, RedisQueue(url) as later:
        assert later.maxsize == 3  # read from the stream
        with pytest.raises(fastqueue.InvalidArgumentError, match=r"maxsize=5.*maxsize is 3"):
            RedisQueue(url, maxsize=5)
        with RedisQueue(url, maxsize=3) as same:
            assert same.maxsize == 3
        later.put_many([b"1", b"2", b"3"])
        with pytest.raises(fastqueue.Full):
            first.put_nowait(b"4")  # later's puts count against first's bound: one bound
        assert later.full() and first.full()
        first.delete()
        with pytest.raises(fastqueue.ShutDown):
            later.get_nowait()  # a deleted stream is not made again by the handles left
        with pytest.raises(fastqueue.ShutDown):
            later.put(b"x")
    with RedisQueue(url, maxsize=7) as remade:  # a deleted stream takes a new setting
        assert remade.maxsize == 7


def test_unbounded_by_default_and_create_false(rq_url: Url) -> None:
    url = rq_url()
    with pytest.raises(fastqueue.QueueNotFoundError, match="create=True"):
        RedisQueue(url, create=False)
    with RedisQueue(url) as q, RedisQueue(url, create=False) as attached:
        assert q.maxsize == attached.maxsize == 0
        q.put_many([b"x"] * 50)
        assert attached.qsize() == 50


def test_redeliver_is_the_streams(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, redeliver=True) as q, RedisQueue(url) as later:
        assert q.redeliver and later.redeliver
        with pytest.raises(fastqueue.InvalidArgumentError, match="redeliver=True"):
            RedisQueue(url, redeliver=False)


# ------------------------------------------------------------------------------ shutdown


def test_shutdown_drains_then_refuses(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    with RedisQueue(url) as q, RedisQueue(url) as other:
        q.put_many([b"a", b"b"])
        client = redis_server.client()
        client.zadd(f"{q.name}:fq:line", {"waiter": 1})  # a put asleep in the line
        q.shutdown()
        # Woken: the waiting put by a token, blocked gets and joins by an event.
        assert client.lpop(f"{q.name}:fq:line:waiter") == b"1"
        assert client.xlen(f"{q.name}:fq:ctl") == 1
        client.close()
        with pytest.raises(fastqueue.ShutDown):
            other.put(b"c")  # seen by every handle
        assert other.get() == b"a"
        assert q.get_many(10) == [b"b"]
        with pytest.raises(fastqueue.ShutDown):
            other.get()  # drained: no waiting
        with pytest.raises(fastqueue.ShutDown):
            q.get_nowait()
        q.task_done()
        q.task_done()
        assert q.join(timeout=5)


def test_shutdown_immediate_discards_and_join_returns(rq_url: Url) -> None:
    with RedisQueue(rq_url()) as q:
        q.put_many([b"a", b"b", b"c"])
        q.shutdown(immediate=True)
        assert q.qsize() == 0
        with pytest.raises(fastqueue.ShutDown):
            q.get_nowait()
        assert q.join(timeout=5)


def test_shutdown_wakes_blocked_get_and_put_in_other_processes(rq_url: Url) -> None:
    ctx = multiprocessing.get_context("spawn")
    empty_url, full_url = rq_url(), rq_url()
    with RedisQueue(empty_url) as empty, RedisQueue(full_url, maxsize=1) as full:
        full.put(b"occupant")
        recv, send = ctx.Pipe(duplex=False)
        procs = [
            ctx.Process(target=kids.blocked_call, args=(RedisQueue(empty_url), "get", send)),
            ctx.Process(target=kids.blocked_call, args=(RedisQueue(full_url), "put", send)),
        ]
        for p in procs:
            p.start()
        send.close()
        try:
            assert [recv.recv() for _ in procs] == ["waiting", "waiting"]
            time.sleep(0.5)  # both asleep in their blocking calls
            assert not recv.poll(0)
            empty.shutdown()
            full.shutdown()
            ends = [recv.recv() for _ in procs]
            assert ends == [("raised", "ShutDown")] * 2
        finally:
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()


# ------------------------------------------------------------------------------ tasks


def test_task_done_and_join_across_handles(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url) as producer, RedisQueue(url) as worker:
        producer.put_many([b"1", b"2"])
        assert worker.get_many(2) == [b"1", b"2"]
        assert not producer.join(timeout=0.05)
        worker.task_done()
        threading.Timer(0.3, worker.task_done).start()
        assert producer.join(timeout=20)  # woken by the last task_done
        with pytest.raises(ValueError, match="too many"):
            worker.task_done()


def test_redeliver_leases_until_task_done(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, redeliver=True) as q, RedisQueue(url) as other:
        q.put_many([b"a", b"b"])
        assert q.get() == b"a"
        assert q.qsize() == 2  # a is leased, not gone
        q.task_done()
        assert q.qsize() == 1
        assert other.get() == b"b"
        with pytest.raises(ValueError, match="more times than this handle got"):
            q.task_done()
        assert not q.join(timeout=0.05)
        other.task_done()
        assert q.join(timeout=5) and q.empty()


def test_closing_gives_leases_back_at_once(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, redeliver=True, claim_after=30) as q:
        q.put_many([b"a", b"b"])
        holder = RedisQueue(url)
        assert holder.get_many(2) == [b"a", b"b"]
        holder.close()  # without task_done: both come back, now
        assert q.get_many(5, timeout=5) == [b"a", b"b"]
        q.task_done()
        q.task_done()
        assert q.join(timeout=5)


def test_dead_consumers_leases_are_redelivered(rq_url: Url) -> None:
    ctx = multiprocessing.get_context("spawn")
    url = rq_url()
    with RedisQueue(url, redeliver=True, claim_after=0.5) as q:
        q.put_many([b"precious", b"next"])
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=kids.get_and_hang, args=(RedisQueue(url), send))
        child.start()
        send.close()
        try:
            assert recv.recv() == b"precious"
        finally:
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(10)
        assert sorted([q.get(timeout=20), q.get(timeout=20)]) == [b"next", b"precious"]
        assert not q.join(timeout=0)
        q.task_done()
        q.task_done()
        assert q.join(timeout=5) and q.empty()


# ------------------------------------------------------------------------------ woken puts


def test_blocked_put_sleeps_and_is_woken_by_the_get(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=1) as consumer, RedisQueue(url) as producer:
        producer.put(b"first")
        done = threading.Event()
        t = threading.Thread(target=lambda: (producer.put(b"second"), done.set()))
        before = _calls(redis_server, "evalsha", "blpop", "script|load")
        t.start()
        time.sleep(2.0)
        waited = _calls(redis_server, "evalsha", "blpop", "script|load") - before
        # Asleep in BLPOP: one script and one BLPOP per 1 s slice, not a poll every few ms.
        assert not done.is_set() and waited <= 8, waited
        assert consumer.get() == b"first"
        t.join(10)
        assert done.is_set() and consumer.get(timeout=5) == b"second"


def test_blocked_puts_are_served_first_come_first_served(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=1) as consumer:
        consumer.put(b"occupant")
        handles = [RedisQueue(url) for _ in range(3)]
        threads = []
        for i, h in enumerate(handles):
            t = threading.Thread(target=lambda h=h, i=i: [h.put(b"%d" % i) for _ in range(10)])
            t.start()
            threads.append(t)
            time.sleep(0.3)  # joined the line in this order
        got = []
        for _ in range(31):
            time.sleep(0.05)  # every producer is back in the line
            got.append(consumer.get(timeout=20))
        got = got[1:]
        for t in threads:
            t.join(10)
        for h in handles:
            h.close()
        # Each producer puts again at once and goes to the back of the line: round robin (a
        # free place goes to the put that waited longest, never to one that just got through).
        assert got == [b"0", b"1", b"2"] * 10


def test_a_newcomer_does_not_overtake_the_line(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=2) as q:
        q.put_many([b"1", b"2"])
        # A put waiting in the line that is slow to come back for its place (its process is
        # busy): the line's entry, as a waiting put's script leaves it.
        client = redis_server.client()
        stream = q.name
        now_ms = int(client.time()[0]) * 1000
        client.zadd(f"{stream}:fq:line", {"slow-waiter": 1})
        client.hset(f"{stream}:fq:seen", "slow-waiter", now_ms)
        assert q.get() == b"1"  # one free place: the waiting put's
        with pytest.raises(fastqueue.Full):
            q.put_nowait(b"newcomer")
        assert client.lpop(f"{stream}:fq:line:slow-waiter") == b"1"  # it was woken
        assert q.get() == b"2"  # two free places: one for the waiting put, one for anyone
        q.put_nowait(b"newcomer")
        client.close()
        assert q.get_many(5) == [b"newcomer"]


def test_a_timed_out_put_leaves_the_line(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=1) as q:
        q.put(b"occupant")
        with pytest.raises(fastqueue.Full):
            q.put(b"late", timeout=0.2)
        assert q.get() == b"occupant"
        q.put_nowait(b"next")  # nobody is in the line any more
        assert q.get_many(5) == [b"next"]


def test_closing_a_handle_takes_its_waiting_put_out_of_the_line(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=1) as q:
        q.put(b"occupant")
        waiting = RedisQueue(url)
        caught: list[BaseException] = []

        def blocked() -> None:
            try:
                waiting.put(b"never")
            except BaseException as exc:
                caught.append(exc)

        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.3)
        waiting.close()
        t.join(10)
        assert isinstance(caught[0], fastqueue.QueueClosedError)
        assert q.get() == b"occupant"
        q.put_nowait(b"next")  # the closed handle's put no longer holds the place
        assert q.get_many(5) == [b"next"]


def test_out_of_order_acknowledgements_leave_exactly_the_unacknowledged(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, redeliver=True) as a, RedisQueue(url) as b:
        a.put_many([b"%d" % i for i in range(6)])
        assert a.get() == b"0"  # held: every later acknowledgement is out of order
        assert b.get_many(3) == [b"1", b"2", b"3"]
        b.task_done()
        b.task_done()
        assert a.qsize() == 4  # 0 and 3 leased, 4 and 5 waiting
        a.task_done()  # 0: now the oldest pending is 3
        assert a.qsize() == 3
        b.task_done()
        assert a.qsize() == 2 and a.get_many(5) == [b"4", b"5"]
        a.task_done()
        a.task_done()
        assert a.qsize() == 0 and a.join(timeout=1)


def test_a_large_batch_goes_in_parts(rq_url: Url, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastqueue._redis import _queue

    monkeypatch.setattr(_queue, "_PUT_BYTES", 10)  # (64 MiB: Redis' arguments are bounded)
    with RedisQueue(rq_url(), maxsize=7) as q:
        msgs = [b"%04d" % i for i in range(10)]
        with pytest.raises(fastqueue.Full) as info:
            q.put_many(msgs, timeout=0.1)
        assert info.value.done == 7  # type: ignore[attr-defined]
        assert q.get_many(10) == msgs[:7]
        q.put_many([*msgs[7:], b"x" * 30])  # a message longer than a part goes alone
        assert q.get_many(10) == [*msgs[7:], b"x" * 30]
