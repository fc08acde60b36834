"""Making and removing segments safely: ``unlink`` removes only fastqueue segments, creation is
atomic (a killed creator leaves no name behind) and never asks for more memory than the machine
and the process's memory cgroup can give (shown with stand-in files in a private mount
namespace, so that the test needs no real memory pressure)."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from fastqueue import Queue, _ffi

NameFactory = Callable[[], str]
SHM = Path("/dev/shm")


def write_file(name: str, data: bytes) -> Path:
    path = SHM / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


# ------------------------------------------------------------------------------ unlink


@pytest.mark.parametrize(
    "data",
    [os.urandom(4096), b"not a queue\n" * 100, b"\x01", b"FASTQUE"],
    ids=["random", "text", "one-byte", "magic-prefix"],
)
def test_unlink_refuses_a_foreign_file_and_leaves_it(qname: NameFactory, data: bytes) -> None:
    name = qname()
    path = write_file(name, data)
    with pytest.raises(fastqueue.SegmentError) as info:
        fastqueue.unlink(name)
    message = str(info.value)
    assert name in message and "left in place" in message and "force=True" in message, message
    assert info.value.status == _ffi.ERR_BAD_SEGMENT
    assert path.read_bytes() == data
    # The C ABI refuses it too.
    assert _ffi.unlink(os.fsencode(name)) == _ffi.ERR_BAD_SEGMENT
    assert path.read_bytes() == data
    # The documented escape hatch removes it.
    fastqueue.unlink(name, force=True)
    assert not path.exists()


@pytest.mark.parametrize("data", [b"", bytes(1 << 16)], ids=["empty", "zeros"])
def test_unlink_refuses_an_empty_or_zeroed_file(qname: NameFactory, data: bytes) -> None:
    # An older fastqueue's creator that died leaves such a file, but so could another program:
    # nobody can tell, so only force=True removes it.
    name = qname()
    path = write_file(name, data)
    with pytest.raises(fastqueue.SegmentError, match="empty or starts with zeros"):
        fastqueue.unlink(name)
    assert path.exists()
    assert _ffi.unlink(os.fsencode(name)) == _ffi.ERR_NOT_READY
    fastqueue.unlink(name, force=True)
    assert not path.exists()


def test_unlink_refuses_a_symlink_and_a_directory(qname: NameFactory, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"FASTQUE1 looks like a queue but is a link target")
    link = SHM / qname()
    link.symlink_to(target)
    directory = SHM / qname()
    directory.mkdir()
    try:
        with pytest.raises(fastqueue.SegmentError):
            fastqueue.unlink(link.name)
        assert link.is_symlink() and target.exists()
        with pytest.raises(fastqueue.SegmentError):
            fastqueue.unlink(directory.name)
        assert directory.is_dir()
    finally:
        link.unlink()
        directory.rmdir()


def test_unlink_removes_a_queue_of_another_layout_version(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=16, capacity=2) as q:
        image = bytearray((SHM / name).read_bytes())
        q.unlink()
    struct.pack_into("=I", image, 8, _ffi.layout_version() + 7)
    path = write_file(name, bytes(image))
    with pytest.raises(fastqueue.SegmentError, match="layout"):
        Queue(name, create=False)
    fastqueue.unlink(name)  # it is fastqueue's: removed without force
    assert not path.exists()


def test_queue_unlink_leaves_a_foreign_file_that_took_the_name(qname: NameFactory) -> None:
    name = qname()
    q = Queue(name, element_size=16, capacity=2)
    try:
        fastqueue.unlink(name)
        path = write_file(name, b"another program's shared memory")
        with pytest.raises(fastqueue.SegmentError, match="left in place"):
            q.unlink()
        q.close()  # the owner's close unlinks by name: it must not remove the stranger either
        assert path.read_bytes() == b"another program's shared memory"
    finally:
        q.close()


def test_the_creators_close_leaves_a_later_queue_that_took_the_name(qname: NameFactory) -> None:
    # The creator's close removes the name only while it names its own segment: a queue made
    # under the same name after the first was unlinked (by `fastqueue rm`, say) stays.
    name = qname()
    first = Queue(name, element_size=16, capacity=2)
    later = None
    try:
        fastqueue.unlink(name)
        later = Queue(name, element_size=8, capacity=4)
        later.put(b"kept")
        first.close()
        assert (SHM / name).exists()
        with Queue(name, create=False) as again:
            assert again.get(timeout=5) == b"kept"
    finally:
        first.close()
        if later is not None:
            later.close()
    assert not (SHM / name).exists()  # the later queue's own creator still removes it


def test_cli_rm_force_still_removes_a_foreign_file(qname: NameFactory) -> None:
    from fastqueue import _cli

    name = qname()
    path = write_file(name, b"junk")
    assert _cli.main(["rm", name]) == 1
    assert path.exists()
    assert _cli.main(["rm", "--force", name]) == 0
    assert not path.exists()


# ------------------------------------------------------------------------------ atomic creation


def _shm_fds(pid: int) -> list[str]:
    found = []
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in entries:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/shm/"):
            found.append(target)
    return found


@pytest.mark.timeout(120)
def test_a_creator_killed_mid_creation_leaves_no_name(qname: NameFactory) -> None:
    # A queue big enough that reserving its pages takes a while; the parent kills the creator
    # as soon as it holds a /dev/shm file (or the name shows up), i.e. in the middle of creating.
    size = min(512 << 20, _ffi.memory_room() // 4)
    element = 1 << 20
    capacity = max(2, size // element)
    for _ in range(3):
        name = qname()
        code = (
            "import sys, time, fastqueue\n"
            f"q = fastqueue.Queue({name!r}, element_size={element}, capacity={capacity})\n"
            "print('created', flush=True)\n"
            "time.sleep(60)\n"
        )
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if (SHM / name).exists() or _shm_fds(child.pid):
                    break
                assert child.poll() is None, "the creator exited early"
            else:
                pytest.fail("the creator never started creating")
            mid_creation = not (SHM / name).exists()
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            child.kill()
            child.wait()
        assert child.stdout is not None
        finished = b"created" in child.stdout.read()
        child.stdout.close()
        if finished:  # the creation won the race: the name holds a complete queue
            Queue(name, create=False).close()
            fastqueue.unlink(name)
            continue
        # Killed while building: the name is free, so create=True works at once.
        assert not (SHM / name).exists(), (
            f"a killed creator left {name} behind (killed before the name appeared: {mid_creation})"
        )
        with Queue(name, element_size=16, capacity=2) as q:
            q.put(b"ok")
            assert q.get() == b"ok"
        return
    pytest.fail("creation always finished before the kill: make the queue bigger")


def test_a_concurrent_opener_never_sees_a_half_made_segment(qname: NameFactory) -> None:
    # The name appears only with the segment complete: an opener that finds it attaches.
    name = qname()
    code = (
        "import fastqueue\n"
        f"q = fastqueue.Queue({name!r}, element_size=1 << 20, capacity=64)\n"
        "q.put(b'made'); print('made', flush=True); input()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not (SHM / name).exists():
            assert time.monotonic() < deadline and child.poll() is None
        assert (SHM / name).stat().st_size > 64 << 20  # never an empty or partly sized file
        with Queue(name, create=False) as q:
            assert q.get(timeout=30) == b"made"
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        if (SHM / name).exists():
            fastqueue.unlink(name)


def test_a_taken_name_still_fails_with_exists(qname: NameFactory) -> None:
    name = qname()
    path = write_file(name, b"someone else's")
    with pytest.raises(fastqueue.QueueExistsError):
        Queue(name, element_size=16, capacity=2)
    assert path.read_bytes() == b"someone else's"
    with Queue(qname(), element_size=16, capacity=2, mode=0o660) as q:
        assert (SHM / q.name).stat().st_mode & 0o777 == 0o660


# ------------------------------------------------------------------------------ OOM guard


def _run_with_stand_ins(
    binds: dict[str, str], setup: str, code: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -c code`` in a private mount namespace after ``setup`` (shell) and
    bind-mounting each stand-in file over its real path."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    mounts = "".join(f"mount --bind {src} {dst}\n" for src, dst in binds.items())
    script = tmp_path / "inside.sh"
    script.write_text(f'set -e\n{setup}\n{mounts}exec {sys.executable} -c "$1"\n', encoding="utf-8")
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", str(script), code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_TRY_CREATE = """
import os, sys, fastqueue
name, size = {name!r}, {size}
print("room", fastqueue._ffi.memory_room())
try:
    fastqueue.Queue(name, element_size=1 << 20, capacity=size >> 20).close()
except fastqueue.NoSpaceError as exc:
    print("NoSpaceError", exc)
    print("left", os.path.exists("/dev/shm/" + name))
else:
    print("created")
"""


def test_creation_refuses_more_than_memavailable(qname: NameFactory, tmp_path: Path) -> None:
    name = qname()
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:        1048576 kB\nMemFree:          100000 kB\n"
        "MemAvailable:      65536 kB\nShmem:                 0 kB\n",
        encoding="utf-8",
    )
    size = 128 << 20  # more than the stand-in's 64 MiB available, far less than /dev/shm
    done = _run_with_stand_ins(
        {str(meminfo): "/proc/meminfo"}, "", _TRY_CREATE.format(name=name, size=size), tmp_path
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "NoSpaceError" in out, f"created a queue bigger than MemAvailable: {out}"
    assert f"needs {_ffi.segment_size(1 << 20, size >> 20)[1]} bytes" in out, out
    assert "left False" in out
    assert not (SHM / name).exists()
    # The message names what the queue needs and what memory can give (64 MiB less 64 MiB/16
    # of the 1 GiB total: 0 bytes here).
    assert "memory can give 0 bytes" in out, out
    assert "room 0" in out, out


def _cgroup_paths() -> dict[str, str]:
    """The process's cgroup paths: "v2" (the 0:: line) and "v1" (the memory controller)."""
    found = {}
    for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
        ident, controllers, path = line.split(":", 2)
        if ident == "0" and not controllers:
            found["v2"] = path
        elif "memory" in controllers.split(","):
            found["v1"] = path
    return found


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_creation_refuses_more_than_the_cgroup_allows(
    qname: NameFactory, tmp_path: Path, version: str
) -> None:
    path = _cgroup_paths().get(version)
    if path is None:
        pytest.skip(f"this machine's processes are in no cgroup {version} hierarchy")
    name = qname()
    # A stand-in cgroup tree over /sys/fs/cgroup: 512 MiB limit, 400 MiB used (112 MiB left,
    # less a margin of 32 MiB): a 128 MiB queue does not fit, a 64 MiB one does.
    base = "/sys/fs/cgroup" + ("" if version == "v2" else "/memory")
    leaf = base + path.rstrip("/")
    limit, usage = ("memory.max", "memory.current")
    if version == "v1":
        limit, usage = ("memory.limit_in_bytes", "memory.usage_in_bytes")
    setup = (
        "mount -t tmpfs stand-in /sys/fs/cgroup\n"
        f"mkdir -p {leaf}\n"
        f"echo {512 << 20} > {leaf}/{limit}\n"
        f"echo {400 << 20} > {leaf}/{usage}\n"
    )
    done = _run_with_stand_ins({}, setup, _TRY_CREATE.format(name=name, size=128 << 20), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "NoSpaceError" in done.stdout, f"ignored the cgroup limit: {done.stdout}"
    assert f"room {(112 - 32) << 20}" in done.stdout, done.stdout
    assert "left False" in done.stdout
    assert not (SHM / name).exists()
    done = _run_with_stand_ins({}, setup, _TRY_CREATE.format(name=name, size=64 << 20), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created" in done.stdout, done.stdout
    assert not (SHM / name).exists()  # closing the creating handle unlinked it


# ------------------------------------------------------------------------------ without O_TMPFILE

# Where the kernel has no O_TMPFILE, a segment is built under a temporary name; this test-only
# switch of the library takes that path on any kernel.
NO_TMPFILE = {**os.environ, "FASTQUEUE_TEST_HOOK_NO_TMPFILE": "1"}


def _leftovers(pid: int) -> list[str]:
    return sorted(p.name for p in SHM.glob(f"{_ffi.TEMP_PREFIX}{pid}-*"))


def test_creation_under_a_temporary_name_leaves_only_the_queue(qname: NameFactory) -> None:
    name = qname()
    code = (
        "import os, fastqueue\n"
        "TEMP = '.fq-tmp-%d-' % os.getpid()\n"
        f"q = fastqueue.Queue({name!r}, element_size=64, capacity=4, mode=0o660)\n"
        "q.put(b'x'); print(oct(os.stat('/dev/shm/' + q.name).st_mode & 0o777))\n"
        "print([p for p in os.listdir('/dev/shm') if p.startswith(TEMP)])\n"
        f"try:\n    fastqueue.Queue({name!r}, element_size=64, capacity=4)\n"
        "except fastqueue.QueueExistsError:\n    print('exists')\n"
        "print([p for p in os.listdir('/dev/shm') if p.startswith(TEMP)])\n"
        "q.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=NO_TMPFILE, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["0o660", "[]", "exists", "[]"], done.stdout
    assert not (SHM / name).exists()


@pytest.mark.timeout(120)
def test_gc_removes_the_temporary_file_of_a_killed_creator(qname: NameFactory) -> None:
    from fastqueue import _cli

    name = qname()
    size = min(512 << 20, _ffi.memory_room() // 4)
    code = (
        "import time, fastqueue\n"
        f"q = fastqueue.Queue({name!r}, element_size=1 << 20, capacity={max(2, size >> 20)})\n"
        "print('created', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env=NO_TMPFILE, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _leftovers(child.pid) and not (SHM / name).exists():
            assert time.monotonic() < deadline and child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    left = _leftovers(child.pid)
    try:
        assert not (SHM / name).exists(), "a killed creator left the queue's name behind"
        assert len(left) == 1, left  # killed while building under its temporary name
        with Queue(name, element_size=16, capacity=2) as q:  # the name is free
            q.put(b"ok")
        # gc (only this leftover: --prefix) removes it: its creator's lock is gone.
        assert _cli.main(["gc", "--prefix", left[0]]) == 0
        assert not _leftovers(child.pid)
    finally:
        for leftover in _leftovers(child.pid):
            fastqueue.unlink(leftover, force=True)


def test_gc_keeps_the_temporary_file_of_a_live_creator(qname: NameFactory) -> None:
    # Named for this (running) process and unlocked: the instant between a creator making the
    # file and locking it. gc must leave it; the same file named for a dead pid is removed.
    alive = f"{_ffi.TEMP_PREFIX}{os.getpid()}-999"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{_ffi.TEMP_PREFIX}{int(child.stdout)}-999"
    for leftover in (alive, dead):
        write_file(leftover, b"")
    try:
        assert _ffi.remove_leftover(alive.encode()) == (_ffi.OK, False)
        assert (SHM / alive).exists()
        assert _ffi.remove_leftover(dead.encode()) == (_ffi.OK, True)
        assert not (SHM / dead).exists()
        assert _ffi.remove_leftover(b"fq-not-a-leftover")[0] == _ffi.ERR_INVALID
    finally:
        for leftover in (alive, dead):
            if (SHM / leftover).exists():
                fastqueue.unlink(leftover, force=True)
