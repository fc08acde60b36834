"""PyPy's forms of :meth:`~fastqueue.Queue.get` and ``get_nowait`` (installed over the
CPython ones by _putget when running on PyPy).

CPython runs a signal handler only at its check points, so the hot path's last store (the held
word back to -1) and its ``return`` cannot be separated by one. PyPy's interpreter may run a
pending handler before *any* bytecode: measured, most messages lost under a Ctrl-C storm were
lost there, the word already free and the message copied out but not yet returned. Here the
``except`` clause tells the two apart: the word still set means nothing was consumed (kept, as
on CPython); the word free with the message copied means the call took it, so it returns the
message and defers the handler's exception to the handle's next call, as puts do
(QueueCore._pending). A second signal landing inside the ``except`` clause itself is caught by
its loop and coalesced with the first (as the kernel coalesces a signal already pending).

What no library code can cover is the caller's own frame: between get's ``return`` and the
caller's next store (``m = q.get()``, ``got.append(q.get())``), PyPy may still run a handler,
and the value on the caller's stack is dropped (see docs/guide/signals.rst).
"""

from __future__ import annotations

from typing import Any, Protocol

from ._args import check_timeout as _check_timeout
from ._core import _REDO, _TRY_BIAS, _take_stopped
from ._ffi import try_take_in as _try_take_in


class _Queue(Protocol):
    """What these functions use of the queue (_putget.PutGetMixin; not imported: no circle)."""

    _hot: Any
    _take: Any

    def _get_rest(self, block: bool, timeout: float | None, status: int) -> bytes: ...

    def _defer(self, exc: BaseException) -> None: ...


__all__ = ["get", "get_nowait"]


def get(self: _Queue, block: bool = True, timeout: float | None = None) -> bytes:
    """:meth:`~fastqueue.Queue.get` on PyPy (see the module's note)."""
    if timeout is not None and block:
        tc = type(timeout)
        if not ((tc is float or tc is int) and timeout >= 0.0):
            _check_timeout(timeout)
    held = self._hot
    msg: bytes | None = None
    try:
        n = _try_take_in(*self._take)
        if n >= 0:
            msg = held.buf[:n]
            held.word[0] = -1
            return msg
    except BaseException as exc:
        if _interrupted(self, held, msg, exc):
            return msg  # type: ignore[return-value]
        raise
    return self._get_rest(block, timeout, n + _TRY_BIAS)


def get_nowait(self: _Queue) -> bytes:
    """:meth:`~fastqueue.Queue.get_nowait` on PyPy (see the module's note)."""
    held = self._hot
    msg: bytes | None = None
    try:
        n = _try_take_in(*self._take)
        if n >= 0:
            msg = held.buf[:n]
            held.word[0] = -1
            return msg
    except BaseException as exc:
        if _interrupted(self, held, msg, exc):
            return msg  # type: ignore[return-value]
        raise
    return self._get_rest(False, None, n + _TRY_BIAS)


def _interrupted(self: _Queue, held: object, msg: bytes | None, exc: BaseException) -> bool:
    """A get's ``except`` clause on PyPy: True if the message ``msg`` was taken and consumed
    (its held word stored free) before ``exc`` landed, which is then deferred; otherwise the
    message, if any, is kept in the buffer (its word marked kept) and False says to raise.

    A handler's exception may land anywhere in here too (PyPy): each step is redone by the
    loop until it completes (a few times: see _core._REDO); every step can be repeated."""
    for attempt in range(_REDO):
        try:
            if held is None:
                return False
            w = held.word  # type: ignore[attr-defined]
            v = w[0]
            if v >= 0:  # not consumed: the next get hands it over (as on CPython)
                w[0] = -2 - v
                self._take = _take_stopped  # (every get form hands it on first: see get)
                return False
            if msg is None or v != -1:
                return False
            # Consumed, not yet returned: this call took it. Defer, as a put does.
            self._defer(exc)
            return True
        except BaseException:  # a second signal, meanwhile: coalesced with the first
            if attempt == _REDO - 1:
                raise
    return False  # (not reached)
