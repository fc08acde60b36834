"""Building C against the package: fastqueue.include_dir(), fastqueue.library_path(), and
``python -m fastqueue --cflags / --libs``, used exactly as printed by a real compiler and linker.

The end-to-end part is tests/smoke_installed.py (C producer/consumer built with the printed
flags, exchanging messages with Python both ways and with each other); CI also runs that script
in a fresh virtualenv on the installed wheel.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastqueue
from _procs import checkout_env, run_fastqueue
from fastqueue import _ffi
from fastqueue.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "tests" / "smoke_installed.py"
TIMEOUT_S = 300.0

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the printed flags are for Linux linkers"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_fastqueue(*args, timeout=TIMEOUT_S)


def test_include_dir_holds_the_header_of_this_checkout() -> None:
    folder = Path(fastqueue.include_dir())
    assert folder.is_absolute()
    header = folder / "fastqueue.h"
    assert header.read_bytes() == (ROOT / "core" / "include" / "fastqueue.h").read_bytes()


def test_library_path_is_the_loaded_library() -> None:
    path = Path(fastqueue.library_path())
    assert path.is_absolute() and path.is_file()
    assert path.samefile(_ffi.library_path())
    assert fastqueue.library_path in vars(fastqueue).values()  # public, in __all__
    assert {"include_dir", "library_path"} <= set(fastqueue.__all__)


def test_cflags_and_libs_print_the_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cflags"]) == 0
    assert shlex.split(capsys.readouterr().out) == [f"-I{fastqueue.include_dir()}"]
    lib = Path(fastqueue.library_path())
    assert main(["--libs"]) == 0
    libs = shlex.split(capsys.readouterr().out)
    assert libs == [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
    assert main(["--cflags", "--libs"]) == 0
    both = shlex.split(capsys.readouterr().out)
    assert both == [f"-I{fastqueue.include_dir()}", *libs]


def test_flags_from_the_command_line() -> None:
    proc = cli("--libs", "--cflags")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("-L")
    assert f"-I{fastqueue.include_dir()}" in shlex.split(proc.stdout)


def test_flags_follow_the_library_override(tmp_path: Path) -> None:
    """With $FASTQUEUE_LIBRARY the flags name that library, so C and Python use the same one."""
    lib = tmp_path / "copy of libfastqueue.so"
    shutil.copyfile(fastqueue.library_path(), lib)
    env = checkout_env() | {"FASTQUEUE_LIBRARY": str(lib)}
    proc = subprocess.run(
        [sys.executable, "-m", "fastqueue", "--libs"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("-l:")[1].startswith("copy of libfastqueue.so")


def test_unknown_option_after_a_flag_is_a_usage_error() -> None:
    proc = cli("--cflags", "--bogus")
    assert proc.returncode == 2
    assert "--bogus" in proc.stderr and "usage:" in proc.stderr
    assert proc.stdout == ""


def test_help_mentions_the_flags() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "--cflags" in proc.stdout and "--libs" in proc.stdout


def test_cpp_program_builds_with_the_printed_flags(tmp_path: Path) -> None:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        if os.environ.get("CI"):
            pytest.fail(f"no C++ compiler {cxx!r}; CI must build against the printed flags")
        pytest.skip(f"no C++ compiler {cxx!r}")
    src = tmp_path / "app.cpp"
    src.write_text(
        "#include <cstdio>\n"
        "#include <fastqueue.h>\n"
        "int main() {\n"
        '    std::printf("%s\\n", fq_status_str(FQ_ERR_VERSION));\n'
        "    return fq_abi_version() == FQ_ABI_VERSION ? 0 : 1;\n"
        "}\n"
    )
    cflags, libs = shlex.split(cli("--cflags").stdout), shlex.split(cli("--libs").stdout)
    exe = tmp_path / "app"
    cmd = [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", *cflags, str(src)]
    cmd += ["-o", str(exe), *libs]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert ran.returncode == 0
    assert "layout version" in ran.stdout


def test_pattern_mirror_matches_the_c_interop_tests() -> None:
    """The smoke script's copy of examples/c/pattern.h agrees with test_c_interop's."""
    import smoke_installed
    import test_c_interop

    for i in range(300):
        assert smoke_installed.message(i, 300) == test_c_interop.message(i, 300)


@pytest.mark.timeout(600)
def test_c_built_with_the_printed_flags_talks_to_python(tmp_path: Path) -> None:
    """tests/smoke_installed.py on this package: C producer and consumer compiled with exactly
    the printed flags exchange messages with Python both ways and with each other."""
    if shutil.which(os.environ.get("CC", "cc")) is None and not os.environ.get("CI"):
        pytest.skip("no C compiler")
    proc = subprocess.run(
        [sys.executable, str(SMOKE), "--examples", str(ROOT / "examples" / "c")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
        env=checkout_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for what in ("C -> Python", "Python -> C", "C -> C"):
        assert f"smoke: {what}" in proc.stdout, proc.stdout
    assert f"from {ROOT / 'py' / 'fastqueue'}" in proc.stdout
