"""RedisQueue against a bare redis-py client doing the same commands, and the bridge's rate, in one
run (``just bench-redis``).

    python perf/bench_redis.py [--n 20000] [--repeat 5] [--bridge-n 200000] [--url URL]

Starts its own redis-server (unix socket, no persistence) unless ``--url`` names one
(redis://HOST:PORT/DB or unix:///path?db=N; streams ``fq-bench-*`` are made and deleted). Every
figure is the median of ``--repeat`` runs, scenarios interleaved so that a noisy machine's drifts
hit all of them alike; messages are 8 bytes. Rows:

- put / get: one message per call. Bare: ``XADD`` per message; ``XREADGROUP COUNT 1`` then one
  pipeline of ``XACK`` + ``XDEL`` (the fewest commands that take and acknowledge for good).
- put_many / get_many of 256: RedisQueue's batch calls. Bare: one pipeline of 256 ``XADD``;
  ``XREADGROUP COUNT 256`` then one pipeline of ``XACK`` + ``XDEL`` of the 256 ids.
- bridge: a local Queue -> ``fastqueue bridge`` -> the stream -> ``fastqueue bridge`` -> a
  local Queue, the two bridges in processes of their own; from the first put to the last get.
- objects: RedisObjectQueue of small dicts against RedisQueue of the same dicts pickled by hand
  (``pickle.dumps`` / ``loads``, protocol 5), one at a time and in batches of 256.
- woken puts: a producer blocked on a full stream (maxsize 1); the time from the start of the
  consumer's get to the return of the producer's put (median, p90), and the commands per second
  that blocked puts send (``INFO commandstats``, 4 producers blocked for 2 s).

Prints a Markdown table (docs/guide/redis.rst shows one).
"""

from __future__ import annotations

import argparse
import os
import pickle
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "py"))

import redis  # noqa: E402

import fastqueue  # noqa: E402

MSG = b"12345678"
BATCH = 256
OBJ = {"job": 12345, "args": [1.5, "x"], "ok": True}


@contextmanager
def server() -> Iterator[str]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    d = tempfile.mkdtemp(prefix="fq-bench-redis-")
    sock = os.path.join(d, "redis.sock")
    proc = subprocess.Popen(
        [exe, "--port", "0", "--unixsocket", sock, "--dir", d, "--save", "", "--appendonly",
         "no", "--logfile", os.path.join(d, "log")],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            try:
                if redis.Redis(unix_socket_path=sock).ping():
                    break
            except redis.exceptions.ConnectionError:
                time.sleep(0.01)
        yield f"unix://{sock}?db=0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def stream_url(base: str, stream: str) -> str:
    if base.startswith("unix:"):
        return f"{base}&stream={stream}" if "?" in base else f"{base}?stream={stream}"
    return f"{base.rstrip('/')}/{stream}"


class Bench:
    def __init__(self, base: str, n: int) -> None:
        self.base = base
        self.n = n
        self.client = redis.Redis.from_url(base)

    def fresh(self) -> tuple[str, str]:
        stream = f"fq-bench-{secrets.token_hex(4)}"
        self.client.xgroup_create(stream, "fastqueue", id="0", mkstream=True)
        return stream, stream_url(self.base, stream)

    # -- RedisQueue
    def rq_single(self) -> tuple[float, float]:
        stream, url = self.fresh()
        with fastqueue.RedisQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(self.n):
                q.put(MSG)
            t1 = time.perf_counter()
            for _ in range(self.n):
                q.get_nowait()
            t2 = time.perf_counter()
        self.client.delete(stream)
        return self.n / (t1 - t0), self.n / (t2 - t1)

    def rq_batch(self) -> tuple[float, float]:
        stream, url = self.fresh()
        batch = [MSG] * BATCH
        rounds = self.n // BATCH
        with fastqueue.RedisQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(rounds):
                q.put_many(batch)
            t1 = time.perf_counter()
            for _ in range(rounds):
                assert len(q.get_many(BATCH, block=False)) == BATCH
            t2 = time.perf_counter()
        self.client.delete(stream)
        return rounds * BATCH / (t1 - t0), rounds * BATCH / (t2 - t1)

    # -- bare redis-py
    def bare_single(self) -> tuple[float, float]:
        stream, _ = self.fresh()
        r = self.client
        t0 = time.perf_counter()
        for _ in range(self.n):
            r.xadd(stream, {"d": MSG})
        t1 = time.perf_counter()
        for _ in range(self.n):
            reply = r.xreadgroup("fastqueue", "bare", {stream: ">"}, count=1)
            ids = [entry[0] for entry in reply[0][1]]
            p = r.pipeline(transaction=False)
            p.xack(stream, "fastqueue", *ids)
            p.xdel(stream, *ids)
            p.execute()
        t2 = time.perf_counter()
        r.delete(stream)
        return self.n / (t1 - t0), self.n / (t2 - t1)

    def bare_batch(self) -> tuple[float, float]:
        stream, _ = self.fresh()
        r = self.client
        rounds = self.n // BATCH
        t0 = time.perf_counter()
        for _ in range(rounds):
            p = r.pipeline(transaction=False)
            for _ in range(BATCH):
                p.xadd(stream, {"d": MSG})
            p.execute()
        t1 = time.perf_counter()
        for _ in range(rounds):
            reply = r.xreadgroup("fastqueue", "bare", {stream: ">"}, count=BATCH)
            ids = [entry[0] for entry in reply[0][1]]
            assert len(ids) == BATCH
            p = r.pipeline(transaction=False)
            p.xack(stream, "fastqueue", *ids)
            p.xdel(stream, *ids)
            p.execute()
        t2 = time.perf_counter()
        r.delete(stream)
        return rounds * BATCH / (t1 - t0), rounds * BATCH / (t2 - t1)

    # -- objects: RedisObjectQueue against RedisQueue of objects pickled by hand
    def obj_single(self) -> tuple[float, float]:
        stream, url = self.fresh()
        with fastqueue.RedisObjectQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(self.n):
                q.put(OBJ)
            t1 = time.perf_counter()
            for _ in range(self.n):
                q.get_nowait()
            t2 = time.perf_counter()
        self.client.delete(stream)
        return self.n / (t1 - t0), self.n / (t2 - t1)

    def pickled_single(self) -> tuple[float, float]:
        stream, url = self.fresh()
        dumps, loads = pickle.dumps, pickle.loads
        with fastqueue.RedisQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(self.n):
                q.put(dumps(OBJ, protocol=5))
            t1 = time.perf_counter()
            for _ in range(self.n):
                loads(q.get_nowait())
            t2 = time.perf_counter()
        self.client.delete(stream)
        return self.n / (t1 - t0), self.n / (t2 - t1)

    def obj_batch(self) -> tuple[float, float]:
        stream, url = self.fresh()
        batch = [OBJ] * BATCH
        rounds = self.n // BATCH
        with fastqueue.RedisObjectQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(rounds):
                q.put_many(batch)
            t1 = time.perf_counter()
            for _ in range(rounds):
                assert len(q.get_many(BATCH, block=False)) == BATCH
            t2 = time.perf_counter()
        self.client.delete(stream)
        return rounds * BATCH / (t1 - t0), rounds * BATCH / (t2 - t1)

    def pickled_batch(self) -> tuple[float, float]:
        stream, url = self.fresh()
        dumps, loads = pickle.dumps, pickle.loads
        batch = [OBJ] * BATCH
        rounds = self.n // BATCH
        with fastqueue.RedisQueue(url) as q:
            t0 = time.perf_counter()
            for _ in range(rounds):
                q.put_many([dumps(o, protocol=5) for o in batch])
            t1 = time.perf_counter()
            for _ in range(rounds):
                assert len([loads(m) for m in q.get_many(BATCH, block=False)]) == BATCH
            t2 = time.perf_counter()
        self.client.delete(stream)
        return rounds * BATCH / (t1 - t0), rounds * BATCH / (t2 - t1)

    # -- woken puts
    def woken(self, rounds: int = 200) -> tuple[list[float], float]:
        """(latencies of the freed place taken by a blocked put, s; commands per second per
        blocked put)."""
        stream, url = self.fresh()
        lat: list[float] = []
        with fastqueue.RedisQueue(url, maxsize=1) as c, fastqueue.RedisQueue(url) as p:
            p.put(MSG)
            returned: list[float] = []

            def produce() -> None:
                for _ in range(rounds):
                    p.put(MSG)
                    returned.append(time.perf_counter())

            t = threading.Thread(target=produce)
            t.start()
            for i in range(rounds):
                time.sleep(0.005)  # the producer is asleep in its put
                t0 = time.perf_counter()
                c.get()
                while len(returned) <= i:
                    time.sleep(0.0001)
                lat.append(returned[i] - t0)
            t.join()
            # Commands sent by blocked puts: 4 producers waiting for 2 s on a full stream.
            handles = [fastqueue.RedisQueue(url) for _ in range(4)]

            def wait_full(h: fastqueue.RedisQueue) -> None:
                with suppress(fastqueue.Full):
                    h.put(MSG, timeout=2.0)

            waiters = [threading.Thread(target=wait_full, args=(h,)) for h in handles]
            self.client.config_resetstat()
            t0 = time.perf_counter()
            for w in waiters:
                w.start()
            for w in waiters:
                w.join()
            stats = self.client.info("commandstats")
            # What the clients sent (commandstats counts the scripts' own commands too).
            sent = ("cmdstat_evalsha", "cmdstat_blpop", "cmdstat_script|load")
            calls = sum(int(stats.get(k, {}).get("calls", 0)) for k in sent)
            per_second = calls / 4 / (time.perf_counter() - t0)
            for h in handles:
                h.close()
        self.client.delete(stream)
        return lat, per_second

    # -- bridge
    def bridge(self, n: int) -> float:
        stream, url = self.fresh()
        tag = secrets.token_hex(3)
        a = fastqueue.Queue(f"fq-bench-{tag}-a", element_size=8, capacity=65536)
        b = fastqueue.Queue(f"fq-bench-{tag}-b", element_size=8, capacity=65536)
        env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(HERE), "py")}
        cmd = [sys.executable, "-m", "fastqueue", "bridge"]
        procs = [
            subprocess.Popen([*cmd, a.name, url], env=env, stdout=subprocess.DEVNULL),
            subprocess.Popen([*cmd, url, b.name], env=env, stdout=subprocess.DEVNULL),
        ]
        try:
            time.sleep(1.0)  # both attached and waiting
            packed = MSG * BATCH

            def produce() -> None:  # blocking puts: no spinning on the 2 shared CPUs
                for _ in range(n // BATCH):
                    a.put_many(packed, itemsize=8)

            producer = threading.Thread(target=produce)
            got = 0
            t0 = time.perf_counter()
            producer.start()
            while got < n // BATCH * BATCH:
                got += len(b.get_many(4096, timeout=30))
            producer.join()
            t1 = time.perf_counter()
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
            a.close()
            b.close()
            self.client.delete(stream)
        return got / (t1 - t0)


def median_of(repeat: int, runs: dict[str, Callable[[], tuple[float, float]]]) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for _ in range(repeat):
        for name, run in runs.items():  # interleaved
            samples[name].append(run())
    return {
        k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
        for k, v in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="messages per run (20000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure, median (5)")
    ap.add_argument("--bridge-n", type=int, default=200_000, help="messages bridged (200000)")
    ap.add_argument("--url", default=None, help="a running server (redis://HOST:PORT/DB)")
    args = ap.parse_args(argv)
    with contextmanager(lambda: (yield args.url))() if args.url else server() as base:
        bench = Bench(base, args.n)
        m = median_of(
            args.repeat,
            {
                "rq_single": bench.rq_single,
                "rq_batch": bench.rq_batch,
                "bare_single": bench.bare_single,
                "bare_batch": bench.bare_batch,
            },
        )
        objs = median_of(
            args.repeat,
            {
                "obj_single": bench.obj_single,
                "pickled_single": bench.pickled_single,
                "obj_batch": bench.obj_batch,
                "pickled_batch": bench.pickled_batch,
            },
        )
        lat, per_second = bench.woken()
        bridge = statistics.median(bench.bridge(args.bridge_n) for _ in range(3))
    load = os.getloadavg()
    rows = [
        ("put", m["rq_single"][0], m["bare_single"][0], "XADD"),
        ("get", m["rq_single"][1], m["bare_single"][1], "XREADGROUP; XACK+XDEL"),
        ("put_many (256)", m["rq_batch"][0], m["bare_batch"][0], "pipeline of 256 XADD"),
        ("get_many (256)", m["rq_batch"][1], m["bare_batch"][1], "XREADGROUP 256; XACK+XDEL"),
    ]
    print(f"8-byte messages; median of {args.repeat} runs of {args.n}; {os.cpu_count()} CPUs, ")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end\n")
    print("| operation | RedisQueue msg/s | bare redis-py msg/s | ratio | bare commands |")
    print("|---|--:|--:|--:|---|")
    for name, ours, bare, what in rows:
        print(f"| {name} | {ours:,.0f} | {bare:,.0f} | {ours / bare:.2f}x | {what} |")
    print(
        f"\nbatch vs single: put_many/put {m['rq_batch'][0] / m['rq_single'][0]:.1f}x, "
        f"get_many/get {m['rq_batch'][1] / m['rq_single'][1]:.1f}x"
    )
    print("\n| objects (small dict) | RedisObjectQueue msg/s | RedisQueue + pickle msg/s | ratio |")
    print("|---|--:|--:|--:|")
    for name, key, i in (
        ("put", "single", 0),
        ("get", "single", 1),
        ("put_many (256)", "batch", 0),
        ("get_many (256)", "batch", 1),
    ):
        ours, by_hand = objs[f"obj_{key}"][i], objs[f"pickled_{key}"][i]
        print(f"| {name} | {ours:,.0f} | {by_hand:,.0f} | {ours / by_hand:.2f}x |")
    lat.sort()
    print(
        f"\nwoken put (maxsize 1, {len(lat)} rounds): get start -> blocked put returns, median "
        f"{lat[len(lat) // 2] * 1e3:.2f} ms, p90 {lat[len(lat) * 9 // 10] * 1e3:.2f} ms; a blocked "
        f"put sends {per_second:.1f} commands/s"
    )
    print(
        f"bridge local -> Redis -> local, two bridge processes: {bridge:,.0f} msg/s "
        f"(median of 3 runs of {args.bridge_n})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
