"""The API reference (``just docs``): Sphinx builds it from the docstrings with warnings as errors,
and every public name, ``fastqueue.__all__``, has its entry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastqueue

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300


def _build(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(src),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def sphinx() -> None:
    pytest.importorskip("sphinx", reason="Sphinx is in the dev extra (`just dev` installs it)")


def test_the_reference_documents_every_public_name(sphinx: None, tmp_path: Path) -> None:
    proc = _build(ROOT / "docs", tmp_path / "html")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = (tmp_path / "html" / "api.html").read_text()
    ids = set(re.findall(r'id="fastqueue\.([A-Za-z_]+)"', html))
    assert set(fastqueue.__all__) <= ids, set(fastqueue.__all__) - ids
    for method in ("put", "get", "aget", "put_many", "get_slot"):  # methods, inherited ones too
        assert f'id="fastqueue.Queue.{method}"' in html, method


def test_a_public_name_missing_from_the_reference_fails_the_build(
    sphinx: None, tmp_path: Path
) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "conf.py").write_text(
        (ROOT / "docs" / "conf.py")
        .read_text()
        .replace("ROOT = Path(__file__).resolve().parent.parent", f"ROOT = Path({str(ROOT)!r})")
    )
    (src / "index.rst").write_text(
        "x\n=\n\n.. currentmodule:: fastqueue\n\n.. autoclass:: Queue\n   :no-members:\n"
    )
    proc = _build(src, tmp_path / "html")
    assert proc.returncode != 0
    assert "public names of fastqueue.__all__ missing from the API reference" in proc.stderr
    assert "FastQueueError" in proc.stderr and "unlink" in proc.stderr
