"""What acknowledged delivery costs from Python: put+get+task_done on a ``redeliver=True``
queue against put+get on a plain one, in one process.

    python perf/lease_cost_py.py [--rounds 31] [--n 20000]

For 8 B and 1 MiB messages (a ``JoinableQueue``: the redeliver queue acknowledges with
``task_done``; the plain queue's put+get is the baseline, as in perf/lease_cost.c, and the
plain queue's put+get+task_done is shown too), the two loops run in turns, the order
alternating, timed with the thread's CPU time (a shared machine's waits for a core are left
out); the median of the rounds' ratios is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import fastqueue


def loop(put: Any, get: Any, done: Any, msg: bytes, n: int) -> float:
    """ns of thread CPU time per put+get (+ done(), unless done is None)."""
    t = time.thread_time_ns()
    if done is None:
        for _ in range(n):
            put(msg)
            get()
    else:
        for _ in range(n):
            put(msg)
            get()
            done()
    return (time.thread_time_ns() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--n", type=int, default=20000)
    a = ap.parse_args()
    for size, n in ((8, a.n), (1 << 20, max(a.n // 500, 10))):
        msg = b"x" * size
        cap = 64 if size < 65536 else 8
        with (
            fastqueue.JoinableQueue(element_size=size, capacity=cap) as plain,
            fastqueue.JoinableQueue(element_size=size, capacity=cap, redeliver=True) as red,
        ):
            loops = [
                (plain.put, plain.get, None),  # plain put+get
                (plain.put, plain.get, plain.task_done),  # plain put+get+task_done
                (red.put, red.get, red.task_done),  # redeliver put+get+task_done
            ]
            for put, get, done in loops:
                loop(put, get, done, msg, n)
            times: list[list[float]] = [[], [], []]
            for r in range(a.rounds):
                order = range(3) if r % 2 == 0 else range(2, -1, -1)
                for k in order:
                    times[k].append(loop(*loops[k], msg, n))
            ratio = statistics.median(b / p for p, b in zip(times[0], times[2], strict=True))
            ratio_d = statistics.median(b / p for p, b in zip(times[1], times[2], strict=True))
            med = [statistics.median(t) for t in times]
            print(
                f"{size:>8} B: plain put+get {med[0]:9.0f} ns, plain put+get+task_done "
                f"{med[1]:9.0f} ns, redeliver put+get+task_done {med[2]:9.0f} ns; "
                f"redeliver/plain {ratio:.3f}, redeliver/plain+task_done {ratio_d:.3f}"
            )


if __name__ == "__main__":
    main()
