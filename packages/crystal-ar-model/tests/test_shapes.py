"""The piece table: ids, counts and vertices agree with asu_geometry, position by position."""

from __future__ import annotations

import asu_geometry as ag
import numpy as np
import pytest
import torch
from crystal_ar_model.shapes import (
    NUM_WYCKOFF_POSITIONS,
    anchored_shapes,
    is_polar,
    piece_ids,
    piece_shapes,
    shape_table,
)


def test_table_matches_asu_geometry_piece_by_piece() -> None:
    table = shape_table()
    shapes = piece_shapes()
    assert table.num_pieces == len(shapes)
    assert table.piece_offset.shape == (NUM_WYCKOFF_POSITIONS, 2) == table.piece_count.shape
    seen = torch.zeros(table.num_pieces, dtype=torch.long)
    for wp in ag.all_wyckoff_positions():
        for a, pieces in enumerate((wp.shapes, anchored_shapes(wp))):
            assert int(table.piece_count[wp.index, a]) == len(pieces)
            for s, shape in enumerate(pieces):
                p = int(table.piece_offset[wp.index, a]) + s
                seen[p] += 1
                assert shapes[p] is shape
                assert int(table.dim[p]) == shape.dim
                assert int(table.space_group[p]) == wp.space_group
                assert int(table.wyckoff[p]) == wp.index
                assert bool(table.anchored[p]) == bool(a)
                n = len(shape.vertices)
                assert int(table.vertex_mask[p].sum()) == n and bool(table.vertex_mask[p, :n].all())
                np.testing.assert_array_equal(table.vertices[p, :n].numpy(), shape.vertices_array.reshape(n, 3))
                assert float(table.vertices[p, n:].abs().sum()) == 0.0
    assert bool((seen == 1).all()), "every piece id belongs to exactly one (position, anchored, index)"
    assert table.max_pieces == int(table.piece_count.max())
    assert table.vertices.dtype == torch.float64


def test_piece_census() -> None:
    table = shape_table()
    normal = ~table.anchored
    counts = torch.bincount(table.dim[normal], minlength=4).tolist()
    # 616 points of 0-D positions + 4 isolated points of 1-D positions; 948 segments; 245 polygons; 230 interiors
    assert counts == [620, 948, 245, 230]
    k = table.vertex_mask[normal & (table.dim == 2)].sum(-1)
    assert torch.bincount(k).tolist()[3:] == [45, 195, 5]
    polar = [n for n in range(1, 231) if is_polar(n)]
    assert len(polar) == 68
    for n in range(1, 231):
        wps = ag.wyckoff_positions(n)
        has_anchored = any(anchored_shapes(wp) for wp in wps)
        assert has_anchored == (n in polar), n
        if n in polar:  # the general position always has a section on the anchor
            assert anchored_shapes(wps[-1])
    parent_dim = torch.tensor([ag.all_wyckoff_positions()[w].dim for w in table.wyckoff.tolist()])
    anchored = table.anchored
    assert bool(anchored.any())
    assert bool((table.dim[anchored] < parent_dim[anchored]).all()), "a section has lower dimension"


def test_piece_ids_vectorised_and_errors() -> None:
    table = shape_table()
    wp = ag.space_group(62).wyckoff("c")
    w = torch.tensor([wp.index, 0, wp.index])
    s = torch.tensor([0, 0, 0])
    a = torch.tensor([False, False, False])
    ids = piece_ids(w, s, a)
    assert ids.dtype == torch.long and ids.shape == (3,)
    first = int(table.piece_offset[wp.index, 0])
    assert ids.tolist() == [first, 0, first]
    with pytest.raises(ValueError, match="outside 0..1730"):
        piece_ids(torch.tensor([1731]), torch.tensor([0]), torch.tensor([False]))
    with pytest.raises(ValueError, match="is not a piece of Wyckoff position"):
        piece_ids(torch.tensor([wp.index]), torch.tensor([len(wp.shapes)]), torch.tensor([False]))
    non_polar = ag.space_group(225).wyckoff_positions[0].index
    with pytest.raises(ValueError, match="anchored pieces"):
        piece_ids(torch.tensor([non_polar]), torch.tensor([0]), torch.tensor([True]))
    with pytest.raises(ValueError, match="same shape"):
        piece_ids(torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([False]))
