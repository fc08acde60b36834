"""Segments and trust: what a process with less than write access can (not) do to a queue, and
what observers (``fastqueue ls/stat/gc``, ``fq_observe``) survive.

The attackers run as user ``nobody`` (a child that drops root's privileges with setgid/setuid),
so these tests need root, as CI has; they say so and skip elsewhere.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import fastqueue
from fastqueue import _ffi, _library

SHM = Path("/dev/shm")
#: How long a test waits for a child's report line before failing.
LINE_TIMEOUT_S = 30.0

needs_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="runs an attacker as user nobody, which needs root (CI runs as root)",
)

#: Drops root's privileges to nobody/nogroup: the first lines of every attacker script (which
#: imports what it needs first: nobody may not be able to read root's Python installation).
_AS_NOBODY = """
import fcntl, os, struct, sys, threading, time
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
"""

#: Opens the segment read-only (all that mode 0o644 grants nobody) and takes a read lock on
#: every liveness byte it can; for each byte a live participant holds, a thread waits (F_OFD_SETLKW)
#: to take it the moment that participant dies. Reports "squatted N waiting K..." then "got K".
_SQUATTER = (
    _AS_NOBODY
    + r"""
fd = os.open(sys.argv[1], os.O_RDONLY)
def flock(k):
    return struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, (1 << 40) + k, 1, 0)
busy = []
for k in range(1024):
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock(k))
    except OSError:
        busy.append(k)
def wait_for(k):
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, flock(k))
    print("got", k, flush=True)
for k in busy:
    threading.Thread(target=wait_for, args=(k,), daemon=True).start()
print("squatted", 1024 - len(busy), "waiting", *busy, flush=True)
time.sleep(120)
"""
)

#: A participant (root) that claims a slot for writing and never finishes it.
_HOLDER = r"""
import sys, time, fastqueue
q = fastqueue.Queue(sys.argv[1], create=False)
slot = q.put_slot()
slot.__enter__()
print("claimed", flush=True)
time.sleep(120)
"""


def _line(proc: subprocess.Popen[str], timeout: float = LINE_TIMEOUT_S) -> str:
    """The child's next line of output; fails the test if none comes in time."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"{proc.args!r} said nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"{proc.args!r} exited ({proc.wait()}) without a word:\n{err}")
    return line.strip()


@contextmanager
def _child(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running `script` with `args`, killed at the end whatever happened."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=LINE_TIMEOUT_S)


# ------------------------------------------------------------------------- read access


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o664, 0o646], ids=oct)
def test_modes_that_grant_read_without_write_are_refused(
    qname: Callable[[], str], mode: int
) -> None:
    name = qname()
    with pytest.raises(ValueError, match="read the queue who cannot write it"):
        fastqueue.Queue(name, element_size=8, capacity=2, mode=mode)
    # The library refuses them too (C callers), and leaves nothing behind.
    status, handle = _ffi.create(name.encode(), 8, 2, mode)
    assert handle is None and status == _ffi.ERR_INVALID
    assert not (SHM / name).exists()


@needs_root
def test_read_locks_of_a_reader_neither_fake_life_nor_block_recovery(
    qname: Callable[[], str],
) -> None:
    """User nobody, who can only read the segment (mode 0o644, as older versions allowed),
    read-locks every liveness byte and waits to lock a participant's byte the moment it dies:
    the dead participant's claimed slot is still recovered, and its entry does not count as
    alive."""
    name = qname()
    with fastqueue.Queue(name, element_size=8, capacity=2) as q:
        os.chmod(SHM / name, 0o644)
        with _child(_HOLDER, name) as holder:
            assert _line(holder) == "claimed"
            q.put(b"after")  # behind the holder's unfinished message
            with _child(_SQUATTER, str(SHM / name)) as squatter:
                report = _line(squatter).split()
                assert report[:3] == ["squatted", "1022", "waiting"], report
                holder.send_signal(signal.SIGKILL)
                holder.wait(timeout=LINE_TIMEOUT_S)
                got = _line(squatter)  # the holder's byte, now read-locked by nobody
                assert got.startswith("got "), got
                # A blocked get probes the holder: dead, whatever read lock sits on its byte.
                assert q.get(timeout=10) == b"after"
                assert q.stats()["recoveries"] >= 1
                status, observer = _ffi.observe(name.encode())
                assert observer is not None, status
                assert observer.live_participants() == 1  # q only
                del observer


# ----------------------------------------------------------------------------- observers

#: How long the attacker reshapes the segment while the observers run (the test's duration).
ATTACK_S = 3.0

#: A writer (nobody, through mode 0o666) that shrinks the segment, grows it back and rewrites
#: its first bytes, over and over for argv[2] seconds; leaves it as it found it.
_RESHAPER = (
    _AS_NOBODY
    + r"""
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
head = os.pread(fd, size, 0)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    os.ftruncate(fd, 0)
    os.ftruncate(fd, size)
    os.ftruncate(fd, 4096)
    os.ftruncate(fd, size)
    os.pwrite(fd, head, 0)
    n += 1
print("done", n, flush=True)
"""
)

#: Root's tools, in a loop for argv[2] seconds: `fastqueue ls`, `stat` and `gc --dry-run` on the
#: segment argv[1] (the CLI's own entry point, output discarded). Reports how many rounds ran.
_OBSERVER = r"""
import contextlib, io, sys, time
from fastqueue import _cli
name, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
rounds = 0
while time.monotonic() < end:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _cli.main(["ls", "--prefix", name])
        _cli.main(["stat", name])
        _cli.main(["gc", "--dry-run", "--prefix", name])
    rounds += 1
print("rounds", rounds, flush=True)
"""


@needs_root
def test_a_writer_reshaping_the_segment_cannot_crash_observers(qname: Callable[[], str]) -> None:
    """User nobody, allowed to write the queue (mode 0o666), truncates, restores and rewrites it
    in a loop while root's `fastqueue ls`, `stat` and `gc --dry-run` run over and over: none of
    them dies (they read the segment with pread, never mapping it: no SIGBUS)."""
    name = qname()
    status, handle = _ffi.create(name.encode(), 64, 8, 0o666)
    assert handle is not None, status
    del handle  # fq_close: nobody in this process maps the segment while it is reshaped
    with _child(_RESHAPER, str(SHM / name), str(ATTACK_S)) as reshaper:
        assert _line(reshaper) == "ready"
        with _child(_OBSERVER, name, str(ATTACK_S)) as observer:
            try:
                out, err = observer.communicate(timeout=ATTACK_S + LINE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail("the observers did not finish")
            assert observer.returncode == 0, (
                f"the observers died (exit status {observer.returncode}; -{signal.SIGBUS:d} is "
                f"SIGBUS):\n{out}{err}"
            )
            assert out.startswith("rounds "), out + err
        assert _line(reshaper).startswith("done ")
    # The segment is whole again and still a queue.
    with fastqueue.Queue(name, create=False) as q:
        q.put(b"still works")
        assert q.get(timeout=5) == b"still works"


def test_an_observer_reads_a_copy_and_refuses_to_work_on_slots(qname: Callable[[], str]) -> None:
    with fastqueue.Queue(qname(), element_size=16, capacity=4) as q:
        q.put(b"one")
        q.put(b"two")
        status, observer = _ffi.observe(q.name.encode())
        assert observer is not None, status
        assert (observer.capacity, observer.max_msg, observer.size()) == (4, 16, 2)
        assert dict(zip(_ffi.STAT_NAMES, observer.stats()))["puts"] == 2
        assert observer.live_participants() == 1
        ptr = observer._ptr
        assert _library._fq_put(ptr, b"x", 1, 0) == _ffi.ERR_INVALID
        assert _library._fq_wait(ptr, _ffi.WAIT_READABLE, 0) == _ffi.ERR_INVALID
        assert _library._fq_shutdown(ptr, 0) == _ffi.ERR_INVALID
        assert _library._fq_join(ptr, 0) == _ffi.ERR_INVALID
        assert _library._fq_task_done(ptr, 1) == _ffi.ERR_INVALID
        del observer
        assert q.get(timeout=1) == b"one"  # nothing was taken or shut down
