"""Code that runs in child processes of the tests (spawned children import it by name).

Every child reports through a multiprocessing Connection and exits 0 when it did its job; a crash
(segfault, abort) shows up in the parent as a non-zero exit code.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import struct
import time
import zlib
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import fastqueue

#: Payload header of the cross-process tests: producer id, sequence number, CRC-32 of the body.
HEADER = struct.Struct("<III")


def handle_state(q: fastqueue.Queue) -> str:
    """'owner' / 'attached' / 'closed', as the queue's repr says."""
    return repr(q).rsplit(" ", 1)[-1].rstrip(">")


def echo(q: fastqueue.Queue, result: Connection) -> None:
    """Gets one message, puts it back prefixed, reports its handle state, closes its handle."""
    msg = q.get(timeout=60)
    q.put(b"echo:" + msg, timeout=60)
    result.send((handle_state(q), q.name, q.element_size, q.maxsize))
    q.close()


def echo_from_pipe(source: Connection, result: Connection) -> None:
    """Like echo, for a queue received (pickled) through a pipe."""
    q = source.recv()
    echo(q, result)


def echo_from_pickle(data: bytes, result: Connection) -> None:
    """Like echo, for a queue given as pickled bytes."""
    echo(pickle.loads(data), result)


def blocked_get(q: fastqueue.Queue, ready: Event, result: Connection) -> None:
    """Blocks in get() until SIGINT arrives; then proves the queue still works."""
    try:
        ready.set()
        msg = q.get()
        result.send(("returned", msg))
        return
    except KeyboardInterrupt:
        result.send(("interrupted", time.monotonic()))
    q.put(b"after interrupt", timeout=60)


def blocked_put(q: fastqueue.Queue, ready: Event, result: Connection) -> None:
    """Blocks in put() on a full queue (60 s timeout) until SIGINT arrives."""
    try:
        ready.set()
        q.put(b"never", timeout=60)
        result.send(("returned", None))
        return
    except KeyboardInterrupt:
        result.send(("interrupted", time.monotonic()))
    except fastqueue.Full:
        result.send(("timed out", None))
        return
    result.send(("got", q.get(timeout=60)))


def make_message(rng: random.Random, producer: int, seq: int, element_size: int) -> bytes:
    body = rng.randbytes(rng.randint(0, element_size - HEADER.size))
    return HEADER.pack(producer, seq, zlib.crc32(body)) + body


def produce(q: fastqueue.Queue, producer: int, count: int, seed: int) -> None:
    """Puts `count` messages (producer, seq, crc, random body) in sequence order."""
    rng = random.Random(seed)
    for seq in range(count):
        q.put(make_message(rng, producer, seq, q.element_size), timeout=120)


def consume(q: fastqueue.Queue, result: Connection) -> None:
    """Gets messages until an empty one; sends back [(producer, seq)] and the number of corrupt
    messages (bad length or checksum)."""
    got: list[tuple[int, int]] = []
    corrupt = 0
    while True:
        msg = q.get(timeout=120)
        if not msg:
            break
        if len(msg) < HEADER.size:
            corrupt += 1
            continue
        producer, seq, crc = HEADER.unpack_from(msg)
        if zlib.crc32(msg[HEADER.size :]) != crc:
            corrupt += 1
        got.append((producer, seq))
    result.send((got, corrupt))


def try_attach(name: str, result: Connection) -> None:
    """Attaches to `name` and reports what happened: ("error", class names, message) or
    ("attached", sizes). A successful attach then exercises put/get without waiting."""
    result.send(attach_outcome(name))


def attach_outcome(name: str) -> tuple[Any, ...]:
    try:
        q = fastqueue.Queue(name, create=False)
    except Exception as exc:
        return ("error", [c.__name__ for c in type(exc).__mro__], str(exc))
    try:
        for op in (
            lambda: q.put_nowait(b"x"),
            lambda: q.get_nowait(),
            lambda: q.get_nowait(),
            lambda: q.qsize(),
        ):
            with contextlib.suppress(fastqueue.Empty, fastqueue.Full, fastqueue.FastQueueError):
                op()
        return ("attached", q.element_size, q.maxsize)
    finally:
        q.close()


def fuzz_attach(name: str, image: bytes, seed: int, rounds: int, result: Connection) -> None:
    """Writes `rounds` corrupted copies of the segment `image` to /dev/shm/<name> and attaches to
    each; reports every outcome as it goes, so that the parent knows which round crashed."""
    rng = random.Random(seed)
    path = f"/dev/shm/{name}"
    header_end = min(len(image), 256)
    for i in range(rounds):
        data = bytearray(image)
        for _ in range(rng.randint(1, 4)):
            # Mostly the header (where validation lives), sometimes anywhere.
            end = header_end if rng.random() < 0.8 else len(data)
            pos = rng.randrange(8, end)  # keep the magic: a zero magic only means "not ready"
            data[pos] = rng.randrange(256)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, bytes(data))
        finally:
            os.close(fd)
        outcome = attach_outcome(name)
        os.unlink(path)
        result.send((i, outcome))
    result.send("done")
