r"""Float64 geometry of every piece for the coordinate densities: segments, polygon frames, references, groups.

Built once per process from the exact tables of :mod:`asu_geometry` (via :func:`crystal_ar_model.shapes.piece_shapes`):

* a segment piece runs from ``start`` to ``end`` (fractional coordinates);
* a polygon piece with chart ``x = o + u b_1 + v b_2`` (exact rational basis) is written in the
  orthonormal frame of its plane, :math:`e_1 = b_1/\lVert b_1\rVert`,
  :math:`e_2 \propto b_2 - (b_2\cdot e_1) e_1` (Gram-Schmidt in the Euclidean metric of fractional
  coordinates), so its frame coordinates are :math:`y = M (u, v)` with
  :math:`M = \begin{pmatrix} b_1\cdot e_1 & b_2\cdot e_1 \\ 0 & b_2 \cdot e_2\end{pmatrix}`; the frame keeps
  the chart's orientation, so the counter-clockwise chart polygon stays counter-clockwise; areas in the
  frame are fractional areas;
* each polygon's reference polygon :math:`T_k` (for the mean value map of
  :class:`polygon_flows.PolygonDirichletMixture`) is read from the shipped
  ``data/reference_polygons.json`` (written by ``python -m crystal_ar_model.build_references``); a piece
  missing from it, or whose frame polygon changed, is fitted on the fly with a warning;
* the space-group operations (all :math:`|G/T|` of them, centring included) are padded to 192.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .shapes import piece_shapes, shape_table

__all__ = [
    "REFERENCE_FILE",
    "MAX_GROUP_ORDER",
    "GroupOperations",
    "PieceGeometry",
    "frame_polygon",
    "group_operations",
    "piece_geometry",
    "piece_key",
    "polygon_pieces",
    "shipped_references",
]

REFERENCE_FILE = "data/reference_polygons.json"
"""Package-relative path of the shipped reference polygons."""
REFERENCE_FORMAT = 1
MAX_GROUP_ORDER = 192
"""Largest |G/T| over the 230 groups (conventional cell, centring included)."""
_MATCH_TOL = 1e-12


def piece_key(piece: int) -> str:
    """A readable stable key of a piece: ``"<group>:<letter>:<n|a>:<shape index>"`` (e.g. ``"62:c:n:0"``)."""
    import asu_geometry as ag

    table = shape_table()
    wp = ag.all_wyckoff_positions()[int(table.wyckoff[piece])]
    anchored = bool(table.anchored[piece])
    first = int(table.piece_offset[wp.index, int(anchored)])
    return f"{wp.space_group}:{wp.letter}:{'a' if anchored else 'n'}:{piece - first}"


def frame_polygon(shape: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal frame of a polygon piece: ``(frame (2, 3), chart_to_frame M (2, 2), vertices (k, 2))``.

    See the module docstring; ``vertices`` are the frame coordinates of the chart vertices (counter-clockwise).
    """
    b1, b2 = (np.array([float(c) for c in b], dtype=np.float64) for b in shape.basis)
    e1 = b1 / np.linalg.norm(b1)
    w = b2 - (b2 @ e1) * e1
    e2 = w / np.linalg.norm(w)
    m = np.array([[b1 @ e1, b2 @ e1], [0.0, b2 @ e2]])
    chart = np.array([[float(u), float(v)] for u, v in shape.chart_vertices], dtype=np.float64)
    return np.stack([e1, e2]), m, chart @ m.T


def polygon_pieces() -> list[int]:
    """Ids of every polygon piece (normal and anchored), in id order."""
    return [int(p) for p in torch.nonzero(shape_table().dim == 2).flatten()]


@cache
def shipped_references() -> dict[str, dict[str, Any]]:
    """The shipped reference polygons, ``key -> {"vertices": (k, 2) list, "reference": (k, 2) list}``."""
    path = files("crystal_ar_model").joinpath(REFERENCE_FILE)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("format_version") != REFERENCE_FORMAT:
        raise RuntimeError(
            f"{REFERENCE_FILE} has format {data.get('format_version')}, expected {REFERENCE_FORMAT}; regenerate it "
            "with `python -m crystal_ar_model.build_references`"
        )
    return data["polygons"]


def _reference_for(piece: int, vertices: np.ndarray) -> tuple[np.ndarray, bool]:
    """The reference polygon of one polygon piece (shipped, or fitted now) and whether it was shipped."""
    entry = shipped_references().get(piece_key(piece))
    if entry is not None:
        stored = np.asarray(entry["vertices"], dtype=np.float64)
        if stored.shape == vertices.shape and np.abs(stored - vertices).max() <= _MATCH_TOL:
            return np.asarray(entry["reference"], dtype=np.float64), True
    from polygon_flows import fit_reference_polygon

    ref = fit_reference_polygon(torch.from_numpy(vertices)).numpy()
    return ref, False


@dataclass(frozen=True)
class PieceGeometry:
    """Float64 geometry of all ``P`` pieces (rows of kinds that do not apply are zero).

    Attributes:
        dim: ``(P,)`` long, 0..3.
        space_group: ``(P,)`` long.
        origin: ``(P, 3)`` the point (dim 0), the segment start (1), the chart origin (2); zero for dim 3.
        direction: ``(P, 3)`` segment ``end - start`` (dim 1).
        chart_basis: ``(P, 2, 3)`` exact chart basis :math:`b_1, b_2` as floats (dim 2).
        frame: ``(P, 2, 3)`` orthonormal :math:`e_1, e_2` of the plane (dim 2).
        frame_to_chart: ``(P, 2, 2)`` :math:`M^{-1}` (dim 2).
        polygon_size: ``(P,)`` long, k (dim 2), else 0.
        polygon: ``(P, Kmax, 2)`` frame vertices, padded (dim 2).
        reference: ``(P, Kmax, 2)`` reference polygons :math:`T_k`, padded (dim 2).
    """

    dim: Tensor
    space_group: Tensor
    origin: Tensor
    direction: Tensor
    chart_basis: Tensor
    frame: Tensor
    frame_to_chart: Tensor
    polygon_size: Tensor
    polygon: Tensor
    reference: Tensor


@cache
def piece_geometry() -> PieceGeometry:
    """The :class:`PieceGeometry` of all pieces (cached); warns once if references had to be fitted."""
    table = shape_table()
    shapes = piece_shapes()
    n = len(shapes)
    poly_ids = polygon_pieces()
    kmax = max([len(shapes[p].vertices) for p in poly_ids] + [3])
    origin = np.zeros((n, 3))
    direction = np.zeros((n, 3))
    basis = np.zeros((n, 2, 3))
    frame = np.zeros((n, 2, 3))
    to_chart = np.zeros((n, 2, 2))
    size = np.zeros(n, dtype=np.int64)
    polygon = np.zeros((n, kmax, 2))
    reference = np.zeros((n, kmax, 2))
    fitted: list[str] = []
    for p, shape in enumerate(shapes):
        if shape.dim in (0, 1, 2):
            origin[p] = shape.origin_array
        if shape.dim == 1:
            direction[p] = shape.basis_array[0]
        if shape.dim == 2:
            fr, m, verts = frame_polygon(shape)
            k = len(verts)
            basis[p], frame[p], to_chart[p], size[p] = shape.basis_array, fr, np.linalg.inv(m), k
            polygon[p, :k] = verts
            ref, shipped = _reference_for(p, verts)
            reference[p, :k] = ref
            if not shipped:
                fitted.append(piece_key(p))
    if fitted:
        warnings.warn(
            f"{len(fitted)} polygon pieces had no up-to-date shipped reference polygon and were fitted now "
            f"(e.g. {fitted[:3]}); regenerate {REFERENCE_FILE} with `python -m crystal_ar_model.build_references`",
            RuntimeWarning,
            stacklevel=2,
        )
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return PieceGeometry(
        dim=table.dim.clone(),
        space_group=table.space_group.clone(),
        origin=t(origin),
        direction=t(direction),
        chart_basis=t(basis),
        frame=t(frame),
        frame_to_chart=t(to_chart),
        polygon_size=t(size),
        polygon=t(polygon),
        reference=t(reference),
    )


@dataclass(frozen=True)
class GroupOperations:
    """The operations of the 230 groups in fractional coordinates, padded to :data:`MAX_GROUP_ORDER`.

    Attributes:
        rotations: ``(231, 192, 3, 3)`` float64 integer matrices (row ``n`` is group ``n``; row 0 unused).
        translations: ``(231, 192, 3)`` float64, exact multiples of 1/24.
        mask: ``(231, 192)`` bool, the real operations (the first is the identity).
        order: ``(231,)`` long, |G/T|.
    """

    rotations: Tensor
    translations: Tensor
    mask: Tensor
    order: Tensor


@cache
def group_operations() -> GroupOperations:
    """The :class:`GroupOperations` of all groups (cached)."""
    import asu_geometry as ag

    rot = np.zeros((231, MAX_GROUP_ORDER, 3, 3))
    rot[:] = np.eye(3)
    tr = np.zeros((231, MAX_GROUP_ORDER, 3))
    mask = np.zeros((231, MAX_GROUP_ORDER), dtype=bool)
    order = np.zeros(231, dtype=np.int64)
    for n in range(1, 231):
        g = ag.space_group(n)
        m = g.order
        if m > MAX_GROUP_ORDER:
            raise RuntimeError(f"group {n} has order {m} > {MAX_GROUP_ORDER}")
        rot[n, :m] = g.rotations
        tr[n, :m] = g.translations24 / 24.0
        mask[n, :m] = True
        order[n] = m
        if not (np.array_equal(g.rotations[0], np.eye(3)) and not g.translations24[0].any()):
            raise RuntimeError(f"group {n}: the first operation is not the identity")
        if not math.isclose(abs(float(np.linalg.det(g.rotations).prod())), 1.0):
            raise RuntimeError(f"group {n}: an operation is not unimodular")
    return GroupOperations(torch.from_numpy(rot), torch.from_numpy(tr), torch.from_numpy(mask), torch.from_numpy(order))
