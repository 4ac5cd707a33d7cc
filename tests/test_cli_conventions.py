"""Every `pymem` subcommand keeps the command's conventions: `--help` ends with
examples that parse; `--machine NAME` and `--machine module:callable` work
wherever a machine or dump is taken; a usage error is one line on stderr and
exit 2; progress goes to stderr only when it is a terminal."""
from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from pymem import cli
from pymem.cli import build_parser, main
from tests.terminal import run_with_stderr_on_a_terminal

PC = Path(__file__).parent / "fixtures" / "qemu" / "x86_64-pc-booted"

BOARD = f'''
import json
from pymem import MemoryRegion, MemorySystem
from pymem.qemu import load_mtree

def build():
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0x1000, MemoryRegion.ram("board-ram", 0x10000))
    # Overlaps board-ram at the same priority: a finding for `check`.
    root.add_subregion(0x8000, MemoryRegion.ram("board-shadow", 0x1000))
    system = MemorySystem()
    system.address_space(root, "memory")
    return system

def pc():
    return load_mtree(open({str(PC / "mtree-D.txt")!r}).read(),
                      json.load(open({str(PC / "hints.json")!r})))

def broken():
    raise RuntimeError("the board is on fire")
'''


@pytest.fixture
def board(tmp_path, monkeypatch):
    (tmp_path / "conv_board.py").write_text(BOARD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def subcommands(parser: argparse.ArgumentParser, prefix: str = "pymem"
                ) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    """(`pymem NAME ...`, parser) of every subcommand, nested ones too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from subcommands(sub, f"{prefix} {name}")


def examples_of(sub: argparse.ArgumentParser) -> list:
    epilog = sub.epilog or ""
    assert epilog.startswith("examples:\n"), f"{sub.prog}: --help has no examples"
    return [line.strip().split("  #")[0].split(" > ")[0]
            for line in epilog.splitlines()[1:] if line.strip()]


COMMANDS = dict(subcommands(build_parser()))
# `mtree diff` is routed before the main parser (`mtree` takes a dump).
COMMANDS["pymem mtree diff"] = cli._mtree_diff_parser()


def test_every_subcommand_is_found():
    assert {"pymem bench", "pymem mtree", "pymem replay", "pymem trace diff", "pymem explain",
            "pymem check", "pymem find", "pymem qemu-dispatch", "pymem qemu-hints", "pymem map",
            "pymem mtree diff"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_examples_of_the_command_that_parse(command, capsys):
    sub = COMMANDS[command]
    examples = examples_of(sub)
    assert examples, f"{command}: no example"
    for example in examples:
        assert example.startswith(command + " ") or example == command, example
        argv = shlex.split(example)[1:]
        if command == "pymem mtree diff":
            cli._mtree_diff_parser().parse_args(argv[2:])
        else:
            assert build_parser().parse_args(argv).command == command.split()[1]
    with pytest.raises(SystemExit) as exit_:
        main(command.split()[1:] + ["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: " + command) and "examples:\n  " + examples[0] in out


# The commands that work on a machine, with the arguments they need besides.
ON_A_MACHINE: Dict[str, list] = {
    "explain": ["explain", "0x1000"],
    "check": ["check"],
    "find": ["find", "board-ram"],
    "mtree": ["mtree"],
    "qemu-dispatch": ["qemu-dispatch"],
    "map": ["map"],
}


def test_the_table_covers_every_command_with_a_machine_option():
    with_machine = {name.split()[1] for name, sub in COMMANDS.items()
                    if any("--machine" in a.option_strings for a in sub._actions)}
    assert with_machine == set(ON_A_MACHINE) | {"bench", "replay"}


@pytest.mark.parametrize("name", sorted(ON_A_MACHINE))
def test_a_users_machine_function_works_as_the_machine(name, board, capsys):
    status = main(ON_A_MACHINE[name] + ["--machine", "conv_board:build"])
    out = capsys.readouterr().out
    assert status == (1 if name == "check" else 0)
    assert "board-ram" in out


@pytest.mark.parametrize("name", sorted(ON_A_MACHINE))
def test_a_bundled_machine_by_name_works_as_the_machine(name, capsys):
    argv = [("isa-bios" if a == "board-ram" else a) for a in ON_A_MACHINE[name]]
    status = main(argv + ["--machine", "q35"])
    out = capsys.readouterr().out
    assert status in (0, 1) and out   # check exits 1: q35 has findings
    if name == "find":
        assert "isa-bios" in out


def test_replay_takes_a_users_machine_function(board, capsys):
    assert main(["replay", str(PC / "trace.log"), "--machine", "conv_board:pc"]) == 0
    assert "identical" in capsys.readouterr().out


def test_bench_loads_a_users_machine_through_the_same_path(board, capsys):
    # A failing machine function stops the bench before it measures anything.
    assert main(["bench", "--quick", "--machine", "conv_board:broken"]) == 2
    err = capsys.readouterr().err
    assert err == ("pymem bench: --machine conv_board:broken: broken() raised "
                   "RuntimeError: the board is on fire\n")


@pytest.mark.parametrize("argv, says", [
    ([], "the following arguments are required: COMMAND"),
    (["nope"], "invalid choice: 'nope'"),
    (["explain"], "the following arguments are required: ADDR"),
    (["explain", "0x0", "--machine", "pc", "--mtree", "x"], "not allowed with argument"),
    (["bench", "--quick", "--bogus"], "unrecognized arguments: --bogus"),
    (["trace"], "required: ACTION"),
    (["qemu-dispatch", "--page-bits", "twelve"], "invalid int value: 'twelve'"),
    (["mtree", "diff", "q35"], "the following arguments are required: B"),
])
def test_a_usage_error_is_one_line_on_stderr_and_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and says in captured.err
    assert captured.err.rstrip().endswith("--help`)")


@pytest.mark.parametrize("argv, says", [
    (["mtree"], "pymem mtree: give an `info mtree -D` dump file, or --machine NAME"),
    (["qemu-dispatch"], "pymem qemu-dispatch: give an `info mtree -f` dump file, or "
                        "--machine NAME"),
    (["mtree", str(PC / "mtree-D.txt"), "--machine", "q35"],
     "pymem mtree: give an `info mtree -D` dump or --machine, not both"),
    (["bench", "--mtree", str(PC / "mtree-D.txt")],
     "pymem bench: --mtree needs --hints (the hints.json of the same dump)"),
])
def test_a_missing_machine_says_what_to_give(argv, says, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == says + "\n"


def test_progress_goes_to_a_terminal(tmp_path):
    status, out, err = run_with_stderr_on_a_terminal(
        [sys.executable, "-m", "pymem", "replay", str(PC / "trace.log"),
         "--mtree", str(PC / "mtree-D.txt"), "--hints", str(PC / "hints.json")])
    assert status == 0 and "identical" in out
    assert f"reading {PC / 'trace.log'}\n" in err and "replaying " in err


def test_no_progress_when_stderr_is_not_a_terminal():
    run = subprocess.run(
        [sys.executable, "-m", "pymem", "replay", str(PC / "trace.log"),
         "--mtree", str(PC / "mtree-D.txt"), "--hints", str(PC / "hints.json")],
        capture_output=True, text=True)
    assert run.returncode == 0 and "identical" in run.stdout
    assert run.stderr == ""


def test_the_progress_stream_follows_isatty(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert cli._progress() is tty
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    sink = cli._progress()
    print("working", file=sink)
    assert sys.stderr.getvalue() == ""
