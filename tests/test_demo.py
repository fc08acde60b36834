"""``python -m fastqueue``: the demo runs (scaled down) and prints its table; bad commands fail."""

from __future__ import annotations

import subprocess
import sys

TIMEOUT_S = 120


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastqueue", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
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
