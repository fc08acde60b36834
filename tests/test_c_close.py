"""fq_close() while other threads of a C program are blocked on the same handle (every blocked
call returns FQ_ERR_CLOSED and the close completes), and fq_put_many() writing *done on every
return: a pthread program built from the header (tests/c/close_while_blocked.c), and ctypes."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import fastqueue
from fastqueue import _ffi, _library

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "core" / "include"
SOURCE = ROOT / "tests" / "c" / "close_while_blocked.c"
PROC_TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the C test program is built for Linux here"
)


def _compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        why = f"no C compiler {cc!r} on PATH (set CC to use another)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the C tests (.ci/run installs compilers)")
        pytest.skip(why)
    return cc


def test_close_while_threads_are_blocked(tmp_path: Path, qname: Callable[[], str]) -> None:
    lib = Path(_ffi.library_path()).resolve()
    exe = tmp_path / "close_while_blocked"
    build = subprocess.run(
        [
            _compiler(),
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O1",
            f"-I{INCLUDE}",
            str(SOURCE),
            "-o",
            str(exe),
            "-pthread",
            f"-L{lib.parent}",
            f"-l:{lib.name}",
            f"-Wl,-rpath,{lib.parent}",
        ],
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT_S,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    empty, full = qname(), qname()
    try:
        proc = subprocess.run(
            [str(exe), empty, full],
            capture_output=True,
            text=True,
            timeout=PROC_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"fq_close did not complete, or a blocked call never returned: {exc}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{out}"
    assert "fq_put_many too big: -3 done=0" in proc.stdout, out
    lines = proc.stdout.splitlines()
    assert lines[-1] == "ok", out
    closed = [line for line in lines if line.endswith(f" {_ffi.ERR_CLOSED}")]
    assert len(closed) == 10, out


def test_put_many_writes_done_on_too_big(qname: Callable[[], str]) -> None:
    with fastqueue.Queue(qname(), element_size=8, capacity=4) as q:
        ptr = ctypes.c_void_p()
        assert _library._fq_open(q.name.encode(), ctypes.byref(ptr)) == _ffi.OK
        try:
            data = ctypes.create_string_buffer(32)
            lens = (ctypes.c_uint64 * 2)(8, 9)
            done = ctypes.c_uint64(777)
            status = _library._fq_put_many(ptr, data, lens, 2, 0, ctypes.byref(done))
            assert status == _ffi.ERR_TOO_BIG
            assert done.value == 0
            # A NULL handle too: *done is written whatever the failure.
            done.value = 777
            status = _library._fq_put_many(None, data, lens, 2, 0, ctypes.byref(done))
            assert status == _ffi.ERR_NULL
            assert done.value == 0
        finally:
            _library._fq_close(ptr)
        assert q.qsize() == 0
