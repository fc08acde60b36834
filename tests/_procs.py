"""Parent-side helpers of the tests that start child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Callable

#: The checkout's package folder, which child Pythons must import (as pytest itself does).
PY_DIR = str(Path(__file__).resolve().parent.parent / "py")


def checkout_env() -> dict[str, str]:
    """The environment of a child Python that must import this checkout's package (py/) ahead
    of whatever PYTHONPATH already holds."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": PY_DIR if not path else PY_DIR + os.pathsep + path}


def run_fastqueue(
    *args: str, timeout: float, python: str = sys.executable, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m fastqueue ARGS`` on this checkout (run through ``prefix``, e.g. a command
    that switches user), with its output captured as text and no stdin; a non-zero exit
    status is returned, not raised."""
    return subprocess.run(
        [*prefix, python, "-m", "fastqueue", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=checkout_env(),
        check=False,
    )


def run_child(
    ctx: BaseContext, target: Callable[..., None], *args: Any, timeout: float = 60
) -> tuple[int | None, list[Any]]:
    """Runs target(*args, result_connection) in a child; returns (exit code, messages sent)."""
    recv, send = ctx.Pipe(duplex=False)  # type: ignore[attr-defined]
    proc = ctx.Process(target=target, args=(*args, send))  # type: ignore[attr-defined]
    proc.start()
    send.close()
    messages = receive_all(recv, proc, timeout)
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return proc.exitcode, messages


def receive_all(recv: Connection, proc: Any, timeout: float) -> list[Any]:
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if recv.poll(0.05):
            try:
                messages.append(recv.recv())
            except EOFError:
                break
        elif not proc.is_alive() and not recv.poll(0):
            break
    return messages
