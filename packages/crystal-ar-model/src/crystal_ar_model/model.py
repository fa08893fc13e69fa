"""The model: the global factors combined into exact per-crystal log-likelihoods and a training loss.

Joint of space group and composition, both orders (exact, by logsumexp)::

    p(G, C) = 1/2 [ p(G) p(C | G) + p(C) p(G | C) ]

Per-factor report (natural log, per crystal; the terms add up to ``logp_total``)::

    logp_composition = log 1/2 [ p(C | G) + p(C) ]
    logp_space_group = log p(G, C) - logp_composition
                     = log of the average of p(G) and p(G | C) weighted by p(C | G) and p(C)
    logp_lattice     = log P(Q(l) | G, C)        (mass of the discretised lattice, see factors.py)
    logp_total       = log p(G, C) + logp_lattice

Training samples one order per crystal per step (the paper's lower bound on log p(G, C)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import ModelConfig, TrainConfig
from .elements import element_feature_matrix
from .factors import (
    CompositionDistribution,
    CompositionFactor,
    LatticeBins,
    LatticeFactor,
    SpaceGroupGivenComposition,
    SpaceGroupPrior,
)
from .features import space_group_feature_matrix

FACTORS = ("space_group", "composition", "lattice")
LOGP_KEYS = ("logp_space_group", "logp_composition", "logp_lattice", "logp_total")
LOG2 = math.log(2.0)


def rebalance(logp: Tensor, c: float) -> Tensor:
    """Straight-through gradient re-balancing: value ``logp``, gradient scaled by ``c``."""
    s = c * logp
    return s - s.detach() + logp.detach()


class CrystalARModel(nn.Module):
    """Space group, composition and lattice factors of the autoregressive crystal model.

    Args:
        cfg: network sizes and lattice bins.
        bins: the lattice ranges (data-determined at training time, stored in checkpoints).
        vocabulary: sorted atomic numbers of the element vocabulary.
    """

    def __init__(self, cfg: ModelConfig, bins: LatticeBins, vocabulary: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg, self.bins, self.vocabulary = cfg, bins, tuple(int(z) for z in vocabulary)
        sgf = space_group_feature_matrix()
        ef = element_feature_matrix(self.vocabulary)
        v = len(self.vocabulary)
        self.space_group_prior = SpaceGroupPrior()
        self.space_group_given_comp = SpaceGroupGivenComposition(v, cfg.hidden, cfg.layers)
        self.composition = CompositionFactor(ef, sgf, cfg.hidden, cfg.layers)
        self.lattice = LatticeFactor(v, sgf, bins, cfg.hidden, cfg.layers, cfg.rff_features, cfg.rff_scale)

    def module_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per learning-rate group (``space_group``, ``composition``, ``lattice``)."""
        return {
            "space_group": [*self.space_group_prior.parameters(), *self.space_group_given_comp.parameters()],
            "composition": list(self.composition.parameters()),
            "lattice": list(self.lattice.parameters()),
        }

    def _terms(self, batch: Any, noise: Tensor | None = None) -> dict[str, Tensor]:
        sg = batch.space_group
        comp = batch.comp.to(self.lattice.sg_features.dtype)
        bsz = sg.shape[0]
        out: dict[str, Tensor] = {}
        out["g"], out["z_g"] = self.space_group_prior(bsz).log_prob_terms(sg - 1)
        out["g_c"], out["z_g_c"] = self.space_group_given_comp(comp).log_prob_terms(sg - 1)
        # p(C | G) and p(C) in one pass of the shared network (the second half gets the zero vector)
        ctx = torch.cat([self.composition(sg).context, self.composition(None, bsz).context])
        lp_c, z_c = CompositionDistribution(self.composition, ctx).log_prob_terms(torch.cat([comp, comp]))
        out["c_g"], out["c"], out["z_c_g"], out["z_c"] = lp_c[:bsz], lp_c[bsz:], z_c[:bsz], z_c[bsz:]
        out["l"], out["z_l"] = self.lattice(sg, comp).log_prob_terms(batch.lattice, noise)
        return out

    def log_prob(self, batch: Any) -> dict[str, Tensor]:
        """Exact per-crystal log-likelihood terms (natural log): the keys of :data:`LOGP_KEYS`."""
        t = self._terms(batch)
        joint = torch.logsumexp(torch.stack([t["g"] + t["c_g"], t["c"] + t["g_c"]]), 0) - LOG2
        comp = torch.logsumexp(torch.stack([t["c_g"], t["c"]]), 0) - LOG2
        return {
            "logp_space_group": joint - comp,
            "logp_composition": comp,
            "logp_lattice": t["l"],
            "logp_total": joint + t["l"],
        }

    def forward(
        self, batch: Any, train_cfg: TrainConfig, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss (mean over the batch) and per-factor NLL sums (detached) for logging.

        One of the two (G, C) orders is drawn per crystal; both are evaluated so that every parameter takes
        part in every step (DDP), and the unused order gets weight 0.
        """
        sg = batch.space_group
        bsz = sg.shape[0]
        dev = batch.lattice.device
        order_gc = torch.rand(bsz, generator=generator).to(dev) < 0.5
        scale = torch.tensor(
            [train_cfg.lattice_noise_length] * 3 + [train_cfg.lattice_noise_angle] * 3, dtype=torch.float64
        )
        noise = ((torch.rand(bsz, 6, generator=generator, dtype=torch.float64) * 2 - 1) * scale).to(dev)
        t = self._terms(batch, noise)
        lp_sg = torch.where(order_gc, t["g"], t["g_c"])
        lp_c = torch.where(order_gc, t["c_g"], t["c"])
        lp_l = t["l"]
        c = train_cfg.rebalance_c
        parts = {"space_group": lp_sg, "composition": lp_c, "lattice": lp_l}
        total = sum(rebalance(v, c) if k in train_cfg.rebalance_factors else v for k, v in parts.items())
        zsq = t["z_g"] + t["z_g_c"] + t["z_c_g"] + t["z_c"] + t["z_l"]
        loss = -total.mean() + train_cfg.z_loss * zsq.mean()
        stats = {f"nll_{k}": -v.detach().sum() for k, v in parts.items()}
        stats["nll_total"] = -(lp_sg + lp_c + lp_l).detach().sum()
        return loss, stats

    @torch.no_grad()
    def sample_global(self, num: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Ancestral samples of (G, C, l) in the G-first order: ``space_group``, ``comp``, ``lattice``."""
        sg = (
            self.space_group_prior(num).sample() + 1
            if generator is None
            else torch.multinomial(
                torch.softmax(self.space_group_prior.logits, 0), num, replacement=True, generator=generator
            )
            + 1
        )
        comp = self.composition.sample_sets(self.composition(sg).context, generator)
        lat = self.lattice.sample_lattice(self.lattice(sg, comp).context, sg, generator)
        return {"space_group": sg, "comp": comp, "lattice": lat}


def vocabulary_for(cfg: ModelConfig) -> tuple[int, ...]:
    """The element vocabulary of a model config (Z = 1..max_z)."""
    return tuple(range(1, cfg.max_z + 1))


def bins_for(cfg: ModelConfig, lattice: np.ndarray, space_group: np.ndarray) -> LatticeBins:
    """Data-determined lattice bins for a training set."""
    return LatticeBins.from_data(lattice, space_group, cfg.n_coarse, cfg.n_fine)
