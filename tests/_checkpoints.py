"""CPython's signal check points inside the library, made to happen one at a time.

CPython runs a pending signal handler (and raises what it raises) only at its *check points*:
as a Python function starts, at a backward jump, and right after a call of anything that is not
an inlined Python function (a C function, a type, a ctypes function, a ``functools.partial``,
a class whose ``__init__`` is Python...); a Python function called from Python is inlined
(3.11+) and its return is no check point. A specialised instruction may skip the check
(``type(x)``, ``list.append`` once the code has warmed up), but the same instruction checks
while the code is still cold (a process's first calls), so every such point counts.

:func:`interrupt_at` raises ``KeyboardInterrupt`` at the k-th check point that the library's
own code (``py/fastqueue``) passes, standing in for a signal handler's exception landing there:
``sys.settrace`` with opcode events finds them. Sweeping k = 0, 1, 2, ... until a call passes
no k-th point makes a signal land at each of them in turn, deterministically (see
tests/test_checkpoint_sweep.py). CPython only: PyPy may run a handler before any bytecode
(tests/test_signal_windows.py covers its windows).
"""

from __future__ import annotations

import dis
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

import fastqueue

PKG = os.path.dirname(os.path.abspath(fastqueue.__file__)) + os.sep

#: Calls after which CPython checks (for a callee that is not an inlined Python function).
_CALLS = {"CALL", "CALL_KW", "CALL_FUNCTION_EX"}
#: ... and CALL_FUNCTION_EX checks even after a Python callee (never inlined).
_NEVER_INLINED = {"CALL_FUNCTION_EX"}
#: Backward jumps that check: unconditional ones, where the exception belongs to the jump
#: (3.11, 3.13+: the handler that covers the jump catches it), and the ones where it belongs to
#: the target (3.12 checks after jumping, and unwinds from there; 3.11's POP_JUMP_BACKWARD_IF_*
#: check only when they jump).
_AFTER_JUMP = sys.version_info[:2] == (3, 12)
_BACK = set() if _AFTER_JUMP else {"JUMP_BACKWARD"}
_BACK_IF = {
    "POP_JUMP_BACKWARD_IF_TRUE",
    "POP_JUMP_BACKWARD_IF_FALSE",
    "POP_JUMP_BACKWARD_IF_NONE",
    "POP_JUMP_BACKWARD_IF_NOT_NONE",
} | ({"JUMP_BACKWARD"} if _AFTER_JUMP else set())
#: Python callees a CALL does not inline (called through C: a class's construction).
_NOT_INLINED_NAMES = {"__init__", "__new__", "__init_subclass__"}

_ops: dict[CodeType, dict[int, tuple[str, int]]] = {}


def _instructions(code: CodeType) -> dict[int, tuple[str, int]]:
    """offset -> (opname, the next instruction's offset) of ``code`` (caches left out)."""
    ops = _ops.get(code)
    if ops is None:
        ins = list(dis.get_instructions(code))
        ops = {
            i.offset: (i.opname, ins[j + 1].offset if j + 1 < len(ins) else -1)
            for j, i in enumerate(ins)
        }
        _ops[code] = ops
    return ops


class Interrupter:
    """Counts the library's check points as they pass and raises KeyboardInterrupt at the
    ``k``-th (counting from 0). ``fired`` says whether it did, ``where`` where."""

    def __init__(self, k: int, every_opcode: bool = False) -> None:
        self.k = k
        #: PyPy's check points instead: before any bytecode (its interpreter may run a pending
        #: handler there), and as a function starts.
        self.every_opcode = every_opcode
        self.seen = 0
        self.fired = False
        self.where = ""
        #: frame -> (offset, opname, next offset) of its last opcode event, and whether a Python
        #: frame that the CALL there inlined started since.
        self._last: dict[FrameType, tuple[int, str, int]] = {}
        self._inlined: set[FrameType] = set()

    def _point(self, frame: FrameType, what: str) -> None:
        if self.fired:
            return
        if self.seen == self.k:
            self.fired = True
            self.where = (
                f"{what} at {os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} "
                f"in {frame.f_code.co_name}"
            )
            sys.settrace(None)
            frame.f_trace = None
            raise KeyboardInterrupt(f"check point {self.k}: {self.where}")
        self.seen += 1

    def global_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call" or self.fired:
            return None
        back = frame.f_back
        if back is not None and back in self._last:
            last = self._last[back]
            if last[1] in _CALLS and frame.f_code.co_name not in _NOT_INLINED_NAMES:
                self._inlined.add(back)
        if not frame.f_code.co_filename.startswith(PKG):
            return None
        flags = frame.f_code.co_flags
        resumed = flags & (0x20 | 0x80 | 0x200) and frame.f_lasti > 0  # a generator resumed
        if not resumed:
            self._point(frame, "start")
        frame.f_trace_opcodes = True
        return self.local_trace

    def local_trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if self.fired:
            return None
        if event == "return":
            self._last.pop(frame, None)
            self._inlined.discard(frame)
            return self.local_trace
        if event != "opcode":
            return self.local_trace
        off = frame.f_lasti
        ops = _instructions(frame.f_code)
        name, nxt = ops.get(off, ("?", -1))
        last = self._last.get(frame)
        self._last[frame] = (off, name, nxt)
        inlined = frame in self._inlined
        self._inlined.discard(frame)
        if self.every_opcode:
            self._point(frame, f"before {name}")
        elif last is not None:
            lname = last[1]
            if lname in _CALLS and off == last[2] and (lname in _NEVER_INLINED or not inlined):
                self._point(frame, "after a call")
            elif lname in _BACK_IF and off < last[0]:
                self._point(frame, "after a backward jump")
        if name in _BACK and not self.every_opcode:
            self._point(frame, "at a backward jump")
        return self.local_trace


@contextmanager
def interrupt_at(k: int, every_opcode: bool = False) -> Iterator[Interrupter]:
    """Within the block, a KeyboardInterrupt is raised at the library's ``k``-th check point
    (``every_opcode``: PyPy's, see Interrupter)."""
    it = Interrupter(k, every_opcode)
    old = sys.gettrace()
    sys.settrace(it.global_trace)
    try:
        yield it
    finally:
        sys.settrace(old)
        it._last.clear()  # (frames: they hold the call's locals)
        it._inlined.clear()
