"""The raw layer: loads the fastqueue C library and declares its ABI (``core/include/fastqueue.h``).

This is the only module of the package that imports :mod:`ctypes`. It knows where the library is,
what every exported function's signature is, and how to pass Python buffers to C without copying;
it knows nothing about exceptions or queue semantics (``_errors`` and ``queue`` do).

Finding the library: ``$FASTQUEUE_LIBRARY`` if set (a path to the shared library), otherwise the
copy bundled in the package's ``_native`` folder (:data:`NATIVE_DIR`, :data:`NATIVE_PATTERNS`).

The library is loaded with :class:`ctypes.CDLL`, which releases the GIL for the duration of every
call: a thread blocked in ``fq_get`` does not stop other Python threads. Calls that never wait
also go through a second loading as :class:`ctypes.PyDLL`, which keeps the GIL (cheaper), with
arguments prepared ahead (see "The hot path" below).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import struct
import sys
from array import array
from ctypes import (
    POINTER,
    byref,
    c_char_p,
    c_int32,
    c_int64,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Callable, ClassVar, Final

__all__ = [
    "ABI_VERSION",
    "EMPTY",
    "ERR_BAD_SEGMENT",
    "ERR_BUFFER",
    "ERR_CLOSED",
    "ERR_EXISTS",
    "ERR_INTERNAL",
    "ERR_INVALID",
    "ERR_NOT_FOUND",
    "ERR_NOT_READY",
    "ERR_NO_SPACE",
    "ERR_NULL",
    "ERR_OS",
    "ERR_PERMISSION",
    "ERR_TOO_BIG",
    "ERR_TOO_MANY",
    "ERR_VERSION",
    "FULL",
    "LIBRARY_ENV",
    "MAGIC",
    "NATIVE_DIR",
    "NATIVE_PATTERNS",
    "OK",
    "PYPY",
    "SHUTDOWN",
    "STAT_NAMES",
    "TIMEOUT",
    "WAIT_READABLE",
    "WAIT_WRITABLE",
    "Handle",
    "Lease",
    "as_c_buffer",
    "c_order_bytes",
    "copy_out",
    "create",
    "get_errno",
    "layout_version",
    "lend",
    "library_path",
    "observe",
    "open_",
    "segment_size",
    "status_str",
    "unlink",
    "writable_buffer",
]

# ---------------------------------------------------------------------------------------------
# Where the library is looked for. The packaging (pyproject / maturin) decides the file name
# inside _native/; every pattern below is tried in order, the first match wins.
# ---------------------------------------------------------------------------------------------

#: The ABI version this binding was written against (FQ_ABI_VERSION of fastqueue.h).
ABI_VERSION: Final = 1
#: Environment variable naming the library to load instead of the bundled one.
LIBRARY_ENV: Final = "FASTQUEUE_LIBRARY"
#: Folder of the library bundled in the wheel.
NATIVE_DIR: Final = Path(__file__).resolve().parent / "_native"
#: Glob patterns, tried in order, for the bundled library inside NATIVE_DIR.
NATIVE_PATTERNS: Final = ("lib*.so", "*.so", "lib*.dylib", "*.dylib", "*.dll", "*.pyd")

# ---------------------------------------------------------------------------------------------
# Status codes (fastqueue.h). Keep in sync with the header; _errors maps them to exceptions.
# ---------------------------------------------------------------------------------------------

OK: Final = 0
EMPTY: Final = 1
FULL: Final = 2
SHUTDOWN: Final = 3
TIMEOUT: Final = 4
ERR_NULL: Final = -1
ERR_INVALID: Final = -2
ERR_TOO_BIG: Final = -3
ERR_BUFFER: Final = -4
ERR_EXISTS: Final = -5
ERR_NOT_FOUND: Final = -6
ERR_PERMISSION: Final = -7
ERR_NO_SPACE: Final = -8
ERR_BAD_SEGMENT: Final = -9
ERR_VERSION: Final = -10
ERR_NOT_READY: Final = -11
ERR_TOO_MANY: Final = -12
ERR_OS: Final = -13
ERR_INTERNAL: Final = -14
ERR_CLOSED: Final = -15

#: fq_wait(): until a get could take a message / a put could claim a slot.
WAIT_READABLE: Final = 1
WAIT_WRITABLE: Final = 2

#: The first 8 bytes of every fastqueue segment (its magic, a little-endian u64 at offset 0).
MAGIC: Final = b"FASTQUE1"

#: Names of the counters fq_stats() reports, in FQ_STAT_* index order.
STAT_NAMES: Final = (
    "puts",
    "gets",
    "full_hits",
    "empty_hits",
    "recoveries",
    "reclaimed",
    "depth",
    "skipped",
    "lost",
    "tasks_done",
    "unfinished",
    "creator_pid",
    "segment_size",
    "shutdown",
    "getters_woken",
    "putters_woken",
    "getter_sleeps",
    "putter_sleeps",
)


def _find_library() -> Path:
    override = os.environ.get(LIBRARY_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ImportError(
                f"fastqueue: ${LIBRARY_ENV} is set to {override!r}, but no such file exists. "
                f"Point it at the built library (e.g. target/release/libfastqueue.so after "
                f"`cargo build --release -p fastqueue`), or unset it to use the bundled one."
            )
        return path
    for pattern in NATIVE_PATTERNS:
        found = sorted(NATIVE_DIR.glob(pattern))
        if found:
            return found[0]
    raise ImportError(
        f"fastqueue: the native library was not found: looked in {NATIVE_DIR} for "
        f"{' / '.join(NATIVE_PATTERNS)}, and ${LIBRARY_ENV} is not set. "
        f"Install a built package (`pip install fastqueue`), build one in place (`just dev`), "
        f"or set ${LIBRARY_ENV} to the path of libfastqueue.so."
    )


def _load(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path), use_errno=True)
    except OSError as exc:
        raise ImportError(
            f"fastqueue: could not load the native library {path}: {exc}. Rebuild it "
            f"(`just dev`) or reinstall the package (`pip install --force-reinstall fastqueue`)."
        ) from exc
    try:
        abi = lib.fq_abi_version
    except AttributeError as exc:
        raise ImportError(
            f"fastqueue: {path} is not the fastqueue library (it exports no fq_abi_version). "
            f"Check ${LIBRARY_ENV} or reinstall the package."
        ) from exc
    abi.argtypes = []
    abi.restype = c_uint32
    found = int(abi())
    if found != ABI_VERSION:
        raise ImportError(
            f"fastqueue: {path} implements C ABI version {found}, but this Python package needs "
            f"version {ABI_VERSION}. Install matching versions (`pip install --force-reinstall "
            f"fastqueue`), rebuild (`just dev`), or point ${LIBRARY_ENV} at a matching library."
        )
    return lib


_path: Final = _find_library()
_lib: Final = _load(_path)


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    try:
        func = getattr(_lib, name)
    except AttributeError as exc:
        raise ImportError(
            f"fastqueue: {_path} lacks {name}(): it is older than this Python package (same ABI "
            f"version {ABI_VERSION}, fewer functions). Rebuild (`just dev`), reinstall "
            f"(`pip install --force-reinstall fastqueue`), or point ${LIBRARY_ENV} at a "
            "current library."
        ) from exc
    func.argtypes = list(argtypes)
    func.restype = restype
    return func


_u64p = POINTER(c_uint64)
_voidpp = POINTER(c_void_p)

# Every function of fastqueue.h, in header order. fq_queue* is an opaque c_void_p.
_fq_abi_version = _declare("fq_abi_version", c_uint32)
_fq_layout_version = _declare("fq_layout_version", c_uint32)
_fq_status_str = _declare("fq_status_str", c_char_p, c_int32)
_fq_segment_size = _declare("fq_segment_size", c_int32, c_uint64, c_uint64, _u64p)
_fq_create = _declare("fq_create", c_int32, c_char_p, c_uint64, c_uint64, c_uint32, _voidpp)
_fq_open = _declare("fq_open", c_int32, c_char_p, _voidpp)
_fq_clone = _declare("fq_clone", c_int32, c_void_p, _voidpp)
_fq_close = _declare("fq_close", None, c_void_p)
_fq_unlink = _declare("fq_unlink", c_int32, c_char_p)
_fq_capacity = _declare("fq_capacity", c_uint64, c_void_p)
_fq_max_msg = _declare("fq_max_msg", c_uint64, c_void_p)
_fq_size = _declare("fq_size", c_uint64, c_void_p)
_fq_stats = _declare("fq_stats", c_int32, c_void_p, _u64p, c_uint32)
_fq_put = _declare("fq_put", c_int32, c_void_p, c_void_p, c_uint64, c_int64)
_fq_get = _declare("fq_get", c_int32, c_void_p, c_void_p, c_uint64, _u64p, c_int64)
_fq_try_put = _declare("fq_try_put", c_int32, c_void_p, c_void_p, c_uint64)
_fq_try_get = _declare("fq_try_get", c_int64, c_void_p, c_void_p, c_uint64)
_fq_try_put_many = _declare("fq_try_put_many", c_int64, c_void_p, _u64p, c_uint64, c_void_p)
_fq_try_get_many = _declare(
    "fq_try_get_many", c_int64, c_void_p, c_void_p, c_uint64, _u64p, c_uint64
)
_fq_write_begin = _declare("fq_write_begin", c_int32, c_void_p, _voidpp, _u64p, c_int64)
_fq_write_commit = _declare("fq_write_commit", c_int32, c_void_p, c_uint64, c_uint64)
_fq_write_abort = _declare("fq_write_abort", c_int32, c_void_p, c_uint64)
_fq_read_begin = _declare(
    "fq_read_begin", c_int32, c_void_p, POINTER(c_void_p), _u64p, _u64p, c_int64
)
_fq_read_end = _declare("fq_read_end", c_int32, c_void_p, c_uint64)
_fq_get_many_exact = _declare(
    "fq_get_many_exact", c_int32, c_void_p, c_void_p, c_uint64, c_uint64, _u64p, c_int64
)
_fq_try_get_many_exact = _declare(
    "fq_try_get_many_exact", c_int64, c_void_p, c_void_p, c_uint64, c_uint64
)
_fq_put_many = _declare("fq_put_many", c_int32, c_void_p, c_void_p, _u64p, c_uint64, c_int64, _u64p)
_fq_get_many = _declare(
    "fq_get_many", c_int32, c_void_p, c_void_p, c_uint64, _u64p, c_uint64, _u64p, c_int64
)
_fq_shutdown = _declare("fq_shutdown", c_int32, c_void_p, c_int32)
_fq_task_done = _declare("fq_task_done", c_int32, c_void_p, c_uint64)
_fq_join = _declare("fq_join", c_int32, c_void_p, c_int64)
_fq_observe = _declare("fq_observe", c_int32, c_char_p, _voidpp)
_fq_live_participants = _declare("fq_live_participants", c_uint64, c_void_p)
_fq_wait = _declare("fq_wait", c_int32, c_void_p, c_int32, c_int64)
_fq_wake = _declare("fq_wake", c_int32, c_void_p, c_int32)
_fq_noop = _declare("fq_noop", c_int32, c_void_p, c_void_p, c_uint64, c_int64)

# ---------------------------------------------------------------------------------------------
# The hot path: functions called with prepared arguments.
#
# A ctypes call with argtypes declared runs each argument through its type's from_param and
# builds a temporary argument object for it: two calls of fq_noop cost 714 ns that way, 253 ns
# with prepared arguments and the GIL kept (perf/breakdown.py, this project's 2-core test
# machine). The functions below are the same exports with argtypes left
# unset, called only with *prepared* arguments that ctypes passes on as they are: the results
# of ``c_uint64.from_param(n)`` and the like (made once and reused where the value repeats:
# the handle, the timeout 0, common lengths), ``byref(...)`` of out-parameters and buffers, and
# bytes (passed as a pointer to their data). ``wire_argtypes`` records the C type each argument
# is prepared as; tests/test_header.py checks it against the header as it checks argtypes.
#
# Calls that never wait (timeout 0, and the zero-copy bookkeeping) go through a second loading
# of the library as ctypes.PyDLL, whose calls keep the GIL: CDLL releases and re-takes the GIL
# around every call, a round trip that a call which returns within a microsecond does not need.
# Calls that may wait use the CDLL, so other threads run meanwhile. PyPy has no PyDLL (and no
# such round trip to save): there both are the CDLL.
# ---------------------------------------------------------------------------------------------

_lib_nogil: Final = ctypes.PyDLL(str(_path)) if hasattr(ctypes, "PyDLL") else _lib


def _declare_wire(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    # lib[name] makes a function object of its own (getattr would return _declare's, cached).
    func = lib[name]
    func.restype = restype
    func.wire_argtypes = argtypes  # type: ignore[attr-defined]
    return func


#: Prepared arguments of each C type (value -> an argument ctypes passes without conversion).
_arg_ptr: Final = c_void_p.from_param
_arg_u64: Final = c_uint64.from_param
_arg_i64: Final = c_int64.from_param
#: The prepared timeout 0 ("do not wait").
_NOW: Final = _arg_i64(0)


class _U64Args(dict[int, Any]):
    """n -> prepared uint64 argument; the first 4096 values asked for are kept for reuse
    (message lengths repeat). Reads and inserts are atomic, and the values immutable."""

    def __missing__(self, n: int) -> Any:
        arg = _arg_u64(n)
        if len(self) < 4096:
            self[n] = arg
        return arg


_u64_args: Final = _U64Args()

# Never wait (GIL kept):
_put_now = _declare_wire(_lib_nogil, "fq_put", c_int32, c_void_p, c_void_p, c_uint64, c_int64)
_get_now = _declare_wire(
    _lib_nogil, "fq_get", c_int32, c_void_p, c_void_p, c_uint64, _u64p, c_int64
)
_read_begin_now = _declare_wire(
    _lib_nogil, "fq_read_begin", c_int32, c_void_p, _voidpp, _u64p, _u64p, c_int64
)
_read_end_now = _declare_wire(_lib_nogil, "fq_read_end", c_int32, c_void_p, c_uint64)
_write_begin_now = _declare_wire(
    _lib_nogil, "fq_write_begin", c_int32, c_void_p, _voidpp, _u64p, c_int64
)
_write_commit_now = _declare_wire(
    _lib_nogil, "fq_write_commit", c_int32, c_void_p, c_uint64, c_uint64
)
_write_abort_now = _declare_wire(_lib_nogil, "fq_write_abort", c_int32, c_void_p, c_uint64)
_put_many_now = _declare_wire(
    _lib_nogil, "fq_put_many", c_int32, c_void_p, c_void_p, _u64p, c_uint64, c_int64, _u64p
)
_get_many_now = _declare_wire(
    _lib_nogil,
    "fq_get_many",
    c_int32,
    c_void_p,
    c_void_p,
    c_uint64,
    _u64p,
    c_uint64,
    _u64p,
    c_int64,
)
_noop_now = _declare_wire(_lib_nogil, "fq_noop", c_int32, c_void_p, c_void_p, c_uint64, c_int64)
# The fewest-argument forms, for the hot path of Queue.put / Queue.get (see Handle.bind_put).
_try_put_now = _declare_wire(_lib_nogil, "fq_try_put", c_int32, c_void_p, c_void_p, c_uint64)
_try_get_now = _declare_wire(_lib_nogil, "fq_try_get", c_int64, c_void_p, c_void_p, c_uint64)
_try_put_many_now = _declare_wire(
    _lib_nogil, "fq_try_put_many", c_int64, c_void_p, _u64p, c_uint64, c_void_p
)
_try_get_many_now = _declare_wire(
    _lib_nogil, "fq_try_get_many", c_int64, c_void_p, c_void_p, c_uint64, _u64p, c_uint64
)
_try_get_many_exact_now = _declare_wire(
    _lib_nogil, "fq_try_get_many_exact", c_int64, c_void_p, c_void_p, c_uint64, c_uint64
)
# May wait (GIL released):
_get_many_exact_wait = _declare_wire(
    _lib, "fq_get_many_exact", c_int32, c_void_p, c_void_p, c_uint64, c_uint64, _u64p, c_int64
)
_put_many_wait = _declare_wire(
    _lib, "fq_put_many", c_int32, c_void_p, c_void_p, _u64p, c_uint64, c_int64, _u64p
)
_get_many_wait = _declare_wire(
    _lib, "fq_get_many", c_int32, c_void_p, c_void_p, c_uint64, _u64p, c_uint64, _u64p, c_int64
)
_put_wait = _declare_wire(_lib, "fq_put", c_int32, c_void_p, c_void_p, c_uint64, c_int64)
_get_wait = _declare_wire(_lib, "fq_get", c_int32, c_void_p, c_void_p, c_uint64, _u64p, c_int64)
_write_begin_wait = _declare_wire(
    _lib, "fq_write_begin", c_int32, c_void_p, _voidpp, _u64p, c_int64
)
_read_begin_wait = _declare_wire(
    _lib, "fq_read_begin", c_int32, c_void_p, _voidpp, _u64p, _u64p, c_int64
)


def library_path() -> str:
    """The path of the loaded native library."""
    return str(_path)


def abi_version() -> int:
    """The C ABI version the loaded library was built with."""
    return int(_fq_abi_version())


def layout_version() -> int:
    """The segment layout version the loaded library creates and accepts."""
    return int(_fq_layout_version())


def status_str(status: int) -> str:
    """The library's English description of a status code."""
    raw: bytes | None = _fq_status_str(status)
    return raw.decode("utf-8", "replace") if raw else f"unknown status {status}"


def get_errno() -> int:
    """errno as the last library call on this thread left it (for ERR_OS)."""
    return ctypes.get_errno()


def segment_size(max_msg: int, capacity: int) -> tuple[int, int]:
    """(status, size in bytes of the segment fq_create would make)."""
    out = c_uint64(0)
    status = int(_fq_segment_size(max_msg, capacity, out))
    return status, int(out.value)


def unlink(name: bytes) -> int:
    """fq_unlink; returns the status."""
    return int(_fq_unlink(name))


def array_arg(lens: array[int]) -> Any:
    """A prepared pointer argument to the items of ``lens``, for :meth:`Handle.put_many` (valid
    while ``lens`` lives and is not resized)."""
    return _arg_ptr(lens.buffer_info()[0])


def lend(address: int, n: int) -> memoryview:
    """A writable memoryview (format ``B``) of ``n`` bytes of library memory at ``address``,
    e.g. a slot lent by :meth:`Handle.write_begin` / :meth:`Handle.read_begin`. It does not own
    the memory: use it only until the matching commit / abort / read_end."""
    if n == 0:
        return memoryview(bytearray())
    return memoryview((ctypes.c_char * n).from_address(address)).cast("B")


#: Running on PyPy, which differs where this package cares: no reference counting (a handle is
#: freed when the GC runs, not when it is dropped), and memoryview.tobytes() (7.3.11) ignores
#: the strides of a buffer exported by a C extension (a strided numpy view).
PYPY: Final = platform.python_implementation() == "PyPy"


#: struct's codes for one native element (PyPy's struct fails badly on numpy's other codes).
_STRUCT_CODES: Final = frozenset("?bBhHiIlLqQnNefdcP")


def c_order_bytes(item: object, view: memoryview) -> bytes:
    """The bytes of `view` (a view of `item`) in C order, as ``view.tobytes()`` gives them on
    CPython. On PyPy a non-contiguous view is copied by the exporting object's own ``tobytes()``
    (numpy) when the view shows all of it, else element by element with :mod:`struct`; a format
    struct does not know then raises TypeError rather than send wrong bytes."""
    if not PYPY or view.c_contiguous:
        return view.tobytes()
    for owner in (item, getattr(view, "obj", None)):
        own = getattr(owner, "tobytes", None)
        if owner is None or isinstance(owner, memoryview) or not callable(own):
            continue
        with memoryview(owner) as whole:  # type: ignore[arg-type]
            same = (whole.format, whole.shape, whole.strides) == (
                view.format,
                view.shape,
                view.strides,
            )
        if same:
            data = own()
            if isinstance(data, bytes) and len(data) == view.nbytes:
                return data
    code = view.format.lstrip("@=")
    if len(code) == 1 and code in _STRUCT_CODES:

        def flatten(x: object) -> list[Any]:
            return [z for y in x for z in flatten(y)] if isinstance(x, list) else [x]

        return struct.pack(f"={view.nbytes // view.itemsize}{code}", *flatten(view.tolist()))
    raise TypeError(
        f"on PyPy, a non-contiguous buffer of format {view.format!r} cannot be copied "
        f"reliably; pass a contiguous copy instead (e.g. numpy.ascontiguousarray(...))"
    )


def copy_out(address: int, n: int) -> memoryview:
    """A writable copy (format ``B``) of ``n`` bytes of library memory at ``address``, in memory
    of its own, 16-byte aligned (so numpy arrays over slices of it at aligned offsets are
    aligned): one copy."""
    if PYPY:  # a bytearray's data is not malloc-aligned on PyPy; ctypes memory is
        buf = ctypes.create_string_buffer(n)
        if n:
            ctypes.memmove(buf, address, n)
        return memoryview(buf).cast("B")
    return memoryview(bytearray(lend(address, n)))


def as_c_buffer(item: object) -> tuple[object, int]:
    """Turns any bytes-like object into (a prepared ``data`` argument for :meth:`Handle.put`,
    its length in bytes).

    bytes pass as they are (no copy). Writable C-contiguous buffers (bytearray, numpy arrays,
    array.array, writable memoryviews) are lent to C without a copy. Read-only or non-contiguous
    buffers are copied once into bytes. Raises TypeError for objects without the buffer protocol.
    """
    if type(item) is bytes:
        return item, len(item)
    with memoryview(item) as view:  # type: ignore[arg-type]  # TypeError if not bytes-like
        n = view.nbytes
        if n == 0:
            return None, 0
        if view.readonly or not view.c_contiguous:
            return c_order_bytes(item, view), n
        # Zero-copy: a pointer to the first byte of the caller's buffer. The c_char holds its own
        # export of the buffer (and byref holds the c_char), so the caller's object cannot be
        # resized while C reads it. (One c_char rather than a c_char * n array: 161 ns against
        # 409 ns, and no array type to make for each new length.)
        return byref(ctypes.c_char.from_buffer(view.cast("B"))), n


def writable_buffer(item: object) -> tuple[object, int, Callable[[int], None] | None]:
    """(a prepared argument pointing at memory the library may write, its size in bytes, and
    None or a function ``copy_back(n)``) for receiving into ``item``, a writable, C-contiguous
    bytes-like object (TypeError otherwise).

    On CPython the memory is ``item``'s own (while the argument lives, ``item`` holds an export
    of its buffer, so it cannot be resized under the library) and ``copy_back`` is None. PyPy
    does not stop a bytearray from being resized while exported: there the library writes into
    memory of its own, and ``copy_back(n)`` copies its first n bytes into ``item``.
    """
    if type(item) is bytearray and item and not PYPY:  # the common case, shortest way
        return byref(ctypes.c_char.from_buffer(item)), len(item), None
    with memoryview(item) as view:  # type: ignore[arg-type]  # TypeError if not bytes-like
        if view.readonly:
            raise TypeError(f"a writable buffer is needed, not a read-only {type(item).__name__}")
        if not view.c_contiguous:
            raise TypeError("a C-contiguous buffer is needed (e.g. numpy.ascontiguousarray(...))")
        n = view.nbytes
        if not n:
            return None, 0, None
        if not PYPY:
            return byref(ctypes.c_char.from_buffer(view.cast("B"))), n, None
    stage = ctypes.create_string_buffer(n)

    def copy_back(k: int) -> None:
        with memoryview(item) as target:  # type: ignore[arg-type]
            target.cast("B")[:k] = memoryview(stage).cast("B")[:k]

    return byref(stage), n, copy_back


class Lease:
    """A zero-copy claim on one slot of a queue (a write from fq_write_begin, or a read from
    fq_read_begin) and the memory of the slot lent with it by :meth:`Handle.lend`.

    The claim is finished exactly once, by :meth:`finish`: a write is committed as a message of
    ``length`` bytes (aborted if ``length`` is None), a read is ended. :meth:`Handle.lend` calls
    it when the lent memory has no user left, i.e. when every memoryview of it (and anything
    made from one, such as a numpy array) is gone or released; the slot is never given back
    while its memory can still be read or written.
    """

    __slots__ = ("_h", "_token", "_write", "finished", "length", "status")

    def __init__(self, h: Handle, token: int, write: bool) -> None:
        self._h = h
        self._token = token
        self._write = write
        #: Bytes to publish (writes); None aborts.
        self.length: int | None = None
        self.finished = False
        #: The status of the commit / abort / read_end, once finished.
        self.status = OK

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        h, token = self._h, self._token
        if not self._write:
            self.status = h.read_end(token)
        elif self.length is None:
            self.status = h.write_abort(token)
        else:
            self.status = h.write_commit(token, self.length)


#: Messages up to this long are taken with fq_get into a reusable receive buffer and copied
#: from there into the bytes returned (two copies, one library call); longer ones are copied
#: once, straight out of their slot, between fq_read_begin and fq_read_end (two more calls).
#: Where the two cost the same was measured with perf/breakdown.py (see the commit message).
GET_COPY_LIMIT: Final = 64 << 10
#: fq_try_get returns ``status - TRY_BIAS`` when it takes no message (FQ_TRY_BIAS).
TRY_BIAS: Final = 1 << 32
#: n -> n as a prepared uint64 argument (the length argument of the bound fq_try_put).
u64_arg: Final = _u64_args

#: A receive buffer, the c_uint64 that receives a message's length, the c_void_p and c_uint64
#: that receive a lent message's address and token, and the four as prepared arguments (byref).
_Scratch = tuple["ctypes.Array[ctypes.c_char]", c_uint64, c_void_p, c_uint64, Any, Any, Any, Any]


class _Batch:
    """The receive side of one fq_get_many: a buffer for the messages, back to back, an
    ``array('Q')`` for their lengths, the count, and all as prepared arguments."""

    __slots__ = (
        "buf",
        "buf_arg",
        "cap_arg",
        "count",
        "count_arg",
        "lens",
        "lens_arg",
        "max_items",
        "now",
    )

    #: The buffer holds max_items messages of max_msg bytes, but at most this many bytes (and at
    #: least one message of up to GET_COPY_LIMIT bytes): get_many stops at a message that does
    #: not fit; a first message that does not fit is taken in place.
    MAX_BYTES: Final = 1 << 20
    #: To cut a buffer into equal-length messages: (length, count) -> (a Struct that unpacks
    #: them, the lengths array's bytes when all ``count`` lengths are ``length``).
    _splitters: ClassVar[dict[tuple[int, int], tuple[struct.Struct, bytes]]] = {}

    def __init__(self, max_msg: int, max_items: int) -> None:
        cap = max(min(max_msg, GET_COPY_LIMIT), min(max_items * max_msg, self.MAX_BYTES))
        self.max_items = max_items
        self.buf = ctypes.create_string_buffer(cap)
        self.buf_arg = byref(self.buf)
        self.cap_arg = _arg_u64(cap)
        self.lens = array("Q", bytes(8 * max_items))
        self.lens_arg = _arg_ptr(self.lens.buffer_info()[0])  # never resized
        self.count = c_uint64(0)
        self.count_arg = byref(self.count)
        #: max_items -> fq_try_get_many into this batch, every argument bound (one batch
        #: serves one handle: the pool is the handle's).
        self.now: dict[int, Callable[[], int]] = {}

    def messages(self, n: int) -> list[bytes]:
        """The ``n`` messages the last fq_get_many left in the buffer, as bytes."""
        first = self.lens[0]
        split = self._splitters.get((first, n))
        if split is None:
            split = (struct.Struct(f"{first}s" * n), first.to_bytes(8, sys.byteorder) * n)
            if len(self._splitters) < 256:
                self._splitters[(first, n)] = split
        # All of one length (the common case): one C call cuts them all. The lengths are
        # compared as bytes (perf/: 4x cheaper than counting them as ints).
        if self.lens.tobytes().startswith(split[1]):
            return list(split[0].unpack_from(self.buf))
        buf = self.buf
        out: list[bytes] = []
        start = 0
        for length in self.lens[:n]:
            end = start + length
            out.append(buf[start:end])  # type: ignore[arg-type]
            start = end
        return out


class _Exact:
    """The receive side of fq_get_many_exact for one handle, itemsize and count: the buffer
    (slicing it makes the bytes returned), and the non-waiting call with every argument
    bound."""

    __slots__ = ("buf", "buf_arg", "count", "count_arg", "max_arg", "size_arg", "take")

    #: At most this many bytes per call (max_items is cut down to fit, but is at least 1).
    MAX_BYTES: Final = 1 << 20

    @staticmethod
    def fitting(itemsize: int, max_items: int) -> int:
        """``max_items`` cut down so that the messages fit in MAX_BYTES (at least 1)."""
        return max(1, min(max_items, _Exact.MAX_BYTES // max(itemsize, 1)))

    def __init__(self, h: Handle, itemsize: int, max_items: int) -> None:
        self.buf = ctypes.create_string_buffer(max(1, itemsize * max_items))
        self.buf_arg = byref(self.buf)
        self.size_arg = _arg_u64(itemsize)
        self.max_arg = _arg_u64(max_items)
        self.count = c_uint64(0)
        self.count_arg = byref(self.count)
        self.take: Callable[[], int] = functools.partial(
            _try_get_many_exact_now, h._arg, self.buf_arg, self.size_arg, self.max_arg
        )


class Handle:
    """One attached fq_queue* and the per-handle objects its calls reuse.

    ``put`` and ``get`` are the hot path: the library is called with prepared arguments (see
    ``_declare_wire``), through the GIL-keeping loading when the call does not wait. The handle
    is freed by fq_close when this object is collected; the Python layer drops its last
    reference on close, so a call in flight on another thread (which holds a reference)
    finishes on a valid handle before it is freed.
    """

    __slots__ = (
        "__weakref__",
        "_arg",
        "_cap_arg",
        "_exact",
        "_free",
        "_lent_type",
        "_many",
        "_ptr",
        "_slot_type",
        "capacity",
        "max_msg",
    )

    def __init__(self, ptr: c_void_p) -> None:
        self._ptr: c_void_p | None = ptr
        #: The handle as a prepared argument.
        self._arg: Any = _arg_ptr(ptr.value)
        #: Capacity in messages and largest message in bytes, read once from the segment.
        self.capacity: int = int(_fq_capacity(ptr))
        self.max_msg: int = int(_fq_max_msg(ptr))
        # Size of the receive buffers of get (a longer message is read in place).
        cap = min(self.max_msg, GET_COPY_LIMIT)
        self._cap_arg: Any = _arg_u64(cap)
        # A ctypes array type of max_msg bytes, to lay over a slot lent by the library.
        self._slot_type: Any = ctypes.c_char * self.max_msg
        # Its subclass for memory lent to the caller (made when first needed): instances take
        # attributes and weak references.
        self._lent_type: Any = None
        # Pool of receive buffers (see _Scratch). list.pop()/append() are atomic, so threads
        # sharing this handle never share a buffer; a single thread reuses one entry forever.
        self._free: list[_Scratch] = []
        # The same for get_many.
        self._many: list[_Batch] = []
        # And for get_many_exact: (itemsize, max_items) -> pool of _Exact.
        self._exact: dict[tuple[int, int], list[_Exact]] = {}

    def put(self, data: object, n: int, timeout_ns: int) -> int:
        """fq_put of ``n`` bytes at ``data`` (bytes, None for n = 0, or what
        :func:`as_c_buffer` made); returns the status. Keeps the GIL when timeout_ns is 0."""
        if timeout_ns == 0:
            return _put_now(self._arg, data, _u64_args[n], _NOW)  # type: ignore[no-any-return]
        return _put_wait(self._arg, data, _u64_args[n], _arg_i64(timeout_ns))  # type: ignore[no-any-return]

    def get(self, timeout_ns: int) -> bytes | int:
        """One get: the message as bytes, or the status (EMPTY, or an error) as an int. Keeps
        the GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        buf, length, _, _, buf_arg, len_arg, _, _ = scratch
        if timeout_ns == 0:
            status = _get_now(self._arg, buf_arg, self._cap_arg, len_arg, _NOW)
        else:
            status = _get_wait(self._arg, buf_arg, self._cap_arg, len_arg, _arg_i64(timeout_ns))
        if status == OK:
            # The one copy out of the receive buffer: slicing a c_char array makes a bytes
            # object (typeshed says list).
            data: bytes | int = buf[: length.value]  # type: ignore[assignment]
        elif status == ERR_BUFFER:  # longer than the receive buffer (and than GET_COPY_LIMIT)
            data = self._get_in_place(scratch)
        else:
            data = int(status)
        free.append(scratch)
        return data

    def bind_put(self) -> Callable[[bytes, Any], int]:
        """fq_try_put with this handle bound, for the hot path: ``f(data, u64_arg[len(data)])``
        with ``data`` bytes; returns the status, never waits, keeps the GIL. The function keeps
        this handle (and so the library handle) alive while anyone holds it."""
        bound = functools.partial(_try_put_now, self._arg)
        bound.handle = self  # type: ignore[attr-defined]
        return bound

    def bind_put_packed(self, lens: array[int]) -> Callable[[bytes], int]:
        """fq_try_put_many with this handle and the lengths ``lens`` bound, for put_many's hot
        path: ``f(data)`` puts ``data`` (bytes, ``sum(lens)`` long) cut at ``lens``; returns the
        number of messages put (the first ones), or ``status - TRY_BIAS``. Never waits, keeps
        the GIL, keeps this handle (and ``lens``) alive while anyone holds it."""
        bound = functools.partial(
            _try_put_many_now, self._arg, array_arg(lens), _u64_args[len(lens)]
        )
        bound.handle = self  # type: ignore[attr-defined]
        bound.lens = lens  # type: ignore[attr-defined]
        return bound

    def bind_get(self) -> tuple[Any, Callable[[], int]]:
        """(receive buffer, fq_try_get into it with this handle bound): ``f()`` returns the
        length of the message now in the buffer (slice the buffer to get it as bytes), or
        ``status - TRY_BIAS`` (nothing taken; ERR_BUFFER for one longer than the buffer, which
        holds min(max_msg, GET_COPY_LIMIT) bytes). Never waits, keeps the GIL, and keeps this
        handle alive while anyone holds it. One pair serves one thread at a time."""
        buf = ctypes.create_string_buffer(min(self.max_msg, GET_COPY_LIMIT))
        bound = functools.partial(_try_get_now, self._arg, byref(buf), self._cap_arg)
        bound.handle = self  # type: ignore[attr-defined]
        return buf, bound

    def get_in_place(self) -> bytes | int:
        """Takes the next message (without waiting) with one copy, straight from its slot: for
        a message longer than the receive buffers. The message, or the status as an int."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        out = self._get_in_place(scratch)
        free.append(scratch)
        return out

    def _get_in_place(self, scratch: _Scratch) -> bytes | int:
        """Takes the next message (without waiting) with one copy, from its slot."""
        _, length, address, token, _, len_arg, address_arg, token_arg = scratch
        status = _read_begin_now(self._arg, address_arg, len_arg, token_arg, _NOW)
        if status != OK:
            return int(status)
        try:
            data: bytes = self._slot_type.from_address(address.value)[: length.value]
            return data
        finally:
            _read_end_now(self._arg, _arg_u64(token.value))

    def try_get_into(self, buf_arg: object, cap: int) -> int:
        """fq_try_get into the caller's memory (``buf_arg`` from :func:`writable_buffer`,
        ``cap`` bytes): the message's length, or ``status - TRY_BIAS``. Never waits, keeps the
        GIL."""
        return _try_get_now(self._arg, buf_arg, _u64_args[cap])  # type: ignore[no-any-return]

    def get_into(self, buf_arg: object, cap: int, timeout_ns: int) -> tuple[int, int]:
        """fq_get into the caller's memory (``buf_arg`` from :func:`writable_buffer`, ``cap``
        bytes): (status, the message's length; on ERR_BUFFER the length needed). Keeps the GIL
        when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        length, len_arg = scratch[1], scratch[5]
        if timeout_ns == 0:
            status = _get_now(self._arg, buf_arg, _u64_args[cap], len_arg, _NOW)
        else:
            status = _get_wait(self._arg, buf_arg, _u64_args[cap], len_arg, _arg_i64(timeout_ns))
        n = length.value
        free.append(scratch)
        return int(status), n

    def lend(self, address: int, n: int, lease: Lease) -> memoryview:
        """A writable memoryview (format ``B``) of the ``n`` bytes at ``address`` in this
        handle's mapping (a slot claimed as ``lease``). ``lease.finish()`` runs as soon as the
        memory has no user left: the view and every view or object made from it gone or
        released (with CPython's reference counting, at once). Until then the memory keeps this
        handle, and so the mapping, alive: closing the queue meanwhile unmaps nothing."""
        if self._lent_type is None:
            self._lent_type = type("LentSlot", (self._slot_type,), {"__del__": _finish_lease})
        memory = self._lent_type.from_address(address)
        memory.handle = self
        memory.lease = lease
        return memoryview(memory).cast("B")[:n]

    def _new_scratch(self) -> _Scratch:
        buf = ctypes.create_string_buffer(min(self.max_msg, GET_COPY_LIMIT))
        length, address, token = c_uint64(0), c_void_p(), c_uint64(0)
        return buf, length, address, token, byref(buf), byref(length), byref(address), byref(token)

    def size(self) -> int:
        """Approximate number of queued messages."""
        return int(_fq_size(self._ptr))

    def stats(self) -> tuple[int, ...]:
        """The segment's counters (fq_stats), in STAT_NAMES order."""
        out = (c_uint64 * len(STAT_NAMES))()
        _fq_stats(self._ptr, out, len(STAT_NAMES))
        return tuple(int(v) for v in out)

    def put_many(
        self, data: bytes, lens: array[int], timeout_ns: int, lens_arg: Any = None
    ) -> tuple[int, int]:
        """fq_put_many of ``data`` cut at ``lens`` (an ``array('Q')``; ``lens_arg``, if given,
        is :func:`array_arg` of it, made once for a lengths array that is reused); returns
        (status, number of messages put). Keeps the GIL when timeout_ns is 0."""
        done = c_uint64(0)
        if lens_arg is None:
            lens_arg = _arg_ptr(lens.buffer_info()[0])  # lens stays alive meanwhile
        if timeout_ns == 0:
            status = _put_many_now(
                self._arg, data, lens_arg, _u64_args[len(lens)], _NOW, byref(done)
            )
        else:
            status = _put_many_wait(
                self._arg, data, lens_arg, _u64_args[len(lens)], _arg_i64(timeout_ns), byref(done)
            )
        return int(status), done.value

    def get_many(self, max_items: int, timeout_ns: int) -> list[bytes] | int:
        """fq_get_many of up to ``max_items`` messages: the messages, or the status as an int.
        Keeps the GIL when timeout_ns is 0."""
        pool = self._many
        batch = pool.pop() if pool else None
        if batch is None or batch.max_items < max_items:
            batch = _Batch(self.max_msg, max_items)
        if timeout_ns == 0:
            take = batch.now.get(max_items)
            if take is None:  # the prepared call for this handle and count (kept: counts repeat)
                take = batch.now[max_items] = functools.partial(
                    _try_get_many_now,
                    self._arg,
                    batch.buf_arg,
                    batch.cap_arg,
                    batch.lens_arg,
                    _u64_args[max_items],
                )
            n = take()
            if n > 0:  # the common case, shortest way
                out: list[bytes] | int = batch.messages(n)
                pool.append(batch)
                return out
            status = n + TRY_BIAS
        else:
            status = _get_many_wait(
                self._arg,
                batch.buf_arg,
                batch.cap_arg,
                batch.lens_arg,
                _u64_args[max_items],
                batch.count_arg,
                _arg_i64(timeout_ns),
            )
        if status == OK:
            out = batch.messages(batch.count.value)
        elif status == ERR_BUFFER:  # the first message is longer than the buffer: in place
            one = self.get_in_place()
            out = [one] if isinstance(one, bytes) else one
        else:
            out = int(status)
        pool.append(batch)
        return out

    def exact_pool(self, itemsize: int, max_items: int) -> list[_Exact]:
        """The pool of get_many_exact buffers for ``itemsize`` and ``max_items`` (cut down as
        _Exact.fitting does): list.pop()/append() give each thread its own buffer. A caller
        may pop an entry, call ``entry.take()`` and put the entry back, as get_many_exact
        does (Queue.get_many's hot path)."""
        key = (itemsize, _Exact.fitting(itemsize, max_items))
        pool = self._exact.get(key)
        if pool is None:
            pool = self._exact.setdefault(key, [])
        return pool

    def get_many_exact(
        self, itemsize: int, max_items: int, timeout_ns: int
    ) -> bytes | int | tuple[int, int]:
        """fq_get_many_exact of up to ``max_items`` messages of exactly ``itemsize`` bytes (fewer
        if they would not fit in _Exact.MAX_BYTES): their bytes back to back; or the status as
        an int; or ``(ERR_BUFFER, length)`` when the first message has another length (it stays
        queued). Keeps the GIL when timeout_ns is 0."""
        pool = self.exact_pool(itemsize, max_items)
        entry = pool.pop() if pool else _Exact(self, itemsize, _Exact.fitting(itemsize, max_items))
        if timeout_ns == 0:
            n = entry.take()
            if n > 0:  # the common case, shortest way
                out: bytes | int | tuple[int, int] = entry.buf[: n * itemsize]  # type: ignore[assignment]
                pool.append(entry)
                return out
            status = n + TRY_BIAS
        if timeout_ns != 0 or status == ERR_BUFFER:  # (ERR_BUFFER: ask the way that tells
            # the length of the message in the way, without waiting)
            status = _get_many_exact_wait(
                self._arg,
                entry.buf_arg,
                entry.size_arg,
                entry.max_arg,
                entry.count_arg,
                _arg_i64(timeout_ns) if timeout_ns else _NOW,
            )
        count = entry.count.value
        if status == OK:
            out = entry.buf[: count * itemsize]  # type: ignore[assignment]
        elif status == ERR_BUFFER:
            out = (ERR_BUFFER, count)
        else:
            out = int(status)
        pool.append(entry)
        return out

    def shutdown(self, immediate: bool) -> int:
        """fq_shutdown; returns the status."""
        return int(_fq_shutdown(self._ptr, 1 if immediate else 0))

    def task_done(self, n: int) -> int:
        """fq_task_done; returns the status."""
        return int(_fq_task_done(self._ptr, n))

    def join(self, timeout_ns: int) -> int:
        """fq_join; returns the status (OK or TIMEOUT)."""
        return int(_fq_join(self._ptr, timeout_ns))

    def live_participants(self) -> int:
        """Processes attached whose liveness lock is held."""
        return int(_fq_live_participants(self._ptr))

    def wait(self, what: int, timeout_ns: int) -> int:
        """fq_wait (WAIT_READABLE / WAIT_WRITABLE): OK, TIMEOUT, SHUTDOWN or an error status.
        Takes and claims nothing."""
        return int(_fq_wait(self._ptr, what, timeout_ns))

    def wake(self, what: int) -> int:
        """fq_wake (WAIT_READABLE / WAIT_WRITABLE): passes on the wake-up a wait that returned
        OK may have used, for a caller that will not take or put after all. Returns OK."""
        return int(_fq_wake(self._ptr, what))

    def write_begin(self, timeout_ns: int) -> tuple[int, int, int]:
        """fq_write_begin: (status, address of the lent slot's max_msg bytes, token). Keeps
        the GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        _, _, address, token, _, _, address_arg, token_arg = scratch
        if timeout_ns == 0:
            status = _write_begin_now(self._arg, address_arg, token_arg, _NOW)
        else:
            status = _write_begin_wait(self._arg, address_arg, token_arg, _arg_i64(timeout_ns))
        out = int(status), address.value or 0, token.value
        free.append(scratch)
        return out

    def write_commit(self, token: int, n: int) -> int:
        """fq_write_commit: publishes the claimed slot as a message of ``n`` bytes."""
        return int(_write_commit_now(self._arg, _arg_u64(token), _u64_args[n]))

    def write_abort(self, token: int) -> int:
        """fq_write_abort: gives the claimed slot up (consumers skip it)."""
        return int(_write_abort_now(self._arg, _arg_u64(token)))

    def read_begin(self, timeout_ns: int) -> tuple[int, int, int, int]:
        """fq_read_begin: (status, address of the lent message, its length, token). Keeps the
        GIL when timeout_ns is 0."""
        free = self._free
        scratch = free.pop() if free else self._new_scratch()
        _, length, address, token, _, len_arg, address_arg, token_arg = scratch
        if timeout_ns == 0:
            status = _read_begin_now(self._arg, address_arg, len_arg, token_arg, _NOW)
        else:
            status = _read_begin_wait(
                self._arg, address_arg, len_arg, token_arg, _arg_i64(timeout_ns)
            )
        out = int(status), address.value or 0, length.value, token.value
        free.append(scratch)
        return out

    def read_end(self, token: int) -> int:
        """fq_read_end: returns the slot of a zero-copy read to producers."""
        return int(_read_end_now(self._arg, _arg_u64(token)))

    def reattach_after_fork(self) -> None:
        """In a child after fork(): switch to a handle of this process's own (fq_clone), so that
        crash recovery can tell the child from the parent, and close the inherited one (which
        never disturbs the parent). If cloning fails, the inherited handle stays in use."""
        old = self._ptr
        if old is None:
            return
        new = c_void_p()
        if _fq_clone(old, new) != OK:
            return
        self._ptr = new
        self._arg = _arg_ptr(new.value)
        # The batch buffers carry calls bound to the inherited handle, which is closed below:
        # drop them (the child has one thread, so nothing uses them meanwhile).
        self._many = []
        self._exact = {}
        _fq_close(old)

    def __del__(self, _close: Any = _fq_close) -> None:
        # Default argument: still bound at interpreter shutdown, when module globals are None.
        ptr = self._ptr
        if ptr is not None:
            self._ptr = None
            _close(ptr)


def create(name: bytes, max_msg: int, capacity: int, mode: int) -> tuple[int, Handle | None]:
    """fq_create; returns (status, handle or None)."""
    ptr = c_void_p()
    status = int(_fq_create(name, max_msg, capacity, mode, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def observe(name: bytes) -> tuple[int, Handle | None]:
    """fq_observe (sizes, stats and liveness only; not counted as a user); (status, handle)."""
    ptr = c_void_p()
    status = int(_fq_observe(name, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def open_(name: bytes) -> tuple[int, Handle | None]:
    """fq_open; returns (status, handle or None)."""
    ptr = c_void_p()
    status = int(_fq_open(name, ptr))
    if status != OK:
        return status, None
    return OK, Handle(ptr)


def _finish_lease(memory: Any, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
    """``__del__`` of the memory :meth:`Handle.lend` lends: its lease finishes when the last
    user of the memory is gone (with CPython's reference counting, at once; cheaper than a
    weakref.finalize per lend: perf/, zero-copy put+get of 8 B 7.7 -> 6.2 us). Memory still
    lent when the interpreter shuts down may be collected after the module's globals: its
    claim is then released by the library when the handle closes (or, if the process just
    ends, recovered by the others), so an error there is not reported."""
    try:
        memory.lease.finish()
    except Exception:
        if not _finalizing():
            raise
