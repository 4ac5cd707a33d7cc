"""Every public name has a docstring, and every public module an API page.

mkdocstrings renders a name without a docstring as an empty entry rather than
failing, so this walks the public API itself: `pymem.__all__`, and every
public module found under pymem/ (modules are discovered, not listed, so a
new or split module is covered the day it lands) with its `__all__`, or the
classes and functions it defines when it has none, and their public methods
and properties.  A module is public when no part of its dotted name starts
with an underscore.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Iterator, List

import pymem

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"


def public_modules() -> Iterator[ModuleType]:
    yield pymem
    for info in pkgutil.walk_packages(pymem.__path__, "pymem."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        yield importlib.import_module(info.name)


def public_names(module: ModuleType) -> List[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def members(cls: type) -> Iterator[tuple]:
    """(name, function) of the public methods and properties `cls` defines."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, value.fget
        elif isinstance(value, (staticmethod, classmethod)):
            yield name, value.__func__
        elif inspect.isfunction(value):
            yield name, value


def undocumented() -> List[str]:
    missing = []
    for module in public_modules():
        if not (module.__doc__ or "").strip():
            missing.append(module.__name__)
        for name in public_names(module):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue   # constants: documented where they are introduced
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                for member, fn in members(obj):
                    if not (getattr(fn, "__doc__", None) or "").strip():
                        missing.append(f"{module.__name__}.{name}.{member}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    missing = undocumented()
    assert not missing, "no docstring: " + ", ".join(missing)


def test_every_public_module_has_an_api_reference_page():
    shown = set()
    for page in REFERENCE.glob("*.md"):
        shown |= set(re.findall(r"^::: (pymem[\w.]*)\s*$", page.read_text(), re.M))
    modules = {m.__name__ for m in public_modules()}
    assert sorted(modules - shown) == [], "not in docs/reference/"
    assert sorted(shown - modules) == [], "docs/reference/ shows a module that is gone"
