"""Kill tests: processes SIGKILLed inside put and get must not wedge the queue, lose an
acknowledged message (unless the consumer holding it died), deliver a torn or duplicated one, or
reorder a producer's messages.

The claim→publish and claim→release windows are reached without any test-only hook: a child calls
the zero-copy ``fq_write_begin`` / ``fq_read_begin`` (through :func:`_stress_workers.raw`) and
parks inside the claim until the parent kills it. Children acknowledge every put and get that
returned in a file (one write per record), so after a kill the parent knows exactly what the dead
process had been told. Totals are printed (visible with ``pytest -s``).

Reproduce: ``FASTQUEUE_LIBRARY=target/release/libfastqueue.so PYTHONPATH=py python -m pytest
tests/test_crash.py -s`` (``FASTQUEUE_CRASH_SEED=<n>`` replays a random-kill schedule's choices,
``FASTQUEUE_CRASH_ROUNDS=<n>`` runs more rounds of it than the default 8).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import _stress_workers as w
import fastqueue
from fastqueue import Queue

NameFactory = Callable[[], str]
SPAWN = multiprocessing.get_context("spawn")
SIGKILLED = -signal.SIGKILL


# ------------------------------------------------------------------------------ helpers


class Workers:
    """Spawned children of one test; every one still alive is SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.procs: list[Any] = []

    def start(self, target: Callable[..., None], *args: Any) -> Any:
        p = SPAWN.Process(target=target, args=args, daemon=True)
        p.start()
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
            p.join(10)


@pytest.fixture
def workers() -> Iterator[Workers]:
    ws = Workers()
    try:
        yield ws
    finally:
        ws.kill_all()


def wait_for(
    cond: Callable[[], bool], what: str, timeout: float = 30.0, state: Callable[[], str] = str
) -> None:
    """Waits until ``cond()`` holds (a progress condition, not a timing assertion); on giving
    up, the message includes ``state()``."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting for {what}: {state()}"
        time.sleep(0.005)


def parked(conn: Any, what: str) -> Any:
    assert conn.poll(60), f"the {what} never reported"
    kind, value = conn.recv()
    assert kind == "parked", f"the {what} failed to claim: status {value}"
    return value


def kill(p: Any) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    assert p.exitcode == SIGKILLED


def join_ok(p: Any, what: str, timeout: float = 60.0) -> None:
    p.join(timeout)
    assert p.exitcode == 0, f"{what} exit code {p.exitcode} (None: still running: wedged?)"


def finish(q: Queue, producers: Iterable[Any], consumers: Iterable[Any]) -> None:
    """The producers end by themselves: join them; then give each consumer its end marker (an
    empty message, put after everything else), join them, and check the queue is drained."""
    for p in producers:
        join_ok(p, "producer")
    waiting = list(consumers)
    for _ in waiting:
        q.put(b"", timeout=60)
    for p in waiting:
        join_ok(p, "consumer")
    assert q.qsize() == 0


def consumer_records(paths: list[Path]) -> list[list[tuple[int, int, int, int]]]:
    return [w.read_records(path, w.GET_ACK) for path in paths]  # type: ignore[misc]


def check_deliveries(
    per_consumer: list[list[tuple[int, int, int, int]]],
) -> Counter[tuple[int, int]]:
    """Asserts no torn message and per-producer order within each consumer; returns how many
    times each (producer, seq) was delivered."""
    delivered: Counter[tuple[int, int]] = Counter()
    for i, records in enumerate(per_consumer):
        last: dict[int, int] = {}
        for producer, seq, intact, _ in records:
            assert intact, f"consumer {i} got a torn message ({producer}, {seq})"
            assert seq > last.get(producer, -1), (
                f"consumer {i} got producer {producer}'s seq {seq} after {last[producer]}"
            )
            last[producer] = seq
            delivered[(producer, seq)] += 1
    dups = sorted(k for k, n in delivered.items() if n > 1)
    assert not dups, f"delivered more than once: {dups[:10]}"
    return delivered


# ------------------------------------------------------------------------------ parked claims


@pytest.mark.timeout(120)
def test_producer_killed_inside_claim_to_publish(
    qname: NameFactory, workers: Workers, tmp_path: Path
) -> None:
    name, capacity, acked, per_producer = qname(), 4, 2, 40
    with Queue(name, element_size=256, capacity=capacity) as q:
        recv, send = SPAWN.Pipe(duplex=False)
        writer = workers.start(w.park_writer, name, 0, acked, send)
        send.close()
        parked(recv, "parked producer")  # holds position `acked` in WRITING, never publishes
        c_paths = [tmp_path / f"c{i}" for i in range(2)]
        p_paths = {pid: tmp_path / f"p{pid}" for pid in (1, 2)}
        consumers = [workers.start(w.ack_consumer, q, str(path)) for path in c_paths]
        producers = [
            workers.start(w.ack_producer, q, pid, per_producer, str(path))
            for pid, path in p_paths.items()
        ]
        # Everything behind the parked slot waits for it: the queue fills up and stays full.
        wait_for(lambda: q.qsize() == capacity, "the queue to fill up behind the parked slot")
        early = [r for rs in consumer_records(c_paths) for r in rs]
        assert {(p, s) for p, s, _, _ in early} <= {(0, s) for s in range(acked)}, (
            f"a consumer overtook the claimed, unpublished slot: {early}"
        )
        kill(writer)
        finish(q, producers, consumers)
        recovered = q.stats()["recoveries"]
    delivered = check_deliveries(consumer_records(c_paths))
    expected = {(0, s) for s in range(acked)} | {
        (pid, s) for pid in p_paths for s in range(per_producer)
    }
    for path in p_paths.values():
        assert [r[0] for r in w.read_records(path, w.PUT_ACK)] == list(range(per_producer))
    assert (0, acked) not in delivered, "the killed producer's unpublished message was delivered"
    assert set(delivered) == expected, f"lost: {sorted(expected - set(delivered))[:10]}"
    assert recovered >= 1, "the segment counted no recovery"
    print(f"\n[crash] parked producer: {len(delivered)} delivered, recoveries={recovered}")


@pytest.mark.timeout(120)
def test_consumer_killed_inside_claim_to_release(
    qname: NameFactory, workers: Workers, tmp_path: Path
) -> None:
    name, capacity, per_producer = qname(), 4, 30
    with Queue(name, element_size=256, capacity=capacity) as q:
        for seq in range(capacity):  # producer 0 = this process; all acknowledged
            q.put(w.big_message(0, seq, b"first batch"))
        recv, send = SPAWN.Pipe(duplex=False)
        reader = workers.start(w.park_reader, name, send)
        send.close()
        held = parked(recv, "parked consumer")
        assert w.check_big(held) == (0, 0, True)
        p_path = tmp_path / "p1"
        producer = workers.start(w.ack_producer, q, 1, per_producer, str(p_path))
        # While the reader lives, its slot is not free: the producer cannot put anything.
        wait_for(lambda: p_path.exists(), "the producer to start")
        time.sleep(0.2)
        assert w.read_records(p_path, w.PUT_ACK) == []
        kill(reader)
        # The dead reader's slot is freed: the producer fills the queue up again.
        wait_for(lambda: len(w.read_records(p_path, w.PUT_ACK)) == 1, "the slot to be freed")
        assert q.qsize() == capacity
        c_paths = [tmp_path / f"c{i}" for i in range(2)]
        consumers = [workers.start(w.ack_consumer, q, str(path)) for path in c_paths]
        finish(q, [producer], consumers)
        recovered = q.stats()["recoveries"]
    delivered = check_deliveries(consumer_records(c_paths))
    expected = {(0, s) for s in range(1, capacity)} | {(1, s) for s in range(per_producer)}
    assert (0, 0) not in delivered, "the message the killed consumer held was delivered again"
    assert set(delivered) == expected, f"lost: {sorted(expected - set(delivered))[:10]}"
    assert recovered >= 1, "the segment counted no recovery"
    print(f"\n[crash] parked consumer: {len(delivered)} delivered, recoveries={recovered}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("api", ["python", "c-abi"])
def test_producer_blocked_on_full_queue_gets_the_slot_of_a_consumer_that_dies(
    qname: NameFactory, workers: Workers, api: str
) -> None:
    """A producer already asleep on a full queue (its blocker a published message, held by
    nobody) when a consumer claims that message and dies must get the freed slot: the queue
    then has room, so the put must succeed without any other process's help (with the C ABI's
    own blocking, which sleeps in the kernel without Python's 50 ms wait slices, too)."""
    name = qname()
    with Queue(name, element_size=8, capacity=1) as q:
        q.put(b"a")
        recv, send = SPAWN.Pipe(duplex=False)
        if api == "python":
            workers.start(w.queue_put, q, b"b", send)
        else:
            workers.start(w.raw_put, name, b"b", 10_000_000_000, send)  # 10 s
        send.close()
        # The put is in progress once it has found the queue full.
        wait_for(lambda: q.stats()["full_hits"] >= 1, "the producer to find the queue full")
        time.sleep(0.2)  # let it fall asleep
        r2, s2 = SPAWN.Pipe(duplex=False)
        reader = workers.start(w.park_reader, name, s2)
        s2.close()
        assert parked(r2, "parked consumer") == b"a"
        kill(reader)
        assert recv.poll(60), "the blocked put never returned"
        outcome = recv.recv()
        assert outcome in ("ok", fastqueue._ffi.OK), (
            f"the blocked put returned status {outcome} although the dead consumer's slot was "
            f"free (queue depth {q.qsize()}): {w.describe_ring(name)}"
        )
        assert q.get(timeout=10) == b"b"
        assert q.stats()["recoveries"] >= 1


# ------------------------------------------------------------------------------ random kills


@pytest.mark.timeout(120)
def test_batches_longer_than_the_ring_on_both_sides(
    qname: NameFactory, workers: Workers, tmp_path: Path
) -> None:
    """2 producers putting batches of up to 32 and 2 consumers taking batches of up to 32 on a
    ring of 8, for a few seconds, nobody killed: every message put is delivered exactly once,
    in order per producer. (A run of claims left unsettled for more than a ring's worth of
    positions made the others read a slot two laps ahead of the counter and report the segment
    as corrupt; this caught it in about 1 run of 3 of 3 s.)"""
    name = qname()
    stop = tmp_path / "stop"
    p_paths = {pid: tmp_path / f"p{pid}" for pid in (1, 2)}
    c_paths = [tmp_path / f"c{i}" for i in range(2)]
    with Queue(name, element_size=w.BIG_HEADER.size + 64, capacity=8) as q:
        procs = [
            workers.start(w.batch_producer, q, pid, pid, str(path), str(stop))
            for pid, path in p_paths.items()
        ]
        consumers = [
            workers.start(w.batch_consumer, q, str(path), i) for i, path in enumerate(c_paths)
        ]
        time.sleep(5)
        stop.touch()
        finish(q, procs, consumers)
    delivered = check_deliveries(consumer_records(c_paths))
    expected = {
        (pid, s) for pid, path in p_paths.items() for (s,) in w.read_records(path, w.PUT_ACK)
    }
    assert set(delivered) == expected, f"lost: {sorted(expected - set(delivered))[:10]}"
    print(f"\n[crash] batches longer than the ring: {len(delivered)} delivered")


class KillRounds:
    """The random-kill tests' rounds: 2 producers and 2 consumers per round, ``kills`` of them
    (chosen at random, once they move data, at a random moment) SIGKILLed and replaced; then the
    producers stop (``stop`` file), the consumers get an empty message each and everybody must
    exit cleanly with the queue empty. Producers record each acknowledged seq in their PUT_ACK
    file, consumers each message in their GET_ACK file. ``start_producer(pid, ack_path, stop)``
    and ``start_consumer(ack_path)`` start one worker; ``describe()`` adds to a give-up message."""

    def __init__(
        self,
        q: Queue,
        rng: random.Random,
        tmp_path: Path,
        start_producer: Callable[[int, Path, Path], Any],
        start_consumer: Callable[[Path], Any],
        describe: Callable[[], str],
        nap: float,
    ) -> None:
        self.q, self.rng, self.tmp_path, self.nap = q, rng, tmp_path, nap
        self.start_producer, self.start_consumer, self.describe = (
            start_producer,
            start_consumer,
            describe,
        )
        self.p_paths: dict[int, Path] = {}
        self.c_paths: list[Path] = []
        self.killed_producers: set[int] = set()
        self.consumer_kills = 0
        self.live: dict[str, dict[int, Any]] = {"producer": {}, "consumer": {}}
        self._ids = iter(range(1, 1 << 30))

    def progress(self, kind: str, key: int) -> int:
        if kind == "producer":
            return len(w.read_records(self.p_paths[key], w.PUT_ACK))
        return len(w.read_records(self.c_paths[key], w.GET_ACK))

    def _start(self, kind: str, stop: Path) -> None:
        if kind == "producer":
            pid = next(self._ids)
            self.p_paths[pid] = self.tmp_path / f"p{pid}"
            self.live[kind][pid] = self.start_producer(pid, self.p_paths[pid], stop)
        else:
            self.c_paths.append(self.tmp_path / f"c{len(self.c_paths)}")
            self.live[kind][len(self.c_paths) - 1] = self.start_consumer(self.c_paths[-1])

    def _wait_for_progress(self, kind: str, key: int) -> None:
        base = self.progress(kind, key)
        wait_for(
            lambda: self.progress(kind, key) > base,
            f"progress of {kind} {key}",
            state=self.describe,
        )

    def run(self, rounds: int, kills: int) -> None:
        rng = self.rng
        for round_ in range(rounds):
            stop = self.tmp_path / f"stop-{round_}"
            self.live = {"producer": {}, "consumer": {}}
            for kind in ("producer", "consumer", "producer", "consumer"):
                self._start(kind, stop)
            for _ in range(kills):
                kind = rng.choice(("producer", "consumer"))
                key = rng.choice(sorted(self.live[kind]))
                self._wait_for_progress(kind, key)  # not while it starts up
                time.sleep(rng.uniform(0, self.nap))
                kill(self.live[kind].pop(key))
                if kind == "producer":
                    self.killed_producers.add(key)
                else:
                    self.consumer_kills += 1
                self._start(kind, stop)
            for key in self.live["producer"]:
                self._wait_for_progress("producer", key)
            stop.touch()
            finish(self.q, self.live["producer"].values(), self.live["consumer"].values())

    def check(
        self, interrupted: int, seed: int
    ) -> tuple[Counter[tuple[int, int]], set[tuple[int, int]], list[tuple[int, int]]]:
        """Asserts the outcome: no torn message, no duplicate, per-producer order per consumer;
        a killed producer's interrupted operation (after its last acknowledgement: up to
        ``interrupted`` messages) may have been delivered, nothing beyond it; every acknowledged
        message delivered except up to ``interrupted`` per killed consumer. Returns (delivered,
        acknowledged, lost)."""
        delivered = check_deliveries(consumer_records(self.c_paths))
        acked: set[tuple[int, int]] = set()
        for pid, path in self.p_paths.items():
            seqs = [r[0] for r in w.read_records(path, w.PUT_ACK)]
            assert seqs == list(range(len(seqs)))
            acked.update((pid, s) for s in seqs)
            limit = len(seqs) + (interrupted if pid in self.killed_producers else 0)
            beyond = sorted(s for p, s in delivered if p == pid and s >= limit)
            assert not beyond, f"producer {pid}: delivered seqs {beyond} never put (seed {seed})"
        lost = sorted(acked - set(delivered))
        assert len(lost) <= self.consumer_kills * interrupted, (
            f"{len(lost)} acknowledged messages lost, but only {self.consumer_kills} consumers "
            f"were killed (each may take {interrupted} with it): {lost[:10]} (seed {seed})"
        )
        return delivered, acked, lost


@pytest.mark.timeout(240)
def test_random_sigkills_while_moving_batches(
    qname: NameFactory, workers: Workers, tmp_path: Path
) -> None:
    """Rounds of 2 producers + 2 consumers moving small messages with put_many / get_many (runs
    of claims in the library; lists and packed buffers) on a ring of 8; in each round three of
    them, chosen at random, are SIGKILLed at random moments once they move data, and replaced.
    Afterwards: no torn message, no duplicate, per-producer order per consumer, delivered but
    unacknowledged messages only from a killed producer's interrupted batch, and every
    acknowledged message delivered except at most one batch per killed consumer."""
    seed = int(os.environ.get("FASTQUEUE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\n[crash] random kills in batches: seed {seed}")
    name = qname()
    with Queue(name, element_size=w.BIG_HEADER.size + 64, capacity=8) as q:
        rounds = KillRounds(
            q,
            rng,
            tmp_path,
            lambda pid, path, stop: workers.start(
                w.batch_producer, q, pid, rng.randrange(1 << 30), str(path), str(stop)
            ),
            lambda path: workers.start(w.batch_consumer, q, str(path), rng.randrange(1 << 30)),
            lambda: f"stats {q.stats()}, {w.describe_ring(name)} (seed {seed})",
            nap=0.02,
        )
        rounds.run(int(os.environ.get("FASTQUEUE_CRASH_ROUNDS", 8)), kills=3)
        stats = q.stats()
    # A killed producer's interrupted batch may have been delivered in part or whole; a killed
    # consumer may take a batch with it.
    delivered, acked, lost = rounds.check(w.BATCH_MAX, seed)
    print(
        f"\n[crash] random kills in batches (seed {seed}): {len(delivered)} messages delivered, "
        f"{len(acked)} acknowledged, {len(lost)} lost with killed consumers; killed "
        f"{len(rounds.killed_producers)} producers + {rounds.consumer_kills} consumers; "
        f"recoveries={stats['recoveries']} skipped={stats['skipped']} lost={stats['lost']}"
    )


@pytest.mark.timeout(240)
def test_random_sigkills_while_moving_large_messages(
    qname: NameFactory, workers: Workers, tmp_path: Path
) -> None:
    """Rounds of 2 producers + 2 consumers moving 1..4 MiB messages (each through Queue.put/get
    or through the zero-copy claims, at random); in each round three of them (chosen at random,
    at random moments once they are moving data) are SIGKILLed and replaced.
    Afterwards: no torn message, no duplicate, per-producer order per consumer, at most one
    delivered-but-unacknowledged message per killed producer (its interrupted put), and every
    acknowledged put delivered except at most one per killed consumer."""
    seed = int(os.environ.get("FASTQUEUE_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\n[crash] random kills: seed {seed}")
    name = qname()
    element_size = w.BIG_HEADER.size + (4 << 20)

    def start_producer(pid: int, path: Path, stop: Path) -> Any:
        zero_copy = rng.random() < 0.5
        seed = rng.randrange(1 << 30)
        return workers.start(w.big_producer, q, pid, seed, str(path), str(stop), zero_copy)

    def start_consumer(path: Path) -> Any:
        return workers.start(w.big_consumer, q, str(path), rng.random() < 0.5)

    def diagnose() -> str:
        live = rounds.live
        alive = {k: sorted(c for c, p in v.items() if p.is_alive()) for k, v in live.items()}
        done = {k: {c: rounds.progress(k, c) for c in v} for k, v in live.items()}
        paths = {"producer": rounds.p_paths, "consumer": dict(enumerate(rounds.c_paths))}
        stacks = "".join(
            f"\n--- {k} {c}:\n{w.stack_of(p.pid, str(paths[k][c]) + '.stack')}"
            for k, v in live.items()
            for c, p in v.items()
            if p.is_alive()
        )
        return (
            f"alive {alive}, acks {done}, stats {q.stats()}, {w.describe_ring(name)}, "
            f"stacks:{stacks} (seed {seed})"
        )

    with Queue(name, element_size=element_size, capacity=3) as q:
        rounds = KillRounds(q, rng, tmp_path, start_producer, start_consumer, diagnose, nap=0.03)
        rounds.run(int(os.environ.get("FASTQUEUE_CRASH_ROUNDS", 8)), kills=3)
        stats = q.stats()
    # A killed producer's interrupted put (the one after its last acknowledgement) may have been
    # delivered, whole; a killed consumer may take the message it was reading with it.
    delivered, acked, lost = rounds.check(1, seed)
    total_bytes = sum(r[3] for records in consumer_records(rounds.c_paths) for r in records)
    print(
        f"\n[crash] random kills (seed {seed}): {len(delivered)} messages delivered "
        f"({total_bytes >> 20} MiB), {len(acked)} acknowledged, {len(lost)} lost with "
        f"killed consumers; killed {len(rounds.killed_producers)} producers + "
        f"{rounds.consumer_kills} consumers; recoveries={stats['recoveries']} "
        f"reclaimed participants={stats['reclaimed']}"
    )


# ------------------------------------------------------------------------------ fork


def _forked(body: Callable[[], bool]) -> int:
    """Runs ``body`` in an os.fork() child; returns the child's exit code (0: body returned
    True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 1
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.timeout(60)
def test_handle_keeps_working_in_a_forked_child(qname: NameFactory) -> None:
    with Queue(qname(), element_size=64, capacity=4) as q:
        q.put(b"from parent")

        def child() -> bool:
            ok = q.get(timeout=10) == b"from parent"
            q.put(b"from child", timeout=10)
            return ok

        assert _forked(child) == 0
        assert q.get(timeout=10) == b"from child"
        q.put(b"again")
        assert q.get_nowait() == b"again"
        assert q.qsize() == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("op", ["write", "read"])
def test_forked_child_killed_mid_claim_is_recovered_while_parent_lives(
    qname: NameFactory, op: str
) -> None:
    """The child claims through the handle it inherited: if it still shared the parent's open
    file description (and participant id), its death would be invisible and the parent would
    wait forever. It must be recovered while the parent (holding its own lock) lives."""
    name = qname()
    w.raw()  # load before forking
    with Queue(name, element_size=64, capacity=2) as q:
        if op == "read":
            q.put(b"m0")
            q.put(b"m1")
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                w.forked_child_parks(q, op, wfd)
            finally:
                os._exit(3)
        os.close(wfd)
        try:
            assert os.read(r, 1) == b"P", "the forked child failed to claim"
        finally:
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if op == "write":
            q.put(b"after", timeout=10)
            # The dead child's half-written slot is skipped, never delivered.
            assert q.get(timeout=20) == b"after"
        else:
            q.put(b"m2", timeout=20)  # needs the slot the dead child was reading
            assert [q.get(timeout=10), q.get(timeout=10)] == [b"m1", b"m2"]
        assert q.qsize() == 0
        assert q.stats()["recoveries"] >= 1


# ------------------------------------------------------------------------------ Ctrl-C


def _interrupt(q: Queue, target: Callable[..., None]) -> Any:
    ready = SPAWN.Event()
    recv, send = SPAWN.Pipe(duplex=False)
    proc = SPAWN.Process(target=target, args=(q, ready, send), daemon=True)
    proc.start()
    send.close()
    try:
        assert ready.wait(60), "child never got ready"
        time.sleep(0.3)  # most likely inside the blocked call by now (either way it must work)
        os.kill(proc.pid, signal.SIGINT)  # type: ignore[arg-type]
        assert recv.poll(30), "the child did not react to SIGINT"
        outcome = recv.recv()
        proc.join(30)
        assert proc.exitcode == 0, f"child exit code {proc.exitcode}"
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return outcome


@pytest.mark.timeout(90)
def test_sigint_interrupts_a_blocked_get_and_the_queue_stays_consistent(
    qname: NameFactory,
) -> None:
    with Queue(qname(), element_size=32, capacity=3) as q:
        assert _interrupt(q, w.sigint_get) == ("interrupted", None)
        for m in (b"a", b"b", b"c"):
            q.put(m)
        assert [q.get_nowait() for _ in range(3)] == [b"a", b"b", b"c"]
        with pytest.raises(fastqueue.Empty):
            q.get_nowait()


@pytest.mark.timeout(90)
def test_sigint_interrupts_a_blocked_put_and_the_queue_stays_consistent(
    qname: NameFactory,
) -> None:
    with Queue(qname(), element_size=32, capacity=2) as q:
        q.put(b"a")
        q.put(b"b")
        assert _interrupt(q, w.sigint_put) == ("interrupted", None)
        # Nothing lost, and the interrupted put put nothing.
        assert [q.get_nowait(), q.get_nowait()] == [b"a", b"b"]
        with pytest.raises(fastqueue.Empty):
            q.get_nowait()
        q.put(b"after")
        assert q.get_nowait() == b"after"


# ------------------------------------------------------------------------------ idle waiters


@pytest.mark.timeout(60)
@pytest.mark.parametrize("op", ["get", "put"])
def test_blocked_waiter_burns_no_cpu(qname: NameFactory, op: str) -> None:
    """A waiter sleeps in the kernel: over a 1 s wait it uses a small fraction of a CPU
    second (polling would use about all of it). Also: the timeout never returns early."""
    with Queue(qname(), element_size=8, capacity=1) as q:
        if op == "put":
            q.put(b"full")
        recv, send = SPAWN.Pipe(duplex=False)
        proc = SPAWN.Process(target=w.idle_wait, args=(q, op, 1.0, send), daemon=True)
        proc.start()
        send.close()
        try:
            assert recv.poll(50), "the waiter reported nothing"
            outcome, cpu, wall = recv.recv()
            proc.join(10)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join()
        assert outcome == ("Empty" if op == "get" else "Full")
        assert wall >= 1.0, f"the timed {op} returned early, after {wall:.3f} s"
        assert cpu < 0.2, f"a {op} blocked for {wall:.2f} s used {cpu:.3f} CPU seconds"
