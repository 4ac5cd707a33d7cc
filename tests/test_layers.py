"""pymem's modules form one-way layers (docs/architecture.md), and CI says so.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports`
checks them, lazy imports inside functions included.  These tests run it, so
a new import from a lower layer to a higher one fails the suite with the
chain of imports that makes it.  They read the source checkout (the package
directory, pyproject.toml, scripts/), so the wheel run leaves them out.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pymem"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.source_tree


def tool_env(**extra: str) -> dict:
    """The environment for the import tools: without the sanitizer runtime
    that scripts/sanitize.sh preloads (grimp's own threads are not ours to
    check, and TSan reports races inside its Rust thread pool)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(extra)
    return env


def lint_imports(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd,
                          env=env if env is not None else tool_env(),
                          capture_output=True, text=True)


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_new_back_edge_fails_with_its_chain_named(tmp_path):
    # A copy of the package whose region tree reaches up to the access path.
    shutil.copytree(PACKAGE, tmp_path / "pymem",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    kinds = tmp_path / "pymem" / "region" / "kinds.py"
    kinds.write_text(kinds.read_text() + "\n\ndef _up():\n    from ..access import AccessMixin\n"
                     "    return AccessMixin\n")
    env = tool_env(PYTHONPATH=str(tmp_path))
    result = lint_imports(tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pymem.region is not allowed to import pymem.access" in result.stdout
    assert "pymem.region.kinds -> pymem.access" in result.stdout


def test_no_module_is_in_an_import_cycle():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_cycles.py")],
                            cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no import cycle among")


def _is_module(name: str) -> bool:
    """Whether `name` (dotted) is a module of the package: source, package,
    or an extension module (with its .pyi)."""
    path = ROOT.joinpath(*name.split("."))
    return (path.with_suffix(".py").exists() or (path / "__init__.py").exists()
            or path.with_suffix(".pyi").exists())


def _imports(path: Path) -> set:
    """The absolute names of the modules a file of the package imports
    (`from pkg import name` counts as importing pkg.name when that is a
    module, else as importing pkg)."""
    package = list(path.relative_to(ROOT).parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if _is_module(full) else module)
    return found


def test_the_c_side_is_imported_in_one_place():
    """`pymem._native` and `pymem._fastpath` reach Python through
    pymem/_bindings.py only (pymem/_build.py builds the first)."""
    importers = {}
    for path in PACKAGE.rglob("*.py"):
        for name in ("pymem._native", "pymem._fastpath"):
            if name in _imports(path):
                importers.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    assert importers == {"pymem._native": {"pymem/_bindings.py"},
                         "pymem._fastpath": {"pymem/_bindings.py"}}, \
        "import ffi, lib and _fastpath from pymem._bindings"


def test_no_module_imports_the_package_root():
    """`import pymem` re-exports every layer: a module inside the package
    that imported it would depend on all of them."""
    offenders = sorted(path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*.py")
                       if "pymem" in _imports(path))
    assert offenders == []
