"""The documentation's Python examples run as written: every ```python block
of every page under docs/, the blocks of one page in order in one namespace
(as a reader would paste them), from the repository root."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())


def test_the_guides_have_examples():
    assert {p.name for p in PAGES} >= {"build-a-machine.md", "access-memory.md",
                                        "import-qemu.md", "traces.md", "threads-and-rcu.md",
                                        "emulate-a-cpu.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_examples_of_a_page_run(page, monkeypatch, capsys):
    if "emulate-a-cpu" in page.name:
        pytest.importorskip("unicorn")
    monkeypatch.chdir(DOCS.parent)
    namespace: dict = {"__name__": "docs_example"}
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        exec(compile(block, str(page), "exec"), namespace)
