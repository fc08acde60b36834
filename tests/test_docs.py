"""The docs (``just docs``): Sphinx builds the guide (docs/guide/*.rst, every page picked up by
glob) and the API reference from the docstrings with warnings as errors; every public name,
``fastqueue.__all__``, has its entry, and no page shows raw reST. The README stays a front door
whose links all lead somewhere."""

from __future__ import annotations

import html as htmllib
import re
import shutil
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


@pytest.fixture(scope="module")
def site(sphinx: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs of this checkout, built once for this module's tests."""
    out = tmp_path_factory.mktemp("docs") / "html"
    proc = _build(ROOT / "docs", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _text(html: str) -> str:
    """What a reader sees of a page: no code blocks, scripts or tags, entities decoded."""
    html = re.sub(r"<(pre|script|style)\b.*?</\1>", "", html, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", html))


def test_the_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "api.html").read_text()
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


def test_every_guide_page_is_built_and_in_the_table_of_contents(site: Path) -> None:
    pages = sorted(p.stem for p in (ROOT / "docs" / "guide").glob("*.rst"))
    assert len(pages) >= 10, pages
    index = (site / "index.html").read_text()
    for page in pages:
        assert (site / "guide" / f"{page}.html").is_file(), page
        assert f'href="guide/{page}.html"' in index, f"docs/index.rst's toctree misses {page}"


def test_a_new_guide_page_appears_without_editing_the_index(sphinx: None, tmp_path: Path) -> None:
    """The toctree takes guide/* by glob: a page another change adds is in the docs at once."""
    src = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", src, ignore=shutil.ignore_patterns("_build"))
    conf = src / "conf.py"
    conf.write_text(
        conf.read_text().replace(
            "ROOT = Path(__file__).resolve().parent.parent", f"ROOT = Path({str(ROOT)!r})"
        )
    )
    (src / "guide" / "zz-new-topic.rst").write_text("A new topic\n===========\n\nIts text.\n")
    # The performance page shows the charts of perf/results/, relative to the checkout.
    (tmp_path / "perf").symlink_to(ROOT / "perf")
    proc = _build(src, tmp_path / "html")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'href="guide/zz-new-topic.html"' in (tmp_path / "html" / "index.html").read_text()


def test_no_page_shows_raw_markup(site: Path) -> None:
    """Inline markup that did not render (``x``, **x**, `x`_) never reaches a reader."""
    bad = []
    for page in sorted(site.rglob("*.html")):
        if page.parent.name.startswith("_"):
            continue
        for m in re.finditer(r".{0,40}(``|\*\*\w|`_\b|`__\b).{0,40}", _text(page.read_text())):
            bad.append(f"{page.relative_to(site)}: {m.group(0)!r}")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------------------ the README


README = ROOT / "README.md"


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300, "README.md grew past ~300 lines: move depth to the guide"
    for title in ("## Install", "## A producer and a consumer", "## Features", "## Performance"):
        assert f"\n{title}" in text, title
    assert "](perf/results/chart.png)" in text, "the performance summary lost its chart"
    assert "### Guides" in text


def test_every_link_of_the_readme_leads_somewhere() -> None:
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10, local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    guides = set(re.findall(r"\]\((docs/guide/[\w-]+\.rst)\)", text))
    assert guides, "the README links no page of the guide"
