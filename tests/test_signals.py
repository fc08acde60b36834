"""Signal storms (issue 18 A): a call interrupted by an exception from a Python signal handler
either did its work and returned (a put's exception is then raised by the handle's next call)
or did nothing; no message is lost or duplicated, and no slot or wake-up is left behind.

Each test runs a child process that catches the handler's exception and goes on, while this
process sends it thousands of signals and feeds or drains the queue; then it checks that every
message arrived exactly once, in order, and that the queue works afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

import fastqueue
from _procs import checkout_env

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals, Linux futex"),
    pytest.mark.timeout(120),
    # PyPy's interpreter runs a pending signal handler before any bytecode, not only at calls,
    # backward jumps and function starts as CPython does. The library defers or keeps what it
    # can there (tests/test_signal_windows.py makes each of its windows happen); what is left
    # is the return itself: the caller's instruction right after get returns (`m = q.get()`:
    # the handler runs before m is stored, and the message on the caller's stack is dropped),
    # get's own `return` after its try block, the first instruction of an except clause.
    # Measured, each loss at one of those points: 3-6 of 3,000 at ~4,000 SIGINTs (7-17 before).
    # get_slot, ObjectQueue's get and the producers' storms fail on PyPy as before this work.
    pytest.mark.xfail(
        sys.implementation.name == "pypy",
        reason="PyPy may run a handler between a get's return and its caller's store, which "
        "no library code can cover (see the note above and docs/guide/signals.rst)",
        strict=False,
    ),
]

#: Messages per storm: enough for thousands of interrupts, few enough for ~10 s on 2 cores.
N = 3000

#: How the consumer takes: each form ends with the message(s) in ``got`` (appended by one call,
#: so that the program itself loses nothing to a signal on its way).
TAKES = {
    "get": "got.append(q.get())",
    "get_many": "got.extend(q.get_many(8))",
    "get_slot": "with q.get_slot() as v:\n                got.append(b'' + v)",
}

# The child's loops: the interesting code runs inside a try; an exception that escapes the
# inner loop (it lands on a loop's back edge, outside any try: the program's own business, not
# the library's) is caught by the outer ones, which start the inner loop again (three deep, so
# that the storm does not kill the child there).
CONSUMER = r"""
import faulthandler, signal, sys, fastqueue
faulthandler.register(signal.SIGUSR1)
{setup}
q = {cls}(sys.argv[1], create=False)
got = []
ended = []
landed = []  # (messages received, where it landed) of each exception caught here
def where(tb):  # the innermost frame of the library's (no frame kept: they hold slots)
    w = None
    while tb is not None:
        if "fastqueue" in tb.tb_frame.f_code.co_filename or w is None:
            w = (tb.tb_frame.f_code.co_filename.rsplit("/", 1)[-1], tb.tb_lineno,
                 tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return "%s:%d:%s" % w
def drain():
    while True:
        try:
            if ended:  # (the storm may still run: stop the handler raising, inside the try)
                signal.signal(signal.{sig}, signal.SIG_IGN)
                return True
            {take}
            if got[-1:] == [{end!r}]:
                ended.append(True)
        except {exc} as e:
            landed.append((len(got), where(e.__traceback__)))
done = ready = False
while not done:
    try:
        if not ready:  # inside the try: the storm starts once the parent reads this
            ready = True
            print("ready", flush=True)
        while not done:
            try:
                while not done:
                    try:
                        done = drain()
                    except {exc}:
                        pass
            except {exc}:
                pass
    except {exc}:
        pass
print(" ".join(str(int(m)) for m in got if m != {end!r}), flush=True)
for k, w in landed:
    print(k, w)
q.close()
"""

PRODUCER = r"""
import faulthandler, signal, sys, fastqueue
faulthandler.register(signal.SIGUSR1)
q = getattr(fastqueue, sys.argv[3])(sys.argv[1], create=False)
n = int(sys.argv[2])
state = [0]
def feed():
    while True:
        try:
            if state[0] >= n:  # (the storm may still run: stop the handler raising)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                return
            if sys.argv[4] == "put_slot":
                slot = None
                try:
                    with q.put_slot() as slot:
                        data = str(state[0]).encode()
                        slot.buffer[: len(data)] = data
                        slot.length = len(data)
                except KeyboardInterrupt:
                    # The with statement can raise as it ends, the message put: it says so.
                    if slot is None or not slot.published:
                        raise
            else:
                q.put(str(state[0]).encode() if sys.argv[3] == "Queue" else state[0])
            state[0] += 1
        except KeyboardInterrupt:
            pass
ready = False
while state[0] < n:
    try:
        if not ready:  # inside the try: the storm starts once the parent reads this
            ready = True
            print("ready", flush=True)
        while state[0] < n:
            try:
                while state[0] < n:
                    try:
                        feed()
                    except KeyboardInterrupt:
                        pass
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        pass
while True:  # a deferred exception may still be pending: the last put is in already
    try:
        q.put(b"end" if sys.argv[3] == "Queue" else "end")
        break
    except KeyboardInterrupt:
        pass
print("done", flush=True)
q.close()
"""


def _storm(pid: int, sig: int, stop: threading.Event, sent: list[int]) -> None:
    while not stop.is_set():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        sent[0] += 1
        time.sleep(0.0003)


def _run_storm(code: str, args: list[str], sig: int, work: Callable[[], None]) -> tuple[str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=checkout_env(),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"the child did not start: {err}")
    stop = threading.Event()
    sent = [0]
    t = threading.Thread(target=_storm, args=(proc.pid, sig, stop, sent), daemon=True)
    t.start()
    try:
        work()
    except BaseException:
        stop.set()
        t.join()
        proc.send_signal(signal.SIGUSR1)  # where is the child? (faulthandler, on stderr)
        time.sleep(0.5)
        proc.kill()
        _, err = proc.communicate(timeout=60)
        print(f"child's stacks after {sent[0]} signals:\n{err}")
        raise
    finally:
        stop.set()
        t.join()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out, sent[0]


def _landings(got: list[int], landed: list[str]) -> str:
    """Where the exceptions that the consumer caught when it had received as many messages as
    it had when the first one went missing landed (its lines: "count file:line:function")."""
    first = next((i for i, m in enumerate(got) if m != i), len(got))
    at = [w.split()[1] for w in landed if int(w.split()[0]) == first]
    return f"exceptions caught at the first loss (message {first}) landed at {at}"


def _feed(q: fastqueue.Queue, end: bytes) -> None:
    for i in range(N):
        q.put(str(i).encode(), timeout=30)
        if i % 8 == 0:
            time.sleep(0.0005)  # let the consumer run dry and block
    q.put(end, timeout=30)


@pytest.mark.parametrize(
    "sig,exc,setup",
    [
        (signal.SIGINT, "KeyboardInterrupt", ""),
        (
            signal.SIGTERM,
            "SystemExit",
            "def _term(s, f):\n    raise SystemExit(1)\nsignal.signal(signal.SIGTERM, _term)",
        ),
    ],
    ids=["sigint", "sigterm-systemexit"],
)
@pytest.mark.parametrize("take", list(TAKES))
def test_consumer_under_a_signal_storm_loses_and_duplicates_nothing(
    qname: Callable[[], str], sig: int, exc: str, setup: str, take: str
) -> None:
    name = qname()
    with fastqueue.Queue(name, element_size=16, capacity=4, create=True) as q:
        code = CONSUMER.format(
            setup=setup,
            cls="fastqueue.Queue",
            end=b"end",
            exc=exc,
            sig=signal.Signals(sig).name,
            take=TAKES[take],
        )
        out, sent = _run_storm(code, [name], sig, lambda: _feed(q, b"end"))
        lines = out.splitlines()
        got = [int(x) for x in lines[0].split()]
        assert got == list(range(N)), (
            f"{len(got)} received of {N} after {sent} signals; {_landings(got, lines[1:])}"
        )
        assert sent > 500
        assert q.qsize() == 0
        q.put(b"after")  # nothing held: the queue still works
        assert q.get(timeout=5) == b"after"


def test_object_queue_consumer_under_a_signal_storm(qname: Callable[[], str]) -> None:
    name = qname()
    with fastqueue.ObjectQueue(name, element_size=64, capacity=2, create=True) as q:
        code = CONSUMER.format(
            setup="",
            cls="fastqueue.ObjectQueue",
            end="end",
            exc="KeyboardInterrupt",
            sig="SIGINT",
            take=TAKES["get"],
        )

        def feed() -> None:
            for i in range(N):
                q.put(i, timeout=30)
                if i % 8 == 0:
                    time.sleep(0.0005)
            q.put("end", timeout=30)

        out, sent = _run_storm(code, [name], signal.SIGINT, feed)
        lines = out.splitlines()
        got = [int(x) for x in lines[0].split()]
        assert got == list(range(N)), (
            f"{len(got)} received of {N} after {sent} signals; {_landings(got, lines[1:])}"
        )
        assert q.qsize() == 0
        for i in range(2):  # capacity 2: a slot left held would make the second put fail
            q.put(i, timeout=5)
        assert [q.get(timeout=5), q.get(timeout=5)] == [0, 1]


@pytest.mark.parametrize(
    "cls,put", [("Queue", "put"), ("ObjectQueue", "put"), ("Queue", "put_slot")]
)
def test_producer_under_a_signal_storm_puts_each_message_once(
    qname: Callable[[], str], cls: str, put: str
) -> None:
    name = qname()
    with getattr(fastqueue, cls)(name, element_size=64, capacity=4, create=True) as q:
        got: list[object] = []

        def drain() -> None:
            while True:
                m = q.get(timeout=30)
                if m in (b"end", "end"):
                    return
                got.append(m)
                if len(got) % 8 == 0:
                    time.sleep(0.0005)  # let the producer find the queue full and block

        _out, sent = _run_storm(PRODUCER, [name, str(N), cls, put], signal.SIGINT, drain)
        assert [int(m) for m in got] == list(range(N)), f"after {sent} signals"
        assert q.qsize() == 0
        for i in range(4):  # no slot held, no wake-up lost
            q.put(b"%d" % i if cls == "Queue" else i, timeout=5)


INTERRUPTIBLE = r"""
import ctypes, signal, sys
import fastqueue
from fastqueue import _ffi, _ffiheld, _library
signal.signal(signal.SIGALRM, lambda *_: None)  # a handler that does not raise
q = fastqueue.Queue(sys.argv[1], create=False)
ptr = q._h._ptr
_ffiheld._fq_set_interruptible(ptr, int(sys.argv[2]))
buf, n = ctypes.create_string_buffer(16), ctypes.c_uint64()
signal.setitimer(signal.ITIMER_REAL, 0.3)
status = _library._fq_get(ptr, buf, 16, ctypes.byref(n), 3_000_000_000)  # a 3 s wait
print(status, flush=True)
q.close()
"""


@pytest.mark.parametrize("on", [1, 0])
def test_c_blocked_get_returns_interrupted_only_when_asked(
    qname: Callable[[], str], on: int
) -> None:
    """fq_set_interruptible(q, 1): a signal ends a blocked fq_get with FQ_INTERRUPTED, nothing
    taken; with 0 (the C default) the call sleeps on through it until its timeout (EMPTY)."""
    name = qname()
    with fastqueue.Queue(name, element_size=16, capacity=4, create=True) as q:
        run = subprocess.run(
            [sys.executable, "-c", INTERRUPTIBLE, name, str(on)],
            capture_output=True,
            text=True,
            timeout=60,
            env=checkout_env(),
        )
        assert run.returncode == 0, run.stderr
        expected = fastqueue._ffi.INTERRUPTED if on else fastqueue._ffi.EMPTY
        assert int(run.stdout.split()[0]) == expected
        q.put(b"x")
        assert q.get(timeout=5) == b"x"  # nothing was taken, nothing left held
