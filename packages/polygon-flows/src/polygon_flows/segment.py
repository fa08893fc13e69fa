r"""Mixture of Beta densities on a segment of :math:`\mathbb{R}^d`."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Beta, Categorical, Distribution, MixtureSameFamily
from torch.distributions import constraints as tc

from . import constraints
from ._utils import broadcast_batch, check_tensor, gather_component
from .sampling import sample_beta, sample_categorical

__all__ = ["SegmentBetaMixture"]


class SegmentBetaMixture(Distribution):
    r"""Mixture of Betas on a segment :math:`[s, e] \subset \mathbb{R}^d`; density w.r.t. arc length.

    A point is :math:`x = s + t\,(e - s)` with
    :math:`t \sim \sum_k \pi_k \operatorname{Beta}(\alpha_k, \beta_k)`, so

    .. math::

        p(x) = \frac{1}{\lVert e - s \rVert} \sum_k \pi_k
            \frac{t^{\alpha_k - 1}(1-t)^{\beta_k - 1}}{B(\alpha_k, \beta_k)},\qquad
        \pi = \operatorname{softmax}(\text{logits}).

    Samples are kept a dtype epsilon inside the end points (as pyro's ``AffineBeta``) so that
    ``log_prob`` of a sample is finite. Without argument validation, points off the segment get
    ``-inf`` when their coordinate :math:`t` is outside :math:`[0, 1]` (the distance to the line is
    only checked by ``validate_args``).

    Args:
        start: segment start, shape ``(..., d)``.
        end: segment end, shape ``(..., d)``.
        logits: mixture logits, shape ``(..., K)``.
        concentration1: :math:`\alpha`, shape ``(..., K)`` (mass near ``end``).
        concentration0: :math:`\beta`, shape ``(..., K)`` (mass near ``start``).
        validate_args: as in :class:`torch.distributions.Distribution`.

    References:
        pyro ``AffineBeta``; N. L. Johnson, S. Kotz, N. Balakrishnan, *Continuous Univariate
        Distributions* vol. 2 (1995), ch. 25 (Beta).

    Example:
        >>> import torch
        >>> d = SegmentBetaMixture(torch.zeros(3), torch.ones(3), torch.zeros(2),
        ...                        torch.tensor([2.0, 5.0]), torch.tensor([2.0, 1.0]))
        >>> d.sample((4,)).shape
        torch.Size([4, 3])
    """

    arg_constraints = {
        "start": tc.independent(tc.real, 1),
        "end": tc.independent(tc.real, 1),
        "logits": tc.independent(tc.real, 1),
        "concentration1": tc.independent(tc.positive, 1),
        "concentration0": tc.independent(tc.positive, 1),
    }
    has_rsample = False

    def __init__(
        self,
        start: Tensor,
        end: Tensor,
        logits: Tensor,
        concentration1: Tensor,
        concentration0: Tensor,
        validate_args: bool | None = None,
    ) -> None:
        for name, val in (("start", start), ("end", end), ("logits", logits)):
            check_tensor(val, name, 1)
        check_tensor(concentration1, "concentration1", 1)
        check_tensor(concentration0, "concentration0", 1)
        if start.shape[-1] != end.shape[-1]:
            raise ValueError(
                f"start and end must have the same last dimension, got {start.shape[-1]} and {end.shape[-1]}"
            )
        n_comp = logits.shape[-1]
        if concentration1.shape[-1] != n_comp or concentration0.shape[-1] != n_comp:
            raise ValueError(
                f"concentration1/concentration0 must have last dimension K={n_comp} like logits, got "
                f"{tuple(concentration1.shape)} and {tuple(concentration0.shape)}"
            )
        length2 = ((end - start) ** 2).sum(-1)
        scale = torch.maximum(start.detach().abs().amax(-1), end.detach().abs().amax(-1)).clamp_min(1.0)
        if (length2.detach() <= (64 * torch.finfo(start.dtype).eps * scale) ** 2).any():
            raise ValueError("degenerate segment: start and end coincide")
        batch = broadcast_batch(
            start=start.shape[:-1],
            end=end.shape[:-1],
            logits=logits.shape[:-1],
            concentration1=concentration1.shape[:-1],
            concentration0=concentration0.shape[:-1],
        )
        d = start.shape[-1]
        self.start = start.expand(batch + (d,))
        self.end = end.expand(batch + (d,))
        self.logits = logits.expand(batch + (n_comp,))
        self.concentration1 = concentration1.expand(batch + (n_comp,))
        self.concentration0 = concentration0.expand(batch + (n_comp,))
        self._mixture = MixtureSameFamily(
            Categorical(logits=self.logits, validate_args=False),
            Beta(self.concentration1, self.concentration0, validate_args=False),
            validate_args=False,
        )
        super().__init__(batch, torch.Size((d,)), validate_args=validate_args)

    @tc.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> tc.Constraint:  # type: ignore[override]
        """The closed segment from ``start`` to ``end`` (event dim 1)."""
        return constraints.segment(self.start, self.end)

    @property
    def length(self) -> Tensor:
        """Length of the segment, shape ``batch_shape``."""
        return (self.end - self.start).norm(dim=-1)

    @property
    def mean(self) -> Tensor:
        r"""The mean point :math:`s + \bar t (e - s)`, with :math:`\bar t = \sum_k w_k \alpha_k / (\alpha_k + \beta_k)`
        the mixture's mean parameter."""
        w = torch.softmax(self.logits, -1)
        t = (w * self.concentration1 / (self.concentration1 + self.concentration0)).sum(-1)
        return self.start + t.unsqueeze(-1) * (self.end - self.start)

    def expand(
        self, batch_shape: torch.Size, _instance: SegmentBetaMixture | None = None
    ) -> SegmentBetaMixture:
        """The same density with its parameters broadcast to ``batch_shape`` (``torch.distributions`` API)."""
        batch_shape = torch.Size(batch_shape)
        d, n_comp = self.event_shape[0], self.logits.shape[-1]
        return SegmentBetaMixture(
            self.start.expand(batch_shape + (d,)),
            self.end.expand(batch_shape + (d,)),
            self.logits.expand(batch_shape + (n_comp,)),
            self.concentration1.expand(batch_shape + (n_comp,)),
            self.concentration0.expand(batch_shape + (n_comp,)),
            validate_args=self._validate_args,
        )

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        """Draw samples (``generator``: an optional :class:`torch.Generator`, else the global one)."""
        with torch.no_grad():
            idx = sample_categorical(self.logits, torch.Size(sample_shape), generator)
            t = sample_beta(
                gather_component(self.concentration1, idx, 0), gather_component(self.concentration0, idx, 0), generator
            )
            eps = torch.finfo(t.dtype).eps
            t = t.clamp(eps, 1 - eps)
            return self.start + t.unsqueeze(-1) * (self.end - self.start)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact log density with respect to length on the segment: the Beta mixture's log density of
        :math:`t = \langle x - s, e - s\rangle / |e - s|^2` minus :math:`\log |e - s|`; :math:`-\infty` for
        :math:`t` outside [0, 1]."""
        if self._validate_args:
            self._validate_sample(value)
        e = self.end - self.start
        length2 = (e * e).sum(-1)
        t = ((value - self.start) * e).sum(-1) / length2
        inside = (t >= 0) & (t <= 1)
        tiny = torch.finfo(t.dtype).tiny
        lp = self._mixture.log_prob(t.clamp(tiny, 1 - torch.finfo(t.dtype).eps / 2)) - 0.5 * torch.log(
            length2
        )
        return torch.where(inside, lp, torch.full_like(lp, -float("inf")))
