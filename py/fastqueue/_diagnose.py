"""What is at a queue's name when it cannot be attached: one diagnosis, shared by the library's
exceptions (``Queue(name, create=False)``) and the command line (``fastqueue ls --all``,
``fastqueue stat``), so that both say the same thing about the same file.

>>> from fastqueue._diagnose import diagnose
>>> diagnose("surely-no-such-queue-here")
Diagnosis(kind='missing', reason='no such file')

The file is inspected with ``lstat`` and ``pread`` of its first bytes only (never mapped, never
followed if it is a symbolic link, never waited on if it is a FIFO); the library is asked
(``fq_observe``) only when the file starts like a queue of this layout version.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Final, NamedTuple

from . import _ffi

__all__ = [
    "EMPTY_FILE",
    "NEVER_FINISHED",
    "OTHER_VERSION",
    "SHM_DIR",
    "Diagnosis",
    "diagnose",
    "plausible_layout_version",
]

#: Where POSIX shared-memory names live on Linux.
SHM_DIR: Final = "/dev/shm"

#: Layout versions are small integers counted up from 1 (core/src/layout.rs, LAYOUT_VERSION); a
#: larger value after a valid magic is garbage, not a version (the library decides the same way).
_MAX_PLAUSIBLE_VERSION: Final = 0xFFFF

#: What is not a regular file, by file type.
_NOT_REGULAR: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

#: How the reason for a segment of another layout version starts.
OTHER_VERSION: Final = "a fastqueue segment of layout version"
#: Reasons after which waiting may help (a creator may still be at work).
EMPTY_FILE: Final = (
    "an empty file (0 bytes): a queue whose creator died before sizing it (or is still "
    "creating it), or not a fastqueue segment at all"
)
NEVER_FINISHED: Final = (
    "a fastqueue segment never finished by its creator (it died while creating it, or is still "
    "at it)"
)


class Diagnosis(NamedTuple):
    """``kind``: ``"queue"`` (a usable queue; ``reason`` is empty), ``"unusable"`` (fastqueue's,
    or may be, but cannot be attached), ``"foreign"`` (not a fastqueue segment) or
    ``"missing"``. ``reason`` is a noun phrase: "'jobs' is <reason>" reads as a sentence."""

    kind: str
    reason: str


def plausible_layout_version(version: int) -> bool:
    """Whether ``version``, read after a valid magic, can be a layout version of some fastqueue
    (else the segment is corrupt)."""
    return 1 <= version <= _MAX_PLAUSIBLE_VERSION


def _smallest_segment() -> int:
    status, size = _ffi.segment_size(1, 1)
    return size if status == _ffi.OK else 0


def diagnose(name: str, status: int | None = None) -> Diagnosis:
    """What ``/dev/shm/<name>`` is (``name`` without a leading '/'), and if it cannot be
    attached, why. ``status`` is what the library answered when attaching it, if that was tried;
    otherwise the library is asked when the file starts like a queue."""
    path = os.path.join(SHM_DIR, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Diagnosis("missing", "no such file")
    except OSError as exc:
        return Diagnosis("unusable", f"impossible to inspect ({exc.strerror})")
    if stat.S_ISLNK(st.st_mode):
        try:
            target = f" to {os.readlink(path)!r}"
        except OSError:
            target = ""
        return Diagnosis(
            "foreign",
            f"a symbolic link{target}, which fastqueue refuses to follow (a queue is a regular "
            f"file in {SHM_DIR})",
        )
    for test, what in _NOT_REGULAR:
        if test(st.st_mode):
            return Diagnosis("foreign", f"{what}, not a shared-memory segment")
    if not stat.S_ISREG(st.st_mode):
        return Diagnosis("foreign", "not a regular file, so not a shared-memory segment")
    size = st.st_size
    if size == 0:
        return Diagnosis("unusable", EMPTY_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            head = os.pread(fd, 16, 0)
        finally:
            os.close(fd)
    except PermissionError:
        return Diagnosis("unusable", "unreadable (permission denied)")
    except FileNotFoundError:
        return Diagnosis("missing", "no such file (it was removed while being inspected)")
    except OSError as exc:
        return Diagnosis("unusable", f"unreadable ({exc.strerror})")
    smallest = _smallest_segment()
    magic = head[: len(_ffi.MAGIC)]
    if magic != _ffi.MAGIC:
        if len(head) < len(_ffi.MAGIC):
            return Diagnosis(
                "foreign",
                f"not a fastqueue segment ({size} bytes long, too short even for fastqueue's "
                f"magic number; the smallest queue takes {smallest} bytes)",
            )
        if not any(magic) and size >= smallest:  # the magic is published last, when complete
            return Diagnosis("unusable", NEVER_FINISHED)
        return Diagnosis(
            "foreign", "not a fastqueue segment (it does not start with fastqueue's magic number)"
        )
    ours = _ffi.layout_version()
    version = int.from_bytes(head[8:12], sys.byteorder) if len(head) >= 12 else ours
    if version != ours and plausible_layout_version(version):
        return Diagnosis(
            "unusable", f"{OTHER_VERSION} {version} (this fastqueue reads layout {ours})"
        )
    if size < smallest:
        return Diagnosis(
            "unusable",
            f"a truncated fastqueue segment ({size} bytes; the smallest queue takes {smallest})",
        )
    if version != ours:
        return Diagnosis(
            "unusable",
            f"a corrupt fastqueue segment (its layout version field holds {version}, which no "
            f"fastqueue writes)",
        )
    if status is None:
        status, handle = _ffi.observe(os.fsencode(name))
        del handle  # fq_close
    if status == _ffi.OK:
        return Diagnosis("queue", "")
    if status == _ffi.ERR_NOT_READY:
        return Diagnosis("unusable", NEVER_FINISHED)
    if status == _ffi.ERR_PERMISSION:
        return Diagnosis("unusable", "inaccessible (permission denied)")
    if status == _ffi.ERR_NOT_FOUND:
        return Diagnosis("missing", "no such file (it was removed while being inspected)")
    # Its header looked right from outside: the library found a size that does not match the
    # file, or (for a handle already attached) a slot holding values no fastqueue writes.
    return Diagnosis(
        "unusable",
        "a corrupt or truncated fastqueue segment (its header or a slot holds values that do not "
        "fit together)",
    )
