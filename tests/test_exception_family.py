"""One exception family: every exception fastqueue raises on purpose is a ``FastQueueError`` *and*
the standard class a Python user would catch, with a message that names the argument, the value
given and what is allowed -- once.

One table of bad inputs -> (expected classes, message fragments). Each case gets a fresh queue
``q`` (element_size=8, capacity=2) and an unused name ``name``.
"""

from __future__ import annotations

import os
import queue as stdlib_queue
from typing import Any, Callable

import pytest

import fastqueue
from fastqueue import FastQueueError, ObjectQueue, Queue

NameFactory = Callable[[], str]
Case = Callable[[Queue, str], Any]

#: queue.ShutDown where Python has it (3.13+).
STD_SHUTDOWN: tuple[type[BaseException], ...] = (
    (stdlib_queue.ShutDown,) if hasattr(stdlib_queue, "ShutDown") else ()  # type: ignore[attr-defined]
)


def _closed(q: Queue, call: Callable[[Queue], Any]) -> Any:
    q.close()
    return call(q)


def _shut(q: Queue) -> None:
    q.shutdown()
    q.put(b"x")


def _filled(q: Queue) -> None:
    q.put(b"a")
    q.put(b"b")
    q.put_nowait(b"c")


def _wrong_sizes(q: Queue) -> None:
    Queue(q.name, element_size=16, create=False)


def _buffer_too_small(q: Queue) -> None:
    q.put(b"12345")
    q.get_into(bytearray(2))


def _task_done_too_often(q: Queue) -> None:
    q.task_done()


def _slot_twice(q: Queue) -> None:
    reader = q.get_slot(block=False)
    q.put(b"x")
    with reader, reader:
        pass


def _bad_slot_length(q: Queue) -> None:
    with q.put_slot() as slot:
        slot.length = 9


def _existing(q: Queue) -> None:
    Queue(q.name, element_size=8, capacity=2)


CASES: list[tuple[str, Case, tuple[type[BaseException], ...], tuple[str, ...]]] = [
    # -- creating: sizes
    (
        "element_size=0",
        lambda q, n: Queue(n, element_size=0, capacity=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("element_size=0", "int >= 1"),
    ),
    (
        "capacity=-1",
        lambda q, n: Queue(n, element_size=8, capacity=-1),
        (fastqueue.InvalidArgumentError, ValueError),
        ("capacity=-1", "int >= 1"),
    ),
    (
        "element_size=1.5",
        lambda q, n: Queue(n, element_size=1.5, capacity=2),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("element_size must be an int", "float (1.5)"),
    ),
    (
        "capacity=True",
        lambda q, n: Queue(n, element_size=8, capacity=True),
        (fastqueue.ArgumentTypeError, TypeError),
        ("capacity must be an int", "bool"),
    ),
    (
        "missing sizes",
        lambda q, n: Queue(n, element_size=8),
        (fastqueue.InvalidArgumentError, ValueError),
        ("capacity was not given", "create=False"),
    ),
    (
        "capacity=10**10",
        lambda q, n: Queue(n, element_size=16, capacity=10**10),
        (fastqueue.NoSpaceError, OSError),
        ("capacity=10000000000", "it needs 640", "bytes free"),
    ),
    (
        "element_size=10**12",
        lambda q, n: Queue(n, element_size=10**12, capacity=2),
        (fastqueue.NoSpaceError, OSError),
        ("element_size=1000000000000", "it needs", "bytes free"),
    ),
    # -- creating: names and modes
    (
        "name with /",
        lambda q, n: Queue("a/b", element_size=8, capacity=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("name='a/b' is not allowed", "no '/'"),
    ),
    (
        "name ..",
        lambda q, n: Queue("..", element_size=8, capacity=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("name='..' is not allowed", "not '.' or '..'"),
    ),
    (
        "empty name",
        lambda q, n: Queue("/", element_size=8, capacity=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("name='/' is not allowed", "1..250 bytes"),
    ),
    (
        "long name",
        lambda q, n: Queue("x" * 300, element_size=8, capacity=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("is 300 bytes long", "1..250 bytes"),
    ),
    (
        "bytes name",
        lambda q, n: Queue(b"jobs", element_size=8, capacity=2),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("name must be a str", "bytes"),
    ),
    (
        "mode=0o7777",
        lambda q, n: Queue(n, element_size=8, capacity=2, mode=0o7777),
        (fastqueue.InvalidArgumentError, ValueError),
        ("mode=0o7777 is not allowed", "0..0o777"),
    ),
    (
        "mode=-1",
        lambda q, n: Queue(n, element_size=8, capacity=2, mode=-1),
        (fastqueue.InvalidArgumentError, ValueError),
        ("mode=-1 is not allowed", "0..0o777"),
    ),
    (
        "mode=0o644",  # read without write: a reader could lock others out (tests/test_trust.py)
        lambda q, n: Queue(n, element_size=8, capacity=2, mode=0o644),
        (fastqueue.InvalidArgumentError, ValueError),
        ("mode=0o644 is not allowed", "0o660"),
    ),
    (
        "mode='rw'",
        lambda q, n: Queue(n, element_size=8, capacity=2, mode="rw"),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("mode must be an int", "str"),
    ),
    ("name taken", lambda q, n: _existing(q), (fastqueue.QueueExistsError, FileExistsError), ()),
    # -- attaching
    (
        "attach without name",
        lambda q, n: Queue(create=False),
        (fastqueue.InvalidArgumentError, ValueError),
        ("needs the name", "name=None"),
    ),
    (
        "attach missing",
        lambda q, n: Queue(n, create=False),
        (fastqueue.QueueNotFoundError, FileNotFoundError),
        ("no queue named",),
    ),
    (
        "attach with other sizes",
        lambda q, n: _wrong_sizes(q),
        (fastqueue.InvalidArgumentError, ValueError),
        ("element_size=8 and capacity=2, not the element_size=16 given",),
    ),
    # -- put
    (
        "put str",
        lambda q, n: q.put("abc"),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("item must be a bytes-like object", "not str", ".encode()"),
    ),
    (
        "put int",
        lambda q, n: q.put(123),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("item must be a bytes-like object", "not int"),
    ),
    (
        "put too big",
        lambda q, n: q.put(b"123456789"),
        (fastqueue.MessageTooBigError, ValueError),
        ("9 bytes", "element_size of 8 bytes"),
    ),
    (
        "put timeout=-1",
        lambda q, n: q.put(b"x", timeout=-1),
        (fastqueue.InvalidArgumentError, ValueError),
        ("timeout=-1 is not allowed", ">= 0"),
    ),
    (
        "put full",
        lambda q, n: _filled(q),
        (fastqueue.Full, stdlib_queue.Full),
        (),
    ),
    (
        "put after shutdown",
        lambda q, n: _shut(q),
        (fastqueue.ShutDown, *STD_SHUTDOWN),
        ("was shut down",),
    ),
    (
        "put_many not iterable",
        lambda q, n: q.put_many(5),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("items must be an iterable", "int"),
    ),
    (
        "put_many with a str",
        lambda q, n: q.put_many([b"a", "b"]),  # type: ignore[list-item]
        (fastqueue.ArgumentTypeError, TypeError),
        ("items[1] must be a bytes-like object", ".encode()"),
    ),
    (
        "put_many ragged",
        lambda q, n: q.put_many(b"abc", itemsize=2),
        (fastqueue.InvalidArgumentError, ValueError),
        ("itemsize=2", "3 bytes"),
    ),
    (
        "put_many itemsize=0",
        lambda q, n: q.put_many(b"abc", itemsize=0),
        (fastqueue.InvalidArgumentError, ValueError),
        ("itemsize=0 is not allowed", ">= 1"),
    ),
    # -- get
    (
        "get timeout='1'",
        lambda q, n: q.get(timeout="1"),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("timeout must be a number of seconds", "str"),
    ),
    (
        "get timeout=nan",
        lambda q, n: q.get(timeout=float("nan")),
        (fastqueue.InvalidArgumentError, ValueError),
        ("timeout=nan is not allowed",),
    ),
    ("get empty", lambda q, n: q.get_nowait(), (fastqueue.Empty, stdlib_queue.Empty), ()),
    (
        "get_many(0)",
        lambda q, n: q.get_many(0),
        (fastqueue.InvalidArgumentError, ValueError),
        ("max_items=0 is not allowed", ">= 1"),
    ),
    (
        "get_many itemsize=9",
        lambda q, n: q.get_many(1, itemsize=9),
        (fastqueue.InvalidArgumentError, ValueError),
        ("itemsize=9 is not allowed", "1..8"),
    ),
    (
        "get_into read-only",
        lambda q, n: q.get_into(b"12345678"),
        (fastqueue.ArgumentTypeError, TypeError),
        ("buffer must be a writable", "bytes"),
    ),
    (
        "get_into too small",
        lambda q, n: _buffer_too_small(q),
        (fastqueue.InvalidArgumentError, ValueError),
        ("5 bytes long", "at least 5 bytes"),
    ),
    # -- zero-copy
    (
        "put_slot size=-1",
        lambda q, n: q.put_slot(-1).__enter__(),
        (fastqueue.InvalidArgumentError, ValueError),
        ("size=-1 is not allowed", "0..8"),
    ),
    (
        "slot.length=9",
        lambda q, n: _bad_slot_length(q),
        (fastqueue.InvalidArgumentError, ValueError),
        ("slot.length=9 is not allowed", "0..8"),
    ),
    (
        "get_slot twice",
        lambda q, n: _slot_twice(q),
        (fastqueue.SlotError, RuntimeError),
        ("entered twice",),
    ),
    # -- tasks, closing, unlink
    (
        "task_done too often",
        lambda q, n: _task_done_too_often(q),
        (fastqueue.InvalidArgumentError, ValueError),
        ("too many times",),
    ),
    (
        "put on closed",
        lambda q, n: _closed(q, lambda c: c.put(b"x")),
        (fastqueue.QueueClosedError, ValueError),
        ("is closed",),
    ),
    (
        "get on closed",
        lambda q, n: _closed(q, lambda c: c.get()),
        (fastqueue.QueueClosedError, ValueError),
        ("is closed",),
    ),
    (
        "qsize on closed",
        lambda q, n: _closed(q, lambda c: c.qsize()),
        (fastqueue.QueueClosedError, ValueError),
        ("is closed",),
    ),
    (
        "unlink bad name",
        lambda q, n: fastqueue.unlink("a/b"),
        (fastqueue.InvalidArgumentError, ValueError),
        ("name='a/b' is not allowed",),
    ),
    (
        "unlink missing",
        lambda q, n: fastqueue.unlink(n),
        (fastqueue.QueueNotFoundError, FileNotFoundError),
        ("no queue named",),
    ),
    (
        "ObjectQueue serializer",
        lambda q, n: ObjectQueue(n, element_size=8, capacity=2, serializer=1),  # type: ignore[arg-type]
        (fastqueue.ArgumentTypeError, TypeError),
        ("serializer must have",),
    ),
]


@pytest.mark.parametrize(
    ("case", "classes", "fragments"),
    [pytest.param(case, classes, fragments, id=id_) for id_, case, classes, fragments in CASES],
)
def test_bad_input_raises_one_family(
    qname: NameFactory,
    case: Case,
    classes: tuple[type[BaseException], ...],
    fragments: tuple[str, ...],
) -> None:
    name = qname()
    with Queue(qname(), element_size=8, capacity=2) as q, pytest.raises(FastQueueError) as info:
        case(q, name)
    exc = info.value
    for cls in classes:
        assert isinstance(exc, cls), (type(exc).__mro__, cls)
    message = str(exc)
    for fragment in fragments:
        assert fragment in message, message
    # Said once: no message quoting the library's sentence inside its own paraphrase.
    assert "out of range (an argument is out of range" not in message, message
    assert "=None" not in message or "name=None" in message, message


def test_every_public_exception_is_a_fastqueue_error() -> None:
    for name in fastqueue.__all__:
        obj = getattr(fastqueue, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, FastQueueError), name
            assert obj.__module__ == "fastqueue", name


def test_no_space_message_names_the_bytes_needed(qname: NameFactory) -> None:
    # capacity=10**10 of 16 bytes: 64-byte slots, 640 GB, beyond the library's limit of 2**32
    # messages, gets the same kind of answer as a size that exceeds the free shared memory.
    free = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize
    with pytest.raises(fastqueue.NoSpaceError) as info:
        Queue(qname(), element_size=16, capacity=10**10)
    # (+ 9088: header and participant table; + 32 KiB: the participants' ledger, layout 4.)
    needed = 640_000_000_000 + 9088 + 32 * 1024
    assert f"needs {needed} bytes" in str(info.value) or free > 6 * 10**11
