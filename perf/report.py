"""Turn perf/results/latest.json into the markdown tables latest.md and the charts chart.png and
topology.png (messages/s by producers -> consumers topology, when the run measured them).

    python perf/report.py [perf/results/latest.json]   # or latest-quick.json

Ratios are "speed-up": the peer's time per op divided by fastqueue's, from the same run
(> 1 means fastqueue is faster). A queue that could not run shows "n/a".
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
FQ = "fastqueue"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return "n/a"


def fmt_size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def fmt_ratio(peer: float | None, fq: float | None) -> str:
    if peer is None or fq is None:
        return "n/a"
    if fq <= 0:
        return "—"
    r = peer / fq
    return f"{r:.3g}×" if r < 100 else f"{r:.0f}×"


def _rows(data: dict[str, Any]) -> list[tuple[str, dict[str, float | None], str]]:
    """(scenario label, {queue: seconds per op or None}, kind) rows in table order."""
    queues = data["queues"]
    rows = []
    same = data.get("same_process", {})
    for size in same.get("sizes", []):
        cells = {
            q: same.get("results", {}).get(q, {}).get(str(size), {}).get("median_s") for q in queues
        }
        rows.append((f"same-process put+get, {fmt_size(size)}", cells, "time"))
    floor = same.get("floor", {})
    for size in same.get("floor_sizes", []):
        v = floor.get(str(size), {}).get("median_s")
        label = f"ctypes floor: 2 × `fq_noop`, called as fastqueue calls `fq_put`, {fmt_size(size)}"
        rows.append((label, {FQ: v}, "floor"))
    scenarios = data.get("scenarios", {})
    for name, label in SCENARIO_LABELS.items():
        sc = scenarios.get(name)
        if not sc:
            continue
        for size in sc.get("sizes", []):
            cells = {
                q: sc.get("results", {}).get(q, {}).get(str(size), {}).get("median_s")
                for q in sc.get("queues", [])
                if q in queues
            }
            text = label.format(itemsize=size)  # the packed batch's itemsize is the size
            rows.append((f"{text}, {fmt_size(size)}", cells, "partial"))
    cross = data.get("cross_process", {})
    for key, label, field, scale in (
        ("pingpong", "cross-process round trip p50, 8 B", "p50_us", 1e-6),
        ("pingpong", "cross-process round trip p99, 8 B", "p99_us", 1e-6),
        ("throughput_1_1", "throughput 1 → 1, 8 B (time per message)", "ns_per_msg", 1e-9),
        ("throughput_2_2", "throughput 2 → 2, 8 B (time per message)", "ns_per_msg", 1e-9),
        (
            "throughput_1_1_batch64",
            "throughput 1 → 1, 8 B, batches of 64 as lists of bytes (time per message)",
            "ns_per_msg",
            1e-9,
        ),
        (
            "throughput_1_1_batch64_packed",
            "throughput 1 → 1, 8 B, batches of 64 as one packed buffer (itemsize=8) "
            "(time per message)",
            "ns_per_msg",
            1e-9,
        ),
        ("frames_1mib", "frames 1 → 1, 1 MiB, capacity 8 (time per message)", "ns_per_msg", 1e-9),
        ("frames_8mib", "frames 1 → 1, 8 MiB, capacity 8 (time per message)", "ns_per_msg", 1e-9),
        ("idle", "CPU burnt by a consumer blocked 2 s", "cpu_ms", 1e-3),
    ):
        if key not in cross:
            continue
        cells = {}
        for q in queues:
            r = cross[key].get(q)
            cells[q] = r[field] * scale if r and field in r else None
        kind = "partial" if "batch64" in key else "time"
        if kind == "partial":
            cells = {q: v for q, v in cells.items() if q in cross[key]}
        rows.append((label, cells, kind))
    return rows


#: Same-process scenarios beyond put+get (bench_same.py --scenario), in table order;
#: ``{itemsize}`` is replaced by the message size.
SCENARIO_LABELS = {
    "batch": "batch of 64, list of bytes (put_many(list) + get_many), per message",
    "batch_packed": "batch of 64, one packed buffer (put_many(buffer, itemsize={itemsize}) + "
    "get_many), per message",
    "batch_records": "batch of 64, packed both ways (put_many(buffer, itemsize={itemsize}) + "
    "get_many(64, itemsize={itemsize})), per message",
    "zerocopy": "zero-copy put+get (one copy in, read in place)",
    "get_into": "put + get_into a reused buffer",
}


def _scenario_notes(data: dict[str, Any]) -> list[str]:
    """Notes that put the extra same-process scenarios in relation, from the same run."""
    notes = []
    scenarios = data.get("scenarios", {})
    same = data.get("same_process", {}).get("results", {})

    def fig(sc: str, q: str, size: int) -> float | None:
        v = scenarios.get(sc, {}).get("results", {}).get(q, {}).get(str(size), {})
        return v.get("median_s")

    for sc, form in (
        ("batch", "as a list of bytes"),
        ("batch_packed", "as one packed buffer (itemsize={size})"),
        ("batch_records", "packed both ways (itemsize={size})"),
    ):
        for size in scenarios.get(sc, {}).get("sizes", []):
            fq = fig(sc, FQ, size)
            zq = same.get("zeroq", {}).get(str(size), {}).get("median_s")
            own = same.get(FQ, {}).get(str(size), {}).get("median_s")
            if fq and zq and own:
                vs_list = ""
                listed = fig("batch", FQ, size) if sc != "batch" else None
                if listed:
                    vs_list = f"; {fq / listed:.2f}× the list form ({fmt_time(listed)})"
                notes.append(
                    f"- Batches of 64 at {fmt_size(size)}, {form.format(size=size)}: "
                    f"{fmt_time(fq)} per message, {fq / zq:.2f}× zeroq's single put+get "
                    f"({fmt_time(zq)}) and {fq / own:.2f}× fastqueue's own ({fmt_time(own)})"
                    f"{vs_list}."
                )
    for size in scenarios.get("zerocopy", {}).get("sizes", []):
        fq, m8, m1 = (fig("zerocopy", q, size) for q in (FQ, "memcpy", "memcpy-1"))
        if fq and m8 and m1:
            notes.append(
                f"- Zero-copy at {fmt_size(size)}: fastqueue's put_slot + get_slot take "
                f"{fmt_time(fq)}, {fq / m8:.2f}× one memcpy of {fmt_size(size)} into 8 buffers "
                f"in turn ({fmt_time(m8)}, the memory pattern of a ring of 8 slots) and "
                f"{fq / m1:.2f}× one into a single, cache-warm buffer ({fmt_time(m1)})."
            )
    for size in scenarios.get("get_into", {}).get("sizes", []):
        fq = fig("get_into", FQ, size)
        own = same.get(FQ, {}).get(str(size), {}).get("median_s")
        if fq and own:
            notes.append(
                f"- put + get_into at {fmt_size(size)}: {fmt_time(fq)}, {fq / own:.2f}× put + "
                f"get ({fmt_time(own)}); get_into pays a fixed cost to lend the buffer to ctypes, "
                f"get allocates its result (from 32 MiB up, glibc maps fresh pages for each one, "
                f"which the kernel then faults in page by page)."
            )
    return notes


def markdown(data: dict[str, Any]) -> str:
    queues = data["queues"]
    peers = [q for q in queues if q != FQ]
    meta = data["meta"]
    out = []
    out.append(f"# fastqueue benchmarks ({'quick' if meta['quick'] else 'full'} run)\n")
    out.append(
        f"One run of `python perf/run.py{' --quick' if meta['quick'] else ''}` on "
        f"{meta['machine']}, Python {meta['python']}, {meta['date']}. "
        "Same-process rows are pyperf medians (time per put+get, capacity 8); cross-process rows "
        "are medians of repeated runs. The speed-up columns are the peer's time divided by "
        "fastqueue's, from this same run: **> 1 means fastqueue is faster**.\n"
    )
    head = ["scenario"] + queues + [f"speed-up vs {p}" for p in peers]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for label, cells, kind in _rows(data):
        # "floor" and "partial" rows: only the queues in `cells` take part (others blank).
        vals = [fmt_time(cells.get(q)) if (q in cells or kind == "time") else "" for q in queues]
        if kind == "floor":
            ratios = ["" for _ in peers]
        else:
            ratios = [
                fmt_ratio(cells.get(p), cells.get(FQ)) if (p in cells or kind == "time") else ""
                for p in peers
            ]
        out.append("| " + " | ".join([label, *vals, *ratios]) + " |")
    out.append("")
    same = data.get("same_process", {})
    notes = []
    for size in same.get("floor_sizes", []):
        fl = same.get("floor", {}).get(str(size), {}).get("median_s")
        fq = same.get("results", {}).get(FQ, {}).get(str(size), {}).get("median_s")
        if fl and fq:
            notes.append(
                f"- At {fmt_size(size)}, fastqueue's put+get costs {fq / fl:.2f}× the ctypes floor "
                f"({fmt_time(fq)} vs {fmt_time(fl)}: "
                f"{fmt_time(fq - fl)} above two bare ctypes calls)."
            )
    notes.extend(_scenario_notes(data))
    tp = data.get("cross_process", {})
    for key, label in (
        ("throughput_1_1", "1 → 1"),
        ("throughput_2_2", "2 → 2"),
        ("throughput_1_1_batch64", "1 → 1 with batches of 64 as lists of bytes"),
        (
            "throughput_1_1_batch64_packed",
            "1 → 1 with batches of 64 as one packed buffer (itemsize=8)",
        ),
    ):
        if key in tp:
            parts = [
                f"{q} {tp[key][q]['msgs_per_s'] / 1e3:,.0f} k" for q in queues if tp[key].get(q)
            ]
            if parts:
                notes.append(f"- Throughput {label} in messages/s: " + ", ".join(parts) + ".")
    for key, label in (("frames_1mib", "1 MiB"), ("frames_8mib", "8 MiB")):
        if key in tp:
            parts = [
                f"{q} {tp[key][q]['bytes_per_s'] / 1e9:.1f} GB/s" for q in queues if tp[key].get(q)
            ]
            if parts:
                notes.append(f"- Frames of {label} across processes: " + ", ".join(parts) + ".")
    if "pingpong" in tp:
        parts = [f"{q} {tp['pingpong'][q]['round_trips']}" for q in queues if tp["pingpong"].get(q)]
        notes.append("- Round trips timed (per repeat): " + ", ".join(parts) + ".")
    for q, why in data.get("unavailable", {}).items():
        notes.append(f"- {q}: n/a — {why}")
    for key, why in data.get("errors", {}).items():
        notes.append(f"- {key} failed: {why}")
    for note in data.get("notes", []):
        notes.append(f"- {note}")
    if notes:
        out.append("Notes:\n")
        out.extend(notes)
        out.append("")
    if data.get("topology"):
        out.append(topology_markdown(data["topology"]))
    out.append(
        "Versions: " + ", ".join(f"{q} {v}" for q, v in meta.get("versions", {}).items()) + ". "
        f"CPU: {meta.get('cpu', '?')}. Load average (1/5/15 min) at start "
        f"{meta.get('loadavg_start', '?')}, at end {meta.get('loadavg_end', '?')}; "
        f"the run took {meta.get('total_s', '?')} s."
    )
    out.append("")
    return "\n".join(out)


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.3g} M"
    return f"{v / 1e3:.3g} k"


def _topo_label(key: str) -> str:
    p, c = key.split("x")
    return f"{p} → {c}"


def topology_markdown(topo: dict[str, Any]) -> str:
    """The topology tables (bench_topology.py's figures): one per message size."""
    queues = topo["queues"]
    results = topo.get("results", {})
    out = [
        "## Topologies: producers → consumers\n",
        f"`perf/bench_topology.py`: P producers put messages one blocking put each, C consumers "
        f"take them one blocking get each, on one queue of capacity {topo['capacity']}; every "
        "consumer parses each message's 8-byte header, checks per-producer order and counts, "
        "for every queue alike, and every message is checked to arrive exactly once. Messages/s "
        "of all consumers together (first producer's start to last consumer's last message), "
        f"median of {topo['repeats']} interleaved run(s) in fresh processes. "
        "**fastqueue / zeroq** > 1 means fastqueue is faster; **/ own 1 → 1**: fastqueue's rate "
        "against its own 1 → 1 at that size. **Longest wait**: the longest any single process "
        "(producer or consumer) waited between two of its completed puts or gets, in ms "
        "(fairness: a starved process shows here).\n",
    ]
    for size in topo.get("sizes", []):
        rs = results.get(str(size), {})
        ratios = []  # (column, the rate fastqueue's is divided by)
        if FQ in queues:
            ratios = [(f"{FQ} / zeroq", "zeroq")] if "zeroq" in queues else []
            ratios.append((f"{FQ} / own 1 → 1", "1x1"))
        head = (
            ["P → C"]
            + [f"{q} msg/s" for q in queues]
            + [label for label, _ in ratios]
            + [f"longest wait {q} (ms)" for q in queues]
        )
        out.append(f"### {fmt_size(size)} messages\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        base = rs.get("1x1", {}).get(FQ, {}).get("msgs_per_s")
        for key in topo.get("topologies", []):
            cell = rs.get(key, {})
            rate = {q: cell.get(q, {}).get("msgs_per_s") for q in queues}
            rate["1x1"] = base
            waits = [f"{cell[q]['max_wait_ms']:.3g}" if q in cell else "n/a" for q in queues]
            row = [
                _topo_label(key),
                *(fmt_rate(rate[q]) for q in queues),
                *(fmt_ratio(rate[FQ], rate[p]) for _, p in ratios),
                *waits,
            ]
            out.append("| " + " | ".join(row) + " |")
        counts = topo.get("messages", {}).get(str(size), {})
        if counts:
            out.append(
                "\nMessages per run: "
                + ", ".join(f"{q} {n:,}" for q, n in counts.items())
                + " (split evenly over the producers).\n"
            )
    notes = [f"- {q}: n/a — {why}" for q, why in topo.get("unavailable", {}).items()]
    notes += [f"- {cell}: {why}" for cell, why in topo.get("errors", {}).items()]
    if notes:
        out.append("Topology runs that failed or were skipped (n/a above):\n")
        out.extend(notes)
        out.append("")
    return "\n".join(out)


def topology_chart(topo: dict[str, Any], path: str) -> None:
    """Messages/s per topology, grouped bars per queue, one panel per message size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = topo.get("sizes", [])
    keys = topo.get("topologies", [])
    queues = topo["queues"]
    if not sizes or not keys:
        return
    fig, axes = plt.subplots(len(sizes), 1, figsize=(10, 3.8 * len(sizes)), dpi=110, squeeze=False)
    width = 0.8 / len(queues)
    for ax, size in zip(axes[:, 0], sizes):
        rs = topo.get("results", {}).get(str(size), {})
        for i, q in enumerate(queues):
            xs = [j + (i - (len(queues) - 1) / 2) * width for j in range(len(keys))]
            ys = [rs.get(k, {}).get(q, {}).get("msgs_per_s", 0) / 1e6 for k in keys]
            ax.bar(xs, ys, width, label=q, zorder=3 if q == FQ else 2)
            for x, k in zip(xs, keys):
                if q not in rs.get(k, {}):
                    ax.text(x, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([_topo_label(k) for k in keys])
        ax.set_ylabel("million messages/s")
        ax.set_title(f"{fmt_size(size)} messages, capacity {topo['capacity']}")
        ax.grid(True, axis="y", alpha=0.3)
    top = axes[0, 0]
    top.set_ylim(top=top.get_ylim()[1] * 1.15)  # room for the legend above the bars
    top.legend(ncol=len(queues), loc="upper right")
    axes[-1, 0].set_xlabel("producers → consumers (all consumers together)")
    kind = "quick" if topo.get("quick") else "full"
    fig.suptitle(
        f"Cross-process throughput by topology (median of {topo['repeats']}, one {kind} run)"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def chart(data: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    same = data.get("same_process", {})
    sizes = same.get("sizes", [])
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    markers = "osD^v<>"
    for i, q in enumerate(data["queues"]):
        pts = [
            (s, same.get("results", {}).get(q, {}).get(str(s), {}).get("median_s")) for s in sizes
        ]
        pts = [(s, v) for s, v in pts if v]
        if not pts:
            continue
        ax.plot(
            [s for s, _ in pts],
            [v for _, v in pts],
            marker=markers[i % len(markers)],
            linewidth=2.5 if q == FQ else 1.4,
            label=q,
            zorder=3 if q == FQ else 2,
        )
    floor = same.get("floor", {})
    fpts = [(int(s), v["median_s"]) for s, v in floor.items() if v.get("median_s")]
    if fpts:
        fpts.sort()
        ax.plot(
            [s for s, _ in fpts],
            [v for _, v in fpts],
            linestyle="--",
            color="grey",
            marker=".",
            label="ctypes floor (2 × fq_noop)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([fmt_size(s) for s in sizes])
    ax.set_xlabel("payload size")
    ax.set_ylabel("time per put+get (s, log)")
    kind = "quick" if data["meta"]["quick"] else "full"
    ax.set_title(f"Same-process put+get, capacity 8 (pyperf medians, one {kind} run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(RESULTS, "latest.json")
    with open(src) as f:
        data = json.load(f)
    sfx = "-quick" if data["meta"]["quick"] else ""
    with open(os.path.join(RESULTS, f"latest{sfx}.md"), "w") as f:
        f.write(markdown(data))
    chart(data, os.path.join(RESULTS, f"chart{sfx}.png"))
    if data.get("topology"):
        topology_chart(data["topology"], os.path.join(RESULTS, f"topology{sfx}.png"))


if __name__ == "__main__":
    main()
