"""C and Python exchange messages through one queue: C->Python, Python->C and C->C.

The C programs are the examples in examples/c, compiled here with the strict flags a C user would
use, against the very library the Python package loaded. Every message is the deterministic
pattern of examples/c/pattern.h (mirrored by :func:`message` below), 0..max_msg bytes long, and
every byte is checked on the receiving side. The header is also compiled as C++17.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastqueue
from _doc_blocks import GUIDE
from _doc_blocks import blocks as doc_blocks
from fastqueue import _ffi

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "core" / "include"
EXAMPLES = ROOT / "examples" / "c"
#: How long a C program may run before the test gives up on it.
PROC_TIMEOUT_S = 60.0
#: Python's side waits at most this long for one message or one free slot.
OP_TIMEOUT_S = 10.0

CC = os.environ.get("CC", "cc")
CXX = os.environ.get("CXX", "c++")
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the C examples are built for Linux here"
)

_RAMP = bytes(range(256)) * 2


def msg_len(i: int, max_msg: int) -> int:
    """Length of message i (fqx_len of pattern.h)."""
    if i % 16 == 1:
        return max_msg
    return ((i * 2654435761) % (1 << 64)) % (max_msg + 1)


def message(i: int, max_msg: int) -> bytes:
    """Message i (fqx_fill of pattern.h): byte j is (7*i + j) mod 256."""
    n = msg_len(i, max_msg)
    reps = n // 256 + 2
    start = (7 * i) % 256
    return (_RAMP[start : start + 256] * reps)[:n]


def test_pattern_mirror() -> None:
    """The Python mirror of pattern.h starts as documented (message 0 empty, 1 full length)."""
    assert message(0, 100) == b""
    assert message(1, 100) == bytes((7 + j) % 256 for j in range(100))
    assert {len(message(i, 300)) for i in range(2000)} >= {0, 300}
    assert all(len(message(i, 300)) <= 300 for i in range(2000))


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        why = f"no C/C++ compiler {tool!r} on PATH (set CC / CXX to use another)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the C interop tests (.ci/run installs compilers)")
        pytest.skip(why)
    return path


def _link_flags() -> list[str]:
    """Link against the library the Python package uses (bundled or $FASTQUEUE_LIBRARY)."""
    lib = Path(_ffi.library_path()).resolve()
    return [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]


def _compile(compiler: str, args: list[str]) -> None:
    proc = subprocess.run(
        [compiler, *args], capture_output=True, text=True, timeout=PROC_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, f"{compiler} {' '.join(args)} failed:\n{proc.stderr}"


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/c/producer.c and consumer.c, compiled as C99 with -Werror."""
    cc = _require(CC)
    out = tmp_path_factory.mktemp("c-examples")
    built = {}
    for prog in ("producer", "consumer"):
        exe = out / prog
        source = EXAMPLES / f"{prog}.c"
        flags = ["-std=c99", *STRICT, "-O2", f"-I{INCLUDE}"]
        _compile(cc, [*flags, str(source), "-o", str(exe), *_link_flags()])
        built[prog] = exe
    return built


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh queue name, removed after the test whatever happened."""
    qname = f"fq-test-c-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield qname
    with contextlib.suppress(FileNotFoundError):
        fastqueue.unlink(qname)


def _start(exe: Path, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(exe), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    """Waits for a C program; fails the test (after killing it) unless it exits 0."""
    try:
        out, err = proc.communicate(timeout=PROC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {PROC_TIMEOUT_S} s:\n{out}{err}")
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{out}{err}"
    return out


def test_c_to_python(programs: dict[str, Path], name: str) -> None:
    max_msg, count = 4096, 5000
    # A small capacity makes the C producer block on a full queue over and over.
    with fastqueue.Queue(name, element_size=max_msg, capacity=7) as q:
        producer = _start(programs["producer"], name, count)
        try:
            for i in range(count):
                got = q.get(timeout=OP_TIMEOUT_S)
                assert got == message(i, max_msg), f"message {i} differs"
        finally:
            out = _finish(producer)
        assert f"sent {count} messages" in out
        assert q.empty()


def test_python_to_c(programs: dict[str, Path], name: str) -> None:
    max_msg, count = 1000, 5000
    with fastqueue.Queue(name, element_size=max_msg, capacity=5) as q:
        consumer = _start(programs["consumer"], name, count)
        try:
            for i in range(count):
                q.put(message(i, max_msg), timeout=OP_TIMEOUT_S)
        finally:
            out = _finish(consumer)
        assert f"received {count} messages, all correct" in out
        assert q.empty()


def test_c_to_c(programs: dict[str, Path], name: str) -> None:
    """The consumer creates the queue (fq_create) and removes it; the producer waits for it."""
    count = 20000
    producer = _start(programs["producer"], name, count)
    consumer = _start(programs["consumer"], name, count, 777, 3)
    out_c = _finish(consumer)
    out_p = _finish(producer)
    assert f"received {count} messages, all correct" in out_c
    assert f"sent {count} messages" in out_p
    with pytest.raises(FileNotFoundError):
        fastqueue.Queue(name, create=False)


def test_c_consumer_detects_corruption(programs: dict[str, Path], name: str) -> None:
    """The checks are real: a wrong message makes the C consumer fail."""
    max_msg = 64
    with fastqueue.Queue(name, element_size=max_msg, capacity=4) as q:
        consumer = _start(programs["consumer"], name, 2)
        q.put(message(0, max_msg), timeout=OP_TIMEOUT_S)
        q.put(b"\x00" * msg_len(1, max_msg), timeout=OP_TIMEOUT_S)
        _, err = consumer.communicate(timeout=PROC_TIMEOUT_S)
    assert consumer.returncode == 1
    assert "message 1 is wrong at byte 0" in err


def test_header_compiles_as_cpp17(tmp_path: Path) -> None:
    """fastqueue.h works from C++17 (extern "C", no C-only constructs) and matches the library."""
    cxx = _require(CXX)
    src = tmp_path / "abi.cpp"
    src.write_text(
        "#include <cstdio>\n"
        '#include "fastqueue.h"\n'
        "int main() {\n"
        "    fq_queue *q = nullptr;\n"
        '    if (fq_open("", &q) >= 0 || q != nullptr) return 3;  // an empty name is invalid\n'
        '    std::printf("%u %s\\n", fq_abi_version(), fq_status_str(FQ_OK));\n'
        "    return fq_abi_version() == FQ_ABI_VERSION ? 0 : 1;\n"
        "}\n"
    )
    exe = tmp_path / "abi"
    _compile(cxx, ["-std=c++17", *STRICT, f"-I{INCLUDE}", str(src), "-o", str(exe), *_link_flags()])
    proc = subprocess.run(
        [str(exe)], capture_output=True, text=True, timeout=PROC_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[0] == str(_ffi.ABI_VERSION)


def test_header_is_self_contained_c99(tmp_path: Path) -> None:
    """The header compiles first in a translation unit as strict C99: it includes what it needs."""
    cc = _require(CC)
    src = tmp_path / "only_header.c"
    src.write_text('#include "fastqueue.h"\nint main(void) { return FQ_OK; }\n')
    _compile(cc, ["-std=c99", *STRICT, f"-I{INCLUDE}", "-c", str(src), "-o", str(tmp_path / "o.o")])


def test_guide_c_example(tmp_path: Path) -> None:
    """The C program of the C guide (docs/guide/c-and-rust.rst) compiles with the guide's flags,
    runs and cleans up."""
    cc = _require(CC)
    c_blocks = [b for b in doc_blocks(GUIDE / "c-and-rust.rst") if b.lang == "c"]
    assert c_blocks, "docs/guide/c-and-rust.rst has no C block"
    src = tmp_path / "hello.c"
    src.write_text(c_blocks[0].code, encoding="utf-8")
    exe = tmp_path / "hello"
    _compile(cc, ["-std=c99", *STRICT, f"-I{INCLUDE}", str(src), "-o", str(exe), *_link_flags()])
    proc = subprocess.run(
        [str(exe)], capture_output=True, text=True, timeout=PROC_TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.endswith(": hi\n"), proc.stdout
    with pytest.raises(FileNotFoundError):
        fastqueue.Queue("hello-c", create=False)
