"""The fuzz targets (fuzz/targets.py) stay runnable: each runs over its whole
seed corpus, made from tests/fixtures/, without a finding; and the guard that
sorts findings from pymem's own errors sorts them right.

The fuzzing itself is `scripts/fuzz.sh TARGET SECONDS` (atheris, then the
corpus on the ASan/UBSan build); CI runs every target for a bounded time.
"""
from __future__ import annotations

import pytest

from fuzz import targets
from fuzz.api import Reader
from pymem.errors import DumpParseError

# A parser target must have seeds from the fixtures, or it fuzzes nothing.
MIN_SEEDS = {"mtree": 30, "flat": 60, "hints": 30, "trace": 2, "qemu_log": 10, "api": 3}


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_a_fuzz_target_runs_over_its_seed_corpus_without_a_finding(name):
    corpus = targets.seeds(name)
    assert len(corpus) >= MIN_SEEDS[name]
    for data in corpus:
        targets.TARGETS[name](data)          # raises on a finding


@pytest.mark.parametrize("name", ["mtree", "flat", "hints"])
def test_the_fixture_windows_fit_the_fuzzers_length_and_run_without_a_finding(name):
    corpus = targets.windows(name)
    assert len(corpus) >= MIN_SEEDS[name]
    assert max(map(len, corpus)) <= targets.MAX_LEN[name]
    for data in corpus:
        targets.TARGETS[name](data)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_a_fuzz_target_takes_empty_and_junk_input(name):
    for data in (b"", b"\x00", b"\xff" * 64, targets.SEP * 3, "é\n{".encode()):
        targets.TARGETS[name](data)


def test_the_guard_swallows_pymem_errors_and_lets_every_other_exception_through():
    @targets.guarded
    def parse_error(data):
        raise DumpParseError("bad line", 3)

    @targets.guarded
    def bare(data):
        {}[data]

    parse_error(b"x")
    with pytest.raises(KeyError):
        bare(b"x")


def test_the_api_program_reader_reads_zeros_past_the_end():
    r = Reader(b"\x05\x01")
    assert (r.byte(), r.flag(), r.byte(), r.uint(4)) == (5, True, 0, 0)
    assert not r.more()


def test_the_api_harness_cuts_big_reads_only_where_a_device_answers_them():
    from fuzz.api import _big_read_size
    from pymem import MemoryRegion, MemoryRegionOps, MemorySystem

    ops = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0x1000_0000, MemoryRegion.ram("ram", 0x1000))
    root.add_subregion(0x2000_0000, MemoryRegion.io("dev", 0x1000, ops))
    asp = MemorySystem().address_space(root, "fuzz")
    mib = 1 << 20
    # Plain memory and unassigned space: read in C, kept up to 64 MiB.
    assert _big_read_size(asp, 0x1000_0000, 48 * mib) == 48 * mib
    assert _big_read_size(asp, 0x3000_0000, 48 * mib) == 48 * mib
    assert _big_read_size(asp, 0x3000_0000, 1 << 40) < 64 * mib
    # A device on the way: each piece is a Python call, cut under 64 KiB.
    assert _big_read_size(asp, 0x1000_0000, 0x1000_0000 + 0x10) < 0x10000
    assert _big_read_size(asp, 0x2000_0000, 48 * mib) < 0x10000
