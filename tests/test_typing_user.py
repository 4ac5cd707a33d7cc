"""A user's script type-checks against pymem as installed: mypy --strict
finds pymem's annotations (py.typed, the .pyi stubs) from outside the
checkout, whether pymem is an editable install (the default suite: pyproject's
package-dir makes it a plain .pth path entry, not an import hook mypy cannot
follow) or the wheel (scripts/wheel-test.sh runs this same file there;
tests/test_installed.py says which one is in use)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

GOOD = '''
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, MemTxResult
from pymem.rcu import read_lock


def build() -> MemorySystem:
    system = MemorySystem()
    root = MemoryRegion.container("board", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    ops = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)
    root.add_subregion(0x8000, MemoryRegion.io("dev", 0x100, ops), priority=1)
    system.address_space(root, "memory")
    return system


def peek(system: MemorySystem, addr: int) -> int:
    asp = system.address_spaces[0]
    with read_lock():
        data: bytes = asp.read(addr, 4)
    result: MemTxResult = asp.rw(addr, bytearray(4), False)
    section: int = asp.flatview.dispatch.lookup(addr) if asp.flatview and asp.flatview.dispatch else 0
    return len(data) + int(result) + section
'''

BAD = '''
from pymem import MemoryRegion, MemorySystem

MemoryRegion.ram("ram", "big")
MemorySystem().address_space(MemoryRegion.container("c", 4096), 7)
'''


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    script = tmp_path / "user_script.py"
    script.write_text(source)
    # From a directory of the user's: pymem is found where it is installed.
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           script.name], cwd=tmp_path, capture_output=True, text=True)


def test_a_users_script_type_checks_with_mypy_strict(tmp_path):
    result = mypy(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_sees_pymems_types_and_reports_misuse(tmp_path):
    result = mypy(tmp_path, BAD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ('Argument 2 to "ram" of "MemoryRegion" has incompatible type "str"; '
            'expected "int"') in result.stdout
    assert ('Argument 2 to "address_space" of "MemorySystem" has incompatible type "int"; '
            'expected "str"') in result.stdout
    assert "import-not-found" not in result.stdout and "import-untyped" not in result.stdout
