"""The README's examples run as written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_machine_example_runs_and_prints_qemus_format(capsys):
    example = python_blocks()[0]
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("A") and "FlatView #0" in out and "  Dispatch" in out
