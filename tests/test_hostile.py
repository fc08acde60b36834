"""Hostile and broken input: segments that are truncated, foreign, of another layout version or
corrupted field by field (and by Hypothesis, byte by byte, across the whole header), C ABI calls
with NULL and nonsense arguments, and a queue too large for /dev/shm.

Every attach to a bad segment runs in a forked child (:func:`_stress_workers.run_forked`), so a
segfault, SIGBUS or hang of the library is reported as a failure of the attempt instead of taking
the test run down. A bad segment must give a clear exception (a ``fastqueue.FastQueueError``);
attaching may succeed only when the mutation changed nothing the opener depends on, and then
put/get must work or raise a fastqueue exception.

Reproduce: ``FASTQUEUE_LIBRARY=target/release/libfastqueue.so PYTHONPATH=py python -m pytest
tests/test_hostile.py -s``.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import struct
from collections.abc import Iterator
from ctypes import byref, c_uint64, c_void_p
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _cheader
import _stress_workers as w
import fastqueue
from conftest import remove_names, unique_prefix
from fastqueue import _ffi

SHM = Path("/dev/shm")
HEADER_FILE = Path(__file__).resolve().parents[1] / "core" / "include" / "fastqueue.h"
SEGMENT_ERRORS = {_ffi.ERR_BAD_SEGMENT, _ffi.ERR_VERSION, _ffi.ERR_NOT_READY}

#: Line 0 of the header (core/src/layout.rs, `Description`): name -> (offset, struct format).
FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "<Q"),
    "layout_version": (8, "<I"),
    "header_size": (12, "<I"),
    "capacity": (16, "<Q"),
    "max_msg": (24, "<Q"),
    "slot_stride": (32, "<Q"),
    "participants_offset": (40, "<Q"),
    "slots_offset": (48, "<Q"),
    "total_size": (56, "<Q"),
    "max_participants": (64, "<I"),
    "creator_pid": (68, "<I"),
    "pool_offset": (72, "<Q"),
    "buf_stride": (80, "<Q"),
    "flags": (88, "<I"),
    "leases": (96, "<Q"),
    "lease_offset": (104, "<Q"),
    "lease_stride": (112, "<Q"),
}
#: Bytes an opener relies on: the description (every field but the creator's pid).
MEANINGFUL_END = FIELDS["lease_stride"][0] + 8
#: Layout 4: the participants' ledger (1024 entries of 32 bytes) follows the slots, 128-aligned.
LEDGER_SIZE = 1024 * 32
MUTATED = {"segments": 0, "attached": 0}


class Image:
    """The bytes of a real queue's segment (element_size 64, capacity 5, two messages queued)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fields = {k: struct.unpack_from(f, data, off)[0] for k, (off, f) in FIELDS.items()}
        self.header_size: int = self.fields["header_size"]

    def self_consistent(self, data: bytes) -> bool:
        """Whether the description in ``data`` is one the library itself could have written for
        a file of len(data) bytes: the constants of this layout, and sizes and offsets that
        agree with each other (fq_segment_size is the authority for the total). Line 0 carries
        no checksum, so such a corruption (e.g. max_msg 64 -> 63, which still fits the slots)
        cannot be told from a genuine queue, and attaching to it is right."""
        f = {k: struct.unpack_from(fmt, data, off)[0] for k, (off, fmt) in FIELDS.items()}
        constants = ("magic", "layout_version", "header_size", "participants_offset")
        constants += ("slots_offset", "max_participants", "pool_offset", "buf_stride")
        constants += ("flags", "leases", "lease_offset", "lease_stride")
        if any(f[k] != self.fields[k] for k in constants):
            return False
        status, total = _ffi.segment_size(f["max_msg"], f["capacity"])
        return (
            status == _ffi.OK
            and total == f["total_size"] <= len(data)
            and f["slot_stride"] == -(-(16 + f["max_msg"]) // 64) * 64  # the inline layout's
            and total
            == -(-(f["slots_offset"] + f["capacity"] * f["slot_stride"]) // 128) * 128 + LEDGER_SIZE
        )

    def with_field(self, field: str, value: int) -> bytes:
        off, fmt = FIELDS[field]
        data = bytearray(self.data)
        struct.pack_into(fmt, data, off, value)
        return bytes(data)


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    name = unique_prefix("hostile-image")
    try:
        with fastqueue.Queue(name, element_size=64, capacity=5) as q:
            q.put(b"first")
            q.put(b"second")
            img = Image((SHM / name).read_bytes())
    finally:
        remove_names([name])
    # The field table above must describe the library's layout.
    assert img.fields["magic"] == int.from_bytes(b"FASTQUE1", "little")
    assert img.fields["layout_version"] == _ffi.layout_version()
    assert (img.fields["capacity"], img.fields["max_msg"]) == (5, 64)
    assert img.fields["total_size"] == len(img.data) == _ffi.segment_size(64, 5)[1]
    assert img.fields["creator_pid"] == os.getpid()
    assert 6 * 128 <= img.header_size <= img.fields["participants_offset"]
    yield img


@pytest.fixture
def segment_name() -> Iterator[str]:
    name = unique_prefix("hostile")
    yield name
    remove_names([name])
    (SHM / name).unlink(missing_ok=True)


def attach_to(name: str, data: bytes) -> tuple[Any, ...]:
    """Writes ``data`` as /dev/shm/<name>, attaches to it in a forked child and returns what
    happened there (see _stress_workers.attach_report). A crash or hang fails the test."""
    path = SHM / name
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    MUTATED["segments"] += 1
    try:
        kind, outcome = w.run_forked(lambda: w.attach_report(name))
    finally:
        path.unlink(missing_ok=True)
    assert kind == "ok", f"attaching to a bad segment {kind}: {outcome}"
    MUTATED["attached"] += outcome[0] == "attached"
    return outcome  # type: ignore[no-any-return]


def mutate(data: st.DataObject, image: bytes, offsets: st.SearchStrategy[int]) -> bytes:
    """``image`` with 1..8 bytes overwritten at offsets Hypothesis draws from ``offsets``."""
    mutations = data.draw(
        st.lists(st.tuples(offsets, st.integers(0, 255)), min_size=1, max_size=8),
        label="mutations",
    )
    mutated = bytearray(image)
    for offset, value in mutations:
        mutated[offset] = value
    return bytes(mutated)


def assert_refused(
    outcome: tuple[Any, ...], name: str, statuses: set[int] = SEGMENT_ERRORS
) -> None:
    assert outcome[0] == "error", f"attached to a bad segment: {outcome}"
    _, classes, message, status = outcome
    assert "FastQueueError" in classes and "SegmentError" in classes, outcome
    assert status in statuses, f"status {status} ({_ffi.status_str(status)}): {message}"
    assert name in message, message


def assert_usable(outcome: tuple[Any, ...]) -> None:
    assert outcome[0] == "attached", f"refused a segment whose description is intact: {outcome}"
    for op in outcome[3]:
        assert op == "ok" or {"FastQueueError", "Empty", "Full"} & set(op), (
            f"an operation on the attached segment raised a non-fastqueue exception: {outcome}"
        )


# ------------------------------------------------------------------------------ whole segments


@pytest.mark.timeout(60)
def test_truncated_segments_are_refused(image: Image, segment_name: str) -> None:
    data = image.data
    sizes = {
        0,
        1,
        64,
        image.header_size - 1,
        image.header_size,
        image.fields["slots_offset"],
        len(data) - 1,
    }
    for size in sorted(sizes):
        outcome = attach_to(segment_name, data[:size])
        assert_refused(outcome, segment_name)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "kind", ["zeros", "random", "text", "elf", "magic-only", "other-magic", "huge-claims"]
)
def test_foreign_segments_are_refused(image: Image, segment_name: str, kind: str) -> None:
    rnd = os.urandom(len(image.data))
    data = {
        "zeros": bytes(len(image.data)),
        "random": rnd,
        "text": (b"not a queue, just some text\n" * 1000),
        "elf": Path(_ffi.library_path()).read_bytes()[: 1 << 16],
        "magic-only": image.data[:8] + rnd[8:],
        "other-magic": b"FASTQUE2" + image.data[8:],
        "huge-claims": image.with_field("total_size", 1 << 62),
    }[kind]
    assert_refused(attach_to(segment_name, data), segment_name)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delta", [1, -1, 1000])
def test_another_layout_version_is_refused_as_such(
    image: Image, segment_name: str, delta: int
) -> None:
    version = (image.fields["layout_version"] + delta) % (1 << 32)
    outcome = attach_to(segment_name, image.with_field("layout_version", version))
    assert_refused(outcome, segment_name, {_ffi.ERR_VERSION})
    assert "layout" in outcome[2] and "version" in outcome[2], outcome[2]


def nasty_values(value: int, bits: int) -> list[int]:
    top = (1 << bits) - 1
    candidates = {0, 1, value - 1, value + 1, value * 2, value // 2, top, top >> 1, 1 << (bits - 1)}
    candidates |= {value ^ (1 << k) for k in (0, 3, 7, 12, 20, 31, bits - 1) if k < bits}
    return sorted(v for v in candidates if 0 <= v <= top and v != value)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("field", list(FIELDS))
def test_every_description_field_corrupted(image: Image, segment_name: str, field: str) -> None:
    bits = 8 * struct.calcsize(FIELDS[field][1])
    for value in nasty_values(image.fields[field], bits):
        data = image.with_field(field, value)
        outcome = attach_to(segment_name, data)
        if field == "creator_pid" or image.self_consistent(data):
            assert_usable(outcome)
        else:
            assert_refused(outcome, segment_name)


@pytest.mark.timeout(180)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_mutated_headers(image: Image, segment_name: str, data: st.DataObject) -> None:
    """Hypothesis overwrites 1..8 bytes anywhere in the header (all of its lines: the
    description, counters, wait words, statistics); the participant table and slots stay
    real. A description that is no longer self-consistent must be refused; otherwise (the
    mutation missed the description, hit the creator's pid or padding, or left it consistent)
    the queue must attach, and put/get must work or raise fastqueue exceptions."""
    header = image.header_size
    offsets = st.one_of(st.integers(0, MEANINGFUL_END + 3), st.integers(0, header - 1))
    mutated = mutate(data, image.data, offsets)
    outcome = attach_to(segment_name, mutated)
    if image.self_consistent(mutated):
        assert_usable(outcome)
    else:
        assert_refused(outcome, segment_name)


@pytest.mark.timeout(180)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_mutated_participants_and_slots(
    image: Image, segment_name: str, data: st.DataObject
) -> None:
    """Hypothesis overwrites bytes of the participant table and of the slots (state words,
    lengths, payloads) behind an intact header. The description is intact, so the queue must
    attach; whatever the corrupted slot states say, put/get (all with bounded waits) must
    return or raise fastqueue exceptions, never crash or hang."""
    start = image.fields["participants_offset"]
    slots = image.fields["slots_offset"]
    stride = image.fields["slot_stride"]
    # Mostly the slot headers (state word, length) and the table, sometimes any byte.
    slot_headers = st.builds(
        lambda i, j: slots + i * stride + j, st.integers(0, 4), st.integers(0, 15)
    )
    offsets = st.one_of(
        slot_headers, st.integers(start, slots - 1), st.integers(start, len(image.data) - 1)
    )
    assert_usable(attach_to(segment_name, mutate(data, image.data, offsets)))


#: A large-message queue: the pooled layout (slot headers, then a pool of page-aligned buffers).
POOLED_ELEMENT = 64 * 1024
POOLED_CAPACITY = 3


@pytest.fixture(scope="module")
def pooled_image() -> Iterator[Image]:
    name = unique_prefix("hostile-pooled")
    try:
        with fastqueue.Queue(name, element_size=POOLED_ELEMENT, capacity=POOLED_CAPACITY) as q:
            q.put(b"first" * 1000)
            q.put(b"second")
            img = Image((SHM / name).read_bytes())
    finally:
        remove_names([name])
    f = img.fields
    assert (f["slot_stride"], f["buf_stride"]) == (64, POOLED_ELEMENT)
    assert f["pool_offset"] % 4096 == 0 and f["pool_offset"] >= f["slots_offset"] + 3 * 64
    assert f["total_size"] == len(img.data) == f["pool_offset"] + 3 * f["buf_stride"] + LEDGER_SIZE
    assert f["total_size"] == _ffi.segment_size(POOLED_ELEMENT, POOLED_CAPACITY)[1]
    yield img


def pooled_slot(img: Image, i: int, offset: int) -> int:
    """Offset in the segment of byte ``offset`` of slot ``i``'s 64-byte header line: state word
    (0), length (8), buffer index (16), swap record (24)."""
    return int(img.fields["slots_offset"]) + i * 64 + offset


@pytest.mark.timeout(180)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_mutated_pooled_slots(
    pooled_image: Image, segment_name: str, data: st.DataObject
) -> None:
    """The same for a pooled queue: Hypothesis overwrites bytes of its slot lines (state words,
    lengths, buffer indices, swap records). A buffer index is never followed outside the pool:
    put/get return or raise fastqueue exceptions, never crash or hang."""
    offsets = st.builds(
        lambda i, j: pooled_slot(pooled_image, i, j),
        st.integers(0, POOLED_CAPACITY - 1),
        st.integers(0, 31),
    )
    assert_usable(attach_to(segment_name, mutate(data, pooled_image.data, offsets)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("index", [POOLED_CAPACITY, 1 << 40, (1 << 64) - 1])
def test_pooled_buffer_index_outside_the_pool_is_refused(
    pooled_image: Image, segment_name: str, index: int
) -> None:
    """Slot 0 holds the first message; its buffer index, corrupted to name no buffer, makes the
    get raise SegmentError (the message is not read from anywhere)."""
    mutated = bytearray(pooled_image.data)
    struct.pack_into("<Q", mutated, pooled_slot(pooled_image, 0, 16), index)
    outcome = attach_to(segment_name, bytes(mutated))
    assert outcome[0] == "attached", outcome
    put_nowait, get_nowait = outcome[3][:2]
    assert put_nowait == "ok"
    assert "SegmentError" in get_nowait, outcome


def test_report_mutated_segments() -> None:
    print(
        f"\n[hostile] {MUTATED['segments']} broken segments tried in child processes: "
        f"{MUTATED['segments'] - MUTATED['attached']} refused, {MUTATED['attached']} attached "
        f"(description intact or still self-consistent; put/get then worked or raised cleanly)"
    )


# ------------------------------------------------------------------------------ the C ABI


def header_define(name: str) -> int:
    """The value of the integer constant ``name`` in fastqueue.h (the ABI's reference)."""
    value = _cheader.constants().get(name)
    assert value is not None, f"{name} is not defined in {HEADER_FILE}"
    return value


def abi_battery(name: str) -> dict[str, Any]:
    """Calls every function of fastqueue.h with NULL and nonsense arguments (in a forked child:
    a crash shows as the child's death). Returns {call: result}."""
    lib = w.raw()
    enc = name.encode()
    r: dict[str, Any] = {}
    h, h2, out = c_void_p(), c_void_p(), c_void_p()
    u64 = c_uint64()
    buf = ctypes.create_string_buffer(64)
    big = 2**64 - 1

    r["create NULL name"] = lib.fq_create(None, 8, 1, 0o600, byref(out))
    r["create NULL out"] = lib.fq_create(enc, 8, 1, 0o600, None)
    for label, (msg, cap) in {
        "max_msg 0": (0, 1),
        "capacity 0": (1, 0),
        "max_msg 2^64-1": (big, 1),
        "capacity 2^64-1": (1, big),
        "size overflow": (1 << 40, 1 << 32),
    }.items():
        r[f"create {label}"] = lib.fq_create(enc, msg, cap, 0o600, byref(out))
    for bad in (b"", b"/", b"a/b", b"x" * 251, b"."):
        r[f"create name {bad[:8]!r}"] = lib.fq_create(bad, 8, 1, 0o600, byref(out))
        r[f"open name {bad[:8]!r}"] = lib.fq_open(bad, byref(out))
    r["left behind"] = sorted(p.name for p in SHM.iterdir() if p.name.startswith(name))
    r["segment_size NULL"] = lib.fq_segment_size(1, 1, None)
    r["segment_size 2^64-1 x 2^64-1"] = lib.fq_segment_size(big, big, byref(u64))
    r["segment_size 0"] = lib.fq_segment_size(0, 1, byref(u64))
    r["open NULL name"] = lib.fq_open(None, byref(out))
    r["open missing"] = lib.fq_open(enc + b"-missing", byref(out))
    r["unlink NULL"] = lib.fq_unlink(None)
    r["unlink bad name"] = lib.fq_unlink(b"a/b")
    r["clone NULL"] = lib.fq_clone(None, byref(out))
    r["queries on NULL"] = (lib.fq_capacity(None), lib.fq_max_msg(None), lib.fq_size(None))
    lib.fq_close(None)
    r["status_str of nonsense"] = [lib.fq_status_str(s) is not None for s in (-999, 999, 2**31 - 1)]

    r["create"] = lib.fq_create(enc, 8, 2, 0o600, byref(h))
    r["open NULL out"] = lib.fq_open(enc, None)
    r["open"] = lib.fq_open(enc, byref(h2))
    r["clone NULL out"] = lib.fq_clone(h, None)
    count = header_define("FQ_STAT_COUNT")
    stats = (c_uint64 * 100)(*([0xDEAD] * 100))
    r["stats NULL q"] = lib.fq_stats(None, stats, count)
    r["stats NULL out"] = lib.fq_stats(h, None, count)
    r["stats NULL out, n 0"] = lib.fq_stats(h, None, 0)
    r["stats n 100"] = lib.fq_stats(h, stats, 100)
    r["stats beyond count"] = list(stats[count:100]) == [0] * (100 - count)
    r["put NULL q"] = lib.fq_put(None, b"x", 1, 0)
    r["put NULL data"] = lib.fq_put(h, None, 5, 0)
    r["put NULL data len 0"] = lib.fq_put(h, None, 0, 0)
    r["put too big"] = lib.fq_put(h, b"x" * 9, 9, 0)
    r["get NULL q"] = lib.fq_get(None, buf, 64, byref(u64), 0)
    r["get NULL buf"] = lib.fq_get(h, None, 64, byref(u64), 0)
    r["get NULL len"] = lib.fq_get(h, buf, 64, None, 0)
    r["get NULL buf cap 0"] = (lib.fq_get(h, None, 0, byref(u64), 0), u64.value)
    r["put 5"] = lib.fq_put(h, b"12345", 5, 0)
    u64.value = 0
    r["get small buffer"] = (lib.fq_get(h, buf, 2, byref(u64), 0), u64.value)
    r["get after small buffer"] = (lib.fq_get(h, buf, 64, byref(u64), 0), buf.raw[: u64.value])
    data, tok, tok2, length = c_void_p(), c_uint64(), c_uint64(), c_uint64()
    r["write_begin NULL q"] = lib.fq_write_begin(None, byref(data), byref(tok), 0)
    r["write_begin NULL data"] = lib.fq_write_begin(h, None, byref(tok), 0)
    r["write_begin NULL token"] = lib.fq_write_begin(h, byref(data), None, 0)
    r["commit unclaimed token"] = lib.fq_write_commit(h, 12345, 1)
    r["abort unclaimed token"] = lib.fq_write_abort(h, 12345)
    r["read_end unclaimed token"] = lib.fq_read_end(h, 12345)
    r["commit NULL q"] = lib.fq_write_commit(None, 0, 1)
    r["abort NULL q"] = lib.fq_write_abort(None, 0)
    r["read_end NULL q"] = lib.fq_read_end(None, 0)
    r["write_begin"] = lib.fq_write_begin(h, byref(data), byref(tok), 0)
    ctypes.memmove(data.value, b"abc", 3)
    r["read_end of a write token"] = lib.fq_read_end(h, tok.value)
    r["commit too long"] = lib.fq_write_commit(h, tok.value, 9)
    r["commit by another handle"] = lib.fq_write_commit(h2, tok.value, 3)
    r["abort by another handle"] = lib.fq_write_abort(h2, tok.value)
    r["commit"] = lib.fq_write_commit(h, tok.value, 3)
    r["commit again"] = lib.fq_write_commit(h, tok.value, 3)
    r["abort after commit"] = lib.fq_write_abort(h, tok.value)
    r["read_begin NULL q"] = lib.fq_read_begin(None, byref(data), byref(length), byref(tok2), 0)
    r["read_begin NULL data"] = lib.fq_read_begin(h, None, byref(length), byref(tok2), 0)
    r["read_begin NULL len"] = lib.fq_read_begin(h, byref(data), None, byref(tok2), 0)
    r["read_begin NULL token"] = lib.fq_read_begin(h, byref(data), byref(length), None, 0)
    r["read_begin"] = lib.fq_read_begin(h, byref(data), byref(length), byref(tok2), 0)
    r["read message"] = ctypes.string_at(data.value, length.value)
    r["commit of a read token"] = lib.fq_write_commit(h, tok2.value, 1)
    r["read_end by another handle"] = lib.fq_read_end(h2, tok2.value)
    r["read_end"] = lib.fq_read_end(h, tok2.value)
    r["read_end again"] = lib.fq_read_end(h, tok2.value)
    bias = _ffi.TRY_BIAS  # FQ_TRY_BIAS (test_header.py checks the macros against the library)
    r["try_put NULL q"] = lib.fq_try_put(None, b"x", 1)
    r["try_put NULL data"] = lib.fq_try_put(h, None, 5)
    r["try_put too big"] = lib.fq_try_put(h, b"x" * 9, 9)
    r["try_get NULL q"] = lib.fq_try_get(None, buf, 64) + bias
    r["try_get NULL buf"] = lib.fq_try_get(h, None, 64) + bias
    r["try_get empty"] = lib.fq_try_get(h, buf, 64) + bias
    r["try_put 0"] = lib.fq_try_put(h, None, 0)
    r["try_get NULL buf cap 0"] = lib.fq_try_get(h, None, 0)
    r["try_put 6"] = lib.fq_try_put(h, b"abcdef", 6)
    r["try_get small buffer"] = lib.fq_try_get(h, buf, 5) + bias
    r["try_get"] = (lib.fq_try_get(h2, buf, 64), buf.raw[:6])
    lens2 = (c_uint64 * 3)(2, 9, 1)
    r["try_put_many NULL q"] = lib.fq_try_put_many(None, lens2, 1, b"ab") + bias
    r["try_put_many NULL lens"] = lib.fq_try_put_many(h, None, 1, b"ab") + bias
    r["try_put_many NULL data"] = lib.fq_try_put_many(h, lens2, 1, None) + bias
    r["try_put_many too big"] = lib.fq_try_put_many(h, lens2, 2, b"x" * 11) + bias
    r["try_put_many none"] = lib.fq_try_put_many(h, lens2, 0, None)
    r["try_put_many 1 of 1"] = lib.fq_try_put_many(h, lens2, 1, b"ab")
    lens2[0], lens2[1] = 1, 1
    r["try_put_many 1 of 3 (full)"] = lib.fq_try_put_many(h, lens2, 3, b"cde")
    r["try_put_many 0 (full)"] = lib.fq_try_put_many(h, lens2, 1, b"f")
    many = (c_uint64 * 4)()
    r["try_get_many NULL q"] = lib.fq_try_get_many(None, buf, 64, many, 4) + bias
    r["try_get_many NULL lens"] = lib.fq_try_get_many(h, buf, 64, None, 4) + bias
    r["try_get_many small buffer"] = (lib.fq_try_get_many(h, buf, 1, many, 4) + bias, many[0])
    r["try_get_many"] = (lib.fq_try_get_many(h2, buf, 64, many, 4), list(many[:2]), buf.raw[:3])
    r["try_get_many empty"] = lib.fq_try_get_many(h, buf, 64, many, 4) + bias
    r["exact NULL q"] = lib.fq_try_get_many_exact(None, buf, 4, 4) + bias
    r["exact NULL buf"] = lib.fq_try_get_many_exact(h, None, 4, 4) + bias
    r["exact NULL count"] = lib.fq_get_many_exact(h, buf, 4, 4, None, 0)
    r["exact size overflow"] = lib.fq_get_many_exact(h, buf, big, 2, byref(u64), 0)
    r["exact NULL buf, nothing to hold"] = lib.fq_try_get_many_exact(h, None, 0, 4) + bias
    r["put abc, defg"] = (lib.fq_put(h, b"abc", 3, 0), lib.fq_put(h, b"defg", 4, 0))
    r["exact first of another size"] = (
        lib.fq_get_many_exact(h, buf, 4, 4, byref(u64), 0),
        u64.value,
    )
    r["try exact first of another size"] = lib.fq_try_get_many_exact(h, buf, 4, 4) + bias
    r["get abc"] = (lib.fq_get(h2, buf, 64, byref(u64), 0), buf.raw[: u64.value])
    r["try exact"] = (lib.fq_try_get_many_exact(h2, buf, 4, 4), buf.raw[:4])
    r["try exact empty"] = lib.fq_try_get_many_exact(h, buf, 4, 4) + bias
    r["noop NULL q"] = lib.fq_noop(None, None, 0, 0)
    r["noop"] = lib.fq_noop(h, None, 0, 0)
    r["put after all that"] = lib.fq_put(h, b"fine", 4, 0)
    r["get after all that"] = (lib.fq_get(h2, buf, 64, byref(u64), 0), buf.raw[: u64.value])
    r["size after all that"] = lib.fq_size(h)
    lib.fq_close(h2)
    lib.fq_close(h)
    r["unlink"] = lib.fq_unlink(enc)
    r["unlink again"] = lib.fq_unlink(enc)
    return r


@pytest.mark.timeout(60)
def test_c_abi_rejects_null_and_nonsense_arguments(segment_name: str) -> None:
    kind, r = w.run_forked(lambda: abi_battery(segment_name))
    assert kind == "ok", f"the C ABI battery {kind}: {r}"
    null, invalid, ok = _ffi.ERR_NULL, _ffi.ERR_INVALID, _ffi.OK
    expected: dict[str, Any] = {
        "create NULL name": null,
        "create NULL out": null,
        "create max_msg 0": invalid,
        "create capacity 0": invalid,
        "create max_msg 2^64-1": invalid,
        "create capacity 2^64-1": invalid,
        "create size overflow": invalid,
        "left behind": [],
        "segment_size NULL": null,
        "segment_size 2^64-1 x 2^64-1": invalid,
        "segment_size 0": invalid,
        "open NULL name": null,
        "open missing": _ffi.ERR_NOT_FOUND,
        "unlink NULL": null,
        "unlink bad name": invalid,
        "clone NULL": null,
        "queries on NULL": (0, 0, 0),
        "status_str of nonsense": [True, True, True],
        "create": ok,
        "open NULL out": null,
        "open": ok,
        "clone NULL out": null,
        "stats NULL q": null,
        "stats NULL out": null,
        "stats NULL out, n 0": ok,
        "stats n 100": ok,
        "stats beyond count": True,
        "put NULL q": null,
        "put NULL data": null,
        "put NULL data len 0": ok,
        "put too big": _ffi.ERR_TOO_BIG,
        "get NULL q": null,
        "get NULL buf": null,
        "get NULL len": null,
        "get NULL buf cap 0": (ok, 0),  # the empty message put above
        "put 5": ok,
        "get small buffer": (_ffi.ERR_BUFFER, 5),
        "get after small buffer": (ok, b"12345"),
        "write_begin NULL q": null,
        "write_begin NULL data": null,
        "write_begin NULL token": null,
        "commit unclaimed token": invalid,
        "abort unclaimed token": invalid,
        "read_end unclaimed token": invalid,
        "commit NULL q": null,
        "abort NULL q": null,
        "read_end NULL q": null,
        "write_begin": ok,
        "read_end of a write token": invalid,
        "commit too long": _ffi.ERR_TOO_BIG,
        "commit by another handle": invalid,
        "abort by another handle": invalid,
        "commit": ok,
        "commit again": invalid,
        "abort after commit": invalid,
        "read_begin NULL q": null,
        "read_begin NULL data": null,
        "read_begin NULL len": null,
        "read_begin NULL token": null,
        "read_begin": ok,
        "read message": b"abc",
        "commit of a read token": invalid,
        "read_end by another handle": invalid,
        "read_end": ok,
        "read_end again": invalid,
        "try_put NULL q": null,
        "try_put NULL data": null,
        "try_put too big": _ffi.ERR_TOO_BIG,
        "try_get NULL q": null,
        "try_get NULL buf": null,
        "try_get empty": _ffi.EMPTY,
        "try_put 0": ok,
        "try_get NULL buf cap 0": 0,  # the empty message: its length
        "try_put 6": ok,
        "try_get small buffer": _ffi.ERR_BUFFER,  # and the message stays queued:
        "try_get": (6, b"abcdef"),
        "try_put_many NULL q": null,
        "try_put_many NULL lens": null,
        "try_put_many NULL data": null,
        "try_put_many too big": _ffi.ERR_TOO_BIG,
        "try_put_many none": 0,
        "try_put_many 1 of 1": 1,
        "try_put_many 1 of 3 (full)": 1,  # capacity 2: "ab" and "c" fill it
        "try_put_many 0 (full)": 0,
        "try_get_many NULL q": null,
        "try_get_many NULL lens": null,
        "try_get_many small buffer": (_ffi.ERR_BUFFER, 2),  # "ab" needs 2 bytes; it stays
        "try_get_many": (2, [2, 1], b"abc"),
        "try_get_many empty": _ffi.EMPTY,
        "exact NULL q": null,
        "exact NULL buf": null,
        "exact NULL count": null,
        "exact size overflow": invalid,
        "exact NULL buf, nothing to hold": _ffi.EMPTY,
        "put abc, defg": (ok, ok),
        "exact first of another size": (_ffi.ERR_BUFFER, 3),  # it stays queued
        "try exact first of another size": _ffi.ERR_BUFFER,
        "get abc": (ok, b"abc"),
        "try exact": (1, b"defg"),
        "try exact empty": _ffi.EMPTY,
        "noop NULL q": null,
        "noop": ok,
        "put after all that": ok,
        "get after all that": (ok, b"fine"),
        "size after all that": 0,
        "unlink": ok,
        "unlink again": _ffi.ERR_NOT_FOUND,
    }
    for bad in (b"", b"/", b"a/b", b"x" * 251, b"."):
        expected[f"create name {bad[:8]!r}"] = invalid
        expected[f"open name {bad[:8]!r}"] = invalid
    wrong = {k: (r.get(k), v) for k, v in expected.items() if r.get(k) != v}
    assert not wrong, "call: (got, expected): " + "; ".join(f"{k}: {v}" for k, v in wrong.items())
    assert set(r) == set(expected)


# ------------------------------------------------------------------------------ no space


@pytest.mark.timeout(60)
def test_queue_too_large_for_dev_shm_fails_clearly_and_leaves_nothing(segment_name: str) -> None:
    st_ = os.statvfs(SHM)
    total = st_.f_blocks * st_.f_frsize
    assert total > 0, "/dev/shm has no size limit here: this test would exhaust memory"
    element_size = 1 << 36
    capacity = max(1, math.ceil(2 * total / element_size))
    status, needed = _ffi.segment_size(element_size, capacity)
    assert status == _ffi.OK and needed > total
    with pytest.raises(fastqueue.FastQueueError) as info:
        fastqueue.Queue(segment_name, element_size=element_size, capacity=capacity)
    assert not (SHM / segment_name).exists()
    exc = info.value
    assert isinstance(exc, (fastqueue.NoSpaceError, fastqueue.InvalidArgumentError)), repr(exc)
    message = str(exc)
    if isinstance(exc, fastqueue.NoSpaceError):
        assert str(needed) in message, f"the message does not say how much was needed: {message}"
        free = re.search(r"(\d+) bytes free", message)
        assert free, f"the message does not say how much is free: {message}"
        assert int(free.group(1)) <= total
    # The raw call, too: a status, nothing left behind.
    out = c_void_p()
    status = w.raw().fq_create(segment_name.encode(), element_size, capacity, 0o600, byref(out))
    assert status in (_ffi.ERR_NO_SPACE, _ffi.ERR_INVALID)
    assert not (SHM / segment_name).exists()
