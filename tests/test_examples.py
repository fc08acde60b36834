"""Every Python example of README.md and of the guide (docs/guide/*.rst) runs as a script, within
a timeout, and prints exactly what its page says it prints (tests/_doc_blocks.py: an ``It
prints:`` paragraph and a ``text`` block after it; an example whose page states nothing must
print nothing). So the examples stay true, and none can hang.

Two things are swapped in before an example runs, never in what the page shows: a queue the
example names (``fastqueue.Queue("jobs", ...)``) gets a unique name of this test, unlinked after
it, so that parallel runs never meet; and a Redis URL of the placeholder host ``redis-host`` leads
to a stream of the suite's own redis-server (tests/_redis_server.py), deleted after it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastqueue
from _doc_blocks import README, Block, blocks, pages
from _procs import checkout_env
from _redis_server import redis_server, rq_url  # noqa: F401  (fixtures)
from conftest import unique_prefix

TIMEOUT_S = 120
EXAMPLES = [b for page in pages() for b in blocks(page) if b.lang == "python"]
NAMED_QUEUE = re.compile(r'(fastqueue\.(?:\w*Queue)\(\s*)"([\w.-]+)"')
REDIS_URL = re.compile(r"redis://redis-host:6379/0/([\w-]+)")


def test_every_page_has_its_examples() -> None:
    readme = [b for b in EXAMPLES if b.page == README]
    assert len(readme) >= 2, "the README lost its producer/consumer examples"
    guide_pages = {b.page.stem for b in EXAMPLES if b.page != README}
    assert {"asyncio", "objects", "shutdown-join", "zero-copy", "redis"} <= guide_pages
    assert any(REDIS_URL.search(b.code) for b in EXAMPLES), "no Redis example under test"


def test_no_python_block_escapes_the_runner() -> None:
    """A block marked ``py``, ``python3`` or ``pycon`` would not be run: mark it ``python``."""
    odd = [b.where for p in pages() for b in blocks(p) if b.lang in {"py", "python3", "pycon"}]
    assert not odd, f"Python blocks the example test would skip: {odd}"


def test_stated_outputs_follow_their_example() -> None:
    """An ``It prints:`` paragraph always follows a Python block (else it states nothing)."""
    for page in pages():
        found = blocks(page)
        stated = sum(b.prints is not None for b in found)
        text = page.read_text(encoding="utf-8")
        assert text.count("\nIt prints:\n") == stated, f"{page}: an 'It prints:' without a block"
        assert all(b.lang == "python" for b in found if b.prints is not None)


@contextlib.contextmanager
def _private_names(code: str) -> Iterator[str]:
    """``code`` with each queue name it spells replaced by a unique one, removed afterwards."""
    prefix = unique_prefix("ex")
    names: dict[str, str] = {}

    def swap(m: re.Match[str]) -> str:
        new = names.setdefault(m.group(2), f"{prefix}{len(names)}")
        return f'{m.group(1)}"{new}"'

    code = NAMED_QUEUE.sub(swap, code)
    try:
        yield code
    finally:
        for name in names.values():
            with contextlib.suppress(FileNotFoundError):
                fastqueue.unlink(name, force=True)


def _run(block: Block, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        env=checkout_env(),
        check=False,
    )
    assert proc.returncode == 0, f"{block.where} failed:\n{proc.stdout}{proc.stderr}"
    assert proc.stdout == (block.prints or ""), (
        f"{block.where} printed {proc.stdout!r}, its page says {block.prints!r}"
    )


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("block", EXAMPLES, ids=[b.where for b in EXAMPLES])
def test_example_prints_what_its_page_says(
    block: Block, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    code = block.code
    if REDIS_URL.search(code):
        make_url = request.getfixturevalue("rq_url")
        streams: dict[str, str] = {}
        code = REDIS_URL.sub(lambda m: streams.setdefault(m.group(1), make_url(tcp=True)), code)
    with _private_names(code) as code:
        _run(block, code, tmp_path)


def test_a_wrong_stated_output_is_caught(tmp_path: Path) -> None:
    """The comparison can fail: a block that prints something else than its page says."""
    page = tmp_path / "page.rst"
    page.write_text(
        'x\n=\n\n.. code-block:: python\n\n   print("a")\n\nIt prints:\n\n'
        ".. code-block:: text\n\n   b\n"
    )
    (block,) = [b for b in blocks(page) if b.lang == "python"]
    assert block.prints == "b\n"
    with pytest.raises(AssertionError, match="printed 'a\\\\n', its page says 'b\\\\n'"):
        _run(block, block.code, tmp_path)
