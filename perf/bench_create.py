"""How long creating a big queue takes, and what the ways of reserving its pages cost.

Creation reserves every page of the segment up front, so that a full /dev/shm fails at creation
instead of with SIGBUS on first touch. This script times, for each size (default 1 GiB and
8 GiB), one segment at a time, each made and removed before the next (so that no two big
segments are alive at once):

fastqueue       ``fastqueue.Queue(...)`` creation as shipped (what the others are compared to)
fallocate       an unnamed /dev/shm file (O_TMPFILE) reserved by ``posix_fallocate``: the
                kernel allocates and zeroes every page, no mapping needed
populate_write  the same file sized by ``ftruncate``, mapped, then ``madvise(MADV_POPULATE_WRITE)``
                (Linux >= 5.14): allocates and zeroes every page and also builds the page tables
touch           ``ftruncate`` + ``mmap`` + one write per 4 KiB page (what a first use would do)
sparse          ``ftruncate`` only: reserves nothing (the reference project's way; a later touch
                can SIGBUS when /dev/shm fills up). A floor, not an option.

``--huge`` runs every method again on a tmpfs mounted with ``huge=always`` over /dev/shm in a
private mount namespace (needs root and util-linux's ``unshare``): /dev/shm is normally mounted
without huge pages (``huge=never``), and a process cannot change that for a shared mount; this
shows what an administrator gains by mounting it with ``huge=always`` (or ``within_size``):
``posix_fallocate`` then reserves 2 MiB pages, with no change to fastqueue.

Times are medians of ``--repeat`` runs (default 3), printed with their ratio to the shipped
``fastqueue`` time. The machine is usually shared: read the ratios, not the absolute figures.

    python perf/bench_create.py --sizes 1G,8G [--huge]
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

MADV_POPULATE_WRITE = 23  # linux/mman.h (5.14)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def _tmpfile(directory: str) -> int:
    return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)


def m_fallocate(directory: str, size: int) -> None:
    fd = _tmpfile(directory)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def m_populate_write(directory: str, size: int) -> None:
    fd = _tmpfile(directory)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as m:
            addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
            try:
                if _libc.madvise(addr, size, MADV_POPULATE_WRITE) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"madvise(MADV_POPULATE_WRITE): {os.strerror(err)}")
            finally:
                del addr
    finally:
        os.close(fd)


def m_touch(directory: str, size: int) -> None:
    fd = _tmpfile(directory)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as m:
            for off in range(0, size, 4096):
                m[off] = 0
    finally:
        os.close(fd)


def m_sparse(directory: str, size: int) -> None:
    fd = _tmpfile(directory)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def m_fastqueue(directory: str, size: int) -> None:
    import fastqueue

    element = 1 << 20
    q = fastqueue.Queue(element_size=element, capacity=max(1, size // element))
    q.close()  # the creating handle unlinks the name


def timed(fn: Callable[[str, int], None], directory: str, size: int) -> float:
    start = time.perf_counter()
    fn(directory, size)
    return time.perf_counter() - start


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def run(sizes: list[int], methods: list[str], directory: str, repeat: int) -> None:
    table = {
        "fastqueue": m_fastqueue,
        "fallocate": m_fallocate,
        "populate_write": m_populate_write,
        "touch": m_touch,
        "sparse": m_sparse,
    }
    print(f"directory {directory}, median of {repeat}")
    for size in sizes:
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(repeat):  # interleaved, so that drifts of a shared machine hit all alike
            for m in methods:
                try:
                    times[m].append(timed(table[m], directory, size))
                except OSError as exc:
                    print(f"  {m}: {exc}")
        ref = statistics.median(times[methods[0]]) if times[methods[0]] else float("nan")
        print(f"{size / (1 << 30):g} GiB:")
        for m in methods:
            if not times[m]:
                continue
            t = statistics.median(times[m])
            print(f"  {m:15} {t * 1000:9.1f} ms   x{t / ref:.2f} of {methods[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1G,8G")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--huge", action="store_true", help="also on a huge=always tmpfs")
    parser.add_argument("--dir", default="/dev/shm", help=argparse.SUPPRESS)
    parser.add_argument("--methods", default="fastqueue,fallocate,populate_write,touch,sparse")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    if args.dir != "/dev/shm":
        methods = [m for m in methods if m != "fastqueue"]  # fastqueue always uses /dev/shm
    with open("/proc/mounts", encoding="utf-8") as f:
        shm = [line for line in f if " /dev/shm " in line]
    print("mount:", shm[-1].strip() if shm else "no /dev/shm mount")
    with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled", encoding="utf-8") as f:
        print("shmem_enabled:", f.read().strip())
    run(sizes, methods, args.dir, args.repeat)
    if args.huge:
        if shutil.which("unshare") is None:
            print("--huge: unshare (util-linux) not found")
            return 1
        # The stand-in tmpfs is mounted over /dev/shm itself, in the namespace only, so that
        # fastqueue's own creation is measured on it too.
        total = max(sizes) + (64 << 20)
        inner = (
            f"mount -t tmpfs -o size={total},huge=always fq-huge /dev/shm && "
            f"exec {sys.executable} {os.path.abspath(__file__)} "
            f"--sizes {args.sizes} --repeat {args.repeat} --methods {','.join(methods)}"
        )
        print("\nhuge=always tmpfs over /dev/shm (private mount namespace):")
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner], check=False
        )
        return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
