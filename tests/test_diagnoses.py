"""Diagnoses of what is at a queue's name that agree between the library and the command line.

For each kind of file that is not a usable queue -- zero bytes, short, foreign, corrupt (random
bytes after a valid magic), another layout version, a header whose sizes do not fit the file, a
directory, a FIFO, a symbolic link --
``Queue(name, create=False)`` raises a SegmentError that says what the file is, and
``python -m fastqueue ls --all`` and ``stat`` print the same words (both call
``fastqueue._diagnose.diagnose``).
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from _procs import run_fastqueue
from fastqueue import Queue, _ffi
from fastqueue._diagnose import diagnose

NameFactory = Callable[[], str]
SHM = Path("/dev/shm")
TIMEOUT_S = 60


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fastqueue(*args, timeout=TIMEOUT_S)


def queue_image() -> bytes:
    """The bytes of a real, empty queue's segment."""
    with Queue(element_size=16, capacity=4) as q:
        return (SHM / q.name).read_bytes()


def make_zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def make_short(path: Path) -> None:
    path.write_bytes(_ffi.MAGIC + bytes(20))


def make_foreign(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(8192))


def make_corrupt(path: Path) -> None:
    # Random bytes after a valid magic: the "layout version" they hold is no version at all.
    rng = random.Random(2)
    junk = bytearray(rng.randbytes(len(queue_image())))
    junk[:8] = _ffi.MAGIC
    struct.pack_into("=I", junk, 8, 4_260_698_095)
    path.write_bytes(bytes(junk))


def make_other_version(path: Path) -> None:
    image = bytearray(queue_image())
    struct.pack_into("=I", image, 8, _ffi.layout_version() + 1)
    path.write_bytes(bytes(image))


def make_bad_description(path: Path) -> None:
    # The right magic and version, a capacity (u64 at offset 16) that does not fit the file.
    image = bytearray(queue_image())
    struct.pack_into("=Q", image, 16, 1 << 30)
    path.write_bytes(bytes(image))


def make_directory(path: Path) -> None:
    path.mkdir()


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


KINDS: dict[str, tuple[Callable[[Path], None], str, tuple[str, ...]]] = {
    # kind: (how to make it, the diagnosis's kind, words the diagnosis must contain)
    "zero-byte": (make_zero_byte, "unusable", ("an empty file (0 bytes)",)),
    "short": (make_short, "unusable", ("a truncated fastqueue segment (28 bytes",)),
    "foreign": (make_foreign, "foreign", ("not a fastqueue segment",)),
    "corrupt": (make_corrupt, "unusable", ("a corrupt fastqueue segment", "4260698095")),
    "other-version": (
        make_other_version,
        "unusable",
        (f"a fastqueue segment of layout version {_ffi.layout_version() + 1}",),
    ),
    "bad-description": (
        make_bad_description,
        "unusable",
        ("a corrupt or truncated fastqueue segment",),
    ),
    "directory": (make_directory, "foreign", ("a directory, not a shared-memory segment",)),
    "fifo": (make_fifo, "foreign", ("a FIFO (named pipe), not a shared-memory segment",)),
}

#: What no diagnosis may say (the misleading messages of before).
NEVER: tuple[str, ...] = (
    "Too many levels of symbolic links",
    "out of range",
    "sizes must be",
)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()


@pytest.fixture
def bad_name(qname: NameFactory) -> Iterator[str]:
    name = qname()
    yield name
    remove(SHM / name)


def check_agreement(name: str, kind: str, words: tuple[str, ...]) -> None:
    found = diagnose(name)
    assert found.kind == kind, found
    for word in words:
        assert word in found.reason, found
    # The library's exception says the same.
    with pytest.raises(fastqueue.SegmentError) as info:
        Queue(name, create=False)
    message = str(info.value)
    assert f"{name!r} is {found.reason}" in message, message
    for bad in NEVER:
        assert bad not in message, message
    # The command line says the same: ls --all and stat.
    prefix = name.rsplit("-", 1)[0] + "-"
    listing = cli("ls", "--all", "--prefix", prefix)
    assert listing.returncode == 0, listing.stderr
    assert f"{name}: " in listing.stdout and found.reason in listing.stdout, listing.stdout
    shown = cli("stat", name)
    assert shown.returncode == 1 and found.reason in shown.stderr, shown.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(KINDS))
def test_library_and_cli_agree(bad_name: str, kind: str) -> None:
    make, expected_kind, words = KINDS[kind]
    make(SHM / bad_name)
    check_agreement(bad_name, expected_kind, words)


def test_corrupt_is_not_called_another_version(bad_name: str) -> None:
    make_corrupt(SHM / bad_name)
    with pytest.raises(fastqueue.SegmentError) as info:
        Queue(bad_name, create=False)
    message = str(info.value)
    assert "attach with a" not in message and "layout version 4260698095" not in message


def test_fifo_is_refused_not_waited_for(bad_name: str) -> None:
    # (No timing asserted: "never finished" is what the 1 s wait for a creator ends with.)
    make_fifo(SHM / bad_name)
    with pytest.raises(fastqueue.SegmentError) as info:
        Queue(bad_name, create=False)
    assert "never finished" not in str(info.value) and "FIFO" in str(info.value)


@pytest.mark.timeout(120)
def test_symlink_is_refused_and_said_to_be_one(qname: NameFactory, bad_name: str) -> None:
    with Queue(qname(), element_size=8, capacity=2) as target:
        (SHM / bad_name).symlink_to(SHM / target.name)
        check_agreement(bad_name, "foreign", ("a symbolic link", "refuses to follow"))


def test_zero_byte_file_is_not_called_foreign_by_one_and_unfinished_by_the_other(
    bad_name: str,
) -> None:
    make_zero_byte(SHM / bad_name)
    with pytest.raises(fastqueue.SegmentError) as info:
        Queue(bad_name, create=False)
    listing = cli("ls", "--all", "--prefix", bad_name.rsplit("-", 1)[0] + "-")
    assert f"{bad_name}: ignored: not a fastqueue segment" not in listing.stdout
    assert "an empty file (0 bytes)" in str(info.value)
    assert "an empty file (0 bytes)" in listing.stdout
