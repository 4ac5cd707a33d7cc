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


def _sources() -> "list[str]":
    return sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.c"))


extra = ["-std=c11", "-O2", "-Wall", "-Wextra"]
extra += shlex.split(os.environ.get("PYMEM_CFLAGS", ""))

# Which calls keep the GIL.  cffi releases the GIL around every C call; when
# another Python thread is waiting for it (a reader looping on `ldl_le`, the
# RCU reclaimer), each release hands the GIL over and getting it back waits
# out the switch interval (5 ms by default): a commit making ten short calls
# would wait ten times.  So the calls below, short and never blocking (O(1)
# tree edits, publishing a pointer, freeing a view's arrays, the listener
# diff (linear, ~1 ms at 100,000 ranges), the RCU read side, introspection),
# keep the GIL; everything that can block or run long (pm_rcu_synchronize,
# batched lookups, bulk reads and writes, Dispatch.build, dirty-bitmap
# sweeps) releases it as cffi does.  Rendering
# has two names: pm_render_dispatch keeps the GIL (small trees, where the
# hand-over costs more than the work) and pm_render_dispatch_nogil releases it
# (large trees; pymem/flatview.py picks by the size of the tree's last view).
HOLDS_GIL = (
    "pm_region_new", "pm_region_free", "pm_region_set_flag", "pm_region_set_addr",
    "pm_region_set_size", "pm_region_set_alias", "pm_region_set_dirty_log",
    "pm_region_set_memory", "pm_region_set_dirty_bytes", "pm_region_insert_sub",
    "pm_region_remove_sub", "pm_render_dispatch", "pm_ranges_free", "pm_ranges_diff",
    "pm_diff_free",
    "pm_as_new", "pm_as_free", "pm_as_publish", "pm_as_translate",
    "pm_rcu_read_lock", "pm_rcu_read_unlock", "pm_rcu_in_reader", "pm_rcu_try_synchronize",
    "pm_dispatch_section", "pm_dispatch_node", "pm_dispatch_root", "pm_dispatch_mru",
    "pm_dispatch_levels", "pm_dispatch_section_count", "pm_dispatch_node_count",
    "pm_dispatch_batch_path", "pm_dispatch_subpage_pieces", "pm_dirty_set",
    "pm_dispatch_free", "pm_dispatch_release", "pm_as_release", "pm_region_info_get",
    "pm_region_sub", "pm_flatview_root", "pm_region_user",
)

# The twin of pm_render_dispatch that releases the GIL: a binding-level name,
# not part of the C API (csrc/pymem.h).
_NOGIL_CDEF = """
pm_status pm_render_dispatch_nogil(const pm_region *root, uint32_t max_alias_visits,
                                   unsigned page_bits, pm_stats *stats, pm_range **ranges,
                                   size_t *n, size_t *failed, pm_dispatch **out);
"""

# cffi writes Py_BEGIN/END_ALLOW_THREADS around each call inside a wrapper
# named _cffi_f_<function>: redefined here, the pair looks the wrapper's name
# up in HOLDS_GIL once (under the GIL: the first call) and skips the release
# for those.
_PREAMBLE = """
#include <string.h>
#include "pymem.h"

static int pm_wrapper_releases_gil(const char *wrapper)
{
    static const char *const holds[] = { %s, NULL };
    const char *name = strncmp(wrapper, "_cffi_f_", 8) == 0 ? wrapper + 8 : wrapper;
    for (const char *const *h = holds; *h; h++) {
        if (strcmp(name, *h) == 0) {
            return 0;
        }
    }
    return 1;
}

#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS { \\
    static int pm_release_ = -1; \\
    PyThreadState *pm_save_ = NULL; \\
    if (pm_release_ < 0) pm_release_ = pm_wrapper_releases_gil(__func__); \\
    if (pm_release_) pm_save_ = PyEval_SaveThread();
#define Py_END_ALLOW_THREADS \\
    if (pm_release_) PyEval_RestoreThread(pm_save_); }

static pm_status pm_render_dispatch_nogil(const pm_region *root, uint32_t max_alias_visits,
                                          unsigned page_bits, pm_stats *stats,
                                          pm_range **ranges, size_t *n, size_t *failed,
                                          pm_dispatch **out)
{
    return pm_render_dispatch(root, max_alias_visits, page_bits, stats, ranges, n, failed,
                              out);
}
""" % ", ".join('"%s"' % name for name in HOLDS_GIL)

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text(HEADER.read_text()) + _NOGIL_CDEF)
ffibuilder.set_source(
    "pymem._native",
    _PREAMBLE,
    sources=_sources(),
    include_dirs=[str(CSRC.relative_to(ROOT))],
    # The private headers (dispatch.h, rcu.h, ...) hold inline code: rebuild
    # when they change.
    depends=sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.h")),
    extra_compile_args=extra,
    extra_link_args=shlex.split(os.environ.get("PYMEM_LDFLAGS", "")) + ["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
