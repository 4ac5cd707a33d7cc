"""dispatch_from_flat on QEMU 7.2 machines beyond tests/fixtures/qemu, byte for byte.

Each folder of tests/fixtures/qemu-flat/ holds what one QEMU machine printed for
`info mtree -f` and `info mtree -f -d` (see its README.md).  Blocks are compared
as a set, ` [MRU]` dropped, as in test_qemu_dispatch.py.
"""
from __future__ import annotations

import pytest

from pymem.qemu import dispatch_from_flat

from .qemu_fixtures import FLAT_CASES, flat_case, flatview_blocks

@pytest.mark.parametrize("case", FLAT_CASES)
def test_dispatch_matches_qemus_byte_for_byte(case):
    fx = flat_case(case)
    got = dispatch_from_flat(fx["flat"], fx["page_bits"], iommu=fx["iommu"])
    assert flatview_blocks(got) == flatview_blocks(fx["dispatch"])
    assert got.endswith("\n\n") and len(got) == len(fx["dispatch"].replace(" [MRU]", ""))


@pytest.mark.parametrize("case", FLAT_CASES)
def test_default_iommu_names_match_qemus(case):
    # A flat dump cannot say which regions are IOMMUs; QEMU 7.2's names do.
    fx = flat_case(case)
    got = dispatch_from_flat(fx["flat"], fx["page_bits"])
    assert flatview_blocks(got) == flatview_blocks(fx["dispatch"])


def test_every_case_is_complete():
    for case in FLAT_CASES:
        fx = flat_case(case)
        assert fx["flat"] and fx["dispatch"] and fx["page_bits"] in (10, 12), case
