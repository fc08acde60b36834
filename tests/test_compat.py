"""The compatibility promises of docs/guide/compatibility.rst, each checked where it is kept.

* The Python loader refuses a library of another C ABI version (a fake one built here).
* A C program built against fastqueue.h gets FQ_ERR_VERSION, and a clear description, for a
  segment of another layout version (Python's side of that: tests/test_segments.py).
* The versions the guide states are the ones the header and the library report.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import _cheader
import fastqueue
from _doc_blocks import GUIDE
from fastqueue import _ffi

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "core" / "include" / "fastqueue.h"
SHM = Path("/dev/shm")
TIMEOUT_S = 120.0
NameFactory = Callable[[], str]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="POSIX shared memory in /dev/shm"
)


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        if os.environ.get("CI"):
            pytest.fail(f"no C compiler {cc!r}; CI must run the compatibility tests")
        pytest.skip(f"no C compiler {cc!r}")
    return cc


def test_loader_refuses_a_library_of_another_abi_version(tmp_path: Path) -> None:
    src = tmp_path / "fake.c"
    src.write_text("unsigned int fq_abi_version(void) { return 999; }\n")
    lib = tmp_path / "libfake.so"
    subprocess.run(
        [compiler(), "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, timeout=TIMEOUT_S
    )
    env = {**os.environ, "FASTQUEUE_LIBRARY": str(lib), "PYTHONPATH": str(ROOT / "py")}
    proc = subprocess.run(
        [sys.executable, "-c", "import fastqueue"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        check=False,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError"), proc.stderr
    assert "version 999" in last and f"version {_ffi.ABI_VERSION}" in last, last
    assert str(lib) in last and "FASTQUEUE_LIBRARY" in last, last


def test_c_program_gets_err_version_for_another_layout(tmp_path: Path, qname: NameFactory) -> None:
    good, bad = qname(), qname()
    with fastqueue.Queue(good, element_size=64, capacity=4):
        image = bytearray((SHM / good).read_bytes())
    # The header starts with the magic (u64) and the layout version (u32), native-endian.
    (version,) = struct.unpack_from("=I", image, 8)
    assert version == _ffi.layout_version()
    struct.pack_into("=I", image, 8, version + 1)
    fd = os.open(SHM / bad, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(image)

    src = tmp_path / "open_other_layout.c"
    src.write_text(
        "#include <stdio.h>\n"
        '#include "fastqueue.h"\n'
        "int main(int argc, char **argv) {\n"
        "    fq_queue *q = NULL;\n"
        "    int32_t st;\n"
        "    (void)argc;\n"
        "    st = fq_open(argv[1], &q);\n"
        '    printf("%d %d %s\\n", (int)st, q == NULL, fq_status_str(st));\n'
        "    return st == FQ_ERR_VERSION ? 0 : 1;\n"
        "}\n"
    )
    exe = tmp_path / "open_other_layout"
    lib = Path(fastqueue.library_path())
    cmd = [compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{HEADER.parent}"]
    cmd += [str(src), "-o", str(exe), f"-L{lib.parent}", f"-l:{lib.name}"]
    cmd += [f"-Wl,-rpath,{lib.parent}"]
    subprocess.run(cmd, check=True, timeout=TIMEOUT_S)
    proc = subprocess.run(
        [str(exe), bad], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    status, handle_is_null, text = proc.stdout.strip().split(" ", 2)
    assert proc.returncode == 0 and int(status) == _ffi.ERR_VERSION, proc.stdout
    assert handle_is_null == "1", "a refused fq_open must leave *out untouched (NULL)"
    assert "layout version" in text
    assert (SHM / bad).exists(), "refusing a segment must not remove it"


def test_the_guide_states_the_versions_in_force() -> None:
    section = (GUIDE / "compatibility.rst").read_text(encoding="utf-8")
    abi = re.search(r"``fq_abi_version\(\)`` \(in the library\),\s+now (\d+)", section)
    layout = re.search(r"``fq_layout_version\(\)``, now (\d+)", section)
    assert abi and layout, "docs/guide/compatibility.rst no longer states the versions"
    assert int(abi.group(1)) == _ffi.abi_version() == _ffi.ABI_VERSION
    assert int(layout.group(1)) == _ffi.layout_version()
    assert _cheader.constants()["FQ_ABI_VERSION"] == _ffi.ABI_VERSION
