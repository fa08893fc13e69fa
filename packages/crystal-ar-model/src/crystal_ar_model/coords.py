r"""The coordinate factor p(x_i | s_i, ...): one density per piece kind, batched over pieces of every group.

Measure. Every density is with respect to the d-dimensional Hausdorff measure of :math:`\mathbb{R}^3` with the
Euclidean metric *on fractional coordinates* (d = the piece's dimension), so that log-likelihoods of
different crystals are comparable and independent of the lattice parameters:

* 0-D pieces (points): the counting measure, ``log_prob = 0``;
* 1-D pieces (segments from ``start`` to ``end``): per unit fractional length,
  :class:`polygon_flows.SegmentBetaMixture` (10 components) on the segment,
  :math:`p(x) = \sum_k \pi_k \operatorname{Beta}(t; \alpha_k, \beta_k) / \lVert e - s\rVert` with
  :math:`x = s + t (e - s)`;
* 2-D pieces (convex polygons): per unit fractional area, :class:`polygon_flows.PolygonDirichletMixture`
  (30 components) on the polygon written in an orthonormal frame of its plane
  (:mod:`crystal_ar_model.piece_geometry`), with the shipped reference polygons;
* 3-D pieces (the ASU interior): per unit fractional volume, a :class:`polygon_flows.TorusVonMisesMixture`
  (50 components) on the conventional cell :math:`[0, 1)^3` folded onto the exact ASU over all
  :math:`|G/T|` operations (centring included) with :class:`polygon_flows.FoldedDistribution`:
  :math:`p_{\mathrm{ASU}}(x) = \sum_{g \in G/T} p_{\mathbb{T}}(g x \bmod 1)` (the seed paper's
  :math:`p_\Pi(x) = \sum_g p_\Gamma(g x)`); it integrates to 1 over the ASU because the images of the ASU
  tile the cell and every operation has unit Jacobian.

Anchored pieces (site 0 of a polar crystal) are pieces of their own dimension and get that dimension's density.

Parameters come from the per-atom context and a learned piece embedding through one small MLP per kind, with
concentrations capped by :func:`polygon_flows.capped_beta_concentration` (5000),
:func:`polygon_flows.capped_dirichlet_concentration` (2500) and
:func:`polygon_flows.capped_von_mises_concentration` (500). Geometry and densities are evaluated in float64;
the networks may run in float32. :meth:`CoordinateDistribution.log_prob_terms` also returns the log density of
every mixture's weights under a symmetric Dirichlet(1.0001) (the seed paper's stabiliser).

Samples lie on their piece and inside the exact ASU: segments and polygons are drawn in their own coordinates
and kept :data:`SAMPLE_MARGIN` inside the piece's relative boundary (in the Beta / barycentric coordinate), so
that a floating-point sample never lands on a boundary that belongs to another Wyckoff position or to the
excluded side of the ASU (this moves at most the mass the density puts within that margin of the boundary);
interior samples are torus samples mapped onto their unique image in the exact ASU with the ASU's boundary rules.

Reference: the seed paper's section 2.4 and appendix A.4 (coordinate densities and the folded torus density).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.distributions import constraints as tc

from .piece_geometry import group_operations, piece_geometry
from .shapes import shape_table

__all__ = [
    "DIRICHLET_PRIOR_ALPHA",
    "SAMPLE_MARGIN",
    "CoordinateDistribution",
    "CoordinateFactor",
    "PolygonParams",
    "SegmentParams",
    "TorusParams",
    "fold_into_asu",
    "mixture_weight_log_prior",
]

DIRICHLET_PRIOR_ALPHA = 1.0001
"""Concentration of the symmetric Dirichlet prior on every mixture's weights."""
SAMPLE_MARGIN = 1e-9
"""Samples on segments and polygons keep this distance inside the piece (Beta / barycentric coordinate)."""
ON_PIECE_TOL = 1e-6
"""``log_prob`` is ``-inf`` for values farther than this (fractional units) from their piece's affine hull."""
_F64 = torch.float64
_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(raw + this) = 1 at raw = 0: near-uniform at initialisation
_ASU_TOL = 1e-12  # distance (fractional) within which a point counts as on an ASU plane when folding
_FOLD_CHUNK = 1 << 16  # points x operations per batch when folding (bounds memory)


@dataclass(frozen=True)
class SegmentParams:
    """Beta-mixture parameters of the segment atoms, in batch order: ``logits``, ``concentration1``,
    ``concentration0``, each ``(n, K)``."""

    logits: Tensor
    concentration1: Tensor
    concentration0: Tensor


@dataclass(frozen=True)
class PolygonParams:
    """Dirichlet-mixture parameters of the polygon atoms, in batch order: ``logits (n, K)``,
    ``concentration (n, K, 3)``."""

    logits: Tensor
    concentration: Tensor


@dataclass(frozen=True)
class TorusParams:
    """Von Mises-mixture parameters of the interior atoms, in batch order: ``logits (n, K)``, ``loc (n, K, 3)``
    (periodic, fractional), ``concentration (n, K, 3)``."""

    logits: Tensor
    loc: Tensor
    concentration: Tensor


def mixture_weight_log_prior(logits: Tensor, alpha: float = DIRICHLET_PRIOR_ALPHA) -> Tensor:
    r"""Log density of :math:`\pi = \operatorname{softmax}(\ell)` under a symmetric Dirichlet(:math:`\alpha`).

    :math:`\log \Gamma(K\alpha) - K \log\Gamma(\alpha) + (\alpha - 1) \sum_k \log \pi_k`, shape ``logits.shape[:-1]``.
    """
    k = logits.shape[-1]
    const = math.lgamma(k * alpha) - k * math.lgamma(alpha)
    return const + (alpha - 1.0) * torch.log_softmax(logits, dim=-1).sum(-1)


# ----------------------------------------------------------------------------------------------- folding
def _asu_representatives(space_group: int, x: np.ndarray) -> np.ndarray:
    """The image of each point ``(m, 3)`` inside the exact ASU of ``space_group`` (float64).

    All images :math:`g x + L` are reduced into the ASU's bounding box (one lattice shift more along axes where the
    box spans a full period) and tested with the ASU's exact boundary rules (a point within ``1e-12`` of a cut
    plane counts as on it, so the plane's inclusion rule decides); the first image inside wins, and when rounding
    leaves none inside, the image closest to the closed ASU.
    """
    import asu_geometry as ag

    g = ag.space_group(space_group)
    lo, hi = g.asu.box_arrays
    wide = (hi - lo) >= 1 - 1e-12
    shifts = np.array(np.meshgrid(*[(0.0, 1.0) if w else (0.0,) for w in wide], indexing="ij")).reshape(3, -1).T
    out = np.empty_like(x)
    chunk = max(1, _FOLD_CHUNK // (g.order * len(shifts)))
    for i in range(0, len(x), chunk):
        xs = x[i : i + chunk]
        y = g.apply(xs)  # (m, G, 3)
        base = y - np.floor(y - lo + _ASU_TOL)
        cand = (base[:, :, None, :] + shifts).reshape(len(xs), -1, 3)
        inside = g.asu.contains_in_box(cand, _ASU_TOL)
        first = np.argmax(inside, axis=1)
        none = ~inside.any(axis=1)
        if np.any(none):
            first[none] = np.argmax(g.asu.margin(cand[none]), axis=1)
        out[i : i + chunk] = cand[np.arange(len(xs)), first]
    return out


def fold_into_asu(space_group: Tensor, frac: Tensor) -> Tensor:
    """Map points onto their unique image in the exact ASU of their group.

    Args:
        space_group: ``(n,)`` long, the group of each column.
        frac: ``(..., n, 3)`` fractional coordinates (any real values; reduced modulo the lattice).

    Returns:
        ``(..., n, 3)`` float64, each point's image inside the exact ASU (one vectorised pass per distinct group).
    """
    x = frac.detach().to(_F64)
    out = torch.empty_like(x)
    for sg in torch.unique(space_group).tolist():
        cols = torch.nonzero(space_group == sg).flatten()
        pts = x[..., cols, :]
        reps = _asu_representatives(int(sg), pts.reshape(-1, 3).numpy())
        out[..., cols, :] = torch.from_numpy(reps).reshape(pts.shape)
    return out


BOUNDARY_TOL = 1e-12
"""Sites closer than this (fractional units) to their piece's relative boundary, or outside it by at most
:data:`ON_PIECE_TOL`, are evaluated :data:`SAMPLE_MARGIN` inside (the densities are 0 or infinite on the
boundary, and 0 outside)."""


def _edge_distances(v: Tensor, piece: Tensor, d: int, centre: Tensor) -> tuple[Tensor, Tensor]:
    """Signed distances (fractional units, positive inside) of points ``(..., n, 3)`` from the boundary lines
    of their segment (``d = 1``: the two ends) or polygon (``d = 2``: every edge line), shape ``(..., n, K)``,
    and those of ``centre`` ``(n, 3)``, a point inside each piece, ``(n, K)`` (padded edges: ``+inf``)."""
    geo = piece_geometry()
    if d == 1:
        direction = geo.direction[piece]
        length = direction.norm(dim=-1)

        def ends(x: Tensor) -> Tensor:
            t = ((x - geo.origin[piece]) * direction).sum(-1) / length**2
            return torch.stack([t, 1 - t], -1) * length.unsqueeze(-1)

        return ends(v), ends(centre)
    poly = geo.polygon[piece]  # (n, K, 2), padded
    k = geo.polygon_size[piece]
    ar = torch.arange(poly.shape[1], device=poly.device)
    nxt = poly.gather(1, ((ar + 1) % k.unsqueeze(-1)).unsqueeze(-1).expand(-1, -1, 2))
    e = nxt - poly
    norm = e.norm(dim=-1).clamp(min=1e-300)
    valid = ar < k.unsqueeze(-1)

    def signed(x: Tensor) -> Tensor:
        y = torch.einsum("...nj,nij->...ni", x - geo.origin[piece], geo.frame[piece])  # (..., n, 2)
        rel = y.unsqueeze(-2) - poly  # (..., n, K, 2)
        return (e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]) / norm

    dc = signed(centre)
    orient = torch.where(dc >= 0, 1.0, -1.0).to(dc.dtype)  # the centre is inside: its side is the inside
    inf = torch.full_like(dc, math.inf)
    return torch.where(valid, signed(v) * orient, inf), torch.where(valid, dc * orient, inf)


def _pull_inside(v: Tensor, piece: Tensor, d: int) -> Tensor:
    """Points ``(..., n, 3)`` on (within :data:`BOUNDARY_TOL`) or just outside (within :data:`ON_PIECE_TOL`) the
    relative boundary of their segment or polygon, moved towards the piece's vertex mean until they lie
    ``SAMPLE_MARGIN`` (relative to the centre's distance) inside every edge, where the sampler keeps its draws.
    Points farther out and points properly inside are returned unchanged.

    A point at signed distance ``d_v`` from an edge and the centre at ``d_c`` go to ``c + s (v - c)`` with
    ``s = d_c (1 - 2 m) / (d_c - d_v)``, the least over the edges it is too close to (``s = 1 - 2m`` on an edge)."""
    centre = _piece_centres()[piece]
    dv, dc = _edge_distances(v, piece, d, centre)
    near = dv < BOUNDARY_TOL
    movable = near.any(-1) & (dv > -ON_PIECE_TOL).all(-1)
    s_edge = torch.where(near, dc * (1.0 - 2.0 * SAMPLE_MARGIN) / (dc - dv).clamp(min=1e-300), torch.ones_like(dv))
    s = s_edge.min(-1).values.clamp(max=1.0)
    return torch.where(movable.unsqueeze(-1), centre + s.unsqueeze(-1) * (v - centre), v)


@cache
def _piece_centres() -> Tensor:
    """(P, 3) float64 vertex mean of every piece (inside the convex piece)."""
    t = shape_table()
    m = t.vertex_mask.to(_F64).unsqueeze(-1)
    return (t.vertices * m).sum(1) / m.sum(1)


# ----------------------------------------------------------------------------------------------- distribution
class CoordinateDistribution(Distribution):
    r"""p(x | piece, context) for a batch of N atoms on pieces of any kind and group; event shape ``(3,)``.

    Values are fractional coordinates (float64) on the piece; the measure of each kind is given in the module
    docstring. Built by :class:`CoordinateFactor` (or directly from explicit parameters, e.g. in tests).

    Args:
        piece: ``(N,)`` long piece ids (:mod:`crystal_ar_model.shapes`).
        segment: parameters of the atoms whose piece is a segment, in batch order (``None`` if there are none).
        polygon: the same for polygon atoms.
        torus: the same for interior atoms.
        validate_args: as in :class:`torch.distributions.Distribution` (checks values are on their piece).

    Device: the piece geometry and the densities live on the CPU (float64 tables, NumPy folds). Pieces and
    parameters given on another device (a model on a GPU) are copied to the CPU here (differentiably), values
    passed to :meth:`log_prob` are copied too, and every result is returned on the device of ``piece``.
    """

    arg_constraints: dict[str, tc.Constraint] = {}
    support = tc.independent(tc.real, 1)
    has_rsample = False

    def __init__(
        self,
        piece: Tensor,
        segment: SegmentParams | None = None,
        polygon: PolygonParams | None = None,
        torus: TorusParams | None = None,
        validate_args: bool | None = None,
    ) -> None:
        geo = piece_geometry()
        if not isinstance(piece, Tensor) or piece.dim() != 1 or piece.dtype != torch.long:
            raise ValueError(f"piece must be a (N,) long tensor, got {getattr(piece, 'dtype', type(piece))}")
        self.result_device = piece.device
        piece, segment, polygon, torus = (_on_cpu(x) for x in (piece, segment, polygon, torus))
        n_pieces = geo.dim.shape[0]
        if piece.numel() and (int(piece.min()) < 0 or int(piece.max()) >= n_pieces):
            raise ValueError(f"piece ids must lie in 0..{n_pieces - 1}")
        self.piece = piece
        self.dim = geo.dim[piece]
        self.index = tuple(torch.nonzero(self.dim == d).flatten() for d in range(4))
        """Batch positions of the atoms of each piece dimension 0..3."""
        for name, params, d in (("segment", segment, 1), ("polygon", polygon, 2), ("torus", torus, 3)):
            n = self.index[d].numel()
            got = 0 if params is None else params.logits.shape[0]
            if got != n:
                raise ValueError(f"{name} parameters are given for {got} atoms, but {n} atoms have {d}-D pieces")
        self.segment = segment
        self.polygon = polygon
        self.torus = torus
        super().__init__(piece.shape, torch.Size((3,)), validate_args=validate_args)

    # ------------------------------------------------------------------ pieces of each kind
    def _segment_dist(self):  # noqa: ANN202
        from polygon_flows import SegmentBetaMixture

        geo, idx, p = piece_geometry(), self.index[1], self.segment
        assert p is not None
        start = geo.origin[self.piece[idx]]
        return SegmentBetaMixture(
            start, start + geo.direction[self.piece[idx]], p.logits.to(_F64), p.concentration1.to(_F64),
            p.concentration0.to(_F64), validate_args=False,
        )

    def _polygon_buckets(self) -> list[tuple[int, Tensor, Tensor]]:
        """``(k, positions among the polygon atoms, piece ids)`` per polygon size."""
        geo = piece_geometry()
        pid = self.piece[self.index[2]]
        k = geo.polygon_size[pid]
        return [(int(kk), torch.nonzero(k == kk).flatten(), pid[k == kk]) for kk in torch.unique(k).tolist()]

    def _polygon_dist(self, rows: Tensor, pid: Tensor, k: int):  # noqa: ANN202
        from polygon_flows import PolygonDirichletMixture

        geo, p = piece_geometry(), self.polygon
        assert p is not None
        return PolygonDirichletMixture(
            geo.polygon[pid, :k], p.logits[rows].to(_F64), p.concentration[rows].to(_F64),
            reference=geo.reference[pid, :k], validate_args=False,
        )

    def _torus_buckets(self) -> list[tuple[int, Tensor, Tensor]]:
        """``(group order, positions among the interior atoms, their groups)`` per distinct order.

        One folded call per distinct |G/T| in the batch (at most 13); padding every atom to the batch's largest
        order with a mask was measured slower on an MP-20 mix (the fold's cost grows with the padded order).
        """
        geo, ops = piece_geometry(), group_operations()
        sg = geo.space_group[self.piece[self.index[3]]]
        order = ops.order[sg]
        return [(int(o), torch.nonzero(order == o).flatten(), sg[order == o]) for o in torch.unique(order).tolist()]

    def _torus_dist(self, rows: Tensor, sg: Tensor, width: int):  # noqa: ANN202
        """The folded torus density of the interior atoms ``rows`` (groups ``sg``; operations padded to ``width``
        with a mask when their orders differ)."""
        from polygon_flows import FoldedDistribution, TorusVonMisesMixture

        ops, p = group_operations(), self.torus
        assert p is not None
        base = TorusVonMisesMixture(
            p.loc[rows].to(_F64), p.concentration[rows].to(_F64), p.logits[rows].to(_F64), validate_args=False
        )
        return FoldedDistribution(
            base, ops.rotations[sg, :width], ops.translations[sg, :width], lambda x: fold_into_asu(sg, x),
            period=1.0, op_mask=ops.mask[sg, :width], validate_args=False,
        )

    # ------------------------------------------------------------------ log densities
    def _off_piece(self, value: Tensor, d: int) -> Tensor:
        """Distance of values ``(..., n_d, 3)`` of the d-dim atoms to their piece's affine hull."""
        geo = piece_geometry()
        pid = self.piece[self.index[d]]
        rel = value - geo.origin[pid]
        if d == 1:
            e = geo.direction[pid]
            t = (rel * e).sum(-1, keepdim=True) / (e * e).sum(-1, keepdim=True)
            rel = rel - t * e
        elif d == 2:
            fr = geo.frame[pid]
            rel = rel - torch.einsum("...nj,nij->...ni", rel, fr).unsqueeze(-1).mul(fr).sum(-2)
        return rel.norm(dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density of fractional coordinates ``(..., N, 3)`` on each atom's piece; shape ``(..., N)``.

        ``-inf`` for values off their piece (farther than :data:`ON_PIECE_TOL` from its affine hull, or outside
        the segment or polygon); the interior density is invariant under the group and is returned at any point.
        """
        value = value.to(device="cpu", dtype=_F64)
        if self._validate_args:
            self._validate_sample(value)
            self._check_on_piece(value)
        if value.shape[-2:] != (self.piece.numel(), 3):
            raise ValueError(f"value must have shape (..., {self.piece.numel()}, 3), got {tuple(value.shape)}")
        out = torch.zeros(value.shape[:-1], dtype=_F64)
        geo = piece_geometry()
        for d in (0, 1, 2):
            idx = self.index[d]
            if idx.numel() == 0:
                continue
            v = value[..., idx, :]
            off = self._off_piece(v, d) > ON_PIECE_TOL
            if d > 0:
                # a site on the piece's relative boundary (a segment's end, a polygon's edge, which the exact ASU
                # may include), or outside it by rounding (a normal form's representative computed in floating
                # point), is evaluated 1e-9 inside, where the sampler keeps its draws: the Beta and Dirichlet
                # densities are 0 or infinite on the boundary itself. Other points are untouched.
                v = _pull_inside(v, self.piece[idx], d)
            if d == 0:
                lp = torch.zeros(v.shape[:-1], dtype=_F64)
            elif d == 1:
                lp = self._segment_dist().log_prob(v)
            else:
                lp = torch.empty(v.shape[:-1], dtype=_F64)
                pid_all = self.piece[idx]
                frame, origin = geo.frame[pid_all], geo.origin[pid_all]
                y = torch.einsum("...nj,nij->...ni", v - origin, frame)  # frame coordinates (..., n, 2)
                parts = []
                for k, rows, pid in self._polygon_buckets():
                    parts.append((rows, self._polygon_dist(rows, pid, k).log_prob(y[..., rows, :])))
                lp = _assemble(lp, parts)
            out[..., idx] = torch.where(off, torch.full_like(lp, -math.inf), lp)
        idx = self.index[3]
        if idx.numel():
            v = value[..., idx, :]
            parts = [
                (rows, self._torus_dist(rows, sg, o).log_prob(v[..., rows, :])) for o, rows, sg in self._torus_buckets()
            ]
            out[..., idx] = _assemble(torch.empty(v.shape[:-1], dtype=_F64), parts)
        return out.to(self.result_device)

    def log_prior(self) -> Tensor:
        """``(N,)`` log density of every atom's mixture weights under Dirichlet(1.0001) (0 for points)."""
        out = torch.zeros(self.piece.shape, dtype=_F64)
        for d, p in ((1, self.segment), (2, self.polygon), (3, self.torus)):
            if p is not None and self.index[d].numel():
                out[self.index[d]] = mixture_weight_log_prior(p.logits.to(_F64))
        return out.to(self.result_device)

    def log_prob_terms(self, frac: Tensor) -> tuple[Tensor, Tensor]:
        """``(log_prob(frac), log_prior())``: the log density ``(..., N)`` and the Dirichlet(1.0001) log prior
        of the mixture weights ``(N,)``."""
        return self.log_prob(frac), self.log_prior()

    # ------------------------------------------------------------------ sampling
    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        """Draw fractional coordinates ``sample_shape + (N, 3)`` (float64) on each atom's piece, inside the exact
        ASU; ``generator`` makes the draws reproducible independently of the global seed."""
        from polygon_flows import SimplexToPolygon
        from polygon_flows.sampling import sample_beta, sample_categorical, sample_dirichlet

        shape = torch.Size(sample_shape)
        geo = piece_geometry()
        with torch.no_grad():
            out = torch.empty(shape + (self.piece.numel(), 3), dtype=_F64)
            idx = self.index[0]
            if idx.numel():
                out[..., idx, :] = geo.origin[self.piece[idx]].expand(shape + (idx.numel(), 3))
            idx = self.index[1]
            if idx.numel():
                p = self.segment
                assert p is not None
                comp = sample_categorical(p.logits.to(_F64), shape, generator)
                t = sample_beta(_gather(p.concentration1, comp), _gather(p.concentration0, comp), generator)
                t = t.clamp(SAMPLE_MARGIN, 1 - SAMPLE_MARGIN).unsqueeze(-1)
                pid = self.piece[idx]
                out[..., idx, :] = geo.origin[pid] + t * geo.direction[pid]
            idx = self.index[2]
            if idx.numel():
                p = self.polygon
                assert p is not None
                for k, rows, pid in self._polygon_buckets():
                    comp = sample_categorical(p.logits[rows].to(_F64), shape, generator)
                    lam = sample_dirichlet(_gather(p.concentration[rows].to(_F64), comp), generator)
                    lam = lam.clamp_min(SAMPLE_MARGIN)
                    lam = lam / lam.sum(-1, keepdim=True)
                    y = SimplexToPolygon(geo.polygon[pid, :k], geo.reference[pid, :k])(lam[..., 1:])
                    chart = torch.einsum("...ni,nji->...nj", y, geo.frame_to_chart[pid])
                    x = geo.origin[pid] + torch.einsum("...ni,nij->...nj", chart, geo.chart_basis[pid])
                    out[..., idx[rows], :] = x
            idx = self.index[3]
            if idx.numel():
                for o, rows, sg in self._torus_buckets():
                    out[..., idx[rows], :] = self._torus_dist(rows, sg, o).sample(shape, generator=generator)
        return out.to(self.result_device)

    # ------------------------------------------------------------------ validation
    def _check_on_piece(self, value: Tensor) -> None:
        for d in (0, 1, 2):
            idx = self.index[d]
            if idx.numel() and bool((self._off_piece(value.to(_F64)[..., idx, :], d) > ON_PIECE_TOL).any()):
                raise ValueError(f"value is off its {('point', 'segment', 'polygon')[d]} piece")


def _on_cpu(x: Any) -> Any:
    """A tensor or a parameter dataclass (or ``None``) with every tensor on the CPU (differentiable copies)."""
    if x is None or isinstance(x, Tensor):
        return x if x is None or x.device.type == "cpu" else x.cpu()
    return type(x)(**{f.name: _on_cpu(getattr(x, f.name)) for f in fields(x)})


def _gather(param: Tensor, comp: Tensor) -> Tensor:
    """Component ``comp`` (``sample + (n,)``) of ``param`` (``(n, K)`` or ``(n, K, e)``)."""
    param = param.to(_F64)
    full = param.expand(comp.shape[:-1] + param.shape)
    index = comp.reshape(comp.shape + (1,) * (param.dim() - 1))
    if param.dim() == 3:
        index = index.expand(comp.shape + (1, param.shape[-1]))
    return torch.gather(full, comp.dim(), index).squeeze(comp.dim())


def _assemble(out: Tensor, parts: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Write each ``(rows, values)`` into the last axis of ``out`` (a fresh tensor; autograd records the copies)."""
    for rows, vals in parts:
        out[..., rows] = vals
    return out


# ----------------------------------------------------------------------------------------------- the factor
def _mlp(n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class CoordinateFactor(nn.Module):
    r"""The coordinate factor: per-atom context and piece -> :class:`CoordinateDistribution`.

    The factor embeds the piece id (a learned vector per piece, ``hidden`` wide) and maps
    ``context || piece embedding`` through one MLP per kind (``layers`` hidden layers of width ``hidden``, SiLU)
    to the mixture parameters: segments ``K1`` logits and Beta concentrations; polygons ``K2`` logits and
    Dirichlet concentrations; the interior ``K3`` logits, von Mises locations (periodic, fractional) and
    concentrations. Concentrations are :math:`\operatorname{cap}(\operatorname{softplus}(a + \log(e - 1)))`, so
    an untrained network (``a`` near 0) starts near concentration 1 (near-uniform on segments and polygons);
    the interior locations start spread over the cell (the output bias of the locations is drawn uniformly).

    Args:
        context_dim: width of the per-atom context.
        hidden: width of the hidden layers and of the piece embedding.
        layers: hidden layers per MLP.
        segment_components, polygon_components, torus_components: mixture sizes (10, 30, 50).

    Example:
        >>> import torch
        >>> from crystal_ar_model.coords import CoordinateFactor
        >>> factor = CoordinateFactor(context_dim=8, hidden=16)
        >>> dist = factor(torch.randn(2, 8), torch.tensor([0, 0]))  # two atoms on P1's ASU interior
        >>> x = dist.sample(generator=torch.Generator().manual_seed(0))
        >>> x.shape, dist.log_prob(x).shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    def __init__(
        self,
        context_dim: int,
        hidden: int,
        layers: int = 2,
        segment_components: int = 10,
        polygon_components: int = 30,
        torus_components: int = 50,
    ) -> None:
        super().__init__()
        for name, val in (("context_dim", context_dim), ("hidden", hidden), ("segment_components", segment_components),
                          ("polygon_components", polygon_components), ("torus_components", torus_components)):
            if int(val) < 1:
                raise ValueError(f"{name} must be positive, got {val}")
        if layers < 0:
            raise ValueError(f"layers must be >= 0, got {layers}")
        geo = piece_geometry()
        self.context_dim = context_dim
        self.components = (segment_components, polygon_components, torus_components)
        self.piece_embedding = nn.Embedding(geo.dim.shape[0], hidden)
        n_in = context_dim + hidden
        self.segment_head = _mlp(n_in, hidden, layers, 3 * segment_components)
        self.polygon_head = _mlp(n_in, hidden, layers, 4 * polygon_components)
        self.torus_head = _mlp(n_in, hidden, layers, 7 * torus_components)
        self.register_buffer("piece_dim", geo.dim.clone(), persistent=False)
        with torch.no_grad():
            k3 = torus_components
            last = self.torus_head[-1]
            assert isinstance(last, nn.Linear)
            last.bias[k3 : 4 * k3].uniform_(0.0, 1.0)

    def forward(self, context: Tensor, piece: Tensor) -> CoordinateDistribution:
        """The coordinate distribution of N atoms: ``context (N, context_dim)`` float, ``piece (N,)`` long ids."""
        from polygon_flows import (
            capped_beta_concentration,
            capped_dirichlet_concentration,
            capped_von_mises_concentration,
        )

        if not isinstance(context, Tensor) or context.dim() != 2 or context.shape[1] != self.context_dim:
            raise ValueError(f"context must have shape (N, {self.context_dim}), got {getattr(context, 'shape', None)}")
        if not isinstance(piece, Tensor) or piece.shape != context.shape[:1] or piece.dtype != torch.long:
            raise ValueError(f"piece must be a long tensor of shape ({context.shape[0]},)")
        n_pieces = self.piece_embedding.num_embeddings
        if piece.numel() and (int(piece.min()) < 0 or int(piece.max()) >= n_pieces):
            raise ValueError(f"piece ids must lie in 0..{n_pieces - 1}")
        dim = self.piece_dim[piece]
        h = torch.cat((context, self.piece_embedding(piece).to(context.dtype)), dim=-1)
        k1, k2, k3 = self.components
        b = _SOFTPLUS_INV_ONE
        seg = pol = tor = None
        idx = torch.nonzero(dim == 1).flatten()
        if idx.numel():
            r = self.segment_head(h[idx])
            seg = SegmentParams(
                r[:, :k1],
                capped_beta_concentration(r[:, k1 : 2 * k1] + b),
                capped_beta_concentration(r[:, 2 * k1 :] + b),
            )
        idx = torch.nonzero(dim == 2).flatten()
        if idx.numel():
            r = self.polygon_head(h[idx])
            pol = PolygonParams(r[:, :k2], capped_dirichlet_concentration(r[:, k2:].reshape(-1, k2, 3) + b))
        idx = torch.nonzero(dim == 3).flatten()
        if idx.numel():
            r = self.torus_head(h[idx])
            tor = TorusParams(
                r[:, :k3],
                r[:, k3 : 4 * k3].reshape(-1, k3, 3),
                capped_von_mises_concentration(r[:, 4 * k3 :].reshape(-1, k3, 3) + b),
            )
        return CoordinateDistribution(piece, seg, pol, tor)
