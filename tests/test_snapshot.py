"""Snapshots: restore puts memory and devices back, incrementally, across
commits; files round-trip and bad ones are refused whole; readers racing a
restore see old or restored bytes only."""
import io
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymem import (DIRTY_MEMORY_VGA, MemoryRegion, MemoryRegionOps, MemorySystem,
                   SnapshotError, SnapshotFormatError)
from pymem.snapshot import MAGIC, Snapshot

PAGE = 0x1000


class Timer:
    """A device with state of its own, taking part through save()/load()."""

    def __init__(self):
        self.count = 0

    def read(self, offset, size):
        return self.count

    def write(self, offset, value, size):
        self.count = value

    def save(self):
        return self.count.to_bytes(4, "little")

    def load(self, state):
        self.count = int.from_bytes(state, "little")


def board():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", 16 * PAGE)
    high = MemoryRegion.ram("high", 4 * PAGE)
    rom = MemoryRegion.rom("rom", data=b"boot" * 0x400)
    timer = Timer()
    io_ = MemoryRegion.io("timer", 4, MemoryRegionOps(timer.read, timer.write))
    root.add_subregion(0, ram)
    root.add_subregion(0x100000, high)
    root.add_subregion(0x200000, rom)
    root.add_subregion(0x300000, io_)
    asp = system.address_space(root, "mem")
    return system, root, asp, ram, high, rom, timer


def test_restore_puts_back_ram_rom_and_device_state():
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x10, b"before")
    asp.stl_le(0x300000, 7)
    snap = system.snapshot()
    asp.write(0x10, b"AFTER!")
    asp.write(0x100000 + 3 * PAGE, b"x" * PAGE)
    rom.buffer[0:4] = b"oops"           # a loader rewriting the ROM
    asp.stl_le(0x300000, 99)
    assert system.restore(snap) == []
    assert asp.read(0x10, 6) == b"before"
    assert bytes(high.buffer) == bytes(4 * PAGE)
    assert bytes(rom.buffer[:4]) == b"boot"
    assert timer.count == 7 and asp.ldl_le(0x300000) == 7


def test_restore_writes_only_the_pages_dirtied_since():
    system, root, asp, ram, high, rom, timer = board()
    snap = system.snapshot()
    asp.stb(2 * PAGE, 1)          # seen by pymem: dirty
    ram.buffer[5 * PAGE] = 1      # behind pymem's back: not dirty, so not restored
    system.restore(snap)
    assert ram.buffer[2 * PAGE] == 0 and ram.buffer[5 * PAGE] == 1
    ram.mark_dirty(5 * PAGE, 1)   # reported: restored next time
    system.restore(snap)
    assert ram.buffer[5 * PAGE] == 0
    ram.buffer[5 * PAGE] = 1
    system.restore(snap, full=True)   # the full path writes every page
    assert ram.buffer[5 * PAGE] == 0


def test_a_later_snapshot_shares_the_pages_nobody_wrote():
    system, root, asp, ram, high, rom, timer = board()
    first = system.snapshot()
    asp.stb(3 * PAGE, 0x33)
    second = system.snapshot()
    a, b = first._images[ram.id].pages, second._images[ram.id].pages
    assert [i for i in range(16) if a[i] is not b[i]] == [3]
    system.restore(first)
    assert ram.buffer[3 * PAGE] == 0
    system.restore(second)   # not the baseline: the pages that differ are written
    assert ram.buffer[3 * PAGE] == 0x33


@given(steps=st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 20 * PAGE - 1),
              st.binary(min_size=1, max_size=3 * PAGE)),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("restore"), st.integers(0, 7))), max_size=25))
def test_restore_matches_a_model_of_the_memory(steps):
    system, root, asp, ram, high, rom, timer = board()
    memory = bytearray(20 * PAGE)   # ram then high, as the model sees them

    def write(addr, data):   # ram is pages 0..15 of the model, high 16..19
        data = data[:20 * PAGE - addr]
        memory[addr:addr + len(data)] = data
        split = max(0, min(len(data), 16 * PAGE - addr))
        if split:
            asp.write(addr, data[:split])
        if split < len(data):
            asp.write(0x100000 + addr + split - 16 * PAGE, data[split:])

    snaps = []
    for step in steps:
        if step[0] == "write":
            write(step[1], step[2])
        elif step[0] == "snapshot":
            snaps.append((system.snapshot(), bytes(memory)))
        elif snaps:
            snap, saved = snaps[step[1] % len(snaps)]
            system.restore(snap)
            memory[:] = saved
        assert bytes(ram.buffer) + bytes(high.buffer) == bytes(memory)


def test_snapshots_follow_regions_across_commits():
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x100000, b"high")
    snap = system.snapshot()
    asp.write(0x100000, b"HIGH")
    asp.stb(12 * PAGE, 9)
    high.set_address(0x180000)           # moved
    ram.set_size(8 * PAGE)               # resized: page 12 is out of the window, still memory
    extra = MemoryRegion.ram("extra", PAGE)
    root.add_subregion(0x400000, extra)  # added
    assert system.restore(snap) == [extra]
    assert asp.read(0x180000, 4) == b"high" and ram.buffer[12 * PAGE] == 0
    assert "extra" not in snap.regions


def test_restore_refuses_a_snapshot_whose_regions_were_removed_and_writes_nothing():
    system, root, asp, ram, high, rom, timer = board()
    snap = system.snapshot()
    asp.stb(0, 0x55)
    root.del_subregion(high)
    with pytest.raises(SnapshotError, match="'high'"):
        system.restore(snap)
    assert ram.buffer[0] == 0x55


def test_restore_refuses_another_systems_snapshot():
    one = board()
    two = board()
    snap = one[0].snapshot()
    with pytest.raises(SnapshotError, match="another MemorySystem"):
        two[0].restore(snap)


def test_a_snapshot_file_round_trips():
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x20, b"saved")
    asp.stl_le(0x300000, 42)
    f = io.BytesIO()
    system.snapshot().save(f)
    assert f.getvalue().startswith(MAGIC)
    asp.write(0x20, b"lost!")
    asp.stl_le(0x300000, 1)
    system.restore(Snapshot.load(io.BytesIO(f.getvalue()), system))
    assert asp.read(0x20, 5) == b"saved" and timer.count == 42


def _saved_file():
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x20, b"saved")
    f = io.BytesIO()
    system.snapshot().save(f)
    return f.getvalue()


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "truncated"),
    (lambda data: data[:10], "truncated"),
    (lambda data: data[:0x100] + bytes([data[0x100] ^ 1]) + data[0x101:], "checksum"),
    (lambda data: b"GARBAGE!" + data[8:], "not a pymem snapshot"),
    (lambda data: data[:8] + b"\x09\x00" + data[10:], "version 9"),
    (lambda data: b"", "not a pymem snapshot"),
])
def test_a_damaged_or_foreign_file_is_refused_and_nothing_restored(damage, message):
    data = damage(_saved_file())
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x20, b"kept!")
    with pytest.raises(SnapshotFormatError, match=message):
        system.restore(Snapshot.load(io.BytesIO(data), system))
    assert asp.read(0x20, 5) == b"kept!"


def test_a_file_for_another_board_names_the_regions_it_lacks(tmp_path):
    path = tmp_path / "snap.bin"
    path.write_bytes(_saved_file())
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 16 * PAGE))
    system.address_space(root, "mem")
    with pytest.raises(SnapshotError, match="'high'"):
        Snapshot.load(path, system)


def test_readers_of_memory_a_restore_does_not_write_run_through_it_unchanged():
    # The guarantee: reads of what a restore leaves alone (clean pages, other
    # regions, devices) run concurrently and see the same bytes throughout;
    # once restore() returns, every read sees the snapshot.  (Reads of the
    # pages being written race with the copy: readers stop first.)
    system, root, asp, ram, high, rom, timer = board()
    asp.write(0x100000, b"\x77" * 4 * PAGE)
    ram.buffer[8 * PAGE:16 * PAGE] = b"\xaa" * 8 * PAGE
    ram.mark_dirty(8 * PAGE, 8 * PAGE)
    asp.stl_le(0x300000, 3)
    snap = system.snapshot()
    stop = threading.Event()
    seen = []

    def reader():
        while not stop.is_set():
            seen.append((asp.read(0x100000, 4 * PAGE), asp.read(8 * PAGE, 8 * PAGE),
                         asp.read(0x200000, 4)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(50):
            asp.write(0, b"\x55" * 8 * PAGE)   # the pages restores write back
            assert system.restore(snap) == []
            assert asp.read(0, 8 * PAGE) == bytes(8 * PAGE)
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) == {(b"\x77" * 4 * PAGE, b"\xaa" * 8 * PAGE, b"boot")}


def test_the_readme_examples_of_bitmaps_and_snapshots_run():
    readme = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "snapshots.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    ours = [b for b in blocks if "snapshot_and_clear_dirty" in b or "system.snapshot()" in b]
    assert len(ours) == 2
    namespace: dict = {}
    for block in ours:
        exec(compile(block, "README.md", "exec"), namespace)


def test_ops_with_save_and_load_take_part_and_a_file_needs_bytes_states():
    latched = {"value": 1}   # ops are frozen once made: the state lives beside them

    class LatchOps(MemoryRegionOps):
        def save(self):
            return dict(latched)   # not bytes: fine in memory, not in a file

        def load(self, state):
            latched.update(state)

    system, root, asp, ram, high, rom, timer = board()
    ops = LatchOps(lambda offset, size: latched["value"],
                   lambda offset, value, size: latched.update(value=value))
    root.add_subregion(0x500000, MemoryRegion.io("latch", 4, ops))
    snap = system.snapshot()
    assert "latch:ops" in snap.devices and "timer:device" in snap.devices
    asp.stl_le(0x500000, 5)
    system.restore(snap)
    assert asp.ldl_le(0x500000) == 1
    with pytest.raises(SnapshotError, match="'latch:ops' saved a dict"):
        snap.save(io.BytesIO())
