"""fastqueue's PEP 517 build backend: maturin builds the wheel, then this module trims it.

maturin has one mode for a plain C-ABI cdylib without pyo3, ``bindings = "cffi"``. Besides the
library it writes two generated modules into the wheel, ``fastqueue/_native/__init__.py`` and
``ffi.py``, which import cffi, and it names the library ``lib_native.so``, a name ending in an
extension-module suffix although the file is no extension module. fastqueue never uses either
module (Python loads the library through ctypes), so the wheel it ships:

- drops the two generated modules, so nothing in the wheel imports cffi and the wheel depends on
  nothing at run time (cffi is a build-time requirement only: maturin runs it to generate them);
- renames the library ``libfastqueue.so.<FQ_ABI_VERSION>`` (the usual name of a versioned shared
  library), so that no file in the package looks like a module that is not one, and ``_native/``
  is a plain folder of data, not a package (a package walker never enters it);
- rewrites the RECORD to match.

Every other hook is maturin's own (sdist, editable installs, metadata). ``python
build_backend/fastqueue_build.py WHEEL...`` applies the same trim to wheels built by ``maturin
build`` (``just wheel`` and ``just wheels`` build through :func:`build_wheel` itself).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maturin import (  # noqa: F401  (the hooks pip calls, re-exported unchanged)
    build_editable,
    build_sdist,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)
from maturin import build_wheel as _maturin_build_wheel

#: The folder of the library inside the wheel (module-name "fastqueue._native" of pyproject.toml).
NATIVE = "fastqueue/_native/"
#: What maturin's cffi mode generates there and the wheel does not ship.
GENERATED = ("__init__.py", "ffi.py")
HEADER = Path(__file__).resolve().parent.parent / "core" / "include" / "fastqueue.h"


def library_name() -> str:
    """``libfastqueue.so.<FQ_ABI_VERSION>``, the version read from the C header."""
    text = HEADER.read_text(encoding="utf-8")
    m = re.search(r"\bFQ_ABI_VERSION\s*=\s*(\d+)\b", text)
    if m is None:
        raise SystemExit(f"fastqueue_build: no FQ_ABI_VERSION in {HEADER}")
    return f"libfastqueue.so.{m.group(1)}"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def trim_wheel(wheel: str | os.PathLike[str]) -> list[str]:
    """Rewrite ``wheel`` in place as described above; returns what changed (for the log).

    Idempotent: a wheel already trimmed is left as it is."""
    path = Path(wheel)
    changes: list[str] = []
    lib = library_name()
    with zipfile.ZipFile(path) as zin:
        infos = zin.infolist()
        entries = [(info, zin.read(info)) for info in infos]
    out: list[tuple[zipfile.ZipInfo, bytes]] = []
    record_name = None
    for info, data in entries:
        name = info.filename
        if name.endswith(".dist-info/RECORD"):
            record_name = name
            continue
        if name.startswith(NATIVE) and name[len(NATIVE) :] in GENERATED:
            changes.append(f"dropped {name} (maturin's cffi module)")
            continue
        if name.startswith(NATIVE) and re.fullmatch(r"lib[^/]*\.so", name[len(NATIVE) :]):
            new = NATIVE + lib
            changes.append(f"renamed {name} -> {new}")
            info = _renamed(info, new)
        out.append((info, data))
    if not changes:
        return changes
    if record_name is None:
        raise SystemExit(f"fastqueue_build: {path} has no RECORD")
    lines = [f"{info.filename},{_record_hash(data)},{len(data)}" for info, data in out]
    lines.append(f"{record_name},,")
    record = ("\n".join(lines) + "\n").encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info, data in out:
            zout.writestr(info, data)
        rinfo = zipfile.ZipInfo(record_name, date_time=out[-1][0].date_time)
        rinfo.external_attr = 0o644 << 16
        rinfo.compress_type = zipfile.ZIP_DEFLATED
        zout.writestr(rinfo, record)
    os.replace(tmp, path)
    return changes


def _renamed(info: zipfile.ZipInfo, name: str) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(name, date_time=info.date_time)
    new.external_attr = info.external_attr
    new.compress_type = info.compress_type
    new.create_system = info.create_system
    return new


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """maturin's build_wheel, then :func:`trim_wheel` on the result."""
    filename = _maturin_build_wheel(wheel_directory, config_settings, metadata_directory)
    for change in trim_wheel(Path(wheel_directory) / filename):
        print(f"fastqueue_build: {change}", file=sys.stderr)
    return filename


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python build_backend/fastqueue_build.py WHEEL...")
    for whl in sys.argv[1:]:
        for change in trim_wheel(whl):
            print(f"{whl}: {change}")
