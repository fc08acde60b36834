"""A signal handler's exception, stood in for deterministically: a hook in place of a library
function that makes the real call and then raises (tests/test_hot_signals.py,
tests/test_mixed_kept.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fastqueue import _putget, _pypyget


class Landed(Exception):
    """What the hook raises: a signal handler's exception."""


def raising_after(real: Any, times: list[int]) -> Callable[..., Any]:
    """The library function ``real``, raising Landed after the call while ``times[0]`` > 0."""

    def hook(*args: Any) -> Any:
        result = real(*args)
        if times[0] > 0:
            times[0] -= 1
            raise Landed
        return result

    return hook


def hook_take(monkeypatch: pytest.MonkeyPatch, hook: Callable[..., Any]) -> None:
    """``hook`` in place of the hot get's library call, in both modules that bind it: _putget
    (CPython's get) and _pypyget (PyPy's get and get_nowait, installed over CPython's there;
    patching _putget alone never reached them, so these tests did not raise on PyPy)."""
    monkeypatch.setattr(_putget, "_try_take_in", hook)
    monkeypatch.setattr(_pypyget, "_try_take_in", hook)
