r"""Supports of the densities of this package, as :class:`torch.distributions.constraints.Constraint`.

Each constraint has ``event_dim == 1`` and a :meth:`check` returning a boolean tensor of batch
shape. Tolerances are relative (``1e-6`` of the shape's size, like torch's simplex check).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["polygon", "reference_triangle", "segment"]

_REL_TOL = 1e-6


class _ConvexPolygon(constraints.Constraint):
    """Closed convex polygon with counter-clockwise ``vertices`` of shape ``(..., k, 2)``."""

    event_dim = 1

    def __init__(self, vertices: Tensor) -> None:
        self.vertices = vertices
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        v = self.vertices
        e = torch.roll(v, -1, dims=-2) - v
        rel = value.unsqueeze(-2) - v
        cross = e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]  # |e| * signed distance
        length = e.norm(dim=-1)
        diam = (v - v.mean(-2, keepdim=True)).norm(dim=-1).amax(-1, keepdim=True)
        return (cross >= -_REL_TOL * diam * length).all(-1)


class _Segment(constraints.Constraint):
    """Closed segment ``[start, end]`` in :math:`\\mathbb{R}^d`."""

    event_dim = 1

    def __init__(self, start: Tensor, end: Tensor) -> None:
        self.start = start
        self.end = end
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        e = self.end - self.start
        length2 = (e * e).sum(-1)
        rel = value - self.start
        t = (rel * e).sum(-1) / length2
        off = (rel - t.unsqueeze(-1) * e).norm(dim=-1)
        tol = _REL_TOL
        return (t >= -tol) & (t <= 1 + tol) & (off <= tol * length2.sqrt())


class _ReferenceTriangle(constraints.Constraint):
    r"""The reference triangle :math:`T_3 = \{u \in \mathbb{R}^2 : u_1, u_2 \ge 0, u_1 + u_2 \le 1\}`."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        tol = _REL_TOL
        return (value[..., 0] >= -tol) & (value[..., 1] >= -tol) & (value.sum(-1) <= 1 + tol)


def polygon(vertices: Tensor) -> constraints.Constraint:
    """Support constraint of a closed convex polygon with counter-clockwise ``vertices`` ``(..., k, 2)``."""
    return _ConvexPolygon(vertices)


def segment(start: Tensor, end: Tensor) -> constraints.Constraint:
    """Support constraint of the closed segment between ``start`` and ``end`` (shape ``(..., d)``)."""
    return _Segment(start, end)


reference_triangle = _ReferenceTriangle()
"""The reference triangle with corners (0, 0), (1, 0), (0, 1)."""
