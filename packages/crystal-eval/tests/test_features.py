"""Symmetry, Wyckoff dimensions and fingerprints (offline: matminer's data ship with matminer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from crystal_eval.features import crystalnn_fingerprint, magpie_fingerprint, rich_record, symmetry_features
from crystal_eval.io import parse_cif
from pymatgen.core import Composition, Lattice, Structure

DATA = Path(__file__).resolve().parent / "data"


def test_rocksalt_space_group_and_wyckoff_dims(rocksalt: Structure):
    sg, dims, err = symmetry_features(rocksalt)
    assert (sg, sorted(dims), err) == (225, [0, 0], None)


def test_wyckoff_dims_of_other_orbits():
    # wurtzite-like P6_3mc: both orbits on 2b (x=1/3, y=2/3, z free) -> dimension 1
    s = Structure.from_spacegroup(
        "P6_3mc", Lattice.hexagonal(3.2, 5.2), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.38]]
    )
    assert symmetry_features(s)[:2] == (186, [1, 1])
    # a P1 cell of three random atoms: every atom is its own general position
    rng = np.random.default_rng(0)
    p1 = Structure(Lattice([[4.1, 0.3, 0.2], [0.1, 5.3, 0.4], [0.2, 0.5, 6.7]]), ["C", "N", "O"], rng.random((3, 3)))
    assert symmetry_features(p1)[:2] == (1, [3, 3, 3])


def test_symmetry_failure_maps_to_p1():
    broken = Structure(Lattice(np.full((3, 3), np.nan)), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    sg, dims, err = symmetry_features(broken)
    assert (sg, dims) == (1, [3, 3]) and err is not None


def test_crystalnn_fingerprint_symmetry_reduction_equals_all_site_mean():
    df = pd.read_csv(DATA / "mp20_test_small.csv")
    for cif in df["cif"][:4]:
        s = parse_cif(cif)
        full = crystalnn_fingerprint(s, symmetry_reduce=False)
        fast = crystalnn_fingerprint(s, symmetry_reduce=True)
        assert full.shape == (61,)
        assert np.allclose(full, fast, atol=1e-8)


def test_crystalnn_rocksalt_is_octahedral(rocksalt: Structure):
    from crystal_eval.features import _cnn_featurizer

    fp = crystalnn_fingerprint(rocksalt)
    labels = _cnn_featurizer().feature_labels()
    assert fp[labels.index("wt CN_6")] == pytest.approx(1.0)
    assert fp[labels.index("octahedral CN_6")] > 0.9


def test_magpie_fingerprint_offline():
    v = magpie_fingerprint(Composition("NaCl"))
    assert v.shape == (132,) and np.isfinite(v).all()
    assert np.allclose(magpie_fingerprint(Composition("Na2Cl2")), v)


def test_rich_record_fields(rocksalt: Structure):
    r = rich_record(rocksalt)
    assert r.space_group == 225 and r.cnn is not None and r.magpie is not None and r.cnn_error is None


def test_magpie_refuses_what_has_no_fingerprint():
    from crystal_eval.features import magpie_fingerprint, standardise_magpie
    from pymatgen.core import Composition

    with pytest.raises(ValueError, match="unknown element"):
        magpie_fingerprint(Composition({"Xx": 1}))
    with pytest.raises(ValueError, match="empty composition"):
        magpie_fingerprint(Composition({}))
    with pytest.raises(ValueError, match="132 values"):
        standardise_magpie(np.zeros(5))
    assert standardise_magpie(np.zeros((2, 132))).shape == (2, 132)
