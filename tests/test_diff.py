"""`diff_systems(a, b)` and `pymem mtree diff A B`: what changed between two
machines' maps, per address space; exit 0 equal, 1 different, 2 unusable input."""
from __future__ import annotations

from pathlib import Path

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, machines
from pymem.cli import main
from pymem.diff import (ADDED, DISABLED, MOVED, REPRIORITISED, RESIZED, RETARGETED,
                        diff_systems)
from pymem.errors import ArgumentTypeError
from pymem.qemu import load_mtree

FIX = Path(__file__).parent / "fixtures" / "qemu"
RESET = FIX / "x86_64-q35-reset"
BOOTED = FIX / "x86_64-q35-booted"

BOARD = '''
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem

def build(bar=0xfe000000):
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x100000))
    ops = MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)
    pci = MemoryRegion.container("pci", 1 << 32)
    root.add_subregion(0, pci, -1)
    pci.add_subregion(bar, MemoryRegion.io("bar0", 0x1000, ops))
    system = MemorySystem()
    system.address_space(root, "cpu")
    return system

def programmed():
    return build(0xfebf0000)
'''


def _dump(folder: Path) -> MemorySystem:
    return load_mtree((folder / "mtree-D.txt").read_text(), str(folder / "hints.json"))


def _ops() -> MemoryRegionOps:
    return MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)


def _board(bar_at: int = 0xfe000000):
    """A small board: RAM, a PCI container under it, a BAR-like device in
    it, and an alias onto the RAM; returns the system and its regions."""
    root = MemoryRegion.container("board", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x100000)
    root.add_subregion(0, ram)
    pci = MemoryRegion.container("pci", 1 << 32)
    root.add_subregion(0, pci, -1)
    bar = MemoryRegion.io("bar0", 0x1000, _ops())
    pci.add_subregion(bar_at, bar)
    window = MemoryRegion.alias("low-ram", ram, 0x1000, 0x1000)
    root.add_subregion(0x80000000, window)
    system = MemorySystem()
    system.address_space(root, "cpu")
    return system, {"root": root, "ram": ram, "pci": pci, "bar": bar, "window": window}


def test_a_machine_compared_with_itself_is_equal():
    diff = diff_systems(machines.load("q35"), machines.load("q35"))
    assert diff.equal
    assert str(diff) == "no differences (8 address spaces)"


def test_moving_a_bar_reads_as_one_moved_region_and_its_flat_ranges():
    before, _ = _board()
    after, regions = _board()
    regions["bar"].set_address(0xfebf0000)
    diff = diff_systems(before, after)
    cpu = diff.space("cpu")
    assert not diff.equal and not cpu.equal
    assert [(c.path, c.what) for c in cpu.regions] == [("board/pci/bar0", (MOVED,))]
    assert cpu.moved[0].a.addr == 0xfe000000 and cpu.moved[0].b.addr == 0xfebf0000
    assert [(c.side, c.addr, c.end, c.path) for c in cpu.flat] == [
        ("a", 0xfe000000, 0xfe001000, "board/pci/bar0"),
        ("b", 0xfebf0000, 0xfebf1000, "board/pci/bar0")]
    text = str(diff)
    assert "moved         board/pci/bar0 @0xfe000000: at 0xfe000000 -> 0xfebf0000" in text
    assert "- 0x00000000fe000000-0x00000000fe000fff 'board/pci/bar0' @0x0" in text
    assert "+ 0x00000000febf0000-0x00000000febf0fff 'board/pci/bar0' @0x0" in text


def test_each_kind_of_region_change_is_named():
    before, _ = _board()
    after, r = _board()
    with after.transaction():
        r["ram"].set_size(0x80000)
        r["pci"].del_subregion(r["bar"])
        r["pci"].add_subregion(0xfe000000, r["bar"], 5)
        r["window"].set_alias_offset(0x2000)
        r["root"].add_subregion(0x90000000, MemoryRegion.io("new-dev", 0x100, _ops()))
        r["pci"].set_enabled(False)
    cpu = diff_systems(before, after).space("cpu")
    what = {c.path: c.what for c in cpu.regions}
    assert what == {"board/ram": (RESIZED,), "board/pci": (DISABLED,),
                    "board/pci/bar0": (REPRIORITISED,), "board/low-ram": (RETARGETED,),
                    "board/new-dev": (ADDED,)}
    assert [c.path for c in cpu.added] == ["board/new-dev"]
    assert [c.path for c in cpu.disabled] == ["board/pci"]
    back = diff_systems(after, before).space("cpu")
    assert [c.path for c in back.removed] == ["board/new-dev"]
    assert [c.path for c in back.enabled] == ["board/pci"]
    assert "alias of 'board/ram' +0x2000 -> 'board/ram' +0x1000" in str(back)


def test_of_several_regions_of_one_name_only_the_one_that_moved_is_reported():
    def machine(moved: bool) -> MemorySystem:
        root = MemoryRegion.container("board", 1 << 32)
        for i in range(4):
            at = 0x10000 * i + (0x8000 if moved and i == 2 else 0)
            root.add_subregion(at, MemoryRegion.io("pam", 0x1000, _ops()))
        system = MemorySystem()
        system.address_space(root, "cpu")
        return system

    changes = diff_systems(machine(False), machine(True)).space("cpu").regions
    assert [(c.what, c.a.addr, c.b.addr) for c in changes] == [((MOVED,), 0x20000, 0x28000)]


def test_q35_at_reset_and_after_its_firmware_ran_differ_in_pam_bars_and_io():
    diff = diff_systems(_dump(RESET), _dump(BOOTED))
    memory = diff.space("memory")
    assert [(c.path, c.b.addr) for c in memory.added if c.path == "system/pci/ahci"] == [
        ("system/pci/ahci", 0xfebff000)]
    # Firmware shadowed the BIOS: 13 PAM windows stop going to PCI.
    assert len(memory.disabled) == 13
    assert {c.path for c in memory.disabled} == {"system/pam-pci"}
    # ... and 13 go to RAM instead (11 of them read-only).
    assert sorted(c.path for c in memory.enabled) == ["system/pam-ram"] * 2 + [
        "system/pam-rom"] * 11
    assert all(c.b.readonly for c in memory.enabled if c.path == "system/pam-rom")
    io = diff.space("I/O")
    assert [(c.path, c.a.addr, c.b.addr) for c in io.moved] == [("io/ich9-pm", 0x0, 0x600)]
    assert any(c.side == "b" and c.path == "system/pci/ahci" and c.addr == 0xfebff000
               for c in memory.flat)
    # The spaces on one tree share its changes: printed once for all of them.
    text = str(diff)
    assert text.count("disabled      system/pam-pci @0xc0000") == 1


def test_cli_exit_0_when_equal_and_1_with_the_differences(capsys, tmp_path, monkeypatch):
    (tmp_path / "myboard_diff.py").write_text(BOARD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["mtree", "diff", "q35", "q35"]) == 0
    assert capsys.readouterr().out == "no differences (8 address spaces)\n"
    assert main(["mtree", "diff", "myboard_diff:build", "myboard_diff:programmed"]) == 1
    out = capsys.readouterr().out
    assert "moved         board/pci/bar0 @0xfe000000: at 0xfe000000 -> 0xfebf0000" in out


def test_cli_takes_dumps_with_hints_directories_and_bundled_machines(capsys):
    assert main(["mtree", "diff", str(RESET / "mtree-D.txt"), str(BOOTED / "mtree-D.txt"),
                 "--hints-a", str(RESET / "hints.json"),
                 "--hints-b", str(BOOTED / "hints.json")]) == 1
    by_files = capsys.readouterr().out
    assert "added         system/pci/ahci @0xfebff000" in by_files
    assert main(["mtree", "diff", str(RESET), str(BOOTED)]) == 1
    assert capsys.readouterr().out == by_files
    # The bundled q35 is the booted dump.
    assert main(["mtree", "diff", str(BOOTED), "q35"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["nope", "q35"], "A 'nope': no such file or directory, not a bundled machine"),
    (["q35", "no_such_module_y:f"], "B no_such_module_y:f: cannot import"),
    ([str(RESET / "mtree.txt"), "q35"], "indentation does not follow the tree"),
    (["q35", "q35", "--hints-b", str(RESET / "hints.json")], "hints go with a dump file"),
    ([str(FIX), "q35"], "a directory without mtree-D.txt"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert main(["mtree", "diff"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pymem mtree diff: ") and message in err


def test_diff_systems_refuses_what_is_not_a_system():
    with pytest.raises(ArgumentTypeError, match="B must be a MemorySystem, not int"):
        diff_systems(machines.load("q35"), 42)  # type: ignore[arg-type]


def test_address_spaces_on_one_side_only_are_listed():
    a, _ = _board()
    b, regions = _board()
    b.address_space(regions["pci"], "dma")
    diff = diff_systems(a, b)
    assert diff.only_b == ("dma",) and diff.only_a == ()
    assert not diff.equal and "address spaces only in B: 'dma'" in str(diff)


def test_the_readme_shows_what_mtree_diff_prints_for_q35_reset_and_booted(capsys):
    readme = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "explain-and-compare.md").read_text()
    section = readme.split("## Comparing and drawing maps")[1].split("\n## ")[0]
    block = section.split("$ pymem mtree diff ")[1].split("```")[0]
    command, *shown = block.splitlines()
    assert main(["mtree", "diff"] + command.split()) == 1
    printed = capsys.readouterr().out.splitlines()
    at = 0
    for line in shown:   # the shown lines, in order; "  ..." skips some
        if line == "  ...":
            continue
        at = printed.index(line, at) + 1


def test_the_two_bundled_machines_differ_in_their_chipsets(capsys):
    assert machines.available() == ["pc", "q35"]
    diff = diff_systems(machines.load("pc"), machines.load("q35"))
    assert set(diff.only_a) == {"i440FX", "PIIX3", "piix3-ide", "PIIX4_PM"}
    assert set(diff.only_b) == {"ich9-ahci", "mch", "ICH9-LPC", "ICH9-SMB"}
    io = diff.space("I/O")
    assert [(c.path, c.a.addr, c.b.addr) for c in io.moved] == [
        ("io/acpi-pci-hotplug", 0xae00, 0xcc0), ("io/acpi-cpu-hotplug", 0xaf00, 0xcd8)]
    assert [(c.path, c.a.priority, c.b.priority) for c in io.reprioritised] == [
        ("io/pm-smbus", 0, 1)]
    assert "system/pci/ahci" in {c.path for c in diff.space("memory").added}
    assert main(["mtree", "diff", "pc", "q35"]) == 1
    assert capsys.readouterr().out == f"{diff}\n"
