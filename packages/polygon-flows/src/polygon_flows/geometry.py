r"""Batched, differentiable geometry of convex polygons: mean value coordinates and validation.

Mean value coordinates (MVC) of a point :math:`x` with respect to a convex polygon with
counter-clockwise vertices :math:`v_0, \dots, v_{k-1}` are

.. math::

    \lambda_i(x) = \frac{w_i}{\sum_j w_j}, \qquad
    w_i = \frac{\tan(\alpha_{i-1}/2) + \tan(\alpha_i/2)}{\lVert v_i - x \rVert},

where :math:`\alpha_i` is the angle at :math:`x` of the triangle :math:`(x, v_i, v_{i+1})`.

References:
    M. S. Floater, "Mean value coordinates", Computer Aided Geometric Design 20 (2003) 19-27.
    K. Hormann and M. S. Floater, "Mean value coordinates for arbitrary planar polygons",
    ACM Transactions on Graphics 25 (2006) 1424-1441.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "mean_value_coordinates",
    "mean_value_coordinates_and_jacobian",
    "polygon_area",
    "validate_convex_polygon",
]


def polygon_area(vertices: Tensor) -> Tensor:
    r"""Signed area of polygons (shoelace formula), positive for counter-clockwise vertices.

    .. math:: A = \tfrac12 \sum_i v_i \times v_{i+1}

    Args:
        vertices: tensor of shape ``(..., k, 2)``.

    Returns:
        Tensor of shape ``(...)``.
    """
    nxt = torch.roll(vertices, -1, dims=-2)
    return 0.5 * (vertices[..., 0] * nxt[..., 1] - vertices[..., 1] * nxt[..., 0]).sum(-1)


def validate_convex_polygon(vertices: Tensor, name: str = "vertices", strict: bool = True) -> None:
    """Raise ``ValueError`` unless ``vertices`` are strictly convex, counter-clockwise polygons.

    Checks the shape ``(..., k, 2)`` with ``k >= 3``, finiteness, positive signed area (a negative
    area means clockwise order), no repeated vertex, a strictly left turn at every vertex, and a total turn of
    one full circle (a star such as the pentagram turns left everywhere but winds twice).
    The tolerances are relative to the polygon's size, in the vertices' dtype.

    Args:
        vertices: tensor of shape ``(..., k, 2)``.
        name: the argument name used in error messages.
        strict: with ``False``, a convex polygon that is not strictly convex passes too: a vertex may repeat
            or lie on the straight line between its neighbours (enough for a fan triangulation).
    """
    if not isinstance(vertices, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(vertices).__name__}")
    if vertices.dim() < 2 or vertices.shape[-1] != 2 or vertices.shape[-2] < 3:
        raise ValueError(f"{name} must have shape (..., k, 2) with k >= 3, got {tuple(vertices.shape)}")
    if not vertices.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {vertices.dtype}")
    v = vertices.detach()
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains non-finite values")
    eps = torch.finfo(v.dtype).eps
    edges = torch.roll(v, -1, dims=-2) - v
    lengths = edges.norm(dim=-1)
    diam = (v.unsqueeze(-2) - v.unsqueeze(-3)).norm(dim=-1).amax(dim=(-1, -2))
    if (diam <= 0).any() or (strict and (lengths <= 64 * eps * diam.unsqueeze(-1)).any()):
        raise ValueError(f"{name} is a degenerate polygon (repeated vertices or zero size)")
    area = polygon_area(v)
    if (area.abs() <= 64 * eps * diam**2).any():
        raise ValueError(f"{name} is a degenerate polygon (zero area)")
    if (area < 0).any():
        raise ValueError(f"{name} is ordered clockwise; convex polygons must be counter-clockwise")
    prev = torch.roll(edges, 1, dims=-2)
    turn = prev[..., 0] * edges[..., 1] - prev[..., 1] * edges[..., 0]
    tol = 64 * eps * diam.unsqueeze(-1) ** 2
    if strict and (turn <= tol).any():
        raise ValueError(
            f"{name} is not a strictly convex polygon (a vertex turns right or is collinear with its "
            "neighbours)"
        )
    if not strict and (turn < -tol).any():
        raise ValueError(f"{name} is not a convex polygon (a vertex turns right)")
    winding = torch.atan2(turn, (prev * edges).sum(-1)).sum(-1) / (2 * math.pi)  # 1 for a simple convex polygon
    if (winding > 1.5).any():
        raise ValueError(f"{name} winds around its centre more than once (a self-intersecting star polygon), so it "
                         "is not a convex polygon")


def _mvc_core(points: Tensor, vertices: Tensor, jacobian: bool) -> tuple[Tensor, Tensor | None]:
    """Shared implementation; see :func:`mean_value_coordinates_and_jacobian`."""
    d = vertices - points.unsqueeze(-2)  # (..., k, 2) vectors from x to v_i
    dn = torch.roll(d, -1, dims=-2)
    r = d.norm(dim=-1)
    rn = torch.roll(r, -1, dims=-1)
    area = 0.5 * (d[..., 0] * dn[..., 1] - d[..., 1] * dn[..., 0])  # signed area of (x, v_i, v_i+1)
    dot = (d * dn).sum(-1)
    rr = r * rn
    dtype = points.dtype
    eps = torch.finfo(dtype).eps
    scale = (vertices.detach() - vertices.detach().mean(-2, keepdim=True)).norm(dim=-1).amax(-1)
    scale = scale.unsqueeze(-1)
    on_vertex = r <= 4 * eps * scale  # (..., k)
    on_edge = (area.abs() <= eps * scale**2) & (dot < 0)  # x on the open edge (v_i, v_i+1)
    any_vertex = on_vertex.any(-1, keepdim=True)
    any_edge = on_edge.any(-1, keepdim=True) & ~any_vertex
    singular = any_vertex | any_edge
    one = torch.ones((), dtype=dtype, device=points.device)

    # tan(alpha_i / 2) in the cancellation-free form for each sign of cos(alpha_i)
    pos = dot >= 0
    den1 = torch.where(pos & ~singular, rr + dot, one)
    den2 = torch.where(~pos & ~singular, 2 * area, one)
    t = torch.where(pos, 2 * area / den1, (rr - dot) / den2)
    r_safe = torch.where(singular, one, r)
    tp = torch.roll(t, 1, dims=-1)
    w = (tp + t) / r_safe
    wsum = w.sum(-1, keepdim=True)
    wsum = torch.where(singular, one, wsum)
    lam = w / wsum

    # limits on the boundary
    lam_vertex = on_vertex.to(dtype)
    lam_vertex = lam_vertex / lam_vertex.sum(-1, keepdim=True).clamp_min(1)
    seg = torch.where(on_edge, r + rn, one)
    lam_edge = torch.where(on_edge, rn / seg, torch.zeros_like(r)) + torch.roll(
        torch.where(on_edge, r / seg, torch.zeros_like(r)), 1, dims=-1
    )
    lam = torch.where(any_vertex, lam_vertex, torch.where(any_edge, lam_edge, lam))
    if not jacobian:
        return lam, None

    # gradients with respect to x (d = v - x, so dd/dx = -I)
    g_r = -d / r_safe.unsqueeze(-1)
    g_rn = torch.roll(g_r, -1, dims=-2)
    g_area = 0.5 * torch.stack((d[..., 1] - dn[..., 1], dn[..., 0] - d[..., 0]), dim=-1)
    g_dot = -(d + dn)
    g_rr = g_r * rn.unsqueeze(-1) + r.unsqueeze(-1) * g_rn
    g_t1 = (2 * g_area - t.unsqueeze(-1) * (g_rr + g_dot)) / den1.unsqueeze(-1)
    g_t2 = (g_rr - g_dot - 2 * t.unsqueeze(-1) * g_area) / den2.unsqueeze(-1)
    g_t = torch.where(pos.unsqueeze(-1), g_t1, g_t2)
    g_w = (g_t + torch.roll(g_t, 1, dims=-2) - w.unsqueeze(-1) * g_r) / r_safe.unsqueeze(-1)
    g_lam = (g_w - lam.unsqueeze(-1) * g_w.sum(-2, keepdim=True)) / wsum.unsqueeze(-1)
    g_lam = torch.where(singular.unsqueeze(-1), torch.zeros_like(g_lam), g_lam)
    return lam, g_lam


def mean_value_coordinates(points: Tensor, vertices: Tensor) -> Tensor:
    r"""Mean value coordinates of points with respect to convex polygons (Floater 2003).

    .. math::

        \lambda_i(x) = \frac{w_i}{\sum_j w_j},\quad
        w_i = \frac{\tan(\alpha_{i-1}/2) + \tan(\alpha_i/2)}{\lVert v_i - x\rVert},\quad
        \tan(\alpha_i/2) = \frac{2A_i}{r_i r_{i+1} + D_i} = \frac{r_i r_{i+1} - D_i}{2A_i},

    with :math:`A_i` the signed area of :math:`(x, v_i, v_{i+1})`, :math:`D_i` the dot product
    and :math:`r_i` the distances; the form without cancellation is used for each sign of
    :math:`D_i`. On an edge the coordinates are the linear interpolation of its two end points,
    at a vertex they are the unit vector (the continuous limits), so no NaN is produced. For a
    triangle they are barycentric coordinates. Batched over broadcastable leading dimensions,
    differentiable, any floating dtype.

    Args:
        points: tensor of shape ``(..., 2)``.
        vertices: counter-clockwise convex polygons, shape ``(..., k, 2)``.

    Returns:
        Tensor of shape ``(..., k)`` (broadcast batch); rows sum to one and reproduce linear
        functions: ``lam @ vertices == points``.

    References:
        M. S. Floater, "Mean value coordinates", CAGD 20 (2003) 19-27.

    Example:
        >>> import torch
        >>> square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        >>> mean_value_coordinates(torch.tensor([0.5, 0.5]), square)
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    _check_points(points, vertices)
    return _mvc_core(points, vertices, jacobian=False)[0]


def mean_value_coordinates_and_jacobian(points: Tensor, vertices: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean value coordinates and their exact gradient with respect to the point.

    The gradient :math:`\partial\lambda_i/\partial x` is obtained by differentiating the formula of
    :func:`mean_value_coordinates` analytically (forward mode by hand); it is exact in the
    interior. On the boundary (where the limit is direction dependent) zeros are returned.

    Args:
        points: tensor of shape ``(..., 2)``.
        vertices: counter-clockwise convex polygons, shape ``(..., k, 2)``.

    Returns:
        ``(lam, grad)`` with shapes ``(..., k)`` and ``(..., k, 2)``.
    """
    _check_points(points, vertices)
    lam, grad = _mvc_core(points, vertices, jacobian=True)
    assert grad is not None
    return lam, grad


def _check_points(points: Tensor, vertices: Tensor) -> None:
    if points.shape[-1:] != (2,):
        raise ValueError(f"points must have shape (..., 2), got {tuple(points.shape)}")
    if vertices.dim() < 2 or vertices.shape[-1] != 2 or vertices.shape[-2] < 3:
        raise ValueError(f"vertices must have shape (..., k, 2) with k >= 3, got {tuple(vertices.shape)}")
