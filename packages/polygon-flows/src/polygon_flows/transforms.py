r"""The mean value map from the reference triangle onto a convex polygon, as a torch Transform."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints as tc
from torch.distributions.transforms import Transform

from . import constraints
from .geometry import _mvc_core, validate_convex_polygon
from .reference import REFERENCE_TRIANGLE, fit_reference_polygon, snap_reference, validate_reference

__all__ = ["SimplexToPolygon"]

_F64 = torch.float64
_ROUNDING_FLOOR = 1024.0
"""A Newton iterate whose residual is within this factor of the tolerance and stops decreasing is accepted."""


def _clamp_to_triangle(u: Tensor, margin: float) -> Tensor:
    """Project ``u`` into T3 shrunk by ``margin`` in barycentric coordinates."""
    lam = torch.stack((1 - u[..., 0] - u[..., 1], u[..., 0], u[..., 1]), dim=-1).clamp_min(margin)
    lam = lam / lam.sum(-1, keepdim=True)
    return lam[..., 1:]


def _solve2(jac: Tensor, rhs: Tensor) -> Tensor:
    det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    a = jac[..., 1, 1] * rhs[..., 0] - jac[..., 0, 1] * rhs[..., 1]
    b = -jac[..., 1, 0] * rhs[..., 0] + jac[..., 0, 0] * rhs[..., 1]
    return torch.stack((a, b), dim=-1) / det.unsqueeze(-1)


def _det2(jac: Tensor) -> Tensor:
    return jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]


class SimplexToPolygon(Transform):
    r"""Bijection :math:`f: T_3 \to P` from the reference triangle onto a convex polygon.

    :math:`T_3 = \{u: u_1, u_2 \ge 0, u_1 + u_2 \le 1\}` is the 2-simplex in the chart of its last two
    barycentric coordinates (the chart of :class:`torch.distributions.Dirichlet` densities). It is
    regarded as a :math:`k`-gon :math:`T_k` (``reference``, :math:`k-3` extra boundary points) and

    .. math::

        f(u) = \sum_{i=0}^{k-1} \phi^{T_k}_i(u)\, v_i,

    with :math:`\phi^{T_k}` the mean value coordinates of :math:`u` in :math:`T_k` and :math:`v_i`
    the vertices of :math:`P`. For ``k == 3`` it is the affine barycentric map. The log-determinant
    uses the analytic gradient of the coordinates; the inverse is a damped Newton solve in float64
    started from the reverse mean value map :math:`\phi^{P}(x)\, T_k`, with two safeguards for points
    that do not converge (a restart from the centroid, then from the nearest image of a dense grid).

    Args:
        vertices: counter-clockwise strictly convex polygon(s), shape ``(..., k, 2)``.
        reference: :math:`T_k`, shape ``(..., k, 2)``; fitted by
            :func:`~polygon_flows.fit_reference_polygon` when omitted (ignored in gradients).
        max_iter: Newton iterations per stage.
        cache_size: as in :class:`torch.distributions.transforms.Transform`.

    References:
        M. S. Floater, "Mean value coordinates", CAGD 20 (2003) 19-27.

    Example:
        >>> import torch
        >>> square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]], dtype=torch.float64)
        >>> f = SimplexToPolygon(square)
        >>> u = torch.tensor([[0.2, 0.3]], dtype=torch.float64)
        >>> bool(torch.allclose(f.inv(f(u)), u, atol=1e-12))
        True
    """

    domain = constraints.reference_triangle
    bijective = True

    def __init__(
        self, vertices: Tensor, reference: Tensor | None = None, *, max_iter: int = 40, cache_size: int = 0
    ) -> None:
        validate_convex_polygon(vertices)
        k = vertices.shape[-2]
        if reference is None:
            reference = (
                REFERENCE_TRIANGLE.to(vertices.device, vertices.dtype)
                if k == 3
                else fit_reference_polygon(vertices)
            )
        validate_reference(reference, k)
        try:
            torch.broadcast_shapes(reference.shape[:-2], vertices.shape[:-2])
        except RuntimeError as err:
            raise ValueError(
                f"reference batch shape {tuple(reference.shape[:-2])} does not broadcast with the vertices' "
                f"{tuple(vertices.shape[:-2])}"
            ) from err
        if max_iter < 1:
            raise ValueError(f"max_iter must be positive, got {max_iter}")
        self.vertices = vertices
        self.reference = snap_reference(reference)
        """The reference polygon T_k (float64, exactly on the boundary of T3)."""
        self.max_iter = max_iter
        self.last_newton_iterations: Tensor | None = None
        """Newton iterations per point of the latest inverse (all stages), for diagnostics."""
        super().__init__(cache_size=cache_size)

    @property
    def k(self) -> int:
        """Number of vertices of the polygon."""
        return self.vertices.shape[-2]

    @tc.dependent_property(is_discrete=False, event_dim=1)
    def codomain(self) -> tc.Constraint:  # type: ignore[override]
        """The closed convex polygon spanned by ``vertices`` (event dim 1)."""
        return constraints.polygon(self.vertices)

    def with_cache(self, cache_size: int = 1) -> SimplexToPolygon:
        """This map with another cache size (``torch.distributions.Transform`` API); itself when unchanged."""
        if self._cache_size == cache_size:
            return self
        return SimplexToPolygon(self.vertices, self.reference, max_iter=self.max_iter, cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SimplexToPolygon)
            and other.vertices.shape == self.vertices.shape
            and bool(torch.equal(other.vertices, self.vertices))
            and bool(torch.equal(other.reference, self.reference))
        )

    def __hash__(self) -> int:
        return id(self)

    # ------------------------------------------------------------------ forward
    def _affine(self, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """``(M, c)`` with ``f(u) = M u + c`` (k == 3 only)."""
        v = self.vertices if dtype is None else self.vertices.to(dtype)
        r = self.reference.to(v.device, v.dtype)
        a_r = torch.stack((r[..., 1, :] - r[..., 0, :], r[..., 2, :] - r[..., 0, :]), dim=-1)
        b_v = torch.stack((v[..., 1, :] - v[..., 0, :], v[..., 2, :] - v[..., 0, :]), dim=-1)
        m = b_v @ torch.linalg.inv(a_r)
        c = v[..., 0, :] - (m @ r[..., 0, :].unsqueeze(-1)).squeeze(-1)
        return m, c

    def _call(self, u: Tensor) -> Tensor:
        if self.k == 3:
            m, c = self._affine()
            return (m @ u.unsqueeze(-1)).squeeze(-1) + c
        lam = _mvc_core(u, self.reference.to(u.device, u.dtype), jacobian=False)[0]
        return torch.einsum("...k,...kd->...d", lam, self.vertices)

    def forward_and_jacobian(self, u: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(f(u), Df(u))`` with the Jacobian of shape ``(..., 2, 2)`` (``[a, b] = d f_a / d u_b``)."""
        if self.k == 3:
            m, c = self._affine()
            x = (m @ u.unsqueeze(-1)).squeeze(-1) + c
            return x, m.expand(x.shape[:-1] + (2, 2))
        lam, g = _mvc_core(u, self.reference.to(u.device, u.dtype), jacobian=True)
        assert g is not None
        x = torch.einsum("...k,...kd->...d", lam, self.vertices)
        jac = torch.einsum("...ka,...kb->...ab", self.vertices, g)
        return x, jac

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\log|\det \mathrm{D}f(x)|` for ``x`` in :math:`T_3` (``y = f(x)`` unused)."""
        if self.k == 3:
            m, _ = self._affine()
            out = torch.log(_det2(m).abs())
            return out.expand(torch.broadcast_shapes(out.shape, x.shape[:-1]))
        margin = 4 * torch.finfo(x.dtype).eps
        _, jac = self.forward_and_jacobian(_clamp_to_triangle(x, margin))
        return torch.log(_det2(jac).abs())

    # ------------------------------------------------------------------ inverse
    def _inverse(self, x: Tensor) -> Tensor:
        return self.inverse_and_log_abs_det_jacobian(x)[0]

    def inverse_and_log_abs_det_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Fused inverse: ``(u, log|det Df(u)|)`` with ``u = f^{-1}(x)``.

        The solve runs without autograd; when gradients are needed, one Newton correction
        :math:`u = u^* - \mathrm{D}f(u^*)^{-1}(f(u^*) - x)` is replayed with the graph, which gives the
        exact first derivatives with respect to ``x`` and ``vertices`` (implicit function theorem).
        """
        if self.k == 3:
            m, c = self._affine()
            u = torch.linalg.solve(m, (x - c).unsqueeze(-1)).squeeze(-1)
            self.last_newton_iterations = torch.zeros(u.shape[:-1], dtype=torch.long)
            ladj = torch.log(_det2(m).abs())
            return u, ladj.expand(torch.broadcast_shapes(ladj.shape, u.shape[:-1]))
        with torch.no_grad():
            u_star, logdet = self._newton(x)
        u_star = u_star.to(x.dtype)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.vertices.requires_grad)
        if not needs_grad:
            return u_star, logdet.to(x.dtype)
        fx, jac = self.forward_and_jacobian(u_star)
        u = u_star - _solve2(jac.detach(), fx - x)
        _, jac = self.forward_and_jacobian(u)
        return u, torch.log(_det2(jac).abs())

    def _newton(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.k
        batch = torch.broadcast_shapes(x.shape[:-1], self.vertices.shape[:-2])
        vert = self.vertices.detach().to(_F64)
        ref = self.reference.to(vert.device)
        shared = vert.dim() == 2 and ref.dim() == 2
        if not shared:
            vert = vert.expand(batch + (k, 2)).reshape(-1, k, 2)
            ref = ref.expand(batch + (k, 2)).reshape(-1, k, 2)
        xs = x.detach().to(_F64).expand(batch + (2,)).reshape(-1, 2)
        n = xs.shape[0]
        scale = float((vert - vert.mean(-2, keepdim=True)).norm(dim=-1).max()) if n else 1.0
        tol = 64 * torch.finfo(_F64).eps * scale
        margin = 1e-14

        def sub(t: Tensor, idx: Tensor) -> Tensor:
            return t if shared else t[idx]

        # initial guess: the reverse mean value map x -> phi^P(x) T_k
        lam_p = _mvc_core(xs, vert, jacobian=False)[0]
        # (a shared reference is (k, 2); per-point references are (n, k, 2): no sum over the batch)
        guess = lam_p @ ref if shared else torch.einsum("nk,nkd->nd", lam_p, ref)
        u = _clamp_to_triangle(guess, margin) if n else xs.clone()
        iters = torch.zeros(n, dtype=torch.long)
        logdet = torch.full((n,), float("nan"), dtype=_F64)
        todo = torch.arange(n)
        todo = self._newton_stage(xs, u, vert, ref, sub, todo, iters, logdet, tol, margin)
        if todo.numel():  # safeguard 1: restart from the centroid
            u[todo] = 1.0 / 3.0
            todo = self._newton_stage(xs, u, vert, ref, sub, todo, iters, logdet, tol, margin)
        if todo.numel():  # safeguard 2: restart from the nearest image of a dense grid
            g = torch.linspace(0, 1, 65, dtype=_F64)
            gu = torch.cartesian_prod(g, g)
            gu = _clamp_to_triangle(gu[gu.sum(-1) <= 1], 1e-6)
            vt = sub(vert, todo)
            rt = sub(ref, todo)
            lam_g = _mvc_core(
                gu.unsqueeze(-2) if not shared else gu, rt.unsqueeze(0) if not shared else rt, False
            )[0]
            img = torch.einsum("...k,...kd->...d", lam_g, vt.unsqueeze(0) if not shared else vt)
            if shared:
                nearest = torch.cdist(xs[todo], img).argmin(-1)
            else:
                nearest = (img - xs[todo].unsqueeze(0)).norm(dim=-1).argmin(0)
            u[todo] = gu[nearest]
            todo = self._newton_stage(xs, u, vert, ref, sub, todo, iters, logdet, 1e3 * tol, margin)
        if todo.numel():  # accept the best iterate; record its Jacobian
            lam, gr = _mvc_core(u[todo], sub(ref, todo), jacobian=True)
            assert gr is not None
            jac = torch.einsum("...ka,...kb->...ab", sub(vert, todo), gr)
            logdet[todo] = torch.log(_det2(jac).abs())
        self.last_newton_iterations = iters.reshape(batch)
        return u.reshape(batch + (2,)), logdet.reshape(batch)

    def _newton_stage(self, xs, u, vert, ref, sub, todo, iters, logdet, tol, margin) -> Tensor:  # noqa: ANN001
        """Damped Newton on the points ``todo`` (updated in place); returns the unconverged ones.

        The line search is deferred: a full step is taken, and only when the residual at the next
        iterate has not decreased is the step halved from the previous iterate (so a converging
        point costs one mean-value evaluation per iteration, not two). A point whose residual stops
        decreasing once it is within ``_ROUNDING_FLOOR`` times the tolerance (rounding level) is accepted
        at its previous iterate instead of backtracking 30 times and restarting.
        """
        active = todo
        n = u.shape[0]
        prev_u = u.clone()
        prev_res = torch.full((n,), float("inf"), dtype=u.dtype)
        step = torch.zeros_like(u)
        alpha = torch.ones(n, dtype=u.dtype)
        for _ in range(self.max_iter + 31):
            if active.numel() == 0:
                break
            ua, xa, va, ra = u[active], xs[active], sub(vert, active), sub(ref, active)
            lam, gr = _mvc_core(ua, ra, jacobian=True)
            assert gr is not None
            res_vec = torch.einsum("...k,...kd->...d", lam, va) - xa
            jac = torch.einsum("...ka,...kb->...ab", va, gr)
            res = res_vec.norm(dim=-1)
            done = res <= tol
            if done.any():
                logdet[active[done]] = torch.log(_det2(jac[done]).abs())
            floor = ~done & ~(res < prev_res[active]) & (prev_res[active] <= _ROUNDING_FLOOR * tol)
            if floor.any():  # the residual stopped decreasing at rounding level: keep the previous iterate
                f_idx = active[floor]
                u[f_idx] = prev_u[f_idx]
                _, gr_f = _mvc_core(prev_u[f_idx], sub(ref, f_idx), jacobian=True)
                assert gr_f is not None
                jac_f = torch.einsum("...ka,...kb->...ab", sub(vert, f_idx), gr_f)
                logdet[f_idx] = torch.log(_det2(jac_f).abs())
                done = done | floor
            grew = ~done & ~(res < prev_res[active])
            if grew.any():  # backtrack from the previous iterate with half the step
                g = active[grew]
                alpha[g] *= 0.5
                u[g] = _clamp_to_triangle(prev_u[g] - alpha[g].unsqueeze(-1) * step[g], margin)
                stalled = alpha[g] < 2.0**-30
                if stalled.any():  # no descent possible: restore the best iterate for the next safeguard
                    u[g[stalled]] = prev_u[g[stalled]]
            go = ~done & ~grew
            active_go = active[go]
            under = iters[active_go] < self.max_iter  # points out of iterations leave; the others step
            if bool(under.any()):
                sel = active_go[under]
                keep = go.nonzero().squeeze(-1)[under]
                iters[sel] += 1
                st = torch.nan_to_num(_solve2(jac[keep], res_vec[keep]), nan=0.0, posinf=0.0, neginf=0.0)
                prev_u[sel], prev_res[sel], step[sel], alpha[sel] = ua[keep], res[keep], st, 1.0
                u[sel] = _clamp_to_triangle(ua[keep] - st, margin)
                go_mask = torch.zeros_like(go)
                go_mask[keep] = True
            else:
                go_mask = torch.zeros_like(go)
            alive = go_mask.clone()
            if grew.any():
                alive[grew.nonzero().squeeze(-1)[~(alpha[active[grew]] < 2.0**-30)]] = True
            active = active[alive]
        unconverged = todo[torch.isnan(logdet[todo])]
        return unconverged
