"""A real redis-server for the Redis tests (tests/test_redis.py, tests/test_bridge.py).

:func:`redis_server` is a session fixture: one server in a temporary directory, on a unix socket
and a free TCP port of 127.0.0.1, with ``appendonly yes`` (``appendfsync always``), killed and its
files removed at the end. :func:`rq_url` makes unique stream URLs for one test and deletes those
streams afterwards. :class:`RedisServer` can also be started by a test of its own (the crash tests
kill and restart it).

Where ``redis-server`` (or the ``redis`` client) cannot be found the tests are skipped with the
reason, except in CI (``CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)


def require_redis() -> None:
    """Skips (fails in CI) the calling test when the server or the client is missing."""
    missing = []
    if SERVER is None:
        missing.append("redis-server (Debian: apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing.append('the redis client (pip install "fastqueue[redis]")')
    if missing:
        why = "the Redis tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(why + "; CI must install them (.ci/run does)")
        pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process over a directory of its own (kept across restarts)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.sock = str(directory / "redis.sock")
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert SERVER is not None
        args = [
            SERVER,
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--unixsocket", self.sock, "--unixsocketperm", "700",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no", "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import redis

        while True:
            try:
                client = redis.Redis(unix_socket_path=self.sock)
                if client.ping():
                    # Loaded (after a restart the AOF is read before PING answers PONG).
                    client.close()
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start; its log:\n{log}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def url(self, stream: str, tcp: bool = False) -> str:
        if tcp:
            return f"redis://127.0.0.1:{self.port}/0/{stream}"
        return f"unix://{self.sock}?db=0&stream={stream}"

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=self.sock)


@contextlib.contextmanager
def running_server() -> Iterator[RedisServer]:
    """A fresh server in a temporary directory, stopped and removed afterwards."""
    require_redis()
    # Short path: a unix socket's path is limited to ~107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fq-redis-"))
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's redis-server (see the module's documentation)."""
    with running_server() as server:
        yield server


@pytest.fixture
def rq_url(redis_server: RedisServer) -> Iterator[Callable[..., str]]:
    """``rq_url(tcp=False)``: a URL of a new, unique stream; the streams are deleted after."""
    made: list[str] = []
    token = secrets.token_hex(4)

    def make(tcp: bool = False) -> str:
        stream = f"fq-test-{token}-{len(made)}"
        made.append(stream)
        return redis_server.url(stream, tcp)

    yield make
    if made and redis_server.proc is not None:
        client = redis_server.client()
        suffixes = ("", ":fq:meta", ":fq:line", ":fq:seen", ":fq:woken", ":fq:ctl")
        client.delete(*(stream + suffix for stream in made for suffix in suffixes))
        client.close()
