"""The C header as other languages' FFI tools read it, unedited: Python's cffi (ABI mode, on the
output of ``cc -E -P``, which is all cffi's ``cdef`` can parse) and Rust's bindgen. Each binds
the package's own header (``fastqueue.include_dir()``) and the library the package loaded, sees
every constant with its value (and, for bindgen, the statuses typed as the functions' i32
results), and exchanges checked messages both ways with a Python peer in another process
(fastqueue.Queue), with every length from 0 to the queue's maximum.

A tool that is missing skips its test, except under CI (``CI=true``), where it fails: .ci/run
installs them (``just ffi-tools``). bindgen needs ``bindgen`` (``cargo install bindgen-cli``)
and libclang (Debian's libclang-dev); its peer is built with ``rustc``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import _cheader
import fastqueue
from _procs import checkout_env
from test_c_interop import message

NameFactory = Callable[[], str]
HERE = Path(__file__).resolve().parent
PROC_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 300.0
#: Messages each way; lengths cycle through 0..MAX_MSG (message(i) of examples/c/pattern.h, and
#: every length at least once: see _lengths_covered).
COUNT = 3000
MAX_MSG = 300
CAPACITY = 7

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fastqueue's shared memory is Linux-only for now"
)


def _require(tool: str | None, what: str) -> None:
    """Skips the test when `tool` is missing, or fails it under CI, which must have it."""
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is missing; CI must run this test (.ci/run installs it)")
        pytest.skip(f"{what} is missing")


def _lengths_covered() -> None:
    lengths = {len(message(i, MAX_MSG)) for i in range(COUNT)}
    assert lengths >= set(range(MAX_MSG + 1)), "COUNT is too small to send every length"


#: The Python peer: fastqueue.Queue in a process of its own, opening the queue by name.
PEER = """
import sys
sys.path.insert(0, sys.argv[5])
import fastqueue
from test_c_interop import message
role, name, count, max_msg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with fastqueue.Queue(name, create=False) as q:
    for i in range(count):
        if role == "put":
            q.put(message(i, max_msg), timeout=30)
        elif q.get(timeout=30) != message(i, max_msg):
            sys.exit(f"python peer: message {i} differs")
print("python peer: ok", count)
"""


def _python_peer(role: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PEER, role, name, str(COUNT), str(MAX_MSG), str(HERE)],
        env=checkout_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], what: str) -> str:
    try:
        out, err = proc.communicate(timeout=PROC_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{out}{err}"
    return out


# ------------------------------------------------------------------------------------ cffi


@pytest.fixture(scope="module")
def cffi_lib() -> tuple[Any, Any]:
    """(ffi, lib): cffi's ABI mode over ``cc -E -P`` of the header, unedited."""
    try:
        import cffi
    except ImportError:
        cffi = None
    _require(cffi, "cffi (pip install cffi)")
    cc = shutil.which(os.environ.get("CC", "cc"))
    _require(cc, "a C compiler (cc)")
    assert cffi is not None and cc is not None
    header = Path(fastqueue.include_dir()) / "fastqueue.h"
    proc = subprocess.run(
        [cc, "-E", "-P", str(header)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    ffi = cffi.FFI()
    ffi.cdef(proc.stdout)
    return ffi, ffi.dlopen(fastqueue.library_path())


def test_cffi_sees_every_constant_of_the_header(cffi_lib: tuple[Any, Any]) -> None:
    _, lib = cffi_lib
    header = _cheader.constants()
    seen = {name: getattr(lib, name) for name in header if hasattr(lib, name)}
    assert seen == header, f"missing or different after cc -E -P: {set(header) ^ set(seen)}"
    assert lib.FQ_TRY_BIAS == 1 << 32
    assert lib.fq_abi_version() == lib.FQ_ABI_VERSION


@pytest.mark.timeout(300)
def test_cffi_exchanges_messages_with_python(cffi_lib: tuple[Any, Any], qname: NameFactory) -> None:
    ffi, lib = cffi_lib
    _lengths_covered()
    name = qname()
    q = ffi.new("fq_queue **")
    assert lib.fq_create(name.encode(), MAX_MSG, CAPACITY, 0o600, q) == lib.FQ_OK
    try:
        # Python -> cffi: fq_get with a timeout, and fq_try_get with FQ_TRY_STATUS by hand.
        peer = _python_peer("put", name)
        buf, length = ffi.new("char[]", MAX_MSG), ffi.new("uint64_t *")
        for i in range(COUNT):
            if i % 2:
                status = lib.fq_get(q[0], buf, MAX_MSG, length, 30 * 10**9)
                assert status == lib.FQ_OK, ffi.string(lib.fq_status_str(status))
                got = ffi.buffer(buf, length[0])[:]
            else:
                while True:
                    r = lib.fq_try_get(q[0], buf, MAX_MSG)
                    if r >= 0:
                        break
                    assert r + lib.FQ_TRY_BIAS == lib.FQ_EMPTY, r + lib.FQ_TRY_BIAS
                    assert lib.fq_wait(q[0], lib.FQ_WAIT_READABLE, 30 * 10**9) == lib.FQ_OK
                got = ffi.buffer(buf, r)[:]
            assert got == message(i, MAX_MSG), f"message {i} from Python differs"
        _finish(peer, "the Python producer")
        # cffi -> Python.
        peer = _python_peer("get", name)
        for i in range(COUNT):
            data = message(i, MAX_MSG)
            status = lib.fq_put(q[0], data, len(data), 30 * 10**9)
            assert status == lib.FQ_OK, ffi.string(lib.fq_status_str(status))
        assert "python peer: ok" in _finish(peer, "the Python consumer")
        assert lib.fq_size(q[0]) == 0
    finally:
        lib.fq_close(q[0])
        lib.fq_unlink(name.encode())


# ---------------------------------------------------------------------------------- bindgen

#: The Rust peer, over bindgen's output (included unedited). Arguments: put|get NAME COUNT
#: MAX_MSG; it checks every byte it gets (the pattern of examples/c/pattern.h).
RUST_PEER = r"""
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
include!(concat!(env!("FQ_BINDINGS_DIR"), "/bindings.rs"));

fn msg_len(i: u64, max: u64) -> u64 {
    if i % 16 == 1 { max } else { i.wrapping_mul(2654435761) % (max + 1) }
}
fn fill(i: u64, max: u64) -> Vec<u8> {
    (0..msg_len(i, max)).map(|j| ((7 * i + j) % 256) as u8).collect()
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let role = a[1].as_str();
    let (count, max) = (a[3].parse::<u64>().unwrap(), a[4].parse::<u64>().unwrap());
    let name = std::ffi::CString::new(a[2].as_str()).unwrap();
    // The statuses are typed like the functions' results: a mismatch would not compile.
    let ok: i32 = FQ_OK;
    let bias: i64 = FQ_TRY_BIAS;
    assert_eq!(bias, 1i64 << 32);
    unsafe {
        assert_eq!(fq_abi_version(), FQ_ABI_VERSION as u32);
        let mut q: *mut fq_queue = std::ptr::null_mut();
        assert_eq!(fq_open(name.as_ptr(), &mut q), ok);
        let mut buf = vec![0u8; max as usize];
        for i in 0..count {
            let want = fill(i, max);
            if role == "put" {
                let s: i32 = fq_put(q, want.as_ptr().cast(), want.len() as u64, 30_000_000_000);
                assert_eq!(s, FQ_OK, "put {}", i);
            } else {
                let mut len = 0u64;
                let s = fq_get(q, buf.as_mut_ptr().cast(), max, &mut len, 30_000_000_000);
                assert!(s == FQ_OK, "get {}: status {}", i, s);
                assert!(buf[..len as usize] == want[..], "message {} from Python differs", i);
            }
        }
        if role == "get" {
            let empty: i64 = fq_try_get(q, buf.as_mut_ptr().cast(), max);
            assert_eq!((empty + FQ_TRY_BIAS) as i32, FQ_EMPTY);
        }
        fq_close(q);
    }
    println!("rust peer: ok {}", count);
}
"""


@pytest.fixture(scope="module")
def rust_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Rust peer, built with rustc over ``bindgen fastqueue.h``, linked to the library."""
    bindgen, rustc = shutil.which("bindgen"), shutil.which("rustc")
    _require(bindgen, "bindgen (cargo install bindgen-cli; libclang: apt-get install libclang-dev)")
    _require(rustc, "rustc")
    assert bindgen is not None and rustc is not None
    out = tmp_path_factory.mktemp("bindgen")
    header = Path(fastqueue.include_dir()) / "fastqueue.h"
    proc = subprocess.run(
        [bindgen, str(header), "-o", str(out / "bindings.rs")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"bindgen failed:\n{proc.stderr}"
    (out / "main.rs").write_text(RUST_PEER)
    library = os.path.realpath(fastqueue.library_path())
    cmd = [rustc, "--edition", "2021", "-O", str(out / "main.rs"), "-o", str(out / "peer")]
    cmd += ["-C", f"link-arg={library}", "-C", f"link-arg=-Wl,-rpath,{Path(library).parent}"]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "FQ_BINDINGS_DIR": str(out)},
    )
    assert proc.returncode == 0, f"rustc failed on bindgen's output:\n{proc.stderr}"
    return out


def _bindgen_consts(bindings: str) -> dict[str, tuple[str, int]]:
    """``pub const FQ_X: T = V;`` of bindgen's output, with T resolved through its type aliases
    (an unnamed enum becomes ``pub type _bindgen_ty_N = ::std::os::raw::c_int;``)."""
    aliases = dict(re.findall(r"pub type (\w+) = (?:::std::os::raw::)?(\w+);", bindings))
    rust = {"c_int": "i32", "c_uint": "u32", "c_long": "i64", "c_ulong": "u64"}
    found = {}
    for name, typ, value in re.findall(r"pub const (FQ_\w+): (\w+) = (-?\d+);", bindings):
        typ = aliases.get(typ, typ)
        found[name] = (rust.get(typ, typ), int(value))
    return found


def test_bindgen_types_every_constant_of_the_header(rust_peer: Path) -> None:
    consts = _bindgen_consts((rust_peer / "bindings.rs").read_text())
    header = _cheader.constants()
    assert {k: v for k, (_, v) in consts.items()} == header
    statuses = {k: t for k, (t, _) in consts.items() if re.fullmatch(r"FQ_(ERR_\w+|[A-Z]+)", k)}
    assert set(statuses.values()) == {"i32"}, statuses  # as fq_put & co. return int32_t
    assert consts["FQ_TRY_BIAS"] == ("i64", 1 << 32)  # as fq_try_get returns int64_t


@pytest.mark.timeout(300)
def test_bindgen_exchanges_messages_with_python(rust_peer: Path, qname: NameFactory) -> None:
    _lengths_covered()
    name = qname()
    with fastqueue.Queue(name, element_size=MAX_MSG, capacity=CAPACITY):
        for rust_role, py_role in (("get", "put"), ("put", "get")):
            rust = subprocess.Popen(
                [str(rust_peer / "peer"), rust_role, name, str(COUNT), str(MAX_MSG)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            python = _python_peer(py_role, name)
            assert "rust peer: ok" in _finish(rust, f"the Rust peer ({rust_role})")
            assert "python peer: ok" in _finish(python, f"the Python peer ({py_role})")
