"""The bridge (fastqueue.bridge, `fastqueue bridge SOURCE DEST`) against a real redis-server:
both directions, clean stops on SIGTERM/SIGINT, SIGKILL mid-stream and restart, the server killed
and restarted under a running bridge."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable

import pytest

import fastqueue
from _procs import checkout_env
from _redis_server import redis_server, rq_url, running_server
from fastqueue import Queue, RedisQueue

pytestmark = pytest.mark.timeout(90)
#: The fixtures this module uses from _redis_server.
FIXTURES = (redis_server, rq_url)

Url = Callable[..., str]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fastqueue", "bridge", *args],
        env=checkout_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def _until(what: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _msgs(lo: int, hi: int) -> list[bytes]:
    return [b"%d" % i for i in range(lo, hi)]


def _drain(q: Any, want: int, timeout: float = 40, got: list[bytes] | None = None) -> list[bytes]:
    """Gets from q into ``got`` until it holds ``want`` distinct messages (or time is up)."""
    got = [] if got is None else got
    deadline = time.monotonic() + timeout
    while len(set(got)) < want and time.monotonic() < deadline:
        with contextlib.suppress(fastqueue.Empty):
            got += q.get_many(500, timeout=0.5)
    return got


def test_round_trip_local_redis_local(qname: Callable[[], str], rq_url: Url) -> None:
    url = rq_url()
    with (
        Queue(qname(), element_size=16, capacity=500) as a,
        Queue(qname(), element_size=16, capacity=500) as b,
    ):
        stops = threading.Event(), threading.Event()
        reports: dict[int, Any] = {}
        threads = [
            threading.Thread(
                target=lambda: reports.__setitem__(0, fastqueue.bridge(a.name, url, stop=stops[0]))
            ),
            threading.Thread(
                target=lambda: reports.__setitem__(
                    1, fastqueue.bridge(url, b.name, stop=stops[1], batch=100)
                )
            ),
        ]
        for t in threads:
            t.start()
        n = 5000
        for i in range(0, n, 250):
            a.put_many(_msgs(i, i + 250))
        got = _drain(b, n)
        for s in stops:
            s.set()
        for t in threads:
            t.join(30)
        assert got == _msgs(0, n)  # each once, in order
        up, down = reports[0], reports[1]
        assert (up.moved, up.duplicates, up.lost) == (n, 0, 0)
        assert (down.moved, down.duplicates, down.lost) == (n, 0, 0)
        assert max(1, n // 256) <= up.batches <= n and n // 100 <= down.batches <= n
        assert "moved 5000 messages" in down.line() and "lost 0" in down.line()


def test_bad_arguments(qname: Callable[[], str], rq_url: Url) -> None:
    with pytest.raises(ValueError, match="one local queue name and one Redis URL"):
        fastqueue.bridge("a", "b")
    with pytest.raises(ValueError, match="one local queue name and one Redis URL"):
        fastqueue.bridge(rq_url(), rq_url())
    with pytest.raises(ValueError, match="batch"):
        fastqueue.bridge("a", rq_url(), batch=0)
    with pytest.raises(fastqueue.QueueNotFoundError):
        fastqueue.bridge(qname(), rq_url())
    proc = _start(qname(), rq_url())
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "fastqueue bridge:" in err and "no queue named" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_stops_cleanly_and_reports(qname: Callable[[], str], rq_url: Url, sig: int) -> None:
    url = rq_url()
    with (
        Queue(qname(), element_size=16, capacity=3000) as a,
        Queue(qname(), element_size=16, capacity=3000) as b,
        RedisQueue(url) as rq,
    ):
        a.put_many(_msgs(0, 2000))
        up = _start(a.name, url, "--batch", "64")
        _until(lambda: rq.qsize() == 2000 and a.qsize() == 0)
        code, out, err = _stop(up, sig)
        assert code == 0, err
        assert "moved 2000 messages" in out and "duplicates 0, lost 0" in out
        down = _start(url, b.name)
        _until(lambda: b.qsize() == 2000)
        code, out, err = _stop(down, sig)
        assert code == 0, err
        assert "moved 2000 messages" in out and "lost 0" in out
        assert b.get_many(3000) == _msgs(0, 2000)
        assert rq.empty()


def test_sigkill_redis_to_local_loses_nothing(qname: Callable[[], str], rq_url: Url) -> None:
    url = rq_url()
    n, batch = 3000, 50
    with Queue(qname(), element_size=16, capacity=120) as b, RedisQueue(url) as rq:
        rq.put_many(_msgs(0, n))
        bridge = _start(url, b.name, "--batch", str(batch))
        got: list[bytes] = []
        while len(got) < n // 3:  # mid-stream: the bridge waits on the full local queue
            got += b.get_many(40, timeout=30)
        _until(lambda: b.full())
        bridge.kill()
        bridge.wait(30)
        again = _start(url, b.name, "--batch", str(batch))  # same consumer: resumes its batch
        _drain(b, n, got=got)
        code, out, err = _stop(again)
        assert code == 0, err
        counts = Counter(got)
        assert set(counts) == set(_msgs(0, n))  # nothing lost
        dups = sum(c - 1 for c in counts.values())
        assert dups <= batch  # at most the batch in hand when killed
        reported = int(out.split("duplicates ")[1].split(",")[0])
        assert dups <= reported <= batch  # and counted (as an upper bound)
        assert rq.empty()


def test_sigkill_local_to_redis_loses_at_most_a_batch(
    qname: Callable[[], str], rq_url: Url
) -> None:
    url = rq_url()
    n, batch = 3000, 50
    with Queue(qname(), element_size=16, capacity=n) as a, RedisQueue(url, maxsize=200) as rq:
        a.put_many(_msgs(0, n))
        bridge = _start(a.name, url, "--batch", str(batch), "--maxsize", "200")
        got: list[bytes] = []
        while len(got) < n // 3:  # mid-stream: the bridge waits on the full stream
            got += rq.get_many(40, timeout=30)
        _until(lambda: rq.full())
        bridge.kill()
        bridge.wait(30)
        again = _start(a.name, url, "--batch", str(batch))
        _drain(rq, n - batch, got=got)
        _until(lambda: a.empty())
        _drain(rq, n, timeout=1, got=got)
        code, out, err = _stop(again)
        assert code == 0, err
        assert "duplicates 0, lost 0" in out
        assert len(got) == len(set(got))  # no duplicates
        assert set(got) <= set(_msgs(0, n))
        assert n - len(got) <= batch  # at most the in-flight batch lost


def test_sigkill_local_to_redis_from_a_redeliver_queue_loses_nothing(
    qname: Callable[[], str], rq_url: Url
) -> None:
    """From a redeliver=True local queue the bridge leases each batch and acknowledges it only
    once the stream has it: killed holding a batch, it loses nothing; its leases come back to
    the local queue and the next bridge moves them (counted as possible duplicates)."""
    url = rq_url()
    n, batch = 3000, 50
    with (
        Queue(qname(), element_size=16, capacity=n, redeliver=True) as a,
        RedisQueue(url, maxsize=200) as rq,
    ):
        a.put_many(_msgs(0, n))
        bridge = _start(a.name, url, "--batch", str(batch), "--maxsize", "200")
        got: list[bytes] = []
        while len(got) < n // 3:  # mid-stream: the bridge waits on the full stream
            got += rq.get_many(40, timeout=30)
        _until(lambda: rq.full())
        assert a.stats()["leased"] > 0  # the bridge holds its in-flight batch as leases
        bridge.kill()
        bridge.wait(30)
        again = _start(a.name, url, "--batch", str(batch))
        _drain(rq, n, got=got)
        _until(lambda: a.empty() and a.stats()["leased"] == 0)
        code, out, err = _stop(again)
        assert code == 0, err
        assert "lost 0" in out
        counts = Counter(got)
        assert set(counts) == set(_msgs(0, n))  # nothing lost
        dups = sum(c - 1 for c in counts.values())
        assert dups <= batch
        assert dups <= int(out.split("duplicates ")[1].split(",")[0])
        assert a.join(timeout=10)  # every message the bridges took was acknowledged


def test_server_killed_and_restarted_under_running_bridges(qname: Callable[[], str]) -> None:
    with (
        running_server() as server,
        Queue(qname(), element_size=16, capacity=4000) as a,
        Queue(qname(), element_size=16, capacity=4000) as b,
    ):
        url = server.url("through")
        up, down = _start(a.name, url), _start(url, b.name)
        try:
            a.put_many(_msgs(0, 1000))
            got = _drain(b, 1000)
            server.kill()
            a.put_many(_msgs(1000, 2000))  # the bridge takes these and retries the server
            time.sleep(0.5)
            server.start()
            _drain(b, 2000, timeout=60, got=got)
            up_code, up_out, up_err = _stop(up)
            down_code, down_out, down_err = _stop(down)
        finally:
            for p in (up, down):
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        assert (up_code, down_code) == (0, 0), up_err + down_err
        counts = Counter(got)
        assert set(counts) == set(_msgs(0, 2000))  # nothing lost
        dups = sum(c - 1 for c in counts.values())
        reported = int(up_out.split("duplicates ")[1].split(",")[0]) + int(
            down_out.split("duplicates ")[1].split(",")[0]
        )
        assert dups <= reported
        assert "lost 0" in up_out and "lost 0" in down_out


def test_progress_line_on_a_terminal(qname: Callable[[], str], rq_url: Url) -> None:
    import pty

    url = rq_url()
    with Queue(qname(), element_size=16, capacity=100) as a:
        a.put_many(_msgs(0, 10))
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastqueue", "bridge", a.name, url, "--count", "10"],
            env=checkout_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        try:
            out, _ = proc.communicate(timeout=60)
            seen = b""
            with contextlib.suppress(OSError):  # EIO once the child's side is closed
                while chunk := os.read(leader, 4096):
                    seen += chunk
        finally:
            os.close(leader)
        assert proc.returncode == 0
        assert "moved 10 messages" in out
        assert b"10 messages" in seen and b"msg/s" in seen  # the progress line, on the terminal
