"""Which pymem the suite runs against: the source tree, or the installed wheel.

`scripts/wheel-test.sh` (run by CI) installs the wheel into a fresh venv and
runs this suite from a copy of the repository without pymem/, with
PYMEM_TEST_WHEEL=1: then every test here must see the wheel's files in
site-packages, or the wheel run would silently test the source tree.
"""
from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pymem
import pymem._fastpath

REPO = Path(__file__).resolve().parent.parent
WHEEL_RUN = os.environ.get("PYMEM_TEST_WHEEL") == "1"


def _site_dirs() -> set:
    return {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}


def test_pymem_is_imported_from_where_this_run_expects_it():
    package = Path(pymem.__file__).resolve().parent
    if WHEEL_RUN:
        assert package.parent in _site_dirs(), f"wheel run imported {package}"
        assert not (REPO / "pymem").exists(), "the source package is beside the tests"
    else:
        assert package == REPO / "pymem", f"source run imported {package}"


def test_the_package_carries_its_data_files_and_type_information():
    package = Path(pymem.__file__).resolve().parent
    assert (package / "py.typed").is_file()
    assert (package / "_fastpath.pyi").is_file()
    assert Path(pymem._fastpath.__file__).resolve().parent == package
    machines = package / "machines"
    assert sorted(p.name for p in machines.glob("q35.*")) == [
        "q35.flat.txt", "q35.hints.json", "q35.mtree-D.txt"]
