"""The shipped tables: counts, exact 0-D points, exact ASU volumes, and the exact measure identity."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.canonical import shape_contains_exact, stabilizer_order_exact
from asu_geometry.errors import InvalidSpaceGroupError, UnknownWyckoffPositionError

ALL = range(1, 231)


def test_counts_of_positions_and_shapes():
    wps = ag.all_wyckoff_positions()
    assert len(wps) == 1731
    assert Counter(w.dim for w in wps) == {0: 616, 1: 718, 2: 167, 3: 230}
    assert [w.index for w in wps] == list(range(1731))
    shapes = Counter((s.dim, s.isolated) for w in wps for s in w.shapes)
    assert shapes == {(0, False): 616, (1, False): 948, (0, True): 4, (2, False): 245, (3, False): 230}
    assert sorted({w.space_group for w in wps for s in w.shapes if s.isolated}) == [91, 95, 153, 179]
    assert Counter(len(s.vertices) for w in wps for s in w.shapes if s.dim == 2) == {3: 45, 4: 195, 5: 5}


@pytest.mark.parametrize("sg", ALL)
def test_zero_dim_positions_are_one_point_with_right_stabilizer(sg):
    g = ag.space_group(sg)
    for wp in g.wyckoff_positions:
        assert wp.stabilizer_order * wp.multiplicity == g.order
        if wp.dim == 0:
            assert len(wp.shapes) == 1 and wp.shapes[0].dim == 0
            p = wp.shapes[0].origin
            assert g.asu.contains_exact(p)
            assert stabilizer_order_exact(sg, p) == g.order // wp.multiplicity
        for shape in wp.shapes:
            # every vertex of a shape lies in the closed ASU and every shape point has the right symmetry
            for v in shape.vertices:
                assert all(c.value(v) >= 0 for c in g.asu.cuts)
            if shape.dim in (1, 2):
                centre = tuple(sum(v[i] for v in shape.vertices) / len(shape.vertices) for i in range(3))
                assert shape_contains_exact(shape, centre)
                assert g.asu.contains_exact(centre)
                assert stabilizer_order_exact(sg, centre) == wp.stabilizer_order


def test_asu_volume_times_order_is_one_exactly():
    for sg in ALL:
        g = ag.space_group(sg)
        assert isinstance(g.asu.volume, Fraction)
        assert g.asu.volume * g.order == 1, sg


def test_known_examples_from_the_research_notes():
    assert ag.space_group(62).wyckoff("b").shapes[0].origin == (Fraction(1, 2), 0, 0)
    pts = {wp.letter: wp.shapes[0].origin for wp in ag.wyckoff_positions(227) if wp.dim == 0}
    f = Fraction
    assert pts == {"a": (f(-1, 8),) * 3, "b": (f(3, 8), f(-1, 8), f(-1, 8)),
                   "c": (0, 0, 0), "d": (f(1, 4), 0, f(-1, 4))}
    e = ag.space_group(139).wyckoff("e")
    assert [(s.vertices, s.include_start, s.include_end) for s in e.shapes] == [
        (((0, 0, 0), (0, 0, f(1, 4))), True, True),
        (((f(1, 2), f(1, 2), 0), (f(1, 2), f(1, 2), f(1, 4))), True, False),
    ]
    assert len(ag.space_group(166).wyckoff("c").shapes) == 3
    assert len(ag.space_group(227).wyckoff("g").shapes) == 4
    c62 = ag.space_group(62).wyckoff("c").shapes
    assert len(c62) == 1 and {tuple(v) for v in c62[0].vertices} == {
        (0, f(1, 4), 0), (f(1, 2), f(1, 4), 0), (f(1, 2), f(1, 4), 1), (0, f(1, 4), 1)}


def test_bad_lookups_raise_named_errors():
    for bad in (0, 231, -3, 2.5, "12", True, [1], {"number": 1}, None):
        with pytest.raises(InvalidSpaceGroupError):
            ag.space_group(bad)
    assert ag.space_group(np.int64(225)) is ag.space_group(225)  # one cached group per number
    with pytest.raises(UnknownWyckoffPositionError):
        ag.space_group(62).wyckoff("z")


@pytest.mark.parametrize("sg", range(1, 231))
def test_float_membership_agrees_with_exact_rules(sg):
    """The compiled float evaluator (``contains(x, tol)``) decides exactly like the rational cut rules,
    on 1/24-grid points around the ASU (they hit faces, edges and vertices with their nested tie rules)
    and on random points, and like the per-cut float evaluator it replaces."""
    a = ag.asu(sg)
    rng = np.random.default_rng(sg)
    lo, hi = a.box_min, a.box_max
    ranges = [(math.floor(24 * low) - 2, math.ceil(24 * high) + 3) for low, high in zip(lo, hi, strict=True)]
    grid = [[Fraction(int(rng.integers(*r)), 24) for r in ranges] for _ in range(400)]
    vertex_hits = [list(v) for v in a.vertices]
    exact_points = grid + vertex_hits
    exact = np.array([a.contains_exact(p) for p in exact_points])
    floats = np.array([[float(c) for c in p] for p in exact_points])
    assert np.array_equal(a.contains(floats, tol=1e-9), exact)
    assert exact.any() and not exact.all()  # the sample straddles the boundary
    x = rng.random((2000, 3)) * 1.2 - 0.1
    per_cut = np.logical_and.reduce([c.contains_array(x, 1e-9) for c in a.cuts])
    assert np.array_equal(a.contains(x, tol=1e-9), per_cut)


# ---- exact measure identity: m * |Wyckoff shapes in the ASU| = |Wyckoff set in one unit cell| ----

def _metric(system: str) -> np.ndarray:
    """A lattice metric compatible with the crystal system (generic where the system allows)."""
    a, b, c = 1.0, 1.3, 1.7
    al, be, ga = map(math.radians, (80.0, 95.0, 105.0))
    if system == "cubic":
        a = b = c = 1.0
        al = be = ga = math.pi / 2
    elif system == "tetragonal":
        a = b = 1.0
        al = be = ga = math.pi / 2
    elif system == "orthorhombic":
        al = be = ga = math.pi / 2
    elif system in ("hexagonal", "trigonal"):
        a = b = 1.0
        al = be = math.pi / 2
        ga = 2 * math.pi / 3
    elif system == "monoclinic":
        al = ga = math.pi / 2
    ca, cb, cg = math.cos(al), math.cos(be), math.cos(ga)
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def _primitive_int(v: np.ndarray) -> np.ndarray:
    fr = [Fraction(x).limit_denominator(1000) for x in v]
    den = math.lcm(*[x.denominator for x in fr])
    ints = [int(x * den) for x in fr]
    gcd = math.gcd(*ints)
    return np.array([i // gcd for i in ints], dtype=float)


def _line_classes(g: ag.SpaceGroup, p: np.ndarray, v: np.ndarray) -> int:
    """Number of distinct lines g(p + s v) modulo lattice translations."""
    keys = set()
    for r, t in zip(g.rotations, g.translations, strict=True):
        q, w = r @ p + t, _primitive_int(r @ v)
        k = int(np.argmax(np.abs(w)))
        q = q - q[k] / w[k] * w  # the point of the line with coordinate k = 0
        others = [j for j in range(3) if j != k]
        shift = np.array([-w[j] / w[k] for j in others])  # projection of e_k along w
        q2 = q[others]
        cands = [tuple(np.round((q2 + n * shift) % 1.0, 6) % 1.0) for n in range(int(abs(w[k])))]
        keys.add((tuple(w * np.sign(w[k])), min(cands)))
    return len(keys)


def _plane_classes(g: ag.SpaceGroup, p: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> tuple[int, list[np.ndarray]]:
    keys, normals = set(), []
    for r, t in zip(g.rotations, g.translations, strict=True):
        n = _primitive_int(np.cross(r @ d1, r @ d2))
        k = next(i for i in range(3) if n[i] != 0)
        n = n * np.sign(n[k])
        off = round(float(n @ (r @ p + t)) % 1.0, 6) % 1.0
        key = (tuple(n), off)
        if key not in keys:
            keys.add(key)
            normals.append(n)
    return len(keys), normals


def _measure_sides(g: ag.SpaceGroup, wp: ag.WyckoffPosition, shapes) -> tuple[float, float]:
    """(m * measure of the given ASU shapes, measure of the Wyckoff set in one cell) in a compatible metric."""
    G = _metric(g.crystal_system)
    vol = math.sqrt(np.linalg.det(G))
    Ginv = np.linalg.inv(G)
    m, t = wp.orbit_maps
    cols = [m[0][:, j].astype(float) for j in range(3) if np.any(m[0][:, j])]
    if wp.dim == 1:
        total_asu = sum(math.sqrt(s.basis_array[0] @ G @ s.basis_array[0]) for s in shapes if s.dim == 1)
        v = _primitive_int(cols[0])
        cell = _line_classes(g, t[0], cols[0]) * math.sqrt(v @ G @ v)
    else:
        total_asu = 0.0
        for s in shapes:
            b = s.basis_array
            poly = s.chart_vertices_array
            nxt = np.roll(poly, -1, axis=0)
            area = 0.5 * abs(float(np.sum(poly[:, 0] * nxt[:, 1] - nxt[:, 0] * poly[:, 1])))
            total_asu += area * math.sqrt(np.linalg.det(b @ G @ b.T))
        _, normals = _plane_classes(g, t[0], cols[0], cols[1])
        cell = sum(vol * math.sqrt(n @ Ginv @ n) for n in normals)
    return wp.multiplicity * total_asu, cell


@pytest.mark.parametrize("sg", ALL)
def test_measure_identity(sg):
    """Completeness: a missing or doubly counted piece breaks this (notes, section 5.3)."""
    g = ag.space_group(sg)
    for wp in g.wyckoff_positions:
        if wp.dim in (1, 2):
            lhs, rhs = _measure_sides(g, wp, wp.shapes)
            assert lhs == pytest.approx(rhs, rel=1e-9), f"{sg}{wp.label}"


@pytest.mark.parametrize(("sg", "letter"), [(139, "e"), (166, "c"), (166, "h"), (227, "g")])
def test_measure_identity_detects_a_missing_piece(sg, letter):
    g = ag.space_group(sg)
    wp = g.wyckoff(letter)
    lhs, rhs = _measure_sides(g, wp, wp.shapes[1:])
    assert lhs < rhs * (1 - 1e-3)
