"""Instructions per same-process put+get (valgrind's cachegrind), A against B: a measure that a
busy, shared machine does not disturb, unlike the timings of ab_putget.py.

    python perf/ir_putget.py A_PY_DIR A_LIBRARY B_PY_DIR B_LIBRARY [--size 8] [-n 20000]

Each checkout runs the loop of each form under ``valgrind --tool=cachegrind --cache-sim=no``
with n iterations and with none; the difference over n is printed per form, with B/A.
Instructions are not time (IPC differs), but they show where a change adds or removes work.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

CHILD = r"""
import sys
import fastqueue
form, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
msg = b"x" * size
with fastqueue.Queue(element_size=max(size, 1), capacity=8) as q:
    put, get, get_nowait, put_nowait = q.put, q.get, q.get_nowait, q.put_nowait
    for _ in range(200):
        put(msg); get()
    if form == "put+get":
        for _ in range(n):
            put(msg); get()
    elif form == "timed put+get":
        for _ in range(n):
            put(msg, timeout=1.0); get(timeout=1.0)
    elif form == "put+get_nowait":
        for _ in range(n):
            put(msg); get_nowait()
    else:
        for _ in range(n):
            put_nowait(msg); get_nowait()
"""

FORMS = ("put+get", "timed put+get", "put+get_nowait", "put_nowait+get_nowait")


def instructions(py_dir: str, lib: str, form: str, size: int, n: int) -> int:
    env = {**os.environ, "PYTHONPATH": py_dir, "FASTQUEUE_LIBRARY": lib}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            os.path.realpath(sys.executable),  # (not a shim script: valgrind follows no exec)
            "-c",
            CHILD,
            form,
            str(size),
            str(n),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    m = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if m is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(m.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a_py")
    ap.add_argument("a_lib")
    ap.add_argument("b_py")
    ap.add_argument("b_lib")
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("-n", type=int, default=20_000)
    args = ap.parse_args()
    print(f"{args.size} B, instructions per iteration (n={args.n}):")
    for form in FORMS:
        per = []
        for py, lib in ((args.a_py, args.a_lib), (args.b_py, args.b_lib)):
            full = instructions(py, lib, form, args.size, args.n)
            base = instructions(py, lib, form, args.size, 0)
            per.append((full - base) / args.n)
        a, b = per
        print(f"  {form:21} A {a:7.0f}  B {b:7.0f}  B/A {b / a:5.3f}")


if __name__ == "__main__":
    main()
