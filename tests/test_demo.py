"""``python -m fastqueue``: the demo runs (scaled down) and prints its table; bad commands fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 120


def _env_with_checkout() -> dict[str, str]:
    """The environment for a child Python that imports this checkout's package (py/)."""
    py_dir = str(Path(__file__).resolve().parent.parent / "py")
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": py_dir if not path else py_dir + os.pathsep + path}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastqueue", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        env=_env_with_checkout(),
        check=False,
    )


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
