"""Commit: re-rendering every FlatView and rebuilding its dispatch.

A commit is what every topology change costs (QEMU re-renders every view at
each outermost transaction commit).  Measured on the q35-booted machine
(QEMU 7.2 dump: 8 address spaces, 4 views) and on synthetic trees of 100 to
100,000 regions shaped like a busy machine: nested buses of devices, RAM
aliases, overlaps at equal and higher priority, disabled regions.  The
synthetic sizes (pymem.bench.synthetic_system) show the growth rate
(render is a radix sort and a heap sweep in C: O(n log n)).  Retired views are dropped between rounds: nothing reads them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pymem import MemoryListener, MemorySystem
from pymem.bench import synthetic_system
from pymem.qemu import load_mtree

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "qemu" / "x86_64-q35-booted"


def q35_system() -> MemorySystem:
    return load_mtree((FIXTURE / "mtree-D.txt").read_text(), FIXTURE / "hints.json")


def commit(system: MemorySystem) -> None:
    system._update_pending = True
    with system.transaction():
        pass


def test_commit_q35_booted(benchmark):
    system = q35_system()
    benchmark.group = "commit"
    benchmark(commit, system)
    assert len(system.flatviews()) == 4


@pytest.mark.parametrize("n", [100, 1_000, 10_000, 100_000])
def test_commit_synthetic(benchmark, n):
    system = synthetic_system(n)
    benchmark.group = "commit"
    if n >= 100_000:
        # The first few commits of a tree this size run while malloc adapts
        # (its big arrays start as fresh mmaps: page faults); the steady
        # state is what a long-running machine sees.
        benchmark.pedantic(commit, args=(system,), rounds=5, iterations=1, warmup_rounds=3)
    else:
        benchmark(commit, system)
    assert system.address_spaces[0].flatview.ranges


class _Mapper(MemoryListener):
    """A listener that keeps a map of what is added, as an accelerator would."""

    def __init__(self) -> None:
        self.mapped: dict = {}

    def region_add(self, section) -> None:
        self.mapped[section.offset_within_address_space] = section.size

    def region_del(self, section) -> None:
        self.mapped.pop(section.offset_within_address_space, None)


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_commit_with_a_listener(benchmark, n):
    system = synthetic_system(n)
    system.address_spaces[0].register_listener(_Mapper())
    benchmark.group = "commit with a listener"
    benchmark.pedantic(commit, args=(system,), rounds=5, iterations=1, warmup_rounds=3)
