"""The build backend's trim (build_backend/fastqueue_build.py) on a wheel laid out as maturin's
cffi mode lays it out: the cffi modules go, the library is renamed so that nothing in the
package looks like an extension module, and the RECORD matches the files again. (The wheels
themselves are checked by .ci/run's packaging section and tests/smoke_installed.py.)"""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def backend() -> ModuleType:
    pytest.importorskip("maturin", reason="the build backend wraps maturin's")
    sys.path.insert(0, str(ROOT / "build_backend"))
    try:
        import fastqueue_build
    finally:
        sys.path.remove(str(ROOT / "build_backend"))
    return fastqueue_build


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(path: Path) -> None:
    files = {
        "fastqueue/__init__.py": b"x = 1\n",
        "fastqueue/_native/__init__.py": b"from .ffi import ffi\n",
        "fastqueue/_native/ffi.py": b"import _cffi_backend\n",
        "fastqueue/_native/lib_native.so": b"\x7fELF not really",
        "fastqueue-0.1.0.dist-info/METADATA": b"Name: fastqueue\n",
    }
    record = "".join(f"{n},{_hash(d)},{len(d)}\n" for n, d in files.items())
    record += "fastqueue-0.1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            z.writestr(info, data)
        z.writestr("fastqueue-0.1.0.dist-info/RECORD", record)


def test_the_trim_drops_cffi_modules_and_renames_the_library(tmp_path: Path) -> None:
    b = backend()
    wheel = tmp_path / "fastqueue-0.1.0-py3-none-linux_x86_64.whl"
    make_wheel(wheel)
    changes = b.trim_wheel(wheel)
    assert len(changes) == 3, changes
    lib = f"fastqueue/_native/{b.library_name()}"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert not [n for n in names if n.startswith("fastqueue/_native/") and n != lib]
        assert z.read(lib) == b"\x7fELF not really"
        assert z.getinfo(lib).external_attr >> 16 == 0o755  # still executable
        record = z.read("fastqueue-0.1.0.dist-info/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            name, digest, size = line.split(",")
            listed[name] = (digest, size)
        assert set(listed) == set(names)
        for name in names:
            if not name.endswith("RECORD"):
                data = z.read(name)
                assert listed[name] == (_hash(data), str(len(data))), name
    # Nothing left that a package walker would take for a module and fail to import.
    suffixes = tuple(importlib.machinery.all_suffixes())
    assert not [n for n in names if n.startswith("fastqueue/_native/") and n.endswith(suffixes)]
    assert b.trim_wheel(wheel) == []  # idempotent


def test_the_library_is_named_after_the_abi_version() -> None:
    import _cheader

    assert backend().library_name() == f"libfastqueue.so.{_cheader.constants()['FQ_ABI_VERSION']}"
