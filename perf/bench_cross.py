"""Cross-process scenarios, with custom timed loops (pyperf's per-call timing cannot express them).

One invocation measures one scenario for one queue in fresh ``spawn``-ed processes and prints one
JSON object on stdout; perf/run.py calls it once per (scenario, queue, repeat)::

    python perf/bench_cross.py pingpong   --queue zeroq [--quick]
    python perf/bench_cross.py throughput --queue zeroq --producers 2 --consumers 2 [--quick]
    python perf/bench_cross.py throughput --queue fastqueue --batch 64 [--packed] [--quick]
    python perf/bench_cross.py frames     --queue zeroq --size 1048576 [--quick]
    python perf/bench_cross.py idle       --queue zeroq

pingpong    Round trip of an 8-byte message between two processes over two queues (capacity 8),
            blocking get on both sides. Every round trip is timed on its own (perf_counter_ns);
            the result holds p50/p90/p99/max over all of them after a warm-up. Each echoed message
            carries its sequence number and is compared with what was sent.
throughput  P producers put M 8-byte messages each (producer id, sequence number), one blocking
            put per message; C consumers get them one blocking get per message (capacity 1024).
            Time runs from the first producer's start to the last consumer's receipt of the end
            marker (sent once every producer has finished). Each consumer checks per-producer
            order; the parent checks that every message arrived exactly once (count and sequence
            sums per producer). With ``--batch N`` (one consumer), the producer puts its messages
            with put_many, N at a time, and the consumer takes them with get_many(N), 10x as
            many messages in all; it keeps each batch joined (and its count) for the checks.
            ``--packed`` (with ``--batch N``; fastqueue only) puts each chunk of N as one
            packed buffer, ``put_many(b"".join(chunk), itemsize=8)``, instead
            of a list of bytes (the chunks are built before the start line either way), and
            the consumer takes them packed too, ``get_many(N, itemsize=8)``: one bytes object
            per batch, checked as the joined batches are.
frames      Large messages between processes, as a video or tensor pipeline moves them: one
            producer puts M messages of ``--size`` bytes (one blocking put each), one consumer
            gets them (one blocking get each), capacity 8. The messages cycle through 4 payloads
            prepared before the start line, each marked at both ends; the consumer checks each
            message's length and both marks against the sequence (a lost, repeated, reordered or
            torn message fails), and the count at the end.
idle        A consumer blocks in get() on an empty queue for 2 s; the CPU time its process burns
            meanwhile (time.process_time around the get, all threads) and the wall time it waited.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import struct
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import adapters

MSG = 8
STOP = b"\xffSTOP\xff\xff\xff"
READY = b"\xfeREADY\xfe\xfe"
CTX = mp.get_context("spawn")


# ------------------------------------------------------------------------------------ ping-pong


def _echo(spec_in: Any, spec_out: Any) -> None:
    qin, qout = adapters.attach(spec_in), adapters.attach(spec_out)
    get, put = qin.get, qout.put
    put(READY)
    while True:
        m = get()
        if m == STOP:
            break
        put(m)
    qin.close()
    qout.close()


def pingpong(kind: str, quick: bool) -> dict[str, Any]:
    n_max = 3_000 if quick else 30_000
    budget = 0.7 if quick else 4.0  # seconds; a polling queue gets fewer round trips
    warmup = 200
    ping = adapters.make(kind, MSG, 8)
    pong = adapters.make(kind, MSG, 8)
    child = CTX.Process(target=_echo, args=(ping.spec(), pong.spec()), daemon=True)
    try:
        child.start()
        put, get = ping.put, pong.get
        if get() != READY:
            raise AssertionError("echo process did not start properly")
        msgs = [struct.pack("<Q", i) for i in range(n_max + warmup)]
        for m in msgs[:warmup]:
            put(m)
            if get() != m:
                raise AssertionError("wrong echo during warm-up")
        lat = []
        clock = time.perf_counter_ns
        deadline = clock() + int(budget * 1e9)
        for m in msgs[warmup:]:
            t0 = clock()
            put(m)
            r = get()
            t1 = clock()
            if r != m:
                raise AssertionError(f"echo mismatch: sent {m!r}, got {r!r}")
            lat.append(t1 - t0)
            if t1 > deadline:
                break
        put(STOP)
        child.join(10)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        ping.close()
        pong.close()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] / 1e3

    return {
        "round_trips": len(lat),
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": lat[-1] / 1e3,
        "mean_us": sum(lat) / len(lat) / 1e3,
    }


# ----------------------------------------------------------------------------------- throughput


def _producer(
    spec: Any,
    pid: int,
    count: int,
    n_consumers: int,
    start: Any,
    barrier: Any,
    results: Any,
    batch: int = 1,
    packed: bool = False,
) -> None:
    q = adapters.attach(spec)
    msgs = [struct.pack("<II", pid, i) for i in range(count)]
    put = q.put
    if batch > 1:
        put_many = q.put_many
        assert put_many is not None
        chunks = [msgs[i : i + batch] for i in range(0, count, batch)]
        if packed:
            put_packed = q.put_packed
            assert put_packed is not None
            packed_chunks = [b"".join(chunk) for chunk in chunks]
    start.wait()
    t0 = time.perf_counter()
    if batch > 1 and packed:
        for buf in packed_chunks:
            put_packed(buf, itemsize=MSG)
    elif batch > 1:
        for chunk in chunks:
            put_many(chunk)
    else:
        for m in msgs:
            put(m)
    t1 = time.perf_counter()
    adapters.put_end_markers(q, pid, n_consumers, STOP, barrier)
    results.put(("producer", pid, t0, t1))
    if pid == 0:
        q.close()


def _consumer(
    spec: Any,
    cid: int,
    n_producers: int,
    ready: Any,
    results: Any,
    batch: int = 1,
    packed: bool = False,
) -> None:
    q = adapters.attach(spec)
    get = q.get
    got: list[bytes] = []
    append = got.append
    ready.release()
    counts: list[int] = []
    if batch > 1 and packed:
        # Packed both ways: each get_many(batch, itemsize=MSG) is one bytes object of whole
        # records; the end marker is the last record of the last one.
        get_packed = q.get_packed
        assert get_packed is not None
        count_append = counts.append
        while True:
            blob = get_packed(batch, itemsize=MSG)
            if blob[-MSG:] == STOP:
                append(blob[:-MSG])
                count_append(len(blob) // MSG - 1)
                break
            append(blob)
            count_append(len(blob) // MSG)
    elif batch > 1:
        # Each batch is kept as one joined bytes object and its message count (checked below):
        # keeping millions of 8-byte objects would cost this consumer more than the queue does
        # (1 -> 1 batches of 64 on the test machine: ~15 M msg/s kept one by one, ~28 M joined).
        get_many = q.get_many
        assert get_many is not None
        join = b"".join
        count_append = counts.append
        while True:
            ms = get_many(batch)
            if ms[-1] == STOP:  # the end marker comes after everything else for this consumer
                ms.pop()
                append(join(ms))
                count_append(len(ms))
                break
            append(join(ms))
            count_append(len(ms))
    else:
        while True:
            m = get()
            if m == STOP:
                break
            append(m)
    t_end = time.perf_counter()
    # Validation, outside the timed part: length, per-producer order, counts and sequence sums.
    last = [-1] * n_producers
    count = [0] * n_producers
    seqsum = [0] * n_producers
    ok = True
    if batch > 1:
        # A batch of n messages must be n x MSG bytes; a message of another length inside it
        # would also shift every sequence number after it, which the order check catches.
        ok = all(len(blob) == n * MSG for blob, n in zip(got, counts))
        messages = (m for blob in got for m in struct.iter_unpack("<II", blob))
    else:
        ok = all(len(m) == MSG for m in got)
        messages = (struct.unpack("<II", m) for m in got)
    for p, s in messages if ok else ():
        if p >= n_producers or s <= last[p]:
            ok = False
            break
        last[p] = s
        count[p] += 1
        seqsum[p] += s
    results.put(("consumer", cid, t_end, ok, count, seqsum))
    q.close()


def _race(
    procs: list[Any],
    ready: Any,
    consumers: int,
    start: Any,
    results: Any,
    expected: int,
    q: adapters.Endpoint,
) -> list[Any]:
    """Starts ``procs``, waits until the ``consumers`` have released ``ready``, gives the
    producers time to build their messages and reach the start line, starts them, and returns
    the ``expected`` results; then joins everything (killing what is left) and closes ``q``."""
    try:
        for pr in procs:
            pr.start()
        for _ in range(consumers):
            if not ready.acquire(timeout=60):
                raise RuntimeError("the consumers did not start")
        time.sleep(0.3)
        start.set()
        out = [results.get() for _ in range(expected)]
        for pr in procs:
            pr.join(30)
        return out
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
                pr.join()
        q.close()


def throughput(
    kind: str, producers: int, consumers: int, quick: bool, batch: int = 1, packed: bool = False
) -> dict[str, Any]:
    total = (60_000 if quick else 400_000) * (10 if batch > 1 else 1)
    per = total // producers
    q = adapters.make(kind, MSG, 1024)
    start = CTX.Event()
    ready = CTX.Semaphore(0)
    barrier = CTX.Barrier(producers)
    results = CTX.SimpleQueue()
    procs = [
        CTX.Process(
            target=_consumer,
            args=(q.spec(), c, producers, ready, results, batch, packed),
            daemon=True,
        )
        for c in range(consumers)
    ] + [
        CTX.Process(
            target=_producer,
            args=(q.spec(), p, per, consumers, start, barrier, results, batch, packed),
            daemon=True,
        )
        for p in range(producers)
    ]
    out = _race(procs, ready, consumers, start, results, producers + consumers, q)
    starts = [r[2] for r in out if r[0] == "producer"]
    ends = [r[2] for r in out if r[0] == "consumer"]
    cons = [r for r in out if r[0] == "consumer"]
    if not all(r[3] for r in cons):
        raise AssertionError("a consumer saw a short message or a per-producer order violation")
    for p in range(producers):
        n = sum(r[4][p] for r in cons)
        s = sum(r[5][p] for r in cons)
        if n != per or s != per * (per - 1) // 2:
            raise AssertionError(f"producer {p}: {n} of {per} messages arrived (or duplicates)")
    elapsed = max(ends) - min(starts)
    msgs = per * producers
    return {
        "messages": msgs,
        "seconds": elapsed,
        "msgs_per_s": msgs / elapsed,
        "ns_per_msg": elapsed / msgs * 1e9,
    }


# --------------------------------------------------------------------------------------- frames

FRAME_KINDS = 4
FRAMES_CAPACITY = 8


def _frame_payloads(size: int) -> list[bytes]:
    """FRAME_KINDS payloads of ``size`` (>= 16) bytes, payload k marked with 8 bytes at each end."""
    body = bytes(range(256)) * (size // 256 + 1)
    marks = [struct.pack("<Q", 0x5A5A_0000_0000_0000 + k) for k in range(FRAME_KINDS)]
    return [m + body[: size - 16] + m for m in marks]


def _frame_producer(spec: Any, size: int, count: int, start: Any, results: Any) -> None:
    q = adapters.attach(spec)
    put = q.put
    payloads = _frame_payloads(size)
    msgs = [payloads[i % FRAME_KINDS] for i in range(count)]
    start.wait()
    t0 = time.perf_counter()
    for m in msgs:
        put(m)
    t1 = time.perf_counter()
    put(STOP + bytes(size - len(STOP)))  # full size: zeroq takes messages of exactly that size
    results.put(("producer", 0, t0, t1))
    q.close()


def _frame_consumer(spec: Any, size: int, ready: Any, results: Any) -> None:
    q = adapters.attach(spec)
    get = q.get
    marks = [p[:8] for p in _frame_payloads(size)]
    ready.release()
    n, ok = 0, True
    while True:
        m = get()
        head = m[:8]
        if head == STOP:
            break
        mark = marks[n % FRAME_KINDS]
        ok = ok and len(m) == size and head == mark and m[-8:] == mark
        n += 1
    t_end = time.perf_counter()
    results.put(("consumer", 0, t_end, ok, n))
    q.close()


def frames(kind: str, size: int, quick: bool) -> dict[str, Any]:
    if size < 16:
        raise ValueError("frames needs --size >= 16")
    total = max(50, (256 if quick else 2048) * (1 << 20) // size)
    q = adapters.make(kind, size, FRAMES_CAPACITY)
    start, ready, results = CTX.Event(), CTX.Semaphore(0), CTX.SimpleQueue()
    procs = [
        CTX.Process(target=_frame_consumer, args=(q.spec(), size, ready, results), daemon=True),
        CTX.Process(
            target=_frame_producer, args=(q.spec(), size, total, start, results), daemon=True
        ),
    ]
    out = _race(procs, ready, 1, start, results, 2, q)
    (t0,) = [r[2] for r in out if r[0] == "producer"]
    ((_, _, t_end, ok, n),) = [r for r in out if r[0] == "consumer"]
    if not ok or n != total:
        raise AssertionError(f"{kind}: {n} of {total} frames arrived, all intact: {ok}")
    elapsed = t_end - t0
    return {
        "messages": total,
        "size": size,
        "seconds": elapsed,
        "msgs_per_s": total / elapsed,
        "ns_per_msg": elapsed / total * 1e9,
        "bytes_per_s": total * size / elapsed,
    }


# ----------------------------------------------------------------------------------------- idle


def _idle_consumer(spec: Any, ready: Any, results: Any) -> None:
    q = adapters.attach(spec)
    ready.release()
    c0, w0 = time.process_time(), time.perf_counter()
    m = q.get()
    c1, w1 = time.process_time(), time.perf_counter()
    results.put((c1 - c0, w1 - w0, m))
    q.close()


def idle(kind: str, seconds: float = 2.0) -> dict[str, Any]:
    q = adapters.make(kind, MSG, 8)
    ready = CTX.Semaphore(0)
    results = CTX.SimpleQueue()
    child = CTX.Process(target=_idle_consumer, args=(q.spec(), ready, results), daemon=True)
    try:
        child.start()
        if not ready.acquire(timeout=60):
            raise RuntimeError("consumer did not start")
        time.sleep(seconds)
        q.put(b"wake-up!")
        cpu, wall, m = results.get()
        child.join(10)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        q.close()
    if m != b"wake-up!":
        raise AssertionError("idle consumer got a wrong message")
    return {"blocked_s": wall, "cpu_ms": cpu * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenario", choices=["pingpong", "throughput", "frames", "idle"])
    ap.add_argument("--queue", required=True, choices=adapters.CROSS_PROCESS_QUEUES)
    ap.add_argument("--producers", type=int, default=1)
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument(
        "--batch",
        type=int,
        default=1,
        help="throughput: messages per put_many / get_many (1: put/get); one consumer only",
    )
    ap.add_argument(
        "--packed",
        action="store_true",
        help="throughput with --batch: put each batch as one packed buffer (put_many(buffer, "
        "itemsize=8)) instead of a list of bytes",
    )
    ap.add_argument("--size", type=int, default=1 << 20, help="frames: bytes per message")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.batch > 1 and (a.consumers != 1 or a.queue not in adapters.BATCH_QUEUES):
        ap.error(f"--batch needs --consumers 1 and one of {adapters.BATCH_QUEUES}")
    if a.packed and (a.batch <= 1 or a.queue not in adapters.PACKED_QUEUES):
        ap.error(f"--packed needs --batch N (N > 1) and one of {adapters.PACKED_QUEUES}")
    if a.scenario == "pingpong":
        res = pingpong(a.queue, a.quick)
    elif a.scenario == "throughput":
        res = throughput(a.queue, a.producers, a.consumers, a.quick, a.batch, a.packed)
    elif a.scenario == "frames":
        res = frames(a.queue, a.size, a.quick)
    else:
        res = idle(a.queue)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
