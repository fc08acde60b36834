"""The house of the Python package: rooms of one job each, no module over ~600 lines, no import
circles, and data flowing one way (public face -> ``_ffi`` -> the C ABI: only ``_ffi`` and the
modules it stands on, ``_library`` and ``_ffibatch``, import ctypes)."""

from __future__ import annotations

import ast
from pathlib import Path

import fastqueue

PACKAGE = Path(fastqueue.__file__).resolve().parent
#: Every module of the package, subpackages (fastqueue._redis) included.
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "_native" not in p.parts)  # (built)
#: The modules allowed to import ctypes: the raw layer.
RAW = {"_ffi", "_ffibatch", "_ffiheld", "_library"}


def dotted(path: Path) -> str:
    """The module's name inside the package: ``queue``, ``_redis._queue``, ``_redis`` (a
    subpackage's ``__init__``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(the package's modules that ``path`` imports, as dotted names inside the package, and the
    other top-level modules it imports). A module that imports a module of another subpackage
    imports that subpackage too (its ``__init__`` runs first)."""
    ours, others = set(), set()
    here = dotted(path).split(".") if dotted(path) else []
    if path.name != "__init__.py":
        here = here[:-1]  # the package the module is in
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                target = [*base, *name.split(".")]
                while target and not (
                    PACKAGE.joinpath(*target).with_suffix(".py").exists()
                    or PACKAGE.joinpath(*target, "__init__.py").exists()
                ):
                    target.pop()  # an attribute, not a module
                for i in range(1, len(target) + 1):
                    if target[:i] != here[:i]:  # the importer's own packages are loaded already
                        ours.add(".".join(target[:i]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others.update(alias.name.split(".")[0] for alias in node.names)
    return ours, others


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        dotted(p) or "__init__": len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES
    }
    assert all(n <= 600 for n in sizes.values()), sizes


def test_no_import_circles() -> None:
    graph = {dotted(p): imports(p)[0] - {dotted(p)} for p in MODULES}

    def visit(module: str, path: list[str]) -> None:
        for dep in graph.get(module, ()):
            assert dep not in path, f"import circle: {' -> '.join([*path, dep])}"
            visit(dep, [*path, dep])

    for module in graph:
        visit(module, [module])


def test_only_the_raw_layer_imports_ctypes() -> None:
    users = {dotted(p) for p in MODULES if "ctypes" in imports(p)[1]}
    assert users <= RAW, users
