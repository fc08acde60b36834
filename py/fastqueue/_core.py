"""The state every queue class shares, and what its rooms share: the handle, the hot path's
bound calls, the errors of a closed handle or a failed call, and the waiting loop.

The public :class:`~fastqueue.Queue` is made of rooms, one job each, all on this core:
``_putget`` (put / get of one message), ``_batches`` (put_many / get_many), ``_slots``
(zero-copy put_slot / get_slot), ``_joining`` (task_done / join / shutdown), ``_aio``
(aget / aput); ``queue`` itself holds creating, attaching, closing, counting and the lifetime.
Data flows one way: the rooms -> ``_ffi`` -> the C library.
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any, Final, TypeVar

from . import _ffi
from ._args import SLICE_NS as _SLICE_NS
from ._args import slice_ns as _slice
from ._errors import (
    Empty,
    Full,
    MessageTooBigError,
    QueueClosedError,
    error_from_status,
)
from ._words import nbytes

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ["QueueCore"]

_T = TypeVar("_T")
_OK: Final = _ffi.OK
_EMPTY: Final = _ffi.EMPTY
_FULL: Final = _ffi.FULL
_TRY_BIAS: Final = _ffi.TRY_BIAS
#: What the closed queue's hot-path put returns: any status but OK.
_CLOSED: Final = -(1 << 40)
#: A closed queue's receive buffers: none (never appended to: the slow path raises first).
_NO_BUFFERS: Final[list[tuple[Any, Any]]] = []
#: A closed queue's bound packed puts: none (never written to: the slow path raises first).
_NO_PACKED: Final[dict[tuple[int, int], Any]] = {}
#: The same for get_many(..., itemsize=): never written to.
_NO_EXACT: Final[dict[tuple[int, int], list[Any]]] = {}


class QueueCore:
    """The state of a queue handle (see :class:`~fastqueue.Queue`) and the helpers its rooms
    share. Not used on its own."""

    # Class-level defaults, so that __del__ and __repr__ work on a half-constructed object.
    # The handle; None once closed. In a child forked while it was open it is missing until the
    # child's first use, when ``Queue.__getattr__`` attaches a handle of the child's own (a
    # missing ``_h`` on a half-constructed object reads as None).
    _h: _ffi.Handle | None
    #: In a forked child: the handle inherited from the parent, until the child's first use.
    _inherited: _ffi.Handle | None = None
    _name: str = "?"
    _raw: bytes = b""
    _element_size: int = 0
    _maxsize: int = 0
    # pid of the process that created the segment with this handle; 0 if attached.
    _owner_pid: int = 0
    _unlinked: bool = False
    # The hot path's bound library calls (see _bind); while closed, every call takes the slow
    # path, which raises.
    _try_put: Any = staticmethod(lambda data, n: _CLOSED)
    _rx: list[tuple[Any, Any]] = _NO_BUFFERS
    _packed: dict[tuple[int, int], tuple[Callable[[bytes], int], int, array[int]]] = _NO_PACKED
    _exact: dict[tuple[int, int], list[Any]] = _NO_EXACT

    def _closed_error(self) -> QueueClosedError:
        return QueueClosedError(
            f"operation on a closed queue: fastqueue.Queue({self._name!r}) is closed; attach "
            f"a new handle with Queue({self._name!r}, create=False)"
        )

    def _too_big(self, n: int) -> MessageTooBigError:
        return MessageTooBigError(
            f"Queue({self._name!r}): a message of {nbytes(n)} is longer than the queue's "
            f"element_size of {nbytes(self._element_size)}; split it into smaller messages, or "
            f"use a queue created with element_size={n} or more"
        )

    def _put_error(self, status: int, n: int | None = None) -> Exception:
        if status == _FULL:
            return Full()
        if status == _ffi.ERR_TOO_BIG and n is not None:
            return self._too_big(n)
        return error_from_status(status, f"Queue({self._name!r}).put", self._name)

    def _get_error(self, status: bytes | int) -> Exception:
        if status == _EMPTY:
            return Empty()
        return error_from_status(int(status), f"Queue({self._name!r}).get", self._name)

    def _retry(
        self, h: _ffi.Handle, attempt: Callable[[int], _T], busy: int, timeout: float | None
    ) -> _T | int:
        """The waiting path of a call whose first attempt found the queue ``busy`` (FULL, EMPTY,
        or join's TIMEOUT): ``attempt(timeout_ns)`` again, one slice at a time (so that Ctrl-C
        works), until it returns something else or ``timeout`` (seconds, validated; None:
        forever) runs out; then the last result (``busy`` if time ran out first)."""
        status: _T | int = busy
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while status == busy:
            if deadline is None:
                wait = _SLICE_NS
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    break
                wait = _slice(remaining)
            if self._h is not h:
                raise self._closed_error()
            status = attempt(wait)
        return status
