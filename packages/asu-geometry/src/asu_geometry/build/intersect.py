"""Exact intersection of Wyckoff positions with an exact asymmetric unit (pure Fractions).

For a Wyckoff position with representative ``u -> M u + t`` (pyxtal ``ops[0]``) and a space group with
operations ``g = (R, s)``, every orbit image ``g(M u + t) + L`` (``L`` a lattice vector) is intersected
with the exact ASU:

* 0-D: the images that lie inside the exact ASU (exactly one is expected);
* 1-D: each image line is clipped to the closed polytope, split at every cut plane it crosses, and
  the open pieces whose midpoint is inside the exact ASU are kept (neighbours merged across included
  break points); lines that only *touch* the polytope contribute an isolated point when that point is
  inside the exact ASU and has the position's stabilizer order (4 such points exist, in 91, 95, 153, 179);
* 2-D: each image plane gives a closed convex polygon (the plane meets the polytope in a facet), split
  by every cut plane crossing its interior; pieces whose centroid is inside the exact ASU are kept, and
  the whole polygon is kept when every piece is.

A float pre-filter only discards candidates that are far from the ASU; every decision is exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, floor

import numpy as np

from .._rational import Vec3, add, dot, matvec, scale
from ..cuts import Cut
from ..geometry import clip_polygon_2d, order_polygon_2d, signed_area_2d

Op = tuple[tuple[tuple[int, int, int], ...], Vec3]
SHIFTS = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=float)


@dataclass
class ExactAsu:
    cuts: list[Cut]
    vertices: list[Vec3]
    planes: list[tuple[tuple[int, int, int], Fraction]] = field(init=False)

    def __post_init__(self) -> None:
        seen: dict[tuple, None] = {}
        for top in self.cuts:
            for c in top.iter_cuts():
                seen.setdefault((c.normal, c.offset), None)
        self.planes = list(seen)
        self.box_min = tuple(min(v[i] for v in self.vertices) for i in range(3))
        self.box_max = tuple(max(v[i] for v in self.vertices) for i in range(3))
        self._fverts = np.array([[float(x) for x in v] for v in self.vertices])

    def contains(self, x: Sequence[Fraction]) -> bool:
        return all(c.contains(x) for c in self.cuts)

    def in_closure(self, x: Sequence[Fraction]) -> bool:
        return all(c.value(x) >= 0 for c in self.cuts)


def apply(op: Op, x: Sequence[Fraction]) -> Vec3:
    return add(matvec(op[0], x), op[1])


def stabilizer_order(ops: Sequence[Op], x: Sequence[Fraction]) -> int:
    """Number of operations g with g(x) = x modulo lattice translations (exact)."""
    count = 0
    for op in ops:
        y = apply(op, x)
        if all((y[i] - x[i]).denominator == 1 for i in range(3)):
            count += 1
    return count


def _shifts_into_box(asu: ExactAsu, q: Vec3) -> list[Vec3]:
    ranges = [range(ceil(asu.box_min[i] - q[i]), floor(asu.box_max[i] - q[i]) + 1) for i in range(3)]
    return [tuple(Fraction(v) for v in L) for L in itertools.product(*ranges)]


def points_0d(asu: ExactAsu, ops: Sequence[Op], t: Vec3) -> list[Vec3]:
    found: list[Vec3] = []
    for op in ops:
        q = apply(op, t)
        for L in _shifts_into_box(asu, q):
            p = add(q, L)
            if p not in found and asu.contains(p):
                found.append(p)
    return found


def _reduced(q: Vec3) -> Vec3:
    return tuple(x - floor(x) for x in q)  # type: ignore[return-value]


def _candidates(asu: ExactAsu, ops: Sequence[Op], t: Vec3, dirs: Sequence[Vec3]) -> list[tuple[Vec3, list[Vec3]]]:
    """Distinct image subspaces (point, directions) that come near the ASU (float pre-filter)."""
    out: list[tuple[Vec3, list[Vec3]]] = []
    keys: set[tuple] = set()
    for op in ops:
        q = _reduced(apply(op, t))
        ws = [matvec(op[0], d) for d in dirs]
        wf = np.array([[float(x) for x in w] for w in ws])
        pts = np.array([float(x) for x in q]) + SHIFTS
        if len(ws) == 1:
            keep = _line_near(asu, pts, wf[0])
        else:
            keep = _plane_near(asu, pts, wf)
        for idx in np.nonzero(keep)[0]:
            L = tuple(Fraction(int(v)) for v in SHIFTS[idx])
            p = add(q, L)
            key = _subspace_key(p, ws)
            if key not in keys:
                keys.add(key)
                out.append((p, ws))
    return out


def _subspace_key(p: Vec3, ws: Sequence[Vec3]) -> tuple:
    """Exact canonical key of an affine subspace (for de-duplication)."""
    if len(ws) == 1:
        w = ws[0]
        i = next(k for k in range(3) if w[k] != 0)
        s = -p[i] / w[i]
        base = add(p, scale(s, w))
        wn = scale(1 / w[i], w)
        return (1, base, wn)
    n = _cross_int(ws[0], ws[1])
    i = next(k for k in range(3) if n[k] != 0)
    nn = scale(1 / n[i], n)
    return (2, nn, dot(nn, p))


def _cross_int(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _line_near(asu: ExactAsu, pts: np.ndarray, w: np.ndarray) -> np.ndarray:
    lo = np.full(len(pts), -np.inf)
    hi = np.full(len(pts), np.inf)
    ok = np.ones(len(pts), dtype=bool)
    for c in asu.cuts:
        n = np.array(c.normal, dtype=float)
        a = pts @ n + float(c.offset)
        b = float(n @ w)
        if b > 0:
            lo = np.maximum(lo, -a / b)
        elif b < 0:
            hi = np.minimum(hi, -a / b)
        else:
            ok &= a >= -1e-9
    return ok & (hi >= lo - 1e-9)


def _plane_near(asu: ExactAsu, pts: np.ndarray, wf: np.ndarray) -> np.ndarray:
    nrm = np.cross(wf[0], wf[1])
    side = (asu._fverts[None, :, :] - pts[:, None, :]) @ nrm
    return (side.min(axis=1) <= 1e-9) & (side.max(axis=1) >= -1e-9)


@dataclass
class Segment:
    start: Vec3
    end: Vec3
    include_start: bool
    include_end: bool


@dataclass
class Polygon:
    origin: Vec3
    basis: tuple[Vec3, Vec3]
    chart: list[tuple[Fraction, Fraction]]  # counterclockwise, first vertex at (0, 0)

    def vertices3d(self) -> list[Vec3]:
        return [add(self.origin, add(scale(u, self.basis[0]), scale(w, self.basis[1]))) for u, w in self.chart]


def segments_1d(asu: ExactAsu, ops: Sequence[Op], t: Vec3, d: Vec3, site_order: int
                ) -> tuple[list[Segment], list[Vec3]]:
    return _segments_on_lines(asu, ops, [(p, w) for p, (w,) in _candidates(asu, ops, t, [d])], site_order)


def _segments_on_lines(asu: ExactAsu, ops: Sequence[Op], lines: Sequence[tuple[Vec3, Vec3]], site_order: int
                       ) -> tuple[list[Segment], list[Vec3]]:
    """Pieces of the lines ``p + s w`` inside the exact ASU, and the isolated points where a line only
    touches it (kept when they have stabilizer order ``site_order``)."""
    segments: list[Segment] = []
    touch: list[Vec3] = []
    seen: set[frozenset] = set()
    for p, w in lines:
        lo, hi, ok = Fraction(-10**9), Fraction(10**9), True
        for c in asu.cuts:
            a = c.value(p)
            b = dot(w, c.normal)
            if b > 0:
                lo = max(lo, -a / b)
            elif b < 0:
                hi = min(hi, -a / b)
            elif a < 0:
                ok = False
        if not ok or hi < lo:
            continue
        if hi == lo:
            x = add(p, scale(lo, w))
            if asu.contains(x) and x not in touch and stabilizer_order(ops, x) == site_order:
                touch.append(x)
            continue
        key = frozenset((add(p, scale(lo, w)), add(p, scale(hi, w))))
        if key in seen:
            continue
        seen.add(key)
        breaks = {lo, hi}
        for n, off in asu.planes:
            b = dot(w, n)
            if b != 0:
                s = -(dot(p, n) + off) / b
                if lo < s < hi:
                    breaks.add(s)
        bs = sorted(breaks)
        runs: list[list[Fraction]] = []
        for s0, s1 in itertools.pairwise(bs):
            if not asu.contains(add(p, scale((s0 + s1) / 2, w))):
                continue
            if runs and runs[-1][1] == s0 and asu.contains(add(p, scale(s0, w))):
                runs[-1][1] = s1
            else:
                runs.append([s0, s1])
        for s0, s1 in runs:
            a3, b3 = add(p, scale(s0, w)), add(p, scale(s1, w))
            ia, ib = asu.contains(a3), asu.contains(b3)
            if b3 < a3:
                a3, b3, ia, ib = b3, a3, ib, ia
            segments.append(Segment(a3, b3, ia, ib))
    # touching points that are endpoints of a kept segment of this position are not isolated
    isolated = [x for x in touch if not any(
        (x == s.start and s.include_start) or (x == s.end and s.include_end) for s in segments)]
    segments.sort(key=lambda s: (s.start, s.end))
    isolated.sort()
    return segments, isolated


def polygons_2d(asu: ExactAsu, ops: Sequence[Op], t: Vec3, dirs: Sequence[Vec3]) -> list[Polygon]:
    return _polygons_on_planes(asu, [(p, ws[0], ws[1]) for p, ws in _candidates(asu, ops, t, dirs)])


def _polygons_on_planes(asu: ExactAsu, planes: Sequence[tuple[Vec3, Vec3, Vec3]]) -> list[Polygon]:
    """Convex pieces of the planes ``p + u w1 + v w2`` inside the exact ASU (split by every cut plane; a
    piece is kept when its centroid is inside, and a plane whose pieces are all kept stays whole)."""
    polys: list[Polygon] = []
    seen: set[frozenset] = set()
    for p, w1, w2 in planes:
        cons = []
        feasible = True
        for c in asu.cuts:
            a, b1, b2 = c.value(p), dot(w1, c.normal), dot(w2, c.normal)
            if b1 == 0 and b2 == 0:
                if a < 0:
                    feasible = False
                continue
            cons.append((b1, b2, a))
        if not feasible:
            continue
        verts: list[tuple[Fraction, Fraction]] = []
        for (a1, b1, c1), (a2, b2, c2) in itertools.combinations(cons, 2):
            det = a1 * b2 - a2 * b1
            if det == 0:
                continue
            u = (-c1 * b2 + c2 * b1) / det
            v = (-a1 * c2 + a2 * c1) / det
            if all(a * u + b * v + c >= 0 for a, b, c in cons) and (u, v) not in verts:
                verts.append((u, v))
        if len(verts) < 3:
            continue
        poly = order_polygon_2d(verts)
        if signed_area_2d(poly) == 0:
            continue
        key = frozenset(add(p, add(scale(u, w1), scale(v, w2))) for u, v in poly)
        if key in seen:
            continue
        seen.add(key)
        pieces = [poly]
        for n, off in asu.planes:
            a, b1, b2 = dot(p, n) + off, dot(w1, n), dot(w2, n)
            nxt = []
            for piece in pieces:
                vals = [a + b1 * u + b2 * v for u, v in piece]
                if max(vals) > 0 and min(vals) < 0:
                    for sgn in (1, -1):
                        half = clip_polygon_2d(piece, sgn * b1, sgn * b2, sgn * a)
                        if len(half) >= 3 and signed_area_2d(half) != 0:
                            nxt.append(half)
                else:
                    nxt.append(piece)
            pieces = nxt

        kept = [pc for pc in pieces if asu.contains(_centroid3(p, w1, w2, pc))]
        if len(kept) == len(pieces):
            kept = [poly]
        for pc in kept:
            polys.append(_make_polygon(p, w1, w2, pc))
    polys.sort(key=lambda pg: sorted(pg.vertices3d()))
    return polys


def _centroid3(p: Vec3, w1: Vec3, w2: Vec3, poly: Sequence[tuple[Fraction, Fraction]]) -> Vec3:
    """The vertex centroid of a chart polygon, in 3-D (inside the polygon since it is convex)."""
    cu = sum(q[0] for q in poly) / len(poly)
    cv = sum(q[1] for q in poly) / len(poly)
    return add(p, add(scale(cu, w1), scale(cv, w2)))


def _make_polygon(p: Vec3, w1: Vec3, w2: Vec3, poly: Sequence[tuple[Fraction, Fraction]]) -> Polygon:
    """Chart with origin at the lexicographically smallest vertex, counterclockwise vertex order."""
    pts3 = [add(p, add(scale(u, w1), scale(v, w2))) for u, v in poly]
    k = pts3.index(min(pts3))
    poly = list(poly[k:]) + list(poly[:k])
    u0, v0 = poly[0]
    origin = add(p, add(scale(u0, w1), scale(v0, w2)))
    chart = [(u - u0, v - v0) for u, v in poly]
    return Polygon(origin, (w1, w2), chart)


def interior_columns(m: Sequence[Sequence[int]]) -> list[Vec3]:
    """The non-zero columns of the representative's linear part: the free directions."""
    cols = []
    for j in range(3):
        col = tuple(Fraction(int(m[i][j])) for i in range(3))
        if any(col):
            cols.append(col)
    return cols


def anchor_values(asu: ExactAsu, axes: Sequence[int]) -> list[Fraction]:
    """The anchor of a polar group: per free axis ``k``, the lower bound of the ASU along ``k`` when the
    exact ASU includes (the centre of) that face, else the upper bound (P4_3: ``0 < z <= 1``)."""
    values = []
    for k in axes:
        for bound in (asu.box_min[k], asu.box_max[k]):
            face = [v for v in asu.vertices if v[k] == bound]
            centre = tuple(sum(v[i] for v in face) / len(face) for i in range(3))
            if asu.contains(centre):
                values.append(bound)
                break
        else:
            raise RuntimeError(f"no face of the ASU normal to axis {k} is included")
    return values


def _independent(vectors: Sequence[Vec3]) -> list[Vec3]:
    """A maximal linearly independent subset (in order), by exact elimination."""
    rows: list[list[Fraction]] = []
    kept: list[Vec3] = []
    for v in vectors:
        r = list(v)
        for basis in rows:
            piv = next(i for i in range(3) if basis[i] != 0)
            if r[piv] != 0:
                f = r[piv] / basis[piv]
                r = [r[i] - f * basis[i] for i in range(3)]
        if any(r):
            rows.append(r)
            kept.append(v)
    return kept


def anchored_sections(asu: ExactAsu, ops: Sequence[Op], t: Vec3, dirs: Sequence[Vec3], axes: Sequence[int],
                      values: Sequence[Fraction], site_order: int
                      ) -> tuple[list[Vec3], list[Segment], list[Vec3], list[Polygon]]:
    """Pieces of a Wyckoff position of a polar group inside the exact ASU and on the anchor
    ``x_k = values[k]`` (``k`` over the free axes): (points, segments, isolated points, polygons).

    Every image subspace ``S = p + span(ws)`` of the position contains the free directions, so
    ``S ∩ anchor = p' + span(ws with their free components dropped)``, where ``p'`` is ``p`` moved along
    the free directions onto the anchor; these subspaces are then cut by the exact ASU like the shapes.
    """
    one, zero = Fraction(1), Fraction(0)
    if len(dirs) == 3:
        unit = [tuple(one if i == k else zero for i in range(3)) for k in range(3)]
        images: list[tuple[Vec3, list[Vec3]]] = [((zero, zero, zero), unit)]  # type: ignore[list-item]
    elif len(dirs) in (1, 2):
        images = _candidates(asu, ops, t, dirs)
    else:
        raise ValueError("a position of a polar group has at least one free direction")
    subspaces: dict[tuple, tuple[Vec3, list[Vec3]]] = {}
    for p, ws in images:
        q = tuple(values[axes.index(i)] if i in axes else p[i] for i in range(3))
        basis = _independent([tuple(zero if i in axes else w[i] for i in range(3)) for w in ws])
        if len(basis) != len(dirs) - len(axes):
            raise RuntimeError("a Wyckoff set of a polar group does not contain the free directions")
        key = (0, q) if not basis else _subspace_key(q, basis)  # type: ignore[arg-type]
        subspaces.setdefault(key, (q, basis))  # type: ignore[arg-type]
    points = sorted({q for q, b in subspaces.values() if not b and asu.contains(q)})
    segments, isolated = _segments_on_lines(asu, ops, [(q, b[0]) for q, b in subspaces.values() if len(b) == 1],
                                            site_order)
    polygons = _polygons_on_planes(asu, [(q, b[0], b[1]) for q, b in subspaces.values() if len(b) == 2])
    return points, segments, isolated, polygons
