"""Rust and Python exchange messages through one queue: Rust->Python, Python->Rust and Rust->Rust.

The Rust side is ``core/examples/rust_peer.rs``, a program written against the crate's safe API
(``fastqueue::Queue::create/open/put/get``), built here with ``cargo build --release --example
rust_peer``. Messages are the pattern of ``examples/c/pattern.h`` (:func:`message`); the Rust
consumer checks every byte of what it gets, Python checks every byte of what it gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from test_c_interop import message, msg_len

ROOT = Path(__file__).resolve().parent.parent
#: A release build of the example (the crate is already built by `just dev`; this adds the
#: example and its link step).
BUILD_TIMEOUT_S = 900.0
#: How long a Rust peer may run before the test gives up on it.
PROC_TIMEOUT_S = 120.0
#: Python's side waits at most this long for one message or one free slot.
OP_TIMEOUT_S = 10.0

NameFactory = Callable[[], str]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fastqueue's shared memory is Linux-only for now"
)


@pytest.fixture(scope="module")
def rust_peer() -> Path:
    """Path of the built example (cargo's own report of the executable it made)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        if os.environ.get("CI"):
            pytest.fail("no cargo on PATH; CI must run the Rust interop tests")
        pytest.skip("no cargo on PATH")
    cmd = [cargo, "build", "--release", "-p", "fastqueue", "--example", "rust_peer"]
    cmd += ["--message-format=json-render-diagnostics"]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        artifact = msg.get("reason") == "compiler-artifact"
        if artifact and msg["target"]["name"] == "rust_peer" and msg.get("executable"):
            return Path(msg["executable"])
    pytest.fail(f"cargo reported no rust_peer executable:\n{proc.stdout[-2000:]}")


def start(exe: Path, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(exe), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], expect: int = 0) -> tuple[str, str]:
    """Waits for a Rust peer; fails the test (after killing it) unless it exits with `expect`."""
    try:
        out, err = proc.communicate(timeout=PROC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {PROC_TIMEOUT_S} s:\n{out}{err}")
    assert proc.returncode == expect, f"{proc.args} exited {proc.returncode}:\n{out}{err}"
    return out, err


def finish_if_dead(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} exited {proc.returncode} early:\n{out}{err}")


def test_rust_to_python(rust_peer: Path, qname: NameFactory) -> None:
    name, max_msg, count = qname(), 4096, 5000
    # A small capacity makes the Rust producer block on a full queue over and over.
    with fastqueue.Queue(name, element_size=max_msg, capacity=7) as q:
        producer = start(rust_peer, "produce", name, count)
        try:
            for i in range(count):
                got = q.get(timeout=OP_TIMEOUT_S)
                assert got == message(i, max_msg), f"message {i} differs"
        finally:
            out, _ = finish(producer)
        assert f"rust producer: sent {count} messages" in out
        assert q.empty()


def test_python_to_rust(rust_peer: Path, qname: NameFactory) -> None:
    name, max_msg, count = qname(), 1000, 5000
    with fastqueue.Queue(name, element_size=max_msg, capacity=5) as q:
        consumer = start(rust_peer, "consume", name, count)
        try:
            for i in range(count):
                q.put(message(i, max_msg), timeout=OP_TIMEOUT_S)
        finally:
            out, _ = finish(consumer)
        assert f"rust consumer: received {count} messages, all correct" in out
        assert q.empty()


def test_rust_creates_python_attaches(rust_peer: Path, qname: NameFactory) -> None:
    """A queue made by Rust (Queue::create) is the same to Python; the creator removes it."""
    name, max_msg, count = qname(), 300, 2000
    consumer = start(rust_peer, "consume", name, count, max_msg, 3)
    q = None
    try:
        for _ in range(1000):  # the Rust consumer creates it: wait for it to appear
            try:
                q = fastqueue.Queue(name, create=False)
                break
            except (fastqueue.QueueNotFoundError, fastqueue.SegmentError):
                finish_if_dead(consumer)
                time.sleep(0.01)
        assert q is not None, "the Rust consumer never created the queue"
        assert (q.element_size, q.maxsize) == (max_msg, 3)
        for i in range(count):
            q.put(message(i, max_msg), timeout=OP_TIMEOUT_S)
    finally:
        out, _ = finish(consumer)
        if q is not None:
            q.close()
    assert f"received {count} messages, all correct" in out
    with pytest.raises(FileNotFoundError):
        fastqueue.Queue(name, create=False)


def test_rust_to_rust(rust_peer: Path, qname: NameFactory) -> None:
    name, count = qname(), 20000
    producer = start(rust_peer, "produce", name, count)
    consumer = start(rust_peer, "consume", name, count, 777, 3)
    out_c, _ = finish(consumer)
    out_p, _ = finish(producer)
    assert f"received {count} messages, all correct" in out_c
    assert f"sent {count} messages" in out_p


def test_rust_consumer_detects_corruption(rust_peer: Path, qname: NameFactory) -> None:
    """The checks are real: a wrong message makes the Rust consumer fail."""
    name, max_msg = qname(), 64
    with fastqueue.Queue(name, element_size=max_msg, capacity=4) as q:
        consumer = start(rust_peer, "consume", name, 2)
        q.put(message(0, max_msg), timeout=OP_TIMEOUT_S)
        q.put(b"\x00" * msg_len(1, max_msg), timeout=OP_TIMEOUT_S)
        _, err = finish(consumer, expect=1)
    assert "message 1 is wrong at byte 0" in err


def test_rust_peer_rejects_bad_usage(rust_peer: Path) -> None:
    _, err = finish(start(rust_peer, "fly", "q", "1"), expect=1)
    assert "usage:" in err
    _, err = finish(start(rust_peer, "produce", "q", "many"), expect=1)
    assert "COUNT" in err
