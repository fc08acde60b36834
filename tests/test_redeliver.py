"""Acknowledged delivery (``redeliver=True``) and join() with dead consumers, across processes:
children SIGKILLed at each step of a leased get, while holding leases, in the middle of the
recovery of another dead child; without redeliver, a dead child's messages count as done.

A child is held inside a window of the lease protocol by the library's test-only pause
(``FASTQUEUE_TEST_HOLD=<point>``: the process writes ``FASTQUEUE_TEST_HOLD_FILE`` and sleeps
there until killed), then SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from _procs import checkout_env
from fastqueue import JoinableObjectQueue, JoinableQueue, Queue

NameFactory = Callable[[], str]


def start_child(code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A child Python running ``code`` (with ``fastqueue`` imported) on this checkout."""
    return subprocess.Popen(
        [sys.executable, "-c", "import fastqueue, sys, time, os\n" + code],
        env={**checkout_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""


def held_child(name: str, point: str, tmp_path: Path, code: str) -> subprocess.Popen[str]:
    """A child that attaches to ``name``, runs ``code`` and is held at ``point``."""
    flag = tmp_path / f"held-{point}"
    child = start_child(
        f"q = fastqueue.Queue({name!r}, create=False)\n{code}\ntime.sleep(60)",
        env={"FASTQUEUE_TEST_HOLD": point, "FASTQUEUE_TEST_HOLD_FILE": str(flag)},
    )
    wait_for(lambda: flag.exists() or child.poll() is not None, f"the child to reach {point}")
    assert child.poll() is None, child.stderr.read() if child.stderr else ""
    return child


@pytest.mark.parametrize("point", ["lease-claimed", "lease-filled", "lease-held"])
def test_a_getter_killed_at_each_step_loses_nothing(
    qname: NameFactory, tmp_path: Path, point: str
) -> None:
    with Queue(qname(), element_size=32, capacity=4, redeliver=True) as q:
        q.put(b"first")
        q.put(b"second")
        child = held_child(q.name, point, tmp_path, "q.get()")
        kill(child)
        got = [q.get(timeout=10), q.get(timeout=10)]
        assert sorted(got) == [b"first", b"second"], got
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.3)
        q.task_done()
        q.task_done()
        assert q.join(timeout=10)
        s = q.stats()
        assert (s["lost"], s["leased"], s["unfinished"]) == (0, 0, 0)


def test_a_recoverer_killed_in_the_middle_of_a_recovery_loses_nothing(
    qname: NameFactory, tmp_path: Path
) -> None:
    with Queue(qname(), element_size=32, capacity=4, redeliver=True) as q:
        q.put(b"only")
        # A dies holding the ring's read claim; B, blocked behind it, recovers A and is held
        # (then killed) after moving the message into A's lease, before releasing the slot.
        kill(held_child(q.name, "lease-claimed", tmp_path, "q.get()"))
        kill(held_child(q.name, "recover-held", tmp_path, "q.get()"))
        assert q.get(timeout=10) == b"only"
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.3)
        q.task_done()
        assert q.join(timeout=10)
        assert q.stats()["lost"] == 0


#: Large messages (the pooled layout): a get hands the slot's pool buffer over to its lease
#: (record, the entry takes the slot's buffer, the slot takes the entry's) instead of copying.
POOLED = 64 * 1024
POOLED_POINTS = ["lease-claimed", "lease-recorded", "lease-swapping", "lease-filled", "lease-held"]


def pooled_message(k: int, n: int = POOLED) -> bytes:
    """Message ``k``: ``n`` bytes that differ from every other message's in every 8-byte word."""
    return (k.to_bytes(8, "little") * (n // 8 + 1))[:n]


def assert_every_pool_buffer_has_one_owner(q: Queue, tmp_path: Path) -> None:
    """Fills every buffer of the pool with its own message (every lease held by a child, the
    ring full), then has the leases given back (the child closes) and checks every message.
    Two owners of one buffer (a broken permutation) would overwrite one of the messages."""
    cap = q.maxsize
    for k in range(cap):
        q.put(pooled_message(100 + k))
    flag = tmp_path / "holding"
    child = start_child(
        f"h = fastqueue.Queue({q.name!r}, create=False)\n"
        f"got = [h.get(timeout=10) for _ in range({cap})]\n"
        f"want = [((100 + k).to_bytes(8, 'little') * {POOLED // 8 + 1})[:{POOLED}]"
        f" for k in range({cap})]\n"
        "assert got == want, 'a leased message was overwritten'\n"
        f"open({str(flag)!r}, 'w').close()\n"
        "time.sleep(60)"
    )
    wait_for(lambda: flag.exists() or child.poll() is not None, "the child to hold its leases")
    assert child.poll() is None, child.stderr.read() if child.stderr else ""
    for k in range(cap):
        q.put(pooled_message(200 + k))  # the ring is full again: every buffer has a message
    kill(child)  # its leases come back
    got = []
    for _ in range(2 * cap):
        got.append(q.get(timeout=10))
        q.task_done()  # (at most `capacity` leases at once)
    want = [pooled_message(100 + k) for k in range(cap)] + [
        pooled_message(200 + k) for k in range(cap)
    ]
    assert got == want, "a buffer with two owners: a message was overwritten"


@pytest.mark.parametrize("point", POOLED_POINTS)
def test_a_pooled_getter_killed_at_each_step_of_the_hand_over_loses_nothing(
    qname: NameFactory, tmp_path: Path, point: str
) -> None:
    with Queue(qname(), element_size=POOLED, capacity=4, redeliver=True) as q:
        q.put(pooled_message(1))
        q.put(pooled_message(2, 5000))
        kill(held_child(q.name, point, tmp_path, "q.get()"))
        got = [q.get(timeout=10), q.get(timeout=10)]
        assert sorted(got) == sorted([pooled_message(1), pooled_message(2, 5000)])
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.3)
        q.task_done()
        q.task_done()
        assert q.join(timeout=10)
        s = q.stats()
        assert (s["lost"], s["leased"], s["unfinished"]) == (0, 0, 0)
        assert_every_pool_buffer_has_one_owner(q, tmp_path)


@pytest.mark.parametrize("recover_at", ["recover-recorded", "recover-swapping", "recover-held"])
@pytest.mark.parametrize("point", ["lease-claimed", "lease-recorded", "lease-swapping"])
def test_a_pooled_recoverer_killed_at_each_step_loses_nothing(
    qname: NameFactory, tmp_path: Path, point: str, recover_at: str
) -> None:
    with Queue(qname(), element_size=POOLED, capacity=4, redeliver=True) as q:
        q.put(pooled_message(7))
        # A dies in its hand-over, holding the ring's read claim; B, blocked behind it,
        # recovers A and is killed at a step of finishing A's hand-over.
        kill(held_child(q.name, point, tmp_path, "q.get()"))
        kill(held_child(q.name, recover_at, tmp_path, "q.get()"))
        assert q.get(timeout=10) == pooled_message(7)
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.3)
        q.task_done()
        assert q.join(timeout=10)
        assert q.stats()["lost"] == 0
        assert_every_pool_buffer_has_one_owner(q, tmp_path)


def test_a_killed_worker_s_unacknowledged_messages_come_back_and_join_waits(
    qname: NameFactory,
) -> None:
    with JoinableQueue(qname(), element_size=32, capacity=64, redeliver=True) as q:
        for i in range(45):
            q.put(b"%d" % i)
        child = start_child(
            f"q = fastqueue.JoinableQueue({q.name!r}, create=False)\n"
            "got = q.get_many(40, timeout=5)\n"
            "for _ in range(3): q.task_done()\n"  # acknowledges the 3 oldest
            "print(len(got), flush=True)\n"
            "time.sleep(60)"
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "40"
        kill(child)
        # 45 put, 3 acknowledged: join waits for the dead worker's 37 too.
        assert not q.join(timeout=0.5)
        got = []
        while True:
            try:
                got.append(q.get(timeout=1))
            except fastqueue.Empty:
                break
        assert got == [b"%d" % i for i in range(3, 45)], "redelivered first, oldest first"
        assert q.stats()["redelivered"] == 37
        for _ in got:
            q.task_done()
        assert q.join(timeout=10)


def test_a_blocked_get_notices_a_dead_lease_holder(qname: NameFactory) -> None:
    with JoinableObjectQueue(qname(), element_size=256, capacity=2, redeliver=True) as q:
        q.put({"task": 1})
        child = start_child(
            f"q = fastqueue.JoinableObjectQueue({q.name!r}, create=False)\n"
            "print(q.get(), flush=True)\ntime.sleep(60)"
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "{'task': 1}"
        assert q.qsize() == 0
        kill(child)
        assert q.get(timeout=10) == {"task": 1}  # blocked on an empty ring, woken by recovery
        q.task_done()
        assert q.join(timeout=5)


def test_large_messages_are_leased_and_redelivered(qname: NameFactory) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: the pooled layout
    with Queue(qname(), element_size=len(big), capacity=2, redeliver=True) as q:
        q.put(big)
        with Queue(q.name, create=False) as worker:
            assert worker.get() == big
            q.put(big[:100])
            q.put(big[:200])  # the whole capacity is the producers' while a lease is out
        assert q.get(timeout=5) == big
        assert q.get() == big[:100]


def test_the_option_is_stored_and_checked_on_attach(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=8, capacity=2, redeliver=True, leases=3) as q:
        assert (q.redeliver, q.leases) == (True, 3)
        with Queue(name, create=False) as other:
            assert (other.redeliver, other.leases) == (True, 3)
        with Queue(name, create=False, redeliver=True, leases=3):
            pass
        with pytest.raises(ValueError, match="redeliver=True"):
            Queue(name, create=False, redeliver=False)
        with pytest.raises(ValueError, match="leases=3"):
            Queue(name, create=False, leases=2)
    with Queue(qname(), element_size=8, capacity=2) as plain:
        assert (plain.redeliver, plain.leases) == (False, 0)
    with pytest.raises(ValueError, match="redeliver=True"):
        Queue(qname(), element_size=8, capacity=2, leases=2)
    with pytest.raises(TypeError):
        Queue(qname(), element_size=8, capacity=2, redeliver=1)  # type: ignore[arg-type]


def test_a_get_beyond_the_lease_bound_waits_for_an_acknowledgement(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=4, redeliver=True, leases=1) as q:
        q.put(b"a")
        q.put(b"b")
        assert q.get() == b"a"
        with pytest.raises(fastqueue.Empty):
            q.get(timeout=0.2)
        q.task_done()
        assert q.get(timeout=0) == b"b"


# ------------------------------------------------------------------ without redeliver (part C)


@pytest.mark.parametrize("take", ["get()", "get_many(40)"])
def test_join_does_not_wait_for_a_killed_consumer_without_redeliver(
    qname: NameFactory, take: str
) -> None:
    with JoinableQueue(qname(), element_size=16, capacity=64) as q:
        n = 40 if take.startswith("get_many") else 1
        for i in range(n + 1):
            q.put(b"%d" % i)
        child = start_child(
            f"q = fastqueue.JoinableQueue({q.name!r}, create=False)\n"
            f"got = q.{take}\nprint('took', flush=True)\ntime.sleep(60)"
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "took"
        kill(child)
        assert q.get(timeout=5) == b"%d" % n  # the parent processes the other one
        q.task_done()
        assert q.join(timeout=30), q.stats()
        s = q.stats()
        assert (s["abandoned"], s["unfinished"]) == (n, 0)


def test_a_handle_closing_with_messages_not_done_counts_them_done(qname: NameFactory) -> None:
    with JoinableQueue(qname(), element_size=16, capacity=4) as q:
        q.put(b"x")
        with JoinableQueue(q.name, create=False) as other:
            assert other.get() == b"x"
        assert q.join(timeout=0)
        assert q.stats()["abandoned"] == 1
        # Another process may still mark it done (a parent marking its children's work done):
        # that takes it back from "abandoned", it is not "too many".
        q.task_done()
        s = q.stats()
        assert (s["abandoned"], s["tasks_done"], s["unfinished"]) == (0, 1, 0)
        with pytest.raises(ValueError, match="too many"):
            q.task_done()


def test_a_sigkilled_c_consumer_s_lease_is_delivered_again(
    qname: NameFactory, tmp_path: Path
) -> None:
    """The C face: a consumer built from the header takes a message on a FQ_CREATE_REDELIVER
    queue and dies (SIGKILL) before fq_task_done; a Python consumer gets it again."""
    cc = os.environ.get("CC", "cc")
    src = tmp_path / "lease_consumer.c"
    include = Path(__file__).resolve().parent.parent / "core" / "include"
    lib = Path(fastqueue.library_path())
    src.write_text(
        """
#include <stdio.h>
#include <unistd.h>
#include "fastqueue.h"
int main(int argc, char **argv) {
    fq_queue *q; char buf[64]; uint64_t len;
    if (fq_open(argv[1], &q) != FQ_OK) return 2;
    if (!(fq_flags(q) & FQ_CREATE_REDELIVER)) return 3;
    if (fq_get(q, buf, sizeof buf, &len, -1) != FQ_OK) return 4;
    printf("%.*s\\n", (int)len, buf); fflush(stdout);
    for (;;) pause();
}
"""
    )
    exe = tmp_path / "lease_consumer"
    build = subprocess.run(
        [cc, "-std=c99", "-I", str(include), str(src), str(lib), "-o", str(exe),
         f"-Wl,-rpath,{lib.parent}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.skip(f"no working C compiler: {build.stderr[:200]}")
    with Queue(qname(), element_size=64, capacity=2, redeliver=True) as q:
        q.put(b"from python")
        child = subprocess.Popen([str(exe), q.name], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "from python"
        assert q.qsize() == 0
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert q.get(timeout=10) == b"from python"
        assert q.stats()["redelivered"] == 1
        q.task_done()
        assert q.join(timeout=5)


def test_aget_leases_and_sees_redeliveries(qname: NameFactory) -> None:
    import asyncio

    async def main(q: Queue) -> list[bytes]:
        q.put(b"one")
        with Queue(q.name, create=False) as worker:
            assert await worker.aget() == b"one"
        # The ring is empty: only the returned lease can answer this aget.
        got = [await asyncio.wait_for(q.aget(), 10)]
        q.task_done()
        return got

    with Queue(qname(), element_size=8, capacity=2, redeliver=True) as q:
        assert asyncio.run(main(q)) == [b"one"]
        assert q.join(timeout=5)
