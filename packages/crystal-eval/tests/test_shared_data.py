"""Checks on ../shared/data (partial MP-20 CSVs beside the checkout); skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from crystal_eval.features import basic_record_from_item
from crystal_eval.io import Item, load_items, load_reference_cifs


def _shared_data() -> Path:
    """../shared/data beside the checkout root (the folder holding noxfile.py and packages/)."""
    here = Path(__file__).resolve().parent
    root = next(
        (p for p in here.parents if (p / "packages").is_dir() and (p / "noxfile.py").exists()),
        here.parents[2],
    )
    return root.parent / "shared" / "data"


SHARED = _shared_data()

MP20 = SHARED / "mp_20_partial"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not MP20.is_dir(), reason=f"shared data not found at {MP20} (../shared/data beside the checkout)"
    ),
]


def test_partial_files_load_with_cdvae_columns():
    names, cifs, h = load_reference_cifs(MP20 / "train.first1000.csv.xz")
    assert len(cifs) == 1000 and names[0] == "mp-1221227"
    items = load_items(MP20 / "test.partial.csv.xz")
    assert len(items) == 7342 and items[0].name == "mp-10009"


def test_real_test_crystals_are_valid():
    _, cifs, _ = load_reference_cifs(MP20 / "test.partial.csv.xz")
    recs = [basic_record_from_item(Item(str(i), c)) for i, c in enumerate(cifs[:60])]
    assert all(r.constructed for r in recs)
    assert sum(r.struct_valid for r in recs) == 60  # MP crystals have no atoms closer than 0.5 Å
    assert sum(r.comp_valid for r in recs) >= 45  # most MP-20 compositions pass SMACT14 (~ 90%)
