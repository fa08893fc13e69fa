r"""Capped positive parameterisations (smooth, differentiable maximum) used for concentrations.

A raw network output :math:`a` is mapped to :math:`c = \operatorname{softplus}(a) > 0` and then
smoothly capped at :math:`M` by a soft minimum written with a negated softplus,

.. math::

    \operatorname{cap}_M(c) = M - \operatorname{softplus}(M - c) = c - \operatorname{softplus}(c - M),

which is :math:`\approx c` for :math:`c \ll M`, :math:`< M` always and :math:`\to M` as
:math:`c \to \infty`. The second (equal) form is the one evaluated: it has no cancellation for small
:math:`c`. Very concentrated Betas, Dirichlets or von Mises are the usual source of non-finite
log-likelihood gradients; the caps (Beta 5000, Dirichlet 2500, von Mises 500) bound them.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import softplus

__all__ = [
    "BETA_CONCENTRATION_MAX",
    "DIRICHLET_CONCENTRATION_MAX",
    "VON_MISES_CONCENTRATION_MAX",
    "capped_beta_concentration",
    "capped_dirichlet_concentration",
    "capped_positive",
    "capped_von_mises_concentration",
]

BETA_CONCENTRATION_MAX = 5000.0
"""Cap of Beta concentrations (alpha and beta)."""
DIRICHLET_CONCENTRATION_MAX = 2500.0
"""Cap of Dirichlet concentrations."""
VON_MISES_CONCENTRATION_MAX = 500.0
"""Cap of von Mises concentrations (kappa)."""


def capped_positive(raw: Tensor, maximum: float) -> Tensor:
    r"""Map unconstrained ``raw`` into :math:`(0, M)` by :math:`c - \operatorname{softplus}(c - M)`.

    Here :math:`c = \operatorname{softplus}(\text{raw})`; see the module docstring.

    Args:
        raw: unconstrained tensor, any shape.
        maximum: the cap :math:`M > 0`.

    Returns:
        Tensor of the same shape, strictly positive (floored at the dtype's smallest normal number)
        and below ``maximum``.

    Example:
        >>> import torch
        >>> out = capped_positive(torch.tensor([-3.0, 0.0, 1e4]), 100.0)
        >>> [round(v, 4) for v in out.tolist()]
        [0.0486, 0.6931, 100.0]
    """
    if not maximum > 0:
        raise ValueError(f"maximum must be positive, got {maximum}")
    if not isinstance(raw, Tensor) or not raw.is_floating_point():
        raise ValueError("raw must be a floating point torch.Tensor")
    c = softplus(raw)
    return (c - softplus(c - maximum)).clamp_min(torch.finfo(raw.dtype).tiny)


def capped_beta_concentration(raw: Tensor) -> Tensor:
    """Beta concentration (alpha or beta) capped at :data:`BETA_CONCENTRATION_MAX`."""
    return capped_positive(raw, BETA_CONCENTRATION_MAX)


def capped_dirichlet_concentration(raw: Tensor) -> Tensor:
    """Dirichlet concentration capped at :data:`DIRICHLET_CONCENTRATION_MAX` (see :func:`capped_positive`)."""
    return capped_positive(raw, DIRICHLET_CONCENTRATION_MAX)


def capped_von_mises_concentration(raw: Tensor) -> Tensor:
    """Von Mises kappa capped at :data:`VON_MISES_CONCENTRATION_MAX` (see :func:`capped_positive`)."""
    return capped_positive(raw, VON_MISES_CONCENTRATION_MAX)
