"""The C core compiles warning-free with -Wall -Wextra -Werror."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("source", sorted(p.name for p in CSRC.glob("*.c")))
def test_c_source_compiles_with_warnings_as_errors(source, tmp_path):
    result = subprocess.run(
        ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-c",
         str(CSRC / source), "-I", str(CSRC), "-o", str(tmp_path / "out.o")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_header_is_the_whole_api_and_parses_for_cffi():
    from pymem._build import HEADER, _cdef_text
    from cffi import FFI

    FFI().cdef(_cdef_text(HEADER.read_text()))


def test_a_source_distribution_carries_everything_the_build_needs(tmp_path):
    import sys
    import tarfile

    # From a clean copy: setuptools would otherwise reuse the file list of
    # an earlier build (pymem.egg-info) and hide a missing manifest entry.
    root = tmp_path / "tree"
    shutil.copytree(CSRC.parent, root, ignore=shutil.ignore_patterns(
        "*.egg-info", "build", "dist", ".venv", ".git", "__pycache__", "*.so", ".hypothesis"))
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=root, capture_output=True, check=True)
    archive = next(tmp_path.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    needed = {str(p.relative_to(CSRC.parent)) for p in CSRC.rglob("*")
              if p.suffix in (".c", ".h")}
    assert needed <= names, sorted(needed - names)
