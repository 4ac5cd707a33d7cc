"""Build glue: setuptools compiles the cffi extension declared in pymem/_build.py."""
from setuptools import setup

setup(cffi_modules=["pymem/_build.py:ffibuilder"])
