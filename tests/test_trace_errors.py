"""Traces and recordings that go wrong: a recording keeps every access written
before its space was destroyed, a raising stub predicate leaves the real
device ops in place, impossible sizes and addresses are refused when the
trace is read (with the line), and a QEMU log is read whatever QEMU printed
before its first event."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, machines
from pymem.region import reachable
from pymem.trace import Access, Trace, TraceFormatError, load_trace, replay
from pymem.trace import record as record_trace

FIXTURES = Path(__file__).parent / "fixtures" / "qemu"
LOG = FIXTURES / "x86_64-pc-booted" / "trace.log"


def _device_space(name="hotplugged-dma"):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.io(
        "dev", 0x100, MemoryRegionOps(lambda o, n: 1, lambda o, v, n: None)))
    return system, system.address_space(root, name)


def test_destroying_a_recorded_space_keeps_every_access_written_so_far(tmp_path):
    system, asp = _device_space()
    path = tmp_path / "run.jsonl"
    with record_trace(asp, path):
        for _ in range(100):
            asp.ldl_le(0)
        asp.destroy()   # the device is unplugged during the run
    trace = load_trace(path)
    assert len(trace.accesses) == 100
    assert not trace.truncated   # the end line is there


def test_unregistering_the_recorders_listener_keeps_every_access(tmp_path):
    system, asp = _device_space()
    path = tmp_path / "run.jsonl"
    with record_trace(asp, path):
        for _ in range(10):
            asp.ldl_le(0)
        for listener in list(asp.listeners):
            asp.unregister_listener(listener)
    trace = load_trace(path)
    assert len(trace.accesses) == 10 and not trace.truncated


def test_a_raising_stub_predicate_restores_every_device_ops():
    system = machines.load("q35")
    devices = {mr: mr.ops for a in system.address_spaces for mr in reachable(a.root) if mr.ops}
    calls = []

    def stub(mr):
        calls.append(mr)
        if len(calls) == 5:
            raise RuntimeError("bug in my predicate")
        return True

    access = Access("memory", "read", 0xfed00000, 4, value=7, region="hpet", offset=0)
    with pytest.raises(RuntimeError, match="bug in my predicate"):
        replay(Trace({}, [access], False), system, stub=stub)
    assert [mr.name for mr, ops in devices.items() if mr.ops is not ops] == []
    assert all(asp._recorder is None for asp in system.address_spaces)


HEADER = {"type": "header", "format": "pymem-trace", "version": 1, "page_bits": 12,
          "mmio_only": True, "spaces": ["memory"]}


def _access(**changes):
    line = {"type": "access", "space": "memory", "op": "write", "addr": "0xfed00000",
            "size": 4, "value": "0x0", "attrs": None, "result": 0, "region": "hpet",
            "offset": "0x0"}
    line.update(changes)
    return line


@pytest.mark.parametrize("changes, message", [
    ({"size": 1 << 33}, "size 1, 2, 4 or 8, not 8589934592"),
    ({"size": 3}, "size 1, 2, 4 or 8, not 3"),
    ({"size": 16}, "size 1, 2, 4 or 8, not 16"),
    ({"addr": "0x10000000000000000"}, "runs past 2\\^64"),
    ({"addr": "0xfffffffffffffffe"}, "4 bytes at 0xfffffffffffffffe runs past 2\\^64"),
    ({"offset": "0x1" + "0" * 20}, "offset .* beyond 2\\^64"),
    ({"value": None, "data": "00" * 4, "addr": "0xffffffffffffffff"}, "runs past 2\\^64"),
    ({"attrs": {"secure": "x"}}, "bad attrs: MemTxAttrs: secure must be a bool"),
    ({"attrs": {"requester_id": -5}}, "bad attrs: MemTxAttrs: requester_id -5 does not fit"),
    ({"result": 8}, "result must be a MemTxResult integer, not 8"),
])
def test_impossible_sizes_and_addresses_are_refused_when_the_trace_is_read(
        tmp_path, changes, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(HEADER) + "\n" + json.dumps(_access()) + "\n"
                    + json.dumps(_access(**changes)) + "\n")
    with pytest.raises(TraceFormatError, match=f"line 3: .*{message}"):
        load_trace(path)


def test_a_qemu_log_access_past_2_64_is_a_problem_with_its_line(tmp_path):
    path = tmp_path / "trace.log"
    path.write_text("memory_region_ops_read cpu 0 mr 0x5 addr 0x3f8 value 0x1 size 1\n"
                    "memory_region_ops_read cpu 0 mr 0x5 addr 0x1ffffffffffffffff value 0x1 "
                    "size 1\n"
                    "memory_region_ops_read cpu 0 mr 0x5 addr 0xfffffffffffffffe value 0x1 "
                    "size 4\n")
    trace = load_trace(path)
    assert [e.line for e in trace.accesses] == [1]
    assert [line for line, _ in trace.problems] == [2, 3]
    assert all("past 2^64" in text for _, text in trace.problems)


@pytest.mark.parametrize("prefix", [
    b"qemu-system-x86_64: warning: TCG doesn't support requested feature\n",
    b"\n",
    b"\n\n  \n",
    b"\xef\xbb\xbf",
], ids=["warning", "blank", "blanks", "bom"])
def test_a_qemu_log_is_read_whatever_comes_before_its_first_event(tmp_path, prefix):
    raw = LOG.read_bytes()
    path = tmp_path / "trace.log"
    path.write_bytes(prefix + raw)
    plain = load_trace(LOG)
    trace = load_trace(path)
    assert trace.source == "qemu"
    assert len(trace.accesses) == len(plain.accesses) > 0
    shift = prefix.count(b"\n")
    assert [e.line for e in trace.accesses] == [e.line + shift for e in plain.accesses]


def test_a_pymem_trace_with_a_bom_is_read(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(HEADER) + "\n" + json.dumps(_access())
                                        + "\n").encode())
    assert len(load_trace(path).accesses) == 1


def test_a_file_with_no_trace_event_is_still_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("qemu-system-x86_64: warning: something\n" * 3)
    with pytest.raises(TraceFormatError, match="neither a pymem-trace trace nor a QEMU"):
        load_trace(path)
