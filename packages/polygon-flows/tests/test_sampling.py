"""Generator-aware samplers (0.2.0): reproducibility and goodness of fit against scipy.

Thresholds: Pearson's chi-square at the 0.999 quantile on 20 equiprobable bins (fixed seeds), with a
negative control that must fail at the same threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from polygon_flows import PolygonDirichletMixture, SegmentBetaMixture, TorusVonMisesMixture
from polygon_flows.sampling import sample_beta, sample_categorical, sample_von_mises
from polygon_flows.testing import EXAMPLE_POLYGONS, chi_square_statistic
from scipy import stats

F64 = torch.float64
THRESHOLD = stats.chi2.ppf(0.999, 19)


def equiprobable_chi_square(samples: np.ndarray, cdf) -> float:  # noqa: ANN001
    """Chi-square of samples against 20 equiprobable bins of a continuous cdf."""
    u = cdf(samples)
    observed = torch.as_tensor(np.histogram(u, bins=20, range=(0.0, 1.0))[0], dtype=F64)
    return chi_square_statistic(observed, torch.full((20,), 0.05, dtype=F64))[0]


@pytest.mark.parametrize("kappa", [1e-9, 0.3, 2.0, 40.0, 500.0])
def test_von_mises_sampler_matches_scipy(kappa: float) -> None:
    g = torch.Generator().manual_seed(11)
    theta = sample_von_mises(torch.full((20000,), kappa, dtype=F64), g).numpy()
    assert np.all(np.abs(theta) <= np.pi)
    dist = stats.vonmises(kappa)
    assert equiprobable_chi_square(theta, dist.cdf) < THRESHOLD
    # negative control: the same draws against a von Mises with 1.3x the concentration (or shifted, when flat)
    wrong = stats.vonmises(kappa * 1.3, loc=0.3 if kappa < 1 else 0.0)
    assert equiprobable_chi_square(theta, wrong.cdf) > THRESHOLD


def test_beta_and_categorical_samplers() -> None:
    g = torch.Generator().manual_seed(3)
    t = sample_beta(torch.full((20000,), 0.7, dtype=F64), torch.full((20000,), 2.5, dtype=F64), g).numpy()
    assert equiprobable_chi_square(t, stats.beta(0.7, 2.5).cdf) < THRESHOLD
    assert equiprobable_chi_square(t, stats.beta(0.8, 2.5).cdf) > THRESHOLD
    logits = torch.tensor([0.0, 1.0, -1.0, -float("inf")], dtype=F64)
    k = sample_categorical(logits, (40000,), g)
    observed = torch.bincount(k, minlength=4).to(F64)
    assert observed[3] == 0
    stat, dof = chi_square_statistic(observed[:3], torch.softmax(logits[:3], 0))
    assert stat < stats.chi2.ppf(0.999, dof)


def test_samples_are_reproducible_with_a_generator() -> None:
    seg = SegmentBetaMixture(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), torch.zeros(2, dtype=F64),
                             torch.tensor([2.0, 5.0], dtype=F64), torch.tensor([3.0, 1.0], dtype=F64))
    poly = PolygonDirichletMixture(EXAMPLE_POLYGONS["hexagon"], torch.zeros(2, dtype=F64),
                                   torch.full((2, 3), 2.0, dtype=F64))
    tor = TorusVonMisesMixture(torch.rand(2, 3, dtype=F64), torch.full((2, 3), 4.0, dtype=F64),
                               torch.zeros(2, dtype=F64))
    for d in (seg, poly, tor):
        a = d.sample((50,), generator=torch.Generator().manual_seed(1))
        b = d.sample((50,), generator=torch.Generator().manual_seed(1))
        c = d.sample((50,), generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert bool(d.support.check(a).all())


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0])
def test_von_mises_refuses_concentrations_that_never_accept(bad: float) -> None:
    """An infinite or NaN concentration used to loop forever in the rejection sampler."""
    with pytest.raises(ValueError, match="concentrations must be finite and >= 0"):
        sample_von_mises(torch.tensor([1.0, bad], dtype=F64), torch.Generator().manual_seed(0))


def test_von_mises_huge_concentration_is_a_point_mass() -> None:
    th = sample_von_mises(torch.full((1000,), 1e300, dtype=F64), torch.Generator().manual_seed(0))
    assert torch.isfinite(th).all() and float(th.abs().max()) < 1e-4


def test_categorical_and_dirichlet_refuse_rows_they_cannot_draw_from() -> None:
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="every row needs a category"):
        sample_categorical(torch.full((2, 3), -float("inf")), (5,), g)
    with pytest.raises(ValueError, match="must not be NaN"):
        sample_categorical(torch.tensor([0.0, float("nan")]), (5,), g)
    with pytest.raises(ValueError, match="k >= 1"):
        sample_categorical(torch.zeros(2, 0), (5,), g)
    from polygon_flows.sampling import sample_dirichlet

    with pytest.raises(ValueError, match="positive and finite"):
        sample_dirichlet(torch.tensor([-1.0, 2.0]), g)
    assert sample_dirichlet(torch.tensor([1.0, 2.0], dtype=F64), g).sum().item() == pytest.approx(1.0)
