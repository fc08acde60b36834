"""The integer constants of ``core/include/fastqueue.h``, for the tests that check them.

The header defines them as enumerators of unnamed enums (``FQ_OK = 0,``), as static consts
(``static const int64_t FQ_TRY_BIAS = 4294967296;``) and, for any older or added ones, as
``#define FQ_X <int>``; this reads all three spellings. What tools make of them after the
preprocessor is checked by tests/test_ffi_tools.py (cffi and bindgen).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

HEADER = Path(__file__).resolve().parent.parent / "core" / "include" / "fastqueue.h"

_INT = r"\(?\s*(-?\s*(?:0x[0-9a-fA-F]+|\d+))[uUlL]*\s*\)?"


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


@cache
def constants() -> dict[str, int]:
    """``FQ_X`` -> value for every integer constant of the header."""
    text = _strip_comments(HEADER.read_text(encoding="utf-8"))
    found: dict[str, int] = {}

    def add(name: str, value: str) -> None:
        assert name not in found, f"{name} is defined twice in {HEADER.name}"
        found[name] = int(value.replace(" ", ""), 0)

    for name, value in re.findall(rf"^\s*#\s*define\s+(FQ_\w+)\s+{_INT}\s*$", text, re.M):
        add(name, value)
    for body in re.findall(r"\benum\s*\{(.*?)\}\s*;", text, re.S):
        for member in body.split(","):
            m = re.fullmatch(rf"\s*(FQ_\w+)\s*=\s*{_INT}\s*", member)
            assert m, f"enum member without an integer value in {HEADER.name}: {member!r}"
            add(m.group(1), m.group(2))
    for name, value in re.findall(rf"\bstatic\s+const\s+\w+\s+(FQ_\w+)\s*=\s*{_INT}\s*;", text):
        add(name, value)
    assert "FQ_OK" in found, f"no FQ_ constants parsed from {HEADER}: has the parser gone stale?"
    return found
