"""``python -m fastqueue``: the demo runs (scaled down) and prints its table; bad commands fail."""

from __future__ import annotations

import subprocess
import threading

import pytest

from _procs import run_fastqueue
from fastqueue import _demo

TIMEOUT_S = 120


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fastqueue(*args, timeout=TIMEOUT_S)


def test_demo_prints_a_table() -> None:
    proc = _run("demo", "--scale", "0.01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith(("1,000 x", "20 x"))]
    assert len(rows) == 4, proc.stdout
    assert sum("fastqueue.Queue" in row for row in rows) == 2
    assert sum("multiprocessing.Queue" in row for row in rows) == 2
    assert all(row.rstrip().endswith("x") for row in rows)


def test_help_and_unknown_command() -> None:
    helped = _run("--help")
    assert helped.returncode == 0
    assert "demo" in helped.stdout
    demo_help = _run("demo", "--help")
    assert demo_help.returncode == 0
    assert "--scale" in demo_help.stdout
    unknown = _run("frobnicate")
    assert unknown.returncode == 2
    assert "unknown command 'frobnicate'" in unknown.stderr


# ------------------------------------------------------------------------------ what it measures


class _ListChannel:
    """An in-process stand-in for a queue: get() hands out prepared messages in order."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = iter(messages)

    def put(self, item: bytes, /, block: bool = True, timeout: float | None = None) -> None:
        raise AssertionError("the consumer never puts")

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        return next(self._messages)


def _consume(messages: list[bytes], workload: _demo.Workload) -> tuple[float, float]:
    return _demo._consume(_ListChannel(messages), workload, threading.Event())


def test_every_byte_of_every_message_is_checked() -> None:
    """Small messages (kept, checked after the clock) and large ones (checked as they arrive):
    the right sequence passes; a lost, repeated or reordered message, or one wrong byte, fails."""
    for workload in (_demo.Workload(50, 64, 8), _demo.Workload(9, _demo.LARGE, 4)):
        expected = _demo._messages(workload)
        sent = [expected[i % len(expected)] for i in range(workload.count)]
        seconds, check_seconds = _consume(sent, workload)
        assert seconds >= 0 and check_seconds >= 0
        torn = bytearray(sent[5])
        torn[-1] ^= 1
        for wrong in (
            [*sent[:3], *sent[4:], sent[0]],  # one lost (and something else at the end)
            [*sent[:4], sent[3], *sent[5:]],  # one repeated
            [*sent[:3], sent[4], sent[3], *sent[5:]],  # two swapped
            [*sent[:5], bytes(torn), *sent[6:]],  # one byte wrong
            [*sent[:5], b"", *sent[6:]],  # empty (what the watchdog feeds)
        ):
            with pytest.raises(RuntimeError, match="arrived wrong"):
                _consume(wrong, workload)


def test_the_table_says_what_it_measures() -> None:
    proc = _run("demo", "--scale", "0.01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("workload"))
    assert header.split() == ["workload", "queue", "msgs/s", "MB/s", "time", "check", "ratio"]
    assert "one blocking put and one blocking get each" in proc.stdout
    assert "not\ncounted in time" in proc.stdout
