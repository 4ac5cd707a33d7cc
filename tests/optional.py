"""Tests that need an optional tool (chromium, matplotlib): they skip, with
the reason, on a developer's machine without it, and fail instead where
`.ci/run` sets PYMEM_CI=1, so CI never passes by skipping them."""
from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, how: str) -> NoReturn:
    """Skip (or under PYMEM_CI fail) a test that needs `what`; `how` says
    how to install it."""
    if os.environ.get("PYMEM_CI"):
        pytest.fail(f"PYMEM_CI is set but {what} is missing ({how})")
    pytest.skip(f"{what} is not installed ({how}; .ci/run installs it and sets PYMEM_CI=1 "
                f"so that this cannot skip there)")
