"""The docs (``just docs``): Sphinx builds the guide (docs/guide/*.rst, every page picked up by
glob) and the API reference from the docstrings with warnings as errors; every public name,
``fastqueue.__all__``, has its entry, and no page shows raw reST. The README stays a front door
whose links all lead somewhere."""

from __future__ import annotations

import html as htmllib
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    # Pages show the charts of perf/results/ and include the programs of examples/, relative
    # to the checkout.
    (tmp_path / "perf").symlink_to(ROOT / "perf")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    proc = _build(src, tmp_path / "html")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'href="guide/zz-new-topic.html"' in (tmp_path / "html" / "index.html").read_text()


def test_no_page_shows_raw_markup(site: Path) -> None:
    """Inline markup that did not render (``x``, **x**, `x`_) never reaches a reader."""
    bad = []
    for page in sorted(site.rglob("*.html")):
        if page.parent.name.startswith("_"):
            continue
        # (A ** right after "(" or ", " is a signature's **kwargs, not bold that failed.)
        raw = r".{0,40}(``|(?<![(,] )(?<!\()\*\*\w|`_\b|`__\b).{0,40}"
        for m in re.finditer(raw, _text(page.read_text())):
            bad.append(f"{page.relative_to(site)}: {m.group(0)!r}")
    assert not bad, "\n".join(bad)


def _entry(html: str, ident: str) -> str:
    """The rendered text of the reference's entry ``ident`` (up to the next entry)."""
    start = html.index(f'id="{ident}"')
    end = html.find('<dt class="sig', start + 1)
    return _text(html[start : end if end > 0 else len(html)])


def test_signatures_show_modes_in_octal(site: Path) -> None:
    html = (site / "api.html").read_text()
    for cls in ("Queue", "ObjectQueue", "JoinableQueue", "JoinableObjectQueue"):
        assert "mode: int = 0o600" in _entry(html, f"fastqueue.{cls}"), cls
    assert "= 384" not in _text(html)


def test_each_exception_states_the_status_a_caught_one_has(site: Path) -> None:
    """Not an inherited ``status: int = 0``: a caught QueueExistsError has -5."""
    html = (site / "api.html").read_text()
    assert "status: int" not in _text(html)
    q = fastqueue.Queue(element_size=8, capacity=1)
    with q, pytest.raises(fastqueue.QueueExistsError) as caught:
        fastqueue.Queue(q.name, element_size=8, capacity=1)
    assert caught.value.status == -5
    assert "status is -5 (FQ_ERR_EXISTS)" in _entry(html, "fastqueue.QueueExistsError")
    assert "-9 (FQ_ERR_BAD_SEGMENT), -10 (FQ_ERR_VERSION) or -11 (FQ_ERR_NOT_READY)" in _entry(
        html, "fastqueue.SegmentError"
    )
    assert "status is 1 (FQ_EMPTY)" in _entry(html, "fastqueue.Empty")
    assert "status is 0" in _entry(html, "fastqueue.QueueClosedError")
    for name in fastqueue.__all__:
        obj = getattr(fastqueue, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, fastqueue.FastQueueError)
            and obj is not fastqueue.FastQueueError
        ):
            assert "status is " in _entry(html, f"fastqueue.{name}"), name


def _signatures() -> Iterator[tuple[str, Any]]:
    """(where, function) for every public function and every public method or property of a
    public class of fastqueue."""
    for name in fastqueue.__all__:
        obj = getattr(fastqueue, name)
        if inspect.isclass(obj):
            for attr, member in inspect.getmembers(obj):
                if attr.startswith("_") and attr not in ("__init__", "__enter__"):
                    continue
                function = member.fget if isinstance(member, property) else member
                if callable(function) and hasattr(function, "__annotations__"):
                    yield f"{name}.{attr}", function
        elif callable(obj):
            yield name, obj


def test_every_public_name_a_signature_uses_is_exported() -> None:
    """A class of fastqueue that a public function returns or takes (BridgeReport from bridge(),
    WriteSlot from put_slot(), Serializer) is in ``fastqueue.__all__``, so the reference has
    it (test_the_reference_documents_every_public_name) and users can name it."""
    modules = [
        importlib.import_module(f"fastqueue.{m.name}")
        for m in pkgutil.iter_modules(fastqueue.__path__)
        if m.name not in ("__main__",)
    ]
    seen, hidden = set(), set()
    for where, function in _signatures():
        home = sys.modules[function.__module__]
        for annotation in function.__annotations__.values():
            text = annotation if isinstance(annotation, str) else repr(annotation)
            for ident in set(re.findall(r"\b[A-Z]\w*", text)):
                for module in (home, *modules):
                    found = getattr(module, ident, None)
                    if inspect.isclass(found):
                        break
                if not inspect.isclass(found) or not found.__module__.startswith("fastqueue"):
                    continue
                seen.add(ident)
                if ident not in fastqueue.__all__:
                    hidden.add(f"{where} uses {ident} ({found.__module__})")
    assert {"BridgeReport", "WriteSlot", "Serializer"} <= seen, seen
    assert not hidden, sorted(hidden)


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
