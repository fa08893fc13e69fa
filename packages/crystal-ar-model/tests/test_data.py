"""Data pipeline: conversion, failure reports, cache, presets, batches."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crystal_ar_model.data import CrystalTensors, ProcessedDataset, holdout_split, load_csv, load_preset
from crystal_ar_model.errors import DataError, UnknownElementError

from .conftest import TEST_FIXTURE, TRAIN_FIXTURE

DISORDERED_CIF = """data_x
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Fe1 Fe 0 0 0 0.5
Co1 Co 0 0 0 0.5
"""


def test_fixture_converts_and_caches(tmp_path: Path) -> None:
    ds, rep = load_csv(TEST_FIXTURE, cache_dir=tmp_path)
    assert rep.total == 20 and rep.converted == 20 and not rep.from_cache
    ds2, rep2 = load_csv(TEST_FIXTURE, cache_dir=tmp_path)
    assert rep2.from_cache and ds2.content_hash() == ds.content_hash()
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_failures_are_counted_with_reasons(tmp_path: Path) -> None:
    df = pd.read_csv(TEST_FIXTURE).head(3)
    bad = df.iloc[:2].copy()
    bad["material_id"] = ["bad-garbage", "bad-disordered"]
    bad["cif"] = ["this is not a cif", DISORDERED_CIF]
    path = tmp_path / "mixed.csv"
    pd.concat([df, bad]).to_csv(path, index=False)
    ds, rep = load_csv(path, cache_dir=tmp_path / "c")
    assert rep.total == 5 and rep.converted == 3 and rep.failed == 2
    reasons = dict(rep.failures)
    assert reasons["bad-garbage"].startswith("CifReadError")
    assert reasons["bad-disordered"].startswith("DisorderedStructureError")
    assert "failed" in rep.summary() and len(ds) == 3


def test_cache_key_follows_content(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    pd.read_csv(TEST_FIXTURE).head(3).to_csv(p, index=False)
    load_csv(p, cache_dir=tmp_path / "c")
    pd.read_csv(TEST_FIXTURE).head(4).to_csv(p, index=False)
    ds, rep = load_csv(p, cache_dir=tmp_path / "c")
    assert not rep.from_cache and len(ds) == 4


def test_batches_and_subsets(cache_dir: Path) -> None:
    ds, _ = load_csv(TEST_FIXTURE, cache_dir=cache_dir)
    t = CrystalTensors(ds, tuple(range(1, 95)))
    idx = np.array([3, 0, 7])
    b = t.batch(idx)
    assert b.num_graphs == 3 and b.lattice.shape == (3, 6) and b.comp.shape == (3, 94)
    sub = ds.subset(idx)
    assert b.wyckoff.shape[0] == sub.site_wyckoff.shape[0] == int(b.ptr[-1])
    np.testing.assert_array_equal(b.element.numpy() + 1, sub.site_z)  # vocabulary = Z - 1
    assert (b.batch[b.ptr[1] : b.ptr[2]] == 1).all()
    np.testing.assert_array_equal(b.comp.sum(1).numpy(), [len(s) for s in sub.element_sets()])
    cat = ProcessedDataset.concat([ds.subset([0, 1]), ds.subset([2])])
    assert cat.content_hash() == ds.subset([0, 1, 2]).content_hash()


def test_unknown_element_is_named(cache_dir: Path) -> None:
    ds, _ = load_csv(TEST_FIXTURE, cache_dir=cache_dir)
    with pytest.raises(UnknownElementError):
        CrystalTensors(ds, (1, 2, 3))
    t = CrystalTensors(ds, tuple(range(1, 9)), strict=False)
    assert len(t) + len(t.dropped) == len(ds) and t.dropped


def test_holdout_is_fixed() -> None:
    a, b = holdout_split(1000)
    assert len(b) == 50 and not set(a) & set(b)
    np.testing.assert_array_equal(holdout_split(1000)[1], b)


def test_presets(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError):
        load_preset("nonsense", None)
    with pytest.raises(DataError):
        load_preset("mp20-available", None)
    d = tmp_path / "mp20"
    d.mkdir()
    shutil.copy(TEST_FIXTURE, d / "train.csv.xz")
    shutil.copy(TEST_FIXTURE, d / "val.csv.xz")
    shutil.copy(TEST_FIXTURE, d / "test.csv.xz")
    sp = load_preset("mp20", d, cache_dir, load_test=True)
    assert len(sp.train) == len(sp.val) == len(sp.test) == 20
    sp2 = load_preset(str(TRAIN_FIXTURE), None, cache_dir, max_rows=100)
    assert len(sp2.train) == 100 and len(sp2.val) == 15


@pytest.mark.shared_data
def test_mp20_available_on_shared_data(shared_dir: Path, tmp_path: Path) -> None:
    """Converts only the small train file here (val-partial is 7,344 rows); checks the failure report."""
    t0 = time.perf_counter()
    ds, rep = load_csv(shared_dir / "train.first1000.csv.xz", cache_dir=tmp_path, workers=2)
    assert rep.total == 1000 and rep.converted + rep.failed == 1000 and rep.converted > 990
    t1 = time.perf_counter()
    ds2, rep2 = load_csv(shared_dir / "train.first1000.csv.xz", cache_dir=tmp_path)
    assert rep2.from_cache and time.perf_counter() - t1 < 0.2 * (t1 - t0)
    assert ds2.content_hash() == ds.content_hash()
