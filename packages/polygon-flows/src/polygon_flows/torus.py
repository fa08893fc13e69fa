r"""Mixture of products of von Mises densities on the unit torus :math:`[0, 1)^d`."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, VonMises
from torch.distributions import constraints as tc

from ._utils import broadcast_batch, check_tensor

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
        if self._validate_args:
            self._validate_sample(value)
        kappa = self.concentration
        cos = torch.cos(2 * math.pi * (value.unsqueeze(-2) - self.loc))
        comp = (kappa * (cos - 1) - torch.log(torch.special.i0e(kappa))).sum(-1)
        return torch.logsumexp(comp + torch.log_softmax(self.logits, -1), dim=-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            idx = self.mixture_distribution.sample(shape)  # shape + batch
            n_comp, d = self.loc.shape[-2:]
            gather_idx = idx[..., None, None].expand(shape + self.batch_shape + (1, d))
            loc = torch.gather(self.loc.expand(shape + self.loc.shape), -2, gather_idx).squeeze(-2)
            kappa = torch.gather(self.concentration.expand(shape + self.loc.shape), -2, gather_idx).squeeze(
                -2
            )
            theta = VonMises(torch.zeros_like(loc), kappa, validate_args=False).sample()
            x = torch.remainder(loc + theta / (2 * math.pi), 1.0)
            return torch.where(x >= 1, torch.zeros_like(x), x)
