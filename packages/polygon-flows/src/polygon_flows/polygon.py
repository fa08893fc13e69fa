r"""Mixture of Dirichlet densities on a convex polygon, through the mean value map."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Categorical, Dirichlet, Distribution, MixtureSameFamily
from torch.distributions import constraints as tc

from . import constraints
from ._utils import broadcast_batch, check_tensor, gather_component
from .sampling import sample_categorical, sample_dirichlet
from .transforms import SimplexToPolygon

__all__ = ["PolygonDirichletMixture"]


class PolygonDirichletMixture(Distribution):
    r"""Dirichlet mixture on the reference triangle pushed onto a convex polygon; density w.r.t. area.

    With :math:`u \in T_3` (the last two barycentric coordinates :math:`\lambda_1, \lambda_2` of the
    2-simplex) distributed as :math:`\sum_k \pi_k \operatorname{Dir}(\lambda; \alpha_k)` and
    :math:`x = f(u)` the mean value map of :class:`~polygon_flows.SimplexToPolygon`,

    .. math::

        \log p(x) = \log \sum_k \pi_k \operatorname{Dir}\big(\lambda(f^{-1}(x)); \alpha_k\big)
            - \log\big|\det \mathrm{D}f(f^{-1}(x))\big|,

    a density with respect to the Lebesgue (area) measure in the polygon's 2-D coordinates. For a
    triangle this is :math:`\log \operatorname{Dir}(\lambda(x)) - \log(2\,\mathrm{area})` with
    :math:`\lambda(x)` the barycentric coordinates of :math:`x`. ``log_prob`` needs the inverse
    map (a batched Newton solve for :math:`k > 3`); its gradient is exact (implicit function theorem).
    Without argument validation points outside the polygon get ``-inf``.

    Args:
        vertices: counter-clockwise strictly convex polygon(s), shape ``(..., k, 2)``.
        logits: mixture logits, shape ``(..., K)``.
        concentration: Dirichlet concentrations, shape ``(..., K, 3)``.
        reference: optional precomputed :math:`T_k` (see :func:`~polygon_flows.fit_reference_polygon`),
            shape ``(..., k, 2)``; fitted (and memoised) when omitted.
        validate_args: as in :class:`torch.distributions.Distribution`.

    References:
        M. S. Floater, "Mean value coordinates", CAGD 20 (2003) 19-27;
        :class:`torch.distributions.Dirichlet` for the density on the simplex chart.

    Example:
        >>> import torch
        >>> square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> d = PolygonDirichletMixture(square, torch.zeros(2, dtype=torch.float64),
        ...                             torch.full((2, 3), 2.0, dtype=torch.float64))
        >>> x = d.sample((5,))
        >>> bool(d.support.check(x).all()), d.log_prob(x).shape
        (True, torch.Size([5]))
    """

    arg_constraints = {
        "vertices": tc.independent(tc.real, 2),
        "logits": tc.independent(tc.real, 1),
        "concentration": tc.independent(tc.positive, 2),
    }
    has_rsample = False

    def __init__(
        self,
        vertices: Tensor,
        logits: Tensor,
        concentration: Tensor,
        reference: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        check_tensor(vertices, "vertices", 2)
        check_tensor(logits, "logits", 1)
        check_tensor(concentration, "concentration", 2)
        n_comp = logits.shape[-1]
        if concentration.shape[-2:] != (n_comp, 3):
            raise ValueError(
                f"concentration must have shape (..., K, 3) with K={n_comp} from logits, got "
                f"{tuple(concentration.shape)}"
            )
        self.transform = SimplexToPolygon(vertices, reference)
        batch = broadcast_batch(
            vertices=vertices.shape[:-2], logits=logits.shape[:-1], concentration=concentration.shape[:-2]
        )
        self.vertices = vertices
        self.logits = logits.expand(batch + (n_comp,))
        self.concentration = concentration.expand(batch + (n_comp, 3))
        self._mixture = MixtureSameFamily(
            Categorical(logits=self.logits, validate_args=False),
            Dirichlet(self.concentration, validate_args=False),
            validate_args=False,
        )
        super().__init__(batch, torch.Size((2,)), validate_args=validate_args)

    @tc.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> tc.Constraint:  # type: ignore[override]
        """The closed convex polygon spanned by ``vertices`` (event dim 1)."""
        return constraints.polygon(self.vertices)

    @property
    def reference(self) -> Tensor:
        """The reference polygon :math:`T_k` in use (float64), shape ``(..., k, 2)``."""
        return self.transform.reference

    @property
    def mixture(self) -> MixtureSameFamily:
        """The Dirichlet mixture on the 2-simplex (barycentric coordinates of the reference triangle)."""
        return self._mixture

    def expand(
        self, batch_shape: torch.Size, _instance: PolygonDirichletMixture | None = None
    ) -> PolygonDirichletMixture:
        """The same density with its parameters broadcast to ``batch_shape`` (``torch.distributions`` API)."""
        batch_shape = torch.Size(batch_shape)
        n_comp = self.logits.shape[-1]
        return PolygonDirichletMixture(
            self.vertices,
            self.logits.expand(batch_shape + (n_comp,)),
            self.concentration.expand(batch_shape + (n_comp, 3)),
            reference=self.transform.reference,
            validate_args=self._validate_args,
        )

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        """Draw samples (``generator``: an optional :class:`torch.Generator`, else the global one)."""
        with torch.no_grad():
            lam = self.sample_barycentric(sample_shape, generator)
            lam = lam.clamp_min(torch.finfo(lam.dtype).eps)
            lam = lam / lam.sum(-1, keepdim=True)
            return self.transform(lam[..., 1:])

    def sample_barycentric(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        r"""Draws :math:`\lambda` of the Dirichlet mixture on the 2-simplex, shape ``sample + batch + (3,)``.

        ``self.transform(lambda[..., 1:])`` maps them onto the polygon (what :meth:`sample` does after
        keeping them a dtype epsilon inside the simplex); callers that need another margin apply it here.
        """
        with torch.no_grad():
            idx = sample_categorical(self.logits, torch.Size(sample_shape), generator)
            return sample_dirichlet(gather_component(self.concentration, idx, 1), generator)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact log density on the polygon: the Dirichlet mixture's log density of the barycentric coordinates
        :math:`\lambda = (1 - u_1 - u_2, u_1, u_2)` of :math:`u = T^{-1}(x)` minus :math:`\log|\det J_T(u)|` (change
        of variables through the mean value map :math:`T`); :math:`-\infty` outside the polygon."""
        if self._validate_args:
            self._validate_sample(value)
        inside = self.support.check(value)
        u, ladj = self.transform.inverse_and_log_abs_det_jacobian(value)
        lam = torch.stack((1 - u[..., 0] - u[..., 1], u[..., 0], u[..., 1]), dim=-1)
        lam = lam.clamp_min(torch.finfo(lam.dtype).tiny)
        lp = self._mixture.log_prob(lam) - ladj
        return torch.where(inside, lp, torch.full_like(lp, -float("inf")))
