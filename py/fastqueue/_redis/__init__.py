"""The Redis backend of fastqueue: queues whose messages live in a Redis stream, for work that
spans hosts, and the bridge between a local queue and such a stream.

One module per job:

- ``_url``: connection URLs (``redis://``, ``rediss://``, ``unix://``) and argument checks;
  imports the Redis client (redis-py) only when a queue is made.
- ``_scripts``: the Lua scripts, one per operation (atomic, one round trip each).
- ``_link``: a handle's connection, the stream's settings, the scripts' invocation.
- ``_queue``: :class:`RedisQueue`, the :class:`~fastqueue.Queue` API on a stream.
- ``_objects``: :class:`RedisObjectQueue` and :class:`JoinableRedisObjectQueue`, objects over a
  stream with :class:`~fastqueue.ObjectQueue`'s object layer (``fastqueue._codec``).
- ``_bridge``: :func:`fastqueue.bridge` and ``fastqueue bridge`` (local queue <-> stream).

Importing this package does not import redis-py: ``import fastqueue`` stays free of it, and
``fastqueue.RedisQueue`` says what to install when the client is missing.
"""

from __future__ import annotations

from ._objects import JoinableRedisObjectQueue, RedisObjectQueue
from ._queue import GROUP, QueueClosedError, RedisQueue
from ._url import parse_url

__all__ = [
    "GROUP",
    "JoinableRedisObjectQueue",
    "QueueClosedError",
    "RedisObjectQueue",
    "RedisQueue",
    "parse_url",
]
