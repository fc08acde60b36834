"""RedisQueue's connection URLs and argument checks (beside :mod:`fastqueue._redis._queue`,
which holds the class): parsing ``redis://`` and ``unix://`` URLs into a connection and a
stream name, masking passwords, and checking items and ``claim_after`` with errors of the fastqueue
family. The Redis client itself is imported only when a RedisQueue is made."""

from __future__ import annotations

import math
import numbers
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .._args import not_bytes_like
from .._errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "INSTALL_HINT",
    "as_bytes",
    "check_claim",
    "masked",
    "parse_url",
    "redis_module",
]

INSTALL_HINT: Final = (
    'fastqueue.RedisQueue needs the Redis client: pip install "fastqueue[redis]" '
    "(or pip install redis)"
)


def redis_module() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return redis


def parse_url(url: str) -> tuple[str, str]:
    """Splits a RedisQueue URL into (the Redis connection URL, the stream name).

    ``redis://[[user]:password@]HOST[:PORT]/DB/STREAM`` (also ``rediss://``, TLS) and
    ``unix:///path/to/redis.sock?db=N&stream=STREAM``; the stream name may contain ``/``.

    >>> parse_url("redis://localhost:6379/0/jobs")
    ('redis://localhost:6379/0', 'jobs')
    >>> parse_url("unix:///run/redis.sock?db=2&stream=a/b")
    ('unix:///run/redis.sock?db=2', 'a/b')
    """
    if not isinstance(url, str):
        raise ArgumentTypeError(
            f"url must be a str such as 'redis://HOST:PORT/DB/STREAM', not {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        path = parts.path.lstrip("/")
        db, sep, stream = path.partition("/")
        if not sep or not db.isdigit() or not stream:
            raise InvalidArgumentError(
                f"RedisQueue URL {url!r} must be {parts.scheme}://HOST:PORT/DB/STREAM "
                "(DB a number, e.g. redis://localhost:6379/0/jobs)"
            )
        base = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
        return base, stream
    if parts.scheme == "unix":
        query = parse_qs(parts.query, keep_blank_values=True)
        streams = query.pop("stream", [])
        dbs = query.get("db", ["0"])
        if len(streams) != 1 or not streams[0] or not parts.path or not dbs[0].isdigit():
            raise InvalidArgumentError(
                f"RedisQueue URL {url!r} must be unix:///path/to/redis.sock?db=N&stream=NAME"
            )
        rest = urlencode(query, doseq=True)
        base = f"unix://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
        return base, streams[0]
    raise InvalidArgumentError(
        f"RedisQueue URL {url!r} must start with redis://, rediss:// or unix:// "
        "(e.g. redis://localhost:6379/0/jobs or unix:///run/redis.sock?db=0&stream=jobs)"
    )


def as_bytes(item: object) -> bytes:
    """``item`` as bytes (a copy unless it is bytes already); a clear error, the one Queue gives,
    for what has no buffer (a str: encode it)."""
    if type(item) is bytes:
        return item
    try:
        view = memoryview(item)  # type: ignore[arg-type]
    except TypeError:
        raise not_bytes_like("RedisQueue: a message", item) from None
    return view.tobytes()


def masked(url: str) -> str:
    """The URL with its password, if any, replaced by ***, for messages and reprs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_claim(claim_after: object) -> float:
    if isinstance(claim_after, (bool, str, bytes)) or not isinstance(claim_after, numbers.Real):
        raise ArgumentTypeError(f"claim_after must be a number of seconds, not {claim_after!r}")
    value = float(claim_after)
    if not value >= 0.0 or math.isinf(value):
        raise InvalidArgumentError(
            f"claim_after must be a finite number of seconds >= 0, got {claim_after!r}"
        )
    return value
