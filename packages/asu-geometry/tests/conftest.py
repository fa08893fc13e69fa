"""Shared fixtures of the asu-geometry tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mp20_fixture() -> pd.DataFrame:
    """300 committed MP-20 rows (CDVAE layout): 200 from train, 100 spread over test."""
    return pd.read_csv(HERE / "data" / "mp20_fixture.csv.gz")


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or a skip with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data file {path} is absent (CI provides ../shared/data beside the checkout)")
    return path
