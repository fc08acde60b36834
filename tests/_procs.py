"""Parent-side helpers of the tests that start child processes."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Callable


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
