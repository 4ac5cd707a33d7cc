"""Fuzz targets for pymem: every parser and a random sequence of public API calls.

Each target is a function of one `bytes` input (`fuzz.targets.TARGETS`) that
feeds it to pymem and returns.  The rule the targets check: whatever the bytes,
pymem answers with its result or raises one of its own named errors
(`pymem.errors.PymemError` and subclasses).  Any other exception escapes the
target: a bare TypeError, KeyError, RecursionError, ... is a finding, as is a
crash (under the ASan/UBSan build, a sanitizer report) or a hang.

The targets do not need atheris: `fuzz.run` drives them with it
(`scripts/fuzz.sh TARGET SECONDS`), and tests/test_fuzz.py runs each over its
seed corpus (`fuzz.targets.seeds(name)`, made from tests/fixtures/) in the
default test run, so the harnesses keep working as pymem changes.
"""
