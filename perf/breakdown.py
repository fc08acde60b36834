"""Where does one fastqueue put+get spend its time? Peel the layers off, one at a time.

    python perf/breakdown.py [--size 8] [--repeat 15]

Each line is the median over ``--repeat`` timed runs of one put+get (same process, capacity 8),
measured in this one process, back to back (two interleaved passes, the lower median kept), so
the differences between lines are the cost of each layer:

  Queue.put + Queue.get        the public API (first attempts never wait)
  Handle.put + Handle.get      fastqueue._ffi.Handle with timeout 0: without Queue's checks
  fq_put + fq_get, copy out    the two library calls as the Handle makes them -- the GIL-keeping
                               (PyDLL) loading, prepared arguments -- plus the copy of the
                               message into a new bytes object (here always through a receive
                               buffer of the message's size)
  same, no copy out            the two library calls alone
  ctypes floor                 2 x fq_noop made the same way: below this no ctypes binding goes
  floor, GIL released          2 x fq_noop through the CDLL loading (what a call that may wait
                               costs: the GIL is released and taken back around it)
  floor, argtypes declared     2 x fq_noop through _ffi's declared function with plain ints: the
                               per-argument from_param conversions fastqueue's hot path avoids
  zeroq put+get                the reference project (PyO3), for scale
  (size > 64 KiB)              also the in-place get (fq_read_begin, one copy, fq_read_end)
                               against fq_get into a receive buffer and a copy out of it

This is a diagnostic for the developers, not part of the side-by-side suite: it reaches into
fastqueue's private ``_ffi`` layer and will need updating when that changes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import adapters
import run


def measure(body: Callable[[int], float], repeat: int, target: float = 0.05) -> float:
    """Median seconds per iteration of body(loops) -> elapsed, loops calibrated to ~target s."""
    loops = 1
    while body(loops) < target / 4 and loops < 1 << 24:
        loops *= 2
    return statistics.median(body(loops) / loops for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    run.setup_env()
    if os.environ.get("PYTHONPATH"):
        for p in reversed(os.environ["PYTHONPATH"].split(os.pathsep)):
            sys.path.insert(0, p)
    import fastqueue
    from fastqueue import _ffi

    size = a.size
    p, _ = adapters.payloads(size)
    q = fastqueue.Queue(adapters.unique_name("bd"), element_size=max(size, 1), capacity=8)
    zq = None
    try:
        h = q._h
        assert h is not None
        arg, n = h._arg, len(p)
        n_arg, now = _ffi._u64_args[n], _ffi._NOW
        put_now, get_now, noop_now = _ffi._put_now, _ffi._get_now, _ffi._noop_now
        # The same fq_noop through the GIL-releasing CDLL loading, prepared arguments.
        noop_wait = _ffi._lib["fq_noop"]
        noop_wait.restype = ctypes.c_int32
        noop_declared = _ffi._fq_noop
        buf = ctypes.create_string_buffer(max(size, 1))
        length = ctypes.c_uint64()
        buf_arg, len_arg, cap_arg = ctypes.byref(buf), ctypes.byref(length), _ffi._arg_u64(size)

        def public(loops: int) -> float:
            put, get = q.put, q.get
            t0 = time.perf_counter()
            for _ in range(loops):
                put(p)
                r = get()
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def handle(loops: int) -> float:
            put, get = h.put, h.get
            t0 = time.perf_counter()
            for _ in range(loops):
                put(p, n, 0)
                r = get(0)
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def raw_copy(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                put_now(arg, p, n_arg, now)
                get_now(arg, buf_arg, cap_arg, len_arg, now)
                r = buf[: length.value]
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def raw_nocopy(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                put_now(arg, p, n_arg, now)
                get_now(arg, buf_arg, cap_arg, len_arg, now)
            dt = time.perf_counter() - t0
            assert buf[: length.value] == p
            return dt

        def floor(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                noop_now(arg, p, n_arg, now)
                noop_now(arg, p, n_arg, now)
            return time.perf_counter() - t0

        def floor_gil(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                noop_wait(arg, p, n_arg, now)
                noop_wait(arg, p, n_arg, now)
            return time.perf_counter() - t0

        ptr = h._ptr

        def floor_declared(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                noop_declared(ptr, p, n, 0)
                noop_declared(ptr, p, n, 0)
            return time.perf_counter() - t0

        rows = [
            ("Queue.put + Queue.get", public),
            ("Handle.put + Handle.get", handle),
            ("fq_put + fq_get + copy out", raw_copy),
            ("fq_put + fq_get, no copy out", raw_nocopy),
            ("ctypes floor: 2 x fq_noop", floor),
            ("  floor, GIL released (CDLL)", floor_gil),
            ("  floor, argtypes declared", floor_declared),
        ]
        if size > _ffi.GET_COPY_LIMIT:
            scratch = h._new_scratch()

            def in_place(loops: int) -> float:
                t0 = time.perf_counter()
                for _ in range(loops):
                    put_now(arg, p, n_arg, now)
                    r = h._get_in_place(scratch)
                dt = time.perf_counter() - t0
                assert r == p
                return dt

            rows += [
                ("put + in-place get (read_begin/end)", in_place),
                # The same loop as "fq_put + fq_get + copy out", next to the in-place get.
                ("put + fq_get into a buffer + copy", raw_copy),
            ]
        ok, _ = adapters.available("zeroq")
        if ok:
            zq = adapters.make("zeroq", size, 8)

            def zeroq_loop(loops: int) -> float:
                put, get = zq.put, zq.get
                t0 = time.perf_counter()
                for _ in range(loops):
                    put(p)
                    r = get()
                dt = time.perf_counter() - t0
                assert r == p
                return dt

            rows.append(("zeroq put+get (reference)", zeroq_loop))
        results: list[list[object]] = []
        for _ in range(2):  # interleave twice; keep the lower median of each line
            for i, (label, body) in enumerate(rows):
                t = measure(body, a.repeat)
                if len(results) <= i:
                    results.append([label, t])
                else:
                    results[i][1] = min(results[i][1], t)  # type: ignore[type-var]
        print(f"one put+get of {size} B, median of {a.repeat} runs (lower of two passes):")
        for label, t in results:
            print(f"  {label:40s} {t * 1e9:10.0f} ns")  # type: ignore[operator]
    finally:
        if zq is not None:
            zq.close()
        q.close()


if __name__ == "__main__":
    main()
