"""Exceptions of fastqueue, and the one table that maps the C library's status codes to them.

Every exception fastqueue raises on purpose is a :class:`FastQueueError` *and*, where Python has
a standard class for the situation, that class too: :class:`Empty`, :class:`Full` and
:class:`ShutDown` subclass :class:`queue.Empty`, :class:`queue.Full` and ``queue.ShutDown``
(Python >= 3.13), so code written for :mod:`queue` or :mod:`multiprocessing` catches them
unchanged; a rejected argument is a ``ValueError`` (:class:`InvalidArgumentError`) or a
``TypeError`` (:class:`ArgumentTypeError`); a call on a closed handle is a ``ValueError``
(:class:`QueueClosedError`), as for a closed file; and so on (``FileExistsError``,
``FileNotFoundError``, ``PermissionError``, ``OSError``). Both ``except FastQueueError`` and
``except ValueError`` work.
"""

from __future__ import annotations

import errno
import os
import queue
from typing import Final

from . import _ffi
from ._diagnose import EMPTY_FILE, NEVER_FINISHED, OTHER_VERSION, SHM_DIR, Diagnosis, diagnose
from ._words import nbytes, queue_called

__all__ = [
    "ArgumentTypeError",
    "Empty",
    "FastQueueError",
    "Full",
    "InternalError",
    "InvalidArgumentError",
    "MessageTooBigError",
    "NoSpaceError",
    "QueueClosedError",
    "QueueExistsError",
    "QueueNotFoundError",
    "QueueOSError",
    "QueuePermissionError",
    "SegmentError",
    "ShutDown",
    "SlotError",
    "SlotInUseError",
    "TooManyAttachedError",
    "error_from_status",
    "unlink_refused",
]


class FastQueueError(Exception):
    """Base class of every exception fastqueue raises on purpose.

    ``status`` is the library's status code for the failure (an ``FQ_*`` value of fastqueue.h):
    each class's own code, the same whether the library or the Python package found it, and 0
    where the library has none (a wrong type, a closed handle, a zero-copy slot misused). Each
    class below says which.
    """

    status: int = 0


class Empty(FastQueueError, queue.Empty):
    """Raised by ``get`` when no message arrived in time (or at once, when not blocking)."""

    status = _ffi.EMPTY


class Full(FastQueueError, queue.Full):
    """Raised by ``put`` when no slot became free in time (or at once, when not blocking)."""

    status = _ffi.FULL


# queue.ShutDown exists from Python 3.13 on; before, ShutDown is a plain FastQueueError.
_StdShutDown: type[Exception] = getattr(queue, "ShutDown", Exception)


class ShutDown(FastQueueError, _StdShutDown):  # type: ignore[misc,valid-type]
    """The queue was shut down (:meth:`Queue.shutdown`, by any process): puts fail at once, gets
    fail once the queue is drained. A subclass of ``queue.ShutDown`` on Python >= 3.13."""

    status = _ffi.SHUTDOWN


class QueueExistsError(FastQueueError, FileExistsError):
    """Creating a queue whose name is already taken."""

    status = _ffi.ERR_EXISTS


class QueueNotFoundError(FastQueueError, FileNotFoundError):
    """Attaching to, or unlinking, a queue name that does not exist."""

    status = _ffi.ERR_NOT_FOUND


class QueuePermissionError(FastQueueError, PermissionError):
    """The operating system refused access to the segment (its permission bits)."""

    status = _ffi.ERR_PERMISSION


class NoSpaceError(FastQueueError, OSError):
    """Not enough shared memory for the segment (``/dev/shm`` full, or a size limit); the
    message says how many bytes it needs."""

    status = _ffi.ERR_NO_SPACE


class SegmentError(FastQueueError):
    """The named segment is not a usable queue: foreign, empty, truncated, corrupted, of another
    layout version, never finished by its creator, or not a regular file (a directory, a FIFO,
    a symbolic link). The message says which."""


class TooManyAttachedError(FastQueueError):
    """The queue's participant table is full: too many processes have it open."""

    status = _ffi.ERR_TOO_MANY


class MessageTooBigError(FastQueueError, ValueError):
    """A message longer than the queue's element_size."""

    status = _ffi.ERR_TOO_BIG


class InvalidArgumentError(FastQueueError, ValueError):
    """An argument with a value out of range (a size, a name, a timeout, a mode...), or a call
    the queue's state does not allow (``task_done()`` too often). The message names the
    argument, the value given and what is allowed."""

    status = _ffi.ERR_INVALID


class ArgumentTypeError(FastQueueError, TypeError):
    """An argument of the wrong type (e.g. a ``str`` where a bytes-like object is needed)."""


class QueueClosedError(FastQueueError, ValueError):
    """An operation on a handle that was closed (as with a closed file, a ``ValueError``)."""


class SlotError(FastQueueError, RuntimeError):
    """A zero-copy slot used wrongly, e.g. a ``put_slot()`` / ``get_slot()`` block entered
    twice."""


class SlotInUseError(SlotError, BufferError):
    """A ``put_slot()`` slot's memory was still used after its ``with`` block (by a numpy array
    or a memoryview made from it), so nothing was put."""


class QueueOSError(FastQueueError, OSError):
    """Another operating-system error; ``errno`` is set. (RedisQueue's, a server it cannot
    reach, have ``status`` 0: the library has no part in them.)"""

    status = _ffi.ERR_OS


class InternalError(FastQueueError):
    """A bug inside fastqueue. Please report it with the message."""


_UNLINK_HINT: Final = (
    "if no process is using it, remove it with fastqueue.unlink({name!r}) and create it again"
)

# The one table: status -> (exception class, errno for OSError subclasses or None, message).
# Messages are str.format templates over: op (what was being done), name (queue name), queue
# ("queue 'jobs'", or "the queue" when the name is not known),
# detail (the library's own sentence for the status), needed / free (NO_SPACE only).
_TABLE: Final[dict[int, tuple[type[FastQueueError], int | None, str]]] = {
    _ffi.SHUTDOWN: (
        ShutDown,
        None,
        "{op}: {queue} was shut down",
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
        "{op}: the library refused an argument: {detail}",
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
        "{op}: the operating system refused access to {queue} ({detail}); run as the "
        "user that created it, or have it created with a wider mode= (e.g. mode=0o660)",
    ),
    _ffi.ERR_NO_SPACE: (
        NoSpaceError,
        errno.ENOSPC,
        "{op}: not enough shared memory for {queue}: it needs {needed}, while "
        "/dev/shm has {free} and memory can give {room}, that is what the machine and this "
        "process's memory cgroup have available less a safety margin, so that creating the "
        "queue never wakes the OOM killer; use a smaller element_size or capacity, remove "
        "unused queues (fastqueue.unlink), free memory, or enlarge /dev/shm",
    ),
    # The three segment statuses: what is wrong comes from the diagnosis of the file
    # (_diagnose.diagnose, which `fastqueue ls --all` / `stat` print too), then what to do.
    _ffi.ERR_BAD_SEGMENT: (
        SegmentError,
        None,
        "{op}: {name!r} is {diagnosis}; {advice}",
    ),
    _ffi.ERR_VERSION: (
        SegmentError,
        None,
        "{op}: {name!r} is {diagnosis}; {advice}",
    ),
    _ffi.ERR_NOT_READY: (
        SegmentError,
        None,
        "{op}: {name!r} is {diagnosis}; {advice}",
    ),
    _ffi.ERR_TOO_MANY: (
        TooManyAttachedError,
        None,
        "{op}: too many handles (in all processes) have {queue} open (its participant "
        "table is full); close unused handles and retry",
    ),
    _ffi.ERR_OS: (
        QueueOSError,
        None,  # errno comes from the failed system call
        "{op}: the operating system failed on {queue}: {detail}",
    ),
    _ffi.ERR_INTERNAL: (
        InternalError,
        None,
        "{op}: internal error in the fastqueue library ({detail}); please report it",
    ),
    # Python closes a handle only once no thread is inside a call on it, so this never reaches
    # Python's callers unless the binding has a bug.
    # The binding never lets fq_take see a busy buffer (one buffer per caller at a time).
    _ffi.ERR_BUSY: (
        InternalError,
        None,
        "{op}: a receive buffer was in use twice ({detail}); this is a bug in fastqueue's "
        "Python binding, please report it",
    ),
    _ffi.ERR_CLOSED: (
        InternalError,
        None,
        "{op}: the handle was closed while this call was waiting on it ({detail}); this is a bug "
        "in fastqueue's Python binding, please report it",
    ),
}


def _advice(diagnosis: Diagnosis, name: str) -> str:
    """What to do about the segment ``name`` diagnosed as ``diagnosis``."""
    unlink = _UNLINK_HINT.format(name=name)
    if diagnosis.kind == "foreign":
        return (
            "it is not fastqueue's and was left alone: choose another name (or, if "
            f"{SHM_DIR}/{name} is yours and unwanted, remove it yourself)"
        )
    if diagnosis.reason.startswith(OTHER_VERSION):
        return f"attach with a fastqueue of that layout version, or {unlink}"
    if diagnosis.reason in (NEVER_FINISHED, EMPTY_FILE):
        # fastqueue.unlink refuses an empty or zeroed file (it may be another program's).
        return (
            "wait and retry, or if no process is creating it and it is no other program's, "
            f"remove it with fastqueue.unlink({name!r}, force=True)"
        )
    return unlink


def unlink_refused(status: int, op: str, name: str) -> SegmentError:
    """The error for ``fastqueue.unlink`` refusing to remove what is not a fastqueue segment
    (``status`` is ``ERR_BAD_SEGMENT`` or ``ERR_NOT_READY``); the file stays."""
    if status == _ffi.ERR_NOT_READY:
        what = (
            "is empty or starts with zeros: a queue an older fastqueue's creator never finished, "
            "or another program's file"
        )
    else:
        what = "is not a fastqueue segment (another program's file, or not a regular file)"
    exc = SegmentError(
        f"{op}: {name!r} {what}, so it was left in place (fastqueue.unlink removes only queues); "
        f"only if you know it is garbage, fastqueue.unlink({name!r}, force=True) removes it"
    )
    exc.status = status
    return exc


#: Why creation timed out: the lock that makes every creator's memory check and reservation one
#: step (core/src/memlimit.rs) stayed held.
_GUARD_TIMEOUT: Final = (
    " (another process held fastqueue's creation lock, an exclusive flock on /dev/shm, for 10 "
    "seconds, so the room for the queue could not be checked and reserved safely; retry, and if "
    "it keeps happening find the process that holds it: the FLOCK lines of /proc/locks name it)"
)


def _memory_room() -> str:
    room = _ffi.memory_room()
    return "any amount" if room >= 2**64 - 1 else nbytes(room)


def _shm_free() -> str:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return "an unknown number of bytes free"
    return nbytes(st.f_bavail * st.f_frsize, " free")


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
        if err == errno.ETIMEDOUT:  # only creation's memory guard reports it (core/memlimit.rs)
            detail += _GUARD_TIMEOUT
    diagnosis, advice = detail, _UNLINK_HINT.format(name=name)
    if status == _ffi.ERR_BAD_SEGMENT:  # (undiagnosed: it may be another program's file)
        advice = "it may be another program's file, so it was left alone: choose another name"
    elif status == _ffi.ERR_NOT_READY:
        advice = _advice(Diagnosis("unusable", NEVER_FINISHED), name or "?")
    if cls is SegmentError and name:
        found = diagnose(name, status)
        if found.kind not in ("queue", "missing"):  # (else it changed meanwhile: the
            diagnosis, advice = found.reason, _advice(found, name)  # library's word stands)
    message = template.format(
        op=op,
        diagnosis=diagnosis,
        advice=advice,
        name=name if name is not None else "?",
        queue=queue_called(name),
        detail=detail,
        needed=nbytes(needed) if needed is not None else "an unknown number of bytes",
        free=_shm_free() if status == _ffi.ERR_NO_SPACE else "",
        room=_memory_room() if status == _ffi.ERR_NO_SPACE else "",
        status=status,
    )
    # OSError subclasses take (errno, strerror) and then show "[Errno N] message".
    exc = cls(err, message) if err is not None else cls(message)
    exc.status = status
    return exc
