"""Distributions: normalisation by quadrature, closed forms, gradcheck, goodness of fit, shapes, errors.

Thresholds: integrals within 1e-6 (segments, triangles, torus, folded) and 1e-4 (other polygons);
goodness of fit by Pearson's chi-square at the 0.999 quantile with fixed seeds (each test also shows
that a wrong density is rejected at the same threshold).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from polygon_flows import (
    FoldedDistribution,
    PolygonDirichletMixture,
    SegmentBetaMixture,
    TorusVonMisesMixture,
    box_quadrature,
    fit_reference_polygon,
    polygon_area,
    polygon_quadrature,
    segment_quadrature,
)
from polygon_flows.testing import EXAMPLE_POLYGONS as POLYGONS
from polygon_flows.testing import chi_square_polygon, chi_square_statistic
from scipy import stats
from torch.distributions import Categorical, MixtureSameFamily

F64 = torch.float64
CONC = torch.tensor([[2.0, 3.0, 4.0], [3.0, 2.0, 2.0], [1.0, 1.0, 5.0]], dtype=F64)
LOGITS = torch.tensor([0.0, 0.5, -0.3], dtype=F64)
GOF_QUANTILE = 0.999


def polygon_dist(name: str, **kw: object) -> PolygonDirichletMixture:
    return PolygonDirichletMixture(POLYGONS[name], LOGITS, CONC, **kw)


def segment_dist() -> SegmentBetaMixture:
    return SegmentBetaMixture(
        torch.tensor([0.1, -0.2, 0.3], dtype=F64),
        torch.tensor([1.1, 0.5, -0.4], dtype=F64),
        torch.tensor([0.2, -0.1], dtype=F64),
        torch.tensor([2.0, 6.0], dtype=F64),
        torch.tensor([3.0, 1.0], dtype=F64),
    )


def torus_dist() -> TorusVonMisesMixture:
    loc = torch.tensor([[0.1, 0.7, 0.3], [0.6, 0.2, 0.9]], dtype=F64)
    kappa = torch.tensor([[4.0, 2.0, 6.0], [1.0, 5.0, 3.0]], dtype=F64)
    return TorusVonMisesMixture(loc, kappa, torch.tensor([0.3, -0.2], dtype=F64))


INVERSION = (torch.stack([torch.eye(3, dtype=F64), -torch.eye(3, dtype=F64)]), torch.zeros(2, 3, dtype=F64))
R4 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
FOURFOLD = (torch.stack([torch.linalg.matrix_power(R4, i) for i in range(4)]), torch.zeros(4, 3, dtype=F64))


def fold_inversion(x: torch.Tensor) -> torch.Tensor:
    """Image in F = [0, 1/2] x [0, 1)^2 under x -> -x (mod 1)."""
    return torch.where(x[..., :1] > 0.5, torch.remainder(-x, 1.0), x)


def fold_fourfold(x: torch.Tensor) -> torch.Tensor:
    """Image in F = [0, 1/2]^2 x [0, 1) under the 4-fold rotation about z (mod 1)."""
    images = torch.stack([torch.remainder(x @ torch.linalg.matrix_power(R4, i).T, 1.0) for i in range(4)])
    inside = (images[..., 0] <= 0.5) & (images[..., 1] <= 0.5)
    first = inside.to(torch.int8).argmax(0)
    return torch.gather(images, 0, first[None, ..., None].expand((1,) + x.shape)).squeeze(0)


FOLDS = {
    "inversion": (INVERSION, fold_inversion, [0.5, 1.0, 1.0]),
    "fourfold": (FOURFOLD, fold_fourfold, [0.5, 0.5, 1.0]),
}


def folded_dist(name: str) -> FoldedDistribution:
    (rot, tr), fold, _ = FOLDS[name]
    return FoldedDistribution(torus_dist(), rot, tr, fold, period=1.0)


# ----------------------------------------------------------------------------- normalisation
def test_segment_integrates_to_one() -> None:
    d = segment_dist()
    x, w = segment_quadrature(d.start, d.end, pieces=4, degree=20)
    assert abs(float((d.log_prob(x).exp() * w).sum()) - 1) < 1e-6


@pytest.mark.parametrize("name", sorted(POLYGONS))
def test_polygon_integrates_to_one(name: str) -> None:
    d = polygon_dist(name)
    integrals = []
    for level in (2, 3):
        x, w = polygon_quadrature(POLYGONS[name], level=level, degree=12)
        integrals.append(float((d.log_prob(x).exp() * w).sum()))
    tol = 1e-6 if name == "triangle" else 1e-4
    assert abs(integrals[1] - 1) < tol
    assert abs(integrals[1] - integrals[0]) < tol  # converged under refinement


def test_torus_integrates_to_one() -> None:
    d = torus_dist()
    x, w = box_quadrature(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), pieces=4, degree=20)
    assert abs(float((d.log_prob(x).exp() * w).sum()) - 1) < 1e-6


@pytest.mark.parametrize("group", sorted(FOLDS))
def test_folded_integrates_to_one_over_fundamental_domain(group: str) -> None:
    d = folded_dist(group)
    hi = torch.tensor(FOLDS[group][2], dtype=F64)
    x, w = box_quadrature(torch.zeros(3, dtype=F64), hi, pieces=4, degree=20)
    assert abs(float((d.log_prob(x).exp() * w).sum()) - 1) < 1e-6
    # the unfolded base alone does not integrate to one over F (the fold matters)
    assert abs(float((d.base.log_prob(x).exp() * w).sum()) - 1) > 0.05


# ----------------------------------------------------------------------------- closed forms
def test_triangle_equals_affine_dirichlet() -> None:
    v = POLYGONS["triangle"]
    d = polygon_dist("triangle")
    torch.manual_seed(0)
    lam = torch.distributions.Dirichlet(torch.full((3,), 1.5, dtype=F64)).sample((50,))
    x = lam @ v
    weights = torch.softmax(LOGITS, 0).numpy()
    dens = sum(w * stats.dirichlet(a.numpy()).pdf(lam.numpy().T) for w, a in zip(weights, CONC, strict=True))
    expected = np.log(dens) - math.log(2 * float(polygon_area(v)))
    np.testing.assert_allclose(d.log_prob(x).numpy(), expected, rtol=1e-10, atol=1e-10)


def test_segment_equals_scaled_beta() -> None:
    d = segment_dist()
    t = torch.linspace(0.01, 0.99, 30, dtype=F64)
    x = d.start + t[:, None] * (d.end - d.start)
    w = torch.softmax(d.logits, 0).numpy()
    dens = sum(
        wi * stats.beta(a, b).pdf(t.numpy())
        for wi, a, b in zip(w, d.concentration1.numpy(), d.concentration0.numpy(), strict=True)
    )
    expected = np.log(dens) - math.log(float(d.length))
    np.testing.assert_allclose(d.log_prob(x).numpy(), expected, rtol=1e-10)


def test_torus_equals_scipy_vonmises_product() -> None:
    d = torus_dist()
    x = torch.rand(20, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    w = torch.softmax(d.logits, 0).numpy()
    dens = 0
    for k in range(2):
        comp = np.ones(20)
        for j in range(3):
            vm = stats.vonmises(float(d.concentration[k, j]), loc=2 * np.pi * float(d.loc[k, j]))
            comp = comp * 2 * np.pi * vm.pdf(2 * np.pi * x[:, j].numpy())
        dens = dens + w[k] * comp
    np.testing.assert_allclose(d.log_prob(x).numpy(), np.log(dens), rtol=1e-10)


# ----------------------------------------------------------------------------- gradients
def test_gradcheck_polygon_log_prob() -> None:
    v = POLYGONS["hexagon"]
    ref = fit_reference_polygon(v)
    x = polygon_dist("hexagon").sample((3,))

    def fn(xx: torch.Tensor, vv: torch.Tensor, lg: torch.Tensor, conc: torch.Tensor) -> torch.Tensor:
        return PolygonDirichletMixture(vv, lg, conc, reference=ref, validate_args=False).log_prob(xx)

    args = [t.clone().requires_grad_(True) for t in (x, v, LOGITS, CONC)]
    assert torch.autograd.gradcheck(fn, args, atol=1e-6, rtol=1e-5)


def test_gradcheck_segment_torus_folded_log_prob() -> None:
    d = segment_dist()
    x = d.sample((3,))

    def seg(xx, s, e, lg, c1, c0):  # noqa: ANN001, ANN202
        return SegmentBetaMixture(s, e, lg, c1, c0, validate_args=False).log_prob(xx)

    args = [
        t.clone().requires_grad_(True)
        for t in (x, d.start, d.end, d.logits, d.concentration1, d.concentration0)
    ]
    assert torch.autograd.gradcheck(seg, args)
    t = torus_dist()
    y = t.sample((3,))

    def tor(yy, loc, kappa, lg):  # noqa: ANN001, ANN202
        return TorusVonMisesMixture(loc, kappa, lg).log_prob(yy)

    assert torch.autograd.gradcheck(
        tor, [a.clone().requires_grad_(True) for a in (y, t.loc, t.concentration, t.logits)]
    )
    f = folded_dist("fourfold")
    z = f.sample((3,)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda zz: f.log_prob(zz), [z])


# ----------------------------------------------------------------------------- goodness of fit
@pytest.mark.parametrize("name", ["hexagon", "thin", "skewed"])
def test_polygon_samples_in_support_and_gof(name: str) -> None:
    d = polygon_dist(name)
    torch.manual_seed(1234)
    x = d.sample((20000,))
    assert x.shape == (20000, 2) and x.dtype == F64
    assert d.support.check(x).all()
    assert torch.isfinite(d.log_prob(x)).all()
    stat, dof, _ = chi_square_polygon(x, d.log_prob, POLYGONS[name], level=2)
    threshold = stats.chi2.ppf(GOF_QUANTILE, dof)
    assert stat < threshold

    # negative control: dropping the Jacobian term is rejected
    def wrong(y: torch.Tensor) -> torch.Tensor:
        return d.log_prob(y) + d.transform.inverse_and_log_abs_det_jacobian(y)[1]

    assert chi_square_polygon(x, wrong, POLYGONS[name], level=2)[0] > threshold


def _box_bins(d: torch.distributions.Distribution, hi: list[float], n: int) -> torch.Tensor:
    """Probabilities of the n^3 equal boxes of [0, hi] by quadrature."""
    probs = torch.empty(n, n, n, dtype=F64)
    h = torch.tensor(hi, dtype=F64) / n
    x0, w0 = box_quadrature(torch.zeros(3, dtype=F64), h, pieces=1, degree=12)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                off = h * torch.tensor([i, j, k], dtype=F64)
                probs[i, j, k] = (d.log_prob(x0 + off).exp() * w0).sum()
    return probs.reshape(-1)


@pytest.mark.parametrize("kind", ["torus", "inversion", "fourfold"])
def test_torus_and_folded_gof(kind: str) -> None:
    d = torus_dist() if kind == "torus" else folded_dist(kind)
    hi = [1.0, 1.0, 1.0] if kind == "torus" else FOLDS[kind][2]
    torch.manual_seed(99)
    x = d.sample((20000,))
    h = torch.tensor(hi, dtype=F64)
    assert ((x >= 0) & (x <= h)).all()
    n = 4
    idx = (x / h * n).floor().clamp(0, n - 1).long()
    observed = torch.bincount((idx[:, 0] * n + idx[:, 1]) * n + idx[:, 2], minlength=n**3).to(F64)
    probs = _box_bins(d, hi, n)
    assert abs(float(probs.sum()) - 1) < 1e-6
    stat, dof = chi_square_statistic(observed, probs)
    threshold = stats.chi2.ppf(GOF_QUANTILE, dof)
    assert stat < threshold
    # negative control: the density shifted by one bin along z is rejected
    probs_wrong = probs.reshape(n, n, n).roll(1, dims=2).reshape(-1)
    assert chi_square_statistic(observed, probs_wrong)[0] > threshold


def test_segment_samples_and_gof() -> None:
    d = segment_dist()
    torch.manual_seed(7)
    x = d.sample((20000,))
    assert d.support.check(x).all()
    t = ((x - d.start) @ (d.end - d.start)) / (d.end - d.start).pow(2).sum()
    edges = np.linspace(0, 1, 21)
    observed = torch.tensor(np.histogram(t.numpy(), edges)[0], dtype=F64)
    w = torch.softmax(d.logits, 0).numpy()
    cdf = sum(
        wi * stats.beta(a, b).cdf(edges)
        for wi, a, b in zip(w, d.concentration1.numpy(), d.concentration0.numpy(), strict=True)
    )
    stat, dof = chi_square_statistic(observed, torch.tensor(np.diff(cdf)))
    threshold = stats.chi2.ppf(GOF_QUANTILE, dof)
    assert stat < threshold
    wrong_cdf = stats.beta(2.0, 3.0).cdf(edges)
    assert chi_square_statistic(observed, torch.tensor(np.diff(wrong_cdf)))[0] > threshold


# ----------------------------------------------------------------------------- shapes and composition
def test_polygon_batch_shapes_expand_and_mixture_same_family() -> None:
    v = POLYGONS["pentagon"]
    m = 4
    torch.manual_seed(0)
    logits = torch.randn(m, 3, dtype=F64)
    conc = 1 + torch.rand(m, 3, 3, dtype=F64) * 3
    comp = PolygonDirichletMixture(v, logits, conc)
    assert comp.batch_shape == (m,) and comp.event_shape == (2,)
    x = comp.sample((5,))
    assert x.shape == (5, m, 2)
    assert comp.log_prob(x).shape == (5, m)
    big = comp.expand(torch.Size((2, m)))
    assert big.batch_shape == (2, m) and big.sample((3,)).shape == (3, 2, m, 2)
    torch.testing.assert_close(big.log_prob(x[:, None]), comp.log_prob(x[:, None]).expand(5, 2, m))
    outer = torch.tensor([0.1, -0.4, 0.3, 0.0], dtype=F64)
    mix = MixtureSameFamily(Categorical(logits=outer), comp)
    y = mix.sample((7,))
    assert y.shape == (7, 2) and comp.support.check(y[:, None]).all()
    expected = torch.logsumexp(torch.log_softmax(outer, 0) + comp.log_prob(y[:, None]), -1)
    torch.testing.assert_close(mix.log_prob(y), expected)
    # a batch of polygons
    vb = torch.stack([v, 2 * v])
    db = PolygonDirichletMixture(vb, LOGITS, CONC)
    assert db.batch_shape == (2,) and db.sample((6,)).shape == (6, 2, 2)
    xb = db.sample((6,))
    assert db.support.check(xb).all()


def test_segment_torus_folded_shapes_and_mixture_same_family() -> None:
    m = 3
    start = torch.zeros(m, 2, dtype=F64)
    end = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=F64)
    seg = SegmentBetaMixture(
        start, end, torch.zeros(m, 2, dtype=F64), torch.ones(m, 2, dtype=F64) * 2, torch.ones(m, 2, dtype=F64)
    )
    assert seg.batch_shape == (m,) and seg.sample((4,)).shape == (4, m, 2)
    assert seg.expand((5, m)).sample().shape == (5, m, 2)
    torch.testing.assert_close(seg.mean[0], torch.tensor([2 / 3, 0.0], dtype=F64))
    t = TorusVonMisesMixture(
        torch.rand(m, 2, 3, dtype=F64), torch.ones(m, 2, 3, dtype=F64), torch.zeros(m, 2, dtype=F64)
    )
    mix = MixtureSameFamily(Categorical(logits=torch.zeros(m, dtype=F64)), t)
    y = mix.sample((6,))
    assert y.shape == (6, 3) and mix.log_prob(y).shape == (6,)
    assert t.expand((2, m)).log_prob(y[:, None, None]).shape == (6, 2, m)
    f = folded_dist("inversion").expand((2,))
    assert f.batch_shape == (2,) and f.sample((3,)).shape == (3, 2, 3)


def test_capped_concentrations_are_usable() -> None:
    from polygon_flows import (
        BETA_CONCENTRATION_MAX,
        DIRICHLET_CONCENTRATION_MAX,
        VON_MISES_CONCENTRATION_MAX,
        capped_beta_concentration,
        capped_dirichlet_concentration,
        capped_von_mises_concentration,
    )

    raw = torch.tensor([-50.0, -2.0, 0.0, 3.0, 1e3, 1e5], requires_grad=True)
    for fn, cap in [
        (capped_beta_concentration, BETA_CONCENTRATION_MAX),
        (capped_dirichlet_concentration, DIRICHLET_CONCENTRATION_MAX),
        (capped_von_mises_concentration, VON_MISES_CONCENTRATION_MAX),
    ]:
        out = fn(raw)
        assert (out > 0).all() and (out <= cap).all()
        assert (out[1:] > out[:-1]).all() or float(out[-1].detach()) == cap  # monotone up to the cap
        assert abs(float(out[-1].detach()) - cap) < 1e-3 * cap
        torch.testing.assert_close(out[1:4], torch.nn.functional.softplus(raw[1:4]), rtol=1e-6, atol=0)
        (g,) = torch.autograd.grad(out.sum(), raw)
        assert torch.isfinite(g).all() and (g >= 0).all()
    with pytest.raises(ValueError, match="maximum"):
        from polygon_flows import capped_positive

        capped_positive(raw, -1.0)


# ----------------------------------------------------------------------------- bad input
def test_bad_polygon_inputs_raise() -> None:
    v = POLYGONS["hexagon"]
    with pytest.raises(ValueError, match="clockwise"):
        PolygonDirichletMixture(v.flip(0), LOGITS, CONC)
    with pytest.raises(ValueError, match="convex"):
        bad = v.clone()
        bad[2] = 0.1 * bad[2]
        PolygonDirichletMixture(bad, LOGITS, CONC)
    with pytest.raises(ValueError, match="degenerate"):
        PolygonDirichletMixture(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], dtype=F64), LOGITS, CONC)
    with pytest.raises(ValueError, match=r"concentration must have shape \(\.\.\., K, 3\)"):
        PolygonDirichletMixture(v, LOGITS, CONC[:, :2])
    with pytest.raises(ValueError, match="K=2"):
        PolygonDirichletMixture(v, LOGITS[:2], CONC)
    with pytest.raises(ValueError, match="broadcast"):
        PolygonDirichletMixture(torch.stack([v, v]), torch.zeros(3, 3, dtype=F64), CONC)
    with pytest.raises(ValueError, match="torch.Tensor"):
        PolygonDirichletMixture(v.tolist(), LOGITS, CONC)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PolygonDirichletMixture(v, LOGITS, -CONC, validate_args=True)
    d = PolygonDirichletMixture(v, LOGITS, CONC, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([[5.0, 5.0]], dtype=F64))
    quiet = PolygonDirichletMixture(v, LOGITS, CONC, validate_args=False)
    assert float(quiet.log_prob(torch.tensor([5.0, 5.0], dtype=F64))) == -math.inf


def test_bad_segment_torus_folded_inputs_raise() -> None:
    z = torch.zeros(3, dtype=F64)
    one = torch.ones(2, dtype=F64)
    with pytest.raises(ValueError, match="degenerate"):
        SegmentBetaMixture(z, z, one, one, one)
    with pytest.raises(ValueError, match="last dimension"):
        SegmentBetaMixture(z, torch.ones(2, dtype=F64), one, one, one)
    with pytest.raises(ValueError, match="K=2"):
        SegmentBetaMixture(z, z + 1, one, torch.ones(3, dtype=F64), one)
    d = SegmentBetaMixture(z, z + 1, one, one, one, validate_args=True)
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([0.5, 0.5, 0.6], dtype=F64))
    assert (
        float(SegmentBetaMixture(z, z + 1, one, one, one, validate_args=False).log_prob(z + 2)) == -math.inf
    )
    with pytest.raises(ValueError, match=r"\(\.\.\., K, d\)"):
        TorusVonMisesMixture(torch.zeros(2, 3, dtype=F64), torch.ones(2, 2, dtype=F64), one)
    rot, tr = INVERSION
    with pytest.raises(ValueError, match="orthogonal"):
        FoldedDistribution(torus_dist(), 2 * rot, tr, fold_inversion)
    with pytest.raises(ValueError, match="identity"):
        FoldedDistribution(torus_dist(), rot[1:], tr[1:], fold_inversion)
    with pytest.raises(ValueError, match=r"translations must have shape \(2, 3\)"):
        FoldedDistribution(torus_dist(), rot, tr[:1], fold_inversion)
    with pytest.raises(ValueError, match="event shape"):
        FoldedDistribution(torch.distributions.Normal(0.0, 1.0), rot, tr, fold_inversion)
