r"""Every piece (Wyckoff shape) of the 230 space groups as padded tensors, with one integer id per piece.

A *piece* is one connected part of the intersection of a Wyckoff position with the exact asymmetric unit
(``asu_geometry.WyckoffPosition.shapes``): a point (dim 0), a segment (1), a convex polygon (2) or the ASU
interior (3). For the 68 polar groups, site 0 of a crystal in normal form is *anchored* (its coordinates
along the free directions are fixed by the normal form), and it lives on a section of its Wyckoff shape of
lower dimension (``WyckoffPosition.anchored_shapes``); these sections are pieces too, with their own ids.

Piece ids run over the 1,731 Wyckoff positions in global order (``asu_geometry.all_wyckoff_positions``):
for each position first its normal pieces, then its anchored pieces, each in table order, so
``piece_offset[w, a] + shape_index`` is the id of piece ``shape_index`` of position ``w`` (``a = 1`` for
the anchored sections).

Example:
    >>> import torch
    >>> from crystal_ar_model.shapes import piece_ids, shape_table
    >>> table = shape_table()
    >>> int(table.piece_count.shape[0])
    1731
    >>> w = torch.tensor([0]); s = torch.tensor([0]); a = torch.tensor([False])
    >>> int(table.dim[piece_ids(w, s, a)][0])  # P1 general position: the ASU interior
    3
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["NUM_WYCKOFF_POSITIONS", "ShapeTable", "anchored_shapes", "is_polar", "piece_ids", "piece_shapes",
           "shape_table"]

NUM_WYCKOFF_POSITIONS = 1731
"""Number of Wyckoff positions over the 230 space groups (global indices 0..1730)."""


def is_polar(space_group: int) -> bool:
    """Whether ``space_group`` is polar (continuous origin freedom; its site 0 is anchored in normal form)."""
    import asu_geometry as ag

    return bool(ag.space_group(space_group).is_polar)


def anchored_shapes(wp: Any) -> tuple:
    """The anchored sections of a Wyckoff position (``wp.anchored_shapes``; empty for non-polar groups)."""
    return tuple(wp.anchored_shapes)


@dataclass(frozen=True)
class ShapeTable:
    """Every piece (Wyckoff shape) of all 230 groups as padded tensors.

    The normal pieces of each Wyckoff position (``wp.shapes``) and, for the 68 polar groups, the anchored
    pieces (``wp.anchored_shapes``, the sections used by site 0 of a polar crystal). Piece ids are
    ``0..P-1``. Built once from :mod:`asu_geometry` (cached by :func:`shape_table`).

    Attributes:
        piece_offset: ``(1731, 2)`` long, ``[global Wyckoff index, anchored 0/1]`` -> first piece id
            (the id the first piece would have when ``piece_count`` is 0).
        piece_count: ``(1731, 2)`` long, number of pieces (0 where there are none, e.g. the anchored
            pieces of a non-polar group).
        dim: ``(P,)`` long, 0..3.
        space_group: ``(P,)`` long, 1..230.
        wyckoff: ``(P,)`` long, global Wyckoff index.
        anchored: ``(P,)`` bool.
        vertices: ``(P, V, 3)`` float64 fractional coordinates of the piece's vertices (a point: 1 vertex;
            a segment: start, end; a polygon: counter-clockwise in its chart; the interior: the ASU's
            vertices), padded with 0.
        vertex_mask: ``(P, V)`` bool, which rows of ``vertices`` are real.
        max_pieces: the largest ``piece_count`` (the width of the shape categorical).
    """

    piece_offset: Tensor
    piece_count: Tensor
    dim: Tensor
    space_group: Tensor
    wyckoff: Tensor
    anchored: Tensor
    vertices: Tensor
    vertex_mask: Tensor
    max_pieces: int

    @property
    def num_pieces(self) -> int:
        """P, the number of pieces."""
        return int(self.dim.shape[0])


@cache
def piece_shapes() -> tuple:
    """The ``asu_geometry.WyckoffShape`` of every piece, indexed by piece id (see the module docstring)."""
    import asu_geometry as ag

    out: list = []
    for wp in ag.all_wyckoff_positions():
        out.extend(wp.shapes)
        out.extend(anchored_shapes(wp))
    return tuple(out)


@cache
def shape_table() -> ShapeTable:
    """The :class:`ShapeTable` of all pieces (built once per process from :mod:`asu_geometry`)."""
    import asu_geometry as ag

    wps = ag.all_wyckoff_positions()
    if len(wps) != NUM_WYCKOFF_POSITIONS:
        raise RuntimeError(f"asu_geometry lists {len(wps)} Wyckoff positions, expected {NUM_WYCKOFF_POSITIONS}")
    offset = np.zeros((len(wps), 2), dtype=np.int64)
    count = np.zeros((len(wps), 2), dtype=np.int64)
    dims: list[int] = []
    groups: list[int] = []
    wyckoffs: list[int] = []
    anchored: list[bool] = []
    verts: list[np.ndarray] = []
    for w, wp in enumerate(wps):
        if wp.index != w:
            raise RuntimeError(f"asu_geometry Wyckoff index {wp.index} at position {w} of all_wyckoff_positions")
        for a, pieces in enumerate((wp.shapes, anchored_shapes(wp))):
            offset[w, a] = len(dims)
            count[w, a] = len(pieces)
            for shape in pieces:
                dims.append(int(shape.dim))
                groups.append(int(wp.space_group))
                wyckoffs.append(w)
                anchored.append(bool(a))
                verts.append(np.asarray(shape.vertices_array, dtype=np.float64).reshape(-1, 3))
    n_vert = max(len(v) for v in verts)
    vertices = np.zeros((len(verts), n_vert, 3), dtype=np.float64)
    mask = np.zeros((len(verts), n_vert), dtype=bool)
    for p, v in enumerate(verts):
        vertices[p, : len(v)] = v
        mask[p, : len(v)] = True
    return ShapeTable(
        piece_offset=torch.from_numpy(offset),
        piece_count=torch.from_numpy(count),
        dim=torch.tensor(dims, dtype=torch.long),
        space_group=torch.tensor(groups, dtype=torch.long),
        wyckoff=torch.tensor(wyckoffs, dtype=torch.long),
        anchored=torch.tensor(anchored, dtype=torch.bool),
        vertices=torch.from_numpy(vertices),
        vertex_mask=torch.from_numpy(mask),
        max_pieces=int(count.max()),
    )


def piece_ids(wyckoff: Tensor, shape_index: Tensor, anchored: Tensor) -> Tensor:
    """Piece ids ``(N,)`` long of sites given by global Wyckoff index, shape index and anchored flag.

    Args:
        wyckoff: ``(N,)`` integer global Wyckoff indices (0..1730).
        shape_index: ``(N,)`` integer index into ``wp.shapes`` (or ``wp.anchored_shapes`` when anchored).
        anchored: ``(N,)`` bool (or 0/1), whether the site is the anchored site 0 of a polar crystal.

    Raises:
        ValueError: shapes differ, a Wyckoff index is outside 0..1730, or a shape index is not one of the
            position's pieces (e.g. an anchored site of a non-polar group).
    """
    table = shape_table()
    w, s, a = (torch.as_tensor(t) for t in (wyckoff, shape_index, anchored))
    if not (w.shape == s.shape == a.shape):
        raise ValueError(
            f"wyckoff, shape_index and anchored must have the same shape, got {tuple(w.shape)}, "
            f"{tuple(s.shape)} and {tuple(a.shape)}"
        )
    w, s, a = w.long(), s.long(), a.long()
    bad_w = (w < 0) | (w >= NUM_WYCKOFF_POSITIONS)
    if bool(bad_w.any()):
        i = int(bad_w.nonzero()[0, 0])
        raise ValueError(f"Wyckoff index {int(w.reshape(-1)[i])} is outside 0..{NUM_WYCKOFF_POSITIONS - 1}")
    if bool(((a < 0) | (a > 1)).any()):
        raise ValueError("anchored must be a bool or 0/1 tensor")
    count = table.piece_count.to(w.device)[w, a]
    bad_s = (s < 0) | (s >= count)
    if bool(bad_s.any()):
        i = int(bad_s.reshape(-1).nonzero()[0, 0])
        wi, si, ai = int(w.reshape(-1)[i]), int(s.reshape(-1)[i]), bool(a.reshape(-1)[i])
        kind = "anchored pieces" if ai else "pieces"
        raise ValueError(
            f"shape index {si} is not a piece of Wyckoff position {wi} "
            f"(group {int(table.space_group[table.piece_offset[wi, 0]])}), which has "
            f"{int(table.piece_count[wi, int(ai)])} {kind}"
        )
    return table.piece_offset.to(w.device)[w, a] + s
