"""`info mtree` out and in: every QEMU 7.2 fixture loaded from its `-D` dump
and printed back byte for byte (block order and ` [MRU]` aside)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pymem import DumpParseError, MemoryRegion, MemoryRegionOps, MemorySystem
from pymem.qemu import format_mtree, load_mtree

from .qemu_fixtures import CASES, FIXTURES, flatview_blocks, hints, read


def tree_blocks(text: str) -> list:
    """Top-level `address-space:`/`memory-region:` blocks, sorted (QEMU prints
    them in hash-table order)."""
    return sorted(b.strip("\n") for b in text.split("\n\n") if b.strip())


@pytest.fixture(scope="module", params=CASES)
def loaded(request):
    case = request.param
    return case, load_mtree(read(case, "mtree-D.txt"), hints(case))


def test_flat_output_matches_qemu(loaded):
    case, system = loaded
    out = format_mtree(system, flat=True)
    assert flatview_blocks(out) == flatview_blocks(read(case, "flat.txt"))
    assert out.endswith("\n\n")


def test_dispatch_output_matches_qemu(loaded):
    case, system = loaded
    out = format_mtree(system, flat=True, dispatch=True)
    assert flatview_blocks(out) == flatview_blocks(read(case, "dispatch.txt"))


def test_tree_with_disabled_regions_matches_the_dump_it_was_loaded_from(loaded):
    case, system = loaded
    assert tree_blocks(format_mtree(system, disabled=True)) == \
        tree_blocks(read(case, "mtree-D.txt"))


def test_plain_tree_matches_qemus_info_mtree(loaded):
    case, system = loaded
    assert tree_blocks(format_mtree(system)) == tree_blocks(read(case, "mtree.txt"))


def test_address_spaces_are_created_in_qemus_order(loaded):
    case, system = loaded
    order = [line.split('"')[1] for line in hints(case)["as_order"]]
    assert [asp.name for asp in system.address_spaces] == order


def test_hints_may_be_a_path():
    case = "x86_64-q35-booted"
    system = load_mtree(read(case, "mtree-D.txt"), FIXTURES / case / "hints.json")
    assert system.page_bits == 12
    assert len(system.address_spaces) == 8


def test_region_printed_twice_with_the_same_subtree_is_one_object():
    system = load_mtree(read("aarch64-sbsa-ref-reset", "mtree-D.txt"),
                        hints("aarch64-sbsa-ref-reset"))
    roots = {asp.name: asp.root for asp in system.address_spaces}
    secure = roots["cpu-secure-memory-0"]
    assert roots["memory"] in secure.subregions
    assert roots["memory"].priority == -1


def test_hint_naming_no_line_of_the_dump_is_refused():
    case = "x86_64-q35-booted"
    bad = dict(hints(case))
    bad["containers"] = ["0000000000001000-0000000000001fff (prio 0, i/o): nowhere"]
    with pytest.raises(DumpParseError, match="containers names no line.*nowhere"):
        load_mtree(read(case, "mtree-D.txt"), bad)


def test_as_order_naming_an_unknown_space_is_refused():
    case = "arm-vexpress-a9-reset"
    bad = dict(hints(case))
    bad["as_order"] = ['AS "ghost", root: system']
    with pytest.raises(DumpParseError, match="ghost"):
        load_mtree(read(case, "mtree-D.txt"), bad)


def test_a_line_that_is_not_mtree_output_is_refused_with_its_number():
    with pytest.raises(DumpParseError, match="line 2: not an `info mtree` line"):
        load_mtree("address-space: memory\n  garbage\n")


def test_imported_mmio_reads_zero_and_ignores_writes():
    system = load_mtree(read("x86_64-q35-booted", "mtree-D.txt"), hints("x86_64-q35-booted"))
    memory = next(a for a in system.address_spaces if a.name == "memory")
    hpet = memory.flatview.lookup(0xfed00000).region
    assert hpet.kind == "io"
    assert hpet.ops.read(0, 4) == 0 and hpet.ops.write(0, 1, 4) is None


def test_read_only_alias_hint_makes_the_range_rom():
    system = load_mtree(read("x86_64-q35-booted", "mtree-D.txt"), hints("x86_64-q35-booted"))
    memory = next(a for a in system.address_spaces if a.name == "memory")
    fr = memory.flatview.lookup(0xf0000)
    assert fr.region.name == "pc.ram" and fr.readonly


def test_a_built_tree_prints_like_qemu():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    ram = MemoryRegion.ram("pc.ram", 0x8000000)
    root.add_subregion(0, MemoryRegion.alias("ram-below-4g", ram, 0, 0x8000000))
    ops = MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)
    hpet = MemoryRegion.io("hpet", 0x400, ops)
    root.add_subregion(0xfed00000, hpet)
    gone = MemoryRegion.io("gone", 0x10, ops)
    gone.set_enabled(False)
    root.add_subregion(0x1000, gone, 1)
    system.address_space(root, "memory")
    system.address_space(root, "cpu-memory-0")
    assert format_mtree(system) == (
        "address-space: cpu-memory-0\n"
        "address-space: memory\n"
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
        "    0000000000000000-0000000007ffffff (prio 0, ram): alias ram-below-4g @pc.ram "
        "0000000000000000-0000000007ffffff\n"
        "    00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\n"
        "\n"
        "memory-region: pc.ram\n"
        "  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram\n"
        "\n")
    assert "    0000000000001000-000000000000100f (prio 1, i/o): gone [disabled]\n" in \
        format_mtree(system, disabled=True)
    assert format_mtree(system, flat=True) == (
        "FlatView #0\n"
        ' AS "memory", root: system\n'
        ' AS "cpu-memory-0", root: system\n'
        " Root memory region: system\n"
        "  0000000000000000-0000000007ffffff (prio 0, ram): pc.ram\n"
        "  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\n"
        "\n")


def test_round_trip_through_the_printed_dump_is_stable(loaded):
    case, system = loaded
    text = format_mtree(system, disabled=True)
    again = load_mtree(text, hints(case))
    assert format_mtree(again, disabled=True) == text
    assert flatview_blocks(format_mtree(again, flat=True, dispatch=True)) == \
        flatview_blocks(read(case, "dispatch.txt"))


def test_cli_prints_the_flat_views_of_a_dump():
    case = FIXTURES / "x86_64-q35-booted"
    out = subprocess.run([sys.executable, "-m", "pymem", "mtree", str(case / "mtree-D.txt"),
                          "--hints", str(case / "hints.json"), "-f"],
                         capture_output=True, text=True, check=True).stdout
    assert flatview_blocks(out) == flatview_blocks((case / "flat.txt").read_text())


def test_cli_reports_a_missing_dump_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "pymem", "mtree", "/nonexistent"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("pymem mtree: cannot read /nonexistent")


def test_an_imported_iommu_answers_accesses_as_unassigned_until_given_a_translate():
    from pymem import MemTxResult
    from pymem.qemu import load_mtree

    from .qemu_fixtures import hints, read

    system = load_mtree(read("aarch64-sbsa-ref-reset", "mtree-D.txt"),
                        hints("aarch64-sbsa-ref-reset"))
    asp = next(a for a in system.address_spaces if a.name == "smmuv3-iommu-memory-region-0-0")
    buf = bytearray(4)
    assert asp.rw(0x1000, buf, False) == MemTxResult.DECODE_ERROR and buf == bytes(4)


def test_ram_device_regions_print_and_load_as_ramd():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    root.add_subregion(0xfe000000, MemoryRegion.ram_device("0000:01:00.0 BAR 0 mmaps[0]",
                                                           0x100000))
    system.address_space(root, "memory")
    text = format_mtree(system)
    assert "    00000000fe000000-00000000fe0fffff (prio 0, ramd): 0000:01:00.0 BAR 0 mmaps[0]\n" \
        in text
    again = load_mtree(text)
    memory = again.address_spaces[0]
    assert memory.flatview.lookup(0xfe000000).region.kind == "ram_device"
    assert format_mtree(again) == text
    assert format_mtree(again, flat=True) == format_mtree(system, flat=True)
