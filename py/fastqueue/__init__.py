"""fastqueue: a lock-free multi-producer / multi-consumer queue of byte messages in named POSIX
shared memory, shaped like :class:`queue.Queue`.

>>> import fastqueue
>>> with fastqueue.Queue(element_size=1024, capacity=100) as q:
...     q.put(b"job 1")
...     q.get()
b'job 1'

See :class:`fastqueue.Queue` for the whole interface, :class:`fastqueue.ObjectQueue` for a queue
of Python objects (numpy arrays cross with one copy in and one out), :class:`fastqueue.RedisQueue`
and :func:`fastqueue.from_url` for queues that span hosts, ``aget`` / ``aput`` for asyncio,
``python -m fastqueue --help`` for the command line (``ls``, ``stat``, ``rm``, ``gc``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ArgumentTypeError,
    Empty,
    FastQueueError,
    Full,
    InternalError,
    InvalidArgumentError,
    MessageTooBigError,
    NoSpaceError,
    QueueClosedError,
    QueueExistsError,
    QueueNotFoundError,
    QueueOSError,
    QueuePermissionError,
    SegmentError,
    ShutDown,
    SlotError,
    SlotInUseError,
    TooManyAttachedError,
)
from ._from_url import from_url
from ._paths import include_dir, library_path
from .objects import JoinableObjectQueue, JoinableQueue, ObjectQueue, Serializer
from .queue import Queue, WriteSlot, unlink

if TYPE_CHECKING:
    from ._redis import JoinableRedisObjectQueue, RedisObjectQueue, RedisQueue
    from ._redis._bridge import BridgeReport, bridge

#: Names made on first use (the fastqueue._redis subpackage), so that importing fastqueue never
#: needs the Redis client; RedisQueue itself says what to install when it is missing.
_LAZY = {
    "RedisQueue": "._redis",
    "RedisObjectQueue": "._redis",
    "JoinableRedisObjectQueue": "._redis",
    "bridge": "._redis._bridge",
    "BridgeReport": "._redis._bridge",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastqueue' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the ones made on first use included (so that tools listing the
    package's members, such as Sphinx autodoc, see them)."""
    return sorted(set(globals()) | set(_LAZY))


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python without importlib.metadata
        return "0.1.0"
    try:
        return version("fastqueue")
    except PackageNotFoundError:
        return "0.1.0"


__version__: str = _version()

__all__ = [
    "ArgumentTypeError",
    "BridgeReport",
    "Empty",
    "FastQueueError",
    "Full",
    "InternalError",
    "InvalidArgumentError",
    "JoinableObjectQueue",
    "JoinableQueue",
    "JoinableRedisObjectQueue",
    "MessageTooBigError",
    "NoSpaceError",
    "ObjectQueue",
    "Queue",
    "QueueClosedError",
    "QueueExistsError",
    "QueueNotFoundError",
    "QueueOSError",
    "QueuePermissionError",
    "RedisObjectQueue",
    "RedisQueue",
    "SegmentError",
    "Serializer",
    "ShutDown",
    "SlotError",
    "SlotInUseError",
    "TooManyAttachedError",
    "WriteSlot",
    "__version__",
    "bridge",
    "from_url",
    "include_dir",
    "library_path",
    "unlink",
]

# The exceptions present themselves as fastqueue.X (tracebacks, reprs, pickles). Queue keeps
# fastqueue.queue as its module, where doctest finds its methods' examples.
for _cls in (
    Empty,
    Full,
    FastQueueError,
    QueueExistsError,
    QueueNotFoundError,
    QueuePermissionError,
    NoSpaceError,
    SegmentError,
    ShutDown,
    TooManyAttachedError,
    MessageTooBigError,
    InvalidArgumentError,
    QueueOSError,
    InternalError,
    ArgumentTypeError,
    QueueClosedError,
    SlotError,
    SlotInUseError,
):
    _cls.__module__ = __name__
del _cls
