"""How long ``os.fork()`` takes in a process with many queue handles open, and the child's first
use of one of them (issue 23: 3.3 s with 1,024 handles when every handle was re-attached at fork).

Two shapes: 1,024 handles on one queue (its participant table full: a child can attach none),
and 1,024 queues with one handle each. For each, the median of ``--runs`` forks of: the time
from ``fork()`` to the child's first line of Python (the at-fork handlers run in between), and
the child's first ``put_nowait`` on one queue (which attaches a handle of its own, or raises
TooManyAttachedError when the table is full).

    python perf/fork_handles.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import time

import fastqueue


def fork_once(q: fastqueue.Queue) -> tuple[float, float, str]:
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        t1 = time.perf_counter()
        try:
            q.put_nowait(b"x")
            what = "attached"
        except fastqueue.TooManyAttachedError:
            what = "TooManyAttachedError"
        except fastqueue.Full:
            what = "attached"
        t2 = time.perf_counter()
        os.write(w, struct.pack("dd", t1 - t0, t2 - t1) + what.encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    os.waitpid(pid, 0)
    at_fork, first_use = struct.unpack("dd", data[:16])
    return at_fork, first_use, data[16:].decode()


def measure(label: str, queues: list[fastqueue.Queue], target: fastqueue.Queue, runs: int) -> None:
    results = [fork_once(target) for _ in range(runs)]
    fork_s = statistics.median(r[0] for r in results)
    use_s = statistics.median(r[1] for r in results)
    print(
        f"{label}: {len(queues)} handles open: fork -> child running {fork_s * 1e3:9.2f} ms, "
        f"child's first put {use_s * 1e3:9.2f} ms ({results[0][2]})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--handles", type=int, default=1024)
    args = parser.parse_args()
    prefix = f"fq-forkbench-{os.getpid()}-"
    first = fastqueue.Queue(prefix + "one", element_size=8, capacity=4)
    try:
        handles = [first] + [
            fastqueue.Queue(prefix + "one", create=False) for _ in range(args.handles - 1)
        ]
        measure("one queue, table full", handles, first, args.runs)
        for h in handles[1:]:
            h.close()
        many = [
            fastqueue.Queue(f"{prefix}{i}", element_size=8, capacity=4) for i in range(args.handles)
        ]
        try:
            measure("one handle per queue", many, many[0], args.runs)
        finally:
            for q in many:
                q.close()
    finally:
        first.close()


if __name__ == "__main__":
    main()
