r"""A density folded onto a fundamental domain of a finite group of affine isometries."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import constraints as tc

__all__ = ["FoldedDistribution"]


class FoldedDistribution(Distribution):
    r"""Fold a density onto a fundamental domain :math:`F` of a finite group :math:`G` of measure-preserving maps.

    With :math:`G = \{g: x \mapsto R_g x + t_g\}` acting on the base's domain, every :math:`g` preserving
    volume (:math:`|\det R_g| = 1`: isometries, or integer unimodular matrices acting on the torus
    :math:`\mathbb{R}^d / \mathbb{Z}^d`, e.g. space-group operations in fractional coordinates of a
    hexagonal cell), and :math:`F` a fundamental domain (the images :math:`gF` tile the domain up to
    measure zero),

    .. math::

        p_F(x) = \sum_{g \in G} p_{\text{base}}(g x), \qquad x \in F,

    computed with ``logsumexp``; :math:`\int_F p_F = \sum_g \int_{gF} p_{\text{base}} = 1` because each
    :math:`g` has unit Jacobian. This is the density of ``fold(X)`` for :math:`X \sim` base, where ``fold``
    maps every point to its image in :math:`F` (used by :meth:`sample`). For a periodic base (e.g.
    :class:`~polygon_flows.TorusVonMisesMixture`) give ``period`` to reduce :math:`g x` modulo it (a space
    group modulo lattice translations).

    *Batched groups.* ``rotations`` may carry batch dimensions, ``(..., G, d, d)``, broadcasting with the
    base's batch shape, so that every batch element has its own group (e.g. atoms of crystals of different
    space groups). Groups of different orders share one tensor by padding to the largest order: ``op_mask``
    ``(..., G)`` marks the real operations (padded entries are ignored and may hold anything).

    Args:
        base: the distribution to fold, event shape ``(d,)``.
        rotations: :math:`R_g` with :math:`|\det R_g| = 1`, shape ``(G, d, d)`` or ``(..., G, d, d)``; the
            identity must be an element of every group.
        translations: :math:`t_g`, shape ``rotations.shape[:-1]``.
        fold: maps points of shape ``(..., d)`` to their image in :math:`F`.
        support: constraint describing :math:`F` (checked by ``validate_args``); defaults to the base's.
        period: if given, :math:`g x` is reduced modulo ``period`` before the base density.
        op_mask: optional bool mask ``rotations.shape[:-2]`` of the real operations (default: all).
        validate_args: as in :class:`torch.distributions.Distribution`.

    References:
        pyro ``FoldedDistribution`` (the case :math:`G = \{\pm 1\}` on the real line); International
        Tables for Crystallography Vol. A (2016), section 1.4 (space-group operations in fractional
        coordinates).

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
        op_mask: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(base, Distribution):
            raise ValueError(f"base must be a torch Distribution, got {type(base).__name__}")
        if len(base.event_shape) != 1:
            raise ValueError(f"base must have event shape (d,), got {tuple(base.event_shape)}")
        d = base.event_shape[0]
        if not isinstance(rotations, Tensor) or rotations.dim() < 3 or rotations.shape[-2:] != (d, d):
            raise ValueError(
                f"rotations must have shape (G, {d}, {d}) or (..., G, {d}, {d}), got "
                f"{getattr(rotations, 'shape', None)}"
            )
        ops_shape = rotations.shape[:-2]
        if not isinstance(translations, Tensor) or translations.shape != ops_shape + (d,):
            raise ValueError(
                f"translations must have shape {tuple(ops_shape + (d,))}, got {getattr(translations, 'shape', None)}"
            )
        if op_mask is None:
            mask = torch.ones(ops_shape, dtype=torch.bool, device=rotations.device)
        elif not isinstance(op_mask, Tensor) or op_mask.dtype != torch.bool or op_mask.shape != ops_shape:
            raise ValueError(
                f"op_mask must be a bool tensor of shape {tuple(ops_shape)}, got "
                f"{getattr(op_mask, 'dtype', type(op_mask).__name__)} {getattr(op_mask, 'shape', '')}"
            )
        else:
            mask = op_mask
        if not callable(fold):
            raise ValueError("fold must be callable")
        if period is not None and not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        try:
            batch = torch.broadcast_shapes(base.batch_shape, ops_shape[:-1])
        except RuntimeError as err:
            raise ValueError(
                f"the operations' batch shape {tuple(ops_shape[:-1])} does not broadcast with the base's "
                f"batch shape {tuple(base.batch_shape)}"
            ) from err
        eye = torch.eye(d, dtype=rotations.dtype, device=rotations.device)
        rot = torch.where(mask[..., None, None], rotations, eye)  # padded operations become the identity
        tr = torch.where(mask[..., None], translations, torch.zeros_like(translations))
        det = torch.linalg.det(rot.detach().double()).abs()
        if not bool(((det - 1).abs() < 1e-6).all()):
            raise ValueError(
                "rotations must preserve volume, |det R| = 1 (orthogonal matrices, or integer unimodular "
                "matrices on a torus)"
            )
        t = tr if period is None else torch.remainder(tr + period / 2, period) - period / 2
        is_id = ((rot - eye).abs().amax((-1, -2)) < 1e-6) & (t.abs().amax(-1) < 1e-6) & mask
        if not bool(is_id.any(-1).all()):
            raise ValueError("every group must contain the identity (R = I, t = 0)")
        self.base = base
        self.rotations = rotations
        self.translations = translations
        self.op_mask = op_mask
        self._rot = rot
        self._tr = tr
        self.fold = fold
        self.period = period
        self._support = support if support is not None else base.support
        super().__init__(batch, base.event_shape, validate_args=validate_args)
        if self._validate_args:  # O(G^2) per group: only when validating (the crystal model passes False)
            _check_distinct_operations(rot, tr, mask, period)

    @tc.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> tc.Constraint:  # type: ignore[override]
        """The fundamental domain given at construction (by default the base density's support)."""
        return self._support

    @property
    def group_order(self) -> Tensor:
        """Number of real operations of each group, shape ``rotations.shape[:-3]``."""
        mask = self.op_mask if self.op_mask is not None else torch.ones(self.rotations.shape[:-2], dtype=torch.bool)
        return mask.sum(-1)

    def expand(
        self, batch_shape: torch.Size, _instance: FoldedDistribution | None = None
    ) -> FoldedDistribution:
        """The same folded density with the base broadcast to ``batch_shape`` (``torch.distributions`` API)."""
        return FoldedDistribution(
            self.base.expand(batch_shape),
            self.rotations,
            self.translations,
            self.fold,
            support=self._support,
            period=self.period,
            op_mask=self.op_mask,
            validate_args=self._validate_args,
        )

    def _group_first(self, t: Tensor, tail: int, value_dims: int) -> Tensor:
        """Move the group axis of ``t`` (shape ``ops_batch + (G,) + tail``) first and pad the batch dims so
        that it broadcasts against a value with ``value_dims`` batch dimensions."""
        n_ops_batch = t.dim() - 1 - tail
        t = t.movedim(n_ops_batch, 0)
        pad = max(value_dims - n_ops_batch, 0)
        return t.reshape(t.shape[:1] + (1,) * pad + t.shape[1:])

    def images(self, value: Tensor) -> Tensor:
        """All images :math:`g x`, shape ``(G,) + broadcast batch + (d,)`` (reduced modulo ``period`` if set).

        Padded operations (``op_mask`` False) give the point itself; :meth:`log_prob` ignores them.
        """
        vdims = value.dim() - 1
        rot = self._group_first(self._rot.to(value.dtype), 2, vdims)  # (G, ..., d, d)
        tr = self._group_first(self._tr.to(value.dtype), 1, vdims)  # (G, ..., d)
        g = (rot * value.unsqueeze(-2)).sum(-1) + tr
        if self.period is not None:
            g = torch.remainder(g, self.period)
        return g

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Log density of the folded variable: :math:`\log \sum_{g \in G} p_{base}(g x)`, the sum over the real
        operations (padded ones left out), computed with ``logsumexp``."""
        if self._validate_args:
            self._validate_sample(value)
        lp = self.base.log_prob(self.images(value))
        if self.op_mask is not None:
            mask = self._group_first(self.op_mask, 0, value.dim() - 1)
            lp = lp.masked_fill(~mask, -float("inf"))
        return torch.logsumexp(lp, dim=0)

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None  # noqa: B008
    ) -> Tensor:
        """``fold`` of base samples (``generator`` is passed to the base's ``sample`` when given)."""
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            base = self.base if self.base.batch_shape == self.batch_shape else self.base.expand(self.batch_shape)
            x = base.sample(shape) if generator is None else base.sample(shape, generator=generator)  # type: ignore[call-arg]
            return self.fold(x)


def _check_distinct_operations(rot: Tensor, tr: Tensor, mask: Tensor, period: float | None) -> None:
    """``ValueError`` when a group lists one operation twice (modulo ``period``): the fold would count its
    images twice and the density would integrate to more than 1. Groups are compared 32 at a time, so that the
    pairwise tensors stay small for a large batch."""
    g, d = rot.shape[-3], rot.shape[-1]
    rot, tr, mask = rot.reshape(-1, g, d, d), tr.reshape(-1, g, d), mask.reshape(-1, g)
    off_diagonal = ~torch.eye(g, dtype=torch.bool, device=rot.device)
    found = False
    for i in range(0, rot.shape[0], 32):
        r, t, m = rot[i : i + 32], tr[i : i + 32], mask[i : i + 32]
        same_r = (r.unsqueeze(-3) - r.unsqueeze(-4)).abs().amax((-1, -2)) < 1e-6
        dt = t.unsqueeze(-2) - t.unsqueeze(-3)
        if period is not None:
            dt = torch.remainder(dt + period / 2, period) - period / 2
        same = same_r & (dt.abs().amax(-1) < 1e-6) & m.unsqueeze(-1) & m.unsqueeze(-2) & off_diagonal
        found = found or bool(same.any())
    if found:
        raise ValueError("the operations must be distinct elements of the group: one is listed twice (same R and "
                         "t" + ("" if period is None else " modulo the period") + "), so its images would be "
                         "counted twice")
