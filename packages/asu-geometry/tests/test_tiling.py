"""The exact ASU tiles space: every orbit has exactly one representative, on the right Wyckoff shape.

Exact checks (rationals, no tolerance) on random points, on points of every shape, and on ASU faces,
edges and vertices; a float check on the whole 1/24 grid of every group (every special position of
ITA is hit by that grid, notes section 5.4), compared orbit by orbit with the Wyckoff multiplicities.
"""

from __future__ import annotations

import random
from fractions import Fraction

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.canonical import (
    orbit_representatives_exact,
    shape_contains_exact,
    stabilizer_order_exact,
    to_asu_point_exact,
    to_asu_points,
)

ALL = range(1, 231)


def _rand_frac(rng: random.Random, den: int = 97) -> Fraction:
    return Fraction(rng.randrange(-den, 2 * den), den)


def _image(g: ag.SpaceGroup, p, rng: random.Random):
    """A random symmetry image of p, with a random lattice shift."""
    ops = g.exact_ops()
    r, t = ops[rng.randrange(len(ops))]
    return tuple(sum(int(r[i, j]) * p[j] for j in range(3)) + t[i] + rng.randrange(-2, 3) for i in range(3))


def _probe_points(g: ag.SpaceGroup, rng: random.Random):
    """(point, expected Wyckoff letter or None) pairs: ASU vertices/edges/faces, shape points, random points."""
    pts: list[tuple[tuple, str | None]] = []
    asu = g.asu
    for face in asu.faces:
        k = len(face)
        pts.append((tuple(sum(v[i] for v in face) / k for i in range(3)), None))
        for a, b in zip(face, face[1:] + face[:1], strict=True):
            pts.append((a, None))
            pts.append((tuple((a[i] + b[i]) / 2 for i in range(3)), None))
    for _ in range(6):
        pts.append((tuple(_rand_frac(rng) for _ in range(3)), None))
    for wp in g.wyckoff_positions:
        for shape in wp.shapes:
            if shape.dim == 0:
                pts.append((shape.origin, wp.letter))
            elif shape.dim == 1:
                s = Fraction(rng.randrange(1, 53), 53)
                pts.append((tuple(shape.origin[i] + s * shape.basis[0][i] for i in range(3)), wp.letter))
            elif shape.dim == 2:
                # a random strictly interior point: a random convex combination of the vertices
                w = [Fraction(rng.randrange(1, 31)) for _ in shape.vertices]
                tot = sum(w)
                pts.append((tuple(sum(wi * v[i] for wi, v in zip(w, shape.vertices, strict=True)) / tot
                                  for i in range(3)), wp.letter))
            else:  # a random point may still lie on a symmetry element by chance: no expected letter
                pts.append((tuple(_rand_frac(rng, 89) for _ in range(3)), None))
    return pts


@pytest.mark.parametrize("sg", ALL)
def test_exactly_one_representative_on_the_right_shape(sg):
    g = ag.space_group(sg)
    rng = random.Random(1000 + sg)
    for p, letter in _probe_points(g, rng):
        reps = orbit_representatives_exact(sg, p)
        assert len(reps) == 1, f"{sg}: orbit of {p} has {len(reps)} representatives in the exact ASU"
        rep, wp, si = to_asu_point_exact(sg, _image(g, p, rng))
        assert rep == reps[0], f"{sg}: a symmetry image of {p} has another representative"
        assert shape_contains_exact(wp.shapes[si], rep)
        assert stabilizer_order_exact(sg, rep) == wp.stabilizer_order == g.order // wp.multiplicity
        if letter is not None:
            assert wp.letter == letter, f"{sg}: {p} on {letter} classified as {wp.letter}"


def _grid() -> np.ndarray:
    k = np.arange(24) / 24
    return np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("sg", ALL)
def test_grid_orbits_match_multiplicities(sg):
    """Every point of the 1/24 grid: the orbit's points all map to one representative, and the number of
    grid points mapped to it equals the multiplicity of the Wyckoff position it is assigned to."""
    g = ag.space_group(sg)
    res = to_asu_points(sg, _grid(), tol=1e-6)
    keys = np.round(res.frac * 24).astype(np.int64)
    assert np.allclose(res.frac * 24, keys, atol=1e-6)
    uniq, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    hit = set()
    for key, i, count in zip(uniq, first, counts, strict=True):
        wp = g.wyckoff_positions[res.wyckoff_index[i]]
        hit.add(wp.letter)
        assert count == wp.multiplicity, f"{sg}: {key}/24 -> {wp.label} but {count} grid points map there"
        rep = tuple(Fraction(int(v), 24) for v in key)
        assert g.asu.contains_exact(rep)
        assert shape_contains_exact(wp.shapes[res.shape_index[i]], rep)
    assert hit == {wp.letter for wp in g.wyckoff_positions}, f"{sg}: some Wyckoff positions not hit by the grid"


@pytest.mark.parametrize("sg", [2, 62, 139, 166, 191, 194, 221, 225, 227, 229, 230])
def test_float_canonicalisation_is_invariant_under_the_group(sg):
    """A random point and all its images (plus lattice shifts and noise below tol) give one representative."""
    g = ag.space_group(sg)
    rng = np.random.default_rng(sg)
    x = rng.random((80, 3))
    # keep points whose snapping decision is not at the edge of the tolerance (noise could flip it)
    stable = np.array(to_asu_points(sg, x, tol=5e-4).letters) == np.array(to_asu_points(sg, x, tol=2e-3).letters)
    x = x[stable][:50]
    base = to_asu_points(sg, x)
    for k in range(0, g.order, max(1, g.order // 12)):
        y = x @ g.rotations[k].T + g.translations[k] + rng.integers(-2, 3, size=x.shape)
        y += rng.normal(scale=1e-5, size=y.shape)
        res = to_asu_points(sg, y)
        assert res.letters == base.letters
        assert np.allclose(res.frac, base.frac, atol=1e-4)
    assert np.all(g.asu.contains(base.frac, tol=1e-9))


@pytest.mark.parametrize("sg", [1, 62, 166, 227])
def test_batching_does_not_change_results(sg, monkeypatch):
    """Large inputs are canonicalised in batches (bounded memory); the result equals one single batch."""
    import asu_geometry.canonical as canonical

    x = np.concatenate([np.random.default_rng(sg).random((700, 3)), _grid()[::40]])
    monkeypatch.setattr(canonical, "CHUNK_IMAGES", 1 << 30)  # everything in one batch
    one = to_asu_points(sg, x)
    monkeypatch.setattr(canonical, "CHUNK_IMAGES", 1)  # the minimum batch of 64 points
    batched = to_asu_points(sg, x)
    assert np.array_equal(one.frac, batched.frac) and one.letters == batched.letters
    assert np.array_equal(one.shape_index, batched.shape_index)
    assert np.array_equal(one.params, batched.params, equal_nan=True)


def test_snapping_onto_special_positions():
    # Pnma 4c is (x, 1/4, z): a point 4e-4 off the mirror is snapped onto it
    p, letter = ag.to_asu_point(62, [0.1, 0.2504, 0.3], tol=1e-3)
    assert letter == "c" and p[1] == pytest.approx(0.25, abs=1e-12)
    # ... and left alone with a tighter tolerance
    p, letter = ag.to_asu_point(62, [0.1, 0.2504, 0.3], tol=1e-4)
    assert letter == "d"
    # the diamond site (origin choice 2) in Fd-3m, from the first coordinate triplet of 8a
    p, letter = ag.to_asu_point(227, [0.125, 0.125, 0.125])
    assert letter == "a" and np.allclose(p, [-0.125, -0.125, -0.125])
    p, letter = ag.to_asu_point(227, ["1/2", "1/2", "1/2"], tol=0)
    assert letter == "d" and p == (Fraction(1, 4), 0, Fraction(-1, 4))


def test_isolated_contact_point_of_91_4c():
    # (0, 1, 3/8) lies on 91 4c (x, x, 3/8) mapped into the ASU corner (0, 0, 1/8), an isolated contact
    p, wp, si = to_asu_point_exact(91, [0, 1, Fraction(3, 8)])
    assert p == (0, 0, Fraction(1, 8)) and wp.letter == "c" and wp.shapes[si].isolated
    fp, letter = ag.to_asu_point(91, [0.0, 1.0, 0.375])
    assert letter == "c" and np.allclose(fp, [0, 0, 0.125], atol=1e-12)
    # a generic point of 4c next to the excluded end of its segment stays on the segment
    fp, letter = ag.to_asu_point(91, [1e-5, 1.0, 0.375])
    assert letter == "c" and np.allclose(fp, [5e-6, 1 - 5e-6, 0.125], atol=1e-9)


def test_contains_exact_and_tolerant():
    a = ag.asu(2)  # P-1: on x=0 only 0 <= y <= 1/2 is included (nested cut)
    inside = ["0", "1/4", "1/3"]
    assert a.contains(inside) is True
    assert a.contains(["0", "3/4", "1/3"]) is False
    pts = np.array([[0.0, 0.25, 1 / 3], [0.0, 0.75, 1 / 3], [0.2, 0.2, 0.2], [-0.01, 0.2, 0.2]])
    assert a.contains(pts, tol=1e-9).tolist() == [True, False, True, False]
    with pytest.raises(ValueError):
        a.contains(pts, tol=-1)
