"""dispatch_from_flat against QEMU's own `info mtree -f -d`, byte for byte."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pymem import DumpParseError
from pymem.qemu import dispatch_from_flat
from pymem.qemu.flat import parse_flat

from .qemu_fixtures import CASES, FIXTURES, flatview_blocks, hints, read


@pytest.mark.parametrize("case", CASES)
def test_dispatch_matches_qemus_byte_for_byte(case):
    got = dispatch_from_flat(read(case, "flat.txt"), hints(case)["page_bits"])
    assert flatview_blocks(got) == flatview_blocks(read(case, "dispatch.txt"))


@pytest.mark.parametrize("case", CASES)
def test_every_block_ends_with_a_blank_line_as_qemu_prints_it(case):
    got = dispatch_from_flat(read(case, "flat.txt"), hints(case)["page_bits"])
    assert got.endswith("\n\n") and len(got) == len(read(case, "dispatch.txt").replace(" [MRU]", ""))


def test_iommu_regions_can_be_named_explicitly():
    text = read("aarch64-sbsa-ref-reset", "flat.txt")
    plain = dispatch_from_flat(text, 12, iommu=[])
    named = dispatch_from_flat(text, 12, iommu=hints("aarch64-sbsa-ref-reset")["iommu"])
    assert " [iommu]" not in plain and named.count(" [iommu]") == 2


def test_a_flat_dump_of_the_dispatch_output_parses_back_to_the_same_views():
    text = read("x86_64-q35-booted", "dispatch.txt")
    assert parse_flat(text) == parse_flat(read("x86_64-q35-booted", "flat.txt"))


def test_a_malformed_range_line_is_named_by_its_line_number():
    text = read("x86_64-q35-reset", "flat.txt").splitlines()
    text[5] = "  00000000000000zz-0000000000000007 (prio 0, i/o): dma-chan"
    with pytest.raises(DumpParseError, match="line 6: not a line of 'info mtree -f'"):
        dispatch_from_flat("\n".join(text))


def test_overlapping_ranges_in_a_dump_are_named_by_line():
    text = ("FlatView #0\n AS \"memory\", root: system\n Root memory region: system\n"
            "  0000000000000000-0000000000000fff (prio 0, ram): a\n"
            "  0000000000000800-0000000000001fff (prio 0, ram): b\n")
    with pytest.raises(DumpParseError, match="line 5: range overlaps"):
        dispatch_from_flat(text)


def test_text_before_the_first_flatview_is_refused():
    with pytest.raises(DumpParseError, match="line 1: text before the first"):
        dispatch_from_flat("hello\n")


def test_page_bits_out_of_range_is_refused_for_a_dump():
    with pytest.raises(ValueError, match="page_bits"):
        dispatch_from_flat(read("x86_64-q35-reset", "flat.txt"), page_bits=20)


def test_the_command_prints_the_same_as_the_function(tmp_path):
    path = FIXTURES / "arm-vexpress-a9-reset" / "flat.txt"
    out = subprocess.run([sys.executable, "-m", "pymem", "qemu-dispatch", str(path),
                          "--page-bits", "10"], capture_output=True, text=True, check=True)
    assert out.stdout == dispatch_from_flat(path.read_text(), 10)


def test_the_command_reports_a_bad_dump_and_exits_2(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("FlatView #0\n  garbage\n")
    out = subprocess.run([sys.executable, "-m", "pymem", "qemu-dispatch", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "line 2" in out.stderr
