"""The memory guard under concurrency, in a real memory cgroup: creators started at the same
instant must never together take more than the guard allows, so the OOM killer never runs and
never kills a bystander.

The test makes a child memory cgroup (v1 ``memory.limit_in_bytes`` or v2 ``memory.max``) of
512 MiB under this process's own, puts a bystander holding 120 MiB in it, then starts two or eight
creators of 200/300 MiB queues that wait at a barrier and create together. It counts OOM kills
with the cgroup's own counter (v1 ``memory.oom_control``, v2 ``memory.events``: ``oom_kill``):
0 expected, the bystander alive, and at least one creator refused with a clear NoSpaceError.
Before the guard's check and reservation were one step (issue 23), both of two creators passed
the check and the kernel killed the bystander or a creator.

It needs root (to make cgroups); it is skipped, saying why, only when no memory cgroup can be
made. The cgroup and every segment are removed even when it fails.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _procs import checkout_env
from conftest import remove_names, unique_prefix
from fastqueue import _ffi

MIB = 1 << 20
LIMIT = 512 * MIB
BYSTANDER = 120 * MIB
RESULTS: list[str] = []


class Cgroup:
    """A child memory cgroup of this process's own (v1 or v2), removed by :meth:`remove`."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path, self.v2 = path, v2

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        text = (self.path / ("memory.events" if self.v2 else "memory.oom_control")).read_text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise AssertionError(f"no oom_kill counter in {self.path}: {text!r}")

    def remove(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            for pid in self.procs.read_text().split():  # our own children, if any survived
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            try:
                self.path.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def own_memory_cgroup() -> tuple[Path, bool]:
    """This process's memory cgroup directory and whether it is v2, or skips saying why."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if base.is_dir():
                return base, False
    for line in lines:
        hid, controllers, path = line.split(":", 2)
        if hid == "0" and not controllers:
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            if "memory" in (base / "cgroup.controllers").read_text().split():
                return base, True
    pytest.skip(f"no memory cgroup controller (v1 or v2) is mounted: {lines}")


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    base, v2 = own_memory_cgroup()
    path = base / unique_prefix("guard").rstrip("-")
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup under {base} ({exc}); it needs root")
    group = Cgroup(path, v2)
    try:
        if v2:
            if "memory" not in (path / "cgroup.controllers").read_text().split():
                try:  # enable it for children (refused where base holds processes itself)
                    (base / "cgroup.subtree_control").write_text("+memory")
                except OSError as exc:
                    pytest.skip(f"cannot enable the memory controller under {base} ({exc})")
            (path / "memory.max").write_text(str(LIMIT))
            with contextlib.suppress(FileNotFoundError):
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(LIMIT))
            with contextlib.suppress(FileNotFoundError, PermissionError, OSError):
                (path / "memory.memsw.limit_in_bytes").write_text(str(LIMIT))
            with contextlib.suppress(FileNotFoundError, OSError):
                (path / "memory.swappiness").write_text("0")
        yield group
    finally:
        group.remove()


#: A process of the test: imports fastqueue (charged to the test's cgroup), moves into the child
#: cgroup (what it allocates from then on is charged there), says "ready", waits for the
#: barrier (its stdin gives a line), then does its part and prints what happened.
CHILD = """
import os, sys
procs, role = sys.argv[1], sys.argv[2]
import fastqueue
with open(procs, "w") as f:
    f.write(str(os.getpid()))
print("ready", flush=True)
if role == "bystander":
    data = b"\\x01" * int(sys.argv[3])  # touched: charged to the cgroup
    print("holding", flush=True)
    sys.stdin.readline()
    print("alive", len(data), flush=True)
    sys.exit(0)
name, element, capacity = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.stdin.readline()  # the barrier
try:
    q = fastqueue.Queue(name, element_size=element, capacity=capacity)
except fastqueue.NoSpaceError as exc:
    print("refused", exc, flush=True)
except Exception as exc:
    print("error", type(exc).__name__, exc, flush=True)
else:
    # Held until every creator has answered: closing the creating handle removes the name and
    # frees its memory, which would let a later creator in legitimately.
    print("created", flush=True)
    sys.stdin.readline()
    q.close()
"""


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=checkout_env(),
    )


def expect(proc: subprocess.Popen[str], word: str, timeout: float = 60) -> str:
    line = read_line(proc, timeout)
    assert line.startswith(word), f"expected {word!r} from a child, got {line!r}"
    return line


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next line ("" if it says nothing within ``timeout``)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def queue_shape(size: int) -> tuple[int, int]:
    """(element_size, capacity) of a queue whose segment takes about ``size`` bytes."""
    element = MIB
    capacity = size // element
    status, total = _ffi.segment_size(element, capacity)
    assert status == _ffi.OK and size <= total < size + 2 * MIB
    return element, capacity


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("creators", "size_mib"), [(2, 300), (2, 200), (8, 200)])
def test_concurrent_creators_never_wake_the_oom_killer(
    cgroup: Cgroup, creators: int, size_mib: int
) -> None:
    element, capacity = queue_shape(size_mib * MIB)
    prefix = unique_prefix("guard")
    names = [f"{prefix}{i}" for i in range(creators)]
    procs: list[subprocess.Popen[str]] = []
    procs_file = str(cgroup.procs)
    try:
        bystander = spawn(procs_file, "bystander", str(BYSTANDER))
        procs.append(bystander)
        expect(bystander, "ready")
        expect(bystander, "holding")
        makers = [spawn(procs_file, "creator", n, str(element), str(capacity)) for n in names]
        procs += makers
        for p in makers:
            expect(p, "ready")
        for p in makers:  # the barrier: every creator goes at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        answers = [read_line(p, 120) for p in makers]  # every creator holds what it made
        outcomes = []
        for p, answer in zip(makers, answers):
            out, _ = p.communicate("done\n", timeout=120)
            outcomes.append((p.returncode, (answer + out).strip()))
        assert bystander.stdin is not None
        out, _ = bystander.communicate("done\n", timeout=60)
        kills = cgroup.oom_kills()
        created = sum(o.startswith("created") for _, o in outcomes)
        refused = [o for _, o in outcomes if o.startswith("refused")]
        RESULTS.append(
            f"{creators} x {size_mib} MiB + {BYSTANDER // MIB} MiB bystander in a "
            f"{LIMIT // MIB} MiB cgroup ({'v2' if cgroup.v2 else 'v1'}): oom_kill={kills}, "
            f"bystander exit {bystander.returncode}, created {created}, refused {len(refused)}, "
            f"creator exits {[rc for rc, _ in outcomes]}"
        )
        print("\n[memory guard]", RESULTS[-1])
        assert kills == 0, RESULTS[-1]
        assert bystander.returncode == 0 and "alive" in out, (bystander.returncode, out)
        assert all(rc == 0 for rc, _ in outcomes), outcomes
        assert refused, f"every creator succeeded in a {LIMIT // MIB} MiB cgroup: {outcomes}"
        assert all("memory" in o and "OOM" in o for o in refused), refused
        assert created * size_mib * MIB + BYSTANDER <= LIMIT, outcomes
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)
            if p.stdout is not None:
                p.stdout.close()
            if p.stdin is not None:
                with contextlib.suppress(OSError):
                    p.stdin.close()
        remove_names(names)


GUARD_LOCK = "/dev/shm"  # creators flock the directory itself

CREATE = """
import sys, fastqueue
try:
    fastqueue.Queue(sys.argv[1], element_size=8, capacity=2).close()
except fastqueue.FastQueueError as exc:
    print(type(exc).__name__, exc.errno if isinstance(exc, OSError) else None, exc)
else:
    print("created")
"""


def create_in_child(name: str, wait_ms: int) -> str:
    env = {**checkout_env(), "FASTQUEUE_TEST_HOOK_GUARD_WAIT_MS": str(wait_ms)}
    done = subprocess.run(
        [sys.executable, "-c", CREATE, name],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.timeout(120)
def test_a_held_guard_lock_makes_creation_fail_clearly_not_hang() -> None:
    """Anyone can take the creation lock (every user's creators need it). One who keeps it does
    not block creators forever: after the wait (shortened here) creation fails with a clear
    error naming the lock, and works again once it is released. The name is never made."""
    name = unique_prefix("guard-held") + "q"
    fd = os.open(GUARD_LOCK, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as any user can: read access is enough
        try:
            out = create_in_child(name, wait_ms=300)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        assert out.startswith(f"QueueOSError {errno.ETIMEDOUT} "), out
        assert "flock on /dev/shm" in out and "retry" in out, out
        assert not Path("/dev/shm", name).exists()
        assert create_in_child(name, wait_ms=300) == "created"
    finally:
        os.close(fd)
        remove_names([name])
