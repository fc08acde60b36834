"""Cross-process stress with Hypothesis: spawned producers and consumers, drawn counts, capacity,
element size, message sizes and blocking / non-blocking / timeout mixes; every message is
delivered exactly once and each consumer sees each producer's messages in order.

Every payload of at least ``STRESS_HEADER.size`` bytes carries (producer id, sequence, CRC-32 of
its body) and a body derived from them; shorter payloads (down to 0 bytes) carry no identity, so
they are checked by content and counted per length. The same check runs for as long as asked in
``tests/soak.py`` (``just soak minutes="10"``).

Reproduce: ``FASTQUEUE_LIBRARY=target/release/libfastqueue.so PYTHONPATH=py python -m pytest
tests/test_stress.py -s`` (the totals are printed at the end).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _stress_workers as w
from conftest import remove_names, unique_prefix

SPAWN = multiprocessing.get_context("spawn")
#: Messages per example in the normal suite (split over the producers).
MESSAGES_PER_EXAMPLE = 2000
TOTAL = w.StressResult()


@st.composite
def configs(draw: st.DrawFn) -> w.StressConfig:
    producers = draw(st.integers(1, 4), label="producers")
    consumers = draw(st.integers(1, 4), label="consumers")
    element_size = draw(
        st.one_of(
            st.integers(1, w.STRESS_HEADER.size + 2),
            st.integers(1, 512),
            st.integers(513, 8192),
            st.just(65536),
        ),
        label="element_size",
    )
    sizes = draw(
        st.lists(
            st.one_of(st.integers(0, element_size), st.sampled_from([0, element_size])),
            min_size=1,
            max_size=8,
        ).map(tuple),
        label="sizes",
    )
    modes = st.sampled_from(w.MODES)
    return w.StressConfig(
        producers=producers,
        consumers=consumers,
        capacity=draw(st.integers(1, 64), label="capacity"),
        element_size=element_size,
        sizes=sizes,
        producer_modes=tuple(draw(modes) for _ in range(producers)),
        consumer_modes=tuple(draw(modes) for _ in range(consumers)),
        per_producer=MESSAGES_PER_EXAMPLE // producers,
        seed=draw(st.integers(0, 1 << 30), label="seed"),
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("stress")
    if TOTAL.examples:
        print(
            f"\n[stress] {TOTAL.examples} examples, {TOTAL.messages} messages, "
            f"{TOTAL.bytes} payload bytes across spawned processes"
        )


def stress(cfg: w.StressConfig, name: str, workdir: Path) -> None:
    """Runs one stress example on the queue ``name`` (removed afterwards, whatever happens)."""
    try:
        TOTAL.add(w.run_stress(SPAWN, cfg, name, workdir))
    finally:
        remove_names([name])


@pytest.mark.timeout(300)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_spawned_producers_and_consumers_deliver_exactly_once_in_order(
    cfg: w.StressConfig, workdir: Path
) -> None:
    stress(cfg, unique_prefix("stress") + str(os.getpid()), workdir)


@pytest.mark.timeout(120)
def test_capacity_one_with_every_mode_and_empty_messages(workdir: Path) -> None:
    """The tightest ring (one slot) with zero-length and full-size messages mixed, blocking and
    polling sides at once (a fixed example, so it always runs)."""
    cfg = w.StressConfig(
        producers=3,
        consumers=3,
        capacity=1,
        element_size=40,
        sizes=(0, 40, 5, 10, 39),
        producer_modes=("block", "nowait", "mixed"),
        consumer_modes=("timeout", "block", "mixed"),
        per_producer=150,
        seed=7,
    )
    stress(cfg, unique_prefix("stress") + "cap1", workdir)


@pytest.mark.timeout(120)
def test_batches_as_runs_against_single_puts_and_gets(workdir: Path) -> None:
    """put_many / get_many (lists and packed buffers, runs of claims in the library) racing
    single puts and gets on a small ring that is not a power of two (a fixed example, so it
    always runs)."""
    cfg = w.StressConfig(
        producers=3,
        consumers=3,
        capacity=5,
        element_size=64,
        sizes=(20, 20, 20, 64, 0, 20),
        producer_modes=("batch", "batch", "block"),
        consumer_modes=("batch", "mixed", "batch"),
        per_producer=2000,
        seed=11,
    )
    stress(cfg, unique_prefix("stress") + "runs", workdir)


@pytest.mark.timeout(120)
def test_pooled_large_messages_with_every_mode(workdir: Path) -> None:
    """A large-message queue (the pooled layout: every put swaps its slot's buffer for the
    warm one a get released) under producers and consumers of every kind: the buffers must stay
    a permutation, or messages would overwrite each other (a fixed example, so it always runs)."""
    cfg = w.StressConfig(
        producers=3,
        consumers=3,
        capacity=4,
        element_size=65536,
        sizes=(65536, 100, 0, 30000, 65535),
        producer_modes=("batch", "block", "nowait"),
        consumer_modes=("mixed", "batch", "block"),
        per_producer=400,
        seed=13,
    )
    stress(cfg, unique_prefix("stress") + "pooled", workdir)
