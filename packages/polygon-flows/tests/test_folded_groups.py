"""FoldedDistribution with measure-preserving non-orthogonal operations and batched, padded groups (0.2.0).

Thresholds: integrals within 1e-6 (tensor Gauss rules on smooth periodic integrands); goodness of fit by
Pearson's chi-square at the 0.999 quantile with a fixed seed and a negative control that must fail.
"""

from __future__ import annotations

import pytest
import torch
from polygon_flows import FoldedDistribution, TorusVonMisesMixture, box_quadrature
from polygon_flows.testing import chi_square_statistic
from scipy import stats

F64 = torch.float64
EYE = torch.eye(3, dtype=F64)
# Hexagonal mirror in fractional coordinates of a hexagonal cell: (x, y, z) -> (x, x - y, z).
# Integer, det -1, not orthogonal (it is an isometry only for the hexagonal metric).
HEX_MIRROR = torch.tensor([[1.0, 0.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
# 3-fold rotation about c in hexagonal fractional coordinates: (x, y, z) -> (-y, x - y, z).
HEX_3 = torch.tensor([[0.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
R4 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)


def torus(batch: tuple[int, ...] = ()) -> TorusVonMisesMixture:
    loc = torch.tensor([[0.1, 0.7, 0.3], [0.6, 0.2, 0.9], [0.35, 0.45, 0.05]], dtype=F64)
    kappa = torch.tensor([[4.0, 2.0, 6.0], [1.0, 5.0, 3.0], [8.0, 0.5, 2.0]], dtype=F64)
    logits = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    return TorusVonMisesMixture(loc.expand(batch + loc.shape), kappa.expand(batch + kappa.shape),
                                logits.expand(batch + logits.shape))


def fold_hex_mirror(x: torch.Tensor) -> torch.Tensor:
    """Image in F = {s = (y - x/2) mod 1 in [0, 1/2)} under the hexagonal mirror (mod 1)."""
    s = torch.remainder(x[..., 1] - x[..., 0] / 2, 1.0)
    flipped = torch.remainder(x @ HEX_MIRROR.T, 1.0)
    return torch.where((s >= 0.5)[..., None], flipped, x)


def group(*gens: torch.Tensor) -> torch.Tensor:
    """Closure of linear generators (integer matrices) under multiplication."""
    ops = [EYE]
    frontier = [EYE]
    while frontier:
        new = []
        for a in frontier:
            for g in gens:
                b = g @ a
                if not any(torch.equal(b, o) for o in ops):
                    ops.append(b)
                    new.append(b)
        frontier = new
    return torch.stack(ops)


def torus_integral(d: FoldedDistribution) -> torch.Tensor:
    """Integral over the whole torus [0, 1)^3 (independent Gauss-Legendre rule from numpy)."""
    x, w = box_quadrature(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64), pieces=3, degree=24)
    lp = d.log_prob(x.reshape((-1,) + (1,) * len(d.batch_shape) + (3,)))
    return (lp.exp() * w.reshape((-1,) + (1,) * len(d.batch_shape))).sum(0)


def test_non_orthogonal_unimodular_groups_integrate_to_their_order() -> None:
    # p_F extended to the whole torus is G-invariant and integrates to |G| (each image carries mass 1),
    # which holds only if every operation preserves volume.
    for gens, order in (((HEX_MIRROR,), 2), ((HEX_3,), 3), ((HEX_3, HEX_MIRROR), 6), ((HEX_3, -EYE), 6)):
        rot = group(*gens)
        assert rot.shape[0] == order
        d = FoldedDistribution(torus(), rot, torch.zeros(order, 3, dtype=F64), lambda x: x, period=1.0)
        assert abs(float(torus_integral(d)) - order) < 1e-6


def test_hex_mirror_fold_integrates_to_one_and_samples_fit() -> None:
    rot = group(HEX_MIRROR)
    d = FoldedDistribution(torus(), rot, torch.zeros(2, 3, dtype=F64), fold_hex_mirror, period=1.0)
    # F in coordinates (x, s, z) with y = s + x/2: a box [0,1) x [0,1/2) x [0,1), unit Jacobian
    n = 4
    hi = torch.tensor([1.0, 0.5, 1.0], dtype=F64)
    q, w = box_quadrature(torch.zeros(3, dtype=F64), hi / n, pieces=1, degree=12)
    idx = torch.cartesian_prod(*(torch.arange(n),) * 3).to(F64)
    box_pts = q[None] + (idx * hi / n)[:, None]  # (n^3, q, 3) in (x, s, z)
    xyz = box_pts.clone()
    xyz[..., 1] = box_pts[..., 1] + box_pts[..., 0] / 2
    probs = (d.log_prob(xyz).exp() * w).sum(-1)
    assert abs(float(probs.sum()) - 1) < 1e-6
    assert abs(float((d.base.log_prob(xyz).exp() * w).sum()) - 1) > 0.05  # the fold matters
    x = d.sample((20000,), generator=torch.Generator().manual_seed(5))
    s = x[:, 1] - x[:, 0] / 2
    s = s - torch.floor(s)
    assert bool(((s >= 0) & (s < 0.5)).all())
    coords = torch.stack((x[:, 0], s, x[:, 2]), -1)
    b = (coords / hi * n).floor().clamp(0, n - 1).long()
    observed = torch.bincount((b[:, 0] * n + b[:, 1]) * n + b[:, 2], minlength=n**3).to(F64)
    stat, dof = chi_square_statistic(observed, probs)
    threshold = stats.chi2.ppf(0.999, dof)
    assert stat < threshold
    # negative control: the same base folded as if the mirror were (x, -y, z) (wrong group) is rejected
    wrong_rot = torch.stack((EYE, torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=F64))))
    wrong = FoldedDistribution(torus(), wrong_rot, torch.zeros(2, 3, dtype=F64), fold_hex_mirror, period=1.0)
    probs_wrong = (wrong.log_prob(xyz).exp() * w).sum(-1)
    assert chi_square_statistic(observed, probs_wrong)[0] > threshold


def padded(groups: list[torch.Tensor], translations: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    n = max(g.shape[0] for g in groups)
    rot = torch.zeros(len(groups), n, 3, 3, dtype=F64)
    tr = torch.zeros(len(groups), n, 3, dtype=F64)
    mask = torch.zeros(len(groups), n, dtype=torch.bool)
    for i, (g, t) in enumerate(zip(groups, translations, strict=True)):
        rot[i, : len(g)], tr[i, : len(g)], mask[i, : len(g)] = g, t, True
        rot[i, len(g):] = 7.0  # garbage in the padding must be ignored
    return rot, tr, mask


def test_batched_padded_groups_equal_one_group_at_a_time() -> None:
    groups = [EYE[None], group(-EYE), group(HEX_MIRROR), group(R4), group(HEX_3, HEX_MIRROR)]
    translations = [torch.zeros(len(g), 3, dtype=F64) for g in groups]
    translations[3][1] = torch.tensor([0.0, 0.5, 0.25], dtype=F64)  # a screw 4_1-like operation set
    translations[3][3] = torch.tensor([0.0, 0.5, 0.75], dtype=F64)
    translations[3][2] = torch.tensor([0.0, 0.0, 0.5], dtype=F64)
    rot, tr, mask = padded(groups, translations)
    b = len(groups)
    d = FoldedDistribution(torus((b,)), rot, tr, lambda x: x, period=1.0, op_mask=mask)
    assert d.batch_shape == (b,)
    assert d.group_order.tolist() == [len(g) for g in groups]
    x = torch.rand(7, b, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    lp = d.log_prob(x)
    assert lp.shape == (7, b)
    for i, (g, t) in enumerate(zip(groups, translations, strict=True)):
        one = FoldedDistribution(torus(), g, t, lambda x: x, period=1.0)
        torch.testing.assert_close(lp[:, i], one.log_prob(x[:, i]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torus_integral(d), torch.tensor([float(len(g)) for g in groups], dtype=F64),
                               rtol=0, atol=1e-6)
    # gradients reach the base parameters through the padded batch
    loc = torus((b,)).loc.clone().requires_grad_(True)
    base = TorusVonMisesMixture(loc, torus((b,)).concentration, torus((b,)).logits)
    FoldedDistribution(base, rot, tr, lambda x: x, period=1.0, op_mask=mask).log_prob(x).sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all() and loc.grad.abs().sum() > 0


def test_bad_groups_raise() -> None:
    base = torus((2,))
    rot, tr, mask = padded([group(-EYE), EYE[None]], [torch.zeros(2, 3, dtype=F64), torch.zeros(1, 3, dtype=F64)])
    with pytest.raises(ValueError, match=r"\|det R\| = 1"):
        FoldedDistribution(torus(), torch.stack((EYE, 2 * HEX_MIRROR)), torch.zeros(2, 3, dtype=F64), lambda x: x)
    with pytest.raises(ValueError, match="op_mask must be a bool tensor of shape"):
        FoldedDistribution(base, rot, tr, lambda x: x, op_mask=mask[:, :1])
    with pytest.raises(ValueError, match="op_mask must be a bool tensor"):
        FoldedDistribution(base, rot, tr, lambda x: x, op_mask=mask.long())
    no_id = mask.clone()
    no_id[1, 0] = False  # the second group keeps no operation at all
    with pytest.raises(ValueError, match="every group must contain the identity"):
        FoldedDistribution(base, rot, tr, lambda x: x, op_mask=no_id)
    with pytest.raises(ValueError, match="does not broadcast"):
        FoldedDistribution(torus((3,)), rot, tr, lambda x: x, op_mask=mask)
    # one operation listed twice would count its images twice: the density would integrate to 3, not 1
    twice = torch.stack((EYE, -EYE, -EYE))
    with pytest.raises(ValueError, match="listed twice"):
        FoldedDistribution(torus(), twice, torch.zeros(3, 3, dtype=F64), lambda x: x, period=1.0)
    shifted = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.0, 1.5]], dtype=F64)  # 1.5 = 0.5 mod 1
    with pytest.raises(ValueError, match="listed twice"):
        FoldedDistribution(torus(), twice, shifted, lambda x: x, period=1.0)
    FoldedDistribution(torus(), twice, shifted, lambda x: x)  # without a period, t = 0.5 and 1.5 differ
    FoldedDistribution(torus(), twice, torch.zeros(3, 3, dtype=F64), lambda x: x, period=1.0,
                       validate_args=False)  # the O(G^2) check runs only when validating
    masked = torch.tensor([True, True, False])  # a padded copy is not an operation
    FoldedDistribution(torus(), twice, torch.zeros(3, 3, dtype=F64), lambda x: x, period=1.0, op_mask=masked)
    with pytest.raises(ValueError, match=r"translations must have shape \(2, 2, 3\)"):
        FoldedDistribution(base, rot, tr[:, :1], lambda x: x, op_mask=mask)
