"""A pool of workers fed by a queue of Python objects, on one host or many: only the URLs change.

One host, shared memory (the producer starts the workers itself)::

    python worker_pool.py all shm:jobs shm:results

Two hosts, through a Redis server (host A runs the producer, host B the workers)::

    A$ python worker_pool.py produce redis://A:6379/0/jobs redis://A:6379/0/results
    B$ python worker_pool.py work    redis://A:6379/0/jobs redis://A:6379/0/results

The code below never names a transport: ``fastqueue.from_url`` picks it from the URL.
"""

from __future__ import annotations

import multiprocessing
import sys

import fastqueue

JOBS = 40
WORKERS = 3


def work(jobs_url: str, results_url: str) -> None:
    """A worker: squares numbers until the producer shuts the jobs queue down."""
    try:
        jobs = fastqueue.from_url(jobs_url, objects=True, joinable=True, create=False)
        results = fastqueue.from_url(results_url, objects=True, create=False)
    except fastqueue.QueueNotFoundError:  # not made yet, or the work is over and it is gone
        print(f"worker: no queue at {jobs_url} (start the producer first)", file=sys.stderr)
        return
    while True:
        try:
            job = jobs.get()
        except fastqueue.ShutDown:  # drained, and the producer said there is no more
            break
        results.put({"n": job["n"], "square": job["n"] ** 2})
        jobs.task_done()
    jobs.close()
    results.close()


def produce(jobs_url: str, results_url: str, local_workers: int = 0) -> None:
    """The producer: makes both queues, hands out the jobs, waits for them, prints the sum."""
    jobs = fastqueue.from_url(jobs_url, objects=True, joinable=True, element_size=4096, capacity=16)
    results = fastqueue.from_url(results_url, objects=True, element_size=4096, capacity=JOBS)
    pool = [
        multiprocessing.Process(target=work, args=(jobs_url, results_url))
        for _ in range(local_workers)
    ]
    for p in pool:
        p.start()
    for n in range(JOBS):
        jobs.put({"n": n})  # waits while 16 jobs are queued
    jobs.join()  # every job done, by whichever worker on whichever host
    jobs.shutdown()  # the workers' next get raises ShutDown
    total = sum(results.get()["square"] for _ in range(JOBS))
    print(f"{JOBS} jobs done, sum of squares {total}")
    for p in pool:
        p.join()
    jobs.unlink()  # remove the queues (a Redis stream stays until then)
    results.unlink()
    jobs.close()
    results.close()


if __name__ == "__main__":
    role, jobs_url, results_url = sys.argv[1:4]
    if role == "work":
        work(jobs_url, results_url)
    else:
        produce(jobs_url, results_url, local_workers=WORKERS if role == "all" else 0)
