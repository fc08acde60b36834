"""One RedisQueue handle's link to its stream: the connection, the stream's settings (made by
the first handle, read by every later one), the scripts' invocation and the mapping of Redis'
failures onto the fastqueue family; closing and deleting. :class:`RedisLink` is the base of
:class:`~fastqueue._redis._queue.RedisQueue`, which adds the queue's calls."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import weakref
from collections import deque
from typing import Any, Final

from .._errors import (
    FastQueueError,
    InvalidArgumentError,
    QueueClosedError,
    QueueNotFoundError,
    QueueOSError,
)
from . import _scripts
from ._url import check_claim, masked, parse_url, redis_module

__all__ = ["FIELD", "GROUP", "WAIT_SLICE_S", "QueueClosedError", "RedisLink"]

#: The consumer group every RedisQueue handle of a stream belongs to.
GROUP: Final = b"fastqueue"
#: The stream entry's one field, holding the message.
FIELD: Final = b"d"
#: Longest single wait (seconds) of a blocked get or put, so that claims, close and Ctrl-C are
#: noticed (and a waiting put stays in the line: see _scripts.STALE_MS).
WAIT_SLICE_S: Final = 1.0


def _new_consumer() -> bytes:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}".encode()


_live: weakref.WeakSet[RedisLink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child shares its parent's handles: give each a consumer name of its own.
    for q in list(_live):
        q._consumer = _new_consumer()
        q._leases = deque()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_count(value: object, what: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgumentError(f"{what} must be an int >= {low} or None, got {value!r}")


class RedisLink:
    """The connection and settings half of a RedisQueue handle (see RedisQueue)."""

    _closed: bool = True
    _url: str = "?"
    _shown: str = "?"
    _maxsize: int = 0
    _label: str = "RedisQueue"
    _redeliver: bool = False

    def __init__(
        self,
        url: str,
        *,
        maxsize: int | None = None,
        element_size: int | None = None,
        claim_after: float = 30.0,
        redeliver: bool | None = None,
        create: bool = True,
    ) -> None:
        base, stream = parse_url(url)
        if maxsize is not None:
            _check_count(maxsize, "maxsize (0: unbounded)", 0)
        if element_size is not None:
            _check_count(element_size, "element_size", 1)
        if redeliver is not None and not isinstance(redeliver, bool):
            raise InvalidArgumentError(f"redeliver must be True, False or None, not {redeliver!r}")
        self.claim_after = check_claim(claim_after)
        redis_mod = redis_module()
        self._url = url
        self._shown = masked(url)
        self._base = base
        self._stream = self._name = stream
        self._key = stream.encode()
        self._keys = (self._key, *(self._key + suffix for suffix in _scripts.KEYS))
        self._line = self._keys[2]
        self._element_size = element_size
        self._consumer = _new_consumer()
        #: Ids this handle got with redeliver and has not acknowledged yet (task_done), oldest
        #: first.
        self._leases: deque[bytes] = deque()
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
        try:
            self._open(maxsize, redeliver, create)
        except BaseException:
            self._closed = True
            with contextlib.suppress(Exception):
                self._r.close()
            raise
        _live.add(self)

    def _open(self, maxsize: int | None, redeliver: bool | None, create: bool) -> None:
        """Makes the stream and its group if missing and reads its settings (INIT)."""
        want_r = "" if redeliver is None else str(int(redeliver))
        reply = self._script(
            "connect",
            _scripts.INIT,
            "" if maxsize is None else maxsize,
            want_r,
            int(bool(create)),
            GROUP,
        )
        if reply[0] == b"missing":
            raise QueueNotFoundError(
                f"{self._label}({self._shown!r}): there is no stream {self._stream!r} "
                "(create=False attaches to an existing one: start the producer first, or pass "
                "create=True)"
            )
        self._maxsize = int(reply[0])
        self._redeliver = reply[1] == b"1"
        if maxsize is not None and maxsize != self._maxsize:
            raise InvalidArgumentError(
                f"{self._label}({self._shown!r}, maxsize={maxsize}): the stream's maxsize is "
                f"{self._maxsize}, set by the handle that made it; pass maxsize={self._maxsize} "
                "or leave it out (None takes the stream's)"
            )
        if redeliver is not None and redeliver != self._redeliver:
            raise InvalidArgumentError(
                f"{self._label}({self._shown!r}, redeliver={redeliver}): the stream was made with "
                f"redeliver={self._redeliver}; pass that or leave it out"
            )

    # ------------------------------------------------------------------------------ properties

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
        """The stream's bound on unacknowledged messages (0: unbounded), the same for every
        handle: set by the handle that made the stream."""
        return self._maxsize

    @property
    def redeliver(self) -> bool:
        """True if a get leaves its message pending until :meth:`task_done` (the stream's
        setting, made by the handle that made the stream)."""
        return self._redeliver

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

    # ------------------------------------------------------------------------------ calls

    def _closed_error(self) -> QueueClosedError:
        return QueueClosedError(f"operation on a closed queue: {self!r} is closed")

    def _check_open(self) -> Any:
        if self._closed:
            raise self._closed_error()
        return self._r

    def _os_error(self, exc: BaseException, op: str) -> QueueOSError:
        err = QueueOSError(
            f"{self._label}({self._shown!r}).{op}: cannot reach the Redis server ({exc}); check "
            "that redis-server is running there and the URL is right"
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
            f"{self._label}({self._shown!r}).{op}: the Redis server refused: {exc} (is the key "
            f"{self._stream!r} a stream? RedisQueue needs Redis >= 7.0)"
        )

    def _script(self, op: str, script: bytes, *args: Any) -> Any:
        """EVALSHA of one of the scripts (_scripts) with the stream's keys (loaded on first use
        and again after a server restart emptied the script cache)."""
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = self._call(op, "SCRIPT", "LOAD", script)
        try:
            return self._call(op, "EVALSHA", sha, 6, *self._keys, *args)
        except self._noscript:
            self._shas[script] = self._call(op, "SCRIPT", "LOAD", script)
            return self._call(op, "EVALSHA", self._shas[script], 6, *self._keys, *args)

    def _ensure_group(self) -> None:
        try:
            self._r.execute_command("XGROUP", "CREATE", self._key, GROUP, "0", "MKSTREAM")
        except self._response_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise self._refused(exc, "connect") from exc
        except self._errors as exc:
            raise self._os_error(exc, "connect") from exc

    # ------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Gives back this handle's leases (messages got with ``redeliver`` and not yet
        acknowledged: the next get of any handle takes them), leaves the group (when nothing
        is pending to this consumer; so do other consumers with nothing pending, idle longer
        than ``max(claim_after, 1)`` seconds: handles of dead processes) and drops the
        connections; idempotent. The stream and its messages stay. Later calls raise
        :class:`QueueClosedError`; a call blocked in another thread raises it within a slice."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(Exception):
                self._script(
                    "close",
                    _scripts.FORGET,
                    GROUP,
                    self._consumer,
                    int(max(self.claim_after, 1.0) * 1000),
                    b",".join(self._leases),
                )
            self._leases.clear()
            self._closed = True
        with contextlib.suppress(Exception):
            self._r.close()
        _live.discard(self)

    def delete(self) -> None:
        """Removes the stream, its messages, group and settings from Redis (for every handle).
        Handles still open see it shut down (:class:`~fastqueue.ShutDown`, blocked calls
        wake) for a minute; the next handle made with ``create=True`` makes a new stream."""
        self._script("delete", _scripts.DELETE)

    def unlink(self) -> None:
        """:meth:`delete`, under the name a local queue's removal has (so that code written for
        both, see :func:`fastqueue.from_url`, reads the same)."""
        self.delete()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<fastqueue.{self._label} {self._shown!r} maxsize={self._maxsize} {state}>"
