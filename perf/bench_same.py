"""Same-process put+get (the reference project's own benchmark, capacity 8), as a pyperf script.

One invocation benchmarks one queue at one or more payload sizes; perf/run.py calls it once per
(size, queue) so that a queue that fails cannot take the others down, and interleaves the queues
size by size so that slow drifts of a noisy machine hit all of them alike. pyperf's worker
processes, calibration of loops and warm-ups apply as usual::

    python perf/bench_same.py --queue zeroq --sizes 8,1024 -o /tmp/zq.json

Each timed iteration is ``put(a); get(); put(b); get()`` with the queue's own blocking put/get
(``inner_loops=2``, so the reported time is one put+get). ``a`` and ``b`` are distinct payloads
whose first and last bytes differ; after the timed loop the last two results are compared in full,
and before the first timed loop a FIFO check fills the queue with 8 distinct messages and drains
it. A queue that returns a stale buffer, a short message or the wrong order fails the run instead
of posting a fast time.

``--queue ctypes-floor`` times the same loop with each put and get replaced by one ctypes call of
the library's exported no-op ``fq_noop(q, data, len, timeout)`` -- the cost of crossing ctypes
twice, below which fastqueue's Python layer cannot go.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

import pyperf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import adapters

CAPACITY = 8
_state: dict[tuple[str, int], Any] = {}


def _fifo_check(ep: adapters.Endpoint, size: int) -> None:
    """Fill the queue with CAPACITY distinct messages, drain it, compare contents and order."""
    msgs = []
    for i in range(CAPACITY):
        a, _ = adapters.payloads(size)
        tag = bytes([i + 16])
        m = (tag + a[1:]) if size >= 2 else tag[:size]
        msgs.append(m)
    for m in msgs:
        ep.put(m)
    for i, m in enumerate(msgs):
        r = ep.get()
        if r != m:
            raise AssertionError(f"FIFO check failed at message {i}: got {len(r)} bytes")


def _setup(kind: str, size: int) -> Any:
    key = (kind, size)
    st = _state.get(key)
    if st is None:
        if kind == "ctypes-floor":
            st = _Floor(size)
        else:
            ep = adapters.make(kind, size, CAPACITY)
            atexit.register(ep.close)
            _fifo_check(ep, size)
            st = ep
        st.payloads = adapters.payloads(size)
        _state[key] = st
    return st


class _Floor:
    """Two ctypes calls of fq_noop per put+get, made exactly as fastqueue makes its fq_put call."""

    def __init__(self, size: int) -> None:
        import fastqueue

        self.q = fastqueue.Queue(
            adapters.unique_name("floor"), element_size=max(size, 1), capacity=CAPACITY
        )
        atexit.register(self._close)
        self.noop, _, self.timeout = _noop_call(self.q)

    def _close(self) -> None:
        try:
            self.q.unlink()
        finally:
            self.q.close()


def _noop_call(q: Any) -> tuple[Any, Any, int]:
    """(fq_noop bound to the queue's handle, 0, timeout) -- called as ``noop(data, len, timeout)``.

    fastqueue's put calls ``functools.partial(_ffi._fq_put, ptr)(data, len, timeout_ns)``; the
    floor calls ``functools.partial(_ffi._fq_noop, ptr)`` the same way, with the argument types
    _ffi declares for fq_noop (the same as fq_put's). Falls back to declaring fq_noop on the
    library _ffi loaded if the package layout changes.
    """
    import ctypes
    import functools

    from fastqueue import _ffi

    func = getattr(_ffi, "_fq_noop", None)
    if func is None:
        lib = getattr(_ffi, "_lib", None) or ctypes.CDLL(os.environ["FASTQUEUE_LIBRARY"])
        func = lib.fq_noop
        func.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64]
        func.restype = ctypes.c_int32
    ptr = q._h._ptr
    return functools.partial(func, ptr), None, 50_000_000


def time_put_get(loops: int, kind: str, size: int) -> float:
    ep = _setup(kind, size)
    a, b = ep.payloads
    put, get = ep.put, ep.get
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        put(a)
        ra = get()
        put(b)
        rb = get()
    dt = time.perf_counter() - t0
    if ra != a or rb != b:
        raise AssertionError(
            f"{kind} returned a wrong payload at {size} B: "
            f"lengths {len(ra)}, {len(rb)}, expected {size}"
        )
    return dt


def time_floor(loops: int, kind: str, size: int) -> float:
    st = _setup(kind, size)
    a, b = st.payloads
    noop, timeout = st.noop, st.timeout
    na, nb = len(a), len(b)
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        noop(a, na, timeout)
        noop(a, na, timeout)
        noop(b, nb, timeout)
        noop(b, nb, timeout)
    dt = time.perf_counter() - t0
    if noop(a, na, timeout) != 0:
        raise AssertionError("fq_noop did not return FQ_OK")
    return dt


def _add_cmdline_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--queue", args.queue, "--sizes", args.sizes])


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=_add_cmdline_args)
    runner.argparser.add_argument("--queue", required=True)
    runner.argparser.add_argument("--sizes", required=True, help="comma-separated byte sizes")
    args = runner.parse_args()
    runner.metadata["capacity"] = str(CAPACITY)
    func = time_floor if args.queue == "ctypes-floor" else time_put_get
    for size in (int(s) for s in args.sizes.split(",")):
        runner.bench_time_func(
            f"same/{args.queue}/{size}",
            func,
            args.queue,
            size,
            inner_loops=2,
            metadata={"queue": args.queue, "size": str(size)},
        )


if __name__ == "__main__":
    main()
