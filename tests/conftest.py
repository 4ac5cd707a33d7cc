"""Suite-wide pytest options: `--stress` runs the long tests marked `stress`.

Stress and fuzz runs take minutes; the default run stays quick, and CI or a
sanitizer build opts in with `pytest --stress`, which also runs every
hypothesis property test with 20x the examples.

Hypothesis is deterministic in the default run: `derandomize` draws every
test's examples from a seed fixed by the test itself, and no example
database carries state from one run to the next, so a clean checkout passes
or fails the same way every time.  `--stress` explores at random (the seed
it used is printed when a test fails, with `@reproduce_failure` blobs); a
failure found there is pinned in the test as an `@example`.
"""
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=100,
                          derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("stress", parent=settings.get_profile("default"),
                          derandomize=False, max_examples=2000)


def pytest_addoption(parser):
    parser.addoption("--stress", action="store_true", default=False,
                     help="also run the long tests marked 'stress'")


def pytest_configure(config):
    settings.load_profile("stress" if config.getoption("--stress") else "default")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--stress"):
        return
    skip = pytest.mark.skip(reason="long stress run: use --stress")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)
