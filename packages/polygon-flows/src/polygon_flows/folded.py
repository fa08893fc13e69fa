r"""A density folded onto a fundamental domain of a finite group of affine isometries."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import constraints as tc

__all__ = ["FoldedDistribution"]


class FoldedDistribution(Distribution):
    r"""Fold a density onto a fundamental domain :math:`F` of a finite group :math:`G` of isometries.

    With :math:`G = \{g: x \mapsto R_g x + t_g\}` acting on the base's domain and :math:`F` a
    fundamental domain (the images :math:`gF` tile the domain up to measure zero),

    .. math::

        p_F(x) = \sum_{g \in G} p_{\text{base}}(g x), \qquad x \in F,

    computed with ``logsumexp``; :math:`\int_F p_F = \int p_{\text{base}} = 1`. This is the density of
    ``fold(X)`` for :math:`X \sim` base, where ``fold`` maps every point to its image in :math:`F`
    (used by :meth:`sample`). For a periodic base (e.g. :class:`~polygon_flows.TorusVonMisesMixture`)
    give ``period`` to reduce :math:`g x` modulo it (a space group modulo lattice translations).

    Args:
        base: the distribution to fold, event shape ``(d,)``.
        rotations: :math:`R_g`, orthogonal, shape ``(G, d, d)``; the identity must be an element.
        translations: :math:`t_g`, shape ``(G, d)``.
        fold: maps points of shape ``(..., d)`` to their image in :math:`F`.
        support: constraint describing :math:`F` (checked by ``validate_args``); defaults to the base's.
        period: if given, :math:`g x` is reduced modulo ``period`` before the base density.
        validate_args: as in :class:`torch.distributions.Distribution`.

    References:
        pyro ``FoldedDistribution`` (the case :math:`G = \{\pm 1\}` on the real line).

    Example:
        >>> import torch
        >>> from polygon_flows import TorusVonMisesMixture
        >>> base = TorusVonMisesMixture(torch.rand(2, 3), torch.full((2, 3), 3.0), torch.zeros(2))
        >>> rot = torch.stack([torch.eye(3), -torch.eye(3)])
        >>> fold = lambda x: torch.where((x[..., :1] > 0.5), torch.remainder(-x, 1.0), x)
        >>> d = FoldedDistribution(base, rot, torch.zeros(2, 3), fold, period=1.0)
        >>> bool((d.sample((100,))[..., 0] <= 0.5).all())
        True
    """

    arg_constraints: dict[str, tc.Constraint] = {}
    has_rsample = False

    def __init__(
        self,
        base: Distribution,
        rotations: Tensor,
        translations: Tensor,
        fold: Callable[[Tensor], Tensor],
        support: tc.Constraint | None = None,
        period: float | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(base, Distribution):
            raise ValueError(f"base must be a torch Distribution, got {type(base).__name__}")
        if len(base.event_shape) != 1:
            raise ValueError(f"base must have event shape (d,), got {tuple(base.event_shape)}")
        d = base.event_shape[0]
        if not isinstance(rotations, Tensor) or rotations.dim() != 3 or rotations.shape[1:] != (d, d):
            raise ValueError(
                f"rotations must have shape (G, {d}, {d}), got {getattr(rotations, 'shape', None)}"
            )
        n_group = rotations.shape[0]
        if not isinstance(translations, Tensor) or translations.shape != (n_group, d):
            raise ValueError(
                f"translations must have shape ({n_group}, {d}), got {getattr(translations, 'shape', None)}"
            )
        if not callable(fold):
            raise ValueError("fold must be callable")
        if period is not None and not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        eye = torch.eye(d, dtype=rotations.dtype, device=rotations.device)
        if not torch.allclose(rotations @ rotations.transpose(-1, -2), eye.expand_as(rotations), atol=1e-6):
            raise ValueError("rotations must be orthogonal matrices (isometries)")
        t = (
            translations
            if period is None
            else torch.remainder(translations + period / 2, period) - period / 2
        )
        is_id = ((rotations - eye).abs().amax((-1, -2)) < 1e-6) & (t.abs().amax(-1) < 1e-6)
        if not bool(is_id.any()):
            raise ValueError("the group must contain the identity (R = I, t = 0)")
        self.base = base
        self.rotations = rotations
        self.translations = translations
        self.fold = fold
        self.period = period
        self._support = support if support is not None else base.support
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @tc.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> tc.Constraint:  # type: ignore[override]
        return self._support

    def expand(
        self, batch_shape: torch.Size, _instance: FoldedDistribution | None = None
    ) -> FoldedDistribution:
        return FoldedDistribution(
            self.base.expand(batch_shape),
            self.rotations,
            self.translations,
            self.fold,
            support=self._support,
            period=self.period,
            validate_args=self._validate_args,
        )

    def images(self, value: Tensor) -> Tensor:
        """All images :math:`g x`, shape ``(G,) + value.shape`` (reduced modulo ``period`` if set)."""
        rot = self.rotations.to(value.dtype)
        tr = self.translations.to(value.dtype)
        g = torch.einsum("gab,...b->g...a", rot, value)
        g = g + tr.reshape((tr.shape[0],) + (1,) * (value.dim() - 1) + (tr.shape[1],))
        if self.period is not None:
            g = torch.remainder(g, self.period)
        return g

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.logsumexp(self.base.log_prob(self.images(value)), dim=0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        with torch.no_grad():
            return self.fold(self.base.sample(torch.Size(sample_shape)))
