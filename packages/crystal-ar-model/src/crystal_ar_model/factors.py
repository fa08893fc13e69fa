"""The three global factors. Each is an ``nn.Module`` whose ``forward`` returns a torch ``Distribution``.

* :class:`SpaceGroupPrior` -> ``Categorical`` p(G) over 230 groups (values 0..229 = G - 1).
* :class:`SpaceGroupGivenComposition` -> ``Categorical`` p(G | C) from the element-occupancy vector.
* :class:`CompositionFactor` -> :class:`CompositionDistribution` p(C | G) or p(C) over element sets.
* :class:`LatticeFactor` -> :class:`LatticeDistribution` p(l | G, C), the telescoping categorical.

Every distribution also has ``log_prob_terms(value, ...) -> (log_prob, zsq)`` where ``zsq`` is the sum over
the categorical decisions of ``logsumexp(logits) ** 2`` (the z-loss), per batch element.

Lattice pmf (documented in the README). The lattice term is the probability **mass** of the discretised
conventional lattice, not a density. Parameters are ordered a, b, c, alpha, beta, gamma; only the ones
left free by the crystal family are modelled (triclinic: all six; monoclinic: a, b, c, beta;
orthorhombic: a, b, c; tetragonal and hexagonal: a, c; cubic: a); the others are fixed (b = a, c = a,
90 or 120 degrees) and contribute log 1. Each free parameter j has a range [lo_j, hi_j] split into
n_coarse * n_fine equal bins; its value is first a coarse bin (categorical over n_coarse) and then a fine
bin inside it (categorical over n_fine), each conditioned on G, C and the previous parameters' values
(random Fourier features). The discretisation map Q sends a lattice to the bin containing each free
parameter (values outside the range are clipped into the edge bins) and represents the bin by its centre.
log_prob(l) = log P(Q(l)) = sum_j [log p(coarse_j | .) + log p(fine_j | coarse_j, .)]; conditioning uses
the bin centres, so the mass depends on Q(l) only, and summing it over every bin combination gives 1.
For triclinic cells, gamma is restricted to the bins whose centres satisfy
|alpha - beta| < gamma < min(alpha + beta, 360 - alpha - beta) (alpha, beta the bin centres), which is
exactly the condition for a strictly positive cell volume; masked bins get probability 0 and both
categoricals renormalise over the rest, so the pmf stays exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, constraints

from .features import FAMILIES, NUM_SPACE_GROUPS

NEG_INF = float("-inf")
LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
# FREE[f, j]: parameter j is free in family f (order of FAMILIES).
FREE = torch.tensor(
    [
        [1, 1, 1, 1, 1, 1],  # triclinic
        [1, 1, 1, 0, 1, 0],  # monoclinic
        [1, 1, 1, 0, 0, 0],  # orthorhombic
        [1, 0, 1, 0, 0, 0],  # tetragonal
        [1, 0, 1, 0, 0, 0],  # hexagonal (trigonal and hexagonal systems)
        [1, 0, 0, 0, 0, 0],  # cubic
    ],
    dtype=torch.bool,
)
TRICLINIC, HEXAGONAL, CUBIC = (
    FAMILIES.index("triclinic"),
    FAMILIES.index("hexagonal"),
    FAMILIES.index("cubic"),
)
_B_EQUALS_A = torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool)


def draw_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of ``probs`` (..., K) (non-negative, not necessarily normalised), by inversion of the
    cumulative sums: ``k = #{j : F_j <= u F_K}`` with one uniform u per row (float64).

    The uniforms are drawn on the CPU with ``generator`` (a CPU generator, or the global one) and then moved to
    ``probs``' device, so that the random stream is the same on every device and one CPU generator serves a
    model on a GPU. An index with probability 0 is never returned (u < 1, and ``F_j <= u F_K`` selects the first
    j with F_j > u F_K, whose mass is positive)."""
    u = torch.rand(probs.shape[:-1], generator=generator, dtype=torch.float64).to(probs.device)
    cdf = probs.to(torch.float64).cumsum(-1)
    idx = (cdf <= (u * cdf[..., -1]).unsqueeze(-1)).sum(-1)
    return idx.clamp(max=probs.shape[-1] - 1)


def mlp(d_in: int, hidden: int, d_out: int, layers: int = 2) -> nn.Sequential:
    """``layers`` Linear layers with SiLU in between."""
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)


def _lse_sq(logits: Tensor) -> Tensor:
    lse = torch.logsumexp(logits, dim=-1)
    return torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse)) ** 2


class _Categorical(Categorical):
    """``Categorical`` with :meth:`log_prob_terms` (log-prob and z-loss term)."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__(logits=logits, validate_args=False)
        self.raw_logits = logits

    def log_prob(self, value: Tensor) -> Tensor:
        """log-probability; a row whose entries are all masked gives -inf (not NaN) for every value."""
        lse = torch.logsumexp(self.raw_logits, -1, keepdim=True)
        lp = self.raw_logits - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        return lp.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def log_prob_terms(self, value: Tensor) -> tuple[Tensor, Tensor]:
        return self.log_prob(value), _lse_sq(self.raw_logits)


# ------------------------------------------------------------------------------------------- space group
class SpaceGroupPrior(nn.Module):
    """p(G): 230 learned logits. ``forward(batch_size, allowed)`` returns a ``Categorical`` over G - 1.

    ``allowed`` (230,) or (B, 230) bool masks groups (the model passes the groups that can hold at least one
    element within its atom budget, :mod:`.masks`); the categorical renormalises over the rest.
    """

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(NUM_SPACE_GROUPS))

    def forward(self, batch_size: int, allowed: Tensor | None = None) -> _Categorical:
        """The categorical p(G) for ``batch_size`` crystals; groups outside ``allowed`` (230,) get probability 0."""
        logits = self.logits.expand(batch_size, NUM_SPACE_GROUPS)
        if allowed is not None:
            logits = logits.masked_fill(~allowed.expand(batch_size, NUM_SPACE_GROUPS), NEG_INF)
        return _Categorical(logits)


class SpaceGroupGivenComposition(nn.Module):
    """p(G | C): an MLP on the element-occupancy (multi-hot) vector -> ``Categorical`` over G - 1.

    ``allowed`` (B, 230) bool masks groups (the model passes the groups that can hold |C| distinct elements
    within its atom budget, :mod:`.masks`); the categorical renormalises over the rest.
    """

    def __init__(self, num_elements: int, hidden: int, layers: int = 2) -> None:
        super().__init__()
        self.net = mlp(num_elements, hidden, NUM_SPACE_GROUPS, layers + 1)

    def forward(self, comp: Tensor, allowed: Tensor | None = None) -> _Categorical:
        """The categorical p(G | C) of multi-hot compositions ``comp`` (B, V); groups outside ``allowed`` (B, 230) get
        probability 0."""
        logits = self.net(comp)
        if allowed is not None:
            logits = logits.masked_fill(~allowed, NEG_INF)
        return _Categorical(logits)


# ------------------------------------------------------------------------------------------ composition
class CompositionDistribution(Distribution):
    """Distribution over non-empty element sets, as multi-hot vectors over the vocabulary (sorted by Z).

    p(C) = p(stop | C) prod_i p(a_i | a_<i, context) with a_1 < a_2 < ... in vocabulary order: at each step
    the elements up to the last one chosen are masked, and stop is masked before the first element, so
    every non-empty set has exactly one sequence and the masses of all sets sum to 1. With ``max_size`` m,
    elements are masked once m have been chosen (stop is then forced): the masses of the sets of at most m
    elements sum to 1.
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, factor: CompositionFactor, context: Tensor, max_size: Tensor | None = None) -> None:
        self.factor, self.context = factor, context
        self.max_size = max_size  # (B,) the most elements a set may have (None: the vocabulary size)
        super().__init__(batch_shape=context.shape[:1], event_shape=(factor.num_elements,), validate_args=False)

    def log_prob_terms(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """log p(C) (B,) and the z-loss term of multi-hot sets ``value`` (B, V)
        (:meth:`CompositionFactor.sequence_log_prob`)."""
        return self.factor.sequence_log_prob(self.context, value, self.max_size)

    def log_prob(self, value: Tensor) -> Tensor:
        """log p(C) (B,) of multi-hot sets ``value`` (B, V); -inf for a set larger than ``max_size``."""
        return self.log_prob_terms(value)[0]

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """One multi-hot set (B, V) per batch element, drawn ancestrally with the global generator (``sample_shape``
        must be empty; the sampler's :meth:`CompositionFactor.sample_sets` takes a generator)."""
        if tuple(sample_shape):
            raise NotImplementedError("sample one set per batch element (sample_shape=())")
        return self.factor.sample_sets(self.context, max_size=self.max_size)


class CompositionFactor(nn.Module):
    """p(C | G) and p(C): DeepSets over learned element embeddings (initialised from CGCNN-style features).

    The space group enters through its 62 asu-geometry features (standardised), a flag and a learned
    per-group embedding (zero-initialised; it separates the few groups with equal feature vectors); p(C)
    uses the same parameters with a zero vector in place of the 63 feature inputs and no embedding.
    """

    def __init__(self, element_features: np.ndarray, sg_features: np.ndarray, hidden: int, layers: int = 2) -> None:
        super().__init__()
        v, f = element_features.shape
        self.num_elements = v
        self.stop = v
        self.elem_emb = nn.Embedding.from_pretrained(
            torch.as_tensor(element_features, dtype=torch.float32), freeze=False
        )
        self.elem_proj = nn.Linear(f, hidden)
        self.phi = mlp(hidden, hidden, hidden, layers)
        self.last_emb = nn.Embedding(v + 1, hidden)  # index v: nothing chosen yet
        sg = torch.as_tensor(sg_features, dtype=torch.float32)
        std = sg.std(0)
        sg = (sg - sg.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
        self.register_buffer("sg_features", torch.cat([sg, torch.ones(sg.shape[0], 1)], 1), persistent=False)
        self.g_proj = nn.Linear(sg.shape[1] + 1, hidden)
        self.g_emb = nn.Embedding(NUM_SPACE_GROUPS, hidden)  # separates groups with equal feature vectors
        nn.init.zeros_(self.g_emb.weight)
        self.rho = mlp(hidden, hidden, v + 1, layers + 1)

    def forward(
        self, space_group: Tensor | None, batch_size: int | None = None, max_size: Tensor | None = None
    ) -> CompositionDistribution:
        """p(C | G) for ``space_group`` (B,) in 1..230, or p(C) when it is ``None`` (needs ``batch_size``);
        ``max_size`` (B,): the most elements a set may have (the model's atom budget, :mod:`.masks`)."""
        if space_group is None:
            assert batch_size is not None
            g = torch.zeros(
                batch_size,
                self.sg_features.shape[1],
                dtype=self.sg_features.dtype,
                device=self.sg_features.device,
            )
        else:
            return CompositionDistribution(
                self, self.g_proj(self.sg_features[space_group - 1]) + self.g_emb(space_group - 1), max_size
            )
        return CompositionDistribution(self, self.g_proj(g), max_size)

    def _embed(self, elements: Tensor) -> Tensor:
        return self.phi(self.elem_proj(self.elem_emb(elements)))

    def _step_logits(
        self,
        context: Tensor,
        set_sum: Tensor,
        last: Tensor,
        room: Tensor | None = None,
        allowed_elements: Tensor | None = None,
        next_required: Tensor | None = None,
    ) -> Tensor:
        """Masked logits (..., V + 1). ``last`` = vocabulary index of the last element, V if none; ``room``
        (...,) bool: whether another element may still be added (size limit); ``allowed_elements`` (..., V)
        bool and ``next_required`` (...,) the smallest required vocabulary index not yet chosen (V if none):
        sampling constraints (elements after it would skip it, and stop is masked while it exists)."""
        h = set_sum + self.last_emb(last) + context
        logits = self.rho(torch.nn.functional.silu(h))
        ar = torch.arange(self.num_elements + 1, device=logits.device)
        first = last == self.stop
        last_idx = torch.where(first, torch.full_like(last, -1), last)
        allowed = ar > last_idx.unsqueeze(-1)
        allowed[..., self.stop] = ~first
        if room is not None:
            allowed[..., : self.stop] &= room.unsqueeze(-1)
        if allowed_elements is not None:
            allowed[..., : self.stop] &= allowed_elements
        if next_required is not None:
            allowed[..., : self.stop] &= ar[: self.stop] <= next_required.unsqueeze(-1)
            allowed[..., self.stop] &= next_required == self.stop
        return logits.masked_fill(~allowed, NEG_INF)

    def sequence_log_prob(
        self, context: Tensor, value: Tensor, max_size: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """log p(C) and z-loss term for multi-hot ``value`` (B, V); sets larger than ``max_size`` get -inf."""
        bsz, v = value.shape
        present = value > 0.5
        n = present.sum(1)
        k = max(int(n.max().item()) if bsz else 0, 1)
        key = torch.where(present, torch.arange(v, device=value.device).expand(bsz, v), torch.full_like(n, v)[:, None])
        idx = key.sort(1).values[:, :k]  # (B, K) chosen elements ascending, padded with V
        steps = torch.arange(k + 1, device=value.device)
        valid = steps[None, :] <= n[:, None]  # (B, K+1)
        target = torch.cat([idx, torch.full_like(idx[:, :1], self.stop)], 1)
        target = torch.where(steps[None, :] == n[:, None], torch.full_like(target, self.stop), target)
        target = torch.where(valid, target, torch.zeros_like(target))
        last = torch.cat([torch.full_like(idx[:, :1], self.stop), idx], 1)
        last = torch.where(valid, last, torch.full_like(last, self.stop))
        emb = self._embed(idx.clamp(max=v - 1)) * (steps[None, :k] < n[:, None]).unsqueeze(-1)
        set_sum = torch.cat([torch.zeros_like(emb[:, :1]), emb.cumsum(1)], 1)  # exclusive prefix sums
        room = None if max_size is None else steps[None, :] < max_size[:, None]
        logits = self._step_logits(context[:, None, :], set_sum, last, room)
        lse = torch.logsumexp(logits, -1, keepdim=True)  # -inf where every choice is masked (no set fits)
        logp = (logits - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))).gather(-1, target.unsqueeze(-1))
        logp = logp.squeeze(-1)
        logp = torch.where(valid, logp, torch.zeros_like(logp)).sum(1)
        zsq = torch.where(valid, _lse_sq(logits), torch.zeros_like(logp[:, None])).sum(1)
        return logp, zsq

    @torch.no_grad()
    def sample_sets(
        self,
        context: Tensor,
        generator: torch.Generator | None = None,
        max_size: Tensor | None = None,
        allowed_elements: Tensor | None = None,
        required: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Ancestral sampling of element sets, multi-hot (B, V).

        ``max_size`` (B,): the most elements; ``allowed_elements`` (V,) or (B, V) bool: C is a subset;
        ``required`` (V,) or (B, V) bool: C is a superset (the caller ensures |required| <= max_size and
        required within allowed). ``temperature`` divides the logits."""
        bsz = context.shape[0]
        v = self.num_elements
        out = torch.zeros(bsz, v, device=context.device, dtype=context.dtype)
        last = torch.full((bsz,), self.stop, dtype=torch.long, device=context.device)
        set_sum = torch.zeros_like(context)
        done = torch.zeros(bsz, dtype=torch.bool, device=context.device)
        size = torch.zeros(bsz, dtype=torch.long, device=context.device)
        allow = None if allowed_elements is None else allowed_elements.to(context.device).expand(bsz, v)
        req = None if required is None else required.to(context.device).expand(bsz, v).clone()
        ar = torch.arange(v, device=context.device)
        for _ in range(v + 1):
            room = None if max_size is None else size < max_size
            nxt, step_allow = None, allow
            if req is not None:
                nxt = torch.where(req, ar, torch.full_like(ar, v)).min(-1).values
                if max_size is not None:  # an optional element only while the required ones still fit
                    optional = size + 1 + req.sum(-1) <= max_size
                    step_allow = (req | optional.unsqueeze(-1)) & (allow if allow is not None else True)
            logits = self._step_logits(context, set_sum, last, room, step_allow, nxt) / temperature
            probs = torch.softmax(logits, -1)
            a = draw_categorical(probs, generator)
            stop = (a == self.stop) | done
            done = stop
            if bool(done.all()):
                break
            e = torch.where(stop, torch.zeros_like(a), a)
            out[~stop, e[~stop]] = 1.0
            set_sum = set_sum + self._embed(e) * (~stop).unsqueeze(-1)
            last = torch.where(stop, last, a)
            size = size + (~stop).long()
            if req is not None:
                req[~stop, e[~stop]] = False
        return out


# ----------------------------------------------------------------------------------------------- lattice
@dataclass(frozen=True)
class LatticeBins:
    """Ranges and bin counts of the six lattice parameters (lengths in Angstrom, angles in degrees)."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    n_coarse: int = 100
    n_fine: int = 100

    def __post_init__(self) -> None:
        if len(self.lo) != 6 or len(self.hi) != 6 or not all(h > l for l, h in zip(self.lo, self.hi, strict=True)):
            raise ValueError(f"bad lattice ranges lo={self.lo} hi={self.hi}")
        if min(self.lo[:3]) < 0:
            raise ValueError("length ranges must start at >= 0")
        if not (0 < self.lo[3] and self.hi[3] < 180 and 0 < self.lo[4] and self.hi[4] < 180):
            raise ValueError("alpha/beta ranges must lie strictly inside (0, 180)")
        if self.lo[5] > 0 or self.hi[5] < 180:
            raise ValueError("the gamma range must be [0, 180] (its support is restricted per cell)")
        # every triclinic gamma interval (|a-b|, min(a+b, 360-a-b)) has width 2 min(a, b, 180-a, 180-b):
        width = 2 * min(self.lo[3], self.lo[4], 180 - self.hi[3], 180 - self.hi[4])
        if width <= 180.0 / self.n_bins:
            raise ValueError("alpha/beta ranges too close to 0 or 180 for the gamma bins: empty gamma support")

    @property
    def n_bins(self) -> int:
        """Bins per parameter: ``n_coarse * n_fine``."""
        return self.n_coarse * self.n_fine

    def resolution(self) -> tuple[float, ...]:
        """Bin width of each parameter."""
        return tuple((h - l) / self.n_bins for l, h in zip(self.lo, self.hi, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the bins (``lo``, ``hi``, ``n_coarse``, ``n_fine``); :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatticeBins:
        """Bins from :meth:`to_dict`'s layout."""
        return cls(tuple(d["lo"]), tuple(d["hi"]), int(d["n_coarse"]), int(d["n_fine"]))

    @classmethod
    def from_data(
        cls, lattice: np.ndarray, space_group: np.ndarray, n_coarse: int = 100, n_fine: int = 100
    ) -> LatticeBins:
        """Data-determined ranges: the span of each free parameter, widened by 10 % + 0.5 A or 2 deg."""
        from .features import family_index_table

        fam = family_index_table()[np.asarray(space_group) - 1]
        free = FREE.numpy()[fam]
        lo, hi = [], []
        defaults = ((0.0, 40.0),) * 3 + ((30.0, 150.0),) * 2
        for j in range(5):
            vals = np.asarray(lattice)[free[:, j], j]
            if len(vals) == 0:
                l, h = defaults[j]
            else:
                span, pad = float(vals.max() - vals.min()), (0.5 if j < 3 else 2.0)
                l, h = float(vals.min()) - 0.1 * span - pad, float(vals.max()) + 0.1 * span + pad
                l, h = (max(0.0, l), h) if j < 3 else (max(1.0, l), min(179.0, h))
            lo.append(math.floor(l * 100) / 100)
            hi.append(math.ceil(h * 100) / 100)
        return cls((*lo, 0.0), (*hi, 180.0), n_coarse, n_fine)


class LatticeDistribution(Distribution):
    """The telescoping categorical over discretised lattices (B, 6); see the module docstring."""

    arg_constraints: dict[str, Any] = {}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, factor: LatticeFactor, context: Tensor, space_group: Tensor) -> None:
        self.factor, self.context, self.space_group = factor, context, space_group
        super().__init__(batch_shape=context.shape[:1], event_shape=(6,), validate_args=False)

    def log_prob_terms(self, value: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``noise`` (B, 6) is added to the conditioning values only (noisy teacher forcing)."""
        return self.factor.lattice_log_prob(self.context, self.space_group, value, noise)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log probability mass (B,) of the bins that lattice parameters ``value`` (B, 6) fall in (free parameters
        only)."""
        return self.log_prob_terms(value)[0]

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """One discretised lattice (B, 6; bin centres) per batch element, drawn with the global generator
        (``sample_shape`` must be empty; :meth:`LatticeFactor.sample_lattice` takes a generator)."""
        if tuple(sample_shape):
            raise NotImplementedError("sample one lattice per batch element (sample_shape=())")
        return self.factor.sample_lattice(self.context, self.space_group)

    def slot_log_pmf(self, value: Tensor, slot: int) -> Tensor:
        """log-mass of every bin (B, n_bins) of parameter ``slot`` given the earlier ones from ``value``."""
        return self.factor.slot_log_pmf(self.context, self.space_group, value, slot)


class LatticeFactor(nn.Module):
    """p(l | G, C): telescoping coarse/fine categorical per free parameter, autoregressive over a..gamma."""

    def __init__(
        self,
        num_elements: int,
        sg_features: np.ndarray,
        bins: LatticeBins,
        hidden: int,
        layers: int = 2,
        rff_features: int = 16,
        rff_scale: float = 4.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from .features import family_index_table

        self.bins = bins
        self.register_buffer("lo", torch.tensor(bins.lo, dtype=torch.float64), persistent=False)
        self.register_buffer("hi", torch.tensor(bins.hi, dtype=torch.float64), persistent=False)
        self.register_buffer("family", torch.as_tensor(family_index_table()), persistent=False)
        self.register_buffer("free", FREE.clone(), persistent=False)
        sg = torch.as_tensor(sg_features, dtype=torch.float32)
        std = sg.std(0)
        self.register_buffer(
            "sg_features",
            (sg - sg.mean(0)) / torch.where(std > 0, std, torch.ones_like(std)),
            persistent=False,
        )
        gen = torch.Generator().manual_seed(seed + 12345)
        self.register_buffer("rff_freq", torch.randn(6, rff_features, generator=gen) * rff_scale, persistent=False)
        self.sg_emb = nn.Embedding(NUM_SPACE_GROUPS, hidden)
        self.sg_proj = nn.Linear(sg.shape[1], hidden)
        self.comp_proj = nn.Linear(num_elements, hidden)
        self.ctx = mlp(hidden, hidden, hidden, layers)
        self.rff_proj = nn.Parameter(torch.randn(6, 2 * rff_features, hidden) / math.sqrt(2 * rff_features))
        self.slot_emb = nn.Parameter(torch.randn(6, hidden) * 0.1)
        self.trunk = mlp(hidden, hidden, hidden, layers)
        self.coarse_head = nn.Linear(hidden, bins.n_coarse)
        self.coarse_emb = nn.Embedding(6 * bins.n_coarse, hidden)
        self.fine = mlp(hidden, hidden, bins.n_fine, layers)

    def forward(self, space_group: Tensor, comp: Tensor) -> LatticeDistribution:
        """``space_group`` (B,) in 1..230, ``comp`` (B, V) multi-hot."""
        n = comp.sum(1, keepdim=True).clamp(min=1)
        h = self.sg_emb(space_group - 1) + self.sg_proj(self.sg_features[space_group - 1]) + self.comp_proj(comp / n)
        return LatticeDistribution(self, self.ctx(torch.nn.functional.silu(h)), space_group)

    # --- bins
    def bin_index(self, value: Tensor) -> Tensor:
        """Index (0..n_bins-1) of the bin of each parameter; out-of-range values go to the edge bins."""
        nb = self.bins.n_bins
        u = (value.double() - self.lo) / (self.hi - self.lo) * nb
        return u.floor().clamp(0, nb - 1).long()

    def bin_center(self, idx: Tensor) -> Tensor:
        """Centre of bin ``idx`` of each parameter (float64, same shape)."""
        return self.lo + (idx.double() + 0.5) * (self.hi - self.lo) / self.bins.n_bins

    def conditioning(self, centers: Tensor, family: Tensor) -> Tensor:
        """Discretised lattice: bin centres for free parameters, family-fixed values for the others."""
        free = self.free[family]
        fixed = torch.full_like(centers, 90.0)
        fixed[:, 5] = torch.where(family == HEXAGONAL, 120.0, 90.0).double()
        fixed[:, 1] = centers[:, 0]
        fixed[:, 2] = torch.where(family == CUBIC, centers[:, 0], centers[:, 2])
        return torch.where(free, centers, fixed)

    def gamma_bounds(self, cond: Tensor, family: Tensor) -> tuple[Tensor, Tensor]:
        """Allowed bin-index range [L, H] (B, 6) of each parameter (only triclinic gamma is restricted)."""
        nb = self.bins.n_bins
        low = torch.zeros(cond.shape, dtype=torch.long, device=cond.device)
        high = torch.full_like(low, nb - 1)
        al, be = cond[:, 3], cond[:, 4]
        lower = (al - be).abs()
        upper = torch.minimum(al + be, 360.0 - al - be)
        delta = (self.hi[5] - self.lo[5]) / nb
        lo_idx = (torch.floor((lower - self.lo[5]) / delta - 0.5) + 1).clamp(0, nb - 1).long()
        hi_idx = (torch.ceil((upper - self.lo[5]) / delta - 0.5) - 1).clamp(0, nb - 1).long()
        tri = family == TRICLINIC
        low[:, 5] = torch.where(tri, lo_idx, low[:, 5])
        high[:, 5] = torch.where(tri, hi_idx, high[:, 5])
        return low, high

    def _features(self, context: Tensor, cond: Tensor) -> Tensor:
        """Per-slot hidden states (B, 6, d): slot j sees the context and the values of slots < j."""
        u = ((cond - self.lo) / (self.hi - self.lo)).to(context.dtype)  # (B, 6)
        ang = 2 * math.pi * u.unsqueeze(-1) * self.rff_freq  # (B, 6, m)
        rff = torch.cat([ang.sin(), ang.cos()], -1)  # (B, 6, 2m)
        p = torch.einsum("bjm,jmd->bjd", rff, self.rff_proj)
        prefix = torch.cat([torch.zeros_like(p[:, :1]), p.cumsum(1)[:, :-1]], 1)
        return self.trunk(torch.nn.functional.silu(context[:, None, :] + self.slot_emb + prefix))

    def _coarse_logits(self, h: Tensor, low: Tensor, high: Tensor) -> Tensor:
        nf = self.bins.n_fine
        c = torch.arange(self.bins.n_coarse, device=h.device)
        ok = (c * nf <= high.unsqueeze(-1)) & (c * nf + nf - 1 >= low.unsqueeze(-1))
        return self.coarse_head(h).masked_fill(~ok, NEG_INF)

    def _fine_logits(self, h: Tensor, coarse: Tensor, slot: Tensor, low: Tensor, high: Tensor) -> Tensor:
        nf = self.bins.n_fine
        x = self.fine(torch.nn.functional.silu(h + self.coarse_emb(slot * self.bins.n_coarse + coarse)))
        idx = coarse.unsqueeze(-1) * nf + torch.arange(nf, device=h.device)
        ok = (idx >= low.unsqueeze(-1)) & (idx <= high.unsqueeze(-1))
        return x.masked_fill(~ok, NEG_INF)

    def lattice_log_prob(
        self,
        context: Tensor,
        space_group: Tensor,
        value: Tensor,
        noise: Tensor | None = None,
        temperature: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Log probability mass (B,) of the bins of ``value`` (B, 6) (coarse then fine bin, free parameters only,
        conditioned autoregressively on the earlier parameters' bin centres) and the z-loss term; ``noise`` (B, 6)
        is added to the conditioning values only, ``temperature`` divides the logits."""
        family = self.family[space_group - 1]
        free = self.free[family]
        idx = self.bin_index(value)
        cond = self.conditioning(self.bin_center(idx), family)
        low, high = self.gamma_bounds(cond, family)
        h = self._features(context, cond if noise is None else cond + noise.double() * free)
        coarse, fine = idx // self.bins.n_fine, idx % self.bins.n_fine
        cl = self._coarse_logits(h, low, high) / temperature
        slots = torch.arange(6, device=h.device).expand_as(coarse)
        outside = (idx < low) | (idx > high)  # a bin with no mass (triclinic gamma, non-positive volume)
        fl = self._fine_logits(h, coarse, slots, low, high).masked_fill(outside.unsqueeze(-1), 0.0) / temperature
        lp = torch.log_softmax(cl, -1).gather(-1, coarse.unsqueeze(-1)).squeeze(-1) + torch.log_softmax(fl, -1).gather(
            -1, fine.unsqueeze(-1)
        ).squeeze(-1)
        lp = lp.masked_fill(outside, NEG_INF)
        zero = torch.zeros_like(lp)
        logp = torch.where(free, lp, zero).sum(1)
        zsq = torch.where(free, _lse_sq(cl) + _lse_sq(fl), zero).sum(1)
        return logp, zsq

    def slot_log_pmf(self, context: Tensor, space_group: Tensor, value: Tensor, slot: int) -> Tensor:
        """log-mass of every bin of ``slot`` (B, n_bins), given the slots before ``slot`` of ``value``."""
        family = self.family[space_group - 1]
        cond = self.conditioning(self.bin_center(self.bin_index(value)), family)
        low, high = self.gamma_bounds(cond, family)
        h = self._features(context, cond)[:, slot]
        lc = torch.log_softmax(self._coarse_logits(h, low[:, slot], high[:, slot]), -1)  # (B, Nc)
        nc = self.bins.n_coarse
        coarse = torch.arange(nc, device=h.device).expand(h.shape[0], nc)
        hh = h[:, None, :].expand(-1, nc, -1)
        fl = self._fine_logits(hh, coarse, torch.full_like(coarse, slot), low[:, slot, None], high[:, slot, None])
        lf = torch.log_softmax(fl, -1)  # (B, Nc, Nf); rows of impossible coarse bins are NaN
        out = lc.unsqueeze(-1) + lf
        out = torch.where(torch.isfinite(lc).unsqueeze(-1), out, torch.full_like(out, NEG_INF))
        return out.reshape(h.shape[0], -1)

    @torch.no_grad()
    def sample_lattice(
        self, context: Tensor, space_group: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Ancestral sampling (logits divided by ``temperature``); returns the discretised lattice (bin centres
        and family-fixed values)."""
        bsz = context.shape[0]
        family = self.family[space_group - 1]
        free = self.free[family]
        idx = torch.zeros(bsz, 6, dtype=torch.long, device=context.device)
        nf = self.bins.n_fine
        for j in range(6):
            cond = self.conditioning(self.bin_center(idx), family)
            low, high = self.gamma_bounds(cond, family)
            h = self._features(context, cond)[:, j]
            coarse_logits = self._coarse_logits(h, low[:, j], high[:, j]) / temperature
            c = draw_categorical(torch.softmax(coarse_logits, -1), generator)
            fl = self._fine_logits(h, c, torch.full_like(c, j), low[:, j], high[:, j])
            f = draw_categorical(torch.softmax(fl / temperature, -1), generator)
            idx[:, j] = torch.where(free[:, j], c * nf + f, idx[:, j])
        return self.conditioning(self.bin_center(idx), family)
