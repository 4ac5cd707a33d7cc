"""Suite-wide pytest options: `--stress` runs the long tests marked `stress`.

Stress and fuzz runs take minutes; the default run stays quick, and CI or a
sanitizer build opts in with `pytest --stress`.
"""
import pytest


def pytest_addoption(parser):
    parser.addoption("--stress", action="store_true", default=False,
                     help="also run the long tests marked 'stress'")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--stress"):
        return
    skip = pytest.mark.skip(reason="long stress run: use --stress")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)
