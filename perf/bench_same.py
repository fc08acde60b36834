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
the library's exported no-op ``fq_noop(q, data, len, timeout)``, made exactly as fastqueue makes
its first (non-waiting) fq_put call: through the GIL-keeping loading of the library, with the
same prepared arguments -- the cost of crossing ctypes twice, below which fastqueue's Python
layer cannot go.

``--scenario`` picks other same-process scenarios (only queues with the API take part, see
adapters.SCENARIO_QUEUES):

batch     per message, batches of 64: ``put_many(64 messages); get_many(64)`` twice per
          iteration, with two distinct batches (inner_loops=128: the time is per message);
          the last two batches received are compared in full. Capacity 256.
batch_packed
          the same, each batch put as one packed buffer: ``put_many(b"".join(batch),
          itemsize=size); get_many(64)`` twice per iteration (fastqueue only). The two packed
          buffers are built before the timed loop, as the lists above are; the last two
          batches received (lists of bytes) are compared in full with the messages sent.
batch_records
          the same, packed both ways (fixed-size records): ``put_many(packed,
          itemsize=size); get_many(64, itemsize=size)`` twice per iteration (fastqueue only);
          the last two batches received (one bytes object each) are compared in full.
zerocopy  put+get through the zero-copy API: ``zc_put(a); zc_get(); zc_put(b); zc_get()``
          (fastqueue: put_slot with one copy of the payload into the slot, get_slot reading the
          first and last byte in place; iceoryx2: loan + memmove + send, receive read in place).
          Every result's first/last byte and length are checked; after the timed loop one more
          round trip is compared in full. ``--queue memcpy`` times the yardstick: one copy of
          the payload per put+get, into 8 buffers in turn (capacity 8: the memory a ring of 8
          slots writes); ``--queue memcpy-1`` into one buffer over and over (cache-warm).
get_into  ``put(a); get_into(buf); put(b); get_into(buf)`` with one reused bytearray; each result
          is compared in full after its get_into (the compare is timed too, and is cheap next to
          the copies at large sizes; at small sizes see the get_into note in the table).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any, Callable

import pyperf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import adapters

CAPACITY = 8
#: Capacity of the queues of the batch scenarios (room for two batches of BATCH).
BATCH_CAPACITY = 256
BATCH = 64
#: Scenarios whose queues have capacity BATCH_CAPACITY.
BATCH_SCENARIOS = ("batch", "batch_packed", "batch_records")
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


def _setup(kind: str, size: int, scenario: str = "putget") -> Any:
    key = (kind, size, scenario)
    st = _state.get(key)
    if st is None:
        if kind == "ctypes-floor":
            st = _Floor(size)
        elif kind in ("memcpy", "memcpy-1"):
            st = _Memcpy(size, CAPACITY if kind == "memcpy" else 1)
        else:
            capacity = BATCH_CAPACITY if scenario in BATCH_SCENARIOS else CAPACITY
            ep = adapters.make(kind, size, capacity)
            atexit.register(ep.close)
            if scenario == "putget":
                _fifo_check(ep, size)
            st = ep
        st.payloads = adapters.payloads(size)
        _state[key] = st
    return st


class _Memcpy:
    """The zero-copy scenario's yardstick: one copy of the payload per put+get, into `count`
    preallocated buffers in turn (8: the memory a ring of 8 slots writes to; 1: cache-warm)."""

    def __init__(self, size: int, count: int) -> None:
        # memoryviews: assigning bytes to a bytearray slice copies twice (via a new bytearray)
        self.buffers = [memoryview(bytearray(size)) for _ in range(count)]


class _Floor:
    """Two ctypes calls of fq_noop per put+get, made exactly as fastqueue makes its fq_put call."""

    def __init__(self, size: int) -> None:
        import fastqueue

        self.q = fastqueue.Queue(
            adapters.unique_name("floor"), element_size=max(size, 1), capacity=CAPACITY
        )
        atexit.register(self._close)
        self.noop, self.handle, self.length, self.timeout = _noop_call(self.q)

    def _close(self) -> None:
        try:
            self.q.unlink()
        finally:
            self.q.close()


def _noop_call(q: Any) -> tuple[Any, Any, Callable[[int], Any], Any]:
    """(fq_noop, the handle argument, length -> length argument, timeout argument): the floor
    calls ``noop(handle, data, length(len(data)), timeout)``.

    fastqueue's put makes its first attempt as ``_ffi._put_now(h._arg, data,
    _ffi._u64_args[n], _ffi._NOW)``: the GIL-keeping loading of the library, arguments prepared
    ahead. The floor calls ``_ffi._noop_now`` (fq_noop: fq_put's parameter types) the same way.
    Falls back to the declared-argtypes call of older versions if the package layout changes.
    """
    import ctypes

    from fastqueue import _ffi

    h = q._h
    noop = getattr(_ffi, "_noop_now", None)
    if noop is not None:
        return noop, h._arg, _ffi._u64_args.__getitem__, _ffi._NOW
    func = getattr(_ffi, "_fq_noop", None)
    if func is None:
        lib = getattr(_ffi, "_lib", None) or ctypes.CDLL(os.environ["FASTQUEUE_LIBRARY"])
        func = lib.fq_noop
        func.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64]
        func.restype = ctypes.c_int32
    return func, h._ptr, int, 0


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
    noop, h, la, lb, t = st.noop, st.handle, st.length(len(a)), st.length(len(b)), st.timeout
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        noop(h, a, la, t)
        noop(h, a, la, t)
        noop(h, b, lb, t)
        noop(h, b, lb, t)
    dt = time.perf_counter() - t0
    if noop(h, a, la, t) != 0:
        raise AssertionError("fq_noop did not return FQ_OK")
    return dt


def _batches(size: int) -> tuple[list[bytes], list[bytes]]:
    """Two distinct batches of BATCH messages of `size` bytes (each message distinct too)."""
    a, b = adapters.payloads(size)
    if size == 0:
        return [a] * BATCH, [b] * BATCH
    mark = [bytes([i % 251]) for i in range(BATCH)]
    return [m + a[1:] for m in mark], [m + b[1:] for m in mark[::-1]]


def time_batch(loops: int, kind: str, size: int) -> float:
    ep = _setup(kind, size, "batch")
    if ep.put_many is None or ep.get_many is None:
        raise RuntimeError(f"{kind} has no batch API")
    ba, bb = _batches(size)
    put_many, get_many = ep.put_many, ep.get_many
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        put_many(ba)
        ra = get_many(BATCH)
        put_many(bb)
        rb = get_many(BATCH)
    dt = time.perf_counter() - t0
    if ra != ba or rb != bb:
        raise AssertionError(
            f"{kind} returned a wrong batch at {size} B: {len(ra)}, {len(rb)} of {BATCH} messages"
        )
    return dt


def time_batch_packed(loops: int, kind: str, size: int) -> float:
    ep = _setup(kind, size, "batch_packed")
    if ep.put_packed is None or ep.get_many is None:
        raise RuntimeError(f"{kind} has no packed batch put")
    if size < 1:
        raise ValueError("batch_packed needs messages of at least 1 byte (itemsize >= 1)")
    ba, bb = _batches(size)
    pa, pb = b"".join(ba), b"".join(bb)
    put_packed, get_many = ep.put_packed, ep.get_many
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        put_packed(pa, itemsize=size)
        ra = get_many(BATCH)
        put_packed(pb, itemsize=size)
        rb = get_many(BATCH)
    dt = time.perf_counter() - t0
    if ra != ba or rb != bb:
        raise AssertionError(
            f"{kind} returned a wrong packed batch at {size} B: "
            f"{len(ra)}, {len(rb)} of {BATCH} messages"
        )
    return dt


def time_batch_records(loops: int, kind: str, size: int) -> float:
    ep = _setup(kind, size, "batch_records")
    if ep.put_packed is None or ep.get_packed is None:
        raise RuntimeError(f"{kind} has no packed batch put and get")
    if size < 1:
        raise ValueError("batch_records needs messages of at least 1 byte (itemsize >= 1)")
    ba, bb = _batches(size)
    pa, pb = b"".join(ba), b"".join(bb)
    put_packed, get_packed = ep.put_packed, ep.get_packed
    rng = range(loops)
    t0 = time.perf_counter()
    for _ in rng:
        put_packed(pa, itemsize=size)
        ra = get_packed(BATCH, itemsize=size)
        put_packed(pb, itemsize=size)
        rb = get_packed(BATCH, itemsize=size)
    dt = time.perf_counter() - t0
    if ra != pa or rb != pb:
        raise AssertionError(
            f"{kind} returned a wrong packed batch at {size} B: {len(ra)}, {len(rb)} bytes of "
            f"{len(pa)}"
        )
    return dt


def time_zerocopy(loops: int, kind: str, size: int) -> float:
    st = _setup(kind, size, "zerocopy")
    a, b = st.payloads
    if isinstance(st, _Memcpy):
        bufs = st.buffers
        k = len(bufs)
        t0 = time.perf_counter()
        for i in range(loops):
            bufs[(2 * i) % k][:] = a
            bufs[(2 * i + 1) % k][:] = b
        dt = time.perf_counter() - t0
        if bufs[(2 * loops - 1) % k] != b:
            raise AssertionError("memcpy copied wrong")
        return dt
    if st.zc_put is None or st.zc_get is None or st.zc_check is None:
        raise RuntimeError(f"{kind} has no zero-copy API")
    put, get = st.zc_put, st.zc_get
    want_a = (a[0], a[-1], size) if size else (-1, -1, 0)
    want_b = (b[0], b[-1], size) if size else (-1, -1, 0)
    rng = range(loops)
    bad = 0
    t0 = time.perf_counter()
    for _ in rng:
        put(a)
        bad += get() != want_a
        put(b)
        bad += get() != want_b
    dt = time.perf_counter() - t0
    put(a)
    if bad or not st.zc_check(a):
        raise AssertionError(f"{kind} returned a wrong payload through zero-copy at {size} B")
    return dt


def time_get_into(loops: int, kind: str, size: int) -> float:
    ep = _setup(kind, size, "get_into")
    if ep.get_into is None:
        raise RuntimeError(f"{kind} has no get_into")
    a, b = ep.payloads
    buf = bytearray(size)
    put, get_into = ep.put, ep.get_into
    rng = range(loops)
    bad = 0
    if size <= 64 << 10:
        # Small: every message compared whole (as cheap as any partial check).
        t0 = time.perf_counter()
        for _ in rng:
            put(a)
            bad += get_into(buf) != size or buf != a
            put(b)
            bad += get_into(buf) != size or buf != b
        dt = time.perf_counter() - t0
    else:
        # Large: checked as the zero-copy scenario is, length and first and last byte per
        # message (a and b differ in both, so a stale buffer fails), the whole buffer after the
        # loop; a full compare per message would time a memcmp that put+get does not pay for.
        want_a = (size, a[:1], a[-1:])
        want_b = (size, b[:1], b[-1:])
        t0 = time.perf_counter()
        for _ in rng:
            put(a)
            bad += (get_into(buf), buf[:1], buf[-1:]) != want_a
            put(b)
            bad += (get_into(buf), buf[:1], buf[-1:]) != want_b
        dt = time.perf_counter() - t0
    if bad or buf != b:
        raise AssertionError(f"{kind}.get_into received a wrong payload at {size} B")
    return dt


#: scenario -> (timing function, inner loops: operations per iteration)
SCENARIOS = {
    "putget": (time_put_get, 2),
    "batch": (time_batch, 2 * BATCH),
    "batch_packed": (time_batch_packed, 2 * BATCH),
    "batch_records": (time_batch_records, 2 * BATCH),
    "zerocopy": (time_zerocopy, 2),
    "get_into": (time_get_into, 2),
}


def _add_cmdline_args(cmd: list[str], args: Any) -> None:
    cmd.extend(["--queue", args.queue, "--sizes", args.sizes, "--scenario", args.scenario])


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=_add_cmdline_args)
    runner.argparser.add_argument("--queue", required=True)
    runner.argparser.add_argument("--sizes", required=True, help="comma-separated byte sizes")
    runner.argparser.add_argument("--scenario", default="putget", choices=sorted(SCENARIOS))
    args = runner.parse_args()
    batchy = args.scenario in BATCH_SCENARIOS
    runner.metadata["capacity"] = str(BATCH_CAPACITY if batchy else CAPACITY)
    if args.queue == "ctypes-floor":
        func, inner = time_floor, 2
    else:
        func, inner = SCENARIOS[args.scenario]
    prefix = "same" if args.scenario == "putget" else args.scenario
    for size in (int(s) for s in args.sizes.split(",")):
        runner.bench_time_func(
            f"{prefix}/{args.queue}/{size}",
            func,
            args.queue,
            size,
            inner_loops=inner,
            metadata={"queue": args.queue, "size": str(size), "scenario": args.scenario},
        )


if __name__ == "__main__":
    main()
