"""The coordinate factor: normalisation on every piece, goodness of fit, samples on their piece, gradients, prior.

Normalisation is checked with quadrature written here, independent of the package's quadrature helpers:
tanh-sinh (double exponential) rules in the segment parameter and on the fan triangles of each polygon (they
absorb the integrable Beta/Dirichlet singularities at the boundary), and Gauss-Legendre rules collapsed onto the
tetrahedra of a convex-hull decomposition of each ASU (the folded von Mises density is analytic there).
Random parameters: logits N(0, 1); Beta and Dirichlet concentrations log-uniform in [0.6, 8]; von Mises
locations uniform, concentrations log-uniform in [0.5, 3] (normalisation) or [0.5, 20] (goodness of fit).
Tolerances: 1e-6 (segments, interiors), 2e-5 (polygons). Goodness of fit: Pearson's chi-square below its 0.999
quantile with fixed seeds, and a negative control (a wrong density) above it.
"""

from __future__ import annotations

import math

import asu_geometry as ag
import numpy as np
import pytest
import torch
from crystal_ar_model.coords import (
    DIRICHLET_PRIOR_ALPHA,
    CoordinateDistribution,
    CoordinateFactor,
    PolygonParams,
    SegmentParams,
    TorusParams,
    mixture_weight_log_prior,
)
from crystal_ar_model.piece_geometry import piece_geometry, piece_key, shipped_references
from crystal_ar_model.shapes import piece_shapes, shape_table
from scipy import stats
from scipy.spatial import ConvexHull

F64 = torch.float64
GOF_QUANTILE = 0.999
REPRESENTATIVE_GROUPS = [1, 2, 14, 15, 62, 65, 139, 141, 148, 166, 176, 191, 194, 221, 225, 227, 229]


# ----------------------------------------------------------------------------------------------- helpers
def random_distribution(pieces: torch.Tensor, seed: int, kappa_max: float = 8.0) -> CoordinateDistribution:
    """A CoordinateDistribution on ``pieces`` with random parameters (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    dim = shape_table().dim[pieces]

    def logu(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
        return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * torch.rand(shape, generator=g, dtype=F64))

    n1, n2, n3 = (int((dim == d).sum()) for d in (1, 2, 3))
    seg = SegmentParams(torch.randn(n1, 10, generator=g, dtype=F64), logu((n1, 10), 0.6, 8), logu((n1, 10), 0.6, 8))
    pol = PolygonParams(torch.randn(n2, 30, generator=g, dtype=F64), logu((n2, 30, 3), 0.6, 8))
    tor = TorusParams(torch.randn(n3, 50, generator=g, dtype=F64), torch.rand(n3, 50, 3, generator=g, dtype=F64),
                      logu((n3, 50, 3), 0.5, kappa_max))
    return CoordinateDistribution(pieces, seg if n1 else None, pol if n2 else None, tor if n3 else None)


def pieces_of_dim(d: int) -> torch.Tensor:
    return torch.nonzero(shape_table().dim == d).flatten()


def tanh_sinh(h: float = 1 / 8, tmax: float = 2.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes t in (0, 1), their complements 1 - t (accurate near 1) and weights of the tanh-sinh rule."""
    tau = np.arange(-tmax, tmax + h / 2, h)
    u = 0.5 * np.pi * np.sinh(tau)
    t = 1 / (1 + np.exp(-2 * u))
    w = h * 0.5 * np.pi * np.cosh(tau) / (2 * np.cosh(u) ** 2)
    return t, 1 / (1 + np.exp(2 * u)), w


def segment_integrals(dist: CoordinateDistribution) -> torch.Tensor:
    """Integral of the density over each segment atom's piece (all atoms must be on segments)."""
    t, tc, w = (torch.from_numpy(a) for a in tanh_sinh())
    verts = shape_table().vertices[dist.piece]
    start, end = verts[:, 0], verts[:, 1]
    lower = t[:, None, None] < 0.5
    x = torch.where(lower, start + t[:, None, None] * (end - start), end - tc[:, None, None] * (end - start))
    length = (end - start).norm(dim=-1)
    return (dist.log_prob(x).exp() * w[:, None]).sum(0) * length


def polygon_rule(vertices: np.ndarray, h: float = 1 / 4, tmax: float = 2.6) -> tuple[np.ndarray, np.ndarray]:
    """Points (M, 3) and fractional-area weights (M,) on a planar convex polygon in R^3 (fan from the centroid,
    a tanh-sinh product rule on each triangle in the coordinates (s, r): x = c + s((1 - r) v_i + r v_{i+1} - c))."""
    t, _, w = tanh_sinh(h, tmax)
    s, r = np.meshgrid(t, t, indexing="ij")
    ws = np.outer(w, w)
    c = vertices.mean(0)
    pts, wts = [], []
    for i in range(len(vertices)):
        a, b = vertices[i], vertices[(i + 1) % len(vertices)]
        edge_pt = (1 - r)[..., None] * a + r[..., None] * b
        pts.append((c + s[..., None] * (edge_pt - c)).reshape(-1, 3))
        jac = np.linalg.norm(np.cross(a - c, b - c)) * s
        wts.append((ws * jac).reshape(-1))
    return np.concatenate(pts), np.concatenate(wts)


def tetrahedra(points: np.ndarray) -> np.ndarray:
    """Tetrahedra (T, 4, 3) tiling the convex hull of ``points`` (hull triangles coned from the vertex mean)."""
    hull = ConvexHull(points)
    c = points.mean(0)
    return np.stack([np.stack([c, *points[s]]) for s in hull.simplices])


def refine(tets: np.ndarray) -> np.ndarray:
    """Split every tetrahedron into 8 by its edge midpoints (4 corners + the inner octahedron cut into 4)."""
    fine = []
    for t in tets:
        m = {(i, j): (t[i] + t[j]) / 2 for i in range(4) for j in range(i + 1, 4)}
        fine += [
            (t[0], m[0, 1], m[0, 2], m[0, 3]), (m[0, 1], t[1], m[1, 2], m[1, 3]),
            (m[0, 2], m[1, 2], t[2], m[2, 3]), (m[0, 3], m[1, 3], m[2, 3], t[3]),
            (m[0, 1], m[0, 2], m[0, 3], m[1, 3]), (m[0, 1], m[0, 2], m[1, 2], m[1, 3]),
            (m[0, 2], m[0, 3], m[1, 3], m[2, 3]), (m[0, 2], m[1, 2], m[1, 3], m[2, 3]),
        ]
    return np.array(fine)


def max_edge(tets: np.ndarray) -> float:
    return max(float(np.linalg.norm(tets[:, i] - tets[:, j], axis=-1).max()) for i in range(4) for j in range(i + 1, 4))


def tet_rule(tets: np.ndarray, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed (Duffy) Gauss-Legendre rule on tetrahedra: points (T*n^3, 3), weights."""
    g, gw = np.polynomial.legendre.leggauss(n)
    g, gw = (g + 1) / 2, gw / 2
    a, b, c = np.meshgrid(g, g, g, indexing="ij")
    wa, wb, wc = np.meshgrid(gw, gw, gw, indexing="ij")
    # (a, b, c) in the cube -> barycentric (l1, l2, l3) in the unit tetrahedron, Jacobian (1 - a)^2 (1 - b)
    l1 = a
    l2 = (1 - a) * b
    l3 = (1 - a) * (1 - b) * c
    jac = (1 - a) ** 2 * (1 - b)
    lam = np.stack([1 - l1 - l2 - l3, l1, l2, l3], -1).reshape(-1, 4)
    wref = (wa * wb * wc * jac).reshape(-1)
    vol6 = np.abs(np.linalg.det(tets[:, 1:] - tets[:, :1]))  # 6 x volume
    pts = np.einsum("qj,tjd->tqd", lam, tets).reshape(-1, 3)
    wts = (vol6[:, None] * wref[None]).reshape(-1)
    return pts, wts


def interior_piece(sg: int) -> int:
    table = shape_table()
    general = ag.space_group(sg).wyckoff_positions[-1]
    assert general.dim == 3
    return int(table.piece_offset[general.index, 0])


# ----------------------------------------------------------------------------------------------- normalisation
def test_every_segment_integrates_to_one() -> None:
    pieces = pieces_of_dim(1)
    assert pieces.numel() >= 948
    integrals = segment_integrals(random_distribution(pieces, seed=1))
    worst = float((integrals - 1).abs().max())
    assert worst < 1e-6, f"worst segment {piece_key(int(pieces[(integrals - 1).abs().argmax()]))}: {worst:.2e}"


@pytest.mark.parametrize("half", [0, 1])
def test_every_polygon_integrates_to_one(half: int) -> None:
    pieces = pieces_of_dim(2)
    pieces = pieces[half::2]  # two halves, so that xdist can run them in parallel
    dist = random_distribution(pieces, seed=2 + half)
    table = shape_table()
    worst, worst_key = 0.0, ""
    sizes = table.vertex_mask[pieces].sum(-1)
    for k in torch.unique(sizes).tolist():
        cols = torch.nonzero(sizes == k).flatten()
        rules = [polygon_rule(table.vertices[pieces[c], :k].numpy()) for c in cols.tolist()]
        x = torch.from_numpy(np.stack([r[0] for r in rules], 1))  # (M, n, 3)
        w = torch.from_numpy(np.stack([r[1] for r in rules], 1))
        sub = CoordinateDistribution(
            pieces[cols], polygon=PolygonParams(dist.polygon.logits[cols], dist.polygon.concentration[cols])
        )
        integ = (sub.log_prob(x).exp() * w).sum(0)
        err = (integ - 1).abs()
        if float(err.max()) > worst:
            worst, worst_key = float(err.max()), piece_key(int(pieces[cols[err.argmax()]]))
    assert worst < 2e-5, f"worst polygon {worst_key}: {worst:.2e}"


@pytest.mark.parametrize("sg", REPRESENTATIVE_GROUPS)
def test_asu_interior_integrates_to_one(sg: int) -> None:
    g = ag.space_group(sg)
    tets = tetrahedra(g.asu.vertices_array)
    vol = np.abs(np.linalg.det(tets[:, 1:] - tets[:, :1])).sum() / 6
    assert abs(vol * g.order - 1) < 1e-12  # the hull decomposition covers the ASU, |ASU| |G/T| = 1
    while max_edge(tets) > 0.5:  # resolve the von Mises bumps: the rule's cells at most 0.5 wide
        tets = refine(tets)
    pts, wts = tet_rule(tets, n=6)
    pieces = torch.tensor([interior_piece(sg)] * 2)
    dist = random_distribution(pieces, seed=sg, kappa_max=3.0)
    lp = torch.cat([dist.log_prob(torch.from_numpy(p)[:, None].expand(-1, 2, 3))
                    for p in np.array_split(pts, max(1, len(pts) * g.order // 200_000))])
    integ = (lp.exp() * torch.from_numpy(wts)[:, None]).sum(0)
    assert torch.allclose(integ, torch.ones(2, dtype=F64), atol=1e-6, rtol=0), integ.tolist()
    # the unfolded torus density alone does not integrate to one over the ASU (unless the group is P1)
    if g.order > 1:
        base = dist._torus_dist(torch.arange(2), torch.tensor([sg, sg]), g.order).base
        unfolded = (base.log_prob(torch.from_numpy(pts)[:, None]).exp() * torch.from_numpy(wts)[:, None]).sum(0)
        assert bool(((unfolded - 1).abs() > 0.05).all())


def test_point_pieces_have_log_prob_zero() -> None:
    pieces = pieces_of_dim(0)
    dist = random_distribution(pieces, seed=3)
    x = shape_table().vertices[pieces, 0]
    assert torch.equal(dist.log_prob(x), torch.zeros(len(pieces), dtype=F64))
    assert torch.equal(dist.sample(), x)
    quiet = CoordinateDistribution(pieces, validate_args=False)
    assert float(quiet.log_prob(x + 1e-3).max()) == -math.inf
    with pytest.raises(ValueError, match="off its point piece"):
        dist.log_prob(x + 1e-3)


# ----------------------------------------------------------------------------------------------- sampling
def on_piece_distance(shape: object, x: np.ndarray) -> np.ndarray:
    """Distance of points (m, 3) to a piece (closed), computed from the exact shape in floats."""
    if shape.dim == 0:
        return np.linalg.norm(x - shape.origin_array, axis=-1)
    if shape.dim == 3:
        return np.zeros(len(x))
    params = shape.to_params(x)
    if shape.dim == 1:
        params = np.clip(params, 0, 1)
    else:
        poly = shape.chart_vertices_array
        k = len(poly)
        for i in range(k):  # points outside an edge's half-plane: report the violation
            a, b = poly[i], poly[(i + 1) % k]
            e = b - a
            cross = e[0] * (params[:, 1] - a[1]) - e[1] * (params[:, 0] - a[0])
            assert np.all(cross >= -1e-12 * np.linalg.norm(e)), "sample outside its polygon"
    return np.linalg.norm(shape.to_frac(params) - x, axis=-1)


def test_samples_lie_on_their_piece_and_in_the_exact_asu() -> None:
    table = shape_table()
    shapes = piece_shapes()
    pieces = torch.arange(table.num_pieces).repeat_interleave(4)
    factor = CoordinateFactor(context_dim=6, hidden=8)
    torch.manual_seed(0)
    with torch.no_grad():
        dist = factor(torch.randn(len(pieces), 6), pieces)
    x = dist.sample(generator=torch.Generator().manual_seed(0))
    assert x.dtype == F64 and x.shape == (len(pieces), 3)
    assert torch.isfinite(dist.log_prob(x)).all()
    xs = x.numpy()
    groups = table.space_group[pieces]
    for sg in range(1, 231):
        cols = torch.nonzero(groups == sg).flatten().numpy()
        g = ag.space_group(sg)
        assert np.all(g.asu.contains(xs[cols], tol=1e-12)), f"group {sg}: a sample outside the exact ASU"
        # canonicalisation maps each sample onto itself and classifies it on its own piece
        res = ag.to_asu_points(sg, xs[cols], tol=1e-8)
        np.testing.assert_allclose(res.frac, xs[cols], atol=1e-9, rtol=0)
        for j, c in enumerate(cols):
            p = int(pieces[c])
            dist_to_piece = on_piece_distance(shapes[p], xs[c : c + 1])
            assert dist_to_piece.max() < 1e-12, f"{piece_key(p)}: sample {xs[c]} off its piece"
            if not bool(table.anchored[p]):
                wp = g.wyckoff_positions[res.wyckoff_index[j]]
                first = int(table.piece_offset[wp.index, 0])
                assert first + int(res.shape_index[j]) == p, f"{piece_key(p)}: sample classified elsewhere"
    interior = torch.nonzero(table.dim[pieces] == 3).flatten()[::4]
    for c in interior.tolist():  # generic samples: exact rational membership
        assert ag.asu(int(groups[c])).contains(xs[c].tolist(), tol=0)


def test_sampling_is_reproducible_with_a_generator() -> None:
    pieces = torch.tensor([interior_piece(225), int(pieces_of_dim(1)[5]), int(pieces_of_dim(2)[7])])
    dist = random_distribution(pieces, seed=4)
    a = dist.sample((3,), generator=torch.Generator().manual_seed(9))
    b = dist.sample((3,), generator=torch.Generator().manual_seed(9))
    assert a.shape == (3, 3, 3) and torch.equal(a, b)
    assert not torch.equal(a, dist.sample((3,), generator=torch.Generator().manual_seed(10)))


def chi_square(observed: torch.Tensor, probs: torch.Tensor) -> tuple[float, float]:
    """Pearson's statistic and its 0.999 quantile (cells with expected count < 5 merged into one)."""
    n = float(observed.sum())
    expected = n * probs / probs.sum()
    small = expected < 5
    if bool(small.any()):
        observed = torch.cat([observed[~small], observed[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    stat = float(((observed - expected) ** 2 / expected).sum())
    return stat, float(stats.chi2.ppf(GOF_QUANTILE, observed.numel() - 1))


def test_segment_samples_fit_log_prob() -> None:
    piece = int(pieces_of_dim(1)[100])
    dist = random_distribution(torch.tensor([piece]), seed=5)
    x = dist.sample((20000,), generator=torch.Generator().manual_seed(1))[:, 0]
    start, end = shape_table().vertices[piece, :2]
    t = ((x - start) @ (end - start)) / (end - start).pow(2).sum()
    nb = 20
    observed = torch.bincount((t * nb).floor().clamp(0, nb - 1).long(), minlength=nb).to(F64)
    tt, _, w = (torch.from_numpy(a) for a in tanh_sinh())
    edges = torch.arange(nb + 1, dtype=F64) / nb
    pts = edges[:-1, None] + tt[None] / nb  # (nb, q) in t
    dens = dist.log_prob((start + pts[..., None] * (end - start))[..., None, :])[..., 0].exp()
    probs = (dens * w).sum(-1) / nb * (end - start).norm()
    assert abs(float(probs.sum()) - 1) < 1e-6
    stat, threshold = chi_square(observed, probs)
    assert stat < threshold
    assert chi_square(observed, probs.flip(0))[0] > threshold  # negative control: the mirrored density


@pytest.mark.parametrize("k", [4, 5])
def test_polygon_samples_fit_log_prob(k: int) -> None:
    table = shape_table()
    polys = pieces_of_dim(2)
    piece = int(polys[table.vertex_mask[polys].sum(-1) == k][0])
    dist = random_distribution(torch.tensor([piece]), seed=6 + k)
    x = dist.sample((20000,), generator=torch.Generator().manual_seed(2))[:, 0].numpy()
    verts = table.vertices[piece, :k].numpy()
    # cells: each fan triangle (c, v_i, v_i+1) split into 4 by its midpoints
    c = verts.mean(0)
    cells = []
    for i in range(k):
        a, b = verts[i], verts[(i + 1) % k]
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        cells += [(c, ca, bc), (ca, a, ab), (bc, ab, b), (ca, ab, bc)]
    cells = np.array(cells)  # (m, 3, 3)
    # observed: locate samples by barycentric coordinates (least squares in the plane)
    e1, e2 = cells[:, 1] - cells[:, 0], cells[:, 2] - cells[:, 0]
    gram = np.stack([np.stack([(e1 * e1).sum(-1), (e1 * e2).sum(-1)], -1),
                     np.stack([(e1 * e2).sum(-1), (e2 * e2).sum(-1)], -1)], -2)
    rel = x[:, None] - cells[None, :, 0]
    rhs = np.stack([(rel * e1).sum(-1), (rel * e2).sum(-1)], -1)
    lam = np.linalg.solve(gram[None], rhs[..., None])[..., 0]
    score = np.minimum(np.minimum(lam[..., 0], lam[..., 1]), 1 - lam[..., 0] - lam[..., 1])
    observed = torch.from_numpy(np.bincount(score.argmax(-1), minlength=len(cells)).astype(float))
    # expected: tanh-sinh product rule on each cell (a triangle is a polygon with 3 vertices)
    probs = []
    for cell in cells:
        pts, wts = polygon_rule(cell, h=1 / 4)
        probs.append(float((dist.log_prob(torch.from_numpy(pts)[:, None]).exp()[:, 0] * torch.from_numpy(wts)).sum()))
    probs = torch.tensor(probs, dtype=F64)
    assert abs(float(probs.sum()) - 1) < 1e-4
    stat, threshold = chi_square(observed, probs)
    assert stat < threshold
    other = random_distribution(torch.tensor([piece]), seed=99)  # negative control: another density's cells
    probs_other = []
    for cell in cells:
        pts, wts = polygon_rule(cell, h=1 / 4)
        probs_other.append(float((other.log_prob(torch.from_numpy(pts)[:, None]).exp()[:, 0]
                                  * torch.from_numpy(wts)).sum()))
    assert chi_square(observed, torch.tensor(probs_other, dtype=F64))[0] > threshold


@pytest.mark.parametrize("sg", [191, 225])
def test_interior_samples_fit_log_prob(sg: int) -> None:
    g = ag.space_group(sg)
    fine = refine(tetrahedra(g.asu.vertices_array))
    piece = interior_piece(sg)
    dist = random_distribution(torch.tensor([piece]), seed=7, kappa_max=20.0)
    x = dist.sample((20000,), generator=torch.Generator().manual_seed(3))[:, 0].numpy()
    a = fine[:, 1:] - fine[:, :1]  # (T, 3, 3): rows are edge vectors
    lam = np.einsum("tji,ntj->nti", np.linalg.inv(a.transpose(0, 2, 1)).transpose(0, 2, 1),
                    x[:, None] - fine[None, :, 0])
    score = np.minimum(lam.min(-1), 1 - lam.sum(-1))
    observed = torch.from_numpy(np.bincount(score.argmax(-1), minlength=len(fine)).astype(float))
    assert bool((score.max(-1) > -1e-9).all()), "a sample outside the ASU's tetrahedra"
    pts, wts = tet_rule(fine, n=5)
    lp = dist.log_prob(torch.from_numpy(pts)[:, None])[:, 0]
    probs = (lp.exp() * torch.from_numpy(wts)).reshape(len(fine), -1).sum(-1)
    assert abs(float(probs.sum()) - 1) < 1e-3  # cell probabilities good enough for 20,000 samples
    stat, threshold = chi_square(observed, probs)
    assert stat < threshold
    # negative control: the torus density without the fold (rescaled) is rejected
    base = dist._torus_dist(torch.arange(1), torch.tensor([sg]), g.order).base
    wrong = (base.log_prob(torch.from_numpy(pts)).exp() * torch.from_numpy(wts)).reshape(len(fine), -1).sum(-1)
    assert chi_square(observed, wrong)[0] > threshold


# ----------------------------------------------------------------------------------------------- the factor
def test_batched_log_prob_equals_atom_by_atom() -> None:
    table = shape_table()
    gen = torch.Generator().manual_seed(11)
    pieces = torch.randint(0, table.num_pieces, (40,), generator=gen)
    factor = CoordinateFactor(context_dim=5, hidden=8, layers=1)
    ctx = torch.randn(40, 5, generator=gen)
    dist = factor(ctx, pieces)
    x = dist.sample((2,), generator=gen)
    lp = dist.log_prob(x)
    assert lp.shape == (2, 40)
    for i in range(40):
        one = factor(ctx[i : i + 1], pieces[i : i + 1])
        torch.testing.assert_close(lp[:, i : i + 1], one.log_prob(x[:, i : i + 1]), rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter() -> None:
    table = shape_table()
    pieces = torch.cat([pieces_of_dim(d)[:6] for d in range(4)] + [torch.tensor([interior_piece(225)])])
    factor = CoordinateFactor(context_dim=4, hidden=8)
    ctx = torch.randn(len(pieces), 4, requires_grad=True)
    dist = factor(ctx, pieces)
    x = dist.sample(generator=torch.Generator().manual_seed(0))
    lp, prior = dist.log_prob_terms(x)
    (lp.sum() + prior.sum()).backward()
    for name, p in factor.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "piece_embedding.weight":
            assert float(p.grad.abs().sum()) > 0, name
    used = factor.piece_embedding.weight.grad[pieces[table.dim[pieces] > 0]]
    assert float(used.abs().sum(-1).min()) > 0
    assert ctx.grad is not None and float(ctx.grad[table.dim[pieces] > 0].abs().sum(-1).min()) > 0


def test_mixture_weight_log_prior() -> None:
    pieces = torch.cat([pieces_of_dim(d)[:3] for d in range(4)])
    dist = random_distribution(pieces, seed=12)
    prior = dist.log_prior()
    assert prior.shape == (12,) and torch.equal(prior[:3], torch.zeros(3, dtype=F64))
    for params, rows in ((dist.segment, slice(3, 6)), (dist.polygon, slice(6, 9)), (dist.torus, slice(9, 12))):
        k = params.logits.shape[-1]
        expected = torch.distributions.Dirichlet(torch.full((k,), DIRICHLET_PRIOR_ALPHA, dtype=F64)).log_prob(
            torch.softmax(params.logits, -1))
        torch.testing.assert_close(prior[rows], expected, rtol=1e-10, atol=1e-10)
    uniform = mixture_weight_log_prior(torch.zeros(5, dtype=F64))
    peaked = mixture_weight_log_prior(torch.tensor([30.0, 0, 0, 0, 0], dtype=F64))
    assert float(peaked) < float(uniform)  # the stabiliser penalises collapsing weights


def test_bad_input_raises() -> None:
    factor = CoordinateFactor(context_dim=3, hidden=4)
    n = shape_table().num_pieces
    with pytest.raises(ValueError, match="context must have shape"):
        factor(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="piece must be a long tensor"):
        factor(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="piece ids must lie in"):
        factor(torch.randn(1, 3), torch.tensor([n]))
    with pytest.raises(ValueError, match="parameters are given for 0 atoms"):
        CoordinateDistribution(pieces_of_dim(1)[:1])
    with pytest.raises(ValueError, match="components must be positive"):
        CoordinateFactor(context_dim=3, hidden=4, torus_components=0)
    seg = int(pieces_of_dim(1)[0])
    dist = random_distribution(torch.tensor([seg]), seed=0)
    mid = shape_table().vertices[seg, :2].mean(0)
    assert torch.isfinite(dist.log_prob(mid[None]))[0]
    off = mid + torch.tensor([1e-3, 2e-3, -1e-3], dtype=F64)
    with pytest.raises(ValueError, match="off its segment piece"):
        dist.log_prob(off[None])
    quiet = CoordinateDistribution(dist.piece, segment=dist.segment, validate_args=False)
    assert float(quiet.log_prob(off[None])) == -math.inf
    with pytest.raises(ValueError, match=r"value must have shape \(\.\.\., 1, 3\)"):
        dist.log_prob(torch.zeros(2, 3, dtype=F64))


# ----------------------------------------------------------------------------------------------- references
def test_shipped_references_cover_every_polygon_piece() -> None:
    geo = piece_geometry()
    shipped = shipped_references()
    for p in pieces_of_dim(2).tolist():
        entry = shipped.get(piece_key(p))
        assert entry is not None, f"{piece_key(p)} has no shipped reference polygon"
        k = int(geo.polygon_size[p])
        np.testing.assert_allclose(np.asarray(entry["vertices"]), geo.polygon[p, :k].numpy(), atol=1e-12, rtol=0)
        np.testing.assert_array_equal(np.asarray(entry["reference"]), geo.reference[p, :k].numpy())


def test_reference_fit_regenerates_a_sample_of_the_shipped_file() -> None:
    from crystal_ar_model.build_references import fit_piece_reference

    geo = piece_geometry()
    polys = pieces_of_dim(2)
    sizes = geo.polygon_size[polys]
    # distinct shapes: the first pentagon, two quadrilaterals of different groups, one triangle
    sample = [int(polys[sizes == 5][0]), int(polys[sizes == 4][0]), int(polys[sizes == 4][-1]),
              int(polys[sizes == 3][0])]
    shipped = shipped_references()
    for p in sample:
        _, ref, distortion = fit_piece_reference(p)
        stored = np.asarray(shipped[piece_key(p)]["reference"])
        np.testing.assert_allclose(ref, stored, atol=1e-9, rtol=0, err_msg=piece_key(p))
        assert distortion < 0.25


@pytest.mark.parametrize("sg", [166, 194, 227])
def test_interior_density_is_invariant_under_the_group(sg: int) -> None:
    g = ag.space_group(sg)
    dist = random_distribution(torch.tensor([interior_piece(sg)]), seed=13, kappa_max=20.0)
    x = dist.sample((50,), generator=torch.Generator().manual_seed(4))[:, 0].numpy()
    rng = np.random.default_rng(0)
    op = rng.integers(0, g.order, size=50)
    images = g.apply(x)[np.arange(50), op] + rng.integers(-2, 3, size=(50, 3))  # g x + L, any lattice vector
    lp = dist.log_prob(torch.from_numpy(x)[:, None])
    lp_images = dist.log_prob(torch.from_numpy(images)[:, None])
    torch.testing.assert_close(lp_images, lp, rtol=0, atol=1e-9)
