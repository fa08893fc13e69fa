r"""Placement of the reference polygon :math:`T_k` used by :class:`~polygon_flows.SimplexToPolygon`.

The reference triangle :math:`T_3` has corners :math:`(0,0), (1,0), (0,1)`; :math:`T_k` is
:math:`T_3` with :math:`k-3` extra vertices on its boundary. Three vertices of the target polygon
:math:`P` are sent to the corners and the others to boundary points; the choice is made by minimising
the area-normalised distortion of the mean value map :math:`f: T_k \to P`,

.. math::

    E = \frac{1}{|P|}\int_P \Big(\big|\det \mathrm{D}f^{-1}(x)\big|\,\tfrac{|P|}{|T_3|} - 1\Big)^2 dx
      = \frac{1}{|T_3|}\int_{T_3} \frac{(1 - J(u))^2}{J(u)}\, du,
    \qquad J(u) = \det \mathrm{D}f(u)\,\frac{|T_3|}{|P|},

(the second form is the exact change of variables, evaluated with basix Gauss-Jacobi quadrature
on a refined triangulation of :math:`T_3`). :math:`E = 0` exactly for an affine map.

References:
    Eq. (3) of the mean-value-map construction of densities on convex polygons; M. S. Floater,
    "Mean value coordinates", CAGD 20 (2003) 19-27 (the coordinates themselves).
"""

from __future__ import annotations

import itertools

import basix
import numpy as np
import torch
from torch import Tensor

from .geometry import _mvc_core, polygon_area, validate_convex_polygon

__all__ = [
    "REFERENCE_TRIANGLE",
    "check_injective",
    "fit_reference_polygon",
    "reference_distortion",
    "snap_reference",
    "validate_reference",
]

REFERENCE_TRIANGLE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
"""Corners of the reference triangle :math:`T_3` (counter-clockwise)."""

_CACHE: dict[tuple, Tensor] = {}
_CACHE_MAX = 512


def _triangle_quadrature(level: int, degree: int) -> tuple[Tensor, Tensor]:
    """Quadrature on T3 refined ``level`` times uniformly (4**level sub-triangles)."""
    pts, wts = basix.make_quadrature(basix.CellType.triangle, degree)
    n = 2**level
    tris = []
    for i in range(n):
        for j in range(n - i):
            a = np.array([i, j]) / n
            tris.append((a, a + [1 / n, 0], a + [0, 1 / n]))
            if i + j < n - 1:
                tris.append((a + [1 / n, 0], a + [1 / n, 1 / n], a + [0, 1 / n]))
    all_p, all_w = [], []
    for a, b, c in tris:
        m = np.stack([b - a, c - a], axis=1)
        all_p.append(a + pts @ m.T)
        all_w.append(wts * abs(np.linalg.det(m)))
    return torch.tensor(np.concatenate(all_p)), torch.tensor(np.concatenate(all_w))


_QUAD = _triangle_quadrature(2, 8)


def _det_jacobian(u: Tensor, vertices: Tensor, reference: Tensor) -> Tensor:
    _, g = _mvc_core(u, reference, jacobian=True)
    assert g is not None
    jac = torch.einsum("...ka,...kb->...ab", vertices, g)
    return jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]


def reference_distortion(vertices: Tensor, reference: Tensor) -> Tensor:
    r"""Area-normalised distortion :math:`E` (module docstring) of the map ``reference -> vertices``.

    Args:
        vertices: one convex counter-clockwise polygon, shape ``(k, 2)``.
        reference: its reference polygon :math:`T_k`, shape ``(k, 2)``.

    Returns:
        A scalar tensor (float64); ``inf`` if :math:`\det \mathrm{D}f \le 0` at a quadrature point.
    """
    v = vertices.to(torch.float64)
    r = reference.to(torch.float64)
    q, w = _QUAD
    jn = _det_jacobian(q, v, r) * (0.5 / polygon_area(v))
    if (jn <= 0).any():
        return torch.tensor(float("inf"), dtype=torch.float64)
    return (w * (1 - jn) ** 2 / jn).sum() / 0.5


def _dense_points(n: int) -> Tensor:
    """Sub-triangle centroids of an n-refinement of T3 plus points 1e-9 inside its boundary."""
    pts = []
    for i in range(n):
        for j in range(n - i):
            pts.append(((i + 1 / 3) / n, (j + 1 / 3) / n))
            if i + j < n - 1:
                pts.append(((i + 2 / 3) / n, (j + 2 / 3) / n))
    s = (np.arange(4 * n) + 0.5) / (4 * n)
    m = 1e-9
    for t in s:
        pts += [
            (t * (1 - 2 * m) + m, m),
            (m, t * (1 - 2 * m) + m),
            ((1 - t) * (1 - 3 * m) + m, t * (1 - 3 * m) + m),
        ]
    return torch.tensor(pts, dtype=torch.float64)


def check_injective(vertices: Tensor, reference: Tensor, n: int = 64) -> bool:
    r"""Whether :math:`\det \mathrm{D}f > 0` on a dense set of points of :math:`T_3`.

    The boundary of :math:`T_k` is mapped monotonically onto the boundary of :math:`P` by
    construction, so a positive Jacobian everywhere implies that :math:`f` is a bijection (degree
    argument). The check uses the ``2 n^2`` sub-triangle centroids of an ``n``-refinement of
    :math:`T_3` and ``12 n`` points at distance ``1e-9`` from its boundary.

    Args:
        vertices: polygon, shape ``(k, 2)``.
        reference: its reference polygon, shape ``(k, 2)``.
        n: refinement of the check grid.
    """
    det = _det_jacobian(_dense_points(n), vertices.to(torch.float64), reference.to(torch.float64))
    return bool((det > 0).all())


def _perimeter_parameter(reference: Tensor, tol: float = 1e-9) -> Tensor:
    """Arc parameter s in [0, 3) of points on the boundary of T3 (nan when not on the boundary)."""
    u0, u1 = reference[..., 0], reference[..., 1]
    s = torch.full_like(u0, float("nan"))
    on2 = (u0.abs() <= tol) & (u1 >= -tol) & (u1 <= 1 + tol)
    on1 = ((u0 + u1 - 1).abs() <= tol) & (u0 >= -tol) & (u1 >= -tol)
    on0 = (u1.abs() <= tol) & (u0 >= -tol) & (u0 <= 1 + tol)
    s = torch.where(on2, 2 + (1 - u1), s)
    s = torch.where(on1, 1 + u1, s)
    s = torch.where(on0, u0, s)
    return torch.where(s >= 3 - tol, s - 3, s)


def validate_reference(reference: Tensor, k: int) -> None:
    """Raise ``ValueError`` unless ``reference`` (``(..., k, 2)``) is a valid :math:`T_k`.

    Valid means: every vertex lies on the boundary of :math:`T_3`, the three corners are vertices,
    and the vertices run strictly counter-clockwise along the boundary.
    """
    if not isinstance(reference, Tensor) or reference.dim() < 2 or reference.shape[-2:] != (k, 2):
        shape = tuple(reference.shape) if isinstance(reference, Tensor) else type(reference).__name__
        raise ValueError(f"reference must have shape (..., {k}, 2) matching the vertices, got {shape}")
    tol = max(1e-9, 16 * torch.finfo(reference.dtype).eps)
    s = _perimeter_parameter(reference.detach().to(torch.float64), tol).reshape(-1, k)
    if torch.isnan(s).any():
        raise ValueError("reference vertices must lie on the boundary of the reference triangle T3")
    corners = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    # distance of each corner to the nearest vertex along the (periodic) boundary parameter
    gap = (s.unsqueeze(-1) - corners).abs()
    gap = torch.minimum(gap, 3 - gap).amin(-2)
    if bool((gap > tol).any()):
        raise ValueError("reference must contain the three corners of T3 as vertices")
    # strictly counter-clockwise, once around: every cyclic step advances, and the steps sum to one turn
    step = torch.remainder(torch.roll(s, -1, dims=-1) - s, 3.0)
    if bool(((step <= 0) | ((step.sum(-1) - 3).abs() > 1e-6).unsqueeze(-1)).any()):
        raise ValueError("reference vertices must run strictly counter-clockwise along T3's boundary")


def snap_reference(reference: Tensor) -> Tensor:
    """Project a valid reference (see :func:`validate_reference`) exactly onto T3's boundary, in float64."""
    tol = max(1e-9, 16 * torch.finfo(reference.dtype).eps)
    s = _perimeter_parameter(reference.detach().to(torch.float64), tol)
    edge = torch.floor(s).clamp(0, 2).long()
    frac = (s - edge).clamp(0, 1).unsqueeze(-1)
    corners = REFERENCE_TRIANGLE.to(reference.device)
    return corners[edge] + frac * (corners[(edge + 1) % 3] - corners[edge])


def _build(corner_idx: tuple[int, int, int], z: list[Tensor], k: int) -> Tensor:
    ref = torch.zeros(k, 2, dtype=torch.float64)
    corners = REFERENCE_TRIANGLE
    for e in range(3):
        a, b = corner_idx[e], corner_idx[(e + 1) % 3]
        ref[a] = corners[e]
        m = (b - a) % k - 1
        if m > 0:
            frac = torch.cumsum(torch.softmax(z[e], 0), 0)[:m]
            pts = corners[e] + frac.unsqueeze(-1) * (corners[(e + 1) % 3] - corners[e])
            idx = [(a + 1 + i) % k for i in range(m)]
            ref = ref.index_put((torch.tensor(idx),), pts)
    return ref


def _initial_logits(v: Tensor, corner_idx: tuple[int, int, int]) -> list[Tensor]:
    k = v.shape[0]
    z = []
    for e in range(3):
        a, b = corner_idx[e], corner_idx[(e + 1) % 3]
        m = (b - a) % k - 1
        idx = [(a + i) % k for i in range(m + 2)]
        seg = (v[idx[1:]] - v[idx[:-1]]).norm(dim=-1)
        z.append(torch.log(seg / seg.sum()))
    return z


def _fit_one(v: Tensor, max_iter: int) -> Tensor:
    k = v.shape[0]
    if k == 3:
        return REFERENCE_TRIANGLE.clone()
    candidates = []
    for triple in itertools.combinations(range(k), 3):
        z = _initial_logits(v, triple)
        e0 = float(reference_distortion(v, _build(triple, z, k)))
        candidates.append((e0 if np.isfinite(e0) else np.inf, triple, z))
    # ties (symmetric polygons) are broken by the vertex triple, not by rounding noise
    candidates.sort(key=lambda c: (round(c[0], 9), c[1]))
    best: tuple[float, Tensor] | None = None
    q, w = _QUAD
    area = polygon_area(v)
    for e0, triple, z in candidates[:3]:
        params = [zi.clone().requires_grad_(True) for zi in z]
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure(params=params, triple=triple, opt=opt) -> Tensor:
            opt.zero_grad()
            ref = _build(triple, params, k)
            jn = (_det_jacobian(q, v, ref) * (0.5 / area)).clamp_min(1e-6)
            loss = (w * (1 - jn) ** 2 / jn).sum() / 0.5
            loss.backward()
            return loss

        if np.isfinite(e0):
            opt.step(closure)
        with torch.no_grad():
            ref = _build(triple, [p.detach() for p in params], k)
            e = float(reference_distortion(v, ref))
            if e > e0:  # never worse than the arc-length initialisation
                ref, e = _build(triple, z, k), e0
        if np.isfinite(e) and (best is None or e < best[0] - 1e-9):
            best = (e, ref)
    if best is None:
        raise ValueError("could not place a reference polygon with a positive Jacobian for these vertices")
    ref = best[1]
    if not check_injective(v, ref):
        raise ValueError(
            "the fitted mean value map is not injective (det Df <= 0 somewhere on the dense check set); "
            "this polygon is not supported"
        )
    return ref


def fit_reference_polygon(vertices: Tensor, *, max_iter: int = 60) -> Tensor:
    r"""Choose the reference polygon :math:`T_k` for convex polygon(s) ``vertices``.

    Tries every assignment of three polygon vertices to the corners of :math:`T_3` with the other
    vertices initially placed proportionally to the polygon's arc length, refines the three best
    by L-BFGS on the distortion :math:`E` (module docstring, float64) and returns the best. The
    result is deterministic; fits are memoised per polygon within the process, and callers may
    store the returned tensor and pass it as ``reference=`` to avoid refitting.

    Args:
        vertices: counter-clockwise strictly convex polygon(s), shape ``(..., k, 2)``.
        max_iter: L-BFGS iterations per candidate.

    Returns:
        Tensor of shape ``(..., k, 2)`` (dtype and device of ``vertices``): row ``i`` is the point of
        :math:`T_k` sent to vertex ``i``. For ``k == 3`` it is the corners of :math:`T_3`, so the
        map is the affine barycentric map.

    Raises:
        ValueError: if ``vertices`` is not a valid polygon, or if the best fit is not injective.

    Example:
        >>> import torch
        >>> square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> fit_reference_polygon(square).shape
        torch.Size([4, 2])
    """
    validate_convex_polygon(vertices)
    k = vertices.shape[-2]
    flat = vertices.detach().to("cpu", torch.float64).reshape(-1, k, 2)
    out = []
    for v in flat:
        key = (k, max_iter, tuple(np.round(v.numpy().ravel(), 12).tolist()))
        ref = _CACHE.get(key)
        if ref is None:
            ref = _fit_one(v, max_iter)
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = ref
        out.append(ref)
    return torch.stack(out).reshape(vertices.shape).to(vertices.device, vertices.dtype)
