"""A producer's cost per put as the pool of consumers grows (1 -> N against 1 -> 1).

    python perf/producer_cost.py                      # N = 1, 2, 4, 8, 15; both modes; 5 runs
    python perf/producer_cost.py --pools 1,8 --runs 3 --modes sleeping
    python perf/producer_cost.py --markdown perf/results/producer-cost-2core.md

`just bench-producer-cost [ARGS]` runs it.

One run: one producer and N consumers, fresh ``spawn``-ed processes, on one fastqueue of 8-byte
messages whose capacity (65,536) holds every message of the run, so the producer never waits for
room: what it pays per put is the put itself plus whatever the consumers make it pay (wake-up
system calls, cache lines they write). The producer builds its messages, waits at the start line,
then puts them one ``put`` each and records, around that loop only:

- wall ns per put (``perf_counter_ns``);
- CPU ns per put (``process_time_ns``: user + system time of the producer process; on a machine
  with fewer cores than processes this is the figure to read, since wall time then includes the
  time the producer waited for a core);
- its voluntary and involuntary context switches per 1,000 puts (``getrusage``: voluntary ones
  are sleeps, involuntary ones preemptions, e.g. by a consumer it woke);
- the queue's ``getters_woken`` / ``getter_sleeps`` counters per 1,000 puts (wake-ups the puts
  made, sleeps the consumers took).

Modes: ``sleeping`` -- consumers loop on a blocking ``get()`` (the library's wait: a short spin,
then a futex sleep; the producer wakes sleepers); ``spinning`` -- consumers loop on
``get_nowait()`` and never sleep (they keep the ring's lines moving, the producer wakes nobody).

Hardware cache misses: with ``--perf``, ``perf stat -e cache-misses,context-switches`` is
attached to the producer (``-p``) for the run; the count covers its put loop plus a few idle
milliseconds around it. Where the kernel or the virtual machine gives no hardware counters, the
column says so.

Each (mode, N) runs ``--runs`` times, interleaved (every run does every cell in turn); the median
and the spread (min-max) are reported, with the ratio of the median to 1 -> 1 of the same mode.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

CTX = mp.get_context("spawn")
SIZE = 8
CAPACITY = 1 << 16
MODES = ["sleeping", "spinning"]
POOLS = [1, 2, 4, 8, 15]
LIBRARY_ENV = "FASTQUEUE_LIBRARY"


def _producer(name: str, count: int, ready: Any, start: Any, conn: Any) -> None:
    import fastqueue

    q = fastqueue.Queue(name, element_size=SIZE, capacity=CAPACITY, create=False)
    msgs = [i.to_bytes(SIZE, "little") for i in range(count)]
    put = q.put
    ready.release()
    start.wait()
    before = q.stats()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    for m in msgs:
        put(m)
    t1 = time.perf_counter_ns()
    c1 = time.process_time_ns()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    after = q.stats()
    conn.send(
        {
            "wall_ns": (t1 - t0) / count,
            "cpu_ns": (c1 - c0) / count,
            "vcsw_k": (r1.ru_nvcsw - r0.ru_nvcsw) * 1000 / count,
            "ivcsw_k": (r1.ru_nivcsw - r0.ru_nivcsw) * 1000 / count,
            "woken_k": (after["getters_woken"] - before["getters_woken"]) * 1000 / count,
            "sleeps_k": (after["getter_sleeps"] - before["getter_sleeps"]) * 1000 / count,
        }
    )
    conn.close()
    q.close()


def _consumer(name: str, mode: str, ready: Any, start: Any, stop: Any) -> None:
    import fastqueue

    q = fastqueue.Queue(name, element_size=SIZE, capacity=CAPACITY, create=False)
    ready.release()
    start.wait()
    if mode == "sleeping":
        get = q.get
        while get() != b"\xff" * SIZE:
            pass
    else:
        get_nowait = q.get_nowait
        Empty = fastqueue.Empty
        while not stop.is_set():
            try:
                if get_nowait() == b"\xff" * SIZE:
                    break
            except Empty:
                pass
    q.close()


def _perf_attach(pid: int) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", "cache-misses,context-switches", "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError:
        return None


def _perf_read(p: subprocess.Popen[str] | None) -> dict[str, float | str]:
    if p is None:
        return {"cache-misses": "no perf", "context-switches": "no perf"}
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    out: dict[str, float | str] = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) >= 3 and f[2] in ("cache-misses", "context-switches"):
            out[f[2]] = float(f[0]) if f[0].replace(".", "").isdigit() else f[0]
    return out


def run_once(mode: str, n: int, count: int, use_perf: bool, lib: str = "") -> dict[str, Any]:
    """One run; with `lib`, the children load that build of the library (``--baseline``)."""
    before = os.environ.get(LIBRARY_ENV)
    if lib:
        os.environ[LIBRARY_ENV] = lib
    try:
        return _run_once(mode, n, count, use_perf)
    finally:
        if before is None:
            os.environ.pop(LIBRARY_ENV, None)
        else:
            os.environ[LIBRARY_ENV] = before


def _run_once(mode: str, n: int, count: int, use_perf: bool) -> dict[str, Any]:
    import fastqueue

    name = f"fqbench-pc-{os.getpid()}-{mode}-{n}-{time.monotonic_ns()}"
    q = fastqueue.Queue(name, element_size=SIZE, capacity=CAPACITY, create=True)
    ready, start, stop = CTX.Semaphore(0), CTX.Event(), CTX.Event()
    r, w = CTX.Pipe(duplex=False)
    prod = CTX.Process(target=_producer, args=(name, count, ready, start, w), daemon=True)
    cons = [
        CTX.Process(target=_consumer, args=(name, mode, ready, start, stop), daemon=True)
        for _ in range(n)
    ]
    procs = [prod, *cons]
    try:
        for p in procs:
            p.start()
        w.close()
        for _ in procs:
            deadline = time.monotonic() + 60
            while not ready.acquire(timeout=0.5):
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a process died before the start")
                if time.monotonic() > deadline:
                    raise RuntimeError("processes not ready after 60 s")
        perf = _perf_attach(prod.pid) if use_perf and prod.pid else None
        if perf is not None:
            time.sleep(0.2)  # let perf attach before the start line
        start.set()
        if not r.poll(120):
            raise RuntimeError("the producer did not finish within 120 s")
        res: dict[str, Any] = r.recv()
        if perf is not None:
            res.update(_perf_read(perf))
        for _ in cons:
            q.put(b"\xff" * SIZE)
        stop.set()
        for p in procs:
            p.join(20)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        r.close()
        q.close()
    return res


def _fmt(vals: list[float], digits: int = 0) -> str:
    med = statistics.median(vals)
    return f"{med:,.{digits}f} ({min(vals):,.{digits}f}-{max(vals):,.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pools", default=",".join(map(str, POOLS)), help="consumer counts N")
    ap.add_argument("--modes", default=",".join(MODES), help="sleeping,spinning")
    ap.add_argument("--runs", type=int, default=5, help="runs per cell (median, spread)")
    ap.add_argument("--count", type=int, default=50_000, help="puts per run")
    ap.add_argument("--perf", action="store_true", help="attach perf stat to the producer")
    ap.add_argument(
        "--baseline",
        help="another build of the library (a .so): every cell also runs with it (rows "
        "'mode@base'), interleaved",
    )
    ap.add_argument("--markdown", help="also write the table here")
    a = ap.parse_args()
    pools = [int(x) for x in a.pools.split(",")]
    modes = [m.strip() for m in a.modes.split(",")]
    libs = {"": ""}
    if a.baseline:
        libs["@base"] = os.path.abspath(a.baseline)
    if a.count > CAPACITY:
        ap.error(f"--count must be at most the capacity ({CAPACITY})")
    rows = [m + tag for m in modes for tag in libs]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(m, n): [] for m in rows for n in pools}
    for rep in range(a.runs):
        for m in modes:
            for n in pools:
                for tag, lib in libs.items():
                    res = run_once(m, n, a.count, a.perf, lib)
                    runs[(m + tag, n)].append(res)
                    print(
                        f"#{rep + 1} {m}{tag} 1->{n}: {res['cpu_ns']:.0f} ns CPU, "
                        f"{res['wall_ns']:.0f} ns wall per put, woken/1k {res['woken_k']:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
    lines = [
        f"Producer cost per put, 1 -> N, {SIZE}-byte messages, {a.count:,} puts per run, "
        f"capacity {CAPACITY:,}; median (min-max) of {a.runs} runs, interleaved; "
        f"{os.cpu_count()} CPUs.",
        "",
        "| mode | N | CPU ns/put | × 1→1 | wall ns/put | vol. cs /1k puts | invol. cs /1k puts "
        "| getters woken /1k puts | getter sleeps /1k puts | cache-misses /put |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        base = statistics.median(r["cpu_ns"] for r in runs[(m, pools[0])])
        for n in pools:
            rs = runs[(m, n)]
            cpu = [r["cpu_ns"] for r in rs]
            cm = [r.get("cache-misses") for r in rs]
            if not a.perf:
                cms = "not run (--perf)"
            elif all(isinstance(x, float) for x in cm):
                cms = _fmt([float(x) / a.count for x in cm if isinstance(x, float)], 1)
            else:
                cms = str(next((x for x in cm if not isinstance(x, float)), "n/a"))
            lines.append(
                f"| {m} | {n} | {_fmt(cpu)} | {statistics.median(cpu) / base:.2f} "
                f"| {_fmt([r['wall_ns'] for r in rs])} | {_fmt([r['vcsw_k'] for r in rs], 1)} "
                f"| {_fmt([r['ivcsw_k'] for r in rs], 1)} | {_fmt([r['woken_k'] for r in rs], 1)} "
                f"| {_fmt([r['sleeps_k'] for r in rs], 1)} | {cms} |"
            )
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
