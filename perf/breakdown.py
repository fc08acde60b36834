"""Where does one fastqueue put+get spend its time? Peel the layers off, one at a time.

    python perf/breakdown.py [--size 8] [--repeat 15]

Each line is the median over ``--repeat`` timed runs of one put+get (same process, capacity 8),
measured in this one process, back to back, so the differences between lines are the cost of
each layer:

  Queue.put + Queue.get     the public API
  Handle.put + Handle.get   fastqueue._ffi.Handle, i.e. without Queue's argument checks
  fq_put + fq_get (ctypes)  the two library calls with arguments prepared once, plus the copy
                            of the received bytes into a new bytes object
  same, no copy out         the two library calls alone
  ctypes floor              two calls of fq_noop (the same argument types as fq_put)
  ... without argtypes      fq_put + fq_get / 2 x fq_noop on a second CDLL of the same library
                            with argtypes left unset and every argument a prebuilt ctypes object
                            (c_void_p handle, c_uint64 sizes, c_int64 timeout, byref length):
                            what the calls cost without ctypes' per-argument from_param work
  zeroq put+get             the reference project (PyO3), for scale

This is a diagnostic for the developers, not part of the side-by-side suite: it reaches into
fastqueue's private ``_ffi`` layer and will need updating when that changes.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
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
    q = fastqueue.Queue(adapters.unique_name("bd"), element_size=size, capacity=8)
    zq = None
    try:
        h = q._h
        slice_ns = 50_000_000
        raw_put = functools.partial(_ffi._fq_put, h._ptr)
        raw_get = functools.partial(_ffi._fq_get, h._ptr)
        noop = functools.partial(_ffi._fq_noop, h._ptr)
        buf = ctypes.create_string_buffer(max(size, 1))
        length = ctypes.c_uint64()
        length_ref = ctypes.byref(length)
        n = len(p)

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
                put(p, n, slice_ns)
                r = get(slice_ns)
            dt = time.perf_counter() - t0
            assert r in (p, (0, p))  # Handle.get's return shape has changed over time
            return dt

        def raw_copy(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                raw_put(p, n, slice_ns)
                raw_get(buf, size, length, slice_ns)
                r = buf[: length.value]
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def raw_copy_byref(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                raw_put(p, n, slice_ns)
                raw_get(buf, size, length_ref, slice_ns)
                r = buf[: length.value]
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        address = ctypes.addressof(buf)

        def raw_copy_address(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                raw_put(p, n, slice_ns)
                raw_get(address, size, length_ref, slice_ns)
                r = buf[: length.value]
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def raw_nocopy(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                raw_put(p, n, slice_ns)
                raw_get(address, size, length_ref, slice_ns)
            dt = time.perf_counter() - t0
            assert buf[: length.value] == p
            return dt

        def floor(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                noop(p, n, slice_ns)
                noop(p, n, slice_ns)
            return time.perf_counter() - t0

        def copy_only(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                buf[:size]  # the slice is the copy being timed
            return time.perf_counter() - t0

        lean = ctypes.CDLL(_ffi.library_path())  # own function objects: _ffi's stay untouched
        l_put, l_get, l_noop = lean.fq_put, lean.fq_get, lean.fq_noop
        for f in (l_put, l_get, l_noop):
            f.restype = ctypes.c_int32  # argtypes stay None: no per-argument conversion
        vp = ctypes.c_void_p(h._ptr.value if hasattr(h._ptr, "value") else h._ptr)
        c_n, c_cap, c_t = ctypes.c_uint64(n), ctypes.c_uint64(size), ctypes.c_int64(slice_ns)

        def raw_lean(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                l_put(vp, p, c_n, c_t)
                l_get(vp, buf, c_cap, length_ref, c_t)
                r = buf[: length.value]
            dt = time.perf_counter() - t0
            assert r == p
            return dt

        def floor_lean(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                l_noop(vp, p, c_n, c_t)
                l_noop(vp, p, c_n, c_t)
            return time.perf_counter() - t0

        rows = [
            ("Queue.put + Queue.get", public),
            ("Handle.put + Handle.get", handle),
            ("fq_put + fq_get + copy out (ctypes)", raw_copy),
            ("  same, length passed as byref()", raw_copy_byref),
            ("  same, buffer as address, byref()", raw_copy_address),
            ("fq_put + fq_get, no copy out", raw_nocopy),
            ("ctypes floor: 2 x fq_noop", floor),
            ("copy out alone: buf[:n] -> bytes", copy_only),
            ("fq_put + fq_get + copy out, no argtypes", raw_lean),
            ("ctypes floor, no argtypes", floor_lean),
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
        results = []
        for _ in range(2):  # interleave twice; keep the lower median of each line
            for i, (label, body) in enumerate(rows):
                t = measure(body, a.repeat)
                if len(results) <= i:
                    results.append([label, t])
                else:
                    results[i][1] = min(results[i][1], t)
        print(f"one put+get of {size} B, median of {a.repeat} runs (lower of two passes):")
        for label, t in results:
            print(f"  {label:40s} {t * 1e9:10.0f} ns")
    finally:
        if zq is not None:
            zq.close()
        q.close()


if __name__ == "__main__":
    main()
