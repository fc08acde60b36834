"""Objects over Redis (RedisObjectQueue: ObjectQueue's object layer, fastqueue._codec, on a
stream), fastqueue.from_url choosing the transport, and the guide's worker-pool example run on
shared memory and on the suite's redis-server by changing the URLs only."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import _redis_children as kids
import fastqueue
from _procs import checkout_env
from _redis_server import redis_server, rq_url, running_server

pytestmark = pytest.mark.timeout(90)
#: The fixtures this module uses from _redis_server.
FIXTURES = (redis_server, rq_url)

Url = Callable[..., str]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python" / "worker_pool.py"


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("no pickling this")


# ------------------------------------------------------------------------------ objects


def test_objects_round_trip_with_objectqueues_behaviour(rq_url: Url) -> None:
    np = pytest.importorskip("numpy")
    with fastqueue.RedisObjectQueue(rq_url(), element_size=4096) as q:
        assert q.serializer is None
        a = np.arange(12.0).reshape(3, 4)
        q.put({"job": 1, "args": [1.5, "x"]})
        q.put(None)
        q.put(a)
        q.put(b"raw bytes are objects too")
        assert q.get() == {"job": 1, "args": [1.5, "x"]}
        assert q.get_nowait() is None
        b = q.get()
        assert (b == a).all() and b.dtype == a.dtype and b.flags.writeable and b.flags.aligned
        b[0, 0] = 42.0  # writable memory of its own
        assert q.get() == b"raw bytes are objects too"
        q.put_many([1, "two", (3,)])
        assert q.get_many(10) == [1, "two", (3,)]


def test_the_same_errors_as_objectqueue(rq_url: Url, redis_server: Any) -> None:
    np = pytest.importorskip("numpy")
    url = rq_url()
    with fastqueue.RedisObjectQueue(url, element_size=1024) as q:
        with pytest.raises(TypeError, match="no pickling"):
            q.put(Unpicklable())
        with pytest.raises(fastqueue.MessageTooBigError, match=r"encodes to .* of 1024 bytes"):
            q.put(np.zeros(1024))
        with pytest.raises(TypeError, match="no pickling"):
            q.put_many([1, Unpicklable()])  # all encoded first: nothing put
        with pytest.raises(TypeError, match="itemsize"):
            q.put_many(b"abcd", itemsize=2)
        assert q.empty()
        with fastqueue.RedisQueue(url) as raw:
            raw.put(b"not a frame")
        with pytest.raises(ValueError, match="not an object put by an RedisObjectQueue"):
            q.get()
        assert q.empty()  # consumed, as from an ObjectQueue
        with pytest.raises(TypeError, match="serializer must have dumps"):
            fastqueue.RedisObjectQueue(url, serializer=object())  # type: ignore[arg-type]


def test_custom_serializer_and_pickled_handle(rq_url: Url) -> None:
    url = rq_url()
    with fastqueue.RedisObjectQueue(url, serializer=json) as q:
        q.put({"id": 7, "tags": ["a", "b"]})
        copy = pickle.loads(pickle.dumps(q))  # a new consumer, same serializer
        assert copy.serializer is json and copy.consumer != q.consumer
        assert copy.get() == {"id": 7, "tags": ["a", "b"]}
        copy.close()
        with fastqueue.RedisQueue(url) as raw:
            q.put([1, 2])
            assert raw.get() == b"[1, 2]"  # exactly what json.dumps made


def test_objects_and_numpy_across_processes(rq_url: Url) -> None:
    np = pytest.importorskip("numpy")
    ctx = multiprocessing.get_context("spawn")
    url = rq_url()
    sent = [{"i": i, "a": np.full((50, 3), i, dtype=np.int16)} for i in range(20)]
    with fastqueue.JoinableRedisObjectQueue(url, maxsize=5) as q:
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=kids.objects_out, args=(q, send))
        child.start()
        send.close()
        q.put_many(sent[:3])
        for obj in sent[3:]:
            q.put(obj, timeout=30)  # the child makes room
        q.put(None, timeout=30)
        got = recv.recv()
        child.join(30)
        assert [g["i"] for g in got] == list(range(20))
        assert all((g["a"] == s["a"]).all() and g["a"].dtype == np.int16 for g, s in
                   zip(got, sent))  # fmt: skip


def test_joinable_objects_with_redeliver(rq_url: Url) -> None:
    url = rq_url()
    with fastqueue.JoinableRedisObjectQueue(url, redeliver=True, claim_after=30) as q:
        q.put_many([{"n": 1}, {"n": 2}])
        worker = fastqueue.JoinableRedisObjectQueue(url)
        assert worker.get() == {"n": 1}
        worker.close()  # died with the task: it comes back
        assert q.get(timeout=5) == {"n": 1}
        assert q.get() == {"n": 2}
        assert not q.join(timeout=0)
        q.task_done()
        q.task_done()
        assert q.join(timeout=5)


def test_server_killed_and_restarted_under_an_object_stream() -> None:
    with running_server() as server:
        url = server.url("objects-crash")
        q = fastqueue.RedisObjectQueue(url, claim_after=0.5)
        try:
            q.put_many([{"n": i} for i in range(100)])
            assert [o["n"] for o in q.get_many(10)] == list(range(10))  # acknowledged
            server.kill()
            with pytest.raises(fastqueue.QueueOSError):
                q.put({"n": -1})
            server.start()  # the append-only file: everything acknowledged is kept
            assert q.qsize() == 90
            got = [o["n"] for o in q.get_many(200, timeout=5)]
            assert got == list(range(10, 100))
        finally:
            q.close()


# ------------------------------------------------------------------------------ from_url


def test_from_url_local(qname: Callable[[], str]) -> None:
    name = qname()
    with fastqueue.from_url(f"shm:{name}", element_size=64, capacity=4) as q:
        assert type(q) is fastqueue.Queue and q.name == name and q.maxsize == 4
        with fastqueue.from_url(f"shm:{name}", objects=True, create=False) as o:
            assert type(o) is fastqueue.ObjectQueue
        with fastqueue.from_url(f"shm:{name}", joinable=True, create=False) as j:
            assert type(j) is fastqueue.JoinableQueue
        with fastqueue.from_url(f"shm:{name}", objects=True, joinable=True, create=False) as jo:
            assert type(jo) is fastqueue.JoinableObjectQueue
            jo.put({"x": 1})
            assert jo.get() == {"x": 1}
    with pytest.raises(ValueError, match="claim_after"):
        fastqueue.from_url(f"shm:{qname()}", element_size=8, capacity=2, claim_after=1)
    with pytest.raises(ValueError, match="objects=True"):
        fastqueue.from_url(f"shm:{qname()}", element_size=8, capacity=2, serializer=json)
    with pytest.raises(ValueError, match="shm:NAME"):
        fastqueue.from_url("shm:")
    with pytest.raises(ValueError, match="must start with shm:"):
        fastqueue.from_url("http://example.com/q")
    # Acknowledged delivery on a local queue: the option reaches the queue and its segment.
    with fastqueue.from_url(
        f"shm:{qname()}",
        objects=True,
        joinable=True,
        element_size=64,
        capacity=2,
        redeliver=True,
        leases=3,
    ) as rq:
        assert type(rq) is fastqueue.JoinableObjectQueue and rq.redeliver and rq.leases == 3
        rq.put({"job": 1})
        assert rq.get() == {"job": 1}
        rq.task_done()
        assert rq.join(timeout=0)


def test_from_url_redis(rq_url: Url) -> None:
    url = rq_url()
    with fastqueue.from_url(url, capacity=3) as q:
        assert type(q) is fastqueue.RedisQueue and q.maxsize == 3
        with fastqueue.from_url(url, objects=True, create=False) as o:
            assert type(o) is fastqueue.RedisObjectQueue and o.maxsize == 3
        with fastqueue.from_url(url, objects=True, joinable=True, maxsize=3) as jo:
            assert type(jo) is fastqueue.JoinableRedisObjectQueue
    with pytest.raises(ValueError, match="mode="):
        fastqueue.from_url(url, mode=0o600)
    with pytest.raises(ValueError, match="not both"):
        fastqueue.from_url(url, capacity=3, maxsize=3)
    with pytest.raises(fastqueue.QueueNotFoundError):
        fastqueue.from_url(rq_url(), create=False)


# ------------------------------------------------------------------------------ the example


def _run_example(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=80,
        env=checkout_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


SQUARES = sum(n * n for n in range(40))


def test_worker_pool_example_on_shared_memory(qname: Callable[[], str]) -> None:
    out = _run_example("all", f"shm:{qname()}", f"shm:{qname()}")
    assert out == f"40 jobs done, sum of squares {SQUARES}\n"


def test_worker_pool_example_on_redis_two_hosts_worth(rq_url: Url) -> None:
    jobs, results = rq_url(tcp=True), rq_url()
    producer = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "produce", jobs, results],
        stdout=subprocess.PIPE,
        text=True,
        env=checkout_env(),
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        while True:  # until the producer made both streams
            try:
                fastqueue.RedisQueue(results, create=False).close()
                break
            except fastqueue.QueueNotFoundError:
                assert producer.poll() is None
        for _ in range(2):  # "the other host": workers of their own, started separately
            work = [sys.executable, str(EXAMPLE), "work", jobs, results]
            workers.append(subprocess.Popen(work, env=checkout_env()))
        out, _ = producer.communicate(timeout=80)
        assert out == f"40 jobs done, sum of squares {SQUARES}\n"
        for w in workers:  # (a worker started after the work was over finds no queue)
            assert w.wait(30) == 0
    finally:
        for p in (producer, *workers):
            if p.poll() is None:
                p.kill()
                p.wait(10)


def test_worker_pool_example_locally_with_redis_urls(rq_url: Url) -> None:
    out = _run_example("all", rq_url(), rq_url())
    assert out == f"40 jobs done, sum of squares {SQUARES}\n"


def test_asyncio_objects(rq_url: Url) -> None:
    import asyncio

    async def run(q: Any) -> Any:
        await q.aput({"a": [1, 2]})
        return await q.aget(timeout=5)

    with fastqueue.RedisObjectQueue(rq_url()) as q:
        assert asyncio.run(run(q)) == {"a": [1, 2]}
