r"""Quadrature rules (basix Gauss-Jacobi) on refined triangulations of polygons, segments and boxes.

Used to check normalisation (:math:`\int p = 1`), to bin probabilities for goodness-of-fit tests
and to render densities.

References:
    M. W. Scroggs et al., "Basix: a runtime finite element basis evaluation library",
    Journal of Open Source Software 7 (2022) 3982.
"""

from __future__ import annotations

import basix
import numpy as np
import torch
from torch import Tensor

from .geometry import validate_convex_polygon

__all__ = ["box_quadrature", "polygon_cells", "polygon_quadrature", "segment_quadrature"]


def polygon_cells(vertices: Tensor, level: int) -> Tensor:
    """Triangulate a convex polygon (fan from the centroid), each triangle refined into ``4**level``.

    Args:
        vertices: one polygon, shape ``(k, 2)``.
        level: uniform refinement level (``>= 0``).

    Returns:
        Triangles, shape ``(k * 4**level, 3, 2)`` (counter-clockwise, same dtype).
    """
    if vertices.dim() != 2 or vertices.shape[-1] != 2 or level < 0:
        raise ValueError("vertices must have shape (k, 2) and level must be >= 0")
    validate_convex_polygon(vertices, strict=False)  # the centroid fan covers a convex polygon once
    c = vertices.mean(0)
    tris = torch.stack(
        [torch.stack([c, vertices[i], vertices[(i + 1) % len(vertices)]]) for i in range(len(vertices))]
    )
    n = 2**level
    sub = []
    for i in range(n):
        for j in range(n - i):
            sub.append(((i, j), (i + 1, j), (i, j + 1)))
            if i + j < n - 1:
                sub.append(((i + 1, j), (i + 1, j + 1), (i, j + 1)))
    bary = torch.tensor(sub, dtype=vertices.dtype) / n  # (m, 3, 2) coordinates in the unit triangle
    a, b, cc = tris[:, 0], tris[:, 1], tris[:, 2]
    pts = (
        a[:, None, None]
        + bary[None, ..., :1] * (b - a)[:, None, None]
        + bary[None, ..., 1:] * (cc - a)[:, None, None]
    )
    return pts.reshape(-1, 3, 2)


def _triangle_rule(cells: Tensor, degree: int) -> tuple[Tensor, Tensor]:
    pts, wts = basix.make_quadrature(basix.CellType.triangle, degree)
    p = torch.as_tensor(pts, dtype=cells.dtype)
    w = torch.as_tensor(wts, dtype=cells.dtype)
    a, e1, e2 = cells[:, 0], cells[:, 1] - cells[:, 0], cells[:, 2] - cells[:, 0]
    x = a[:, None] + p[None, :, :1] * e1[:, None] + p[None, :, 1:] * e2[:, None]
    det = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs()
    return x.reshape(-1, 2), (det[:, None] * w[None]).reshape(-1)


def polygon_quadrature(vertices: Tensor, level: int = 3, degree: int = 10) -> tuple[Tensor, Tensor]:
    """Points ``(n, 2)`` and weights ``(n,)`` integrating over a convex polygon (:func:`polygon_cells`).

    Example:
        >>> import torch
        >>> sq = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> x, w = polygon_quadrature(sq, level=1, degree=2)
        >>> round(float(w.sum()), 12), round(float((w * x[:, 0] ** 2).sum()), 12)
        (2.0, 2.666666666667)
    """
    return _triangle_rule(polygon_cells(vertices, level), degree)


def segment_quadrature(
    start: Tensor, end: Tensor, pieces: int = 8, degree: int = 20
) -> tuple[Tensor, Tensor]:
    """Points ``(n, d)`` and arc-length weights ``(n,)`` on ``[start, end]`` (``pieces`` intervals)."""
    pts, wts = basix.make_quadrature(basix.CellType.interval, degree)
    p = torch.as_tensor(pts[:, 0], dtype=start.dtype)
    w = torch.as_tensor(wts, dtype=start.dtype)
    t = ((torch.arange(pieces, dtype=start.dtype)[:, None] + p[None]) / pieces).reshape(-1)
    wt = (w[None].expand(pieces, -1) / pieces).reshape(-1)
    return start + t[:, None] * (end - start), wt * (end - start).norm()


def box_quadrature(lo: Tensor, hi: Tensor, pieces: int = 4, degree: int = 20) -> tuple[Tensor, Tensor]:
    """Tensor-product Gauss rule on the box ``[lo, hi]``, ``pieces`` cells per axis."""
    pts, wts = basix.make_quadrature(basix.CellType.interval, degree)
    p = np.asarray(pts[:, 0])
    axes_p, axes_w = [], []
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        t = ((np.arange(pieces)[:, None] + p[None]) / pieces).ravel()
        axes_p.append(torch.as_tensor(a + (b - a) * t, dtype=lo.dtype))
        axes_w.append(torch.as_tensor(np.tile(wts, pieces) * (b - a) / pieces, dtype=lo.dtype))
    grid = torch.cartesian_prod(*axes_p).reshape(-1, len(axes_p))
    wgrid = torch.cartesian_prod(*axes_w).reshape(-1, len(axes_w)).prod(-1)
    return grid, wgrid
