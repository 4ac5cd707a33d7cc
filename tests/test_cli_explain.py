"""`pymem explain ADDR` and `pymem check` on a machine: bundled, a dump with
hints, or a user's `module:callable`; exit 2 with one line on bad input."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pymem.cli import main

FIX = Path(__file__).parent / "fixtures" / "qemu" / "x86_64-q35-booted"

BOARD = '''
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem

def build():
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    ops = MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)
    root.add_subregion(0x8000, MemoryRegion.io("dev", 0x1000, ops))
    system = MemorySystem()
    system.address_space(root, "cpu")
    return system

def clean():
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    system = MemorySystem()
    system.address_space(root, "cpu")
    return system

def broken():
    raise RuntimeError("no such board")

def not_a_system():
    return 42
'''


@pytest.fixture
def board(tmp_path, monkeypatch):
    (tmp_path / "myboard_explain.py").write_text(BOARD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_explain_on_the_bundled_q35_names_the_region_and_the_chain(capsys):
    assert main(["explain", "0xfffffff0"]) == 0
    out = capsys.readouterr().out
    assert "answered by: 'pc.bios' (rom) at offset 0x3fff0" in out
    assert "chain: 'system' @0x0 -> 'pci' @0x0 -> 'pc.bios' @0xfffc0000" in out


def test_explain_chooses_the_address_space_with_as(capsys):
    assert main(["explain", "0x71", "--as", "I/O"]) == 0
    assert "answered by: 'rtc' (io) at offset 0x1" in capsys.readouterr().out


def test_explain_on_a_dump_with_hints(capsys):
    assert main(["explain", "0xb0000000", "--mtree", str(FIX / "mtree-D.txt"),
                 "--hints", str(FIX / "hints.json")]) == 0
    assert "answered by: 'pcie-mmcfg-mmio' (io)" in capsys.readouterr().out


def test_explain_and_check_on_a_users_machine_function(board, capsys):
    assert main(["explain", "0x8010", "--machine", "myboard_explain:build"]) == 0
    out = capsys.readouterr().out
    assert "0x8010 in address space 'cpu'" in out
    assert "'ram' (ram): added earlier than 'dev' at equal priority 0 in 'board'" in out
    assert main(["check", "--machine", "myboard_explain:build"]) == 1
    out = capsys.readouterr().out
    assert out.endswith("1 finding\n") and "overlaps 'dev'" in out
    assert main(["check", "--machine", "myboard_explain:clean"]) == 0
    assert capsys.readouterr().out == "0 findings\n"


def test_check_on_q35_finds_the_shadowed_option_rom_and_exits_1(capsys):
    assert main(["check", "--machine", "q35"]) == 1
    assert "warning: system/pci/pc.rom: never visible" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["explain", "0x10000000000000000"], "address 0x10000000000000000 is outside the 64-bit"),
    (["explain", "-1"], "address -0x1 is outside the 64-bit"),
    (["explain", "zz"], "ADDR 'zz' is not a number"),
    (["explain", "0", "--as", "nope"], "no address space named 'nope'"),
    (["explain", "0", "--machine", "nope"], "no bundled machine named 'nope'"),
    (["check", "--machine", "no_such_module_x:f"], "cannot import 'no_such_module_x'"),
    (["check", "--machine", "myboard_explain:missing"], "has no function 'missing'"),
    (["check", "--machine", "myboard_explain:broken"], "broken() raised RuntimeError: no such"),
    (["check", "--machine", "myboard_explain:not_a_system"], "returned a int, not a Memory"),
    (["check", "--hints", "h.json"], "--hints goes with --mtree"),
])
def test_bad_input_exits_2_with_one_line(board, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_the_readme_shows_what_explain_and_check_print_on_q35(capsys):
    readme = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "explain-and-compare.md").read_text()
    section = readme.split("## Explaining a map")[1].split("\n## ")[0]
    shown = re.findall(r"^\$ pymem (.*)\n((?:(?!\$ |```).*\n)*)", section, re.M)
    assert [command for command, _ in shown] == ["explain 0xc1000", "explain 0xc0000000",
                                                 "check"]
    for command, output in shown:
        main(command.split())
        assert capsys.readouterr().out == output, command


def test_find_prints_every_region_of_a_name_with_its_path(capsys):
    assert main(["find", "isa-bios"]) == 0
    assert capsys.readouterr().out == ("system/pci/isa-bios (alias, size 0x20000, at 0xe0000, "
                                       "prio 1)\n")
    assert main(["find", "no-such-region"]) == 1
    assert capsys.readouterr().out == ""


def test_the_front_page_shows_what_explain_and_check_print_on_q35(capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Why does an address go there?")[1].split("\n## ")[0]
    shown = re.findall(r"^\$ pymem (.*)\n((?:(?!\$ |```).*\n)*)", section, re.M)
    assert [command for command, _ in shown] == ["explain 0xfebff000", "check"]
    for command, output in shown:
        main(command.split())
        assert capsys.readouterr().out == output, command
    assert "![pymem map of q35's memory address space](docs/img/map-q35.png)" in section
