"""QEMU trace logs: parsed into trace events, replayed against the machine
imported from the same run's dump, and compared with `pymem trace diff`."""
from __future__ import annotations

import pytest

from pymem.cli import main
from pymem.errors import PymemError
from pymem.qemu.mtree import load_mtree
from pymem.qemu.tracelog import parse_trace_log
from pymem.trace import Access, Commit, format_report, load_trace, replay, write_trace
from pymem.trace import record as record_trace
from tests.qemu_fixtures import FIXTURES, hints, read

TRACED = [case for case in sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
          if (FIXTURES / case / "trace.log").exists()]

# Accesses after each log's last flatview_new (its last topology change).
AFTER_LAST_COMMIT = {"x86_64-pc-booted": 205, "x86_64-q35-booted": 205}


def machine(case: str):
    return load_mtree(read(case, "mtree-D.txt"), hints(case))


def test_every_fixture_with_a_trace_log_is_covered():
    assert TRACED == sorted(AFTER_LAST_COMMIT)


@pytest.mark.parametrize("case", TRACED)
def test_every_access_after_the_last_topology_change_reaches_the_traced_region(case):
    report = replay(load_trace(FIXTURES / case / "trace.log"), machine(case))
    print(format_report(report, f"{case}/trace.log"))
    assert report.replayed == AFTER_LAST_COMMIT[case]
    assert report.identical
    assert not report.problems


LOG = """\
flatview_new 0x5600 (root 0x1000)
flatview_new 0x5610 (root 0x2000)
flatview_destroy_rcu 0x5500 (root 0x1000)
memory_region_ops_write cpu 0 mr 0x3000 addr 0x70 value 0x8f size 1 name 'rtc-index'
12@1700000000.123456:memory_region_ops_read cpu -1 mr 0x31 addr 0x71 value 0x0 size 1 name 'rtc'
memory_region_ops_read cpu 0 mr 0x3100 addr 0x71 value zz size 1 name 'rtc'
kvm_run_exit cpu 0 reason 2
flatview_new 0x5620 (root 0x1000)
memory_region_ops_read cpu 0 mr 0x3200 addr 0x92 value 0x2 size 1 name 'port92'
"""


def test_a_log_parses_into_accesses_and_commits_in_order():
    trace = parse_trace_log(LOG)
    kinds = [type(e) for e in trace.events]
    assert kinds == [Commit, Access, Access, Commit, Access]
    first = trace.events[0]
    assert isinstance(first, Commit) and [v.root for v in first.views] == ["0x1000", "0x2000"]
    write = trace.events[1]
    assert (write.op, write.addr, write.value, write.size, write.region, write.cpu, write.line) \
        == ("write", 0x70, 0x8F, 1, "rtc-index", 0, 4)


def test_timestamped_lines_parse_like_plain_ones():
    read_ = parse_trace_log(LOG).events[2]
    assert (read_.op, read_.addr, read_.region, read_.cpu) == ("read", 0x71, "rtc", -1)


def test_malformed_lines_are_reported_with_their_number_and_others_ignored():
    trace = parse_trace_log(LOG)
    assert [lineno for lineno, _ in trace.problems] == [6]
    assert not trace.truncated


def test_a_log_cut_inside_its_last_line_is_truncated_not_malformed():
    trace = parse_trace_log(LOG[:-10])
    assert trace.truncated
    assert [lineno for lineno, _ in trace.problems] == [6]


def test_only_accesses_after_the_last_flatview_new_are_replayed():
    report = replay(parse_trace_log(LOG), machine("x86_64-pc-booted"))
    assert (report.skipped, report.replayed, report.identical) == (2, 1, True)


def test_an_access_to_a_region_of_another_name_diverges_with_what_is_there():
    log = ("flatview_new 0x1 (root 0x2)\n"
           "memory_region_ops_read cpu 0 mr 0x3 addr 0x92 value 0x2 size 1 name 'rtc'\n")
    report = replay(parse_trace_log(log), machine("x86_64-pc-booted"))
    (d,) = report.divergences
    assert d.kind == "route" and d.expected == "region 'rtc' at 0x92"
    assert "'port92'" in d.got


# -------------------------------------------------------------------- the CLI

def fixture_args(case: str):
    d = FIXTURES / case
    return [str(d / "trace.log"), "--mtree", str(d / "mtree-D.txt"),
            "--hints", str(d / "hints.json")]


def test_replay_exits_0_when_every_access_routes(capsys):
    assert main(["replay", *fixture_args("x86_64-pc-booted")]) == 0
    out = capsys.readouterr().out
    assert "routed 205 of 205" in out and "identical" in out


def test_replay_exits_1_on_a_divergence_and_shows_it(tmp_path, capsys):
    log = tmp_path / "trace.log"
    log.write_text("flatview_new 0x1 (root 0x2)\n"
                   "memory_region_ops_read cpu 0 mr 0x3 addr 0x92 value 0x2 size 1 name 'rtc'\n")
    args = fixture_args("x86_64-pc-booted")
    assert main(["replay", str(log), *args[1:]]) == 1
    out = capsys.readouterr().out
    assert "first divergence" in out and "(line 2)" in out


def test_replay_exits_2_on_input_that_is_not_a_trace(tmp_path, capsys):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"type": "access"}\n')
    assert main(["replay", str(bad)]) == 2
    assert "not a pymem-trace header" in capsys.readouterr().err


def test_replay_of_a_pymem_trace_uses_the_bundled_q35_by_default(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    write_trace(path, [Access("I/O", "read", 0x92, 1, value=2, region="port92", offset=0)])
    assert main(["replay", str(path)]) == 0
    assert "identical" in capsys.readouterr().out


def test_trace_diff_of_two_runs_shows_the_first_difference_with_context(capsys):
    a = str(FIXTURES / "x86_64-pc-booted" / "trace.log")
    b = str(FIXTURES / "x86_64-q35-booted" / "trace.log")
    assert main(["trace", "diff", a, b, "--context", "2"]) == 1
    out = capsys.readouterr().out
    assert "first difference at MMIO access #" in out
    assert out.count(">") == 2


def test_trace_diff_compares_a_pymem_trace_with_a_qemu_log(tmp_path, capsys):
    log = FIXTURES / "x86_64-pc-booted" / "trace.log"
    mine = tmp_path / "mine.jsonl"
    write_trace(mine, [Access("memory" if e.addr > 0xFFFF else "I/O", e.op, e.addr, e.size,
                              value=e.value, region=e.region, offset=0)
                       for e in load_trace(log).accesses])
    assert main(["trace", "diff", str(mine), str(log)]) == 0
    assert "identical" in capsys.readouterr().out


def test_hints_without_an_mtree_dump_is_a_usage_error(capsys):
    args = fixture_args("x86_64-pc-booted")
    assert main(["replay", args[0], "--hints", args[-1]]) == 2
    assert "--hints goes with --mtree" in capsys.readouterr().err



# ------------------------------------------------------- replaying many logs

def device_ops(system):
    from pymem.region import reachable

    return {mr.id: mr.ops for asp in system.address_spaces for mr in reachable(asp.root)
            if mr.ops is not None}


def test_replays_in_one_session_report_what_separate_replays_do_and_restore_the_devices():
    from pymem.trace import Replayer

    log = load_trace(FIXTURES / "x86_64-pc-booted" / "trace.log")
    other = parse_trace_log(LOG)
    system = machine("x86_64-pc-booted")
    real = device_ops(system)
    alone = [format_report(replay(t, system), "t") for t in (log, other, log)]
    replayer = Replayer(system)
    with replayer.session():
        stubbed = device_ops(system)
        together = [format_report(replayer.replay(t), "t") for t in (log, other, log)]
        assert device_ops(system) == stubbed      # stubbed once, not per replay
    assert together == alone
    assert all(stubbed[i] is not ops for i, ops in real.items())
    assert device_ops(system) == real
    assert all(asp._recorder is None for asp in system.address_spaces)


def test_a_pymem_trace_in_a_session_of_qemu_logs_gets_the_strict_stubs(tmp_path):
    from pymem.trace import Replayer

    system = machine("x86_64-pc-booted")
    (io,) = [asp for asp in system.address_spaces if asp.name == "I/O"]
    path = tmp_path / "t.jsonl"
    with record_trace(io, path):
        io.ldub(0x92)
    trace = load_trace(path)
    alone = format_report(replay(trace, system), "t")
    replayer = Replayer(system)
    with replayer.session():
        assert format_report(replayer.replay(parse_trace_log(LOG)), "t")
        assert format_report(replayer.replay(trace), "t") == alone
    with pytest.raises(PymemError):
        with replayer.session():
            with replayer.session():
                pass
    assert all(asp._recorder is None for asp in system.address_spaces)


def test_a_replayer_used_again_after_an_edit_looks_the_regions_up_again():
    from pymem.region import reachable
    from pymem.trace import Replayer

    log = ("flatview_new 0x1 (root 0x2)\n"
           "memory_region_ops_read cpu 0 mr 0x3 addr 0x92 value 0x2 size 1 name 'port92'\n")
    system = machine("x86_64-pc-booted")
    replayer = Replayer(system)
    assert replayer.replay(parse_trace_log(log)).identical
    (port92,) = {mr.id: mr for asp in system.address_spaces for mr in reachable(asp.root)
                 if mr.name == "port92"}.values()
    port92.container.del_subregion(port92)
    (d,) = replayer.replay(parse_trace_log(log)).divergences
    (fresh,) = replay(parse_trace_log(log), system).divergences
    assert d.kind == "route" and d.got == fresh.got       # not where port92 used to be


def _walks_of_the_tree(monkeypatch) -> list:
    """Counts the walks a Replayer makes to find regions by name (not those
    that find the devices to stub)."""
    import sys

    import pymem.region
    from pymem.region import reachable

    walks: list = []

    def counted(root):
        if sys._getframe(1).f_code.co_name == "_regions_named":
            walks.append(root)
        return reachable(root)

    monkeypatch.setattr(pymem.region, "reachable", counted)
    return walks


# An access the traced address does not explain: the replayer looks for a
# region of that name anywhere (reached through an alias that moves it).
MOVED = ("flatview_new 0x1 (root 0x2)\n"
         "memory_region_ops_read cpu 0 mr 0x3 addr 0x92 value 0x2 size 1 name 'no-such-region'\n")


def test_the_replays_of_one_session_look_the_regions_up_once(monkeypatch):
    from pymem.trace import Replayer

    system = machine("x86_64-pc-booted")
    walks = _walks_of_the_tree(monkeypatch)
    replayer = Replayer(system)
    with replayer.session():
        for _ in range(3):
            (d,) = replayer.replay(parse_trace_log(MOVED)).divergences
            assert d.kind == "route"
    assert len(walks) == len(system.address_spaces)
    del walks[:]
    for _ in range(2):                      # outside a session: every replay
        replayer.replay(parse_trace_log(MOVED))
    assert len(walks) == 2 * len(system.address_spaces)


def test_a_session_looks_the_regions_up_again_once_the_views_change(monkeypatch):
    from pymem.trace import Replayer

    system = machine("x86_64-pc-booted")
    walks = _walks_of_the_tree(monkeypatch)
    replayer = Replayer(system)
    with replayer.session():
        replayer.replay(parse_trace_log(MOVED))
        port92 = system.find("port92")[0].region
        port92.container.del_subregion(port92)      # a new view for the I/O space
        replayer.replay(parse_trace_log(MOVED))
    assert len(walks) == 2 * len(system.address_spaces)
