"""Checks of the arguments every queue class takes (names, sizes, timeouts, modes, buffers),
before anything reaches the library: each rejects with a :class:`~fastqueue.FastQueueError`
that is also the standard ``ValueError`` / ``TypeError``, and a message that names the argument,
the value given and what is allowed.

>>> check_timeout(-1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fastqueue.InvalidArgumentError: timeout=-1 is not allowed: it must be a number of seconds >= 0...
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from typing import Final

from . import _ffi
from ._errors import ArgumentTypeError, InvalidArgumentError, NoSpaceError, error_from_status

__all__ = [
    "MAX_CAPACITY",
    "MAX_ELEMENT_SIZE",
    "MAX_NAME",
    "SLICE_NS",
    "check_mode",
    "check_name",
    "check_size",
    "check_timeout",
    "limits_error",
    "not_bytes_like",
    "one_message_given",
    "slice_ns",
]

#: Longest single wait inside the library. A blocked put/get returns to Python this often, so
#: Ctrl-C (KeyboardInterrupt) and other signal handlers run within about this long. Each return
#: costs a little CPU (the library spins briefly before it sleeps again): a consumer blocked 2 s
#: burnt ~5 ms with 50 ms slices, ~2.7 ms with 100 ms, ~1.4 ms with 200 ms (perf/, same run).
SLICE_NS: Final = 100_000_000

#: Longest name the library takes, in bytes (fastqueue.h, "Names").
MAX_NAME: Final = 250
#: Largest value of the library's uint64 size parameters.
_U64_MAX: Final = 2**64 - 1
#: The library's limits on a queue's sizes (core/src/layout.rs: MAX_MSG, MAX_CAPACITY).
MAX_ELEMENT_SIZE: Final = 1 << 40
MAX_CAPACITY: Final = 1 << 32

_NAME_RULE: Final = (
    "a queue name is 1..250 bytes (a leading '/' not counted), has no '/' or NUL after that, "
    "and is not '.' or '..'"
)


def check_name(name: object) -> tuple[str, bytes]:
    """Validates a queue name; returns (name without leading '/', its bytes)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(
            f"name must be a str such as 'jobs', not {type(name).__name__} ({name!r})"
        )
    bare = name[1:] if name.startswith("/") else name
    if not bare or "/" in bare or "\0" in bare or bare in (".", ".."):
        raise InvalidArgumentError(f"name={name!r} is not allowed: {_NAME_RULE}")
    raw = os.fsencode(bare)
    if len(raw) > MAX_NAME:
        raise InvalidArgumentError(
            f"name={name[:20]!r}... is {len(raw)} bytes long, too long: {_NAME_RULE}"
        )
    return bare, raw


def check_size(value: object, what: str) -> int:
    """Validates element_size / capacity / max_items: an int (not bool) in 1..2**64-1."""
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{what} must be an int >= 1, not bool ({value!r})")
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(
            f"{what} must be an int >= 1, not {type(value).__name__} ({value!r})"
        ) from None
    if not 1 <= n <= _U64_MAX:
        raise InvalidArgumentError(f"{what}={n} is not allowed: it must be an int >= 1")
    return n


def check_timeout(timeout: float) -> float:
    """Validates a timeout in seconds; returns it as a float (inf for 'forever')."""
    if isinstance(timeout, (str, bytes)) or not isinstance(timeout, numbers.Real):
        raise ArgumentTypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__} "
            f"({timeout!r})"
        )
    t = float(timeout)
    if not t >= 0.0:  # also rejects NaN
        raise InvalidArgumentError(
            f"timeout={timeout!r} is not allowed: it must be a number of seconds >= 0, or None "
            f"to wait forever"
        )
    return t


def check_mode(mode: object) -> int:
    """Validates the permission bits of a new segment: an int in 0..0o777 in which the owner can
    read and write, and the group and others each can read and write or neither (execute bits
    are ignored). The library (fq_create) applies the same rule."""
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise ArgumentTypeError(
            f"mode must be an int such as 0o600, not {type(mode).__name__} ({mode!r})"
        )
    if not 0 <= mode <= 0o777:
        digits = str(mode)
        if mode > 0o777 and set(digits) <= set("01234567") and int(digits, 8) <= 0o777:
            # mode=644: the permission bits written without 0o, i.e. as a decimal number.
            meant = int(digits, 8)
            refusal = _mode_refusal(meant)
            also = "" if refusal is None else f" That one is refused too: {refusal}"
            raise InvalidArgumentError(
                f"mode={digits} is not allowed: permission bits are octal, and {digits} without "
                f"the 0o prefix is the decimal number {digits} (= {oct(mode)}, beyond 0o777); "
                f"did you mean mode=0o{digits}?{also}"
            )
        shown = digits if mode < 0 else oct(mode)
        raise InvalidArgumentError(
            f"mode={shown} is not allowed: it must be permission bits in 0..0o777, such as "
            f"0o600 (owner only) or 0o660 (owner and group)"
        )
    refusal = _mode_refusal(mode)
    if refusal is not None:
        raise InvalidArgumentError(f"mode={oct(mode)} is not allowed: {refusal}")
    return mode


def _mode_refusal(mode: int) -> str | None:
    """Why ``mode`` (in 0..0o777) is refused, or None. Read access is enough to take locks on
    the segment's file, which could lock others out, so none may read who cannot write; and
    write without read could never attach (the library's ``mode_allowed`` is the same rule)."""
    if mode & 0o060 == 0o040 or mode & 0o006 == 0o004:
        return (
            f"{oct(mode)} lets users read the queue who cannot write it, and read access would "
            "let them lock others out; use mode=0o600 (owner only), 0o660 (and the group) or "
            "0o666 (everyone)"
        )
    if mode & 0o600 != 0o600 or mode & 0o060 == 0o020 or mode & 0o006 == 0o002:
        # Write without read cannot attach (a mapping needs read), nor can an owner without both.
        return (
            f"{oct(mode)}: the owner must be able to read and write the queue, and whoever may "
            "write it must be able to read it too; use mode=0o600 (owner only), 0o660 (and the "
            "group) or 0o666 (everyone)"
        )
    return None


def slice_ns(remaining: float) -> int:
    """Nanoseconds to wait in the next library call: the rest of the timeout, at most one slice."""
    if remaining * 1e9 >= SLICE_NS:
        return SLICE_NS
    return max(1, math.ceil(remaining * 1e9))


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def _bytes_needed(size: int, cap: int) -> int:
    """The size of the segment of a queue of ``cap`` messages of ``size`` bytes, for sizes beyond
    the library's limits (which then cannot say it): core/src/layout.rs Geometry::new, in
    Python's unbounded ints."""
    ledger = 1024 * 32  # layout 4: the participants' ledger, after the ring, 128-aligned
    status, smallest = _ffi.segment_size(1, 1)  # header, participants, one slot, the ledger
    slots_offset = smallest - ledger - 128 if status == _ffi.OK else 0
    if size >= 64 * 1024 and 2 <= cap <= 1 << 16:  # the pooled layout
        end = _round_up(slots_offset + 64 * cap, 4096) + cap * _round_up(size, 4096)
    else:
        end = slots_offset + cap * _round_up(16 + size, 64)
    return _round_up(end, 128) + ledger


def limits_error(op: str, name: str | None, size: int, cap: int) -> Exception | None:
    """None if a queue of these sizes is within the library's limits; else the error to raise:
    :class:`~fastqueue.NoSpaceError` with the bytes it would need if they exceed the free shared
    memory (as for any queue too big for it), else InvalidArgumentError naming the limit."""
    if size <= MAX_ELEMENT_SIZE and cap <= MAX_CAPACITY:
        return None
    needed = _bytes_needed(size, cap)
    try:
        st = os.statvfs("/dev/shm")
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = 0
    if needed > free:
        exc = error_from_status(_ffi.ERR_NO_SPACE, op, name, needed=needed)
        assert isinstance(exc, NoSpaceError)
        return exc
    if size > MAX_ELEMENT_SIZE:
        return InvalidArgumentError(
            f"{op}: element_size={size} is not allowed: it must be at most {MAX_ELEMENT_SIZE} "
            f"(2**40) bytes"
        )
    return InvalidArgumentError(
        f"{op}: capacity={cap} is not allowed: it must be at most {MAX_CAPACITY} (2**32) messages"
    )


def one_message_given(op: str, items: bytes | bytearray | memoryview | str) -> ArgumentTypeError:
    """The error for ``put_many(b"...")``: one message (or a str) where a list of messages is
    expected. Iterating it would give one int (or character) per byte."""
    kind = type(items).__name__
    shown = repr(items) if isinstance(items, (bytes, str)) and len(items) <= 16 else "items"
    if isinstance(items, str):
        parts = "single characters"
        fix = f"pass [{shown}.encode()] for one message (or use fastqueue.ObjectQueue)"
    else:
        parts = "single bytes, as ints"
        fix = (
            f"pass [{shown}] for one message, or put_many({shown}, itemsize=k) for messages of "
            "k bytes each, back to back"
        )
    return ArgumentTypeError(
        f"{op}: a {kind} object was passed where a list of messages is expected (its items "
        f"would be {parts}); {fix}"
    )


def not_bytes_like(what: str, item: object) -> ArgumentTypeError:
    """The error for ``item`` given as ``what`` without the buffer protocol (or of an unusable
    layout); says to encode a str."""
    hint = ""
    if isinstance(item, str):
        hint = "; encode a str first, e.g. item.encode() (or use fastqueue.ObjectQueue)"
    return ArgumentTypeError(
        f"{what} must be a bytes-like object (bytes, bytearray, memoryview, a numpy array...), "
        f"not {type(item).__name__}{hint}"
    )
