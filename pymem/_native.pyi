"""Types of the cffi-compiled `pymem._native` module (built from
pymem/_build.py and csrc/pymem.h): the FFI object and the C library.  cffi
generates the module at build time and ships no annotations for what it
binds, so both are opaque here; every call site converts what C returns."""
from typing import Any

ffi: Any
lib: Any
