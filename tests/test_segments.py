"""Attaching to segments that are not valid queues: junk, truncated, wrong magic or version, and
random corruption of a real queue. Each attach runs in a child process, so that a crash of the
library (segfault, abort) fails the test instead of killing the test run."""

from __future__ import annotations

import multiprocessing
import os
import random
import struct
from pathlib import Path
from typing import Any, Callable

import pytest

import _children
import fastqueue
from _procs import run_child
from fastqueue import Queue

NameFactory = Callable[[], str]
SHM = Path("/dev/shm")
SPAWN = multiprocessing.get_context("spawn")


def write_segment(name: str, data: bytes) -> None:
    fd = os.open(SHM / name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def attach_in_child(name: str) -> tuple[Any, ...]:
    code, messages = run_child(SPAWN, _children.try_attach, name)
    assert code == 0, f"attaching to {name} killed the child (exit code {code})"
    assert len(messages) == 1
    return messages[0]  # type: ignore[no-any-return]


def queue_image(name: str, messages: int = 2) -> bytes:
    """The bytes of a real queue's segment (with a few messages in it)."""
    with Queue(name, element_size=16, capacity=4) as q:
        for i in range(messages):
            q.put(b"message %d" % i)
        return (SHM / name).read_bytes()


def assert_segment_error(outcome: tuple[Any, ...], name: str, *words: str) -> None:
    assert outcome[0] == "error", f"attached to an invalid segment: {outcome}"
    _, classes, message = outcome
    assert "SegmentError" in classes and "FastQueueError" in classes, outcome
    assert name in message, message
    head = (SHM / name).read_bytes()[:8]
    if head == b"FASTQUE1":  # a damaged queue: removing it is the advice
        assert f"fastqueue.unlink({name!r})" in message, message
    elif head.strip(b"\0"):  # another program's file: never suggest removing it
        assert "fastqueue.unlink" not in message and "choose another name" in message, message
    else:  # empty or zeroed: an old unfinished queue or a foreign file; only with force=True
        assert f"fastqueue.unlink({name!r}, force=True)" in message, message
    for word in words:
        assert word in message, message


JUNK: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "one-byte": lambda: b"\x01",
    "short-junk": lambda: random.Random(1).randbytes(100),
    "page-of-junk": lambda: random.Random(2).randbytes(4096),
    "megabyte-of-junk": lambda: random.Random(3).randbytes(1 << 20),
    "zeros": lambda: bytes(1 << 16),
    "text": lambda: b"this is not a queue\n" * 500,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(JUNK))
def test_junk_segment_is_refused_with_a_clear_error(qname: NameFactory, kind: str) -> None:
    name = qname()
    write_segment(name, JUNK[kind]())
    assert_segment_error(attach_in_child(name), name)
    assert (SHM / name).exists()  # refusing it does not remove it


@pytest.mark.timeout(60)
def test_wrong_magic_is_refused(qname: NameFactory) -> None:
    image = bytearray(queue_image(qname()))
    assert image[:8] == b"FASTQUE1"
    image[:8] = b"NOTAQUEU"
    name = qname()
    write_segment(name, bytes(image))
    assert_segment_error(attach_in_child(name), name, "not a fastqueue segment")


@pytest.mark.timeout(60)
def test_other_layout_version_is_refused(qname: NameFactory) -> None:
    image = bytearray(queue_image(qname()))
    # The header starts with the magic (u64) and the layout version (u32), native-endian.
    (version,) = struct.unpack_from("=I", image, 8)
    assert version == fastqueue._ffi.layout_version()
    struct.pack_into("=I", image, 8, version + 1)
    name = qname()
    write_segment(name, bytes(image))
    # The message names both versions: the segment's (read from its file) and the library's.
    assert_segment_error(
        attach_in_child(name),
        name,
        f"a fastqueue segment of layout version {version + 1} (this fastqueue reads layout "
        f"{version})",
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("keep", [16, 64, 0.5, -1], ids=lambda k: f"keep-{k}")
def test_truncated_queue_is_refused(qname: NameFactory, keep: float) -> None:
    image = queue_image(qname())
    cut = int(len(image) * keep) if isinstance(keep, float) else keep % len(image)
    name = qname()
    write_segment(name, image[:cut])
    assert_segment_error(attach_in_child(name), name)


@pytest.mark.timeout(60)
def test_copy_of_a_valid_queue_attaches(qname: NameFactory) -> None:
    # The control for the tests above: an intact copy of a queue is a queue.
    image = queue_image(qname())
    name = qname()
    write_segment(name, image)
    with Queue(name, create=False) as q:
        assert [q.get_nowait(), q.get_nowait()] == [b"message 0", b"message 1"]
        assert attach_in_child(name) == ("attached", 16, 4)


@pytest.mark.timeout(120)
def test_randomly_corrupted_queues_never_crash_the_opener(qname: NameFactory) -> None:
    image = queue_image(qname(), messages=3)
    name = qname()
    rounds = 300
    code, messages = run_child(
        SPAWN, _children.fuzz_attach, name, image, 12345, rounds, timeout=100
    )
    done = messages[-1] == "done" if messages else False
    crashed_at = len(messages) if not done else None
    assert code == 0 and done, f"child exit code {code}, stopped at round {crashed_at}"
    outcomes = [outcome for _, outcome in messages[:-1]]
    assert len(outcomes) == rounds
    for outcome in outcomes:
        if outcome[0] == "error":
            # Refused: as a fastqueue error that says which queue (never e.g. a bare OSError).
            assert "FastQueueError" in outcome[1], outcome
            assert name in outcome[2], outcome
        else:
            assert outcome[0] == "attached", outcome
    assert any(o[0] == "error" for o in outcomes)  # the corruption did reach validation
