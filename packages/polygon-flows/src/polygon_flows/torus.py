r"""Mixture of products of von Mises densities on the unit torus :math:`[0, 1)^d`."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution
from torch.distributions import constraints as tc

from ._utils import broadcast_batch, check_tensor, gather_component
from .sampling import sample_categorical, sample_von_mises

__all__ = ["TorusVonMisesMixture"]


class TorusVonMisesMixture(Distribution):
    r"""Mixture of products of von Mises on the unit torus :math:`[0,1)^d` (``d = 3`` for unit cells).

    Density with respect to volume in fractional coordinates:

    .. math::

        p(x) = \sum_k \pi_k \prod_{j=1}^{d}
            \frac{\exp\big(\kappa_{kj} \cos 2\pi (x_j - \mu_{kj})\big)}{I_0(\kappa_{kj})},

    (the von Mises density of :math:`\theta = 2\pi x` times :math:`d\theta/dx = 2\pi`), evaluated as
    :math:`\kappa(\cos - 1) - \log \operatorname{i0e}(\kappa)` for stability at large :math:`\kappa`.
    Like :class:`torch.distributions.VonMises`, the support is all of :math:`\mathbb{R}^d` with points
    interpreted modulo 1 (the density is periodic); samples are returned in :math:`[0, 1)^d`.

    Args:
        loc: modes :math:`\mu`, shape ``(..., K, d)``.
        concentration: :math:`\kappa > 0`, shape ``(..., K, d)``.
        logits: mixture logits, shape ``(..., K)``.
        validate_args: as in :class:`torch.distributions.Distribution`.

    References:
        K. V. Mardia and P. E. Jupp, *Directional Statistics* (2000), section 3.5.4.

    Example:
        >>> import torch
        >>> d = TorusVonMisesMixture(torch.rand(2, 3), torch.full((2, 3), 4.0), torch.zeros(2))
        >>> x = d.sample((10,))
        >>> bool(((x >= 0) & (x < 1)).all()), d.log_prob(x).shape
        (True, torch.Size([10]))
    """

    arg_constraints = {
        "loc": tc.independent(tc.real, 2),
        "concentration": tc.independent(tc.positive, 2),
        "logits": tc.independent(tc.real, 1),
    }
    support = tc.independent(tc.real, 1)
    has_rsample = False

    def __init__(
        self, loc: Tensor, concentration: Tensor, logits: Tensor, validate_args: bool | None = None
    ) -> None:
        check_tensor(loc, "loc", 2)
        check_tensor(concentration, "concentration", 2)
        check_tensor(logits, "logits", 1)
        n_comp = logits.shape[-1]
        d = loc.shape[-1]
        if loc.shape[-2] != n_comp or concentration.shape[-2:] != (n_comp, d):
            raise ValueError(
                f"loc and concentration must have shape (..., K, d) with K={n_comp} from logits, got "
                f"{tuple(loc.shape)} and {tuple(concentration.shape)}"
            )
        batch = broadcast_batch(
            loc=loc.shape[:-2], concentration=concentration.shape[:-2], logits=logits.shape[:-1]
        )
        self.loc = loc.expand(batch + (n_comp, d))
        self.concentration = concentration.expand(batch + (n_comp, d))
        self.logits = logits.expand(batch + (n_comp,))
        super().__init__(batch, torch.Size((d,)), validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size, _instance: TorusVonMisesMixture | None = None
    ) -> TorusVonMisesMixture:
        """The same density with its parameters broadcast to ``batch_shape`` (``torch.distributions`` API)."""
        batch_shape = torch.Size(batch_shape)
        n_comp, d = self.loc.shape[-2:]
        return TorusVonMisesMixture(
            self.loc.expand(batch_shape + (n_comp, d)),
            self.concentration.expand(batch_shape + (n_comp, d)),
            self.logits.expand(batch_shape + (n_comp,)),
            validate_args=self._validate_args,
        )

    @property
    def mixture_distribution(self) -> Categorical:
        """The categorical distribution over components."""
        return Categorical(logits=self.logits, validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Log density at ``value`` (``(..., d)``, broadcast against the batch shape).

        The cosine is expanded, :math:`\kappa \cos 2\pi(x - \mu) = (\kappa\cos 2\pi\mu)\cos 2\pi x +
        (\kappa\sin 2\pi\mu)\sin 2\pi x`, so the trigonometric functions of ``value`` are evaluated once for
        all components and the components cost one contraction (the absolute rounding error is of order
        :math:`\kappa` times the dtype epsilon).
        """
        if self._validate_args:
            self._validate_sample(value)
        kappa = self.concentration
        angle = 2 * math.pi * value
        # the constant of each component rides along as a last column: comp = [cos, sin, 1] . [A, B, -const]
        trig = torch.cat((torch.cos(angle), torch.sin(angle), torch.ones_like(angle[..., :1])), dim=-1)
        mu = 2 * math.pi * self.loc
        const = (kappa + torch.log(torch.special.i0e(kappa))).sum(-1) - torch.log_softmax(self.logits, -1)
        coef = torch.cat((kappa * torch.cos(mu), kappa * torch.sin(mu), -const.unsqueeze(-1)), dim=-1)
        batch = self.batch_shape
        full = torch.broadcast_shapes(trig.shape[:-1], batch)
        n_batch, (n_comp, width) = math.prod(batch), coef.shape[-2:]
        dtype = torch.promote_types(trig.dtype, coef.dtype)
        # one batched matrix product: (batch, points, 2d + 1) @ (batch, 2d + 1, K) -> (batch, points, K)
        t = trig.to(dtype).expand(full + (width,)).reshape(-1, n_batch, width).transpose(0, 1)
        comp = torch.bmm(t, coef.to(dtype).reshape(n_batch, n_comp, width).transpose(1, 2))
        return torch.logsumexp(comp, dim=-1).transpose(0, 1).reshape(full)

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        """Draw samples in :math:`[0, 1)^d` (``generator``: an optional :class:`torch.Generator`)."""
        with torch.no_grad():
            idx = sample_categorical(self.logits, torch.Size(sample_shape), generator)
            loc = gather_component(self.loc, idx, 1)
            theta = sample_von_mises(gather_component(self.concentration, idx, 1), generator)
            x = torch.remainder(loc + theta / (2 * math.pi), 1.0)
            return torch.where(x >= 1, torch.zeros_like(x), x)
