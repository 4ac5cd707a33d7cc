"""dispatch_from_flat on QEMU 7.2 machines beyond tests/fixtures/qemu, byte for byte.

Each folder of tests/fixtures/qemu-flat/ holds what one QEMU machine printed for
`info mtree -f` and `info mtree -f -d` (see its README.md).  Blocks are compared
as a set, ` [MRU]` dropped, as in test_qemu_dispatch.py.
"""
from __future__ import annotations

import pytest

from pymem.qemu import dispatch_from_flat

from .qemu_fixtures import FLAT_CASES, flat_case, flatview_blocks

# Known bugs in our code, one case each; strict, so a fix shows up as XPASS.
_NV_RAM = pytest.mark.xfail(strict=True, reason=(
    "pymem/qemu/flat.py _RANGE does not accept the 'nv-' type prefix QEMU prints for "
    "non-volatile ranges in `info mtree -f` (nvdimm: '(prio 0, nv-ram): nv0')"))
_PARSE_BUGS = {"x86_64-q35-nvdimm": _NV_RAM}

_HEURISTIC = ("the default IOMMU-name heuristic ('iommu' in the name) is wrong here: ")
_HEURISTIC_BUGS = {
    "x86_64-q35-intel-iommu": _HEURISTIC + "'intel_iommu' is VT-d's register block (i/o), "
                              "not an IOMMU region",
    "x86_64-q35-intel-iommu-dmar": _HEURISTIC + "VT-d's IOMMU regions are 'vtd-BB.F-dmar'; "
                                   "'intel_iommu' is its register block",
    "x86_64-q35-amd-iommu": _HEURISTIC + "'amd_iommu_ir' is an i/o region, not an IOMMU",
    "arm-mps2-an505": _HEURISTIC + "the TrustZone MPC's IOMMU region is 'tz-mpc-upstream'",
}


def _cases(bugs):
    def mark(bug):
        return bug if isinstance(bug, pytest.MarkDecorator) else pytest.mark.xfail(strict=True, reason=bug)
    return [pytest.param(c, marks=mark(bugs[c])) if c in bugs else c for c in FLAT_CASES]


@pytest.mark.parametrize("case", _cases(_PARSE_BUGS))
def test_dispatch_matches_qemus_byte_for_byte(case):
    fx = flat_case(case)
    got = dispatch_from_flat(fx["flat"], fx["page_bits"], iommu=fx["iommu"])
    assert flatview_blocks(got) == flatview_blocks(fx["dispatch"])
    assert got.endswith("\n\n") and len(got) == len(fx["dispatch"].replace(" [MRU]", ""))


@pytest.mark.parametrize("case", _cases({**_HEURISTIC_BUGS, **_PARSE_BUGS}))
def test_default_iommu_names_match_qemus(case):
    fx = flat_case(case)
    got = dispatch_from_flat(fx["flat"], fx["page_bits"])
    assert flatview_blocks(got) == flatview_blocks(fx["dispatch"])


def test_every_case_is_complete():
    for case in FLAT_CASES:
        fx = flat_case(case)
        assert fx["flat"] and fx["dispatch"] and fx["page_bits"] in (10, 12), case
