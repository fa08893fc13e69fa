"""The anchor of the 68 polar groups and the anchored sections of their Wyckoff positions (exact)."""

from __future__ import annotations

from fractions import Fraction
from itertools import product

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry.canonical import _ShapeCandidates, shape_contains_exact, stabilizer_order_exact

POLAR = [n for n in range(1, 231) if ag.space_group(n).is_polar]


def test_anchor_is_the_included_lower_face_except_in_p4_3():
    assert len(POLAR) == 68
    for n in range(1, 231):
        g = ag.space_group(n)
        assert len(g.anchor) == len(g.free_directions)
        for k, value in zip(g.free_axes, g.anchor, strict=True):
            assert value == (g.asu.box_max[k] if n == 78 else g.asu.box_min[k]), n
    assert ag.space_group(78).anchor_description == "z = 1"  # P4_3: the exact ASU has 0 < z <= 1
    assert ag.space_group(4).anchor_description == "y = 0"
    assert ag.space_group(1).anchor_description == "x = 0, y = 0, z = 0"


@pytest.mark.parametrize("sg", POLAR)
def test_every_position_has_anchored_pieces_inside_its_shapes_and_the_asu_exactly(sg):
    g = ag.space_group(sg)
    k = len(g.free_axes)
    for wp in g.wyckoff_positions:
        assert len(wp.anchored_shapes) >= 1, wp
        for piece in wp.anchored_shapes:
            assert piece.dim == wp.dim - k
            for v in piece.vertices:  # on the anchor, in the closed ASU
                assert all(v[a] == value for a, value in zip(g.free_axes, g.anchor, strict=True))
                assert all(c.value(v) >= 0 for c in g.asu.cuts)
            centre = tuple(sum(v[i] for v in piece.vertices) / len(piece.vertices) for i in range(3))
            assert g.asu.contains_exact(centre), (wp, piece)
            assert any(shape_contains_exact(s, centre) for s in wp.shapes), (wp, piece)
            assert stabilizer_order_exact(sg, centre) == wp.stabilizer_order, (wp, piece)
            if piece.dim == 1:
                assert piece.include_start == g.asu.contains_exact(piece.vertices[0])
                assert piece.include_end == g.asu.contains_exact(piece.vertices[1])


def test_non_polar_groups_have_no_anchor():
    for n in range(1, 231):
        g = ag.space_group(n)
        if not g.is_polar:
            assert g.anchor == () and g.free_directions == () and g.free_directions_array.shape == (0, 3)
            assert all(wp.anchored_shapes == () for wp in g.wyckoff_positions)


def test_anchored_piece_dimensions():
    from collections import Counter

    dims = Counter((wp.dim, piece.dim) for n in POLAR for wp in ag.space_group(n).wyckoff_positions
                   for piece in wp.anchored_shapes)
    # lines -> points, planes -> segments (or points with two free directions), the interior -> a face,
    # a segment (Pm, Pc, Cm, Cc) or a point (P1)
    assert dims == {(1, 0): 148, (2, 1): 60, (2, 0): 3, (3, 2): 63, (3, 1): 4, (3, 0): 1}


@pytest.mark.parametrize("sg", POLAR)
def test_every_orbit_can_be_anchored(sg):
    """For points of the 1/24 grid (every special position of a polar group is on it) and random points,
    some translation along the free directions brings the orbit's representative onto the anchor, on one
    of its position's anchored pieces."""
    g = ag.space_group(sg)
    axes = list(g.free_axes)
    free = set(axes)
    rng = np.random.default_rng(sg)
    grid = np.array(list(product(*[[0.37] if i in free else np.arange(24) / 24 for i in range(3)])))
    x = np.concatenate([grid, rng.random((200, 3))])
    base = ag.to_asu_points(sg, x, tol=1e-9)
    anchor = np.array([float(v) for v in g.anchor])
    heights = np.unique(np.mod(g.translations24[:, axes], 24), axis=0) / 24.0
    anchored = np.zeros(len(x), dtype=bool)
    for h in heights:
        t = np.zeros((len(x), 3))
        t[:, axes] = anchor - base.frac[:, axes] - h
        moved = ag.to_asu_points(sg, base.frac + t, tol=1e-9)
        assert np.array_equal(moved.wyckoff_index, base.wyckoff_index)
        on = np.all(np.abs(moved.frac[:, axes] - anchor) < 1e-9, axis=1)
        for i in np.nonzero(on)[0]:
            wp = g.wyckoff_positions[int(moved.wyckoff_index[i])]
            dist, _, _, _ = _ShapeCandidates([(0, j, s) for j, s in enumerate(wp.anchored_shapes)]).match(
                moved.frac[i][None, :])
            assert dist[0] < 1e-9, (wp, moved.frac[i])
        anchored |= on
    assert anchored.all(), x[~anchored][:5]


def test_anchored_shapes_are_exact_rationals():
    piece = ag.space_group(99).wyckoff("d").anchored_shapes[0]
    assert piece.dim == 1 and piece.vertices == ((0, 0, 0), (Fraction(1, 2), Fraction(1, 2), 0))
    assert all(isinstance(c, Fraction) for v in piece.vertices for c in v)
