"""Build glue: the cffi core (pymem/_build.py) and the fast-path builtins module.

PYMEM_CFLAGS / PYMEM_LDFLAGS add flags to both (the sanitizer builds use them).
"""
import os
import shlex

from setuptools import Extension, setup

_cflags = ["-O2", "-Wall", "-Wextra"] + shlex.split(os.environ.get("PYMEM_CFLAGS", ""))
_ldflags = shlex.split(os.environ.get("PYMEM_LDFLAGS", ""))

setup(
    cffi_modules=["pymem/_build.py:ffibuilder"],
    ext_modules=[
        # It reads pm_range and pm_access as pymem.h lays them out: rebuild
        # when the header changes, or a stale module reads the wrong fields.
        # One module, one concept a file (csrc/ext/fastpath.h lists them).
        Extension("pymem._fastpath",
                  [f"csrc/ext/{name}.c" for name in ("fastpath", "bound", "args", "lookup",
                                                      "ram", "device", "taps", "memtx", "mapping",
                                                      "guards", "atomic", "regionobj",
                                                      "hostmem", "commit")],
                  include_dirs=["csrc"],
                  depends=["csrc/pymem.h", "csrc/ext/pyaddr.h", "csrc/ext/fastpath.h"],
                  extra_compile_args=_cflags, extra_link_args=_ldflags),
        # unicorn's callbacks, the binding's map plan and its unicorn map
        # (pymem.unicorn; reads pm_range from pymem.h); unicorn itself is not
        # linked: it is called through the addresses pymem.unicorn hands in.
        Extension("pymem._ucglue",
                  [f"csrc/ext/{name}.c" for name in ("ucglue", "ucplan", "ucmap")],
                  include_dirs=["csrc"],
                  depends=["csrc/pymem.h", "csrc/ext/ucglue.h"],
                  extra_compile_args=_cflags, extra_link_args=_ldflags),
    ],
)
