"""Child-process targets of the Redis tests (importable by spawned children)."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Any

import fastqueue


def produce(q: Any, producer: int, count: int, conn: Connection) -> None:
    """Puts (producer, seq) messages, half singly and half in batches."""
    half = count // 2
    for seq in range(half):
        q.put(f"{producer}:{seq}".encode())
    q.put_many([f"{producer}:{seq}".encode() for seq in range(half, count)])
    conn.send(("done", q.consumer))
    q.close()


def consume(q: Any, conn: Connection) -> None:
    """Gets until 1 s passes with nothing, then sends what it got (in order)."""
    got: list[bytes] = []
    while True:
        try:
            got.extend(q.get_many(7, timeout=1.0))
        except fastqueue.Empty:
            break
    conn.send((q.consumer, got))
    q.close()


def hold_one(q: Any, conn: Connection) -> None:
    """Takes a message with get_slot and, inside the block, reports it and waits to be killed."""
    with q.get_slot(timeout=30) as msg:
        conn.send(msg)
        time.sleep(60)


def take_one_inherited(q: Any, conn: Connection) -> None:
    """A forked child's inherited handle: its consumer name and one message."""
    conn.send((q.consumer, q.get(timeout=10)))


def blocked_call(q: Any, what: str, conn: Connection) -> None:
    """Reports "waiting", then blocks in q.get() or q.put(b"x") (``what``) and reports how the
    call ended: ("returned", value) or ("raised", the exception's class name)."""
    conn.send("waiting")
    try:
        value = q.get() if what == "get" else q.put(b"x")
        conn.send(("returned", value))
    except BaseException as exc:
        conn.send(("raised", type(exc).__name__))
    q.close()


def get_and_hang(q: Any, conn: Connection) -> None:
    """Gets one message (leased, with redeliver) and reports it, then waits to be killed."""
    conn.send(q.get(timeout=30))
    time.sleep(60)


def objects_out(q: Any, conn: Connection) -> None:
    """Gets objects until the None that ends them; sends them back in order."""
    got = []
    while (obj := q.get(timeout=30)) is not None:
        got.append(obj)
    conn.send(got)
    q.close()
