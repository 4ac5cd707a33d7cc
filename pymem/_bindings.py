"""The C side of pymem, loaded here and nowhere else in the package.

`ffi` and `lib` are the cffi bindings of csrc/ (the C API is declared once, in
csrc/pymem.h; pymem/_build.py compiles it into `pymem._native`); `_fastpath`
is the CPython extension of csrc/ext/ (atomic steps, owned calls, the access
builtins).  Every Python module that calls C imports them from here, so the
bottom layer of the import graph is one module (docs/architecture.md).  It
knows no other module of pymem.
"""
import importlib
from typing import TYPE_CHECKING

from ._native import ffi, lib

if TYPE_CHECKING:
    from . import _fastpath
else:
    # By name: the import graph (grimp, import-linter) sees no extension
    # module, and would take `from . import _fastpath` for an import of the
    # package `pymem`, which imports everything; mypy reads _fastpath.pyi.
    _fastpath = importlib.import_module("._fastpath", __package__)

__all__ = ["ffi", "lib", "_fastpath"]
