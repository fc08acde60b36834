"""RedisQueue: the :class:`~fastqueue.Queue` API on a Redis stream, for queues that span hosts.

One stream (its key is the URL's STREAM) with one consumer group, ``fastqueue``, holds the
messages; each message is one stream entry with one field, ``d``. Every handle is a consumer of
its own in that group (a handle unpickled in a child process, or inherited by a forked child, gets
a fresh consumer name), so each message goes to exactly one consumer. How each operation maps onto
Redis, in one round trip each:

- **put** / **put_many**: one Lua script checks the bound and appends (``XLEN``, then ``XADD`` per
  message), atomically; with ``maxsize > 0`` it appends only what fits and says how many it did.
  The stream is never trimmed: a message leaves it only when a consumer has acknowledged it.
- **get** / **get_many**: one Lua script takes up to n messages and acknowledges them for good
  before anything is returned: first ``XAUTOCLAIM`` of messages that another consumer was handed
  but left unacknowledged for ``claim_after`` seconds (it died), then ``XREADGROUP`` of new ones,
  then ``XACK`` and ``XDEL`` of all of them. Redis runs a script atomically and persists its
  effects together (AOF), so a message is either still in the stream or acknowledged and on its
  way to exactly one caller. As with :class:`~fastqueue.Queue`, a consumer killed after that
  script ran and before ``get`` returned (its reply in flight) loses those messages, and only
  those.
- **waiting**: a get that finds nothing waits with ``XREAD BLOCK`` from the group's
  last-delivered id (it wakes when a new entry arrives and takes nothing), then tries again; the
  wait is cut into slices of at most a second (and at most ``claim_after / 2``), so abandoned
  messages are claimed, a closed handle noticed and Ctrl-C honoured. A put that finds the
  stream full polls with backoff (1 ms doubling to 25 ms): Redis has no "wait for a delete".
- **get_slot**: the at-least-once form. ``with q.get_slot() as msg:`` is handed the message
  unacknowledged (``XREADGROUP``) and acknowledges it when the block ends normally; if the block
  raises or the process dies, the message stays pending and is re-delivered to some consumer once
  it has been idle ``claim_after`` seconds.
- **qsize**: ``XLEN``: messages not yet acknowledged (waiting, or handed out by get_slot or a
  bridge), the count ``maxsize`` bounds.

``redis`` (redis-py) is imported by the first RedisQueue (``pip install "fastqueue[redis]"``);
URLs and argument checks are in _url. Usage (needs a Redis server)::

    q = fastqueue.RedisQueue("redis://localhost:6379/0/jobs", maxsize=10_000)
    q.put(b"job 1"); q.get()      # b'job 1', on any host
    q.put_many([b"a", b"b"]); q.get_many(100)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Final

from .._args import check_timeout as _check_timeout
from .._errors import (
    ArgumentTypeError,
    Empty,
    FastQueueError,
    Full,
    InvalidArgumentError,
    MessageTooBigError,
    QueueClosedError,
    QueueOSError,
)
from ._scripts import ACK as _ACK
from ._scripts import FORGET as _FORGET
from ._scripts import PUT as _PUT
from ._scripts import TAKE as _TAKE  # the scripts, one per operation
from ._url import as_bytes as _as_bytes
from ._url import check_claim as _check_claim
from ._url import masked as _masked
from ._url import parse_url
from ._url import redis_module as _redis_module

__all__ = ["GROUP", "QueueClosedError", "RedisQueue", "parse_url"]

#: The consumer group every RedisQueue handle of a stream belongs to.
GROUP: Final = b"fastqueue"
#: The stream entry's one field, holding the message.
FIELD: Final = b"d"
#: Longest single wait (seconds) of a blocked get or put, so that claims, close and Ctrl-C are
#: noticed.
WAIT_SLICE_S: Final = 1.0
#: Messages per Lua call in a script's loops over ids (Lua's unpack() has a stack limit).
_CHUNK: Final = 1000


def _new_consumer() -> bytes:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}".encode()


_live: weakref.WeakSet[RedisQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child shares its parent's handles: give each a consumer name of its own.
    for q in list(_live):
        q._consumer = _new_consumer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RedisQueue:
    """The :class:`~fastqueue.Queue` API on the Redis stream named by ``url``
    (``redis://HOST:PORT/DB/STREAM`` or ``unix:///path/to/redis.sock?db=N&stream=NAME``).

    ``RedisQueue(url, *, maxsize=0, element_size=None, claim_after=30.0)``

    The stream and its consumer group are made if missing; a stream that holds messages keeps
    them. Each handle is a consumer of its own: each message goes to exactly one handle, in
    order, and ``get`` returns it only once it is acknowledged for good (see the module's
    documentation for how). ``maxsize > 0`` bounds the messages not yet acknowledged: ``put``
    waits (or raises :class:`~fastqueue.Full`) while the stream holds that many; 0 means
    unbounded (the bound is this handle's: give every producer the same). ``element_size``,
    when given, is the largest message this handle puts (longer ones raise
    :class:`~fastqueue.MessageTooBigError`). ``claim_after`` (seconds, also an attribute) is how
    long a message handed to a consumer may stay unacknowledged before this handle's gets take
    it over (that consumer is presumed dead).

    A handle pickles as its URL and settings: the copy (in a spawned or forked child) is a new
    consumer. Unreachable servers raise :class:`~fastqueue.QueueOSError`; a closed handle raises
    :class:`QueueClosedError` (a ``ValueError``).
    """

    _closed: bool = True
    _url: str = "?"
    _shown: str = "?"

    def __init__(
        self,
        url: str,
        *,
        maxsize: int = 0,
        element_size: int | None = None,
        claim_after: float = 30.0,
    ) -> None:
        base, stream = parse_url(url)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise InvalidArgumentError(
                f"maxsize must be an int >= 0 (0: unbounded), got {maxsize!r}"
            )
        if element_size is not None and (
            isinstance(element_size, bool) or not isinstance(element_size, int) or element_size < 1
        ):
            raise InvalidArgumentError(
                f"element_size must be an int >= 1 or None, got {element_size!r}"
            )
        self.claim_after = _check_claim(claim_after)
        redis_mod = _redis_module()
        self._url = url
        self._shown = _masked(url)
        self._base = base
        self._stream = stream
        self._key = stream.encode()
        self._maxsize = maxsize
        self._element_size = element_size
        self._consumer = _new_consumer()
        # redis-py's own annotations leave execute_command untyped: the client is Any here.
        self._r: Any = redis_mod.Redis.from_url(base)
        self._errors: tuple[type[BaseException], ...] = (
            redis_mod.exceptions.ConnectionError,
            redis_mod.exceptions.TimeoutError,
        )
        self._response_error: type[Exception] = redis_mod.exceptions.ResponseError
        self._noscript: type[Exception] = redis_mod.exceptions.NoScriptError
        self._shas: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._ensure_group()
        _live.add(self)

    # ------------------------------------------------------------------------------ plumbing

    @property
    def url(self) -> str:
        """The URL this handle was made with."""
        return self._url

    @property
    def name(self) -> str:
        """The stream's key."""
        return self._stream

    @property
    def maxsize(self) -> int:
        """The bound on unacknowledged messages (0: unbounded)."""
        return self._maxsize

    @property
    def element_size(self) -> int | None:
        """The largest message this handle puts, or None (no limit)."""
        return self._element_size

    @property
    def consumer(self) -> str:
        """This handle's consumer name in the stream's group."""
        return self._consumer.decode()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _closed_error(self) -> QueueClosedError:
        return QueueClosedError(f"operation on a closed queue: {self!r} is closed")

    def _check_open(self) -> Any:
        if self._closed:
            raise self._closed_error()
        return self._r

    def _os_error(self, exc: BaseException, op: str) -> QueueOSError:
        err = QueueOSError(
            f"RedisQueue({self._shown!r}).{op}: cannot reach the Redis server ({exc}); check that "
            "redis-server is running there and the URL is right"
        )
        err.status = 0
        return err

    def _call(self, op: str, *args: Any) -> Any:
        """One command; connection failures become QueueOSError, other refusals a
        FastQueueError; a missing group is made."""
        r = self._check_open()
        try:
            try:
                return r.execute_command(*args)
            except self._response_error as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                self._ensure_group()
                return r.execute_command(*args)
        except self._errors as exc:
            if self._closed:
                raise self._closed_error() from exc
            raise self._os_error(exc, op) from exc
        except self._noscript:
            raise  # _script loads the script again
        except self._response_error as exc:
            raise self._refused(exc, op) from exc

    def _refused(self, exc: BaseException, op: str) -> FastQueueError:
        return FastQueueError(
            f"RedisQueue({self._shown!r}).{op}: the Redis server refused: {exc} (is the key "
            f"{self._stream!r} a stream? RedisQueue needs Redis >= 7.0)"
        )

    def _script(self, op: str, script: bytes, *args: Any) -> Any:
        """EVALSHA of one of the scripts above with the stream as its key (loaded on first use
        and again after a server restart emptied the script cache)."""
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = self._call(op, "SCRIPT", "LOAD", script)
        try:
            return self._call(op, "EVALSHA", sha, 1, self._key, *args)
        except self._noscript:
            self._shas[script] = self._call(op, "SCRIPT", "LOAD", script)
            return self._call(op, "EVALSHA", self._shas[script], 1, self._key, *args)

    def _ensure_group(self) -> None:
        try:
            self._r.execute_command("XGROUP", "CREATE", self._key, GROUP, "0", "MKSTREAM")
        except self._response_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise self._refused(exc, "connect") from exc
        except self._errors as exc:
            raise self._os_error(exc, "connect") from exc

    # ------------------------------------------------------------------------------ put

    def _check_item(self, item: object) -> bytes:
        data = _as_bytes(item)
        if self._element_size is not None and len(data) > self._element_size:
            raise MessageTooBigError(
                f"message of {len(data)} bytes is longer than RedisQueue({self._shown!r})'s "
                f"element_size of {self._element_size} bytes"
            )
        return data

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        """Appends ``item`` (bytes-like) to the stream. With ``maxsize > 0`` and the stream
        full, waits (forever if ``timeout`` is None, else at most ``timeout`` seconds, then
        raises :class:`~fastqueue.Full`); with ``block=False`` raises ``Full`` at once."""
        self._put_batch([self._check_item(item)], block, timeout)

    def put_nowait(self, item: object) -> None:
        """``put(item, block=False)``."""
        self._put_batch([self._check_item(item)], False, None)

    def put_many(
        self,
        items: Iterable[object] | object,
        block: bool = True,
        timeout: float | None = None,
        *,
        itemsize: int | None = None,
    ) -> None:
        """Appends every item, in order, in one round trip (one script) per attempt. Every
        item is checked first (a bad one rejects the batch). With ``maxsize > 0`` as much as
        fits goes in at once and the rest waits as :meth:`put` does; if the time runs out,
        :class:`~fastqueue.Full` is raised with the number of items put (the first ones) in
        its ``done`` attribute. ``itemsize=k``: ``items`` is one bytes-like object of records
        of k bytes back to back, as for :meth:`Queue.put_many <fastqueue.Queue.put_many>`."""
        if itemsize is not None:
            if isinstance(itemsize, bool) or not isinstance(itemsize, int) or itemsize < 1:
                raise InvalidArgumentError(f"itemsize must be an int >= 1, got {itemsize!r}")
            whole = _as_bytes(items)
            if len(whole) % itemsize:
                raise InvalidArgumentError(
                    f"put_many(itemsize={itemsize}): {len(whole)} bytes is not a multiple of "
                    "itemsize"
                )
            batch = [
                self._check_item(whole[i : i + itemsize]) for i in range(0, len(whole), itemsize)
            ]
        else:
            if isinstance(items, (bytes, bytearray, memoryview, str)):
                raise ArgumentTypeError(
                    "put_many takes an iterable of messages (or one buffer with itemsize=), "
                    f"not a single {type(items).__name__}"
                )
            seq: list[Any] = items if type(items) is list else list(items)  # type: ignore[call-overload]
            if self._element_size is None and all(type(i) is bytes for i in seq):
                batch = seq  # nothing to convert or check (the bridge's case)
            else:
                batch = [self._check_item(i) for i in seq]
        if batch:
            self._put_batch(batch, block, timeout)

    def _put_batch(self, batch: list[bytes], block: bool, timeout: float | None) -> None:
        deadline = None
        if block and timeout is not None:
            deadline = time.monotonic() + _check_timeout(timeout)
        self._check_open()
        done = 0
        pause = 0.001
        while True:
            done += int(self._script("put", _PUT, self._maxsize, *batch[done:]))
            if done == len(batch):
                return
            if not block or (deadline is not None and time.monotonic() >= deadline):
                full = Full()
                full.done = done  # type: ignore[attr-defined]
                raise full
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 2, 0.025)
            self._check_open()

    # ------------------------------------------------------------------------------ get

    def _take(
        self, n: int, ack: bool = True, ack_first: list[bytes] | None = None
    ) -> tuple[bytes, int, list[bytes], list[bytes]]:
        """One take script (_scripts.TAKE): (wait cursor, acked, ids, messages); the
        cursor is b"" when something was taken, the lists are empty when not. ``ack_first``:
        ids taken earlier without acknowledgement, acknowledged first (``acked`` of them
        were)."""
        reply = self._script(
            "get",
            _TAKE,
            GROUP,
            self._consumer,
            n,
            int(self.claim_after * 1000),
            int(ack),
            b",".join(ack_first) if ack_first else b"",
        )
        if len(reply) == 2:
            return reply[0], int(reply[1]), [], []
        _, _, ids, lens, data = reply
        msgs = []
        pos = 0
        for size in map(int, lens.split(b",")):
            end = pos + size
            msgs.append(data[pos:end])
            pos = end
        return b"", int(reply[1]), ids.split(b","), msgs

    def _slice(self, deadline: float | None) -> float | None:
        """Seconds of the next wait; None when the deadline has passed."""
        longest = min(WAIT_SLICE_S, max(self.claim_after / 2, 0.01))
        if deadline is None:
            return longest
        left = deadline - time.monotonic()
        return None if left <= 0 else min(left, longest)

    def _wait_readable(self, cursor: bytes, seconds: float) -> None:
        """Waits (taking nothing) until an entry newer than ``cursor`` exists, or ``seconds``."""
        ms = max(1, math.ceil(seconds * 1000))
        self._call("get", "XREAD", "BLOCK", ms, "COUNT", 1, "STREAMS", self._key, cursor)

    def _get_batch(
        self, n: int, block: bool, timeout: float | None, ack: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """Up to n messages, waiting as get does: (ids, messages)."""
        deadline = None
        if block and timeout is not None:
            deadline = time.monotonic() + _check_timeout(timeout)
        while True:
            cursor, _, ids, msgs = self._take(n, ack)
            if msgs:
                return ids, msgs
            seconds = self._slice(deadline) if block else None
            if seconds is None:
                raise Empty
            self._wait_readable(cursor, seconds)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Removes and returns the oldest message (acknowledged for good), as bytes. Waits as
        :meth:`Queue.get <fastqueue.Queue.get>` does and raises :class:`~fastqueue.Empty`
        when nothing came in time."""
        return self._get_batch(1, block, timeout, True)[1][0]

    def get_nowait(self) -> bytes:
        """``get(block=False)``."""
        return self._get_batch(1, False, None, True)[1][0]

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[bytes]:
        """Removes and returns up to ``max_items`` (>= 1) of the oldest messages, in order, in
        one round trip: waits as :meth:`get` does for the first, then takes what is there."""
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise InvalidArgumentError(f"max_items must be an int >= 1, got {max_items!r}")
        return self._get_batch(max_items, block, timeout, True)[1]

    @contextlib.contextmanager
    def get_slot(self, block: bool = True, timeout: float | None = None) -> Iterator[bytes]:
        """At-least-once processing: ``with q.get_slot() as msg:`` hands over the oldest message
        unacknowledged and acknowledges it when the block ends normally. If the block raises, or
        the process dies inside it, the message stays pending and is re-delivered to a consumer
        (any handle's get) once it has been idle ``claim_after`` seconds. A block that outlives
        another consumer's ``claim_after`` may see its message delivered twice (a warning says
        so). Unlike :meth:`Queue.get_slot <fastqueue.Queue.get_slot>` the message is a copy."""
        ids, payloads = self._get_batch(1, block, timeout, False)
        yield payloads[0]
        if self._ack(ids) != 1:
            warnings.warn(
                f"RedisQueue({self._shown!r}).get_slot: the message was claimed by another "
                f"consumer while this block ran longer than claim_after={self.claim_after}s; it "
                "may have been processed twice",
                RuntimeWarning,
                stacklevel=3,
            )

    def _take_pending(
        self, n: int, timeout: float, ack_first: list[bytes] | None = None
    ) -> tuple[int, list[bytes], list[bytes]]:
        """Up to n messages handed to this consumer, NOT acknowledged, waiting at most
        ``timeout`` seconds for the first: (acked, ids, messages), the lists empty if none came.
        ``ack_first``: ids taken so earlier, acknowledged first in the same round trip
        (``acked`` of them were still this consumer's)."""
        deadline = time.monotonic() + timeout
        acked = 0
        while True:
            cursor, done, ids, msgs = self._take(n, False, ack_first)
            acked += done
            ack_first = None
            seconds = self._slice(deadline)
            if msgs or seconds is None:
                return acked, ids, msgs
            self._wait_readable(cursor, seconds)

    def _ack(self, ids: list[bytes]) -> int:
        """Acknowledges (and deletes) those of ``ids`` still pending to this consumer; returns
        how many were."""
        if not ids:
            return 0
        return int(self._script("ack", _ACK, GROUP, self._consumer, b",".join(ids)))

    def _own_pending(self, n: int) -> tuple[list[bytes], list[bytes]]:
        """Up to n messages already pending to this consumer (handed to an earlier handle of
        the same consumer name that did not acknowledge them): (ids, payloads)."""
        reply = self._call(
            "get",
            "XREADGROUP",
            "GROUP",
            GROUP,
            self._consumer,
            "COUNT",
            n,
            "STREAMS",
            self._key,
            "0",
        )
        ids: list[bytes] = []
        payloads: list[bytes] = []
        for entry_id, fields in reply[0][1] if reply else []:
            if not fields:  # deleted meanwhile: nothing to deliver
                continue
            ids.append(entry_id)
            if not isinstance(fields, dict):  # redis-py gives a dict; a flat list otherwise
                fields = dict(zip(fields[0::2], fields[1::2]))
            payloads.append(fields.get(FIELD, b""))
        return ids, payloads

    # ------------------------------------------------------------------------------ asyncio

    async def aget(self, timeout: float | None = None) -> bytes:
        """``await q.aget()``: :meth:`get` without blocking the event loop. The take itself (one
        round trip) runs on the loop's thread, so cancelling never loses a message; the waiting
        (which takes nothing) runs in a worker thread, at most one slice at a time."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
        while True:
            cursor, _, _, msgs = self._take(1)
            if msgs:
                return msgs[0]
            seconds = self._slice(deadline)
            if seconds is None:
                raise Empty
            await loop.run_in_executor(None, self._wait_readable, cursor, seconds)

    async def aput(self, item: object, timeout: float | None = None) -> None:
        """``await q.aput(item)``: :meth:`put` without blocking the event loop (a full stream
        is polled with backoff, by sleeping coroutines)."""
        data = self._check_item(item)
        deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
        pause = 0.001
        while True:
            try:
                self._put_batch([data], False, None)
                return
            except Full:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.025)

    # ------------------------------------------------------------------------------ size

    def qsize(self) -> int:
        """Messages in the stream not yet acknowledged (waiting, or handed out unacknowledged)."""
        return int(self._call("qsize", "XLEN", self._key))

    def empty(self) -> bool:
        """True if the stream holds no unacknowledged message."""
        return self.qsize() == 0

    def full(self) -> bool:
        """True if ``maxsize > 0`` and the stream holds ``maxsize`` unacknowledged messages."""
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    def __len__(self) -> int:
        return self.qsize()

    def __bool__(self) -> bool:
        return not self._closed and self.qsize() > 0

    # ------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Leaves the group (when nothing is pending to this consumer; so do other consumers
        with nothing pending, idle longer than ``max(claim_after, 1)`` seconds: handles of
        dead processes) and drops the connections; idempotent. The stream and its messages
        stay. Later calls raise :class:`QueueClosedError`; a call blocked in another thread
        raises it within a slice."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(Exception):
                self._script(
                    "close", _FORGET, GROUP, self._consumer, int(max(self.claim_after, 1.0) * 1000)
                )
            self._closed = True
        with contextlib.suppress(Exception):
            self._r.close()
        _live.discard(self)

    def delete(self) -> None:
        """Removes the stream, its messages and its group from Redis (for every handle)."""
        self._call("delete", "DEL", self._key)

    def __enter__(self) -> RedisQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the URL and settings: the copy is a new consumer of the same stream."""
        if self._closed:
            raise self._closed_error()
        return (
            _rebuild,
            (self._url, self._maxsize, self._element_size, self.claim_after),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<fastqueue.RedisQueue {self._shown!r} maxsize={getattr(self, '_maxsize', 0)} {state}>"
        )


def _rebuild(url: str, maxsize: int, element_size: int | None, claim_after: float) -> RedisQueue:
    return RedisQueue(url, maxsize=maxsize, element_size=element_size, claim_after=claim_after)
