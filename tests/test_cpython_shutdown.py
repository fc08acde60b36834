"""shutdown(immediate=True) leaves nothing behind (issue 18 C2): the minimal case of the issue,
and CPython's own shutdown tests (Lib/test/test_queue.py, 3.13+) run against
JoinableObjectQueue.

CPython's tests are imported from the standard library's ``test`` package of a Python >= 3.13
found on this machine (run in a child process: the test package only imports under its own
interpreter); nothing is copied or downloaded. Without such a Python they are skipped, saying
so.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Callable

import pytest

from _procs import checkout_env
from fastqueue import JoinableObjectQueue, JoinableQueue, ShutDown

NameFactory = Callable[[], str]


@pytest.mark.parametrize("cls", [JoinableQueue, JoinableObjectQueue])
def test_immediate_shutdown_discards_behind_a_slot_being_written(
    qname: NameFactory, cls: type[JoinableQueue]
) -> None:
    with cls(qname(), element_size=64, capacity=8) as q:
        item: object = b"a" if cls is JoinableQueue else "a"
        q.put(item)
        writer = q.put_slot()
        slot = writer.__enter__()
        q.put(b"c" if cls is JoinableQueue else "c")
        q.shutdown(immediate=True)
        slot.buffer[:1] = b"b"
        slot.length = 1
        # The write in flight is refused at its commit (nothing put), and what the shutdown
        # could not reach behind it is discarded then.
        with pytest.raises(ShutDown):
            writer.__exit__(None, None, None)
        assert not slot.published
        assert q.qsize() == 0
        assert q.join(timeout=5)
        with pytest.raises(ShutDown):
            q.get(timeout=0.1)


def test_immediate_shutdown_in_another_handle_is_finished_by_the_writer(
    qname: NameFactory,
) -> None:
    name = qname()
    with (
        JoinableQueue(name, element_size=16, capacity=4) as q,
        JoinableQueue(name, create=False) as other,
    ):
        with q.put_slot() as slot:
            slot.buffer[:1] = b"a"
            slot.length = 1
        writer = q.put_slot()
        slot = writer.__enter__()
        other.put(b"c")
        other.shutdown(immediate=True)  # stops at q's slot
        assert other.qsize() >= 1
        with pytest.raises(ShutDown):
            writer.__exit__(None, None, None)
        assert other.qsize() == 0
        assert other.join(timeout=5) and q.join(timeout=5)


def _python_313() -> str | None:
    """A Python >= 3.13 whose standard library has test.test_queue with the shutdown tests."""
    candidates = [sys.executable] + [
        p for p in (shutil.which(f"python3.{m}") for m in range(13, 20)) if p
    ]
    # (pyenv's installs, whose shims refuse a version that is not selected)
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python3")))
    for python in candidates:
        probe = subprocess.run(
            [
                python,
                "-c",
                "import sys, test.test_queue as t; "
                "sys.exit(0 if hasattr(t.BaseQueueTestMixin, 'test_shutdown_immediate') else 1)",
            ],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode == 0:
            return python
    return None


RUNNER = textwrap.dedent(
    """
    import sys, types, unittest
    import fastqueue
    from test import test_queue as tq

    made = []

    def make(maxsize=0):
        q = fastqueue.JoinableObjectQueue(
            element_size=96, capacity=maxsize if maxsize > 0 else 1 << 17
        )
        made.append(q)
        return q

    class JoinableObjectQueueShutdown(tq.BaseQueueTestMixin, unittest.TestCase):
        queue = types.SimpleNamespace(
            Queue=make, ShutDown=fastqueue.ShutDown, Empty=fastqueue.Empty, Full=fastqueue.Full
        )

        def setUp(self):
            self.type2test = make
            super().setUp()

        def tearDown(self):
            while made:
                made.pop().close()

    loader = unittest.TestLoader()
    loader.testMethodPrefix = "test_shutdown"
    suite = loader.loadTestsFromTestCase(JoinableObjectQueueShutdown)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    print("RAN", result.testsRun, "FAILED", len(result.failures) + len(result.errors))
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
    """
)


@pytest.mark.timeout(300)
def test_cpython_shutdown_tests_pass_on_joinable_object_queue() -> None:
    python = _python_313()
    if python is None:
        pytest.skip("no Python >= 3.13 with its test package here: CPython's shutdown tests")
    run = subprocess.run(
        [python, "-c", RUNNER],
        capture_output=True,
        text=True,
        timeout=280,
        env=checkout_env(),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
