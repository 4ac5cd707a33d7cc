"""Build glue: the cffi core (pymem/_build.py) and the fast-path builtins module."""
from setuptools import Extension, setup

setup(
    cffi_modules=["pymem/_build.py:ffibuilder"],
    ext_modules=[Extension("pymem._fastpath", ["csrc/ext/fastpath.c"], include_dirs=["csrc"],
                           extra_compile_args=["-O2", "-Wall", "-Wextra"])],
)
