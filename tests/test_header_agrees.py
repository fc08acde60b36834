"""Where ``core/include/fastqueue.h`` and the library once disagreed, called through the C ABI
(ctypes on the library the package loads, declared here from the header): observers never wait,
the mode rule (the same as Python's), what a shutdown does to join, fq_unlink_force on a
directory, the cases FQ_ERR_NOT_FOUND and FQ_ERR_INVALID list, and how to learn the size behind
fq_try_get's FQ_ERR_BUFFER."""

from __future__ import annotations

import ctypes
import os
import stat
import threading
from collections.abc import Callable, Iterator

import pytest

import _cheader
import fastqueue
from fastqueue import _args

NameFactory = Callable[[], str]
C = _cheader.constants()
SHM = "/dev/shm"
vp, i32, i64, u32, u64 = (
    ctypes.c_void_p,
    ctypes.c_int32,
    ctypes.c_int64,
    ctypes.c_uint32,
    ctypes.c_uint64,
)
u64p = ctypes.POINTER(u64)


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(fastqueue.library_path())
    for name, res, args in [
        ("fq_create", i32, [ctypes.c_char_p, u64, u64, u32, ctypes.POINTER(vp)]),
        ("fq_open", i32, [ctypes.c_char_p, ctypes.POINTER(vp)]),
        ("fq_observe", i32, [ctypes.c_char_p, ctypes.POINTER(vp)]),
        ("fq_clone", i32, [vp, ctypes.POINTER(vp)]),
        ("fq_close", None, [vp]),
        ("fq_unlink", i32, [ctypes.c_char_p]),
        ("fq_unlink_force", i32, [ctypes.c_char_p]),
        ("fq_unlink_same", i32, [vp, ctypes.c_char_p]),
        ("fq_remove_leftover", i32, [ctypes.c_char_p, ctypes.POINTER(u32)]),
        ("fq_put", i32, [vp, ctypes.c_char_p, u64, i64]),
        ("fq_get", i32, [vp, ctypes.c_char_p, u64, u64p, i64]),
        ("fq_try_get", i64, [vp, ctypes.c_char_p, u64]),
        ("fq_wait", i32, [vp, i32, i64]),
        ("fq_shutdown", i32, [vp, i32]),
        ("fq_task_done", i32, [vp, u64]),
        ("fq_join", i32, [vp, i64]),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


LIB = _lib()


@pytest.fixture
def made(qname: NameFactory) -> Iterator[tuple[bytes, ctypes.c_void_p]]:
    """(name, handle) of a fresh queue of 4 messages of up to 16 bytes (closed and unlinked)."""
    name = qname().encode()
    q = vp()
    assert LIB.fq_create(name, 16, 4, 0o600, ctypes.byref(q)) == C["FQ_OK"]
    try:
        yield name, q
    finally:
        LIB.fq_close(q)
        LIB.fq_unlink(name)


def _observer(name: bytes) -> ctypes.c_void_p:
    obs = vp()
    assert LIB.fq_observe(name, ctypes.byref(obs)) == C["FQ_OK"]
    return obs


# ------------------------------------------------------------------------- observers never wait


def test_an_observer_handle_cannot_wait(made: tuple[bytes, ctypes.c_void_p]) -> None:
    """fq_observe: waits return FQ_ERR_INVALID (fq_wait no longer says observers may wait)."""
    name, q = made
    assert LIB.fq_put(q, b"x", 1, 0) == C["FQ_OK"]  # readable and writable: nothing to wait for
    obs = _observer(name)
    try:
        for what in (C["FQ_WAIT_READABLE"], C["FQ_WAIT_WRITABLE"]):
            assert LIB.fq_wait(obs, what, 0) == C["FQ_ERR_INVALID"]
            assert LIB.fq_wait(obs, what, 1_000_000) == C["FQ_ERR_INVALID"]
            assert LIB.fq_wait(q, what, 0) == C["FQ_OK"]  # the same call on a participant
        assert LIB.fq_join(obs, 0) == C["FQ_ERR_INVALID"]
        assert LIB.fq_shutdown(obs, 0) == C["FQ_ERR_INVALID"]
        assert LIB.fq_task_done(obs, 1) == C["FQ_ERR_INVALID"]
        assert LIB.fq_clone(obs, ctypes.byref(vp())) == C["FQ_ERR_INVALID"]
    finally:
        LIB.fq_close(obs)


# ------------------------------------------------------------------------------- the mode rule

#: The header's rule: at most 0777, the owner reads and writes, group and others each read and
#: write or neither; execute bits do not matter.
ACCEPTED = [0o600, 0o660, 0o666, 0o606, 0o700, 0o760, 0o777, 0o611]
REFUSED = [
    0o640,  # the group reads without writing
    0o644,
    0o604,
    0o400,  # the owner reads without writing
    0o620,  # the group writes without reading
    0o602,
    0o200,
    0o000,  # the owner can do nothing
    0o060,
    0o4600,  # setuid: refused, not silently dropped
    0o2600,
    0o1600,
    0o10600,
]


def _rule(mode: int) -> bool:
    def rw(shift: int) -> int:
        return (mode >> shift) & 0o6

    return mode <= 0o777 and rw(6) == 0o6 and rw(3) in (0, 0o6) and rw(0) in (0, 0o6)


@pytest.mark.parametrize("mode", ACCEPTED + REFUSED, ids=oct)
def test_fq_create_applies_the_mode_rule(qname: NameFactory, mode: int) -> None:
    name = qname()
    q = vp()
    status = LIB.fq_create(name.encode(), 8, 2, mode, ctypes.byref(q))
    try:
        if mode in ACCEPTED:
            assert status == C["FQ_OK"], oct(mode)
            # Exactly the bits asked for (no umask, nothing dropped).
            assert stat.S_IMODE(os.stat(f"{SHM}/{name}").st_mode) == mode
        else:
            assert status == C["FQ_ERR_INVALID"], oct(mode)
            assert not os.path.exists(f"{SHM}/{name}")  # nothing left behind
    finally:
        if status == C["FQ_OK"]:
            LIB.fq_close(q)
            LIB.fq_unlink(name.encode())


def test_python_and_the_library_have_one_mode_rule() -> None:
    """Python's check_mode (which runs before the library is asked) accepts exactly what the
    rule above accepts, for every mode up to 0o7777."""
    for mode in range(0o10000):
        try:
            _args.check_mode(mode)
            python = True
        except fastqueue.FastQueueError:
            python = False
        assert python == _rule(mode), oct(mode)
    assert all(_rule(m) for m in ACCEPTED) and not any(_rule(m) for m in REFUSED)


# --------------------------------------------------------------------------- shutdown and join


def _join_in_thread(q: ctypes.c_void_p) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(LIB.fq_join(q, -1)), daemon=True)
    t.start()
    return t, result


@pytest.mark.timeout(60)
def test_a_plain_shutdown_leaves_join_waiting_for_the_rest(
    made: tuple[bytes, ctypes.c_void_p],
) -> None:
    """As in Python 3.13: shutdown(immediate=False) does not end a join; the messages left must
    be taken and marked done first."""
    _, q = made
    assert LIB.fq_put(q, b"left", 4, 0) == C["FQ_OK"]
    assert LIB.fq_shutdown(q, 0) == C["FQ_OK"]
    assert LIB.fq_put(q, b"late", 4, 0) == C["FQ_SHUTDOWN"]
    assert LIB.fq_join(q, 50_000_000) == C["FQ_TIMEOUT"]  # still a task left
    joiner, result = _join_in_thread(q)
    buf, n = ctypes.create_string_buffer(16), u64()
    assert LIB.fq_get(q, buf, 16, ctypes.byref(n), 0) == C["FQ_OK"]  # what is left is taken...
    assert LIB.fq_join(q, 0) == C["FQ_TIMEOUT"]  # ...but not done yet
    assert joiner.is_alive()
    assert LIB.fq_task_done(q, 1) == C["FQ_OK"]
    joiner.join(30)
    assert result == [C["FQ_OK"]]
    assert LIB.fq_get(q, buf, 16, ctypes.byref(n), 0) == C["FQ_SHUTDOWN"]  # drained


@pytest.mark.timeout(60)
def test_an_immediate_shutdown_ends_a_blocked_join(made: tuple[bytes, ctypes.c_void_p]) -> None:
    _, q = made
    for _ in range(3):
        assert LIB.fq_put(q, b"dropped", 7, 0) == C["FQ_OK"]
    joiner, result = _join_in_thread(q)
    assert LIB.fq_join(q, 0) == C["FQ_TIMEOUT"]
    assert LIB.fq_shutdown(q, 1) == C["FQ_OK"]  # what is left is discarded and counted as done
    joiner.join(30)
    assert result == [C["FQ_OK"]]
    buf, n = ctypes.create_string_buffer(16), u64()
    assert LIB.fq_get(q, buf, 16, ctypes.byref(n), 0) == C["FQ_SHUTDOWN"]
    assert LIB.fq_wait(q, C["FQ_WAIT_READABLE"], -1) == C["FQ_SHUTDOWN"]
    assert LIB.fq_wait(q, C["FQ_WAIT_WRITABLE"], -1) == C["FQ_SHUTDOWN"]


@pytest.mark.timeout(60)
def test_after_an_immediate_shutdown_join_still_waits_for_messages_being_processed(
    made: tuple[bytes, ctypes.c_void_p],
) -> None:
    _, q = made
    buf, n = ctypes.create_string_buffer(16), u64()
    assert LIB.fq_put(q, b"taken", 5, 0) == C["FQ_OK"]
    assert LIB.fq_get(q, buf, 16, ctypes.byref(n), 0) == C["FQ_OK"]  # taken, not done
    assert LIB.fq_shutdown(q, 1) == C["FQ_OK"]
    assert LIB.fq_join(q, 20_000_000) == C["FQ_TIMEOUT"]
    assert LIB.fq_task_done(q, 1) == C["FQ_OK"]
    assert LIB.fq_join(q, 0) == C["FQ_OK"]


# ------------------------------------------------------------------ fq_unlink_force, NOT_FOUND


def test_unlink_force_refuses_a_directory_by_name(qname: NameFactory) -> None:
    """'Whatever file it holds', and a directory is BAD_SEGMENT (it stays), not FQ_ERR_OS."""
    name = qname()
    path = f"{SHM}/{name}"
    os.mkdir(path)
    try:
        assert LIB.fq_unlink_force(name.encode()) == C["FQ_ERR_BAD_SEGMENT"]
        assert LIB.fq_unlink(name.encode()) == C["FQ_ERR_BAD_SEGMENT"]
        assert os.path.isdir(path)
    finally:
        os.rmdir(path)
    # Files of every other kind go, unread.
    os.mkfifo(path)
    assert LIB.fq_unlink_force(name.encode()) == C["FQ_OK"]
    os.symlink("/nonexistent", path)
    assert LIB.fq_unlink_force(name.encode()) == C["FQ_OK"]
    assert not os.path.lexists(path)


def test_every_call_the_not_found_description_lists_returns_it(
    made: tuple[bytes, ctypes.c_void_p], qname: NameFactory
) -> None:
    _, q = made
    missing = qname().encode()
    removed = u32(7)
    calls = {
        "fq_open": LIB.fq_open(missing, ctypes.byref(vp())),
        "fq_observe": LIB.fq_observe(missing, ctypes.byref(vp())),
        "fq_unlink": LIB.fq_unlink(missing),
        "fq_unlink_force": LIB.fq_unlink_force(missing),
        "fq_remove_leftover": LIB.fq_remove_leftover(b".fq-tmp-1-1", ctypes.byref(removed)),
        "fq_unlink_same": LIB.fq_unlink_same(q, missing),
    }
    assert calls == dict.fromkeys(calls, C["FQ_ERR_NOT_FOUND"])
    doc = _description("FQ_ERR_NOT_FOUND")
    assert all(fn in doc for fn in calls), doc
    # fq_unlink_same: a name that leads to another queue is NOT_FOUND too, and stays.
    other = vp()
    assert LIB.fq_create(missing, 8, 1, 0o600, ctypes.byref(other)) == C["FQ_OK"]
    try:
        assert LIB.fq_unlink_same(q, missing) == C["FQ_ERR_NOT_FOUND"]
        assert os.path.exists(f"{SHM}/{missing.decode()}")
    finally:
        LIB.fq_close(other)
        LIB.fq_unlink(missing)


def test_every_case_the_invalid_description_lists_returns_it(
    made: tuple[bytes, ctypes.c_void_p], qname: NameFactory
) -> None:
    name, q = made
    new = qname().encode()
    obs = _observer(name)
    removed = u32()
    try:
        # (words of the description, what the library returns for that case)
        cases = [
            ("sizes 0", LIB.fq_create(new, 0, 4, 0o600, ctypes.byref(vp()))),
            ("sizes 0", LIB.fq_create(new, 8, 0, 0o600, ctypes.byref(vp()))),
            ("too large", LIB.fq_create(new, 1 << 62, 1 << 62, 0o600, ctypes.byref(vp()))),
            ("a bad name", LIB.fq_create(b"a/b", 8, 1, 0o600, ctypes.byref(vp()))),
            ("a refused `mode`", LIB.fq_create(new, 8, 1, 0o644, ctypes.byref(vp()))),
            ("a `what`", LIB.fq_wait(q, 3, 0)),
            ("more tasks done", LIB.fq_task_done(q, 1)),
            ('not a ".fq-tmp-" name', LIB.fq_remove_leftover(name, ctypes.byref(removed))),
            ("an observer handle", LIB.fq_put(obs, b"x", 1, 0)),
        ]
    finally:
        LIB.fq_close(obs)
    wrong = [(case, status) for case, status in cases if status != C["FQ_ERR_INVALID"]]
    assert not wrong, wrong
    doc = " ".join(_description("FQ_ERR_INVALID").replace("*", " ").split())
    missing = [case for case, _ in cases if case not in doc]
    assert not missing, f"FQ_ERR_INVALID's description does not name {missing}: {doc}"


def _description(constant: str) -> str:
    """The doc comment right before ``constant = `` in the header."""
    text = _cheader.HEADER.read_text(encoding="utf-8")
    end = text.index(f"    {constant} = ")
    start = text.rindex("/**", 0, end)
    return text[start:end]


# ------------------------------------------------------------- fq_try_get's FQ_ERR_BUFFER size


def test_the_size_behind_try_get_buffer_is_learned_with_a_zero_cap_get(
    made: tuple[bytes, ctypes.c_void_p],
) -> None:
    """What fq_try_get's comment says to do when it returns FQ_ERR_BUFFER."""
    _, q = made
    message = b"twelve bytes"
    assert LIB.fq_put(q, message, len(message), 0) == C["FQ_OK"]
    small = ctypes.create_string_buffer(4)
    r = LIB.fq_try_get(q, small, 4)
    assert r < 0 and r + C["FQ_TRY_BIAS"] == C["FQ_ERR_BUFFER"]
    need = u64()
    assert LIB.fq_get(q, None, 0, ctypes.byref(need), 0) == C["FQ_ERR_BUFFER"]
    assert need.value == len(message)
    big = ctypes.create_string_buffer(need.value)
    assert LIB.fq_try_get(q, big, need.value) == len(message)  # it stayed queued until now
    assert big.raw == message
    # An empty next message is simply taken by the zero-cap get (FQ_OK, length 0).
    assert LIB.fq_put(q, b"", 0, 0) == C["FQ_OK"]
    assert LIB.fq_get(q, None, 0, ctypes.byref(need), 0) == C["FQ_OK"]
    assert need.value == 0
