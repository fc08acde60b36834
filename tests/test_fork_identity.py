"""A forked child never acts under its parent's participant identity (issue 23).

After ``fork`` a child must get a participant entry of its own before touching the queue: if it
shared its parent's and died inside a claim (``get_slot``), its slot would wait for the parent
to die before being recovered, and the queue would jam. When the participant table is full (here:
a reader holding read locks on every free entry's lock byte, as anyone who can read the file may
do), the child gets a clear ``TooManyAttachedError`` at its first use instead, and the queue keeps
working for the others.

Handles are re-attached in the child lazily, at their first use: a fork with many handles open
costs nothing per handle (it cost seconds with 1,024 handles when each was re-attached at fork).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import pytest

import _stress_workers as w
import fastqueue
from _procs import checkout_env
from fastqueue import Queue, _ffi

NameFactory = Callable[[], str]

#: Takes a read lock on every participant lock byte it can (1024 entries at 2^40 + k), says
#: "ready", and keeps them until killed: no process can register a new participant meanwhile.
READER = """
import fcntl, os, sys, time
fd = os.open("/dev/shm/" + sys.argv[1], os.O_RDONLY)
held = 0
for k in range(1024):
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, (1 << 40) + k, os.SEEK_SET)
        held += 1
    except OSError:
        pass  # a live participant's entry (write-locked)
print("ready", held, flush=True)
time.sleep(3600)
"""


def start_reader(name: str) -> subprocess.Popen[str]:
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, name],
        stdout=subprocess.PIPE,
        text=True,
        env=checkout_env(),
    )
    assert reader.stdout is not None
    line = reader.stdout.readline()
    assert line.startswith("ready"), line
    assert int(line.split()[1]) >= 1000, line  # every entry but the live ones
    return reader


@pytest.mark.timeout(120)
def test_forked_child_without_an_entry_gets_an_error_and_cannot_jam_the_queue(
    qname: NameFactory,
) -> None:
    name = qname()
    with Queue(name, element_size=64, capacity=2) as q:
        q.put(b"m0")
        q.put(b"m1")
        reader = start_reader(name)
        try:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: take a message in place, and wait there to be killed
                try:
                    os.close(r)
                    try:
                        with q.get_slot(timeout=10) as view:
                            os.write(w, b"P" + bytes(view))
                            time.sleep(3600)
                    except fastqueue.TooManyAttachedError as exc:
                        os.write(w, b"E" + str(exc).encode()[:2000])
                        time.sleep(3600)
                    except BaseException as exc:  # reported to the parent
                        os.write(w, b"X" + repr(exc).encode()[:2000])
                finally:
                    os._exit(3)
            os.close(w)
            try:
                report = os.read(r, 4096)
            finally:
                os.close(r)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        finally:
            reader.kill()
            reader.wait()
            assert reader.stdout is not None
            reader.stdout.close()
        assert report.startswith(b"E"), f"the child did not get TooManyAttachedError: {report!r}"
        assert b"too many" in report and name.encode() in report, report
        # Nothing was taken under the parent's identity: both messages are there, and the ring
        # goes round (a slot stuck in READING would make these puts Full).
        assert [q.get(timeout=10), q.get(timeout=10)] == [b"m0", b"m1"]
        for i in range(6):
            q.put(b"lap %d" % i, timeout=10)
            assert q.get(timeout=10) == b"lap %d" % i
        assert q.qsize() == 0


@pytest.mark.timeout(120)
def test_the_child_attaches_once_an_entry_is_free_again(qname: NameFactory) -> None:
    """The error is not final: the child's next use tries again, and works once an entry is
    free (the reader gone); the child then has an identity of its own."""
    name = qname()
    with Queue(name, element_size=64, capacity=4) as q:
        reader = start_reader(name)
        r, w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                os.close(go_w)
                try:
                    q.put(b"too early")
                    code = 2
                except fastqueue.TooManyAttachedError:
                    os.write(w, b"E")
                    os.read(go_r, 1)  # the reader is gone
                    q.put(b"from the child", timeout=10)
                    code = 0 if q._h.live_participants() == 2 else 4  # type: ignore[union-attr]
            finally:
                os._exit(code)
        os.close(w)
        os.close(go_r)
        try:
            assert os.read(r, 1) == b"E"
        finally:
            reader.kill()
            reader.wait()
            assert reader.stdout is not None
            reader.stdout.close()
            os.write(go_w, b"g")
            os.close(go_w)
            os.close(r)
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert q.get(timeout=10) == b"from the child"


@pytest.mark.timeout(60)
def test_an_inherited_c_handle_refuses_to_act_in_the_child(qname: NameFactory) -> None:
    """Through the C ABI: a handle inherited through fork is the parent's participant, so in
    the child every call on it but fq_clone and fq_close fails with FQ_ERR_TOO_MANY (it used to
    put and get under the parent's identity); its clone works."""
    name = qname()
    lib = w.raw()
    with Queue(name, element_size=64, capacity=4) as q:
        inherited = q._h._ptr  # type: ignore[union-attr]
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                got = [lib.fq_put(inherited, b"parent's identity", 17, 0)]
                clone = ctypes.c_void_p()
                got.append(lib.fq_clone(inherited, ctypes.byref(clone)))
                got.append(lib.fq_put(clone, b"own identity", 12, 0))
                lib.fq_close(clone)
                os.write(wfd, " ".join(map(str, got)).encode())
            finally:
                os._exit(0)
        os.close(wfd)
        try:
            report = os.read(r, 100).decode()
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        assert report == f"{_ffi.ERR_TOO_MANY} {_ffi.OK} {_ffi.OK}", report
        assert q.get(timeout=10) == b"own identity"
        assert q.qsize() == 0
        q.put(b"parent still works")
        assert q.get_nowait() == b"parent still works"
