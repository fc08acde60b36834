"""Run every benchmark for fastqueue and its peers side by side, in one run, and report.

    python perf/run.py            # full run  (just bench)
    python perf/run.py --quick    # about a minute (just bench-quick)

Writes perf/results/latest.json (all figures, plus the raw pyperf suite in
perf/results/same_process.pyperf.json), perf/results/latest.md (the tables),
perf/results/chart.png (time per put+get vs payload size) and perf/results/topology.png
(messages/s by producers -> consumers topology, perf/bench_topology.py). The md and png of a full
run are committed (the README and docs/guide/performance.rst show them); a --quick run writes
latest-quick.* / chart-quick.png / topology-quick.png / same_process-quick.pyperf.json instead,
which git ignores, so iterating never dirties them.

Each benchmark runs in its own subprocess, so a peer that fails to install, import or run is
reported as "n/a" instead of ending the run. Queues are interleaved scenario by scenario (and the
cross-process repeats rotate their order) so that drifts of a noisy machine hit all of them alike.
fastqueue is imported from this checkout: if it is not importable as is and the release library
has been built, PYTHONPATH and FASTQUEUE_LIBRARY are pointed at py/ and target/release/.
Shared-memory segments left in /dev/shm by this run (ours, or a peer's) are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

import adapters  # noqa: E402
import report  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
FULL = {
    "sizes": [8, 128, KiB, 256 * KiB, 8 * MiB, 32 * MiB],
    "floor_sizes": [8, 128, KiB],
    # Same-process scenarios beyond put+get (bench_same.py --scenario): name -> sizes.
    "scenarios": {
        "batch": [8],
        "batch_packed": [8],
        "batch_records": [8],
        "zerocopy": [8 * MiB],
        "get_into": [8, 8 * MiB, 32 * MiB],
    },
    "pyperf": ["--processes", "10", "--values", "3", "--warmups", "1"],
    "repeats": 3,
    "suffix": "",
}
QUICK = {
    "sizes": [8, KiB, 256 * KiB, 8 * MiB],
    "floor_sizes": [8],
    "scenarios": {
        "batch": [8],
        "batch_packed": [8],
        "batch_records": [8],
        "zerocopy": [8 * MiB],
        "get_into": [8],
    },
    "pyperf": ["--processes", "3", "--values", "2", "--warmups", "1", "--min-time", "0.03"],
    "repeats": 1,
    "suffix": "-quick",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setup_env() -> None:
    """Make `import fastqueue` work from the checkout, for us and every subprocess."""
    lib = os.path.join(ROOT, "target", "release", "libfastqueue.so")
    pkg = os.path.join(ROOT, "py")
    probe = subprocess.run([sys.executable, "-c", "import fastqueue"], capture_output=True)
    if probe.returncode == 0 or not os.path.exists(lib):
        return
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (pkg, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("FASTQUEUE_LIBRARY", lib)


def run_sub(cmd: list[str], timeout: float) -> tuple[int, str, str]:
    """Run a benchmark subprocess in its own process group; kill that group on timeout."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -9, out, f"timed out after {timeout:.0f} s\n{err}"
    return proc.returncode, out, err


def last_line(text: str) -> str:
    """The most telling line of a failed subprocess's stderr: its last exception line.

    pyperf ends with "RuntimeError: <python> failed with exit code 1" when a worker fails; the
    worker's own traceback is above that, so skip it."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "failed with exit code" in ln:
            continue
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Exit", "Interrupt")) or "timed out" in ln:
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def availability() -> tuple[list[str], dict[str, str], dict[str, str]]:
    ok, missing, versions = [], {}, {}
    code = (
        f"import sys; sys.path.insert(0, {HERE!r}); import adapters; "
        "r = adapters.available(sys.argv[1]); print(int(r[0])); print(r[1])"
    )
    for q in adapters.QUEUES:
        rc, out, err = run_sub([sys.executable, "-c", code, q], 120)
        lines = out.strip().splitlines()
        if rc == 0 and lines and lines[0] == "1":
            ok.append(q)
            versions[q] = lines[1] if len(lines) > 1 else "?"
        else:
            missing[q] = lines[1] if len(lines) > 1 else last_line(err)
    return ok, missing, versions


def _pyperf_job(
    cfg: dict[str, Any], q: str, size: int, scenario: str, tmp: str, data: dict[str, Any]
) -> tuple[dict[str, Any], str] | None:
    """Run bench_same.py for one (queue, size, scenario) in a subprocess: (figures, pyperf JSON
    file), or None after recording the failure in data["errors"]."""
    import pyperf

    out = os.path.join(tmp, f"{scenario}-{q}-{size}.json")
    cmd = [
        sys.executable,
        os.path.join(HERE, "bench_same.py"),
        "--queue",
        q,
        "--sizes",
        str(size),
        "--scenario",
        scenario,
        "--quiet",
        "-o",
        out,
        "--inherit-environ",
        "FASTQUEUE_LIBRARY",
        *cfg["pyperf"],
    ]
    t0 = time.perf_counter()
    rc, _, err = run_sub(cmd, 900)
    what = "same-process" if scenario == "putget" else scenario
    key = f"{what} {q} {report.fmt_size(size)}"
    if rc != 0 or not os.path.exists(out):
        data["errors"][key] = last_line(err)
        log(f"  {key}: FAILED ({last_line(err)})")
        return None
    bench = pyperf.Benchmark.load(out)
    values = bench.get_values()
    entry = {
        "median_s": statistics.median(values),
        "mean_s": statistics.fmean(values),
        "stdev_s": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": len(values),
        "loops": bench.get_loops(),
    }
    log(
        f"  {key}: {report.fmt_time(entry['median_s'])} "
        f"(median of {len(values)}, {time.perf_counter() - t0:.0f} s)"
    )
    return entry, out


def same_process(cfg: dict[str, Any], queues: list[str], data: dict[str, Any], tmp: str) -> None:
    import pyperf

    sp = data["same_process"]
    suite_files = []
    jobs = [(size, q, "putget") for size in cfg["sizes"] for q in queues]
    if "fastqueue" in queues:
        jobs += [(size, "ctypes-floor", "putget") for size in cfg["floor_sizes"]]
    for scenario, sizes in cfg["scenarios"].items():
        wanted = adapters.SCENARIO_QUEUES[scenario]
        members = [q for q in wanted if q in queues or q.startswith("memcpy")]
        sc = data["scenarios"].setdefault(scenario, {"sizes": sizes, "results": {}})
        sc["queues"] = members
        jobs += [(size, q, scenario) for size in sizes for q in members]
    for size, q, scenario in jobs:
        done = _pyperf_job(cfg, q, size, scenario, tmp, data)
        if done is None:
            continue
        entry, out = done
        if scenario != "putget":
            target = data["scenarios"][scenario]["results"].setdefault(q, {})
        elif q == "ctypes-floor":
            target = sp["floor"]
        else:
            target = sp["results"].setdefault(q, {})
        target[str(size)] = entry
        suite_files.append(out)
    if suite_files:
        suite = pyperf.BenchmarkSuite([pyperf.Benchmark.load(f) for f in suite_files])
        path = os.path.join(RESULTS, f"same_process{cfg['suffix']}.pyperf.json")
        if os.path.exists(path):
            os.remove(path)
        suite.dump(path)


def cross_process(
    cfg: dict[str, Any], quick: bool, queues: list[str], data: dict[str, Any]
) -> None:
    cq = [q for q in adapters.CROSS_PROCESS_QUEUES if q in queues]
    cp = data["cross_process"]
    scenarios = [
        ("pingpong", ["pingpong"], cfg["repeats"]),
        ("throughput_1_1", ["throughput", "--producers", "1", "--consumers", "1"], cfg["repeats"]),
        ("throughput_2_2", ["throughput", "--producers", "2", "--consumers", "2"], cfg["repeats"]),
        (
            "throughput_1_1_batch64",
            ["throughput", "--producers", "1", "--consumers", "1", "--batch", "64"],
            cfg["repeats"],
        ),
        (
            "throughput_1_1_batch64_packed",
            ["throughput", "--producers", "1", "--consumers", "1", "--batch", "64", "--packed"],
            cfg["repeats"],
        ),
        ("frames_1mib", ["frames", "--size", str(MiB)], cfg["repeats"]),
        ("frames_8mib", ["frames", "--size", str(8 * MiB)], cfg["repeats"]),
        ("idle", ["idle"], 1),
    ]
    for key, args, repeats in scenarios:
        if "--packed" in args:
            members = adapters.PACKED_QUEUES
        elif "--batch" in args:
            members = adapters.BATCH_QUEUES
        else:
            members = cq
        runs: dict[str, list[dict[str, Any]]] = {q: [] for q in cq if q in members}
        cq_run = list(runs)
        for rep in range(repeats if cq_run else 0):
            k = rep % len(cq_run)
            order = cq_run[k:] + cq_run[:k]  # rotate who goes first
            for q in order:
                if f"{key} {q}" in data["errors"]:
                    continue
                cmd = [sys.executable, os.path.join(HERE, "bench_cross.py"), *args, "--queue", q]
                if quick:
                    cmd.append("--quick")
                rc, out, err = run_sub(cmd, 300)
                if rc != 0:
                    data["errors"][f"{key} {q}"] = last_line(err)
                    log(f"  {key} {q}: FAILED ({last_line(err)})")
                    continue
                res = json.loads(last_line(out))
                runs[q].append(res)
                log(f"  {key} {q} #{rep + 1}: {res}")
        cp[key] = {}
        for q, rs in runs.items():
            if not rs:
                continue
            # The median of every figure over the repeats (each figure on its own).
            cp[key][q] = {f: statistics.median(r[f] for r in rs) for f in rs[0]}
            cp[key][q]["repeats"] = len(rs)


def topology(quick: bool, queues: list[str], missing: dict[str, str], data: dict[str, Any]) -> None:
    """bench_topology.py in a subprocess (it times out and kills its own runs; this timeout only
    guards against the whole script hanging); its figures go to data["topology"]."""
    tq = [q for q in adapters.CROSS_PROCESS_QUEUES if q in queues]
    with tempfile.TemporaryDirectory(prefix="fqbench-topo-") as tmp:
        out = os.path.join(tmp, "topology.json")
        cmd = [
            sys.executable,
            os.path.join(HERE, "bench_topology.py"),
            "--quick" if quick else "--full",
            "--queues",
            ",".join(tq),
            "--json",
            out,
            "--no-table",
        ]
        # Its own progress lines go straight to our stderr (it runs for minutes).
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=600 if quick else 1500)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -9
        if not os.path.exists(out):
            why = "timed out" if rc == -9 else f"exit code {rc}"
            data["errors"]["topology"] = f"bench_topology.py wrote no figures ({why})"
            log(f"  topology: FAILED ({why})")
            return
        with open(out) as f:
            topo = json.load(f)
    if rc != 0:  # a validation failure: the figures are there, the failed cells are n/a
        data["errors"]["topology"] = f"bench_topology.py exit code {rc}: see the topology notes"
    topo["queues"] = list(adapters.CROSS_PROCESS_QUEUES)  # the missing ones too, as n/a
    topo["unavailable"].update({q: why for q, why in missing.items() if q in topo["queues"]})
    data["topology"] = topo


def sweep_shm(before: set[str], iox_tmp_existed: bool) -> list[str]:
    """Remove segments this run left behind: our own names, and iceoryx2's management files."""
    removed = []
    try:
        now = set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return removed
    for name in sorted(now - before):
        if name.startswith(adapters.NAME_PREFIX) or name.startswith("iox2_"):
            try:
                os.remove(os.path.join("/dev/shm", name))
                removed.append(name)
            except OSError:
                pass
    iox_tmp = os.path.join(tempfile.gettempdir(), "iceoryx2")
    if not iox_tmp_existed and os.path.isdir(iox_tmp):
        shutil.rmtree(iox_tmp, ignore_errors=True)
    return removed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer sizes, loops and repeats (~1 min)")
    ap.add_argument("--skip-cross", action="store_true", help="same-process benchmarks only")
    ap.add_argument("--skip-same", action="store_true", help="cross-process benchmarks only")
    ap.add_argument(
        "--skip-topology", action="store_true", help="no producer x consumer topology benchmark"
    )
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    t_start = time.perf_counter()
    os.makedirs(RESULTS, exist_ok=True)
    setup_env()
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    iox_tmp_existed = os.path.isdir(os.path.join(tempfile.gettempdir(), "iceoryx2"))

    queues, missing, versions = availability()
    for q, why in missing.items():
        log(f"{q}: n/a ({why})")
    data: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "cpu": _cpu_model(),
            "quick": args.quick,
            "versions": versions,
            "loadavg_start": _loadavg(),
        },
        "queues": adapters.QUEUES,
        "unavailable": missing,
        "errors": {},
        "notes": [
            "The ctypes floor calls the library's exported no-op twice, exactly as fastqueue's "
            "first (non-waiting) put calls fq_put: the GIL-keeping (PyDLL) loading, arguments "
            "prepared ahead. No ctypes binding can go below it; zeroq, a compiled (PyO3) "
            "extension, does a whole put+get in about the time of those two empty calls.",
            "iceoryx2 is measured same-process only: its publish/subscribe has no blocking "
            "receive, so it does not fit the blocking cross-process scenarios simply.",
            "faster-fifo carries raw bytes (identity `dumps`, `loads=bytes`), not pickles; "
            "mp.Queue pickles, which is the only way it works.",
        ],
        "same_process": {"sizes": cfg["sizes"], "floor_sizes": [], "results": {}, "floor": {}},
        "scenarios": {},
        "cross_process": {},
    }
    if "fastqueue" in queues:
        data["same_process"]["floor_sizes"] = cfg["floor_sizes"]
    try:
        with tempfile.TemporaryDirectory(prefix="fqbench-") as tmp:
            if not args.skip_same:
                log("same-process put+get (pyperf)")
                t0 = time.perf_counter()
                same_process(cfg, queues, data, tmp)
                data["meta"]["same_process_s"] = round(time.perf_counter() - t0, 1)
            if not args.skip_cross:
                log("cross-process")
                t0 = time.perf_counter()
                cross_process(cfg, args.quick, queues, data)
                data["meta"]["cross_process_s"] = round(time.perf_counter() - t0, 1)
            if not args.skip_topology:
                log("topologies (producers x consumers)")
                t0 = time.perf_counter()
                topology(args.quick, queues, missing, data)
                data["meta"]["topology_s"] = round(time.perf_counter() - t0, 1)
    finally:
        removed = sweep_shm(shm_before, iox_tmp_existed)
        if removed:
            log(f"removed leftover shared memory: {', '.join(removed)}")
    data["meta"]["total_s"] = round(time.perf_counter() - t_start, 1)
    data["meta"]["loadavg_end"] = _loadavg()
    sfx = cfg["suffix"]
    with open(os.path.join(RESULTS, f"latest{sfx}.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(RESULTS, f"latest{sfx}.md"), "w") as f:
        f.write(report.markdown(data))
    report.chart(data, os.path.join(RESULTS, f"chart{sfx}.png"))
    pngs = f"chart{sfx}.png"
    if "topology" in data:
        report.topology_chart(data["topology"], os.path.join(RESULTS, f"topology{sfx}.png"))
        pngs += f", topology{sfx}.png"
    log(
        f"done in {data['meta']['total_s']:.0f} s: perf/results/latest{sfx}.md, {pngs}, "
        f"latest{sfx}.json"
    )
    print(report.markdown(data))


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    main()
