r"""Samplers that take an explicit :class:`torch.Generator` (``torch.distributions`` samplers do not).

Every function draws from the global generator when ``generator`` is ``None``. They are used by the
``sample`` methods of the distributions of this package and by callers that need reproducible streams
independent of the global seed.

References:
    E. J. Gumbel, *Statistical theory of extreme values* (1954) (the Gumbel-max trick);
    D. J. Best and N. I. Fisher, "Efficient simulation of the von Mises distribution",
    Applied Statistics 28 (1979) 152-157.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sample_beta", "sample_categorical", "sample_dirichlet", "sample_von_mises"]


def _uniform(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniforms in the open interval (0, 1), dtype/device of ``like``."""
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    return u.clamp_min(torch.finfo(like.dtype).tiny)


def sample_categorical(
    logits: Tensor, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
) -> Tensor:
    r"""Indices ``sample_shape + logits.shape[:-1]`` drawn from ``softmax(logits)`` (Gumbel-max trick).

    :math:`\arg\max_k (\ell_k + G_k)` with :math:`G_k = -\log(-\log U_k)` i.i.d. Gumbel is distributed as
    the categorical with logits :math:`\ell`; entries of ``-inf`` are never drawn.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_categorical(torch.tensor([0.0, -float("inf"), 0.0]), (1000,), g).bincount(minlength=3)[1]
        tensor(0)
    """
    d = logits.detach()
    if not d.is_floating_point() or d.dim() == 0 or d.shape[-1] == 0:
        raise ValueError(f"logits must be a floating point tensor (..., k) with k >= 1, got {d.dtype} "
                         f"{tuple(d.shape)}")
    if bool(torch.isnan(d).any()) or bool((d == -math.inf).all(dim=-1).any()):
        raise ValueError("logits must not be NaN, and every row needs a category with finite logit")
    shape = torch.Size(sample_shape) + logits.shape
    gumbel = -torch.log(-torch.log(_uniform(shape, logits, generator)))
    return torch.argmax(d + gumbel, dim=-1)


def sample_dirichlet(concentration: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One Dirichlet draw per row of ``concentration`` (shape ``(..., n)``), as normalised Gamma variates
    (``ValueError`` unless every concentration is positive and finite)."""
    c = concentration.detach()
    if not bool((torch.isfinite(c) & (c > 0)).all()):
        raise ValueError("Dirichlet concentrations must be positive and finite")
    return torch._sample_dirichlet(c, generator=generator)


def sample_beta(concentration1: Tensor, concentration0: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""One :math:`\operatorname{Beta}(\alpha, \beta)` draw per element (the first coordinate of a Dirichlet)."""
    a, b = torch.broadcast_tensors(concentration1.detach(), concentration0.detach())
    return sample_dirichlet(torch.stack((a, b), dim=-1), generator)[..., 0]


def sample_von_mises(concentration: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Angles in :math:`(-\pi, \pi]` from von Mises distributions with mode 0, one per element.

    Best and Fisher's (1979) wrapped-Cauchy envelope rejection, vectorised over the pending draws
    (acceptance rate above 0.65 for every :math:`\kappa`). The envelope parameter is evaluated in a form
    without cancellation, :math:`\rho = 2\kappa\tau / ((s + 1)(\tau + \sqrt{2\tau}))` with
    :math:`s = \sqrt{1 + 4\kappa^2}`, :math:`\tau = 1 + s`; concentrations below ``1e-12`` are treated as
    ``1e-12`` (uniform to that precision) and above ``1e12`` as ``1e12`` (a point mass to that precision).
    Raises ``ValueError`` for a concentration that is NaN, infinite or negative (the rejection loop would never
    end).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> th = sample_von_mises(torch.full((20000,), 50.0, dtype=torch.float64), g)
        >>> abs(float(th.var()) - 1 / 50) < 2e-3
        True
    """
    bad = ~(torch.isfinite(concentration) & (concentration >= 0))
    if bool(bad.any()):
        raise ValueError(f"von Mises concentrations must be finite and >= 0; got {concentration[bad][:5].tolist()}")
    kappa = concentration.detach().clamp(1e-12, 1e12)
    flat = kappa.reshape(-1)
    s = torch.sqrt(1 + 4 * flat * flat)
    tau = 1 + s
    rho = 2 * flat * tau / ((s + 1) * (tau + torch.sqrt(2 * tau)))
    r = (1 + rho * rho) / (2 * rho)
    out = torch.empty_like(flat)
    todo = torch.arange(flat.numel(), device=flat.device)
    while todo.numel():
        u = _uniform(torch.Size((3, todo.numel())), flat, generator)
        z = torch.cos(math.pi * u[0])
        rt, kt = r[todo], flat[todo]
        f = (1 + rt * z) / (rt + z)
        c = kt * (rt - f)
        accept = (c * (2 - c) - u[1] > 0) | (torch.log(c / u[1]) + 1 - c >= 0)
        theta = torch.sign(u[2] - 0.5) * torch.acos(f.clamp(-1.0, 1.0))
        out[todo[accept]] = theta[accept]
        todo = todo[~accept]
    return out.reshape(kappa.shape)
