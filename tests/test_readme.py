"""Every ```python block of README.md runs as a script and finishes: the examples stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from _procs import checkout_env

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"readme_example_{index}.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=checkout_env(),
        check=False,
    )
    assert proc.returncode == 0, f"README example {index} failed:\n{proc.stdout}{proc.stderr}"
