"""The house of the Python package: rooms of one job each, no module over ~600 lines, no import
circles, and data flowing one way (public face -> ``_ffi`` -> the C ABI: only ``_ffi`` and the
modules it stands on, ``_library`` and ``_ffibatch``, import ctypes)."""

from __future__ import annotations

import ast
from pathlib import Path

import fastqueue

PACKAGE = Path(fastqueue.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))
#: The modules allowed to import ctypes: the raw layer.
RAW = {"_ffi", "_ffibatch", "_ffiheld", "_library"}


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(the package's modules that ``path`` imports, the other top-level modules it imports)."""
    ours, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                ours.add(node.module.split(".")[0])
            else:
                ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others.update(alias.name.split(".")[0] for alias in node.names)
    return ours, others


def test_no_module_is_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES}
    assert all(n <= 600 for n in sizes.values()), sizes


def test_no_import_circles() -> None:
    graph = {p.stem: imports(p)[0] for p in MODULES}

    def visit(module: str, path: list[str]) -> None:
        for dep in graph.get(module, ()):
            assert dep not in path, f"import circle: {' -> '.join([*path, dep])}"
            visit(dep, [*path, dep])

    for module in graph:
        visit(module, [module])


def test_only_the_raw_layer_imports_ctypes() -> None:
    users = {p.stem for p in MODULES if "ctypes" in imports(p)[1]}
    assert users <= RAW, users
