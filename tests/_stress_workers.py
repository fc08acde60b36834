"""Child-process entry points (and their parent-side checkers) of the crash, stress, hostile and
soak tests: ``test_crash.py``, ``test_stress.py``, ``test_hostile.py`` and ``soak.py``.

Spawned children import this module by name, so everything a child runs lives here and imports
nothing heavier than fastqueue (no pytest, no Hypothesis).

Three families:

* :func:`raw` — a private ctypes view of the fastqueue library, for what the Python ``Queue`` does
  not offer: the zero-copy ``fq_write_begin`` / ``fq_read_begin`` claims (a child parks inside a
  claim and is SIGKILLed there), and the ABI argument checks of test_hostile. It is a separate
  ``CDLL`` object over the same loaded library, so declaring signatures here never touches the
  declarations of ``fastqueue._ffi``.
* Crash workers (:func:`park_writer`, :func:`park_reader`, :func:`big_producer`,
  :func:`big_consumer`, ...): every acknowledgement (a put or get that *returned*) is appended to
  a file with one ``os.write`` per record, so the parent can read, after a SIGKILL, exactly what
  the dead process had been told.
* Stress (:class:`StressConfig`, :func:`stress_producer`, :func:`stress_consumer`,
  :func:`run_stress`): the cross-process exactly-once / per-producer-order check that both the
  Hypothesis test and the soak script run.
"""

from __future__ import annotations

import ctypes
import dataclasses
import faulthandler
import hashlib
import os
import pickle
import random
import select
import signal
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from ctypes import POINTER, byref, c_char_p, c_int32, c_int64, c_uint32, c_uint64, c_void_p
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Callable

import fastqueue
from fastqueue import _ffi

# ----------------------------------------------------------------------------------- raw ABI

_RAW: ctypes.CDLL | None = None


def raw() -> ctypes.CDLL:
    """The fastqueue library (the one ``fastqueue._ffi`` loaded) with every signature used by
    these tests declared on a private CDLL object."""
    global _RAW
    if _RAW is None:
        lib = ctypes.CDLL(_ffi.library_path(), use_errno=True)
        u64p = POINTER(c_uint64)
        vpp = POINTER(c_void_p)
        sigs: dict[str, tuple[Any, ...]] = {
            "fq_status_str": (c_char_p, c_int32),
            "fq_segment_size": (c_int32, c_uint64, c_uint64, u64p),
            "fq_create": (c_int32, c_char_p, c_uint64, c_uint64, c_uint32, vpp),
            "fq_open": (c_int32, c_char_p, vpp),
            "fq_clone": (c_int32, c_void_p, vpp),
            "fq_close": (None, c_void_p),
            "fq_unlink": (c_int32, c_char_p),
            "fq_capacity": (c_uint64, c_void_p),
            "fq_max_msg": (c_uint64, c_void_p),
            "fq_size": (c_uint64, c_void_p),
            "fq_stats": (c_int32, c_void_p, u64p, c_uint32),
            "fq_put": (c_int32, c_void_p, c_void_p, c_uint64, c_int64),
            "fq_get": (c_int32, c_void_p, c_void_p, c_uint64, u64p, c_int64),
            "fq_try_put": (c_int32, c_void_p, c_void_p, c_uint64),
            "fq_try_get": (c_int64, c_void_p, c_void_p, c_uint64),
            "fq_try_put_many": (c_int64, c_void_p, u64p, c_uint64, c_void_p),
            "fq_try_get_many": (c_int64, c_void_p, c_void_p, c_uint64, u64p, c_uint64),
            "fq_get_many_exact": (c_int32, c_void_p, c_void_p, c_uint64, c_uint64, u64p, c_int64),
            "fq_try_get_many_exact": (c_int64, c_void_p, c_void_p, c_uint64, c_uint64),
            "fq_write_begin": (c_int32, c_void_p, vpp, u64p, c_int64),
            "fq_write_commit": (c_int32, c_void_p, c_uint64, c_uint64),
            "fq_write_abort": (c_int32, c_void_p, c_uint64),
            "fq_read_begin": (c_int32, c_void_p, vpp, u64p, u64p, c_int64),
            "fq_read_end": (c_int32, c_void_p, c_uint64),
            "fq_noop": (c_int32, c_void_p, c_void_p, c_uint64, c_int64),
        }
        for fname, (restype, *argtypes) in sigs.items():
            func = getattr(lib, fname)
            func.restype = restype
            func.argtypes = argtypes
        _RAW = lib
    return _RAW


def raw_open(name: str) -> c_void_p:
    """fq_open(name) through :func:`raw`; raises AssertionError on failure."""
    h = c_void_p()
    status = raw().fq_open(name.encode(), byref(h))
    assert status == _ffi.OK, f"fq_open({name!r}) -> {status} ({_ffi.status_str(status)})"
    return h


def sleep_forever() -> None:
    """Waits to be killed (an hour is forever for a test)."""
    time.sleep(3600)


# ----------------------------------------------------------------------------------- payloads

#: Crash-test payload header: producer id, sequence, body length, blake2b-128 of the body.
BIG_HEADER = struct.Struct("<IIQ16s")
#: Acknowledgement record of a producer: the sequence number of a put that returned.
PUT_ACK = struct.Struct("<I")
#: Acknowledgement record of a consumer: producer, sequence, 1 if intact (0 if torn/foreign),
#: message length.
GET_ACK = struct.Struct("<IIiQ")


def digest(body: bytes | memoryview) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def big_message(producer: int, seq: int, body: bytes | memoryview) -> bytes:
    return BIG_HEADER.pack(producer, seq, len(body), digest(body)) + body


def check_big(msg: bytes) -> tuple[int, int, bool]:
    """(producer, seq, intact) of a crash-test payload; (0xFFFFFFFF, 0, False) if unreadable."""
    if len(msg) < BIG_HEADER.size:
        return 0xFFFFFFFF, 0, False
    producer, seq, n, want = BIG_HEADER.unpack_from(msg)
    body = memoryview(msg)[BIG_HEADER.size :]
    return producer, seq, n == len(body) and digest(body) == want


def read_records(path: Path, record: struct.Struct) -> list[tuple[Any, ...]]:
    """Every whole record of an acknowledgement file (a trailing partial record, possible after
    a SIGKILL, is dropped: its operation counts as unacknowledged)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    whole = len(data) - len(data) % record.size
    return list(record.iter_unpack(data[:whole]))


def _ack(fd: int, record: bytes) -> None:
    """One write per record: after a SIGKILL the file holds whole records (and at most one
    partial one, which read_records drops)."""
    os.write(fd, record)


# ----------------------------------------------------------------------------------- crash workers


def park_writer(name: str, producer: int, acked: int, ready: Connection) -> None:
    """Puts ``acked`` messages (seq 0..acked-1) on a raw handle, then claims one more slot with
    fq_write_begin, fills it with a complete, valid-looking message (seq = acked) and never
    commits: it reports ("parked", token) and waits to be SIGKILLed inside claim→publish."""
    lib = raw()
    h = raw_open(name)
    for seq in range(acked):
        msg = big_message(producer, seq, b"acked %d" % seq)
        status = lib.fq_put(h, msg, len(msg), 10_000_000_000)
        assert status == _ffi.OK, status
    data, token = c_void_p(), c_uint64()
    status = lib.fq_write_begin(h, byref(data), byref(token), 10_000_000_000)
    if status != _ffi.OK:
        ready.send(("failed", status))
        return
    msg = big_message(producer, acked, b"never delivered")
    ctypes.memmove(data.value, msg, len(msg))
    ready.send(("parked", token.value))
    sleep_forever()


def park_reader(name: str, ready: Connection) -> None:
    """Claims the oldest message with fq_read_begin and never releases it: reports ("parked",
    the message) and waits to be SIGKILLed inside claim→release."""
    lib = raw()
    h = raw_open(name)
    data, length, token = c_void_p(), c_uint64(), c_uint64()
    status = lib.fq_read_begin(h, byref(data), byref(length), byref(token), 10_000_000_000)
    if status != _ffi.OK:
        ready.send(("failed", status))
        return
    ready.send(("parked", ctypes.string_at(data.value, length.value) if length.value else b""))
    sleep_forever()


_STACK_FILES: list[Any] = []


def dump_stack_on_sigusr1(path: str) -> None:
    """Makes SIGUSR1 write this process's Python stack to ``path`` (for diagnosing a stall)."""
    f = open(path, "w")  # noqa: SIM115 - kept open for the life of the process
    _STACK_FILES.append(f)
    faulthandler.register(signal.SIGUSR1, file=f, all_threads=True)


def stack_of(pid: int, path: str) -> str:
    """Asks the process ``pid`` (set up with dump_stack_on_sigusr1(path)) for its stack."""
    try:
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.3)
        return Path(path).read_text()
    except OSError as exc:
        return f"(no stack: {exc})"


def raw_put(name: str, data: bytes, timeout_ns: int, result: Connection) -> None:
    """One fq_put on a raw handle of its own (the C ABI's blocking, without Python's wait
    slices); reports the status."""
    h = raw_open(name)
    result.send(raw().fq_put(h, data, len(data), timeout_ns))


def queue_put(q: fastqueue.Queue, data: bytes, result: Connection) -> None:
    """One blocking ``Queue.put`` (no timeout); reports "ok"."""
    q.put(data)
    result.send("ok")


def ack_producer(q: fastqueue.Queue, producer: int, count: int, ack_path: str) -> None:
    """Puts ``count`` small crash-test payloads and records each acknowledged sequence number."""
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for seq in range(count):
            body = b"%d:%d" % (producer, seq) * (seq % 7)
            q.put(big_message(producer, seq, body), timeout=60)
            _ack(fd, PUT_ACK.pack(seq))
    finally:
        os.close(fd)


def ack_consumer(q: fastqueue.Queue, ack_path: str) -> None:
    """Gets crash-test payloads until an empty message; records (producer, seq, intact) of each
    message as soon as its get returned. Exits 3 if the queue stays empty for 60 s."""
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                msg = q.get(timeout=60)
            except fastqueue.Empty:
                os._exit(3)
            if not msg:
                return
            producer, seq, intact = check_big(msg)
            _ack(fd, GET_ACK.pack(producer, seq, int(intact), len(msg)))
    finally:
        os.close(fd)


#: The largest batch of the batch crash workers.
BATCH_MAX = 32


def batch_producer(
    q: fastqueue.Queue, producer: int, seed: int, ack_path: str, stop_path: str
) -> None:
    """Puts small crash-test payloads with put_many, 1..BATCH_MAX at a time (lists, or one
    packed buffer when all are of one length), until the file ``stop_path`` exists; records
    every sequence number of a batch once put_many returned (one write per batch)."""
    dump_stack_on_sigusr1(ack_path + ".stack")
    rng = random.Random(seed)
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        seq = 0
        while not os.path.exists(stop_path):
            k = rng.randint(1, BATCH_MAX)
            same = rng.random() < 0.5  # bodies of one length: the batch can go packed
            msgs = [
                big_message(
                    producer, s, b"%08d" % s if same else b"%d:%d" % (producer, s) * (s % 7)
                )
                for s in range(seq, seq + k)
            ]
            if same:
                q.put_many(b"".join(msgs), timeout=60, itemsize=len(msgs[0]))
            else:
                q.put_many(msgs, timeout=60)
            _ack(fd, b"".join(PUT_ACK.pack(s) for s in range(seq, seq + k)))
            seq += k
    finally:
        os.close(fd)


def batch_consumer(q: fastqueue.Queue, ack_path: str, seed: int) -> None:
    """Gets crash-test payloads with get_many, 1..BATCH_MAX at a time, until an empty message
    (one taken beyond its own is put back); records (producer, seq, intact) of each message of
    a batch once get_many returned (one write per batch). Exits 3 if the queue stays empty for
    60 s."""
    dump_stack_on_sigusr1(ack_path + ".stack")
    rng = random.Random(seed)
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                batch = q.get_many(rng.randint(1, BATCH_MAX), timeout=60)
            except fastqueue.Empty:
                os._exit(3)
            records = []
            for i, msg in enumerate(batch):
                if not msg:
                    _ack(fd, b"".join(records))
                    for extra in batch[i + 1 :]:
                        assert not extra, "a message after the end markers"
                        q.put(b"", timeout=60)
                    return
                producer, seq, intact = check_big(msg)
                records.append(GET_ACK.pack(producer, seq, int(intact), len(msg)))
            _ack(fd, b"".join(records))
    finally:
        os.close(fd)


def big_producer(
    q: fastqueue.Queue, producer: int, seed: int, ack_path: str, stop_path: str, zero_copy: bool
) -> None:
    """Puts large payloads (1..4 MiB bodies, blake2b checksummed) until the file ``stop_path``
    exists, recording each acknowledged sequence number. (Not a multiprocessing Event: its lock
    would stay taken forever by a process SIGKILLed inside ``is_set()``.)

    The messages are prepared up front, so the process spends its time inside put (mostly in
    the copy into the slot): with ``zero_copy`` through fq_write_begin / memmove /
    fq_write_commit, else through ``Queue.put`` (which lends the bytearray to C uncopied)."""
    dump_stack_on_sigusr1(ack_path + ".stack")
    rng = random.Random(seed)
    block = rng.randbytes(4 << 20)
    bodies = []
    for _ in range(4):
        n = rng.randint(1 << 20, 4 << 20)
        off = rng.randint(0, len(block) - n)
        body = block[off : off + n]
        msg = bytearray(big_message(producer, 0, body))
        bodies.append((msg, n, digest(body)))
    lib, h = (raw(), raw_open(q.name)) if zero_copy else (None, None)
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        seq = 0
        while not os.path.exists(stop_path):
            msg, n, dig = bodies[seq % len(bodies)]
            BIG_HEADER.pack_into(msg, 0, producer, seq, n, dig)
            if lib is None:
                q.put(msg, timeout=60)
            else:
                data, token = c_void_p(), c_uint64()
                status = lib.fq_write_begin(h, byref(data), byref(token), 60_000_000_000)
                assert status == _ffi.OK, status
                src = (ctypes.c_char * len(msg)).from_buffer(msg)
                ctypes.memmove(data.value, src, len(msg))
                status = lib.fq_write_commit(h, token.value, len(msg))
                assert status == _ffi.OK, status
            _ack(fd, PUT_ACK.pack(seq))
            seq += 1
    finally:
        os.close(fd)


def big_consumer(q: fastqueue.Queue, ack_path: str, zero_copy: bool) -> None:
    """Gets large payloads until an empty message and records (producer, seq, intact) of each.
    With ``zero_copy`` the message is checked in place, inside fq_read_begin / fq_read_end (so
    the process spends most of its time holding a read claim), else :func:`ack_consumer`."""
    dump_stack_on_sigusr1(ack_path + ".stack")
    if not zero_copy:
        ack_consumer(q, ack_path)
        return
    lib, h = raw(), raw_open(q.name)
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            data, length, token = c_void_p(), c_uint64(), c_uint64()
            status = lib.fq_read_begin(h, byref(data), byref(length), byref(token), 60 * 10**9)
            if status == _ffi.EMPTY:
                os._exit(3)
            assert status == _ffi.OK, status
            n = length.value
            if n == 0:
                assert lib.fq_read_end(h, token.value) == _ffi.OK
                return
            view = memoryview((ctypes.c_char * n).from_address(data.value)).cast("B")
            if n < BIG_HEADER.size:
                producer, seq, intact = 0xFFFFFFFF, 0, False
            else:
                producer, seq, size, want = BIG_HEADER.unpack_from(view)
                body = view[BIG_HEADER.size :]
                intact = size == len(body) and digest(body) == want
                body.release()
            view.release()
            assert lib.fq_read_end(h, token.value) == _ffi.OK
            _ack(fd, GET_ACK.pack(producer, seq, int(intact), n))
    finally:
        os.close(fd)


def forked_child_parks(q: fastqueue.Queue, op: str, ready_fd: int) -> None:
    """In a child forked (os.fork) from a process that holds ``q``: claims a slot through the
    handle the child inherited (which fastqueue re-registered for this process at fork), writes
    one byte to ``ready_fd`` and waits to be SIGKILLed inside the claim."""
    lib = raw()
    handle = q._h._ptr  # type: ignore[union-attr]  # the child's own handle (after fq_clone)
    data, token, length = c_void_p(), c_uint64(), c_uint64()
    if op == "write":
        status = lib.fq_write_begin(handle, byref(data), byref(token), 10_000_000_000)
        if status == _ffi.OK:
            ctypes.memmove(data.value, b"torn", 4)
    else:
        status = lib.fq_read_begin(handle, byref(data), byref(length), byref(token), 10**10)
    os.write(ready_fd, b"P" if status == _ffi.OK else b"F")
    sleep_forever()


def sigint_get(q: fastqueue.Queue, ready: Any, result: Connection) -> None:
    """Blocks in get() (no timeout) until SIGINT; reports what happened."""
    try:
        ready.set()
        msg = q.get()
    except KeyboardInterrupt:
        result.send(("interrupted", None))
        return
    result.send(("returned", msg))


def sigint_put(q: fastqueue.Queue, ready: Any, result: Connection) -> None:
    """Blocks in put() on a full queue (no timeout) until SIGINT; reports what happened."""
    try:
        ready.set()
        q.put(b"interrupted put")
    except KeyboardInterrupt:
        result.send(("interrupted", None))
        return
    result.send(("returned", None))


def idle_wait(q: fastqueue.Queue, op: str, seconds: float, result: Connection) -> None:
    """Blocks ``seconds`` in get (empty queue) or put (full queue) until the timeout; reports
    (outcome, CPU seconds used, wall seconds waited)."""
    wall, cpu = time.monotonic(), time.process_time()
    try:
        if op == "get":
            q.get(timeout=seconds)
        else:
            q.put(b"x", timeout=seconds)
        outcome = "returned"
    except (fastqueue.Empty, fastqueue.Full) as exc:
        outcome = type(exc).__name__
    result.send((outcome, time.process_time() - cpu, time.monotonic() - wall))


def describe_ring(name: str) -> str:
    """A one-line picture of the queue ``name`` read straight from /dev/shm, for failure
    messages: tail, head, and each slot's (lap, phase, owner) with its message length (layout:
    core/src/layout.rs and the state word of core/src/ring.rs)."""
    try:
        data = Path("/dev/shm", name).read_bytes()
    except OSError as exc:
        return f"(cannot read the segment: {exc})"
    capacity, _, stride = struct.unpack_from("<QQQ", data, 16)
    slots_offset = struct.unpack_from("<Q", data, 48)[0]
    tail = struct.unpack_from("<Q", data, 128)[0]
    head = struct.unpack_from("<Q", data, 256)[0]
    phases = ("EMPTY", "WRITING", "FULL", "READING", "ABANDONED", "5", "6", "7")
    slots = []
    for i in range(min(capacity, 16)):
        state, length = struct.unpack_from("<QQ", data, slots_offset + i * stride)
        lap, phase, owner = state >> 19, (state >> 16) & 7, state & 0xFFFF
        slots.append(f"{i}:{phases[phase]}(lap {lap}, owner {owner}, len {length})")
    return f"tail={tail} head={head} slots=[{', '.join(slots)}]"


# ----------------------------------------------------------------------------------- hostile


def attach_report(name: str) -> tuple[Any, ...]:
    """Attaches to ``name``; returns ("error", exception class names, message, status) or
    ("attached", element_size, capacity, [outcome of each operation tried]). An operation's
    outcome is "ok", or the names of the classes of the exception it raised (whatever it was:
    the caller judges)."""
    try:
        q = fastqueue.Queue(name, create=False)
    except Exception as exc:
        classes = [c.__name__ for c in type(exc).__mro__]
        return ("error", classes, str(exc), getattr(exc, "status", None))
    ops: list[Any] = []
    try:
        for op in (
            lambda: q.put_nowait(b"probe"),
            lambda: q.get_nowait(),
            lambda: q.put(b"timed", timeout=0.05),
            lambda: q.get(timeout=0.05),
            lambda: q.get_nowait(),
            q.qsize,
        ):
            try:
                op()
                ops.append("ok")
            except Exception as exc:
                ops.append([c.__name__ for c in type(exc).__mro__])
        return ("attached", q.element_size, q.maxsize, ops)
    finally:
        q.close()


def run_forked(func: Callable[[], Any], timeout: float = 30.0) -> tuple[str, Any]:
    """Runs ``func()`` in a forked child and returns ("ok", its pickled result), ("raised",
    repr) or ("crashed", description: signal / exit code / hang). The child never returns into
    the caller's stack (os._exit)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            try:
                payload = pickle.dumps(("ok", func()))
            except BaseException as exc:
                payload = pickle.dumps(("raised", repr(exc)))
            with os.fdopen(w, "wb") as f:
                f.write(payload)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return ("crashed", f"child hung for {timeout} s")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("crashed", f"killed by {signal.Signals(os.WTERMSIG(status)).name}")
    if os.WEXITSTATUS(status) != 0 or not chunks:
        return ("crashed", f"exit code {os.WEXITSTATUS(status)}")
    result: tuple[str, Any] = pickle.loads(b"".join(chunks))
    return result


# ----------------------------------------------------------------------------------- stress

#: Stress payload header: producer id, sequence number, CRC-32 of the body.
STRESS_HEADER = struct.Struct("<HII")
#: Messages shorter than the header carry no identity: they are this byte repeated, and only
#: counted (by length). The consumers' stop message is the single byte STOP_BYTE.
SHORT_BYTE = 0xAA
STOP = b"\xee"
MODES = ("block", "nowait", "timeout", "mixed", "batch")


@dataclasses.dataclass(frozen=True)
class StressConfig:
    """One stress example: what Hypothesis (or the soak loop) drew."""

    producers: int
    consumers: int
    capacity: int
    element_size: int
    #: Message lengths (0..element_size), used in turn by each producer (offset by its id).
    sizes: tuple[int, ...]
    producer_modes: tuple[str, ...]
    consumer_modes: tuple[str, ...]
    per_producer: int
    seed: int = 0

    def size_of(self, producer: int, seq: int) -> int:
        return self.sizes[(seq + producer) % len(self.sizes)]


def stress_body(producer: int, seq: int, n: int) -> bytes:
    """The body of a stress message of total length n (>= header), from (producer, seq)."""
    size = n - STRESS_HEADER.size
    if size <= 0:
        return b""
    unit = struct.pack("<HI", producer, seq) + b"\x5a"
    return (unit * (size // len(unit) + 1))[:size]


def stress_message(producer: int, seq: int, n: int) -> bytes:
    if n < STRESS_HEADER.size:
        return bytes([SHORT_BYTE]) * n
    body = stress_body(producer, seq, n)
    return STRESS_HEADER.pack(producer, seq, zlib.crc32(body)) + body


def _retrying(
    mode: str, rng: random.Random, call: Callable[[bool, float | None], Any], miss: type
) -> Any:
    """Calls ``call(block, timeout)`` in the given mode until it succeeds (120 s budget)."""
    give_up = time.monotonic() + 120
    while True:
        m = rng.choice(MODES[:3]) if mode == "mixed" else mode
        try:
            if m == "block":
                return call(True, None)
            if m == "timeout":
                return call(True, rng.choice((0.0, 0.0005, 0.005, 0.02)))
            return call(False, None)
        except miss:
            if time.monotonic() > give_up:
                raise
            if m == "nowait":
                time.sleep(rng.choice((0, 0, 0.0002)))


def _put_batches(q: fastqueue.Queue, cfg: StressConfig, producer: int, rng: random.Random) -> None:
    """The "batch" mode of a producer: put_many of 1..16 messages at a time (as one packed
    buffer when they are all of one length, half of the time), blocking, with a timeout or
    not at all; a batch cut short by Full goes on from the first message not put."""
    give_up = time.monotonic() + 120
    seq = 0
    while seq < cfg.per_producer:
        k = min(rng.randint(1, 16), cfg.per_producer - seq)
        msgs = [stress_message(producer, s, cfg.size_of(producer, s)) for s in range(seq, seq + k)]
        seq += k
        while msgs:
            block, timeout = rng.choice(((True, None), (True, 0.005), (True, 0.02), (False, None)))
            n = len(msgs[0])
            packed = n > 0 and all(len(m) == n for m in msgs) and rng.random() < 0.5
            try:
                if packed:
                    q.put_many(b"".join(msgs), block, timeout, itemsize=n)
                else:
                    q.put_many(msgs, block, timeout)
                msgs = []
            except fastqueue.Full as e:
                msgs = msgs[e.done :]  # type: ignore[attr-defined]
                if time.monotonic() > give_up:
                    raise
                if not block:
                    time.sleep(rng.choice((0, 0, 0.0002)))


def stress_producer(q: fastqueue.Queue, cfg: StressConfig, producer: int) -> None:
    rng = random.Random(cfg.seed * 1000 + producer)
    mode = cfg.producer_modes[producer]
    if mode == "batch":
        _put_batches(q, cfg, producer, rng)
        return
    for seq in range(cfg.per_producer):
        msg = stress_message(producer, seq, cfg.size_of(producer, seq))
        _retrying(mode, rng, lambda b, t, m=msg: q.put(m, b, t), fastqueue.Full)


def _get_batches(q: fastqueue.Queue, cfg: StressConfig, rng: random.Random) -> Iterator[bytes]:
    """The "batch" mode of a consumer: get_many of 1..16 at a time, until its STOP; a third of
    the time packed, get_many(n, itemsize=k) with k one of the configured lengths (it takes
    only messages of exactly k bytes; if the next one has another length, ValueError, and the
    next call takes it as a list). STOPs come after every message; one taken beyond its own is
    put back for another consumer."""
    give_up = time.monotonic() + 120
    lengths = sorted({n for n in cfg.sizes if n > 0})
    while True:
        block, timeout = rng.choice(((True, None), (True, 0.005), (True, 0.02), (False, None)))
        k = rng.choice(lengths) if lengths and rng.random() < 1 / 3 else None
        try:
            if k is None:
                batch = q.get_many(rng.randint(1, 16), block, timeout)
            else:
                blob = q.get_many(rng.randint(1, 16), block, timeout, itemsize=k)
                assert blob and len(blob) % k == 0, f"a packed batch of {len(blob)} bytes, k={k}"
                batch = [blob[i : i + k] for i in range(0, len(blob), k)]
        except ValueError as e:
            assert "not itemsize" in str(e), e
            continue  # the next message has another length: it is still there
        except fastqueue.Empty:
            if time.monotonic() > give_up:
                raise
            if not block:
                time.sleep(rng.choice((0, 0, 0.0002)))
            continue
        give_up = time.monotonic() + 120
        for i, msg in enumerate(batch):
            if msg == STOP:
                for extra in batch[i + 1 :]:
                    assert extra == STOP, "a message after the end markers"
                    q.put(STOP)
                return
            yield msg


def stress_consumer(q: fastqueue.Queue, cfg: StressConfig, index: int, out_path: str) -> None:
    """Gets until STOP; writes (received [(producer, seq)], short lengths Counter, problems) to
    ``out_path`` as a pickle."""
    rng = random.Random(cfg.seed * 1000 + 500 + index)
    mode = cfg.consumer_modes[index]
    got: list[tuple[int, int]] = []
    short: Counter[int] = Counter()
    problems: list[str] = []
    nbytes = 0

    def singles() -> Iterator[bytes]:
        while True:
            msg = _retrying(mode, rng, lambda b, t: q.get(b, t), fastqueue.Empty)
            if msg == STOP:
                return
            yield msg

    for msg in _get_batches(q, cfg, rng) if mode == "batch" else singles():
        nbytes += len(msg)
        if len(msg) < STRESS_HEADER.size:
            if msg != bytes([SHORT_BYTE]) * len(msg):
                problems.append(f"corrupt short message {msg!r}")
            short[len(msg)] += 1
            continue
        producer, seq, crc = STRESS_HEADER.unpack_from(msg)
        body = msg[STRESS_HEADER.size :]
        if producer >= cfg.producers or seq >= cfg.per_producer:
            problems.append(f"foreign message header {(producer, seq)} len {len(msg)}")
            continue
        if len(msg) != cfg.size_of(producer, seq) or zlib.crc32(body) != crc:
            problems.append(f"torn message {(producer, seq)}: len {len(msg)}")
        elif body != stress_body(producer, seq, len(msg)):
            problems.append(f"wrong body for {(producer, seq)}")
        got.append((producer, seq))
    with open(out_path, "wb") as f:
        pickle.dump((got, short, problems, nbytes), f)


@dataclasses.dataclass
class StressResult:
    messages: int = 0
    bytes: int = 0
    examples: int = 0

    def add(self, other: StressResult) -> None:
        self.messages += other.messages
        self.bytes += other.bytes
        self.examples += other.examples


def _kill_all(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def run_stress(ctx: BaseContext, cfg: StressConfig, name: str, workdir: Path) -> StressResult:
    """Runs one stress example on a new queue ``name`` with spawned producers and consumers and
    checks exactly-once delivery and per-producer order. Raises AssertionError (with the
    config) on any violation. The queue is always unlinked."""
    where = f"\n  config: {cfg}"
    producers: list[Any] = []
    consumers: list[Any] = []
    outs = [workdir / f"{name}-c{i}.pickle" for i in range(cfg.consumers)]
    with fastqueue.Queue(name, element_size=cfg.element_size, capacity=cfg.capacity) as q:
        try:
            for i in range(cfg.consumers):
                p = ctx.Process(target=stress_consumer, args=(q, cfg, i, str(outs[i])))  # type: ignore[attr-defined]
                p.start()
                consumers.append(p)
            for i in range(cfg.producers):
                p = ctx.Process(target=stress_producer, args=(q, cfg, i))  # type: ignore[attr-defined]
                p.start()
                producers.append(p)
            for p in producers:
                p.join(240)
                assert p.exitcode == 0, f"producer exit code {p.exitcode}{where}"
            for _ in consumers:
                q.put(STOP, timeout=60)
            for p in consumers:
                p.join(240)
                assert p.exitcode == 0, f"consumer exit code {p.exitcode}{where}"
            assert q.qsize() == 0, f"{q.qsize()} messages left after the stop messages{where}"
        finally:
            _kill_all(producers + consumers)
    seen: dict[tuple[int, int], int] = {}
    shorts: Counter[int] = Counter()
    total_bytes = 0
    for i, path in enumerate(outs):
        with open(path, "rb") as f:
            got, short, problems, nbytes = pickle.load(f)
        path.unlink()
        assert not problems, f"consumer {i}: {problems[:5]}{where}"
        shorts.update(short)
        total_bytes += nbytes
        last: dict[int, int] = {}
        for producer, seq in got:
            assert seq > last.get(producer, -1), (
                f"consumer {i} got producer {producer}'s seq {seq} after {last[producer]}{where}"
            )
            last[producer] = seq
            assert (producer, seq) not in seen, (
                f"({producer}, {seq}) delivered twice (consumers {seen[(producer, seq)]}, {i})"
                f"{where}"
            )
            seen[(producer, seq)] = i
    want_long = set()
    want_short: Counter[int] = Counter()
    for producer in range(cfg.producers):
        for seq in range(cfg.per_producer):
            n = cfg.size_of(producer, seq)
            if n < STRESS_HEADER.size:
                want_short[n] += 1
            else:
                want_long.add((producer, seq))
    missing = sorted(want_long - set(seen))
    assert not missing, f"{len(missing)} messages lost, e.g. {missing[:5]}{where}"
    assert shorts == want_short, f"short messages: got {shorts}, sent {want_short}{where}"
    return StressResult(messages=len(seen) + sum(shorts.values()), bytes=total_bytes, examples=1)


def random_config(rng: random.Random, messages: int, byte_budget: int) -> StressConfig:
    """A random stress example (the soak loop's stand-in for Hypothesis' strategies) of about
    ``messages`` messages in all, fewer if they would move more than ``byte_budget`` bytes."""
    element_size = rng.choice(
        (rng.randint(1, 16), rng.randint(10, 256), rng.randint(10, 256), rng.randint(257, 8192))
        + ((65536,) if rng.random() < 0.2 else ())
    )
    producers, consumers = rng.randint(1, 4), rng.randint(1, 4)
    sizes = tuple(
        rng.choice((0, element_size, rng.randint(0, element_size)))
        for _ in range(rng.randint(1, 8))
    )
    average = max(1, sum(sizes) // len(sizes))
    total = max(producers, min(messages, byte_budget // average))
    return StressConfig(
        producers=producers,
        consumers=consumers,
        capacity=rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(8, 64))),
        element_size=element_size,
        sizes=sizes,
        producer_modes=tuple(rng.choice(MODES) for _ in range(producers)),
        consumer_modes=tuple(rng.choice(MODES) for _ in range(consumers)),
        per_producer=total // producers,
        seed=rng.randrange(1 << 30),
    )
