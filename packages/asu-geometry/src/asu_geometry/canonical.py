"""Map points onto their unique representative in the exact ASU and identify their Wyckoff position.

Float path (:func:`to_asu_points`, vectorised): for each point ``x``

1. *snap*: the operations g with ``g(x) = x`` modulo lattice translations within ``tol`` form the
   (approximate) site-symmetry group S; ``x`` is replaced by the average of ``g(x) + n_g`` over S, the
   orthogonal projection onto the fixed subspace of S (repeated until S is stable);
2. *representative*: among all images ``g(x) + L``, the ones inside the exact ASU are found with the
   boundary rules of :class:`asu_geometry.cuts.Cut` (distance ``<= 1e-9`` to a plane counts as *on* it);
3. *classification*: the representative is matched to the shape (point, segment, polygon, interior) of
   the Wyckoff position whose stabilizer order equals ``|S|``, and projected onto that shape's chart.

Exact path (:func:`to_asu_point_exact`): the same on rationals, without tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import product
from math import ceil, floor
from typing import Any

import numpy as np

from ._rational import Vec3
from .errors import CanonicalizationError
from .tables import SpaceGroup, WyckoffPosition, WyckoffShape, space_group

BOUNDARY_EPS = 1e-9
CHUNK_IMAGES = 1 << 15  # points x operations per batch in to_asu_points (bounds memory, stays in cache)


@dataclass(frozen=True)
class AsuPoints:
    """Result of :func:`to_asu_points` for n input points."""

    frac: np.ndarray  # (n, 3) representatives inside the exact ASU, snapped onto their shape
    wyckoff_index: np.ndarray  # (n,) index into ``space_group(sg).wyckoff_positions``
    shape_index: np.ndarray  # (n,) index into that position's ``shapes``
    params: np.ndarray  # (n, 3) chart parameters on the shape (first ``shape.dim`` columns; rest NaN)
    letters: list[str]


def _near_ops(g: SpaceGroup, x: np.ndarray, tol: float, lattice: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
    d = g.apply(x) - x[:, None, :]
    d -= np.round(d)
    dc = d if lattice is None else d @ lattice
    dist = np.sqrt(np.einsum("...i,...i->...", dc, dc))
    return d, dist <= tol


def _snap(g: SpaceGroup, x: np.ndarray, tol: float, lattice: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Project points onto the fixed subspace of their approximate site-symmetry group.

    Returns the projected points and their site-symmetry orders. Points whose only near operation is
    the identity (generic points) are left untouched.
    """
    tol = max(tol, 1e-8)  # below this, rounding of already-special coordinates would count
    x = x.copy()
    d_all, near = _near_ops(g, x, tol, lattice)
    order = near.sum(1)
    todo = np.nonzero(order > 1)[0]
    d, nr = d_all[todo], near[todo]
    for it in range(5):
        if len(todo) == 0:
            break
        if it:
            d, nr = _near_ops(g, x[todo], tol, lattice)
        order[todo] = nr.sum(1)  # the site-symmetry order at the current position
        new = x[todo] + (d * nr[..., None]).sum(1) / nr.sum(1, keepdims=True)
        moved = ~np.all(np.abs(new - x[todo]) <= 1e-13, axis=1)
        x[todo] = new
        todo = todo[moved]
    if len(todo):  # still moving after 5 rounds: count at the final positions
        _, nr = _near_ops(g, x[todo], tol, lattice)
        order[todo] = nr.sum(1)
    return x, order


@cache
def _shifts(sg: int) -> np.ndarray:
    """Lattice shifts to try after reducing into [lo, lo + 1): +1 only along axes where the ASU box is
    a full period wide (its upper face can then hold a representative)."""
    lo, hi = space_group(sg).asu.box_arrays
    wide = (hi - lo) >= 1 - 1e-12
    shifts = np.array(list(product(*[(0.0, 1.0) if w else (0.0,) for w in wide])))
    shifts.setflags(write=False)  # cached: shared by every call
    return shifts


class _ShapeCandidates:
    """Every Wyckoff shape of one site-symmetry order in a group, stacked by kind so that a batch of
    points is matched against all of them at once.

    :meth:`match` returns, per point, the distance to the nearest candidate (first in table order on
    ties), its column, its unclipped chart parameters and the point projected onto the candidate's
    affine hull (for points and the interior: the point itself or the shape's point).
    """

    def __init__(self, entries: Sequence[tuple[int, int, WyckoffShape]]) -> None:
        self.wyckoff_index = np.array([e[0] for e in entries], dtype=int)
        self.shape_index = np.array([e[1] for e in entries], dtype=int)
        self.size = len(entries)
        by_dim: dict[int, list[tuple[int, WyckoffShape]]] = {0: [], 1: [], 2: [], 3: []}
        for col, (_, _, shape) in enumerate(entries):
            by_dim[shape.dim].append((col, shape))
        self.point_cols = np.array([c for c, _ in by_dim[0]], dtype=int)
        self.points = np.array([sh.origin_array for _, sh in by_dim[0]]).reshape(-1, 3)
        self.segment_cols = np.array([c for c, _ in by_dim[1]], dtype=int)
        self.segment_origins = np.array([sh.origin_array for _, sh in by_dim[1]]).reshape(-1, 3)
        self.segment_directions = np.array([sh.basis_array[0] for _, sh in by_dim[1]]).reshape(-1, 3)
        self.segment_pinv = np.array([sh._pseudo_inverse[:, 0] for _, sh in by_dim[1]]).reshape(-1, 3)
        self.polygons = by_dim[2]
        self.interior_cols = np.array([c for c, _ in by_dim[3]], dtype=int)

    def match(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n, m = len(x), self.size
        dist = np.empty((n, m))
        proj = np.empty((n, m, 3))
        params = np.full((n, m, 3), np.nan)
        if len(self.point_cols):
            dist[:, self.point_cols] = _norm(x[:, None, :] - self.points)
            proj[:, self.point_cols] = self.points
        if len(self.segment_cols):
            rel = x[:, None, :] - self.segment_origins  # (n, k, 3)
            t = np.einsum("nki,ki->nk", rel, self.segment_pinv)
            step = t[..., None] * self.segment_directions
            dist[:, self.segment_cols] = _norm(np.clip(t, 0.0, 1.0)[..., None] * self.segment_directions - rel)
            proj[:, self.segment_cols] = self.segment_origins + step
            params[:, self.segment_cols, 0] = t
        for col, shape in self.polygons:
            d, prm = _polygon_distance(shape, x)
            dist[:, col], proj[:, col], params[:, col, :2] = d, shape.to_frac(prm), prm
        if len(self.interior_cols):
            dist[:, self.interior_cols] = 0.0
            proj[:, self.interior_cols] = x[:, None, :]
            params[:, self.interior_cols] = x[:, None, :]
        col = np.argmin(dist, axis=1)
        rows = np.arange(n)
        return dist[rows, col], col, params[rows, col], proj[rows, col]


@cache
def _candidates(sg: int) -> dict[int, _ShapeCandidates]:
    """Stabilizer order -> the stacked shapes of every Wyckoff position of ``sg`` with that order."""
    out: dict[int, list[tuple[int, int, WyckoffShape]]] = {}
    for wi, wp in enumerate(space_group(sg).wyckoff_positions):
        out.setdefault(wp.stabilizer_order, []).extend((wi, si, shape) for si, shape in enumerate(wp.shapes))
    return {k: _ShapeCandidates(v) for k, v in out.items()}


def _representatives(g: SpaceGroup, x: np.ndarray) -> np.ndarray:
    """The image of each point inside the exact ASU (vectorised over points, operations and shifts).

    Ties (two numerically distinct candidates, possible only from rounding at the 1e-9 level) resolve
    to the first candidate in operation order; when no candidate passes (rounding again), the candidate
    closest to the closed ASU is taken.
    """
    lo, _ = g.asu.box_arrays
    y = g.apply(x)  # (n, N, 3)
    base = y - np.floor(y - lo + BOUNDARY_EPS)  # in [lo - eps, lo + 1 - eps)
    cand = (base[:, :, None, :] + _shifts(g.number)).reshape(len(x), -1, 3)
    inside = g.asu.contains_in_box(cand, BOUNDARY_EPS)  # exact boundary rules, within the bounding box
    first = np.argmax(inside, axis=1)
    none = ~inside.any(axis=1)
    if np.any(none):
        first[none] = np.argmax(g.asu.margin(cand[none]), axis=1)
    return cand[np.arange(len(x)), first]


def _norm(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (lighter than ``np.linalg.norm`` on small arrays)."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def _polygon_distance(shape: WyckoffShape, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points to a polygon shape (fractional units, to its nearest point) and their
    unclipped chart parameters on the polygon's plane."""
    params = shape.to_params(x)
    clipped = _clip_to_polygon(shape.chart_vertices_array, params)
    return _norm(shape.to_frac(clipped) - x), params


def _clip_to_polygon(poly: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest points of a convex polygon (CCW vertices) to points uv, in chart coordinates."""
    inside = np.ones(len(uv), dtype=bool)
    k = len(poly)
    for i in range(k):
        a, b = poly[i], poly[(i + 1) % k]
        e = b - a
        inside &= (e[0] * (uv[:, 1] - a[1]) - e[1] * (uv[:, 0] - a[0])) >= -1e-12
    best = uv.copy()
    if np.all(inside):
        return best
    bestd = np.full(len(uv), np.inf)
    for i in range(k):
        a, b = poly[i], poly[(i + 1) % k]
        e = b - a
        t = np.clip(((uv - a) @ e) / (e @ e), 0, 1)
        q = a + t[:, None] * e
        dd = np.linalg.norm(uv - q, axis=-1)
        upd = (~inside) & (dd < bestd)
        best[upd], bestd[upd] = q[upd], dd[upd]
    return best


def to_asu_points(sg: int, frac: Any, tol: float = 1e-3, lattice: Any | None = None) -> AsuPoints:
    """Vectorised canonicalisation of points (n, 3) of space group ``sg``; see the module docstring.

    A point is snapped onto a special position when its symmetry images under the position's
    site-symmetry operations lie within ``tol`` of it: ``tol`` is in fractional units, or in Angstrom
    when ``lattice`` (3 x 3, rows are the conventional lattice vectors) is given (spglib's ``symprec``
    criterion).
    """
    g = space_group(sg)
    x = np.atleast_2d(np.asarray(frac, dtype=float))
    if x.shape[-1] != 3 or x.ndim != 2:
        raise ValueError(f"expected fractional coordinates of shape (3,) or (n, 3), got {np.shape(frac)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("fractional coordinates must be finite")
    if not (isinstance(tol, (int, float)) and 0 <= tol < math.inf):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    x = x - np.floor(x)
    lat = None if lattice is None else np.asarray(lattice, dtype=float).reshape(3, 3)
    if lat is not None and not (np.all(np.isfinite(lat)) and abs(np.linalg.det(lat)) > 1e-9):
        raise ValueError("lattice must be a finite (3, 3) matrix with volume")
    if len(x) == 0:
        return AsuPoints(np.zeros((0, 3)), np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros((0, 3)), [])
    chunk = max(64, CHUNK_IMAGES // g.order)
    if len(x) <= chunk:
        frac_out, wyck, shp, params = _canonicalise(g, x, tol, lat)
    else:  # bounded memory: every point has |G/T| images (times the lattice shifts) in flight
        parts = [_canonicalise(g, x[i:i + chunk], tol, lat) for i in range(0, len(x), chunk)]
        frac_out, wyck, shp, params = (np.concatenate(p) for p in zip(*parts, strict=True))
    letters = [g.wyckoff_positions[w].letter for w in wyck.tolist()]
    return AsuPoints(frac_out, wyck, shp, params, letters)


def _canonicalise(g: SpaceGroup, x: np.ndarray, tol: float, lat: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`to_asu_points` on one batch of reduced points: (snapped, Wyckoff index, shape index, params)."""
    x, stab = _snap(g, x, tol, lat)
    rep = _representatives(g, x)
    n = len(x)
    wyck = np.full(n, -1)
    shp = np.full(n, -1)
    best = np.full(n, np.inf)
    params = np.full((n, 3), np.nan)
    snapped = rep.copy()
    candidates = _candidates(g.number)
    orders = set(stab.tolist())
    for order in orders:
        if order not in candidates:
            continue  # no position of this site-symmetry order: reported below
        sel = slice(None) if len(orders) == 1 else np.nonzero(stab == order)[0]
        cand = candidates[order]
        best[sel], col, params[sel], snapped[sel] = cand.match(rep[sel])
        wyck[sel], shp[sel] = cand.wyckoff_index[col], cand.shape_index[col]
    bad = np.nonzero(best > 1e-6)[0]  # snapped points lie on their shape up to rounding
    if len(bad):
        i = bad[0]
        raise CanonicalizationError(
            f"space group {g.number}: point {x[i].tolist()} (ASU image {rep[i].tolist()}, site-symmetry order "
            f"{stab[i]}) matches no Wyckoff shape within tolerance (distance {best[i]:.2e})")
    return snapped, wyck, shp, params


def to_asu_point(sg: int, frac: Any, tol: float = 1e-3) -> tuple[np.ndarray | Vec3, str]:
    """The unique representative in the exact ASU of the orbit of ``frac`` and its Wyckoff letter.

    Float input: snapped onto the special position within ``tol`` (fractional units). Rational input
    (Fractions, ints or strings) with ``tol=0`` is handled exactly by :func:`to_asu_point_exact`.
    """
    values = list(frac) if not isinstance(frac, np.ndarray) else frac.tolist()
    if tol == 0 and all(isinstance(v, (Fraction, int, str)) for v in values):
        p, wp, _ = to_asu_point_exact(sg, values)
        return p, wp.letter
    res = to_asu_points(sg, np.asarray(values, dtype=float)[None, :], tol)
    return res.frac[0], res.letters[0]


def orbit_representatives_exact(sg: int, frac: Sequence[Any]) -> list[Vec3]:
    """All distinct images ``g(x) + L`` of a rational point that lie in the exact ASU (exactly one)."""
    g = space_group(sg)
    x = tuple(Fraction(v) for v in frac)
    lo, hi = g.asu.box_min, g.asu.box_max
    found: list[Vec3] = []
    for r, t in g.exact_ops():
        y = tuple(sum(int(r[i, j]) * x[j] for j in range(3)) + t[i] for i in range(3))
        ranges = [range(ceil(lo[i] - y[i]), floor(hi[i] - y[i]) + 1) for i in range(3)]
        for L in product(*ranges):
            p = (y[0] + L[0], y[1] + L[1], y[2] + L[2])
            if p not in found and g.asu.contains_exact(p):
                found.append(p)
    return found


def stabilizer_order_exact(sg: int, frac: Sequence[Any]) -> int:
    """Number of operations fixing a rational point modulo lattice translations."""
    g = space_group(sg)
    x = tuple(Fraction(v) for v in frac)
    count = 0
    for r, t in g.exact_ops():
        y = [sum(int(r[i, j]) * x[j] for j in range(3)) + t[i] for i in range(3)]
        if all((y[i] - x[i]).denominator == 1 for i in range(3)):
            count += 1
    return count


def shape_contains_exact(shape: WyckoffShape, p: Sequence[Fraction]) -> bool:
    """Exact membership of a point in a shape's closure (segments and polygons include their boundary)."""
    d = [p[i] - shape.origin[i] for i in range(3)]
    if shape.dim == 0:
        return all(v == 0 for v in d)
    if shape.dim == 3:
        return True
    if shape.dim == 1:
        b = shape.basis[0]
        k = next(i for i in range(3) if b[i] != 0)
        s = d[k] / b[k]
        return all(d[i] == s * b[i] for i in range(3)) and 0 <= s <= 1
    b1, b2 = shape.basis
    # solve d = u b1 + v b2 with a non-singular 2x2 minor
    for i, j in ((0, 1), (0, 2), (1, 2)):
        det = b1[i] * b2[j] - b1[j] * b2[i]
        if det != 0:
            u = (d[i] * b2[j] - d[j] * b2[i]) / det
            v = (b1[i] * d[j] - b1[j] * d[i]) / det
            break
    if any(d[k] != u * b1[k] + v * b2[k] for k in range(3)):
        return False
    poly = shape.chart_vertices
    m = len(poly)
    for i in range(m):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % m]
        if (bx - ax) * (v - ay) - (by - ay) * (u - ax) < 0:
            return False
    return True


def to_asu_point_exact(sg: int, frac: Sequence[Any]) -> tuple[Vec3, WyckoffPosition, int]:
    """Exact canonicalisation of a rational point: (representative, Wyckoff position, shape index).

    Raises :class:`CanonicalizationError` if the orbit does not have exactly one representative in the
    exact ASU or the representative lies on no shape of the position with its stabilizer order
    (neither can happen for a correct table).
    """
    reps = orbit_representatives_exact(sg, frac)
    if len(reps) != 1:
        raise CanonicalizationError(f"space group {sg}: orbit of {frac} has {len(reps)} representatives in the ASU")
    p = reps[0]
    order = stabilizer_order_exact(sg, p)
    for wp in space_group(sg).wyckoff_positions:
        if wp.stabilizer_order != order:
            continue
        for si, shape in enumerate(wp.shapes):
            if shape_contains_exact(shape, p):
                return p, wp, si
    raise CanonicalizationError(f"space group {sg}: {p} (stabilizer order {order}) lies on no Wyckoff shape")
