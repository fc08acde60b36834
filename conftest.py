"""Doctests of the package (py/fastqueue, run by ``--doctest-modules``): the examples in the
methods of :class:`fastqueue.Queue` that live in its rooms (``_putget``, ``_batches``, ``_slots``,
``_joining``, ``_core``) are written, as the docs show them, with ``Queue`` at hand."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _queue_in_doctests(doctest_namespace: dict[str, Any]) -> None:
    import fastqueue

    doctest_namespace.setdefault("Queue", fastqueue.Queue)
