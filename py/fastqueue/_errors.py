"""Exceptions of fastqueue, and the one table that maps the C library's status codes to them.

:class:`Empty` and :class:`Full` are the ordinary outcomes of a non-blocking or timed-out call and
subclass :class:`queue.Empty` / :class:`queue.Full`, so code written for :mod:`queue` or
:mod:`multiprocessing` catches them unchanged. Every failure reported by the library is a
:class:`FastQueueError`; where a builtin exception already names the situation the error also
subclasses it (``FileExistsError``, ``FileNotFoundError``, ``PermissionError``, ``OSError``,
``ValueError``), so both ``except FastQueueError`` and ``except FileExistsError`` work.
"""

from __future__ import annotations

import errno
import os
import queue
import sys
from typing import Final

from . import _ffi

__all__ = [
    "Empty",
    "FastQueueError",
    "Full",
    "InternalError",
    "InvalidArgumentError",
    "MessageTooBigError",
    "NoSpaceError",
    "QueueExistsError",
    "QueueNotFoundError",
    "QueueOSError",
    "QueuePermissionError",
    "SegmentError",
    "ShutDown",
    "TooManyAttachedError",
    "error_from_status",
]


class Empty(queue.Empty):
    """Raised by ``get`` when no message arrived in time (or at once, when not blocking)."""


class Full(queue.Full):
    """Raised by ``put`` when no slot became free in time (or at once, when not blocking)."""


class FastQueueError(Exception):
    """Base class of every failure reported by the fastqueue library.

    ``status`` is the library's status code (a negative ``FQ_ERR_*`` value of fastqueue.h).
    """

    status: int = 0


# queue.ShutDown exists from Python 3.13 on; before, ShutDown is a plain FastQueueError.
_StdShutDown: type[Exception] = getattr(queue, "ShutDown", Exception)


class ShutDown(FastQueueError, _StdShutDown):  # type: ignore[misc,valid-type]
    """The queue was shut down (:meth:`Queue.shutdown`, by any process): puts fail at once, gets
    fail once the queue is drained. A subclass of ``queue.ShutDown`` on Python >= 3.13."""


class QueueExistsError(FastQueueError, FileExistsError):
    """Creating a queue whose name is already taken."""


class QueueNotFoundError(FastQueueError, FileNotFoundError):
    """Attaching to, or unlinking, a queue name that does not exist."""


class QueuePermissionError(FastQueueError, PermissionError):
    """The operating system refused access to the segment (its permission bits)."""


class NoSpaceError(FastQueueError, OSError):
    """Not enough shared memory for the segment (``/dev/shm`` full, or a size limit)."""


class SegmentError(FastQueueError):
    """The named segment is not a usable queue: foreign, truncated, corrupted, of another
    layout version, or never finished by its creator."""


class TooManyAttachedError(FastQueueError):
    """The queue's participant table is full: too many processes have it open."""


class MessageTooBigError(FastQueueError, ValueError):
    """A message longer than the queue's element_size."""


class InvalidArgumentError(FastQueueError, ValueError):
    """The library rejected an argument as out of range (sizes, name)."""


class QueueOSError(FastQueueError, OSError):
    """Another operating-system error; ``errno`` is set."""


class InternalError(FastQueueError):
    """A bug inside fastqueue. Please report it with the message."""


_UNLINK_HINT: Final = (
    "if no process is using it, remove it with fastqueue.unlink({name!r}) and create it again"
)

# The one table: status -> (exception class, errno for OSError subclasses or None, message).
# Messages are str.format templates over: op (what was being done), name (queue name or "?"),
# detail (the library's own sentence for the status), needed / free (NO_SPACE only).
_TABLE: Final[dict[int, tuple[type[FastQueueError], int | None, str]]] = {
    _ffi.SHUTDOWN: (
        ShutDown,
        None,
        "{op}: queue {name!r} was shut down",
    ),
    _ffi.ERR_NULL: (
        InternalError,
        None,
        "{op}: the library was passed a NULL pointer ({detail}); this is a bug in fastqueue's "
        "Python binding, please report it",
    ),
    _ffi.ERR_INVALID: (
        InvalidArgumentError,
        None,
        "{op}: an argument is out of range ({detail}); check the name (1..250 bytes, no '/' "
        "after the first character) and that element_size and capacity are >= 1 and not huge",
    ),
    _ffi.ERR_TOO_BIG: (
        MessageTooBigError,
        None,
        "{op}: the message is longer than the queue's element_size ({detail})",
    ),
    _ffi.ERR_BUFFER: (
        InternalError,
        None,
        "{op}: the receive buffer was too small ({detail}); this is a bug in fastqueue, please "
        "report it",
    ),
    _ffi.ERR_EXISTS: (
        QueueExistsError,
        errno.EEXIST,
        "{op}: a queue named {name!r} already exists; attach to it with "
        "Queue({name!r}, create=False), or choose another name",
    ),
    _ffi.ERR_NOT_FOUND: (
        QueueNotFoundError,
        errno.ENOENT,
        "{op}: no queue named {name!r} exists; create it with "
        "Queue({name!r}, element_size=..., capacity=...)",
    ),
    _ffi.ERR_PERMISSION: (
        QueuePermissionError,
        errno.EACCES,
        "{op}: the operating system refused access to queue {name!r} ({detail}); run as the "
        "user that created it, or have it created with a wider mode= (e.g. mode=0o660)",
    ),
    _ffi.ERR_NO_SPACE: (
        NoSpaceError,
        errno.ENOSPC,
        "{op}: not enough shared memory for queue {name!r}: it needs {needed} bytes and "
        "/dev/shm has {free} bytes free; use a smaller element_size or capacity, remove unused "
        "queues (fastqueue.unlink), or enlarge /dev/shm",
    ),
    _ffi.ERR_BAD_SEGMENT: (
        SegmentError,
        None,
        "{op}: {name!r} is not a valid fastqueue queue (it is foreign, truncated or corrupted); "
        + _UNLINK_HINT,
    ),
    _ffi.ERR_VERSION: (
        SegmentError,
        None,
        "{op}: queue {name!r} was made by a fastqueue of {theirs} (this "
        "library reads layout {layout}); attach with a matching fastqueue version, or "
        + _UNLINK_HINT,
    ),
    _ffi.ERR_NOT_READY: (
        SegmentError,
        None,
        "{op}: queue {name!r} was never finished by its creator (it died while creating it, or "
        "is still at it); wait and retry, or " + _UNLINK_HINT,
    ),
    _ffi.ERR_TOO_MANY: (
        TooManyAttachedError,
        None,
        "{op}: too many handles (in all processes) have queue {name!r} open (its participant "
        "table is full); close unused handles and retry",
    ),
    _ffi.ERR_OS: (
        QueueOSError,
        None,  # errno comes from the failed system call
        "{op}: the operating system failed on queue {name!r}: {detail}",
    ),
    _ffi.ERR_INTERNAL: (
        InternalError,
        None,
        "{op}: internal error in the fastqueue library ({detail}); please report it",
    ),
    # Python closes a handle only once no thread is inside a call on it, so this never reaches
    # Python's callers unless the binding has a bug.
    _ffi.ERR_CLOSED: (
        InternalError,
        None,
        "{op}: the handle was closed while this call was using it ({detail}); this is a bug in "
        "fastqueue's Python binding, please report it",
    ),
}


def _segment_layout(name: str | None) -> str:
    """What the segment ``name`` says its layout version is ("segment layout version N"), read
    straight from its file: the library refuses the segment before reading any of it."""
    unknown = "another segment layout version"
    if not name or "/" in name.lstrip("/"):
        return unknown
    try:
        with open(os.path.join("/dev/shm", name.lstrip("/")), "rb") as f:
            head = f.read(12)
    except OSError:
        return unknown
    if len(head) < 12:
        return unknown
    # The description starts with the magic (u64) and the layout version (u32), native-endian.
    return f"segment layout version {int.from_bytes(head[8:12], sys.byteorder)}"


def _shm_free() -> str:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return "an unknown number of"
    return str(st.f_bavail * st.f_frsize)


def error_from_status(
    status: int,
    op: str,
    name: str | None = None,
    *,
    needed: int | None = None,
) -> FastQueueError:
    """The exception for a negative library status (``op`` says what was being done, e.g.
    ``"Queue('jobs', create=True)"``; ``needed`` is the segment size, for NO_SPACE)."""
    cls, err, template = _TABLE.get(
        status,
        (InternalError, None, "{op}: the library returned unknown status {status} ({detail})"),
    )
    if status == _ffi.ERR_OS:
        err = _ffi.get_errno() or None
    detail = _ffi.status_str(status)
    if status == _ffi.ERR_OS and err is not None:
        detail = f"{detail}: {os.strerror(err)}"
    message = template.format(
        op=op,
        name=name if name is not None else "?",
        detail=detail,
        needed=needed if needed is not None else "an unknown number of",
        free=_shm_free() if status == _ffi.ERR_NO_SPACE else "",
        layout=_ffi.layout_version(),
        theirs=_segment_layout(name) if status == _ffi.ERR_VERSION else "",
        status=status,
    )
    # OSError subclasses take (errno, strerror) and then show "[Errno N] message".
    exc = cls(err, message) if err is not None else cls(message)
    exc.status = status
    return exc
