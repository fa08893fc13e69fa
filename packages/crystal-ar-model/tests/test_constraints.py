"""Sampled lattices satisfy their family's equalities exactly and have positive volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from crystal_ar_model.features import FAMILIES

from .test_normalisation import FAMILY_GROUPS, _lattice_factor


def _volume_factor(lat: np.ndarray) -> np.ndarray:
    ca, cb, cg = (np.cos(np.radians(lat[:, k])) for k in (3, 4, 5))
    return 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg


@pytest.mark.parametrize("family", FAMILIES)
def test_sampled_lattices_satisfy_constraints(family: str) -> None:
    f = _lattice_factor(100, 100, seed=7)
    n = 3000
    sg = torch.full((n,), FAMILY_GROUPS[family])
    comp = torch.zeros(n, 5, dtype=torch.float64)
    comp[:, 1] = 1
    lat = f(sg, comp).sample().numpy()
    a, b, c, al, be, ga = lat.T
    assert np.all(lat[:, :3] > 0)
    if family in ("tetragonal", "hexagonal", "cubic"):
        assert np.array_equal(a, b)
    if family == "cubic":
        assert np.array_equal(a, c)
    if family != "triclinic":
        assert np.all(al == 90.0) and np.all(ga == (120.0 if family == "hexagonal" else 90.0))
    if family in ("orthorhombic", "tetragonal", "hexagonal", "cubic"):
        assert np.all(be == 90.0)
    assert np.all(_volume_factor(lat) > 0)
    lp = f(sg, comp).log_prob(torch.as_tensor(lat))
    assert torch.isfinite(lp).all()
    if family == "triclinic":
        assert len(np.unique(ga)) > 5  # gamma actually varies


def test_model_samples_are_valid(trained_run) -> None:  # noqa: ANN001
    from crystal_ar_model.score import load_model

    model, _ = load_model(trained_run)
    s = model.sample_global(2000, torch.Generator().manual_seed(0))
    assert (s["comp"].sum(1) >= 1).all()
    lat = s["lattice"].numpy()
    assert np.all(_volume_factor(lat) > 0) and np.all(lat[:, :3] > 0)
