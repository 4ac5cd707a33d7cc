"""Recording an address space and replaying the trace: a recorded run replays
identically on the same machine, and a moved or re-prioritised region is
reported at the first access it changes."""
from __future__ import annotations

import pytest

from pymem import MemoryRegion
from pymem.errors import PymemError
from pymem.trace import Access, Commit, format_report, load_trace, replay
from tests import trace_machine
from tests.trace_machine import FREE_BASE, TIMER_BASE, TIMER_SIZE, UART_BASE, UART_SIZE
from pymem.trace import record as record_trace

SEEDS = (1, 2, 3)


def record_run(tmp_path, seed: int, mmio_only: bool = False):
    system, asp = trace_machine.build()
    path = tmp_path / f"run{seed}.jsonl"
    with record_trace(asp, path, mmio_only=mmio_only):
        trace_machine.run(asp, seed)
    return load_trace(path)


def first_access_in(trace, base: int, size: int) -> int:
    """1-based number of the first recorded access that touches [base, base + size)."""
    for n, e in enumerate(trace.accesses, 1):
        if e.addr < base + size and base < e.addr + e.size:
            return n
    raise AssertionError("the run never touched the window")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_recorded_run_replays_identically_on_the_same_machine(tmp_path, seed):
    trace = record_run(tmp_path, seed)
    system, _ = trace_machine.build()
    report = replay(trace, system)
    assert report.identical, format_report(report)
    assert report.replayed == len(trace.accesses) > 0
    assert report.mmio > 0 and report.memory > 0
    assert not report.notes


def test_a_run_records_ram_rom_and_device_accesses_with_their_regions(tmp_path):
    trace = record_run(tmp_path, 1)
    regions = {e.region for e in trace.accesses}
    assert {"ram", "rom", "uart", "timer"} <= regions
    assert all(e.data is not None for e in trace.accesses if e.region == "ram")
    assert all(e.value is not None for e in trace.accesses if e.region in ("uart", "timer"))


def test_mmio_only_recording_leaves_out_plain_memory(tmp_path):
    trace = record_run(tmp_path, 1, mmio_only=True)
    assert trace.accesses
    assert all(e.mmio for e in trace.accesses)
    assert {e.region for e in trace.accesses} >= {"uart", "timer"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_moved_region_diverges_at_the_first_access_to_it(tmp_path, seed):
    trace = record_run(tmp_path, seed)
    system, _ = trace_machine.build(uart_base=FREE_BASE)
    report = replay(trace, system, show_all=False)
    first = report.divergences[0]
    assert first.number == first_access_in(trace, UART_BASE, UART_SIZE)
    assert first.kind == "route"
    assert "'uart'" in first.expected and first.got == "unassigned"
    assert report.notes, "the replay should say the map differs from the recorded one"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lowered_priority_diverges_at_the_first_access_it_changes(tmp_path, seed):
    trace = record_run(tmp_path, seed)
    system, _ = trace_machine.build(timer_priority=-1)
    report = replay(trace, system, show_all=False)
    first = report.divergences[0]
    assert first.number == first_access_in(trace, TIMER_BASE, TIMER_SIZE)
    assert "'timer'" in first.expected and "'ram'" in first.got


def test_all_divergences_are_listed_when_asked(tmp_path):
    trace = record_run(tmp_path, 1)
    system, _ = trace_machine.build(uart_base=FREE_BASE)
    report = replay(trace, system, show_all=True)
    uart = [n for n, e in enumerate(trace.accesses, 1) if e.region == "uart"]
    assert [d.number for d in report.divergences if d.kind == "route"][:len(uart)] == uart
    assert report.replayed == len(trace.accesses)


def test_stubbed_devices_answer_the_recorded_values_whatever_their_state(tmp_path):
    trace = record_run(tmp_path, 1)
    system, asp = trace_machine.build()
    asp.ldub(UART_BASE)   # the real uart would answer one ahead of the recording
    assert replay(trace, system, stub=True).identical


def test_real_devices_that_answer_differently_diverge_by_value(tmp_path):
    trace = record_run(tmp_path, 1)
    system, asp = trace_machine.build()
    asp.ldub(UART_BASE)   # the uart's read counter now runs one ahead
    report = replay(trace, system, stub=False, show_all=False)
    assert report.divergences[0].kind == "value"


def test_a_divergence_names_the_commit_it_came_after(tmp_path):
    system, asp = trace_machine.build()
    path = tmp_path / "t.jsonl"
    with record_trace(asp, path):
        asp.ldub(UART_BASE)
        asp.root.add_subregion(0x50000, MemoryRegion.ram("extra", 0x1000))
        asp.ldub(UART_BASE + 1)
    trace = load_trace(path)
    assert [type(e) for e in trace.events] == [Commit, Access, Commit, Access]
    other, _ = trace_machine.build(uart_base=FREE_BASE)
    report = replay(trace, other, show_all=True)
    assert [d.commit.seq for d in report.divergences] == [0, 1]
    assert "after commit #1" in format_report(report, show_all=True)


def test_a_commit_records_the_digest_of_every_view(tmp_path):
    system, asp = trace_machine.build()
    path = tmp_path / "t.jsonl"
    with record_trace(asp, path):
        pass
    (commit,) = load_trace(path).events
    assert [(v.spaces, v.root, v.ranges) for v in commit.views] == [(("memory",), "system", 5)]
    assert len(commit.views[0].digest) == 32


def test_an_address_space_is_recorded_by_one_recorder_at_a_time(tmp_path):
    _, asp = trace_machine.build()
    with record_trace(asp, tmp_path / "a.jsonl"):
        with pytest.raises(PymemError, match="already being recorded"):
            with record_trace(asp, tmp_path / "b.jsonl"):
                pass
    with record_trace(asp, tmp_path / "c.jsonl"):   # free again afterwards
        pass


def test_recording_is_one_tap_that_builtins_bound_before_it_tell(tmp_path):
    _, asp = trace_machine.build()
    read, store = asp.read, asp.stl_le
    with record_trace(asp, tmp_path / "t.jsonl", mmio_only=False):
        assert len(asp.taps) == 1
        store(0x100, 0xDEADBEEF)   # bound before the recording began
    assert asp.read is read and asp.stl_le is store   # the builtins were never replaced
    assert not asp.taps and asp._recorder is None and not asp.listeners
    (access,) = load_trace(tmp_path / "t.jsonl").accesses
    assert (access.op, access.addr, access.data, access.region) == (
        "write", 0x100, bytes.fromhex("efbeadde"), "ram")


def test_a_stub_predicate_keeps_the_real_ops_of_the_other_devices(tmp_path):
    trace = record_run(tmp_path, 1)
    system, asp = trace_machine.build()
    asp.ldub(UART_BASE)   # the real uart now answers one ahead of the recording
    report = replay(trace, system, stub=lambda mr: mr.name == "timer", show_all=True)
    assert {d.access.region for d in report.divergences} == {"uart"}
    assert {d.kind for d in report.divergences} == {"value"}


def test_real_devices_in_the_recorded_state_replay_identically(tmp_path):
    trace = record_run(tmp_path, 1)
    system, _ = trace_machine.build()
    assert replay(trace, system, stub=False).identical


def test_recording_ram_does_not_change_what_the_devices_see(tmp_path):
    with_ram = record_run(tmp_path, 4, mmio_only=False)
    mmio_only = record_run(tmp_path / "..", 4, mmio_only=True)
    assert [e for e in with_ram.accesses if e.mmio] == mmio_only.accesses


def test_recording_ram_leaves_memory_as_an_unrecorded_run_does(tmp_path):
    def ram_after(record: bool) -> bytes:
        _, asp = trace_machine.build()
        if record:
            with record_trace(asp, tmp_path / "t.jsonl", mmio_only=False):
                trace_machine.run(asp, seed=5)
        else:
            trace_machine.run(asp, seed=5)
        (ram,) = [mr for mr in asp.root.subregions if mr.name == "ram"]
        return bytes(ram.buffer)

    assert ram_after(True) == ram_after(False)


def test_pymem_replay_of_a_cut_trace_replays_its_complete_lines_and_says_so(tmp_path, capsys):
    from pymem import machines
    from pymem.cli import main

    system = machines.load("q35")
    (io,) = [asp for asp in system.address_spaces if asp.name == "I/O"]
    path = tmp_path / "t.jsonl"
    with record_trace(io, path):
        for _ in range(10):
            io.ldub(0x92)
    raw = path.read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(raw[:raw.rindex(b'"type":"access"') + 5])   # inside the last access
    assert main(["replay", str(cut)]) == 0
    out = capsys.readouterr().out
    assert "replayed 9 accesses" in out and "truncated" in out
