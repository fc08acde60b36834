"""``fastqueue.unlink`` (and ``fastqueue rm``/``gc``) removes a name only if it leads to a
fastqueue segment, with no window between the check and the removal (issue 23).

An attacker who owns two files in /dev/shm, a queue and another file, swaps their names in a loop
(``renameat2(RENAME_EXCHANGE)``, atomic) while the victim unlinks one name. Before, the check
(open, read the magic, compare the inode) and ``shm_unlink`` were two steps, and under the loop
the other file was removed most of the time. Now the name is first moved into a private
directory, the file that was moved is checked there (where nobody else can reach it), and it is
removed, or put back if it is not a queue: the other file is never removed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastqueue
from _procs import checkout_env
from conftest import remove_names, unique_prefix

SHM = Path("/dev/shm")
FOREIGN = b"not a queue: another program's data " * 100
ROUNDS = 4000

#: Swaps /dev/shm/<a> and /dev/shm/<b> as fast as it can until killed.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (b"/dev/shm/" + os.fsencode(n) for n in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE, SYS_renameat2 = -100, 2, int(sys.argv[3])
print("swapping", flush=True)
while True:
    libc.syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


def sys_renameat2() -> int:
    machine = os.uname().machine
    numbers = {"x86_64": 316, "aarch64": 276}
    if machine not in numbers:
        pytest.skip(f"renameat2's system call number on {machine} is not known to this test")
    return numbers[machine]


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    prefix = unique_prefix("unlink-race")
    a, b = f"{prefix}name", f"{prefix}other"
    yield a, b
    remove_names([a, b])
    for leftover in SHM.glob(f"{prefix}*"):
        leftover.unlink()


def contents(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@pytest.mark.timeout(300)
def test_unlink_under_a_swap_loop_never_removes_the_other_file(names: tuple[str, str]) -> None:
    a, b = names
    with fastqueue.Queue(element_size=64, capacity=4) as q:
        queue_image = (SHM / q.name).read_bytes()
    paths = [SHM / a, SHM / b]
    for path, data in zip(paths, (queue_image, FOREIGN)):
        path.write_bytes(data)
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, a, b, str(sys_renameat2())],
        stdout=subprocess.PIPE,
        text=True,
        env=checkout_env(),
    )
    outcomes = {"removed the queue": 0, "refused": 0, "removed the other file": 0}
    try:
        assert swapper.stdout is not None and swapper.stdout.readline().startswith("swapping")
        for _ in range(ROUNDS):
            try:
                fastqueue.unlink(a)
            except fastqueue.SegmentError:
                outcomes["refused"] += 1  # `a` held the other file when checked: it stays
            except FileNotFoundError:
                outcomes["refused"] += 1
            else:
                found = [contents(p) for p in paths]
                if FOREIGN in found:
                    outcomes["removed the queue"] += 1
                else:
                    outcomes["removed the other file"] += 1
            # Put back whichever file is missing (the swapper needs both names to swap).
            found = [contents(p) for p in paths]
            for path, data in zip(paths, found):
                if data is None:
                    missing = FOREIGN if FOREIGN not in found else queue_image
                    with contextlib.suppress(FileExistsError):
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        os.write(fd, missing)
                        os.close(fd)
                    found = [contents(p) for p in paths]
    finally:
        swapper.kill()
        swapper.wait()
        assert swapper.stdout is not None
        swapper.stdout.close()
    print(f"\n[unlink race] {ROUNDS} unlinks under a swap loop: {outcomes}")
    assert outcomes["removed the other file"] == 0, outcomes
    assert outcomes["removed the queue"] > 0, outcomes  # the loop did not starve unlink
    assert sorted(contents(p) or b"" for p in paths) == sorted([queue_image, FOREIGN])


def test_unlink_leaves_no_private_directory_behind(names: tuple[str, str]) -> None:
    a, _ = names
    before = set(SHM.glob(".fq-unlink-*"))
    with fastqueue.Queue(a, element_size=8, capacity=2):
        fastqueue.unlink(a)
    (SHM / a).write_bytes(FOREIGN)
    with pytest.raises(fastqueue.SegmentError):
        fastqueue.unlink(a)
    assert (SHM / a).read_bytes() == FOREIGN  # put back where it was, unchanged
    assert set(SHM.glob(".fq-unlink-*")) <= before
