"""A pool of workers that are SIGKILLed at random mid-task, and every task still completes.

The tasks travel on a ``redeliver=True`` queue: each ``get`` leases its task to the worker until
the worker's ``task_done()``. A worker killed before that gives its task back (the kernel drops
its liveness lock; the next get, or the supervisor's ``join``, notices within a fraction of a
second) and another worker gets it again. Results go to a plain queue, keyed by task, so that a
task done twice (its worker killed after sending the result, before ``task_done``) counts once:
delivery is at-least-once, and the effect of a task should be idempotent.

Run it: ``python examples/python/when_a_worker_dies.py`` (a few seconds).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time

import fastqueue

TASKS = 300
WORKERS = 4


def worker(tasks: fastqueue.JoinableObjectQueue, results: fastqueue.ObjectQueue) -> None:
    while True:
        n = tasks.get()
        if n is None:  # the supervisor's "stop"
            tasks.task_done()
            return
        time.sleep(random.uniform(0.001, 0.005))  # the work (may be cut short by SIGKILL)
        results.put((n, n * n))
        tasks.task_done()  # only now is the task acknowledged


def main() -> int:
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    tasks = fastqueue.JoinableObjectQueue(element_size=256, capacity=64, redeliver=True)
    results = fastqueue.ObjectQueue(element_size=256, capacity=4 * TASKS)
    pool = [ctx.Process(target=worker, args=(tasks, results)) for _ in range(WORKERS)]
    for p in pool:
        p.start()
    killed = 0
    rng = random.Random(os.getpid())
    next_task = 0
    while True:
        # Feed tasks while there is room; the queue's capacity is the producers' alone, leases
        # live outside it.
        while next_task < TASKS:
            try:
                tasks.put_nowait(next_task)
            except fastqueue.Full:
                break
            next_task += 1
        if next_task == TASKS and tasks.join(timeout=0.02):
            break
        # The chaos: now and then a worker is killed in the middle of whatever it does...
        if killed < 40 and rng.random() < 0.3:
            victim = rng.choice(pool)
            if victim.is_alive():
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                killed += 1
        # ... and the supervisor replaces the dead.
        for i, p in enumerate(pool):
            if not p.is_alive():
                p.join()
                pool[i] = ctx.Process(target=worker, args=(tasks, results))
                pool[i].start()
        time.sleep(0.005)
    done: dict[int, int] = {}
    while True:
        try:
            n, value = results.get_nowait()
        except fastqueue.Empty:
            break
        done[n] = value
    for _ in pool:
        tasks.put(None)
    assert tasks.join(timeout=60), "a worker did not stop"
    for p in pool:
        p.join()
    stats = tasks.stats()
    print(
        f"{TASKS} tasks, {killed} workers killed mid-task, {stats['redelivered']} tasks "
        f"delivered again, {len(done)} completed"
    )
    assert done == {n: n * n for n in range(TASKS)}, "a task never completed"
    assert stats["tasks_done"] == TASKS + WORKERS, "every task acknowledged exactly once"
    tasks.close()
    results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
