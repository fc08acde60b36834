"""Words for messages: counts with the right plural, byte counts a reader can take in, and how a
queue is named in a sentence. Every message of the package that states a count uses these."""

from __future__ import annotations

__all__ = ["count", "nbytes", "queue_called"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def count(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word``, plural unless n is 1: ``count(1, "message")`` -> ``"1 message"``,
    ``count(2, "batch", "batches")`` -> ``"2 batches"``."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def nbytes(n: int, after: str = "") -> str:
    """A byte count; from 1 MiB on, also in binary units, so that a 19-digit figure reads at a
    glance: ``nbytes(1)`` -> ``"1 byte"``, ``nbytes(3 << 40, " free")`` -> ``"3298534883328
    bytes free (3 TiB)"``."""
    text = count(n, "byte") + after
    if n < 1 << 20:
        return text
    value, k = n / 1024, 0
    while value >= 1024 and k + 1 < len(_UNITS):
        value, k = value / 1024, k + 1
    shown = f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
    return f"{text} ({shown} {_UNITS[k]})"


def queue_called(name: str | None, kind: str = "queue") -> str:
    """How a sentence names a queue: ``queue 'jobs'``, or ``the queue`` for one whose name is
    not known (a queue being created with ``name=None``); never a quoted ``'?'``."""
    return f"{kind} {name!r}" if name else f"the {kind}"
