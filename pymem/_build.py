"""The cffi builder: compiles csrc/*.c into ``pymem._native`` (out-of-line API mode).

The C API is declared once, in csrc/pymem.h; this file feeds that header to cdef
(without its preprocessor lines, which cdef cannot parse) and names the sources.
Set PYMEM_CFLAGS to add compiler flags (the sanitizer builds use it).
"""
import os
import re
import shlex
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
HEADER = CSRC / "pymem.h"


def _cdef_text(header: str) -> str:
    """The header minus include guards and includes; numeric #defines stay."""
    keep = []
    for line in header.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not re.match(r"#define\s+PM_\w+\s+\d+", stripped):
            continue
        keep.append(line)
    return "\n".join(keep)


def _sources() -> list:
    return sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.c"))


extra = ["-std=c11", "-O2", "-Wall", "-Wextra"]
extra += shlex.split(os.environ.get("PYMEM_CFLAGS", ""))

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(HEADER.read_text()))
ffibuilder.set_source(
    "pymem._native",
    '#include "pymem.h"',
    sources=_sources(),
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=extra,
    extra_link_args=shlex.split(os.environ.get("PYMEM_LDFLAGS", "")) + ["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
