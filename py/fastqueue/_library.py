"""The library and how to call it: finds and loads the fastqueue C library, checks its ABI
version, declares every exported function (``core/include/fastqueue.h``), prepares arguments
ahead for the hot path, and passes Python buffers to C without copying.

Together with :mod:`fastqueue._ffi` (the handle and its operations, which stands on this module)
this is the raw layer: the only modules of the package that import :mod:`ctypes`. It knows
nothing about exceptions or queue semantics (``_errors`` and ``queue`` do).

Finding the library: ``$FASTQUEUE_LIBRARY`` if set (a path to the shared library), otherwise the
copy bundled in the package's ``_native`` folder (:data:`NATIVE_DIR`, :data:`NATIVE_PATTERNS`).

The library is loaded with :class:`ctypes.CDLL`, which releases the GIL for the duration of every
call: a thread blocked in ``fq_get`` does not stop other Python threads. Calls that never wait
also go through a second loading as :class:`ctypes.PyDLL`, which keeps the GIL (cheaper), with
arguments prepared ahead (see "The hot path" below).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
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
from typing import Any, Callable, Final

__all__ = [
    "ABI_VERSION",
    "EMPTY",
    "ERR_BAD_SEGMENT",
    "ERR_BUFFER",
    "ERR_BUSY",
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
    "GET_COPY_LIMIT",
    "INTERRUPTED",
    "LIBRARY_ENV",
    "MAGIC",
    "NATIVE_DIR",
    "NATIVE_PATTERNS",
    "OK",
    "PYPY",
    "SHUTDOWN",
    "STAT_NAMES",
    "TEMP_PREFIX",
    "TIMEOUT",
    "TRY_BIAS",
    "WAIT_READABLE",
    "WAIT_WRITABLE",
    "abi_version",
    "array_arg",
    "as_c_buffer",
    "c_order_bytes",
    "copy_out",
    "get_errno",
    "layout_version",
    "lend",
    "library_path",
    "memory_room",
    "remove_leftover",
    "segment_size",
    "status_str",
    "u64_arg",
    "unlink",
    "unlink_force",
    "writable_buffer",
]

# ---------------------------------------------------------------------------------------------
# Where the library is looked for (the packaging decides its name in _native/; first match wins).
# ---------------------------------------------------------------------------------------------

#: The ABI version this binding was written against (FQ_ABI_VERSION of fastqueue.h).
ABI_VERSION: Final = 1
#: Environment variable naming the library to load instead of the bundled one.
LIBRARY_ENV: Final = "FASTQUEUE_LIBRARY"
#: Folder of the library bundled in the wheel.
NATIVE_DIR: Final = Path(__file__).resolve().parent / "_native"
#: Glob patterns, tried in order, for the bundled library in NATIVE_DIR: the wheel's
#: libfastqueue.so.<ABI> (build_backend/fastqueue_build.py), then an editable install's.
NATIVE_PATTERNS: Final = ("libfastqueue.so.*", "lib*.so", "*.so", "*.dylib", "*.dll", "*.pyd")

# ---------------------------------------------------------------------------------------------
# Status codes (fastqueue.h). Keep in sync with the header; _errors maps them to exceptions.
# ---------------------------------------------------------------------------------------------

OK: Final = 0
EMPTY: Final = 1
FULL: Final = 2
SHUTDOWN: Final = 3
TIMEOUT: Final = 4
INTERRUPTED: Final = 5
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
ERR_BUSY: Final = -16

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
    "redelivered",
    "leased",
    "abandoned",
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
_fq_unlink_force = _declare("fq_unlink_force", c_int32, c_char_p)
_fq_unlink_same = _declare("fq_unlink_same", c_int32, c_void_p, c_char_p)
_fq_remove_leftover = _declare("fq_remove_leftover", c_int32, c_char_p, POINTER(c_uint32))
_fq_memory_room = _declare("fq_memory_room", c_int32, _u64p)
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
# machine). The functions below are the same exports with argtypes left unset, called only with
# *prepared* arguments that ctypes passes on as they are: ``c_uint64.from_param(n)`` and the like
# (made once, reused where the value repeats: the handle, the timeout 0, common lengths),
# ``byref(...)`` of out-parameters and buffers, and bytes (a pointer to their data).
# ``wire_argtypes`` records each argument's C type; tests/test_header.py checks it as argtypes.
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
    """fq_unlink (only a fastqueue segment); returns the status."""
    return int(_fq_unlink(name))


def unlink_force(name: bytes) -> int:
    """fq_unlink_force (whatever the name holds); returns the status."""
    return int(_fq_unlink_force(name))


def remove_leftover(name: bytes) -> tuple[int, bool]:
    """fq_remove_leftover: (status, whether the leftover was removed)."""
    removed = c_uint32(0)
    status = int(_fq_remove_leftover(name, byref(removed)))
    return status, bool(removed.value)


#: The prefix of the temporary names of segments being created (``.fq-tmp-<pid>-<n>``), used
#: only where the kernel has no O_TMPFILE (see fq_remove_leftover).
TEMP_PREFIX: Final = ".fq-tmp-"


def memory_room() -> int:
    """fq_memory_room: the largest segment creation accepts now, memory-wise (bytes)."""
    out = c_uint64()
    _fq_memory_room(byref(out))
    return out.value


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


#: Messages up to this long are taken with fq_get into a reusable receive buffer and copied
#: from there into the bytes returned (two copies, one library call); longer ones are copied
#: once, straight out of their slot, between fq_read_begin and fq_read_end (two more calls).
#: Where the two cost the same was measured with perf/breakdown.py (see the commit message).
GET_COPY_LIMIT: Final = 64 << 10
#: fq_try_get returns ``status - TRY_BIAS`` when it takes no message (FQ_TRY_BIAS).
TRY_BIAS: Final = 1 << 32
#: n -> n as a prepared uint64 argument (the length argument of the bound fq_try_put).
u64_arg: Final = _u64_args
