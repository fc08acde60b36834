"""The guide page "When a worker dies" (docs/guide/when-a-worker-dies.rst) shows
examples/python/when_a_worker_dies.py: a pool of workers SIGKILLed at random mid-task on a
redeliver=True JoinableObjectQueue, respawned by a supervisor. This runs exactly that file: every
task completes, each is acknowledged exactly once, join() returns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _procs import checkout_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "python" / "when_a_worker_dies.py"


def test_the_guide_includes_the_example() -> None:
    page = (ROOT / "docs" / "guide" / "when-a-worker-dies.rst").read_text()
    assert "literalinclude:: ../../examples/python/when_a_worker_dies.py" in page


def test_workers_killed_at_random_mid_task_still_complete_every_task() -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    first = run.stdout.split()
    assert first[:2] == ["300", "tasks,"], run.stdout
    killed = int(first[2])
    assert killed > 0, "the example killed no worker: it proves nothing"
    assert run.stdout.rstrip().endswith("300 completed"), run.stdout
