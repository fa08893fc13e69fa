"""Normalisation by enumeration of every factor (float64)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from crystal_ar_model.config import ModelConfig
from crystal_ar_model.elements import element_feature_matrix
from crystal_ar_model.factors import (
    FREE,
    CompositionFactor,
    LatticeBins,
    LatticeFactor,
    SpaceGroupGivenComposition,
    SpaceGroupPrior,
)
from crystal_ar_model.features import FAMILIES, family_index_table, space_group_feature_matrix
from crystal_ar_model.model import FACTORS, CrystalARModel

# one space group per crystal family, in FAMILIES order
FAMILY_GROUPS = {
    "triclinic": 2,
    "monoclinic": 14,
    "orthorhombic": 62,
    "tetragonal": 139,
    "hexagonal": 166,
    "cubic": 225,
}
TYPICAL = {
    "triclinic": (5.1, 6.2, 7.3, 80.0, 100.0, 110.0),
    "monoclinic": (5.1, 6.2, 7.3, 90.0, 104.0, 90.0),
    "orthorhombic": (5.1, 6.2, 7.3, 90.0, 90.0, 90.0),
    "tetragonal": (5.1, 5.1, 7.3, 90.0, 90.0, 90.0),
    "hexagonal": (5.1, 5.1, 14.3, 90.0, 90.0, 120.0),
    "cubic": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
}


def _seed_params(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


def test_family_table_matches_groups() -> None:
    fam = family_index_table()
    for name, sg in FAMILY_GROUPS.items():
        assert FAMILIES[fam[sg - 1]] == name


def test_space_group_factors_sum_to_one() -> None:
    torch.manual_seed(0)
    prior, cond = SpaceGroupPrior().double(), SpaceGroupGivenComposition(6, 16).double()
    _seed_params(prior)
    _seed_params(cond)
    comp = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]], dtype=torch.float64)
    groups = torch.arange(230)
    for dist in (prior(2), cond(comp)):
        lp = torch.stack([dist.log_prob(torch.full((2,), int(g))) for g in groups], 1)
        torch.testing.assert_close(torch.logsumexp(lp, 1), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
        assert not torch.allclose(lp[:, 0], lp[:, 1])  # not trivially uniform


@pytest.mark.parametrize("space_group", [None, 1, 62, 225])
def test_composition_sums_to_one_over_all_15_sets(space_group: int | None) -> None:
    vocab = (1, 8, 26, 79)
    f = CompositionFactor(element_feature_matrix(vocab), space_group_feature_matrix(), hidden=16).double()
    _seed_params(f, 1)
    sets = [s for k in range(1, 5) for s in itertools.combinations(range(4), k)]
    assert len(sets) == 15
    value = torch.zeros(15, 4, dtype=torch.float64)
    for i, s in enumerate(sets):
        value[i, list(s)] = 1.0
    sg = None if space_group is None else torch.full((15,), space_group)
    lp = f(sg, 15).log_prob(value)
    assert torch.isfinite(lp).all()
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-12
    assert lp.max() - lp.min() > 0.1  # the network is not trivially uniform
    empty = f(None if sg is None else sg[:1], 1).log_prob(torch.zeros(1, 4, dtype=torch.float64))
    assert empty.item() == -math.inf


def test_composition_conditioning_changes_distribution() -> None:
    vocab = (1, 8, 26, 79)
    f = CompositionFactor(element_feature_matrix(vocab), space_group_feature_matrix(), hidden=16).double()
    _seed_params(f, 2)
    v = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    assert not torch.allclose(f(None, 1).log_prob(v), f(torch.tensor([225]), 1).log_prob(v))


def _lattice_factor(n_coarse: int, n_fine: int, seed: int = 3) -> LatticeFactor:
    bins = LatticeBins((2.0, 2.0, 2.0, 60.0, 60.0, 0.0), (20.0, 20.0, 40.0, 120.0, 125.0, 180.0), n_coarse, n_fine)
    f = LatticeFactor(5, space_group_feature_matrix(), bins, hidden=16, rff_features=4).double()
    _seed_params(f, seed)
    return f


@pytest.mark.parametrize("family", FAMILIES)
def test_lattice_slot_pmf_sums_to_one(family: str) -> None:
    f = _lattice_factor(100, 100)
    sg = torch.tensor([FAMILY_GROUPS[family]])
    comp = torch.tensor([[1.0, 0, 1, 0, 0]], dtype=torch.float64)
    value = torch.tensor([TYPICAL[family]], dtype=torch.float64)
    d = f(sg, comp)
    for slot in range(6):
        if not FREE[FAMILIES.index(family), slot]:
            continue
        lp = d.slot_log_pmf(value, slot)
        assert lp.shape == (1, 10_000)
        assert abs(torch.logsumexp(lp, 1).item()) < 1e-10
        if family == "triclinic" and slot == 5:
            # exactly the gamma bins with positive volume (given the alpha/beta bin centres) have mass
            cond = f.conditioning(f.bin_center(f.bin_index(value)), torch.tensor([0]))[0]
            al, be = float(cond[3]), float(cond[4])
            centers = (np.arange(10_000) + 0.5) * 180.0 / 10_000
            ca, cb, cg = (np.cos(np.radians(x)) for x in (al, be, centers))
            vol2 = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
            allowed = torch.isfinite(lp[0]).numpy()
            np.testing.assert_array_equal(allowed, vol2 > 0)
            assert 0 < allowed.sum() < 10_000


@pytest.mark.parametrize("family", FAMILIES)
def test_lattice_joint_pmf_sums_to_one_by_enumeration(family: str) -> None:
    """Every combination of the free parameters' bins (6 bins each) has total mass exactly 1."""
    nc, nf = 3, 2
    f = _lattice_factor(nc, nf)
    fam = FAMILIES.index(family)
    free = [j for j in range(6) if FREE[fam, j]]
    centers = [f.bin_center(torch.arange(nc * nf).unsqueeze(-1).expand(-1, 6))[:, j] for j in range(6)]
    combos = torch.tensor(list(itertools.product(range(nc * nf), repeat=len(free))))
    value = torch.tensor([TYPICAL[family]], dtype=torch.float64).repeat(len(combos), 1)
    for k, j in enumerate(free):
        value[:, j] = centers[j][combos[:, k]]
    n = len(combos)
    sg = torch.full((n,), FAMILY_GROUPS[family])
    comp = torch.tensor([[0, 1.0, 0, 1, 0]], dtype=torch.float64).repeat(n, 1)
    lp = torch.cat([f(sg[i : i + 8192], comp[i : i + 8192]).log_prob(value[i : i + 8192]) for i in range(0, n, 8192)])
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-9
    if family == "triclinic":
        assert torch.isinf(lp).any()  # some gamma bins are excluded (non-positive volume)


def test_model_log_prob_terms_add_up(trained_run) -> None:  # noqa: ANN001
    from crystal_ar_model.score import load_model

    model, _ = load_model(trained_run)
    assert isinstance(model, CrystalARModel)
    b = model_batch(model)
    lp = model.log_prob(b)
    total = sum(lp[f"logp_{f}"] for f in FACTORS)
    torch.testing.assert_close(total, lp["logp_total"], atol=1e-4, rtol=0)
    for k, v in lp.items():
        assert torch.isfinite(v).all(), k
        if k != "logp_coords":  # a density can exceed 1; forced decisions (one piece, stop at the limit) give 0
            assert (v <= 0).all(), k


def model_batch(model: CrystalARModel):  # noqa: ANN201
    from crystal_ar_model.data import CrystalTensors, load_csv

    from .conftest import TEST_FIXTURE

    ds, _ = load_csv(TEST_FIXTURE, cache_dir=None)
    return CrystalTensors(ds, model.vocabulary).batch(np.arange(len(ds)))


def test_model_config_defaults() -> None:
    assert ModelConfig().n_coarse * ModelConfig().n_fine == 10_000
