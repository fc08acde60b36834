"""The header is the contract: ``core/include/fastqueue.h`` must say exactly what the library does.

The header is written by hand (it is the C programmer's reference documentation), so these tests
prove that it matches the code and fail as soon as either drifts:

* the ``fq_*`` functions the built library exports (``nm -D``), the ``extern "C"`` functions of
  ``core/src/ffi.rs`` and the prototypes of the header are the same set, with the same parameter
  names and types (Rust types mapped to C: ``u64`` -> ``uint64_t``, ``*const c_char`` ->
  ``const char *``, ``*mut *mut fq_queue`` -> ``fq_queue **``, ...);
* a C file generated from the Rust signatures assigns every function to a pointer of exactly the
  Rust-derived type, and compiles and links against the header and the library as C89, C99,
  C++11 and C++17 with ``-Wall -Wextra -Werror -pedantic`` (any type mismatch is an error);
* every ``FQ_*`` status constant equals the Rust ``Status`` value that names it, and
  ``fq_status_str`` knows it; ``FQ_ABI_VERSION`` and the ``FQ_STAT_*`` indices agree with Rust;
* every ctypes declaration of ``fastqueue._ffi`` (the Python binding) has the header's parameter
  count and types, and its status constants have the header's values.

``just header-check`` runs this file against a fresh ``cargo build``.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import _cheader
from fastqueue import _ffi, _ffibatch, _ffiheld, _library

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "core" / "include" / "fastqueue.h"
FFI_RS = ROOT / "core" / "src" / "ffi.rs"
STATUS_RS = ROOT / "core" / "src" / "status.rs"
QUEUE_RS = ROOT / "core" / "src" / "queue.rs"
PROC_TIMEOUT_S = 120.0
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the ELF exports of the Linux library"
)


# ----------------------------------------------------------------------------- types, canonically
#
# A C type is compared in one canonical spelling, "east const" with single spaces:
# `const char *` -> "char const *", `fq_queue **` -> "fq_queue * *", `const void **` ->
# "void const * *". Both the Rust and the C side are turned into it.

#: Rust scalar types -> C.
RUST_SCALARS = {
    "u8": "uint8_t",
    "u16": "uint16_t",
    "u32": "uint32_t",
    "u64": "uint64_t",
    "i8": "int8_t",
    "i16": "int16_t",
    "i32": "int32_t",
    "i64": "int64_t",
    "usize": "size_t",
    "isize": "ptrdiff_t",
    "c_char": "char",
    "c_int": "int",
    "c_uint": "unsigned int",
    "c_void": "void",
    "fq_queue": "fq_queue",
    "f32": "float",
    "f64": "double",
    "bool": "bool",
}

#: Words that belong to a C type (anything else at the end of a parameter is its name).
C_TYPE_WORDS = {
    "void",
    "char",
    "short",
    "int",
    "long",
    "unsigned",
    "signed",
    "float",
    "double",
    "bool",
    "_Bool",
    "fq_queue",
}


def rust_to_c(rust: str) -> str:
    """The canonical C spelling of a Rust FFI type (``*const c_char`` -> ``char const *``)."""
    t = " ".join(rust.replace("*", " * ").split())
    t = re.sub(r"\b(?:std::ffi|core::ffi|libc|std::os::raw)::", "", t)
    if t.startswith("* const "):
        return f"{rust_to_c(t[len('* const ') :])} const *"
    if t.startswith("* mut "):
        return f"{rust_to_c(t[len('* mut ') :])} *"
    if t in ("", "()"):
        return "void"
    assert t in RUST_SCALARS, f"no C equivalent known for the Rust type {rust!r}; add it here"
    return RUST_SCALARS[t]


def canonical_c(tokens: list[str]) -> str:
    """East-const spelling of a C type given as tokens (``['const', 'char', '*']``)."""
    words: list[str] = []
    base_const = False
    i = 0
    # Leading qualifiers and the base type's words.
    while i < len(tokens) and tokens[i] != "*":
        if tokens[i] == "const":
            base_const = True
        elif tokens[i] != "volatile":
            words.append(tokens[i])
        i += 1
    out = [" ".join(words)] + (["const"] if base_const else [])
    for tok in tokens[i:]:
        out.append(tok)
    # A top-level const (`char *const p`) is not part of a parameter's type.
    if out[-1] == "const" and len(out) > 1 and out[-2] == "*":
        out.pop()
    return " ".join(out)


# ----------------------------------------------------------------------------- the three sources


@dataclass(frozen=True)
class Signature:
    """A function of the ABI: name, canonical C return type, and (name, canonical C type) params."""

    name: str
    ret: str
    params: tuple[tuple[str, str], ...]

    def c_types(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.params)

    def c_pointer_decl(self, var: str) -> str:
        """``RET (*var)(PARAMS)`` in plain C, for the generated compile check."""

        def plain(canon: str) -> str:
            # "char const * *" is valid C as written (east const); just tidy the stars.
            return canon.replace(" *", "*").replace("*", " *").replace("* *", "**")

        params = ", ".join(plain(t) for t in self.c_types()) or "void"
        return f"{plain(self.ret)} (*{var})({params})"


def _strip_rust_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@cache
def rust_functions() -> dict[str, Signature]:
    """Every ``#[no_mangle] pub [unsafe] extern "C" fn`` of ffi.rs."""
    text = _strip_rust_comments(FFI_RS.read_text(encoding="utf-8"))
    found: dict[str, Signature] = {}
    pattern = re.compile(
        r"#\[(?:unsafe\()?no_mangle\)?\]\s*pub\s+(?:unsafe\s+)?extern\s+\"C\"\s+fn\s+(\w+)\s*"
        r"\((.*?)\)\s*(?:->\s*([^{]+?))?\s*\{",
        re.S,
    )
    for m in pattern.finditer(text):
        name, raw_params, raw_ret = m.group(1), m.group(2), m.group(3) or "()"
        params = []
        for p in (p.strip() for p in raw_params.split(",")):
            if not p:
                continue
            pname, _, ptype = p.partition(":")
            params.append((pname.strip().lstrip("_"), rust_to_c(ptype)))
        found[name] = Signature(name, rust_to_c(raw_ret), tuple(params))
    assert found, f'no extern "C" functions found in {FFI_RS}: has the parser gone stale?'
    # Every exported function must be #[no_mangle]: an extern "C" fn without it is not exported.
    plain = set(re.findall(r"pub\s+(?:unsafe\s+)?extern\s+\"C\"\s+fn\s+(\w+)", text))
    assert plain == set(found), f'extern "C" fns without #[no_mangle]: {plain - set(found)}'
    return found


def _strip_c(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r"^\s*#.*?(?<!\\)$", " ", text, flags=re.M)


def _c_param(decl: str) -> tuple[str, str]:
    tokens = re.findall(r"\w+|\*", decl)
    name = ""
    if len(tokens) > 1 and re.fullmatch(r"\w+", tokens[-1]):
        last = tokens[-1]
        if last not in C_TYPE_WORDS and last != "const" and not last.endswith("_t"):
            name = tokens.pop()
    return name, canonical_c(tokens)


@cache
def header_functions() -> dict[str, Signature]:
    """Every ``fq_*`` prototype of fastqueue.h."""
    text = _strip_c(HEADER.read_text(encoding="utf-8"))
    found: dict[str, Signature] = {}
    for m in re.finditer(r"([\w\s\*]+?)\b(fq_\w+)\s*\(([^()]*)\)\s*;", text):
        ret_tokens = [t for t in re.findall(r"\w+|\*", m.group(1)) if t != "extern"]
        name = m.group(2)
        raw = " ".join(m.group(3).split())
        params = [] if raw in ("", "void") else [_c_param(p) for p in raw.split(",")]
        assert name not in found, f"{name} is declared twice in {HEADER.name}"
        found[name] = Signature(name, canonical_c(ret_tokens), tuple(params))
    assert found, f"no fq_* prototypes found in {HEADER}: has the parser gone stale?"
    return found


def header_defines() -> dict[str, int]:
    """Every integer ``FQ_X`` constant of fastqueue.h (enumerators, static consts, defines)."""
    return _cheader.constants()


@cache
def rust_statuses() -> dict[str, int]:
    """``FQ_X`` -> value for every variant of ``enum Status`` (named in its doc comment)."""
    text = STATUS_RS.read_text(encoding="utf-8")
    body = re.search(r"pub enum Status\s*\{(.*?)\n\}", text, re.S)
    assert body, f"enum Status not found in {STATUS_RS}"
    found = {}
    for doc, variant, value in re.findall(
        r"((?:\s*///[^\n]*\n)+)\s*(\w+)\s*=\s*(-?\d+)\s*,", body.group(1)
    ):
        names = re.findall(r"`(FQ_\w+)`", doc)
        assert len(names) == 1, f"Status::{variant}: its doc must name its FQ_ constant once"
        found[names[0]] = int(value)
    assert found, "no Status variants parsed"
    return found


def rust_const(path: Path, name: str) -> int:
    found = re.search(rf"pub const {name}\s*:\s*\w+\s*=\s*(\d+)\s*;", path.read_text())
    assert found, f"const {name} not found in {path}"
    return int(found.group(1))


@cache
def exported_functions() -> set[str]:
    """``fq_*`` symbols the library Python loaded defines in its dynamic symbol table."""
    nm = shutil.which("nm")
    if nm is None:
        why = "no `nm` on PATH (binutils)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the header drift check")
        pytest.skip(why)
    out = subprocess.run(
        [nm, "-D", "--defined-only", _ffi.library_path()],
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT_S,
        check=True,
    ).stdout
    return {
        parts[-1]
        for parts in (line.split() for line in out.splitlines())
        if len(parts) >= 2 and parts[-1].startswith("fq_") and parts[-2] in "TtWiV"
    }


# ----------------------------------------------------------------------------- the parsers work


def test_type_mapping() -> None:
    assert rust_to_c("u64") == canonical_c(["uint64_t"]) == "uint64_t"
    assert rust_to_c("*const c_char") == canonical_c(["const", "char", "*"]) == "char const *"
    assert rust_to_c("*mut *mut fq_queue") == canonical_c(["fq_queue", "*", "*"])
    assert rust_to_c("*mut *const c_void") == canonical_c(["const", "void", "*", "*"])
    assert rust_to_c("*const fq_queue") == canonical_c(["fq_queue", "const", "*"])
    assert rust_to_c("* mut std::ffi::c_void") == "void *"
    assert canonical_c(["char", "*", "const"]) == "char *"
    assert rust_to_c("*const u64") != rust_to_c("*mut u64")
    assert _c_param("const uint64_t *lens") == ("lens", "uint64_t const *")
    assert _c_param("int64_t") == ("", "int64_t")
    assert _c_param("unsigned int n") == ("n", "unsigned int")


def test_parsers_find_the_known_functions() -> None:
    """Guards the parsers themselves: the functions every version of the ABI has are found."""
    core = {"fq_abi_version", "fq_status_str", "fq_create", "fq_open", "fq_put", "fq_get"}
    assert core <= set(rust_functions())
    assert core <= set(header_functions())
    assert header_functions()["fq_put"].params == (
        ("q", "fq_queue *"),
        ("data", "void const *"),
        ("len", "uint64_t"),
        ("timeout_ns", "int64_t"),
    )
    assert header_functions()["fq_abi_version"].params == ()
    assert header_defines()["FQ_ERR_NULL"] == -1


# ----------------------------------------------------------------------------- functions


def test_exports_rust_and_header_name_the_same_functions() -> None:
    exported, rust, header = exported_functions(), set(rust_functions()), set(header_functions())
    assert rust - header == set(), f"in ffi.rs but not declared in {HEADER.name}"
    assert header - rust == set(), f"declared in {HEADER.name} but not in ffi.rs"
    assert rust - exported == set(), (
        f"in ffi.rs but not exported by {_ffi.library_path()} (a stale build? run `just dev`)"
    )
    assert exported - rust == set(), f"exported by {_ffi.library_path()} but not in ffi.rs"


@pytest.mark.parametrize("name", sorted(rust_functions()))
def test_prototype_matches_rust(name: str) -> None:
    rust = rust_functions()[name]
    header = header_functions().get(name)
    assert header is not None, f"{name} is not declared in {HEADER.name}"
    assert header.ret == rust.ret, f"{name} returns {rust.ret!r} in Rust, {header.ret!r} in C"
    assert len(header.params) == len(rust.params), (
        f"{name} takes {len(rust.params)} parameters in Rust, {len(header.params)} in the header"
    )
    for i, ((rname, rtype), (hname, htype)) in enumerate(zip(rust.params, header.params)):
        assert htype == rtype, f"{name} parameter {i} ({rname}): Rust {rtype!r}, header {htype!r}"
        # The header's comments refer to parameters by name, so the names must agree too.
        assert hname == rname, f"{name} parameter {i}: named {rname!r} in Rust, {hname!r} in C"


def _require_compiler(var: str, default: str) -> str:
    tool = os.environ.get(var, default)
    path = shutil.which(tool)
    if path is None:
        why = f"no compiler {tool!r} on PATH (set {var} to use another)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the header checks")
        pytest.skip(why)
    return path


def signature_check_source() -> str:
    """A C/C++ program that binds every function to a pointer of its Rust-derived type."""
    lines = [
        "/* Generated by tests/test_header.py from core/src/ffi.rs. */",
        "#include <stddef.h>",
        '#include "fastqueue.h"',
        "",
        "int main(void) {",
    ]
    sigs = sorted(rust_functions().values(), key=lambda s: s.name)
    for s in sigs:
        lines.append(f"    {s.c_pointer_decl('p_' + s.name)} = {s.name};")
    lines.append("    int ok = 1;")
    for s in sigs:
        lines.append(f"    ok = ok && p_{s.name} != NULL;")
    # FQ_TRY_STATUS undoes the library's bias (fq_try_get of a NULL handle fails FQ_ERR_NULL).
    lines.append("    ok = ok && FQ_TRY_STATUS(fq_try_get(NULL, NULL, 0)) == FQ_ERR_NULL;")
    lines += ["    return ok && fq_abi_version() == FQ_ABI_VERSION ? 0 : 1;", "}", ""]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("var", "default", "std", "suffix"),
    [
        ("CC", "cc", "c89", ".c"),
        ("CC", "cc", "c99", ".c"),
        ("CXX", "c++", "c++11", ".cpp"),
        ("CXX", "c++", "c++17", ".cpp"),
    ],
    ids=["c89", "c99", "c++11", "c++17"],
)
def test_header_types_are_the_rust_types(
    tmp_path: Path, var: str, default: str, std: str, suffix: str
) -> None:
    """Every function, assigned to a pointer of exactly the type its Rust signature gives, compiles
    without a warning and links against the library: the header and ffi.rs agree type for type."""
    compiler = _require_compiler(var, default)
    src = tmp_path / f"signatures{suffix}"
    src.write_text(signature_check_source(), encoding="utf-8")
    exe = tmp_path / "signatures"
    lib = Path(_ffi.library_path()).resolve()
    cmd = [compiler, f"-std={std}", *STRICT, f"-I{HEADER.parent}", str(src), "-o", str(exe)]
    cmd += [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROC_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stderr}\n--- source:\n{src.read_text()}"
    run = subprocess.run([str(exe)], capture_output=True, timeout=PROC_TIMEOUT_S, check=False)
    assert run.returncode == 0


def test_signature_check_catches_a_wrong_type(tmp_path: Path) -> None:
    """The compile check is real: a prototype with one wrong type fails to compile."""
    compiler = _require_compiler("CC", "cc")
    params = (("q", "fq_queue *"), ("data", "void const *"), ("len", "uint32_t"), ("t", "int64_t"))
    bad = Signature("fq_put", "int32_t", params)
    src = tmp_path / "bad.c"
    src.write_text(
        f'#include "fastqueue.h"\nint main(void) {{\n    {bad.c_pointer_decl("p")} = fq_put;\n'
        "    return p == 0;\n}\n",
        encoding="utf-8",
    )
    cmd = [compiler, "-std=c99", *STRICT, f"-I{HEADER.parent}", "-c", str(src), "-o", "/dev/null"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROC_TIMEOUT_S, check=False)
    assert proc.returncode != 0, "a mismatched function pointer compiled without error"


# ----------------------------------------------------------------------------- constants


#: How a status constant is spelled: FQ_OK, FQ_<ONE WORD> (the outcomes: FQ_EMPTY, FQ_FULL...) or
#: FQ_ERR_<...>. Families of other constants have two words at least (FQ_STAT_PUTS,
#: FQ_WAIT_READABLE, FQ_ABI_VERSION).
STATUS_NAME = re.compile(r"FQ_(?:ERR_[A-Z0-9_]+|[A-Z0-9]+)")


def status_constants() -> dict[str, int]:
    """The header's status constants: FQ_OK, FQ_<outcome> and FQ_ERR_*."""
    return {k: v for k, v in header_defines().items() if STATUS_NAME.fullmatch(k)}


def test_constants_defined_in_ffi_rs_match() -> None:
    """Every ``pub const FQ_X`` of ffi.rs (FQ_OK, the FQ_WAIT_* flags...) has the header's value."""
    rust = {
        name: int(value)
        for name, value in re.findall(
            r"pub const (FQ_\w+)\s*:\s*\w+\s*=\s*(-?\d+)\s*;", FFI_RS.read_text()
        )
    }
    assert "FQ_OK" in rust, "no pub const FQ_* parsed from ffi.rs"
    header = header_defines()
    missing = sorted(set(rust) - set(header))
    assert not missing, f"defined in ffi.rs but not in {HEADER.name}: {missing}"
    wrong = {k: (header[k], v) for k, v in rust.items() if header[k] != v}
    assert not wrong, f"(header, ffi.rs) values differ: {wrong}"


def test_status_constants_match_rust() -> None:
    header, rust = status_constants(), rust_statuses()
    assert header.pop("FQ_OK") == rust_const(FFI_RS, "FQ_OK") == 0
    assert set(header) == set(rust), (
        f"only in the header: {sorted(set(header) - set(rust))}; "
        f"only in Rust's Status: {sorted(set(rust) - set(header))}"
    )
    wrong = {k: (header[k], rust[k]) for k in header if header[k] != rust[k]}
    assert not wrong, f"(header, Rust) values differ: {wrong}"
    assert len(set(rust.values())) == len(rust), "two statuses share a value"


def test_every_status_has_a_description() -> None:
    unknown = _ffi.status_str(-(2**31))
    assert unknown, "fq_status_str returned nothing for an unknown status"
    for name, value in sorted(status_constants().items()):
        text = _ffi.status_str(value)
        assert text and text != unknown, f"fq_status_str({name} = {value}) is {text!r}"


def test_abi_version_agrees_everywhere() -> None:
    header = header_defines()["FQ_ABI_VERSION"]
    assert header == rust_const(FFI_RS, "ABI_VERSION") == _ffi.ABI_VERSION
    assert _ffi.abi_version() == header


def test_stat_indices_match_rust() -> None:
    stats = {k: v for k, v in header_defines().items() if k.startswith("FQ_STAT_")}
    count = stats.pop("FQ_STAT_COUNT")
    assert sorted(stats.values()) == list(range(count)), f"FQ_STAT_* are not 0..{count - 1}"
    found = re.search(r"pub fn stats\(&self\) -> \[u64;\s*(\d+)\]", QUEUE_RS.read_text())
    assert found, f"Queue::stats not found in {QUEUE_RS}"
    assert int(found.group(1)) == count, "Queue::stats() returns another number of counters"
    assert len(_ffi.STAT_NAMES) <= count


def test_python_status_constants_match_header() -> None:
    """_ffi's OK / EMPTY / ... / ERR_* constants have the values of the header's FQ_ ones."""
    header = status_constants()
    python = {
        f"FQ_{k}": v
        for k, v in vars(_ffi).items()
        if re.fullmatch(r"OK|EMPTY|FULL|SHUTDOWN|TIMEOUT|ERR_[A-Z_]+", k) and isinstance(v, int)
    }
    assert {"FQ_OK", "FQ_EMPTY", "FQ_ERR_VERSION"} <= set(python)
    assert set(python) <= set(header), f"not in the header: {sorted(set(python) - set(header))}"
    wrong = {k: (header[k], v) for k, v in python.items() if header[k] != v}
    assert not wrong, f"(header, _ffi) values differ: {wrong}"


# ----------------------------------------------------------------------------- ctypes declarations


def _pointer_to(ctype: object) -> Callable[[object], bool]:
    return lambda t: isinstance(t, type) and issubclass(t, ctypes._Pointer) and t._type_ is ctype


def ctypes_accepts(canon: str) -> tuple[str, Callable[[object], bool]]:
    """(what is expected, predicate) for a ctypes type standing for the canonical C type."""
    ints: dict[str, object] = {
        "uint8_t": ctypes.c_uint8,
        "uint16_t": ctypes.c_uint16,
        "uint32_t": ctypes.c_uint32,
        "uint64_t": ctypes.c_uint64,
        "int8_t": ctypes.c_int8,
        "int16_t": ctypes.c_int16,
        "int32_t": ctypes.c_int32,
        "int64_t": ctypes.c_int64,
        "size_t": ctypes.c_size_t,
        "int": ctypes.c_int,
        "unsigned int": ctypes.c_uint,
    }
    if canon in ints:
        want = ints[canon]
        # c_int32 is c_int on Linux and so on: identity of the very same ctypes type.
        return f"c_{canon.removesuffix('_t').replace(' ', '')}", lambda t: t is want
    if canon == "void":
        return "None", lambda t: t is None
    if canon == "char const *":
        return "c_char_p", lambda t: t is ctypes.c_char_p
    assert canon.endswith("*"), canon
    pointee = canon[: -len("*")].strip().removesuffix("const").strip()
    if pointee in ("void", "fq_queue") or pointee.endswith("*"):
        # Untyped memory, the opaque handle, or a pointer to a pointer: an address.
        pointers_ok = pointee.endswith("*")
        return (
            "c_void_p" + (" or POINTER(c_void_p)" if pointers_ok else ""),
            lambda t: (
                t is ctypes.c_void_p
                or (pointers_ok and _pointer_to(ctypes.c_void_p)(t))
                or (pointee == "void" and t is ctypes.c_char_p)
            ),
        )
    expect, inner = ctypes_accepts(pointee)
    return (
        f"POINTER({expect}) or c_void_p",
        lambda t: t is ctypes.c_void_p or (isinstance(t, type) and _pointee_ok(t, inner)),
    )


def _pointee_ok(t: type, inner: Callable[[object], bool]) -> bool:
    return issubclass(t, ctypes._Pointer) and inner(t._type_)


def python_declarations() -> list[tuple[str, object]]:
    """Every fq_* function object _ffi declared, as (name, function): its module-level names, and
    what its CDLLs cached (``getattr(cdll, name)`` keeps the function object in the CDLL's
    ``__dict__``). A function may appear more than once (the same export declared for the
    GIL-releasing and the GIL-keeping loading of the library); each object is checked."""
    found: dict[int, tuple[str, object]] = {}
    # (The raw layer: _ffi and the modules it stands on, _library and _ffibatch.)
    values = [v for module in (_ffi, _library, _ffibatch, _ffiheld) for v in vars(module).values()]
    for value in values:
        if isinstance(value, ctypes.CDLL):
            for key, func in vars(value).items():
                if key.startswith("fq_"):
                    found[id(func)] = (key, func)
    for value in values:
        name = getattr(value, "__name__", "")
        if isinstance(name, str) and name.startswith("fq_") and hasattr(value, "argtypes"):
            found[id(value)] = (name, value)
    return sorted(found.values(), key=lambda nf: nf[0])


def declared_argtypes(func: object) -> tuple[str, object]:
    """(how, argument types) of a declared function: its ctypes ``argtypes``, or for a hot-path
    function called with prepared arguments (argtypes unset on purpose: ctypes then converts
    nothing) the ``wire_argtypes`` _ffi recorded, the C type each argument is prepared as."""
    argtypes = getattr(func, "argtypes", None)
    if argtypes is not None:
        return "argtypes", argtypes
    return "wire_argtypes", getattr(func, "wire_argtypes", None)


def test_python_declarations_match_header() -> None:
    declared = python_declarations()
    names = {name for name, _ in declared}
    assert {"fq_abi_version", "fq_put", "fq_get", "fq_create"} <= names, (
        f"could not find _ffi's ctypes declarations (found {sorted(names)})"
    )
    header = header_functions()
    problems = []
    for name, func in declared:
        sig = header.get(name)
        if sig is None:
            problems.append(f"{name}: declared in _ffi, not in {HEADER.name}")
            continue
        how, argtypes = declared_argtypes(func)
        if argtypes is None:
            problems.append(
                f"{name}: neither argtypes nor wire_argtypes (ctypes would guess every argument)"
            )
            continue
        if len(argtypes) != len(sig.params):  # type: ignore[arg-type]
            problems.append(f"{name}: {len(argtypes)} {how}, the header has {len(sig.params)}")  # type: ignore[arg-type]
            continue
        for i, (arg, (pname, ctype)) in enumerate(zip(argtypes, sig.params)):  # type: ignore[call-overload]
            expect, ok = ctypes_accepts(ctype)
            if not ok(arg):
                problems.append(f"{name} {how}[{i}] ({pname}: {ctype}): {arg!r}, expected {expect}")
        expect, ok = ctypes_accepts(sig.ret)
        if not ok(func.restype):  # type: ignore[attr-defined]
            problems.append(f"{name} restype ({sig.ret}): {func.restype!r}, expected {expect}")  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)


def test_hot_path_functions_are_found_and_checked() -> None:
    """The functions called with prepared arguments (argtypes unset) are among those checked
    above: at least fq_put and fq_get, each also declared with argtypes."""
    wire = {name for name, f in python_declarations() if declared_argtypes(f)[0] == "wire_argtypes"}
    plain = {name for name, f in python_declarations() if declared_argtypes(f)[0] == "argtypes"}
    assert {"fq_put", "fq_get"} <= wire <= plain


def test_ctypes_check_catches_a_wrong_declaration() -> None:
    """The ctypes check is real: a wrong width, a missing level of indirection are caught."""
    assert ctypes_accepts("uint64_t")[1](ctypes.c_uint64)
    assert not ctypes_accepts("uint64_t")[1](ctypes.c_int64)
    assert not ctypes_accepts("int64_t")[1](ctypes.c_int32)
    assert ctypes_accepts("uint64_t *")[1](ctypes.POINTER(ctypes.c_uint64))
    assert not ctypes_accepts("uint64_t *")[1](ctypes.POINTER(ctypes.c_uint32))
    assert not ctypes_accepts("uint64_t *")[1](ctypes.c_uint64)
    assert ctypes_accepts("fq_queue * *")[1](ctypes.POINTER(ctypes.c_void_p))
    assert not ctypes_accepts("fq_queue *")[1](ctypes.c_uint64)
    assert not ctypes_accepts("void")[1](ctypes.c_int)
