"""Interleaved A/B of one same-process put+get, and of the timed forms, between two checkouts.

    python perf/ab_putget.py A_PY_DIR A_LIBRARY B_PY_DIR B_LIBRARY [--size 8] [--rounds 7]

Each checkout's package (its ``py/`` folder) and library run in a child process of their own
(``PYTHONPATH`` and ``FASTQUEUE_LIBRARY``), A, B, A, B, ... for ``--rounds`` rounds; each child
times, in one process: put+get, ``put(timeout=1)`` + ``get(timeout=1)`` (a timed call that
succeeds at once, what worker loops use), put+get_nowait and put_nowait+get_nowait. The median
of the rounds is printed per checkout, with B/A. Run it on a quiet machine: the children run
one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import fastqueue
size, n = int(sys.argv[1]), int(sys.argv[2])
msg = b"x" * size
out = {}
with fastqueue.Queue(element_size=max(size, 1), capacity=8) as q:
    put, get, get_nowait, put_nowait = q.put, q.get, q.get_nowait, q.put_nowait
    def plain():
        for _ in range(n):
            put(msg); get()
    def timed():
        for _ in range(n):
            put(msg, timeout=1.0); get(timeout=1.0)
    def nowait():
        for _ in range(n):
            put(msg); get_nowait()
    def both_nowait():
        for _ in range(n):
            put_nowait(msg); get_nowait()
    forms = (
        ("put+get", plain),
        ("timed put+get", timed),
        ("put+get_nowait", nowait),
        ("put_nowait+get_nowait", both_nowait),
    )
    for name, f in forms:
        f()  # warm
        best = None
        for _ in range(3):
            t = time.perf_counter_ns(); f(); dt = (time.perf_counter_ns() - t) / n
            best = dt if best is None else min(best, dt)
        out[name] = best
print(json.dumps(out))
"""


def run(py_dir: str, lib: str, size: int, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": py_dir, "FASTQUEUE_LIBRARY": lib}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a_py")
    ap.add_argument("a_lib")
    ap.add_argument("b_py")
    ap.add_argument("b_lib")
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-n", type=int, default=200_000)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        results["A"].append(run(args.a_py, args.a_lib, args.size, args.n))
        results["B"].append(run(args.b_py, args.b_lib, args.size, args.n))
    names = list(results["A"][0])
    print(f"{args.size} B, median of {args.rounds} interleaved rounds (ns per put+get):")
    for name in names:
        a = statistics.median(r[name] for r in results["A"])
        b = statistics.median(r[name] for r in results["B"])
        spread_a = max(r[name] for r in results["A"]) / min(r[name] for r in results["A"])
        spread_b = max(r[name] for r in results["B"]) / min(r[name] for r in results["B"])
        print(
            f"  {name:21} A {a:7.0f}  B {b:7.0f}  B/A {b / a:5.3f}"
            f"   (spread max/min A {spread_a:.2f}, B {spread_b:.2f})"
        )


if __name__ == "__main__":
    main()
