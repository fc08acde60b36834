"""RedisQueue: the :class:`~fastqueue.Queue` API on a Redis stream, for queues that span hosts.

One stream (its key is the URL's STREAM) with one consumer group, ``fastqueue``, holds the
messages; each message is one stream entry with one field, ``d``. Every handle is a consumer of
its own in that group (a handle unpickled in a child process, or inherited by a forked child, gets
a fresh consumer name), so each message goes to exactly one consumer. How each operation maps onto
Redis, in one round trip each:

- **settings**: the stream's ``maxsize`` and ``redeliver`` live in Redis beside it (the hash
  ``STREAM:fq:meta``), set by the handle that made the stream and read by every later one; a
  handle that asks for other values gets :class:`~fastqueue.InvalidArgumentError`.
- **put** / **put_many**: one Lua script checks the bound and appends (``XLEN``, then ``XADD`` per
  message), atomically; with ``maxsize > 0`` it appends only what fits and says how many it did.
  A message leaves the stream only when a consumer has acknowledged it.
- **get** / **get_many**: one Lua script takes up to n messages and acknowledges them for good
  before anything is returned: first ``XAUTOCLAIM`` of messages that another consumer was handed
  but left unacknowledged for ``claim_after`` seconds (it died), then ``XREADGROUP`` of new ones,
  then ``XACK`` of all of them and their removal (``XTRIM MINID`` below the oldest entry still
  pending, ``XDEL`` of those acknowledged out of order). Redis runs a script atomically and
  persists its
  effects together (AOF), so a message is either still in the stream or acknowledged and on its
  way to exactly one caller. As with :class:`~fastqueue.Queue`, a consumer killed after that
  script ran and before ``get`` returned (its reply in flight) loses those messages, and only
  those.
- **waiting**: a get that finds nothing waits with ``XREAD BLOCK`` from the group's
  last-delivered id (it wakes when a new entry arrives and takes nothing), then tries again; the
  wait is cut into slices of at most a second (and at most ``claim_after / 2``), so abandoned
  messages are claimed, a closed handle noticed and Ctrl-C honoured. A put that finds the
  stream full joins a line of waiting puts in the same script and sleeps in ``BLPOP`` on a list
  of its own, to which the script that deletes entries pushes a token (first come, first
  served: see :mod:`fastqueue._redis._scripts`).
- **redeliver=True**: a get leaves its message pending (a *lease* of this handle) until
  :meth:`RedisQueue.task_done` acknowledges and deletes it; a consumer that dies holding leases
  has them delivered again once they are ``claim_after`` seconds old, one that closes gives
  them back at once. Re-delivered messages come before new ones, oldest first.
- **task_done** / **join** / **shutdown**: counters and a flag in ``STREAM:fq:meta``, shared by
  every handle on every host; blocked gets and joins also wait on ``STREAM:fq:ctl``, a short
  stream of events (shutdown, everything done).
- **get_slot**: the at-least-once form. ``with q.get_slot() as msg:`` is handed the message
  unacknowledged (``XREADGROUP``) and acknowledges it when the block ends normally; if the block
  raises or the process dies, the message stays pending and is re-delivered to some consumer once
  it has been idle ``claim_after`` seconds.
- **qsize**: ``XLEN``: messages not yet acknowledged (waiting, or handed out by get_slot or a
  bridge), the count ``maxsize`` bounds.

``redis`` (redis-py) is imported by the first RedisQueue (``pip install "fastqueue[redis]"``);
URLs and argument checks are in _url, the connection and settings in _link. Usage (needs a
Redis server)::

    q = fastqueue.RedisQueue("redis://localhost:6379/0/jobs", maxsize=10_000)
    q.put(b"job 1"); q.get()      # b'job 1', on any host
    q.put_many([b"a", b"b"]); q.get_many(100)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from .._args import check_timeout as _check_timeout
from .._errors import (
    ArgumentTypeError,
    Empty,
    Full,
    InvalidArgumentError,
    MessageTooBigError,
    QueueClosedError,
    ShutDown,
)
from . import _scripts
from ._link import FIELD, GROUP, WAIT_SLICE_S, RedisLink
from ._url import as_bytes as _as_bytes
from ._url import parse_url

__all__ = ["GROUP", "QueueClosedError", "RedisQueue", "parse_url"]

#: Most bytes of messages one put script gets (a larger batch goes in parts).
_PUT_BYTES: Final = 64 << 20
#: Numbers the blocking puts of this process (each waits in the line under a name of its own).
_waits = itertools.count()
#: A wait in BLOCK calls: (the group's last-delivered id, the control stream's last id).
_Wait = tuple[bytes, bytes]


def _full(done: int) -> Full:
    full = Full()
    full.done = done  # type: ignore[attr-defined]
    return full


class RedisQueue(RedisLink):
    """The :class:`~fastqueue.Queue` API on the Redis stream named by ``url``
    (``redis://HOST:PORT/DB/STREAM`` or ``unix:///path/to/redis.sock?db=N&stream=NAME``).

    ``RedisQueue(url, *, maxsize=None, element_size=None, claim_after=30.0, redeliver=None,
    create=True)``

    The stream and its consumer group are made if missing (``create=False``: a missing stream
    raises :class:`~fastqueue.QueueNotFoundError`); a stream that holds messages keeps them.
    Each handle is a consumer of its own: each message goes to exactly one handle, in order.
    ``maxsize > 0`` bounds the messages not yet acknowledged: ``put`` waits (or raises
    :class:`~fastqueue.Full`) while the stream holds that many; 0 means unbounded. It is the
    stream's: the handle that makes the stream sets it (None: 0), later handles read it, and
    one that asks for another value gets :class:`~fastqueue.InvalidArgumentError` naming both.
    ``redeliver`` (the stream's too, default False): a get hands its message over *leased*,
    acknowledged by :meth:`task_done`; without it, ``get`` returns a message once it is
    acknowledged for good. ``element_size``, when given, is the largest message this handle
    puts (longer ones raise :class:`~fastqueue.MessageTooBigError`). ``claim_after`` (seconds,
    also an attribute) is how long a message handed to a consumer may stay unacknowledged before
    this handle's gets take it over (that consumer is presumed dead).

    ``task_done`` / ``join`` and ``shutdown`` mean what they mean for
    :class:`~fastqueue.Queue`, for every handle on every host.

    A handle pickles as its URL and settings: the copy (in a spawned or forked child) is a new
    consumer. Unreachable servers raise :class:`~fastqueue.QueueOSError`; a closed handle raises
    :class:`QueueClosedError` (a ``ValueError``).
    """

    #: How _take cuts a message out of the reply's data (None: a bytes slice); the object
    #: queue cuts frames with out-of-band buffers into writable memory.
    _cut: Callable[[bytes, int, int], Any] | None = None

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

    def _put_once(self, me: bytes, stay: bool, batch: list[bytes]) -> int:
        """One put script: how many of the first messages went in (ShutDown if none can)."""
        if len(batch) == 1:
            lens, data = b"%d" % len(batch[0]), batch[0]
        elif not batch:  # (only leaves the line)
            lens, data = b"", b""
        else:
            sizes = list(map(len, batch))
            if sum(sizes) > _PUT_BYTES:  # (Redis takes arguments of at most 512 MiB)
                return self._put_in_parts(me, stay, batch, sizes)
            lens, data = ",".join(map(str, sizes)).encode(), b"".join(batch)
        done = int(self._script("put", _scripts.PUT, self._maxsize, me, int(stay), lens, data))
        if done < 0:
            raise ShutDown(f"{self._label}({self._shown!r}).put: the queue was shut down")
        return done

    def _put_in_parts(self, me: bytes, stay: bool, batch: list[bytes], sizes: list[int]) -> int:
        """_put_once of a batch of more than _PUT_BYTES, a script per part of at most that
        much (or one message), until one part does not fit whole."""
        done = 0
        while done < len(batch):
            end, total = done + 1, sizes[done]
            while end < len(batch) and total + sizes[end] <= _PUT_BYTES:
                total += sizes[end]
                end += 1
            try:
                n = self._put_once(me, stay, batch[done:end])
            except ShutDown:
                if done:
                    return done
                raise
            if n < end - done:
                return done + n
            done = end
        return done

    def _put_batch(self, batch: list[bytes], block: bool, timeout: float | None) -> None:
        """Puts ``batch`` in order. A put that does not fit waits in the stream's line of puts
        (see _scripts): asleep in BLPOP on a list of its own until a get makes room for it, or
        a slice passes (then it tries again, staying in the line)."""
        self._check_open()
        done = 0
        if not block or self._maxsize == 0:  # (an unbounded stream: no waiting, the short way)
            done = self._put_once(b"", False, batch)
            if done == len(batch):
                return
            if not block:
                raise _full(done)
        deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
        me = b"%s:%d" % (self._consumer, next(_waits))
        seconds = self._slice(deadline)
        try:
            while True:
                done += self._put_once(me, seconds is not None, batch[done:] if done else batch)
                if done == len(batch):
                    return
                if seconds is None:  # the last try left the line
                    raise _full(done)
                self._call("put", "BLPOP", self._line + b":" + me, f"{seconds:.3f}")
                self._check_open()
                seconds = self._slice(deadline)
        except (Full, ShutDown):
            raise  # out of the line already
        except BaseException:
            # Ctrl-C, a lost server, a close: leave the line now rather than hold a place
            # until the line forgets a silent waiter (_scripts.STALE_MS).
            if not self._closed:
                with contextlib.suppress(Exception):
                    self._put_once(me, False, [])
            raise

    # ------------------------------------------------------------------------------ get

    def _take(
        self, n: int, ack: bool = True, ack_first: list[bytes] | None = None
    ) -> tuple[_Wait, int, list[bytes], list[Any]]:
        """One take script (_scripts.TAKE): (wait, acked, ids, messages); the lists are empty
        when nothing was taken, and then ``wait`` says where a blocked get waits from.
        ``ack_first``: ids taken earlier without acknowledgement, acknowledged first (``acked``
        of them were). Raises ShutDown if the queue is shut down and nothing is left. The
        messages are bytes, or what ``_cut`` makes."""
        reply = self._script(
            "get",
            _scripts.TAKE,
            GROUP,
            self._consumer,
            n,
            int(self.claim_after * 1000),
            int(ack),
            b",".join(ack_first) if ack_first else b"",
        )
        if reply[0] == b"S":
            raise ShutDown(f"{self._label}({self._shown!r}).get: the queue was shut down")
        if len(reply) == 3:
            return (reply[0], reply[2]), int(reply[1]), [], []
        _, _, ids, lens, data = reply
        msgs: list[Any] = []
        pos = 0
        cut = self._cut
        for size in map(int, lens.split(b",")):
            end = pos + size
            msgs.append(data[pos:end] if cut is None else cut(data, pos, end))
            pos = end
        return (b"", b""), int(reply[1]), ids.split(b","), msgs

    def _slice(self, deadline: float | None) -> float | None:
        """Seconds of the next wait; None when the deadline has passed."""
        longest = min(WAIT_SLICE_S, max(self.claim_after / 2, 0.01))
        if deadline is None:
            return longest
        left = deadline - time.monotonic()
        return None if left <= 0 else min(left, longest)

    def _wait_readable(self, wait: _Wait, seconds: float) -> None:
        """Waits (taking nothing) until an entry newer than ``wait`` exists in the stream or
        its control stream (shutdown, everything done), or ``seconds`` passed."""
        ms = max(1, math.ceil(seconds * 1000))
        ctl = self._keys[5]
        self._call("get", "XREAD", "BLOCK", ms, "COUNT", 1, "STREAMS", self._key, ctl, *wait)

    def _get_batch(
        self, n: int, block: bool, timeout: float | None, ack: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """Up to n messages, waiting as get does: (ids, messages)."""
        deadline = None
        if block and timeout is not None:
            deadline = time.monotonic() + _check_timeout(timeout)
        lease = ack and self._redeliver
        while True:
            wait, _, ids, msgs = self._take(n, ack and not lease)
            if msgs:
                if lease:
                    self._leases.extend(ids)
                return ids, msgs
            seconds = self._slice(deadline) if block else None
            if seconds is None:
                raise Empty
            self._wait_readable(wait, seconds)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Removes and returns the oldest message (acknowledged for good; with ``redeliver``,
        leased until :meth:`task_done`), as bytes. Waits as :meth:`Queue.get
        <fastqueue.Queue.get>` does and raises :class:`~fastqueue.Empty` when nothing came in
        time, :class:`~fastqueue.ShutDown` when the queue is shut down and drained."""
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
            wait, done, ids, msgs = self._take(n, False, ack_first)
            acked += done
            ack_first = None
            seconds = self._slice(deadline)
            if msgs or seconds is None:
                return acked, ids, msgs
            self._wait_readable(wait, seconds)

    def _ack(self, ids: list[bytes]) -> int:
        """Acknowledges (and deletes) those of ``ids`` still pending to this consumer; returns
        how many were."""
        if not ids:
            return 0
        return int(self._script("ack", _scripts.ACK, GROUP, self._consumer, b",".join(ids)))

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
            wait, _, ids, msgs = self._take(1, not self._redeliver)
            if msgs:
                if self._redeliver:
                    self._leases.extend(ids)
                msg: bytes = self._out(msgs[0])
                return msg
            seconds = self._slice(deadline)
            if seconds is None:
                raise Empty
            await loop.run_in_executor(None, self._wait_readable, wait, seconds)

    def _out(self, frame: Any) -> Any:
        """What aget returns for a message (the object queue decodes it)."""
        return frame

    async def aput(self, item: object, timeout: float | None = None) -> None:
        """``await q.aput(item)``: :meth:`put` without blocking the event loop (a full stream
        is polled with backoff, by sleeping coroutines; they do not wait in the line)."""
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

    # ------------------------------------------------------------------------------ tasks

    def task_done(self) -> None:
        """Marks one message as processed, as :meth:`Queue.task_done
        <fastqueue.Queue.task_done>` does; the count lives in Redis, so any handle on any host
        may mark a message done. With ``redeliver`` it acknowledges (and deletes) this handle's
        oldest lease. Raises :class:`~fastqueue.InvalidArgumentError` (a ``ValueError``) if
        called more times than there were messages put (with ``redeliver``: than this handle
        got). A lease that another consumer claimed meanwhile (this one held it longer than
        its ``claim_after``) is that consumer's to mark done: a warning says so."""
        lease = b""
        if self._redeliver:
            if not self._leases:
                raise InvalidArgumentError(
                    f"{self._label}({self._shown!r}).task_done() called more times than this "
                    "handle got messages (with redeliver=True each task_done acknowledges one)"
                )
            lease = self._leases[0]
        done = int(self._script("task_done", _scripts.TASK_DONE, GROUP, self._consumer, lease))
        if lease:
            self._leases.popleft()
        if done == 0:
            raise InvalidArgumentError(
                f"{self._label}({self._shown!r}).task_done() called too many times (more than "
                "messages were put)"
            )
        if done < 0:
            warnings.warn(
                f"{self._label}({self._shown!r}).task_done: the message was claimed by another "
                f"consumer while this one held it longer than claim_after={self.claim_after}s; "
                "it may have been processed twice",
                RuntimeWarning,
                stacklevel=2,
            )

    def join(self, timeout: float | None = None) -> bool:
        """Waits until every message ever put has been marked done with :meth:`task_done` (by
        any handle), as :meth:`Queue.join <fastqueue.Queue.join>` does: True once everything
        is done, False if ``timeout`` (seconds) passed first. It sleeps in ``XREAD BLOCK`` on
        the stream's control stream, woken by the task_done that finishes the count."""
        deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
        while True:
            unfinished, ctl = self._script("join", _scripts.JOIN)
            if int(unfinished) == 0:
                return True
            seconds = self._slice(deadline)
            if seconds is None:
                return False
            ms = max(1, math.ceil(seconds * 1000))
            self._call("join", "XREAD", "BLOCK", ms, "COUNT", 1, "STREAMS", self._keys[5], ctl)

    def shutdown(self, immediate: bool = False) -> None:
        """Shuts the queue down for every handle on every host, as :meth:`Queue.shutdown
        <fastqueue.Queue.shutdown>` does: later puts raise :class:`~fastqueue.ShutDown`, gets
        return what is left and then raise it; with ``immediate=True`` every message is
        deleted (and counted done for :meth:`join`) and gets raise ShutDown at once. Every
        blocked put, get and join wakes. It cannot be undone (:meth:`delete` the stream)."""
        self._script("shutdown", _scripts.SHUTDOWN, int(bool(immediate)))

    def __len__(self) -> int:
        return self.qsize()

    def __bool__(self) -> bool:
        return not self._closed and self.qsize() > 0

    # ------------------------------------------------------------------------------ pickling

    def _settings(self) -> dict[str, Any]:
        return {
            "maxsize": self._maxsize,
            "element_size": self._element_size,
            "claim_after": self.claim_after,
            "redeliver": self._redeliver,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the URL and settings: the copy is a new consumer of the same stream."""
        if self._closed:
            raise self._closed_error()
        return (_rebuild, (type(self), self._url, self._settings()))


def _rebuild(cls: type[RedisQueue], url: str, settings: dict[str, Any]) -> RedisQueue:
    return cls(url, **settings)
