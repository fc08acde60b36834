"""fq_join and signals: on a handle made interruptible (fq_set_interruptible), a signal ends a
blocked fq_join with FQ_INTERRUPTED, as it ends a blocked fq_get; on a default handle the join
sleeps on through it until its timeout. Python's join() relies on it to run a Ctrl-C handler
at once rather than at the end of a wait slice."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

import fastqueue
from _procs import checkout_env

JOINER = r"""
import signal, sys
import fastqueue
from fastqueue import _ffiheld, _library
signal.signal(signal.SIGALRM, lambda *_: None)  # a handler that does not raise
q = fastqueue.JoinableQueue(sys.argv[1], create=False)
ptr = q._h._ptr
_ffiheld._fq_set_interruptible(ptr, int(sys.argv[2]))
signal.setitimer(signal.ITIMER_REAL, 0.3)
status = _library._fq_join(ptr, 3_000_000_000)  # a 3 s wait: one message is not done
print(status, flush=True)
q.close()
"""


@pytest.mark.parametrize("redeliver", [False, True])
@pytest.mark.parametrize("on", [1, 0])
def test_c_blocked_join_returns_interrupted_only_when_asked(
    qname: Callable[[], str], on: int, redeliver: bool
) -> None:
    name = qname()
    with fastqueue.JoinableQueue(
        name, element_size=16, capacity=4, create=True, redeliver=redeliver
    ) as q:
        q.put(b"x")
        assert q.get(timeout=5) == b"x"  # taken, not done: a join waits
        run = subprocess.run(
            [sys.executable, "-c", JOINER, name, str(on)],
            capture_output=True,
            text=True,
            timeout=60,
            env=checkout_env(),
        )
        assert run.returncode == 0, run.stderr
        expected = fastqueue._ffi.INTERRUPTED if on else fastqueue._ffi.TIMEOUT
        assert int(run.stdout.split()[0]) == expected
        q.task_done()
        assert q.join(timeout=5)  # the interrupted join changed nothing
