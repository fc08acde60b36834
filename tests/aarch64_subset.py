"""A meaningful subset of the tests, as one script that needs only the standard library and an
installed (or unpacked) fastqueue: what ``just test-aarch64`` runs on Debian's arm64 CPython
under qemu-user, with the aarch64 wheel unpacked on PYTHONPATH.

qemu-user has no binfmt here, so a child process must never exec Python again: every child is
forked (multiprocessing's "fork" start method; nothing here uses spawn, forkserver, the
resource tracker or subprocess). qemu runs the aarch64 code, its atomics and its futex calls,
but it does NOT reproduce a weak memory model (it runs the guest's loads and stores in the
host's order, strong on x86_64): reorderings that aarch64 hardware allows are covered by the loom
models of the ring and the wake protocol (``just loom``), not by this script.

Checks, each in forked processes sharing one named queue:

1. exactly-once and per-producer order: 2 producers x 2 consumers, every message length from 0
   to the queue's maximum, nothing lost, duplicated or torn (a small and a pooled layout);
2. a SIGKILLed holder recovered: a writer killed while it holds a claimed slot (the slot is
   skipped), a reader killed while it holds a lent message (the slot is recovered, the message
   counted lost); the survivors go on;
3. timeouts: get on an empty and put on a full queue raise Empty / Full when the time is up;
4. objects: an ObjectQueue carries pickled objects between processes;
5. shutdown and join: a JoinableQueue's join returns once a forked worker marked every task
   done; a shutdown wakes a get blocked in another process.

Usage: ``python tests/aarch64_subset.py`` (prints one line per check, exits non-zero on failure).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import signal
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fastqueue

CTX = multiprocessing.get_context("fork")
#: How long any single operation may wait before the check fails (qemu is slow, not stuck).
OP_TIMEOUT = 60.0
#: How long a child may take in all.
CHILD_TIMEOUT = 600.0
PREFIX = f"fq-aarch64-{os.getpid()}-{uuid.uuid4().hex[:6]}"
_names = iter(range(1_000_000))
_RAMP = bytes(range(256)) * 2


def new_name() -> str:
    return f"{PREFIX}-{next(_names)}"


@contextlib.contextmanager
def cleanup(name: str) -> Iterator[str]:
    try:
        yield name
    finally:
        with contextlib.suppress(fastqueue.FastQueueError, FileNotFoundError):
            fastqueue.unlink(name)


def run_children(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    procs = [CTX.Process(target=t, args=a) for t, a in targets]
    for p in procs:
        p.start()
    deadline = time.monotonic() + CHILD_TIMEOUT
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
            raise SystemExit(f"aarch64: child {p.name} did not finish in time")
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if bad:
        raise SystemExit(f"aarch64: children failed: {bad}")


# ------------------------------------------------------------------ 1. exactly-once, every length


def payload(producer: int, seq: int, length: int) -> bytes:
    """length bytes; from 8 bytes on they carry (producer, seq) and a CRC of the rest."""
    if length < 8:
        return bytes((producer * 31 + seq + j) % 256 for j in range(length))
    start = (producer * 131 + seq * 7) % 256
    body = (_RAMP[start : start + 256] * ((length - 8) // 256 + 2))[: length - 8]
    head = producer.to_bytes(1, "little") + seq.to_bytes(3, "little")
    return head + zlib.crc32(head + body).to_bytes(4, "little") + body


#: Lengths the pooled layout's check cycles through (every length would be 65,537 messages).
POOLED_LENGTHS = [0, 1, 7, 8, 9, 63, 64, 65, 4095, 4096, 4097, 32768, 65535, 65536]


def length_of(seq: int, max_msg: int) -> int:
    """Message seq's length: every length 0..max_msg in turn, or POOLED_LENGTHS for big ones."""
    if max_msg < 65536:
        return seq % (max_msg + 1)
    return POOLED_LENGTHS[seq % len(POOLED_LENGTHS)]


def produce(name: str, producer: int, count: int, max_msg: int) -> None:
    with fastqueue.Queue(name, create=False) as q:
        for seq in range(count):
            q.put(payload(producer, seq, length_of(seq, max_msg)), timeout=OP_TIMEOUT)


def consume(name: str, out_path: str) -> None:
    got = []
    with fastqueue.Queue(name, create=False) as q:
        while True:
            try:
                got.append(q.get(timeout=OP_TIMEOUT))
            except fastqueue.ShutDown:
                break
    with open(out_path, "wb") as f:
        import pickle

        pickle.dump(got, f)


def check_exactly_once(max_msg: int, capacity: int, per_producer: int) -> str:
    import pickle
    import tempfile

    producers, consumers = 2, 2
    with cleanup(new_name()) as name, tempfile.TemporaryDirectory() as tmp:
        q = fastqueue.Queue(name, element_size=max_msg, capacity=capacity)
        try:
            outs = [os.path.join(tmp, f"c{c}") for c in range(consumers)]
            # Consumers run until the shutdown that follows the producers, so start them first
            # and shut down only once the producers are done.
            cons = [CTX.Process(target=consume, args=(name, out)) for out in outs]
            for c in cons:
                c.start()
            run_children([(produce, (name, p, per_producer, max_msg)) for p in range(producers)])
            q.shutdown()
            for c in cons:
                c.join(CHILD_TIMEOUT)
                if c.exitcode != 0:
                    raise SystemExit(f"aarch64: consumer exited {c.exitcode}")
            seen: list[list[bytes]] = []
            for out in outs:
                with open(out, "rb") as f:
                    seen.append(pickle.load(f))
        finally:
            q.close()
    expected = Counter(
        payload(p, s, length_of(s, max_msg)) for p in range(producers) for s in range(per_producer)
    )
    got = Counter(m for msgs in seen for m in msgs)
    if got != expected:
        missing, extra = expected - got, got - expected
        raise SystemExit(f"aarch64: not exactly once: {len(missing)} missing, {len(extra)} extra")
    for msgs in seen:  # per producer, each consumer sees increasing sequence numbers
        last = [-1] * producers
        for m in msgs:
            if len(m) >= 8:
                p, s = m[0], int.from_bytes(m[1:4], "little")
                assert zlib.crc32(m[:4] + m[8:]) == int.from_bytes(m[4:8], "little"), "torn"
                assert s > last[p], f"producer {p}: {s} after {last[p]}"
                last[p] = s
    lengths = {len(m) for m in got}
    want = {length_of(s, max_msg) for s in range(per_producer)}
    assert lengths == want, "not every length travelled"
    total = producers * per_producer
    shown = f"every length 0..{max_msg}" if max_msg < 65536 else f"lengths {POOLED_LENGTHS}"
    return f"{total} messages of {shown}, capacity {capacity}, 2 producers x 2 consumers"


# ------------------------------------------------------------------- 2. a SIGKILLed holder


def hold_write_slot(name: str, ready: Any) -> None:
    with fastqueue.Queue(name, create=False) as q, q.put_slot() as slot:
        slot.buffer[:4] = b"dead"
        ready.set()
        time.sleep(CHILD_TIMEOUT)  # killed here, holding the claimed slot


def hold_read_slot(name: str, ready: Any) -> None:
    with fastqueue.Queue(name, create=False) as q, q.get_slot():
        ready.set()
        time.sleep(CHILD_TIMEOUT)  # killed here, holding the lent message


def kill_holding(target: Any, name: str) -> None:
    ready = CTX.Event()
    p = CTX.Process(target=target, args=(name, ready))
    p.start()
    if not ready.wait(OP_TIMEOUT * 2):
        p.kill()
        raise SystemExit("aarch64: the holder never got its slot")
    os.kill(p.pid, signal.SIGKILL)
    p.join(OP_TIMEOUT)


def check_sigkill_recovery() -> str:
    with cleanup(new_name()) as name, fastqueue.Queue(name, element_size=64, capacity=2) as q:
        kill_holding(hold_write_slot, name)  # a dead writer's claimed slot: skipped
        q.put(b"after the writer", timeout=OP_TIMEOUT)
        assert q.get(timeout=OP_TIMEOUT) == b"after the writer"
        q.put(b"lost with the reader", timeout=OP_TIMEOUT)
        kill_holding(hold_read_slot, name)  # a dead reader's message: lost, slot recovered
        for i in range(6):  # round the ring several times through the recovered slots
            q.put(b"x%d" % i, timeout=OP_TIMEOUT)
            assert q.get(timeout=OP_TIMEOUT) == b"x%d" % i
        stats = q.stats()
        assert stats["lost"] == 1 and stats["skipped"] == 1, stats
        assert stats["recoveries"] >= 2, stats
    return f"writer and reader killed in their slots, recovered ({stats['recoveries']} recoveries)"


# ------------------------------------------------------------------------------- 3. timeouts


def check_timeouts() -> str:
    with cleanup(new_name()) as name, fastqueue.Queue(name, element_size=8, capacity=1) as q:
        try:
            q.get(timeout=0.2)
            raise SystemExit("aarch64: get on an empty queue returned")
        except fastqueue.Empty:
            pass
        q.put(b"full")
        try:
            q.put(b"more", timeout=0.2)
            raise SystemExit("aarch64: put on a full queue returned")
        except fastqueue.Full:
            pass
        try:
            q.put_nowait(b"more")
            raise SystemExit("aarch64: put_nowait on a full queue returned")
        except fastqueue.Full:
            pass
        assert q.get_nowait() == b"full"
    return "Empty and Full when the time is up"


# -------------------------------------------------------------------------------- 4. objects

OBJECTS = [None, 1, -(2**70), 3.5, "ünïcode", b"\x00bytes", [1, [2, 3]], {"k": (1, 2)}, set()]


def put_objects(name: str) -> None:
    with fastqueue.ObjectQueue(name, create=False) as q:
        for obj in OBJECTS:
            q.put(obj, timeout=OP_TIMEOUT)
        q.put(bytes(range(256)) * 40, timeout=OP_TIMEOUT)


def check_objects() -> str:
    with (
        cleanup(new_name()) as name,
        fastqueue.ObjectQueue(name, element_size=16384, capacity=3) as q,
    ):
        p = CTX.Process(target=put_objects, args=(name,))
        p.start()
        got = [q.get(timeout=OP_TIMEOUT) for _ in range(len(OBJECTS) + 1)]
        p.join(CHILD_TIMEOUT)
        assert p.exitcode == 0, p.exitcode
    assert got[:-1] == OBJECTS, got
    assert got[-1] == bytes(range(256)) * 40
    return f"{len(got)} pickled objects from a forked process"


# ----------------------------------------------------------------------- 5. shutdown and join


def worker(name: str, n: int) -> None:
    with fastqueue.JoinableQueue(name, create=False) as q:
        for _ in range(n):
            q.get(timeout=OP_TIMEOUT)
            q.task_done()


def blocked_get(name: str) -> None:
    with fastqueue.Queue(name, create=False) as q:
        try:
            q.get()  # no timeout: only the shutdown ends it
        except fastqueue.ShutDown:
            sys.exit(0)
    sys.exit(3)


def check_shutdown_join() -> str:
    with (
        cleanup(new_name()) as name,
        fastqueue.JoinableQueue(name, element_size=32, capacity=4) as q,
    ):
        p = CTX.Process(target=worker, args=(name, 20))
        p.start()
        for i in range(20):
            q.put(b"task %d" % i, timeout=OP_TIMEOUT)
        assert q.join(timeout=CHILD_TIMEOUT), "join timed out"
        p.join(CHILD_TIMEOUT)
        assert p.exitcode == 0, p.exitcode
    with cleanup(new_name()) as name, fastqueue.Queue(name, element_size=8, capacity=2) as q:
        p = CTX.Process(target=blocked_get, args=(name,))
        p.start()
        deadline = time.monotonic() + CHILD_TIMEOUT
        while q.stats()["getter_sleeps"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child sleeps in its get (not a timing assertion)
        q.shutdown()
        p.join(CHILD_TIMEOUT)
        assert p.exitcode == 0, f"the blocked get did not end with ShutDown: {p.exitcode}"
    return "join after a forked worker's task_done; shutdown wakes a blocked get"


def main() -> int:
    print(
        f"aarch64: Python {platform.python_version()} on {platform.machine()}, "
        f"fastqueue {fastqueue.__version__} from {os.path.dirname(fastqueue.__file__)}",
        flush=True,
    )
    print(f"aarch64: library {fastqueue.library_path()}", flush=True)
    checks = [
        ("exactly-once (small slots)", lambda: check_exactly_once(300, 3, 5000)),
        ("exactly-once (capacity 1)", lambda: check_exactly_once(17, 1, 2000)),
        ("exactly-once (pooled, 64 KiB)", lambda: check_exactly_once(65536, 3, 56)),
        ("SIGKILLed holders", check_sigkill_recovery),
        ("timeouts", check_timeouts),
        ("objects", check_objects),
        ("shutdown/join", check_shutdown_join),
    ]
    for title, check in checks:
        start = time.monotonic()
        what = check()
        print(f"aarch64: ok  {title}: {what} ({time.monotonic() - start:.1f} s)", flush=True)
    print("aarch64: every check passed (qemu-user: no weak memory model; loom covers orderings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
