"""Shared fixtures of the fastqueue test suite.

Every segment a test makes is named ``fq-test-<run>-<test>-<n>`` (see :func:`qname`), so that a
test's segments can be found, removed and checked for afterwards; an autouse fixture also fails any
test that leaves a segment of this run (or an automatically named one of this process) behind.

Run with FASTQUEUE_LIBRARY pointing at a built library (or with fastqueue installed), e.g.
``FASTQUEUE_LIBRARY=target/release/libfastqueue.so PYTHONPATH=py python -m pytest tests``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, settings

import fastqueue

SHM = Path("/dev/shm")
#: Distinguishes this pytest run's segments from any other run's on the same machine.
RUN_TOKEN = secrets.token_hex(3)
_test_counter = itertools.count()

# Hypothesis: no deadlines (tests assert behaviour, never speed; CI machines are noisy).
settings.register_profile(
    "fastqueue",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastqueue"))


def unique_prefix(tag: str = "") -> str:
    """A fresh name prefix under this run's namespace: ``fq-test-<run>-<tag><n>-``."""
    return f"fq-test-{RUN_TOKEN}-{tag}{next(_test_counter)}-"


def shm_names(prefix: str) -> list[str]:
    """Names in /dev/shm that start with `prefix`."""
    if not SHM.is_dir():
        return []
    return sorted(p.name for p in SHM.iterdir() if p.name.startswith(prefix))


def remove_names(names: list[str]) -> None:
    """Unlinks every name, ignoring ones already gone."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            fastqueue.unlink(name, force=True)  # junk a test wrote, too


@pytest.fixture
def qname() -> Iterator[Callable[[], str]]:
    """A factory of unique queue names for this test. At teardown every name it made is
    unlinked, and no segment with this test's prefix may remain in /dev/shm."""
    prefix = unique_prefix()
    made: list[str] = []

    def make() -> str:
        name = f"{prefix}{len(made)}"
        made.append(name)
        return name

    yield make
    gc.collect()
    remove_names(made)
    left = shm_names(prefix)
    remove_names(left)
    assert not left, f"segments left behind in /dev/shm: {left}"


@pytest.fixture(autouse=True)
def _no_segment_left_behind() -> Iterator[None]:
    """Fails a test that leaves a segment of this run, or an auto-named one of this process."""
    mine = (f"fq-test-{RUN_TOKEN}-", f"fq-{os.getpid()}-")
    before = {n for p in mine for n in shm_names(p)}
    yield
    gc.collect()  # queues only referenced from a failed test's frames, cycles, ...
    after = {n for p in mine for n in shm_names(p)}
    left = sorted(after - before)
    remove_names(left)
    assert not left, f"test left segments in /dev/shm: {left}"
