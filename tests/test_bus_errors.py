"""Errors that say why: a MemTxError names the address space, the address,
the size, read or write, the region (or unassigned) and the reason, as text
and as attributes; `explain(addr, size)` says the same of an access before
it is made."""
from __future__ import annotations

import pytest

from pymem import (IOMMUTLBEntry, MemoryRegion, MemoryRegionOps, MemorySystem, MemTxError,
                   MemTxResult, machines)
from pymem.cli import main
from pymem.errors import InvalidArgumentError
from pymem.memtx import MemTxReason

DECODE_ERROR = MemTxResult.DECODE_ERROR


def _plain_ops(**sizes) -> MemoryRegionOps:
    return MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None, **sizes)


@pytest.fixture
def board():
    """RAM at 0, a ROM, a device taking only aligned 4-byte accesses, one
    that answers bus errors itself, and a DMA space behind a read-only IOMMU."""
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    root.add_subregion(0x10000, MemoryRegion.rom("bios", 0x1000, b"\x00" * 16))
    root.add_subregion(0x20000, MemoryRegion.io("timer", 0x100,
                                                _plain_ops(valid_min=4, valid_max=4)))

    def read(offset, size, attrs):
        return 0, MemTxResult.ERROR

    def write(offset, value, size, attrs):
        return MemTxResult.ERROR

    root.add_subregion(0x30000, MemoryRegion.io(
        "faulty", 0x100, MemoryRegionOps(read, write, with_attrs=True)))
    system = MemorySystem()
    cpu = system.address_space(root, "cpu")
    dma_root = MemoryRegion.container("dma-root", 1 << 32)
    read_only = MemoryRegion.iommu(
        "vtd", 1 << 32, lambda offset, flag: IOMMUTLBEntry(None, offset, offset, 0xfff, 1), cpu)
    dma_root.add_subregion(0, read_only)
    dma = system.address_space(dma_root, "dma")
    return cpu, dma


def _error(access) -> MemTxError:
    with pytest.raises(MemTxError) as caught:
        access()
    return caught.value


def test_an_access_to_unassigned_space_says_nothing_is_mapped_there(board):
    cpu, _ = board
    error = _error(lambda: cpu.ldl_le(0x5000))
    assert (error.space, error.addr, error.size, error.is_write) == ("cpu", 0x5000, 4, False)
    assert (error.region, error.reason) == (None, MemTxReason.UNASSIGNED)
    assert str(error) == ("read of 4 bytes at 0x5000 in address space 'cpu': DECODE_ERROR, "
                          "unassigned: nothing mapped there")


def test_a_long_read_names_the_piece_that_fell_off_the_end_of_ram(board):
    cpu, _ = board
    error = _error(lambda: cpu.read(0x800, 0x1000))
    assert error.reason is MemTxReason.UNASSIGNED and error.piece == ("cpu", 0x1000, 0x800)
    assert "(the piece of 2048 bytes at 0x1000 in 'cpu')" in str(error)


def test_a_write_to_rom_says_so(board):
    cpu, _ = board
    for access in (lambda: cpu.stl_le(0x10000, 1), lambda: cpu.write(0x10002, b"xx")):
        error = _error(access)
        assert error.is_write and error.result == DECODE_ERROR
        assert (error.region, error.region_kind, error.reason) == ("bios", "rom",
                                                                  MemTxReason.ROM_WRITE)
        assert str(error).endswith("from 'bios' (rom) at offset " f"{error.offset:#x}: "
                                   "write to ROM")


def test_a_size_the_device_does_not_accept_names_its_valid_sizes(board):
    cpu, _ = board
    error = _error(lambda: cpu.ldub(0x20010))
    assert (error.region, error.offset, error.reason) == ("timer", 0x10,
                                                          MemTxReason.INVALID_SIZE)
    assert str(error) == ("read of 1 byte at 0x20010 in address space 'cpu': DECODE_ERROR "
                          "from 'timer' (io) at offset 0x10: size 1 outside the device's "
                          "valid sizes 4..4")


def test_an_unaligned_load_the_device_refuses_says_unaligned(board):
    cpu, _ = board
    error = _error(lambda: cpu.ldl_le(0x20002))
    assert error.reason is MemTxReason.UNALIGNED
    assert "unaligned (4 bytes at offset 0x2) and the device refuses unaligned" in str(error)
    # A bulk read splits it into aligned 2-byte pieces, which the device refuses by size.
    split = _error(lambda: cpu.read(0x20002, 4))
    assert split.reason is MemTxReason.INVALID_SIZE and "2-byte pieces" in str(split)


def test_an_error_the_device_answers_itself_is_the_devices(board):
    cpu, _ = board
    for access in (lambda: cpu.ldl_le(0x30000), lambda: cpu.stl_le(0x30004, 5),
                   lambda: cpu.read(0x30000, 8)):
        error = _error(access)
        assert error.result == MemTxResult.ERROR
        assert (error.region, error.reason) == ("faulty", MemTxReason.DEVICE_ERROR)
        assert "the device returned an error" in str(error)


def test_a_load_running_out_of_ram_says_the_ram_is_no_device(board):
    cpu, _ = board
    error = _error(lambda: cpu.ldl_le(0xffe))
    assert (error.region, error.reason) == ("ram", MemTxReason.NOT_A_DEVICE)
    assert "run past the end of its memory section" in str(error)


def test_an_iommu_refusing_a_write_says_permission_denied(board):
    _, dma = board
    error = _error(lambda: dma.write(0x40, b"1234"))
    assert (error.space, error.region, error.reason) == ("dma", "vtd",
                                                        MemTxReason.IOMMU_DENIED)
    assert "IOMMU permission denied" in str(error) and "allow a write" in str(error)
    # Reads pass it, into the CPU's space, where nothing is mapped at 0x5000.
    error = _error(lambda: dma.ldl_le(0x5000))
    assert error.reason is MemTxReason.UNASSIGNED and error.piece == ("cpu", 0x5000, 4)


def test_successful_accesses_never_diagnose(board, monkeypatch):
    import pymem.buserror

    def refuse(*args, **kwargs):
        raise AssertionError("diagnosed an access that succeeded")

    monkeypatch.setattr(pymem.buserror, "diagnose", refuse)
    cpu, _ = board
    cpu.stl_le(0x10, 7)
    assert cpu.ldl_le(0x10) == 7 and cpu.read(0x20000, 4) == bytes(4)
    cpu.write(0x20004, b"\x01\x02\x03\x04")
    # ... and a diagnosis that fails leaves the bus error as it was.
    error = _error(lambda: cpu.ldl_le(0x5000))
    assert error.reason is None and error.space == "cpu" and error.result == DECODE_ERROR


def test_explain_with_a_size_says_whether_the_access_fails_and_why(board):
    cpu, _ = board
    assert cpu.explain(0x10).access is None
    ok = cpu.explain(0x10, 4, is_write=True).access
    assert ok.failure is None and "the map accepts it" in str(ok)
    rom = cpu.explain(0x10004, 4, is_write=True)
    assert rom.access.failure.reason is MemTxReason.ROM_WRITE
    assert ("access: a 4-byte write fails: 'bios' (rom) at offset 0x4, the piece of 4 bytes "
            "at 0x10004 in 'cpu': write to ROM") in str(rom)
    with pytest.raises(InvalidArgumentError, match="an access of 0 bytes"):
        cpu.explain(0x10, 0)


def test_cli_explain_size_write_on_q35_says_the_bios_is_rom(capsys):
    assert main(["explain", "0xfffffff0", "--size", "4", "--write"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  access: a 4-byte write fails: 'pc.bios' (rom) at offset 0x3fff0, the piece of 4 "
        "bytes at 0xfffffff0 in 'memory': write to ROM")
    assert main(["explain", "0x1000", "--write"]) == 2
    assert "--write goes with --size" in capsys.readouterr().err


def test_a_dma_into_unassigned_space_on_q35_names_the_space_and_the_reason():
    system = machines.load("q35")
    ahci = next(a for a in system.address_spaces if a.name == "ich9-ahci")
    error = _error(lambda: ahci.write(0xc0000000, b"\x00" * 8))
    assert str(error) == ("write of 8 bytes at 0xc0000000 in address space 'ich9-ahci': "
                          "DECODE_ERROR, unassigned: nothing mapped there")


def test_the_readme_shows_these_messages(board):
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "explain-and-compare.md").read_text()
    section = readme.split("## Comparing and drawing maps")[1].split("\n## ")[0]
    shown = section.split("A failed access says why.")[1].split("```")[1].strip().splitlines()
    cpu, _ = board
    ahci = next(a for a in machines.load("q35").address_spaces if a.name == "ich9-ahci")
    assert shown == [str(_error(lambda: cpu.ldl_le(0x20002))),
                     str(_error(lambda: ahci.write(0xc0000000, b"\0" * 8)))]
