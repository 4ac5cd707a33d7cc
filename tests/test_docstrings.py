"""Every public name has a docstring, and every public module an API page.

mkdocstrings renders a name without a docstring as an empty entry rather than
failing, so this walks the public API itself: `pymem.__all__`, and every
public module found under pymem/ (modules are discovered, not listed, so a
new or split module is covered the day it lands) with its `__all__`, or the
classes and functions it defines when it has none, and their public methods
and properties.  A module is public when no part of its dotted name starts
with an underscore.

Then what the docstrings say (docs/development.md, "Docstrings"): every
public callable has a `Raises:` section listing what it raises (or says
"Raises nothing.") and is covered by a `Thread safety:` section, its own or
the nearest enclosing one.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator, List

import pymem

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
PACKAGE = Path(pymem.__file__).resolve().parent


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


def _is_private_part(klass: type) -> bool:
    """Whether `klass` is a base class that pymem splits a public class into
    (MemoryRegion's edits and dirty pages, pymem/region/_edits.py and
    _dirty.py): written in Python, in a private module of the package, so
    that no reference page shows it but the class made of it."""
    module = sys.modules.get(klass.__module__)
    return (klass.__module__.startswith("pymem.")
            and any(part.startswith("_") for part in klass.__module__.split(".")[1:])
            and str(getattr(module, "__file__", "")).endswith(".py"))


def members(cls: type) -> Iterator[tuple]:
    """(name, function) of the public methods and properties `cls` defines,
    itself or in the private base classes it is split into (`_is_private_part`)."""
    seen = set()
    for klass in cls.__mro__:
        if klass is not cls and not _is_private_part(klass):
            continue
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
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


# -- What a docstring says: the errors it raises and its thread-safety --------
#
# The convention (docs/development.md, "Docstrings"): Google style, as
# mkdocstrings renders it.  Every public function, method and hand-written
# constructor has a `Raises:` section naming each exception it raises (pymem's
# classes from pymem.errors, MemTxError, or a builtin), or says "Raises
# nothing."; a property needs one only when it raises.  Every public
# callable is covered by a `Thread safety:` section: its own, else its
# class's, else its module's (the nearest one applies).  Exception classes
# are exempt from both.

import ast
import builtins
import textwrap

import pymem.errors
import pymem.memtx

_SECTION = re.compile(r"^(\s*)([A-Z][\w ]*):\s*$")


def _doc(obj: object) -> str:
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


def _section(doc: str, title: str) -> List[str]:
    """The lines of Google-style section `title` of `doc`, dedented ([] if absent)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m and m.group(2) == title:
            indent = len(m.group(1))
            body = []
            for following in lines[i + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            return textwrap.dedent("\n".join(body)).strip().splitlines()
    return []


def raises_listed(doc: str) -> List[str]:
    """The exception names a docstring's `Raises:` section lists."""
    return [m.group(1) for line in _section(doc, "Raises")
            for m in [re.match(r"^([A-Za-z_][\w.]*)\s*:", line)] if m]


def says_it_raises_nothing(doc: str) -> bool:
    return re.search(r"\bRaises nothing\b", doc) is not None


def refers_to_every_edit(doc: str) -> bool:
    """Whether an edit method's docstring says it raises what every edit
    raises: its class's `Every edit raises:` section, said once there."""
    return re.search(r"\braises what every edit raises\b", doc) is not None


def has_thread_safety(doc: str) -> bool:
    return bool(_section(doc, "Thread safety"))


def _exception_classes() -> dict:
    """Every exception class by name: builtins, and those pymem's modules
    define or import (unicorn's UcError in pymem.unicorn)."""
    found = {name: obj for name, obj in vars(builtins).items()
             if isinstance(obj, type) and issubclass(obj, BaseException)}
    for module in [pymem.errors, pymem.memtx, *public_modules()]:
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException):
                found.setdefault(name, obj)
    return found


_EXCEPTIONS: dict = {}


def exception_class(name: str) -> type | None:
    if not _EXCEPTIONS:
        _EXCEPTIONS.update(_exception_classes())
    return _EXCEPTIONS.get(name.rpartition(".")[2])


def raised_directly(fn: object) -> List[str]:
    """Exception classes a function's own body raises by name (`raise X(...)`),
    not counting nested functions; what callees raise is the docstring
    writer's to read."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return []
    tree = ast.parse(source)
    top = tree.body[0]
    found: List[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                target = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                name = (target.id if isinstance(target, ast.Name) else
                        target.attr if isinstance(target, ast.Attribute) else "")
                if name[:1].isupper() and exception_class(name) is not None:
                    found.append(name)
            visit(child)
    visit(top)
    return found


def raised_by_checks(fn: object) -> List[str]:
    """What the argument checks a function calls by name raise directly:
    pymem's module-level `_check*` / `check_*` helpers (`_check_access`,
    `check_page_bits`, ...), whose errors are the caller's to document."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return []
    scope = getattr(inspect.unwrap(fn), "__globals__", {})  # type: ignore[arg-type]
    found: List[str] = []
    for node in ast.walk(ast.parse(source).body[0]):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            helper = scope.get(node.func.id)
            if (inspect.isfunction(helper) and helper.__module__.startswith("pymem")
                    and helper.__name__.startswith(("_check", "check_"))):
                found += raised_directly(helper)
    return found


def documenting_module(name: str) -> ModuleType:
    """The public module whose reference page shows what `name` defines: the
    module itself, or for a private one (pymem/bench/_core.py) the package
    that exports its names (pymem.bench)."""
    parts = name.split(".")
    while len(parts) > 1 and parts[-1].startswith("_"):
        parts.pop()
    return importlib.import_module(".".join(parts))


def callables() -> Iterator[tuple]:
    """(qualified name, kind, object, class or None, module) of every public
    callable the reference documents, each object once; `module` is the one
    whose page shows it (`documenting_module`)."""
    seen = set()
    for module in public_modules():
        for name in public_names(module):
            obj = getattr(module, name)
            if id(obj) in seen or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            home = documenting_module(getattr(obj, "__module__", module.__name__))
            qual = f"{obj.__module__}.{obj.__qualname__}"
            if inspect.isclass(obj):
                if issubclass(obj, BaseException):
                    continue
                yield qual, "class", obj, None, home
                for member, fn in members(obj):
                    kind = ("property" if isinstance(inspect.getattr_static(obj, member),
                                                     property) else "method")
                    yield f"{qual}.{member}", kind, fn, obj, home
            else:
                yield qual, "function", obj, None, home


def hand_written_init(cls: type) -> object | None:
    """The class's own `__init__` (or `__new__`, or a dataclass's
    `__post_init__`) when written in pymem's source, not generated
    (dataclasses, NamedTuples) nor inherited."""
    for name in ("__init__", "__new__", "__post_init__"):
        init = vars(cls).get(name)
        init = getattr(init, "__func__", init)
        code = getattr(init, "__code__", None)
        if code is not None and Path(code.co_filename).resolve().is_relative_to(PACKAGE):
            return init
    return None


def undocumented_raises() -> List[str]:
    """A problem for each callable whose Raises: is missing or short."""
    problems = []
    for qual, kind, obj, cls, module in callables():
        if kind == "class":
            init = hand_written_init(obj)
            if init is None:
                continue
            doc = _doc(obj) + "\n\n" + _doc(init)
            fn = init
        else:
            doc, fn = _doc(obj), obj
        listed = raises_listed(doc)
        shared = refers_to_every_edit(doc)
        if shared:
            every_edit = [m.group(1) for line in _section(_doc(cls), "Every edit raises")
                          for m in [re.match(r"^([A-Za-z_][\w.]*)\s*:", line)] if m]
            if not every_edit:
                problems.append(f"{qual}: refers to what every edit raises, but its class "
                                "has no 'Every edit raises:' section")
            listed = listed + every_edit
        if (kind != "property" and not listed and not says_it_raises_nothing(doc)
                and not shared):
            problems.append(f"{qual}: no Raises: section and no 'Raises nothing.'")
        for name in listed:
            if exception_class(name) is None:
                problems.append(f"{qual}: Raises: lists {name}, not an exception class")
        listed_classes = [c for c in map(exception_class, listed) if c is not None]
        for name in dict.fromkeys(raised_directly(fn) + raised_by_checks(fn)):
            raised = exception_class(name)
            assert raised is not None
            if not any(issubclass(raised, c) for c in listed_classes):
                problems.append(f"{qual}: raises {name} but its Raises: does not say so")
    return problems


def without_thread_safety() -> List[str]:
    """Each callable no Thread safety: section covers."""
    problems = []
    for qual, kind, obj, cls, module in callables():
        scopes = [_doc(obj)]
        if cls is not None:
            scopes.append(_doc(cls))
        scopes.append(_doc(module))
        if not any(has_thread_safety(doc) for doc in scopes):
            problems.append(qual)
    return problems


def test_every_public_callable_says_what_it_raises():
    problems = undocumented_raises()
    assert not problems, f"{len(problems)} callables:\n" + "\n".join(problems)


def test_every_public_callable_has_a_thread_safety_statement():
    problems = without_thread_safety()
    assert not problems, (f"{len(problems)} callables without a 'Thread safety:' section "
                          "of their own, their class's or their module's:\n"
                          + "\n".join(problems))


def test_the_checks_read_google_style_sections():
    doc = inspect.cleandoc('''Read bytes.

        Raises:
            InvalidArgumentError: `size` is negative.
            MemTxError: a bus error.

        Thread safety:
            Any thread.
        ''')
    assert raises_listed(doc) == ["InvalidArgumentError", "MemTxError"]
    assert has_thread_safety(doc) and not says_it_raises_nothing(doc)
    assert not has_thread_safety("Thread safety is not a section.")
    assert says_it_raises_nothing("A field.\n\nRaises nothing.")

    def raises_two(x: int) -> None:
        def nested() -> None:
            raise KeyError(x)   # not this function's own raise
        if x:
            raise pymem.errors.TopologyError("x")
        raise InvalidArgumentError("x") from None

    from pymem.errors import InvalidArgumentError  # noqa: F401
    assert raised_directly(raises_two) == ["TopologyError", "InvalidArgumentError"]

    from pymem.dispatch import Dispatch
    # build() calls check_page_bits, which raises these two itself.
    assert {"ArgumentTypeError", "TopologyError"} <= set(raised_by_checks(Dispatch.build))


def test_every_edit_says_it_raises_what_every_edit_raises():
    # Said once, in MemoryRegion's "Every edit raises:" section; each edit
    # (add_subregion is the C base's method) points there and lists only
    # its own errors.
    from pymem.region import MemoryRegion
    from pymem.region._edits import _RegionEdits

    shared = raises_listed(_doc(MemoryRegion).replace("Every edit raises:", "Raises:", 1))
    assert shared == ["EditDuringCommitError", "CapacityError", "Exception"]
    edits = ["add_subregion"] + [name for name in vars(_RegionEdits)
                                 if not name.startswith("_")]
    assert {"del_subregion", "set_address", "set_enabled", "set_log"} <= set(edits)
    for name in edits:
        doc = _doc(getattr(MemoryRegion, name))
        assert refers_to_every_edit(doc), name
        assert not set(raises_listed(doc)) & set(shared), name
