"""Throughput and fairness of every queue across producer x consumer topologies.

    python perf/bench_topology.py --quick                          # all of it, quick (~1-2 min)
    python perf/bench_topology.py --quick --topologies 1x1,4x4 --sizes 8 --queues fastqueue,zeroq
    python perf/bench_topology.py --full --json out.json --chart out.png

perf/run.py runs it (full or --quick) and puts its figures in latest.json / latest.md and the
chart topology.png (topology-quick.png); `just bench-topology [ARGS]` runs it alone, quick.

One run: P producers and C consumers, fresh ``spawn``-ed processes, on one queue of capacity 1024
whose messages are the size measured (8 B or 1 KiB). Every message starts with an 8-byte header,
``struct.pack("<II", producer, seq)``, padded to the size; each producer builds its messages before
the start line and then puts them one blocking ``put`` each. Each consumer loops on a blocking
``get`` and, for every message and every queue alike, parses the header (``unpack_from``), checks
that seq is strictly greater than the last one from that producer, and counts (messages and the
sum of seqs per producer; it keeps no message). Once every producer has finished, producer 0 puts
one end marker per consumer (the others first flush: mp.Queue's put returns before its feeder
thread has written the message). The parent then checks exactly-once delivery: per producer, the
counts and seq sums over all consumers are those sent; a violation raises (the cell is reported as
failed).

Figures of one run:
- msgs_per_s: all messages sent, divided by the time from the first producer's start to the last
  consumer's last message (all consumers together).
- max_wait_ms: fairness. Every process records the longest gap between two consecutive completed
  operations (a put returned, a get of a message returned; its first gap is measured from when it
  saw the start signal; the end marker is not counted); the longest of any one process.
  max_put_wait_ms and max_get_wait_ms split it by role.
- min_share: the fewest messages any consumer got, as a fraction of an even share (1 = even).
- vcsw_per_k / ivcsw_per_k: voluntary / involuntary context switches of all processes together
  per 1,000 messages, and cpu_us_per_msg: their CPU time (user + system) per message
  (``getrusage`` in each process; start-up included, so compare queues within one cell).

``--baseline PATH`` adds the column fastqueue@base: fastqueue with another build of its library
(e.g. the one before a change), run interleaved with the others (its processes load PATH
through FASTQUEUE_LIBRARY). ``--json`` keeps every run's rate and longest wait, for the spread
(``perf/topology_spread.py`` makes the tables with medians and ranges from one or more files).

The queues of a cell run interleaved: for each (size, topology), every repeat runs every queue, and
the order rotates from one repeat to the next. The figures reported are medians over the repeats
(max_wait_ms_worst: the worst of them). A run that does not finish within its timeout is killed
(its processes) and reported n/a with the reason; a queue that times out twice is skipped for the
rest of the run. Message counts aim at ~0.3-1 s per run for the fastest queues; faster-fifo and
mp.Queue are given fewer messages (msgs/s is computed from what was sent).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import resource
import statistics
import struct
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import adapters  # noqa: E402
import report  # noqa: E402

CTX = mp.get_context("spawn")
KiB = 1 << 10
CAPACITY = 1024
STOP_ID = 0xFFFF_FFFF  # producer field of an end marker
HEADER = struct.Struct("<II")

TOPOLOGIES = [(1, 1), (1, 4), (1, 8), (4, 1), (8, 1), (2, 2), (4, 4), (8, 8)]
SIZES = [8, KiB]
QUEUES = list(adapters.CROSS_PROCESS_QUEUES)

#: Messages per run (all producers together) for sizes below 1 KiB and from 1 KiB up (larger
#: sizes are capped so that the prepared messages of a run stay under MEMORY bytes), repeats,
#: and seconds a run may take once started.
FULL = {"messages": {8: 600_000, KiB: 400_000}, "repeats": 3, "timeout": 40.0}
QUICK = {"messages": {8: 200_000, KiB: 150_000}, "repeats": 1, "timeout": 25.0}
MEMORY = 512 << 20
#: The column of fastqueue run with another build of its library (``--baseline PATH``): the
#: library before a change, measured interleaved with the one after it.
BASELINE = "fastqueue@base"
LIBRARY_ENV = "FASTQUEUE_LIBRARY"
_baseline_library = ""
#: Fraction of the message count the slow queues get (~0.3-1 s for them too).
SLOW_SHARE = {"faster-fifo": 0.4, "mp.Queue": 0.25}
#: Seconds allowed for the processes of one run to start and build their messages.
SETUP_TIMEOUT = 60.0
#: After this many timed-out runs a queue is skipped for the rest of the run.
MAX_TIMEOUTS = 2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def topo_key(p: int, c: int) -> str:
    return f"{p}x{c}"


def message_count(kind: str, size: int, cfg: dict[str, Any], override: int | None) -> int:
    total = override or min(cfg["messages"][8 if size < KiB else KiB], MEMORY // size)
    return max(1, int(total * SLOW_SHARE.get(kind, 1.0)))


# ------------------------------------------------------------------------------------ processes


def _producer(
    spec: Any,
    pid: int,
    count: int,
    size: int,
    n_consumers: int,
    ready: Any,
    start: Any,
    barrier: Any,
    conn: Any,
) -> None:
    q = adapters.attach(spec)
    pad = bytes(size - HEADER.size)
    pack = HEADER.pack
    msgs = [pack(pid, i) + pad for i in range(count)]
    stop = pack(STOP_ID, 0) + pad
    put = q.put
    clock = time.perf_counter_ns
    ready.release()
    start.wait()
    t0 = prev = clock()
    worst = 0
    for m in msgs:
        put(m)
        t = clock()
        if t - prev > worst:
            worst = t - prev
        prev = t
    t1 = prev
    cs = _switches()
    adapters.put_end_markers(q, pid, n_consumers, stop, barrier)
    conn.send(("producer", pid, t0, t1, worst, cs))
    conn.close()
    q.close()


def _consumer(spec: Any, cid: int, n_producers: int, ready: Any, start: Any, conn: Any) -> None:
    q = adapters.attach(spec)
    get = q.get
    unpack_from = HEADER.unpack_from
    clock = time.perf_counter_ns
    last = [-1] * n_producers
    count = [0] * n_producers
    seqsum = [0] * n_producers
    bad: str | None = None
    ready.release()
    start.wait()
    t0 = prev = clock()
    worst = 0
    try:
        while True:
            m = get()
            p, s = unpack_from(m)
            if p == STOP_ID:
                break
            if s <= last[p] and bad is None:
                bad = f"consumer {cid}: producer {p} seq {s} after {last[p]}"
            last[p] = s
            count[p] += 1
            seqsum[p] += s
            t = clock()
            if t - prev > worst:
                worst = t - prev
            prev = t
    except IndexError:  # no such producer: a corrupt header
        bad = f"consumer {cid}: a message from producer {p} (there are {n_producers})"
    conn.send(("consumer", cid, t0, prev, worst, bad, count, seqsum, _switches()))
    conn.close()
    q.close()


def _switches() -> tuple[int, int, float]:
    """This process's voluntary (it slept) and involuntary (preempted) context switches so far,
    and its CPU seconds (user + system); start-up and setup are included (a few dozen switches,
    ~0.1 s of CPU per process: compare these across queues of the same topology only)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw, r.ru_nivcsw, r.ru_utime + r.ru_stime


class RunFailed(Exception):
    """A run that could not finish (timeout, a process that died): reported as n/a."""


def run_once(
    kind: str, producers: int, consumers: int, size: int, total: int, timeout: float
) -> dict[str, Any]:
    """One run of `kind` with the given topology; raises RunFailed or AssertionError."""
    per = max(1, total // producers)
    env_before = os.environ.get(LIBRARY_ENV)
    if kind == BASELINE:
        # fastqueue with another build of the library (--baseline): its processes load it.
        kind = "fastqueue"
        os.environ[LIBRARY_ENV] = _baseline_library
    try:
        return _run_once(kind, producers, consumers, size, per, timeout)
    finally:
        if env_before is None:
            os.environ.pop(LIBRARY_ENV, None)
        else:
            os.environ[LIBRARY_ENV] = env_before


def _run_once(
    kind: str, producers: int, consumers: int, size: int, per: int, timeout: float
) -> dict[str, Any]:
    q = adapters.make(kind, size, CAPACITY)
    ready, start = CTX.Semaphore(0), CTX.Event()
    barrier = CTX.Barrier(producers)
    readers: list[Any] = []
    writers: list[Any] = []
    procs: list[Any] = []

    def add(target: Any, name: str, *args: Any) -> None:
        """A child process that sends its result through a pipe of its own (the last argument)."""
        r, w = CTX.Pipe(duplex=False)
        readers.append(r)
        writers.append(w)
        procs.append(CTX.Process(target=target, args=(*args, w), daemon=True, name=name))

    try:
        spec = q.spec()
        for c in range(consumers):
            add(_consumer, f"consumer-{c}", spec, c, producers, ready, start)
        for p in range(producers):
            add(_producer, f"producer-{p}", spec, p, per, size, consumers, ready, start, barrier)
        for pr in procs:
            pr.start()
        for w in writers:  # the children hold them now; a dead child's pipe then reads EOF
            w.close()
        deadline = time.monotonic() + SETUP_TIMEOUT
        for _ in procs:
            while not ready.acquire(timeout=0.5):
                _check_alive(procs)
                if time.monotonic() > deadline:
                    raise RunFailed(f"processes not ready after {SETUP_TIMEOUT:.0f} s")
        start.set()
        out = _collect(procs, readers, timeout)
        for pr in procs:
            pr.join(10)
        if os.environ.get("FQ_BENCH_STATS") and hasattr(q.keep, "stats"):
            st = q.keep.stats()
            log("    stats: " + ", ".join(f"{k} {v}" for k, v in st.items() if v))
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
                pr.join()
        for conn in readers + writers:
            conn.close()
        q.close()
    return _figures(out, producers, consumers, per)


def _check_alive(procs: list[Any]) -> None:
    for pr in procs:
        if pr.exitcode not in (None, 0):
            raise RunFailed(f"{pr.name} exited with code {pr.exitcode}")


def _collect(procs: list[Any], readers: list[Any], timeout: float) -> list[Any]:
    """Each process's result, in order; RunFailed if one dies or time runs out."""
    out: list[Any] = [None] * len(readers)
    pending: dict[Any, int] = dict(zip(readers, range(len(readers))))
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(procs[i].name for i in sorted(pending.values()))
            raise RunFailed(f"timed out after {timeout:.3g} s (waiting for {names})")
        ready: list[Any] = multiprocessing.connection.wait(list(pending), timeout=min(left, 0.5))
        for r in ready:
            i = pending.pop(r)
            try:
                out[i] = r.recv()
            except EOFError:
                raise RunFailed(
                    f"{procs[i].name} ended without a result (exit code {procs[i].exitcode})"
                ) from None
        _check_alive([procs[i] for i in pending.values()])
    return out


def _figures(out: list[Any], producers: int, consumers: int, per: int) -> dict[str, Any]:
    prods = [r for r in out if r[0] == "producer"]
    cons = [r for r in out if r[0] == "consumer"]
    for r in cons:
        if r[5]:
            raise AssertionError(f"per-producer order violated: {r[5]}")
    for p in range(producers):
        n = sum(r[6][p] for r in cons)
        s = sum(r[7][p] for r in cons)
        if n != per or s != per * (per - 1) // 2:
            raise AssertionError(
                f"producer {p}: {n} of {per} messages arrived, seq sum {s} "
                f"(expected {per * (per - 1) // 2}): lost or duplicated messages"
            )
    first = min(r[2] for r in prods)
    last = max(r[3] for r in cons)
    elapsed = (last - first) / 1e9
    msgs = per * producers
    per_consumer = [sum(r[6]) for r in cons]
    return {
        "messages": msgs,
        "seconds": elapsed,
        "msgs_per_s": msgs / elapsed,
        "max_wait_ms": max(r[4] for r in out) / 1e6,
        "max_put_wait_ms": max(r[4] for r in prods) / 1e6,
        "max_get_wait_ms": max(r[4] for r in cons) / 1e6,
        "min_share": min(per_consumer) * consumers / msgs,
        # Context switches of all processes together, per 1,000 messages.
        "vcsw_per_k": (sum(r[5][0] for r in prods) + sum(r[8][0] for r in cons)) * 1000 / msgs,
        "ivcsw_per_k": (sum(r[5][1] for r in prods) + sum(r[8][1] for r in cons)) * 1000 / msgs,
        # CPU time of all processes together (setup included), in µs per message.
        "cpu_us_per_msg": (sum(r[5][2] for r in prods) + sum(r[8][2] for r in cons)) * 1e6 / msgs,
    }


# ------------------------------------------------------------------------------------- driver


def bench(
    queues: list[str],
    topologies: list[tuple[int, int]],
    sizes: list[int],
    cfg: dict[str, Any],
    count: int | None = None,
    unavailable: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every (size, topology) for every queue, interleaved; the figures as run.py stores them."""
    t_start = time.perf_counter()
    data: dict[str, Any] = {
        # The columns: the queues asked for (unavailable ones show n/a).
        "queues": [q for q in [*QUEUES, BASELINE] if q in queues or q in (unavailable or {})],
        "sizes": sizes,
        "topologies": [topo_key(p, c) for p, c in topologies],
        "capacity": CAPACITY,
        "repeats": cfg["repeats"],
        "messages": {str(s): {q: message_count(q, s, cfg, count) for q in queues} for s in sizes},
        "results": {},
        "errors": {},
        "unavailable": dict(unavailable or {}),
    }
    timeouts = dict.fromkeys(queues, 0)
    for size in sizes:
        res_size = data["results"].setdefault(str(size), {})
        for p, c in topologies:
            key = topo_key(p, c)
            runs: dict[str, list[dict[str, Any]]] = {q: [] for q in queues}
            for rep in range(cfg["repeats"]):
                k = rep % len(queues)
                for q in queues[k:] + queues[:k]:  # rotate who goes first
                    cell = f"{q} {key} {report.fmt_size(size)}"
                    if cell in data["errors"]:
                        continue
                    if timeouts[q] >= MAX_TIMEOUTS:
                        data["errors"][cell] = f"skipped: {MAX_TIMEOUTS} earlier runs timed out"
                        continue
                    total = message_count(q, size, cfg, count)
                    try:
                        r = run_once(q, p, c, size, total, cfg["timeout"])
                    except RunFailed as exc:
                        timeouts[q] += "timed out" in str(exc)
                        data["errors"][cell] = str(exc)
                        log(f"  {cell}: n/a ({exc})")
                        continue
                    except AssertionError as exc:
                        data["errors"][cell] = f"VALIDATION FAILED: {exc}"
                        data.setdefault("violations", []).append(cell)
                        log(f"  {cell}: VALIDATION FAILED ({exc})")
                        continue
                    except Exception as exc:  # a queue that cannot be made or attached
                        data["errors"][cell] = f"{type(exc).__name__}: {exc}"
                        log(f"  {cell}: n/a ({type(exc).__name__}: {exc})")
                        continue
                    runs[q].append(r)
                    log(
                        f"  {cell} #{rep + 1}: {r['msgs_per_s'] / 1e3:,.0f} k msg/s "
                        f"({r['messages']} in {r['seconds']:.2f} s), "
                        f"longest wait {r['max_wait_ms']:.1f} ms, context switches per 1k "
                        f"msgs {r['vcsw_per_k']:.0f} vol. {r['ivcsw_per_k']:.0f} invol., "
                        f"CPU {r['cpu_us_per_msg']:.1f} µs per msg"
                    )
            res = res_size.setdefault(key, {})
            for q, rs in runs.items():
                if not rs or f"{q} {key} {report.fmt_size(size)}" in data["errors"]:
                    continue
                res[q] = {f: statistics.median(r[f] for r in rs) for f in rs[0]}
                res[q]["max_wait_ms_worst"] = max(r["max_wait_ms"] for r in rs)
                # Every run's figures, for the spread (perf/topology_spread.py).
                res[q]["rates"] = [r["msgs_per_s"] for r in rs]
                res[q]["waits"] = [r["max_wait_ms"] for r in rs]
                res[q]["repeats"] = len(rs)
    data["seconds"] = round(time.perf_counter() - t_start, 1)
    return data


def _parse_topologies(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        p, _, c = part.strip().lower().partition("x")
        out.append((int(p), int(c)))
        if out[-1][0] < 1 or out[-1][1] < 1:
            raise argparse.ArgumentTypeError(f"bad topology {part!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer messages, 1 repeat")
    ap.add_argument(
        "--full", action="store_true", help="full counts, 3 repeats (wins over --quick)"
    )
    ap.add_argument(
        "--topologies",
        type=_parse_topologies,
        default=TOPOLOGIES,
        help="PxC,... (default: " + ",".join(topo_key(p, c) for p, c in TOPOLOGIES) + ")",
    )
    ap.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=SIZES,
        help="message sizes in bytes, >= 8 (default: 8,1024)",
    )
    ap.add_argument(
        "--queues",
        type=lambda s: [x.strip() for x in s.split(",")],
        default=list(QUEUES),
        help="default: " + ",".join(QUEUES),
    )
    ap.add_argument("--repeats", type=int, help="runs per cell (median reported)")
    ap.add_argument(
        "--count",
        type=int,
        help="messages per run for the fast queues (the slow ones: a share of it)",
    )
    ap.add_argument("--timeout", type=float, help="seconds per run before it is killed")
    ap.add_argument(
        "--baseline",
        help="another build of fastqueue's library (a .so): adds the column "
        f"{BASELINE}, run interleaved with the others",
    )
    ap.add_argument("--json", help="write the figures here (JSON)")
    ap.add_argument("--chart", help="draw the chart here (PNG)")
    ap.add_argument("--no-table", action="store_true", help="do not print the markdown tables")
    a = ap.parse_args()
    global _baseline_library
    if a.baseline:
        _baseline_library = os.path.abspath(a.baseline)
        if not os.path.isfile(_baseline_library):
            ap.error(f"--baseline {a.baseline}: no such file")
        if BASELINE not in a.queues:
            a.queues.insert(1, BASELINE)
    for q in a.queues:
        if q == BASELINE and _baseline_library:
            continue
        if q not in QUEUES:
            ap.error(f"unknown queue {q!r}: choose from {', '.join(QUEUES)}")
    if any(s < HEADER.size for s in a.sizes):
        ap.error(f"sizes must be at least {HEADER.size} bytes")
    cfg = dict(QUICK if a.quick and not a.full else FULL)
    for opt in ("repeats", "timeout"):
        if getattr(a, opt):
            cfg[opt] = getattr(a, opt)

    import run

    run.setup_env()
    for path in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    queues, missing = [], {}
    for q in a.queues:
        ok, why = adapters.available("fastqueue" if q == BASELINE else q)
        if ok:
            queues.append(q)
        else:
            missing[q] = why
            log(f"{q}: n/a ({why})")
    try:
        data = bench(queues, a.topologies, a.sizes, cfg, a.count, missing)
    finally:
        removed = run.sweep_shm(shm_before, True)
        if removed:
            log(f"removed leftover shared memory: {', '.join(removed)}")
    data["quick"] = bool(a.quick and not a.full)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(data, f, indent=1)
    if a.chart:
        report.topology_chart(data, a.chart)
    if not a.no_table:
        print(report.topology_markdown(data))
    log(f"done in {data['seconds']:.0f} s")
    if data.get("violations"):
        sys.exit(f"validation failed: {', '.join(data['violations'])}")


if __name__ == "__main__":
    main()
