"""RedisQueue against a real redis-server that the suite starts (tests/_redis_server.py): the Queue
API table, exactly-once across processes, maxsize back-pressure, re-delivery of a SIGKILLed
consumer's message, and a server killed and restarted (appendonly)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Callable

import pytest

import _redis_children as kids
import fastqueue
from _procs import run_child
from _redis_server import redis_server, require_redis, rq_url, running_server
from fastqueue import RedisQueue
from fastqueue._redis import QueueClosedError, parse_url

pytestmark = pytest.mark.timeout(60)
#: The fixtures this module uses from _redis_server.
FIXTURES = (redis_server, rq_url)

Url = Callable[..., str]


# ------------------------------------------------------------------------------ no server needed


def test_import_fastqueue_never_imports_redis() -> None:
    code = "import sys, fastqueue; assert 'redis' not in sys.modules; fastqueue.RedisQueue"
    code += "; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_client_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import fastqueue\n"
        "try:\n"
        "    fastqueue.RedisQueue('redis://localhost:1/0/x')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert 'pip install "fastqueue[redis]"' in out


def test_url_forms() -> None:
    assert parse_url("redis://h:1/3/a/b") == ("redis://h:1/3", "a/b")
    assert parse_url("rediss://:pw@h/0/s") == ("rediss://:pw@h/0", "s")
    assert parse_url("unix:///r.sock?stream=s") == ("unix:///r.sock", "s")
    for bad in ("redis://h:1/jobs", "redis://h:1/0/", "http://h/0/s", "unix:///r.sock?db=1"):
        with pytest.raises(ValueError, match="must"):
            parse_url(bad)
    with pytest.raises(TypeError):
        parse_url(b"redis://h/0/s")  # type: ignore[arg-type]


def test_unreachable_server_is_a_queue_os_error(tmp_path: Any) -> None:
    require_redis()
    with pytest.raises(fastqueue.QueueOSError, match="redis-server is running"):
        RedisQueue(f"unix://{tmp_path}/nobody.sock?stream=s")


# ------------------------------------------------------------------------------ the API table


def test_put_get_nowait_and_sizes(rq_url: Url) -> None:
    with RedisQueue(rq_url(), maxsize=3, element_size=4) as q:
        assert (q.maxsize, q.element_size, q.empty(), q.full(), len(q)) == (3, 4, True, False, 0)
        q.put(b"abc")
        q.put_nowait(bytearray(b""))
        q.put(memoryview(b"wxyz"))
        assert (len(q), q.qsize(), q.full(), bool(q)) == (3, 3, True, True)
        with pytest.raises(fastqueue.Full):
            q.put_nowait(b"x")
        with pytest.raises(fastqueue.Full):
            q.put(b"x", timeout=0.05)
        assert q.get() == b"abc"
        assert q.get_nowait() == b""
        assert q.get(timeout=1) == b"wxyz"
        with pytest.raises(fastqueue.Empty):
            q.get_nowait()
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.05)
        with pytest.raises(fastqueue.MessageTooBigError, match="element_size"):
            q.put(b"12345")
        with pytest.raises(TypeError, match="bytes-like"):
            q.put("text")
        with pytest.raises(ValueError, match="timeout"):
            q.get(timeout=-1)
        assert q.empty()


def test_numpy_messages(rq_url: Url) -> None:
    np = pytest.importorskip("numpy")
    with RedisQueue(rq_url()) as q:
        q.put(np.arange(3, dtype=np.int32))
        assert np.frombuffer(q.get(), dtype=np.int32).tolist() == [0, 1, 2]


def test_batches_keep_order(rq_url: Url) -> None:
    with RedisQueue(rq_url(), element_size=8) as q:
        q.put_many([b"a", bytearray(b"b"), memoryview(b"c")])
        q.put_many(b"xxyyzz", itemsize=2)
        q.put_many([])
        assert q.get_many(4) == [b"a", b"b", b"c", b"xx"]
        assert q.get_many(100) == [b"yy", b"zz"]
        with pytest.raises(fastqueue.Empty):
            q.get_many(5, timeout=0.01)
        with pytest.raises(ValueError, match="max_items"):
            q.get_many(0)
        with pytest.raises(ValueError, match="itemsize"):
            q.put_many(b"abc", itemsize=2)
        with pytest.raises(TypeError, match="iterable"):
            q.put_many(b"abc")
        with pytest.raises(fastqueue.MessageTooBigError):
            q.put_many([b"ok", b"much too long"])
        assert q.empty()  # a rejected batch puts nothing
        big = [b"%d" % i for i in range(3000)]  # beyond the scripts' 1000-id chunks
        q.put_many(big)
        assert q.get_many(5000) == big


def test_put_many_stops_at_maxsize_and_says_how_many(rq_url: Url) -> None:
    with RedisQueue(rq_url(), maxsize=3) as q:
        q.put(b"0")
        with pytest.raises(fastqueue.Full) as info:
            q.put_many([b"1", b"2", b"3"], timeout=0.05)
        assert info.value.done == 2  # type: ignore[attr-defined]
        assert q.get_many(10) == [b"0", b"1", b"2"]


def test_each_message_to_one_handle(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url) as a, RedisQueue(url) as b:
        assert a.consumer != b.consumer
        a.put_many([b"%d" % i for i in range(10)])
        got = [a.get(), b.get(), *a.get_many(3), *b.get_many(100)]
        assert got == [b"%d" % i for i in range(10)]


def test_messages_put_before_any_handle_are_delivered(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    client = redis_server.client()
    client.xadd(parse_url(url)[1], {"d": b"early"})  # a stream made by someone else, no group
    client.close()
    with RedisQueue(url) as q:
        assert q.get(timeout=5) == b"early"


def test_close_context_manager_and_repr(rq_url: Url) -> None:
    q = RedisQueue(rq_url())
    assert "open" in repr(q)
    q.close()
    q.close()  # idempotent
    assert q.closed and "closed" in repr(q)
    for call in (q.get, q.get_nowait, q.qsize, lambda: q.put(b"x"), lambda: pickle.dumps(q)):
        with pytest.raises(QueueClosedError):
            call()
    assert issubclass(QueueClosedError, ValueError)
    assert issubclass(QueueClosedError, fastqueue.FastQueueError)
    with RedisQueue(rq_url()) as q2:
        pass
    with pytest.raises(ValueError):
        q2.put(b"x")


def test_close_wakes_a_blocked_get(rq_url: Url) -> None:
    q = RedisQueue(rq_url())
    caught: list[BaseException] = []

    def blocked() -> None:
        try:
            q.get()
        except BaseException as exc:
            caught.append(exc)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)
    q.close()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(caught[0], ValueError)


def test_tcp_url(rq_url: Url) -> None:
    with RedisQueue(rq_url(tcp=True)) as q:
        q.put(b"over tcp")
        assert q.get() == b"over tcp"


def test_blocking_get_wakes_on_put(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url) as q, RedisQueue(url) as p:
        threading.Timer(0.2, p.put, (b"late",)).start()
        assert q.get(timeout=20) == b"late"
        threading.Timer(0.2, p.put_many, ([b"1", b"2"],)).start()
        assert q.get_many(5, timeout=20) in ([b"1", b"2"], [b"1"])


def test_pickled_handle_is_a_new_consumer(rq_url: Url) -> None:
    with RedisQueue(rq_url(), maxsize=5, element_size=9, claim_after=2.5) as q:
        copy = pickle.loads(pickle.dumps(q))
        try:
            assert (copy.url, copy.maxsize, copy.element_size, copy.claim_after) == (
                q.url,
                5,
                9,
                2.5,
            )
            assert copy.consumer != q.consumer
            q.put(b"shared")
            assert copy.get(timeout=5) == b"shared"
        finally:
            copy.close()


def test_forked_child_gets_its_own_consumer(rq_url: Url) -> None:
    with RedisQueue(rq_url()) as q:
        q.put(b"for the child")
        code, messages = run_child(
            multiprocessing.get_context("fork"), kids.take_one_inherited, q, timeout=30
        )
        assert code == 0
        assert messages[0][0] != q.consumer
        assert messages[0][1] == b"for the child"
        assert q.empty()


def test_aget_aput(rq_url: Url) -> None:
    url = rq_url()

    async def main() -> list[Any]:
        with RedisQueue(url, maxsize=1) as q:
            await q.aput(b"one")
            with pytest.raises(fastqueue.Full):
                await q.aput(b"two", timeout=0.05)
            first = await q.aget()
            with pytest.raises(fastqueue.Empty):
                await q.aget(timeout=0.05)
            # A cancelled aget loses nothing: the message put afterwards is still there.
            task = asyncio.ensure_future(q.aget())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            q.put(b"after cancel")
            asyncio.get_running_loop().call_later(0.05, q.put, b"late")
            return [first, await q.aget(timeout=5), await q.aget(timeout=20)]

    assert asyncio.run(main()) == [b"one", b"after cancel", b"late"]


# ------------------------------------------------------------------------------ maxsize


def test_maxsize_back_pressure(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, maxsize=2) as p, RedisQueue(url) as c:
        p.put_many([b"1", b"2"])
        assert p.full()
        threading.Timer(0.3, c.get).start()
        p.put(b"3", timeout=20)  # waits until the consumer made room
        assert p.qsize() == 2
        # Messages handed out but not acknowledged count too.
        with c.get_slot() as msg:
            assert msg == b"2"
            with pytest.raises(fastqueue.Full):
                p.put_nowait(b"4")
        p.put_nowait(b"4")
        assert c.get_many(10) == [b"3", b"4"]


# ------------------------------------------------------------------------------ crashes


def test_cross_process_exactly_once(rq_url: Url) -> None:
    ctx = multiprocessing.get_context("spawn")
    url = rq_url()
    producers, per_producer = 2, 300
    with RedisQueue(url) as q:
        recv, send = ctx.Pipe(duplex=False)
        procs = [ctx.Process(target=kids.produce, args=(q, i, per_producer, send)) for i in
                 range(producers)]  # fmt: skip
        procs += [ctx.Process(target=kids.consume, args=(q, send)) for _ in range(2)]
        for p in procs:
            p.start()
        send.close()
        results = []
        deadline = time.monotonic() + 50
        while len(results) < len(procs) and time.monotonic() < deadline:
            if recv.poll(0.1):
                results.append(recv.recv())
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        consumers = [r for r in results if r[0] != "done"]
        assert len(consumers) == 2
        assert consumers[0][0] != consumers[1][0]
        everything: list[bytes] = []
        for _, got in consumers:
            everything += got
            last: dict[bytes, int] = defaultdict(lambda: -1)
            for m in got:  # each producer's messages in order, within each consumer
                who, seq = m.split(b":")
                assert int(seq) > last[who]
                last[who] = int(seq)
        want = [f"{i}:{s}".encode() for i in range(producers) for s in range(per_producer)]
        assert sorted(everything) == sorted(want)  # each exactly once
        assert q.empty()


def test_get_slot_acknowledges_only_when_the_block_succeeds(rq_url: Url) -> None:
    url = rq_url()
    with RedisQueue(url, claim_after=0.2) as q:
        q.put_many([b"a", b"b"])
        with q.get_slot() as msg:
            assert msg == b"a"
        with pytest.raises(RuntimeError), q.get_slot() as msg:
            assert msg == b"b"
            raise RuntimeError("processing failed")
        assert q.qsize() == 1  # b is pending, not lost
        assert q.get(timeout=20) == b"b"  # claimed once idle 0.2 s
        assert q.empty()


def test_sigkilled_consumers_message_is_redelivered(rq_url: Url) -> None:
    ctx = multiprocessing.get_context("spawn")
    url = rq_url()
    with RedisQueue(url, claim_after=0.5) as q:
        q.put_many([b"precious", b"next"])
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=kids.hold_one, args=(RedisQueue(url), send))
        child.start()
        send.close()
        try:
            assert recv.poll(30)
            assert recv.recv() == b"precious"  # handed to the child, not acknowledged
        finally:
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(10)
        # "next" at once; "precious" once it has been idle 0.5 s (claimed from the dead child).
        assert sorted([q.get(timeout=20), q.get(timeout=20)]) == [b"next", b"precious"]
        assert q.empty()


def test_server_killed_and_restarted_loses_nothing() -> None:
    with running_server() as server:
        url = server.url("crash")
        q = RedisQueue(url, claim_after=0.5)
        try:
            q.put_many([b"%d" % i for i in range(100)])
            for i in range(100, 150):
                q.put(b"%d" % i)
            assert q.get_many(10) == [b"%d" % i for i in range(10)]
            ctx = multiprocessing.get_context("spawn")
            recv, send = ctx.Pipe(duplex=False)
            holder = ctx.Process(target=kids.hold_one, args=(q, send))
            holder.start()
            assert recv.poll(30) and recv.recv() == b"10"  # pending to a consumer
            server.kill()
            os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
            holder.join(10)
            with pytest.raises(fastqueue.QueueOSError):
                q.qsize()
            server.start()  # same directory: the append-only file
            assert q.qsize() == 140  # the same handle reconnects
            got = q.get_many(200, timeout=5)
            while len(got) < 140:
                got += q.get_many(200, timeout=20)
            assert sorted(got, key=int) == [b"%d" % i for i in range(10, 150)]
            assert q.empty()
        finally:
            q.close()


def test_server_refusals_are_fastqueue_errors(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    client = redis_server.client()
    client.set(parse_url(url)[1], b"not a stream")
    client.close()
    with pytest.raises(fastqueue.FastQueueError, match="is the key"):
        RedisQueue(url)


def test_password_never_shown(rq_url: Url) -> None:
    # (redis-py ignores a password that a server without one refuses)
    with RedisQueue(rq_url(tcp=True).replace("redis://", "redis://:secret@")) as q:
        assert "secret" not in repr(q) and ":***@" in repr(q)
        with pytest.raises(fastqueue.MessageTooBigError) as info:
            RedisQueue(q.url, element_size=1).put(b"12")
        assert "secret" not in str(info.value)


def test_close_forgets_idle_consumers_with_nothing_pending(rq_url: Url, redis_server: Any) -> None:
    url = rq_url()
    stream = parse_url(url)[1]
    client = redis_server.client()
    try:
        dead, holder = RedisQueue(url), RedisQueue(url, claim_after=60)
        dead.put_many([b"1", b"2"])
        assert dead.get() == b"1"  # dead becomes a consumer (and is never closed)
        slot = holder.get_slot()
        assert slot.__enter__() == b"2"  # holder has one message pending
        time.sleep(1.1)
        RedisQueue(url, claim_after=0.5).close()  # never read: no consumer of its own
        names = {c["name"] for c in client.xinfo_consumers(stream, "fastqueue")}
        assert names == {holder.consumer.encode()}  # dead is forgotten, holder kept
        slot.__exit__(None, None, None)
        holder.close()
        assert client.xinfo_consumers(stream, "fastqueue") == []
        dead._r.close()
    finally:
        client.close()


def test_batches_make_one_round_trip_whatever_their_size(rq_url: Url) -> None:
    with RedisQueue(rq_url()) as q:
        q.put(b"warm")  # loads the scripts
        assert q.get() == b"warm"
        sent: list[object] = []
        real = q._r.execute_command

        def counting(*args: object, **kwargs: object) -> object:
            sent.append(args[0])
            return real(*args, **kwargs)

        q._r.execute_command = counting
        for n in (1, 256, 3000):
            sent.clear()
            q.put_many([b"x"] * n)
            assert sent == ["EVALSHA"]
            sent.clear()
            assert len(q.get_many(n)) == n
            assert sent == ["EVALSHA"]
