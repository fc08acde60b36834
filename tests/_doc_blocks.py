"""The code blocks of the documentation: README.md (Markdown fences) and docs/guide/*.rst (reST
``.. code-block::`` directives), each with the output its page says it prints.

A page states what an example prints with a paragraph that is exactly ``It prints:`` between the
example and a ``text`` block holding the output::

    ```python                         .. code-block:: python
    print("hi")                          print("hi")
    ```
                                      It prints:
    It prints:
                                      .. code-block:: text
    ```text
    hi                                   hi
    ```

tests/test_examples.py runs every Python block and compares; tests/test_c_interop.py compiles
the C block of the C guide; tests/test_cli.py and tests/test_compat.py read the pages' text.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
STATES_OUTPUT = "It prints:"


@dataclass(frozen=True)
class Block:
    """One code block: its language, its text, where it is, and the output stated after it."""

    page: Path
    line: int  # 1-based line of the fence or directive
    lang: str
    code: str
    prints: str | None  # the output the page states (None: the page states none)

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def _markdown(text: str) -> list[tuple[int, int, str, str]]:
    """(first line, line after the block, language, code) of every fenced block."""
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            j = i + 1
            while lines[j].rstrip() != "```":
                j += 1
            found.append((i, j + 1, m.group(1) or "text", "\n".join(lines[i + 1 : j]) + "\n"))
            i = j + 1
        else:
            i += 1
    return found


def _rest(text: str) -> list[tuple[int, int, str, str]]:
    """(first line, line after the block, language, code) of every ``code-block`` directive."""
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)\.\. code-block::\s*(\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        j = i + 1
        while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):  # the directive's options
            j += 1
        body: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
            j -= 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        found.append((i, j, m.group(2), code))
        i = j
    return found


def blocks(page: Path) -> list[Block]:
    """Every code block of ``page`` (Markdown or reST by its suffix), in order."""
    text = page.read_text(encoding="utf-8")
    raw = _markdown(text) if page.suffix == ".md" else _rest(text)
    lines = text.split("\n")
    result = []
    for k, (start, end, lang, code) in enumerate(raw):
        prints = None
        if k + 1 < len(raw) and raw[k + 1][2] == "text":
            between = [s.strip() for s in lines[end : raw[k + 1][0]] if s.strip()]
            if between == [STATES_OUTPUT]:
                prints = raw[k + 1][3]
        result.append(Block(page, start + 1, lang, code, prints))
    return result


def pages() -> list[Path]:
    """README.md and every page of the guide."""
    return [README, *sorted(GUIDE.glob("*.rst"))]


def section(page: Path, title: str) -> str:
    """The text of the section of ``page`` whose title starts with ``title`` (reST or Markdown),
    up to the next title of the same or a higher level."""
    text = page.read_text(encoding="utf-8")
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        under = lines[i + 1]
        if line.startswith(title) and under and set(under) <= set("=-~^") and len(under) >= 3:
            level = "=-~^".index(under[0])
            for j in range(i + 2, len(lines) - 1):
                u = lines[j + 1]
                if (
                    lines[j].strip()
                    and u
                    and set(u) <= set("=-~^")
                    and len(u) == len(lines[j])
                    and "=-~^".index(u[0]) <= level
                ):
                    return "\n".join(lines[i:j])
            return "\n".join(lines[i:])
    raise AssertionError(f"{page.relative_to(ROOT)} has no section titled {title!r}")
