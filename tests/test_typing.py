"""pymem ships py.typed, so its own annotations must satisfy `mypy --strict`
(the settings are pyproject.toml's [tool.mypy]).  The package is checked as
it is installed (`-p pymem` from outside the checkout): the source tree in the
default run, the wheel's files in scripts/wheel-test.sh's run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks_with_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-incremental", "-p", "pymem"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_stubs_of_the_compiled_modules_match_them(tmp_path):
    # stubtest imports the built modules and compares every name, signature
    # and class property with pymem/_fastpath.pyi and pymem/_ucglue.pyi: a
    # builtin added, renamed or re-signed in C without its stub fails here.
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(ROOT / "pyproject.toml"),
         "pymem._fastpath", "pymem._ucglue"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
