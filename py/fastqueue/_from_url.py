"""``fastqueue.from_url``: one URL chooses the transport, so that the same code runs on one host
(a queue in shared memory) or across hosts (a Redis stream).

- ``shm:NAME``: a local queue in ``/dev/shm/NAME`` (:class:`~fastqueue.Queue` and its flavours);
- ``redis://HOST:PORT/DB/STREAM``, ``rediss://…`` (TLS), ``unix:///path.sock?db=N&stream=NAME``:
  a Redis stream (:class:`~fastqueue.RedisQueue` and its flavours; redis-py is imported only
  then).

This module imports nothing of the Redis backend until a Redis URL is given.
"""

from __future__ import annotations

from typing import Any

from ._errors import ArgumentTypeError, InvalidArgumentError
from .objects import JoinableObjectQueue, JoinableQueue, ObjectQueue
from .queue import Queue

__all__ = ["from_url"]

#: The options each transport takes (``capacity`` is the bound of both: a Redis stream's
#: ``maxsize``).
_SHM = ("element_size", "capacity", "create", "mode", "redeliver", "leases", "serializer")
_REDIS = (
    "element_size",
    "capacity",
    "maxsize",
    "create",
    "claim_after",
    "redeliver",
    "serializer",
)


def _refuse(url: str, name: str, allowed: tuple[str, ...], objects: bool) -> None:
    if name == "serializer" and not objects:
        raise InvalidArgumentError(
            f"from_url({url!r}): serializer= is for queues of objects: pass objects=True"
        )
    if name not in allowed:
        raise InvalidArgumentError(
            f"from_url({url!r}): unknown option {name}= for this kind of queue; it takes "
            + ", ".join(a for a in allowed if objects or a != "serializer")
        )


def from_url(url: str, *, objects: bool = False, joinable: bool = False, **options: Any) -> Any:
    """The queue that ``url`` names, with ``options``: a local queue for ``shm:NAME``, a Redis
    one for ``redis://``, ``rediss://`` and ``unix://`` URLs.

    ``objects=True`` gives the queue of Python objects (:class:`~fastqueue.ObjectQueue`,
    :class:`~fastqueue.RedisObjectQueue`), ``joinable=True`` the joinable flavour (every queue
    has ``task_done`` / ``join``; these read like ``multiprocessing.JoinableQueue``).

    Options of both: ``element_size``, ``capacity`` (the bound: a local queue's slots, a
    stream's ``maxsize``), ``create`` (default True: make the queue, or the stream if missing;
    False: attach to an existing one), ``redeliver``, ``leases``, and ``serializer`` with
    ``objects=True``.
    Local only: ``mode``. Redis only: ``claim_after`` (and ``maxsize``, the same as
    ``capacity``). Anything else raises :class:`~fastqueue.InvalidArgumentError`.

    >>> import fastqueue
    >>> with fastqueue.from_url("shm:from-url-doc", objects=True, element_size=256,
    ...                         capacity=8) as q:
    ...     q.put({"job": 1}); q.get()
    {'job': 1}
    """
    if not isinstance(url, str):
        raise ArgumentTypeError(f"url must be a str such as 'shm:jobs' or 'redis://…', not {url!r}")
    for flag, value in (("objects", objects), ("joinable", joinable)):
        if not isinstance(value, bool):
            raise ArgumentTypeError(f"from_url: {flag} must be True or False, not {value!r}")
    if url.startswith("shm:"):
        return _local(url, objects, joinable, options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _redis(url, objects, joinable, options)
    raise InvalidArgumentError(
        f"from_url({url!r}): the URL must start with shm: (a local queue, e.g. shm:jobs) or "
        "redis://, rediss:// or unix:// (a Redis stream, e.g. redis://localhost:6379/0/jobs)"
    )


def _local(url: str, objects: bool, joinable: bool, options: dict[str, Any]) -> Any:
    name = url[len("shm:") :]
    if not name or name.startswith("/"):
        raise InvalidArgumentError(
            f"from_url({url!r}): a local queue's URL is shm:NAME (e.g. shm:jobs, the queue "
            "/dev/shm/jobs)"
        )
    for key in options:
        _refuse(url, key, _SHM, objects)
    cls: type[Queue] = (
        (JoinableObjectQueue if joinable else ObjectQueue)
        if objects
        else (JoinableQueue if joinable else Queue)
    )
    keywords = {
        k: options.pop(k) for k in ("mode", "serializer", "redeliver", "leases") if k in options
    }
    return cls(
        name,
        options.get("element_size"),
        options.get("capacity"),
        options.get("create", True),
        **keywords,
    )


def _redis(url: str, objects: bool, joinable: bool, options: dict[str, Any]) -> Any:
    for key in options:
        if key == "mode":
            raise InvalidArgumentError(
                f"from_url({url!r}): mode= (file permissions) is for shm: queues; a Redis "
                "stream has none (use Redis' ACLs)"
            )
        _refuse(url, key, _REDIS, objects)
    if "capacity" in options:
        if "maxsize" in options:
            raise InvalidArgumentError(
                f"from_url({url!r}): give capacity= or maxsize= (the same bound), not both"
            )
        options["maxsize"] = options.pop("capacity")
    from . import _redis as backend

    if objects:
        cls = backend.JoinableRedisObjectQueue if joinable else backend.RedisObjectQueue
        return cls(url, **options)
    return backend.RedisQueue(url, **options)
