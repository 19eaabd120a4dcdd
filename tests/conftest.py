"""Shared fixtures: the third-party reference data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LABELGATE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real third-party annotation files (never copied into the repo).

    Skips with a reason on a machine without it; under ``CI=true`` its absence fails.
    """
    if not SHARED_DATA.is_dir():
        message = f"third-party reference data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    return SHARED_DATA
