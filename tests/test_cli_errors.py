"""The `pymem` command on input it cannot use: every subcommand exits 2 with one
line on stderr naming the problem, never a traceback and never 1 (which
`replay` and `trace diff` keep for "divergence")."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pymem.cli import main

FIX = Path(__file__).parent / "fixtures" / "qemu" / "x86_64-pc-booted"
MTREE = str(FIX / "mtree-D.txt")
LOG = str(FIX / "trace.log")


@pytest.fixture
def files(tmp_path):
    """Named bad inputs, written once per test."""
    made = {}

    def put(name, content):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        made[name] = str(path)

    put("empty.txt", b"")
    put("garbage.txt", "hello world\nthis is not a dump\n")
    put("latin1.txt", b"AS \"m\xe9moire\", root: system\n")
    put("list.json", "[]")
    put("as_roots.json", json.dumps({"as_order": ['AS "memory", root: system'],
                                     "as_roots": {"x": 1}}))
    put("page_bits.json", json.dumps({"page_bits": "12"}))
    put("as_order.json", json.dumps({"as_order": 5}))
    put("containers.json", json.dumps({"containers": [[1]]}))
    put("notjson.json", "{")
    hdr = {"type": "header", "format": "pymem-trace", "version": 1, "page_bits": 12,
           "mmio_only": True, "spaces": ["memory"]}
    acc = {"type": "access", "space": "memory", "op": "write", "addr": "0xfed00000",
           "size": 1 << 33, "value": "0x0", "attrs": None, "result": 0, "region": "hpet",
           "offset": "0x0"}
    put("huge.jsonl", json.dumps(hdr) + "\n" + json.dumps(acc) + "\n")
    made["missing"] = str(tmp_path / "no" / "such.txt")
    made["dir"] = str(tmp_path)
    return made


CASES = {
    "mtree missing": ["mtree", "{missing}"],
    "mtree empty": ["mtree", "{empty.txt}"],
    "mtree garbage": ["mtree", "{garbage.txt}"],
    "mtree not utf-8": ["mtree", "{latin1.txt}"],
    "mtree a directory": ["mtree", "{dir}"],
    "mtree hints list": ["mtree", MTREE, "--hints", "{list.json}"],
    "mtree hints as_roots dict": ["mtree", MTREE, "--hints", "{as_roots.json}"],
    "mtree hints page_bits str": ["mtree", MTREE, "--hints", "{page_bits.json}"],
    "mtree hints as_order int": ["mtree", MTREE, "--hints", "{as_order.json}"],
    "mtree hints containers nested": ["mtree", MTREE, "--hints", "{containers.json}"],
    "mtree hints not json": ["mtree", MTREE, "--hints", "{notjson.json}"],
    "mtree hints missing": ["mtree", MTREE, "--hints", "{missing}"],
    "qemu-dispatch missing": ["qemu-dispatch", "{missing}"],
    "qemu-dispatch empty": ["qemu-dispatch", "{empty.txt}"],
    "qemu-dispatch garbage": ["qemu-dispatch", "{garbage.txt}"],
    "qemu-dispatch not utf-8": ["qemu-dispatch", "{latin1.txt}"],
    "qemu-dispatch page bits": ["qemu-dispatch", str(FIX / "flat.txt"), "--page-bits", "40"],
    "qemu-hints missing": ["qemu-hints", "{missing}", "{missing}", "{missing}"],
    "qemu-hints garbage": ["qemu-hints", "{garbage.txt}", "{garbage.txt}", "{garbage.txt}"],
    "replay missing": ["replay", "{missing}"],
    "replay garbage": ["replay", "{garbage.txt}"],
    "replay empty": ["replay", "{empty.txt}"],
    "replay huge size": ["replay", "{huge.jsonl}"],
    "replay hints list": ["replay", LOG, "--mtree", MTREE, "--hints", "{list.json}"],
    "replay hints as_roots dict": ["replay", LOG, "--mtree", MTREE, "--hints",
                                   "{as_roots.json}"],
    "replay hints without mtree": ["replay", LOG, "--hints", "{list.json}"],
    "replay unknown machine": ["replay", LOG, "--machine", "no-such-machine"],
    "trace diff missing": ["trace", "diff", "{missing}", LOG],
    "trace diff garbage": ["trace", "diff", LOG, "{garbage.txt}"],
    "bench mtree missing": ["bench", "--mtree", "{missing}", "--hints", "{list.json}"],
    "bench json unwritable": ["bench", "--quick", "--json", "{missing}"],
    "bench json a directory": ["bench", "--quick", "--json", "{dir}"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_input_exits_2_with_one_line(case, files, capsys):
    argv = [files[arg[1:-1]] if arg.startswith("{") else arg for arg in CASES[case]]
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pymem {argv[0]}: "), err
    assert "Traceback" not in err and "a pymem bug" not in err, err


def test_a_file_that_cannot_be_read_is_named(files, capsys):
    assert main(["mtree", files["latin1.txt"]]) == 2
    err = capsys.readouterr().err
    assert files["latin1.txt"] in err and "not UTF-8" in err
    assert main(["mtree", MTREE, "--hints", files["list.json"]]) == 2
    err = capsys.readouterr().err
    assert files["list.json"] in err and "JSON object" in err


def test_the_installed_command_exits_2_not_1_on_a_bad_hints_file(files):
    """The review's reproducer, as a user runs it: exit 1 would read as a divergence."""
    run = subprocess.run([sys.executable, "-m", "pymem", "replay", LOG, "--mtree", MTREE,
                          "--hints", files["list.json"]], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1
