"""The topology table with the spread of the runs, from bench_topology.py's JSON files.

    python perf/topology_spread.py a.json [b.json ...]

Cells of later files are added to those of earlier ones (runs of the same cell are pooled, so
several short runs of ``bench_topology.py --json`` make one table). Each rate is the median of
the runs with their range (min-max), in thousands of messages per second; ratios are of medians:
fastqueue (and fastqueue@base, the library before a change, when measured) against zeroq, and
against fastqueue's own 1 -> 1 of the same files. Longest wait: the median over the runs of the
longest gap of any process, and the worst run.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

ORDER = ["fastqueue", "fastqueue@base", "zeroq", "faster-fifo", "mp.Queue"]


def load(paths: list[str]) -> tuple[dict[str, Any], list[str], list[str], list[int]]:
    cells: dict[str, Any] = {}
    queues: list[str] = []
    topos: list[str] = []
    sizes: list[int] = []
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        for q in d["queues"]:
            if q not in queues:
                queues.append(q)
        for t in d["topologies"]:
            if t not in topos:
                topos.append(t)
        for s in d["sizes"]:
            if s not in sizes:
                sizes.append(s)
        for size, by_topo in d["results"].items():
            for topo, by_q in by_topo.items():
                for q, r in by_q.items():
                    c = (
                        cells.setdefault(size, {})
                        .setdefault(topo, {})
                        .setdefault(q, {"rates": [], "waits": []})
                    )
                    c["rates"] += r.get("rates", [r["msgs_per_s"]])
                    c["waits"] += r.get("waits", [r["max_wait_ms"]])
                    if "vcsw_per_k" in r:
                        c.setdefault("cs", []).append(r["vcsw_per_k"] + r["ivcsw_per_k"])
                        c.setdefault("cpu", []).append(r["cpu_us_per_msg"])
    queues.sort(key=lambda q: ORDER.index(q) if q in ORDER else len(ORDER))
    return cells, queues, topos, sizes


def _rate(c: dict[str, Any] | None) -> str:
    if not c or not c["rates"]:
        return "n/a"
    r = [x / 1e3 for x in c["rates"]]
    return f"{statistics.median(r):,.0f} ({min(r):,.0f}-{max(r):,.0f})"


def _med(c: dict[str, Any] | None, key: str = "rates") -> float | None:
    return statistics.median(c[key]) if c and c[key] else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "n/a"


def table(paths: list[str]) -> str:
    cells, queues, topos, sizes = load(paths)
    fqs = [q for q in ("fastqueue", "fastqueue@base") if q in queues]
    out = []
    for size in sizes:
        by_topo = cells.get(str(size), {})
        n = max((len(c["rates"]) for t in by_topo.values() for c in t.values()), default=0)
        label = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
        out.append(f"### {label} messages (k msg/s, median (min-max) of up to {n} runs)\n")
        head = ["P → C", *queues]
        head += [f"{q} / zeroq" for q in fqs if "zeroq" in queues]
        head += [f"{q} / own 1 → 1" for q in fqs]
        head += [f"longest wait {q} (ms, median / worst)" for q in queues]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for topo in topos:
            row_cells = by_topo.get(topo, {})
            if not row_cells:
                continue
            p, _, c = topo.partition("x")
            row = [f"{p} → {c}", *(_rate(row_cells.get(q)) for q in queues)]
            if "zeroq" in queues:
                z = _med(row_cells.get("zeroq"))
                row += [_ratio(_med(row_cells.get(q)), z) for q in fqs]
            for q in fqs:
                own = _med(by_topo.get("1x1", {}).get(q))
                row.append(_ratio(_med(row_cells.get(q)), own))
            for q in queues:
                cq = row_cells.get(q)
                row.append(
                    f"{statistics.median(cq['waits']):.3g} / {max(cq['waits']):.3g}"
                    if cq and cq["waits"]
                    else "n/a"
                )
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        if any("cs" in c for t in by_topo.values() for c in t.values()):
            out.append(
                f"Context switches per 1,000 messages (voluntary + involuntary, all processes) "
                f"and CPU µs per message (all processes, start-up included), {label}, medians:\n"
            )
            head = ["P → C", *(f"{q} switches" for q in queues), *(f"{q} CPU" for q in queues)]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for topo in topos:
                row_cells = by_topo.get(topo, {})
                if not row_cells:
                    continue
                p, _, c = topo.partition("x")
                row = [f"{p} → {c}"]
                for key, fmt in (("cs", "{:.0f}"), ("cpu", "{:.1f}")):
                    for q in queues:
                        v = row_cells.get(q, {}).get(key)
                        row.append(fmt.format(statistics.median(v)) if v else "n/a")
                out.append("| " + " | ".join(row) + " |")
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(table(sys.argv[1:]))
