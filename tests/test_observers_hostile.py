"""Hostile segments against the *observers*: ``fastqueue ls``, ``ls --prefix``, ``stat``, ``gc``,
``gc --dry-run`` and ``fq_observe`` read segments any local user can plant in /dev/shm, so every
field they use (the creator's pid, sizes, counters, the name itself) is hostile input. Whatever a
segment holds, they never raise: a segment they cannot make sense of is reported as corrupt
(unusable), and the others are listed, inspected and cleaned up as usual.

Hypothesis plants, beside a healthy unused queue, a segment whose header fields it chose (the
creator's pid above all, counters, the shutdown word, any header byte) and sometimes a hostile
name, then runs the observers in-process (``scan``, ``probe``, ``main([...])``); one test also
runs the real command line on such segments. Observers never map a segment (they ``pread`` it),
so running them in-process is what a user does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastqueue
from _procs import run_fastqueue
from conftest import remove_names, unique_prefix
from fastqueue import _cli, _ffi

SHM = Path("/dev/shm")

#: Offsets in the header (core/src/layout.rs): the creator's pid in line 0, and the 8-byte
#: counters an observer reads (tail, head, statistics, control line).
CREATOR_PID = 68
HEADER_LINE = 128
COUNTERS = [HEADER_LINE * line + 8 * k for line in (1, 2, 5, 6) for k in range(8)]
#: The largest pid Linux hands out (PID_MAX_LIMIT on 64-bit).
PID_MAX_LIMIT = 1 << 22
EXAMPLES = {"planted": 0, "corrupt": 0, "queue": 0}


class Blob(bytes):
    """Bytes with a short repr (Hypothesis prints the test's arguments on a failure)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes of a queue>"


@pytest.fixture(scope="module")
def image() -> Iterator[bytes]:
    """The bytes of a real queue (element_size 64, capacity 5, one message), nobody attached."""
    name = unique_prefix("observed-image")
    try:
        with fastqueue.Queue(name, element_size=64, capacity=5) as q:
            q.put(b"one")
            data = (SHM / name).read_bytes()
    finally:
        remove_names([name])
    assert struct.unpack_from("<I", data, CREATOR_PID)[0] == os.getpid()
    yield Blob(data)


def plant(name: str | bytes, data: bytes) -> bytes:
    """Writes /dev/shm/<name> (nobody attached); returns its path as bytes for removal."""
    path = os.path.join(b"/dev/shm", os.fsencode(name))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


@contextlib.contextmanager
def planted(files: dict[str | bytes, bytes]) -> Iterator[None]:
    paths = []
    try:
        for name, data in files.items():
            paths.append(plant(name, data))
        yield
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def run_main(*argv: str) -> tuple[int, str]:
    """``fastqueue ARGV`` in this process; (exit status, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = _cli.main(list(argv))
    return status, out.getvalue()


pids = st.one_of(
    st.sampled_from([0, 1, PID_MAX_LIMIT, PID_MAX_LIMIT + 1, 1 << 31, (1 << 31) - 1, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)
counters = st.one_of(
    st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1)
)


def hostile_image(data: st.DataObject, image: bytes) -> tuple[bytes, int]:
    mutated = bytearray(image)
    pid = data.draw(pids, label="creator_pid")
    struct.pack_into("<I", mutated, CREATOR_PID, pid)
    for offset in data.draw(st.lists(st.sampled_from(COUNTERS), max_size=6), label="counters"):
        struct.pack_into("<Q", mutated, offset, data.draw(counters))
    header = struct.unpack_from("<I", image, 12)[0]
    for offset, value in data.draw(
        st.lists(
            st.tuples(st.integers(CREATOR_PID + 4, header - 1), st.integers(0, 255)), max_size=3
        ),
        label="bytes",
    ):
        mutated[offset] = value
    return bytes(mutated), struct.unpack_from("<I", mutated, CREATOR_PID)[0]


@pytest.mark.timeout(600)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_observers_never_raise_on_hostile_header_fields(image: bytes, data: st.DataObject) -> None:
    prefix = unique_prefix("observed")
    good, bad = f"{prefix}good", f"{prefix}bad"
    hostile, pid = hostile_image(data, image)
    EXAMPLES["planted"] += 1
    with planted({good: image, bad: hostile}):
        segments = {s.name: s for s in _cli.scan(prefix)}
        assert set(segments) == {good, bad}
        assert segments[good].kind == "queue" and not segments[good].in_use
        seg = segments[bad]
        assert seg.kind in ("queue", "unusable"), seg
        if seg.kind == "queue":
            EXAMPLES["queue"] += 1
            assert 1 <= seg.creator_pid <= PID_MAX_LIMIT, seg
            assert 0 <= seg.depth <= seg.capacity
        else:
            EXAMPLES["corrupt"] += 1
            assert "corrupt" in seg.reason or "version" in seg.reason, seg.reason
        if not 1 <= pid <= PID_MAX_LIMIT:
            assert seg.kind == "unusable" and "corrupt" in seg.reason, seg
        for argv in (
            ["ls", "--prefix", prefix],
            ["ls", "--all", "--prefix", prefix],
            ["ls", "--json", "--prefix", prefix],
            ["gc", "--dry-run", "--prefix", prefix],
        ):
            status, text = run_main(*argv)
            assert status == 0, (argv, text)
            assert good in text and bad in text, (argv, text)
        json.loads(run_main("ls", "--json", "--prefix", prefix)[1])
        status, text = run_main("stat", good)
        assert status == 0 and "creator_pid" in text, text
        status, text = run_main("stat", bad)
        assert status == (0 if seg.kind == "queue" else 1), text
        assert "Traceback" not in text and "Error:" not in text, text
        status, text = run_main("gc", "--prefix", prefix)
        assert status == 0, text
        assert not (SHM / good).exists(), f"gc did not go on to the healthy queue:\n{text}"
        assert (SHM / bad).exists() == (seg.kind != "queue"), text


def test_an_impossible_creator_pid_is_reported_as_corrupt_by_the_real_command_line(
    image: bytes,
) -> None:
    """The issue's case, through ``python -m fastqueue``: a creator_pid of 0xFFFFFFFF made ls,
    stat and gc exit 1 with an OverflowError traceback, and gc clean nothing up."""
    prefix = unique_prefix("observed-cli")
    good, bad = f"{prefix}good", f"{prefix}bad"
    hostile = bytearray(image)
    struct.pack_into("<I", hostile, CREATOR_PID, 0xFFFFFFFF)
    weird = os.fsencode(prefix) + b"\xff\x1b[2J\n"  # undecodable, an escape sequence, a newline
    with planted({good: image, bad: bytes(hostile), weird: bytes(hostile)}):
        for argv in (["ls", "--prefix", prefix], ["gc", "--dry-run", "--prefix", prefix]):
            done = run_fastqueue(*argv, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr, done.stderr
            assert bad in done.stdout and "creator_pid" in done.stdout, done.stdout
            assert "\x1b" not in done.stdout and "\\x1b" in done.stdout, done.stdout
        done = run_fastqueue("stat", bad, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "corrupt" in done.stderr and "creator_pid" in done.stderr, done.stderr
        done = run_fastqueue("gc", "--prefix", prefix, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert not (SHM / good).exists(), done.stdout
        assert (SHM / bad).exists(), "gc removed a segment it could not inspect"


def test_fq_observe_reads_an_impossible_pid_without_harm(image: bytes) -> None:
    name = unique_prefix("observed-ffi") + "q"
    hostile = bytearray(image)
    struct.pack_into("<I", hostile, CREATOR_PID, 0xFFFFFFFF)
    for offset in COUNTERS:
        struct.pack_into("<Q", hostile, offset, 2**64 - 1)
    with planted({name: bytes(hostile)}):
        status, handle = _ffi.observe(os.fsencode(name))
        assert status == _ffi.OK and handle is not None
        stats = dict(zip(_ffi.STAT_NAMES, handle.stats()))
        assert stats["creator_pid"] == 0xFFFFFFFF
        assert 0 <= stats["depth"] <= handle.capacity
        del handle


def test_report_observer_examples() -> None:
    print(
        f"\n[observers] {EXAMPLES['planted']} hostile headers planted beside a healthy queue: "
        f"{EXAMPLES['corrupt']} reported as corrupt, {EXAMPLES['queue']} listed as queues; "
        f"ls/stat/gc never raised and gc always went on to the healthy queue"
    )
