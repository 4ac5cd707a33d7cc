"""The JSON Lines trace format: what is written reads back the same, and a
trace cut anywhere reads (and replays) up to its last complete line."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymem.memtx import MemTxAttrs
from pymem.trace import (FORMAT, VERSION, Access, Commit, TraceFormatError, TraceWriter,
                         ViewDigest, load_trace, parse_trace, replay, write_trace)
from tests import trace_machine
from pymem.trace import record as record_trace

names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)
u64 = st.integers(0, (1 << 64) - 1)


@st.composite
def accesses(draw: st.DrawFn) -> Access:
    size = draw(st.sampled_from((1, 2, 4, 8)) | st.integers(1, 40))
    # A value is a device access's: 1, 2, 4 or 8 bytes (other sizes are refused).
    mmio = draw(st.booleans()) and size in (1, 2, 4, 8)
    region = draw(st.none() | names)
    attrs = draw(st.none() | st.builds(MemTxAttrs, secure=st.booleans(), user=st.booleans(),
                                       requester_id=st.integers(0, 0xFFFF)))
    return Access(space=draw(names), op=draw(st.sampled_from(("read", "write"))),
                  addr=draw(st.integers(0, (1 << 64) - size)), size=size,
                  value=draw(st.integers(0, (1 << (8 * size)) - 1)) if mmio else None,
                  data=None if mmio else draw(st.binary(min_size=size, max_size=size)),
                  attrs=attrs, result=draw(st.integers(0, 7)), region=region,
                  offset=draw(u64) if region is not None else None)


commits = st.builds(Commit, st.integers(0, 1000), st.lists(
    st.builds(ViewDigest, st.lists(names, max_size=3).map(tuple), st.none() | names,
              st.none() | st.text("0123456789abcdef", min_size=32, max_size=32),
              st.none() | st.integers(0, 500)), max_size=3).map(tuple))
events = st.lists(st.one_of(accesses(), commits), max_size=25)


@given(events)
def test_a_trace_written_and_read_back_is_the_same_event_sequence(tmp_path_factory, evs):
    path = tmp_path_factory.mktemp("t") / "trace.jsonl"
    write_trace(path, evs)
    trace = load_trace(path)
    assert trace.events == evs
    assert not trace.truncated
    assert trace.header is not None and trace.header["version"] == VERSION


@settings(max_examples=100)
@given(events, st.data())
def test_a_trace_cut_at_any_byte_reads_up_to_its_last_complete_line(tmp_path_factory, evs,
                                                                    data):
    path = tmp_path_factory.mktemp("t") / "trace.jsonl"
    write_trace(path, evs)
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    trace = parse_trace(raw[:cut])
    complete = raw[:cut].count(b"\n")      # the header is line 1
    assert trace.truncated
    assert trace.events == evs[:max(0, complete - 1)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> bytes:
    _, asp = trace_machine.build()
    path = tmp_path_factory.mktemp("rec") / "run.jsonl"
    with record_trace(asp, path, mmio_only=False):
        trace_machine.run(asp, seed=7, n=60)
    return path.read_bytes()


@settings(max_examples=60)
@given(st.data())
def test_a_recorded_trace_cut_at_any_byte_replays_its_complete_lines_and_says_truncated(
        recorded, data):
    cut = data.draw(st.integers(recorded.index(b"\n") + 1, len(recorded) - 1), label="cut")
    trace = parse_trace(recorded[:cut])
    system, _ = trace_machine.build()
    report = replay(trace, system)
    assert report.truncated
    assert report.identical
    complete = recorded[:cut].count(b"\n")
    expected = sum(1 for line in recorded.split(b"\n")[1:complete]
                   if json.loads(line)["type"] == "access")
    assert report.replayed == expected


def test_a_complete_trace_ends_with_an_end_line_and_is_not_truncated(recorded):
    last = json.loads(recorded.rstrip(b"\n").rsplit(b"\n", 1)[1])
    assert last["type"] == "end"
    assert not parse_trace(recorded).truncated


def test_a_trace_without_its_end_line_is_truncated(recorded):
    without_end = recorded.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
    trace = parse_trace(without_end)
    assert trace.truncated
    assert trace.events == parse_trace(recorded).events


def test_an_unclosed_writer_leaves_every_flushed_batch_readable(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path, batch=4)
    evs = [Access("memory", "read", 0x1000 + i, 4, value=i, region="dev", offset=i)
           for i in range(10)]
    for e in evs:
        writer.event(e)
    trace = load_trace(path)        # as a crash would leave it: two batches out
    assert trace.truncated
    assert trace.events == evs[:8]
    writer.close()
    assert load_trace(path).events == evs


def test_the_header_names_the_format_and_version(tmp_path):
    path = tmp_path / "t.jsonl"
    write_trace(path, [], header={"page_bits": 12})
    head = json.loads(path.read_text().splitlines()[0])
    assert (head["type"], head["format"], head["version"], head["page_bits"]) == \
        ("header", FORMAT, VERSION, 12)


def test_a_newer_format_version_is_refused_by_name():
    raw = json.dumps({"type": "header", "format": FORMAT, "version": VERSION + 1}) + "\n"
    with pytest.raises(TraceFormatError, match=f"version {VERSION + 1} is newer"):
        parse_trace(raw.encode())


def test_a_malformed_complete_line_is_an_error_naming_its_line(recorded):
    lines = recorded.split(b"\n")
    lines[3] = b'{"type":"access","op":"poke"}'
    with pytest.raises(TraceFormatError, match="line 4: op must be"):
        parse_trace(b"\n".join(lines))


def test_an_access_whose_data_does_not_match_its_size_is_refused():
    raw = (json.dumps({"type": "header", "format": FORMAT, "version": VERSION}) + "\n" +
           '{"type":"access","space":"m","op":"read","addr":"0x0","size":4,"data":"00"}\n')
    with pytest.raises(TraceFormatError, match="line 2: data holds 1 bytes, size is 4"):
        parse_trace(raw.encode())
