"""The model: global factors and per-site factors combined into exact per-crystal log-likelihoods and a loss.

A crystal M in normal form (asu-geometry) is the sequence G, C, L, then sites 1..n, then stop::

    log p(M) = log p(G, C) + log P(Q(L) | G, C)
               + sum_i [ log p(stop_i = 0) + log p(w_i) + log p(a_i | w_i) + log p(s_i | w_i, a_i) + log p(x_i | s_i) ]
               + log p(stop_n = 1)

each site term conditioned on G, C, L and the sites before it (the GNN context, :mod:`.gnn`), with the exact
masks of :mod:`.masks`. The joint of space group and composition takes both orders (exact, by logsumexp)::

    p(G, C) = 1/2 [ p(G) p(C | G) + p(C) p(G | C) ]

Per-factor report (natural log, per crystal; the terms add up to ``logp_total``)::

    logp_composition = log 1/2 [ p(C | G) + p(C) ]
    logp_space_group = log p(G, C) - logp_composition
    logp_lattice     = log P(Q(l) | G, C)        (mass of the discretised lattice, see factors.py)
    logp_wyckoff, logp_element, logp_shape, logp_stop: sums over the sites of the categorical terms
    logp_coords      = sum over the sites of log p(x_i | s_i, ...) (density, README: "the measure")

``logp_total`` is the log-likelihood of the normal form's construction sequence; when several orders of the
same sites have mass (sites with equal Wyckoff position and element), it is a lower bound on log p(crystal).
Training samples one (G, C) order per crystal per step (the paper's lower bound on log p(G, C)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .atoms import AtomHeads, masked_log_softmax
from .config import ModelConfig, TrainConfig
from .coords import CoordinateFactor
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
from .gnn import ContextHead, CrystalGNN, ElementEmbedding, WyckoffEmbedding
from .masks import (
    BudgetTables,
    BuildState,
    budget_tables,
    candidate_positions,
    element_choices,
    legal_moves,
    stop_mask,
)
from .periodic import minimum_image_edges, primitive_reduced_basis, wyckoff_noise
from .prefix import PrefixStates, all_prefixes, prefix_build_state, prefix_graph

GLOBAL_FACTORS = ("space_group", "composition", "lattice")
ATOM_FACTORS = ("wyckoff", "element", "shape", "coords", "stop")
FACTORS = (*GLOBAL_FACTORS, *ATOM_FACTORS)
LOGP_KEYS = (*(f"logp_{f}" for f in FACTORS), "logp_total")
LOG2 = math.log(2.0)
_BUDGET_FIELDS = ("prim_mult", "zero_dim", "group_offset", "group_count", "after_cost", "lookahead", "start_cost")


def rebalance(logp: Tensor, c: float) -> Tensor:
    """Straight-through gradient re-balancing: value ``logp``, gradient scaled by ``c``."""
    s = c * logp
    return s - s.detach() + logp.detach()


class CrystalARModel(nn.Module):
    """The autoregressive crystal model: space group, composition, lattice and the per-site factors.

    Args:
        cfg: network sizes, lattice bins and the atom budget.
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
        h = cfg.gnn_hidden
        self.element_embedding = ElementEmbedding(ef, h)
        self.wyckoff_embedding = WyckoffEmbedding(h)
        self.gnn = CrystalGNN(
            self.element_embedding,
            self.wyckoff_embedding,
            h,
            cfg.gnn_filters,
            cfg.gnn_layers,
            cfg.rbf,
            cfg.rbf_cutoff,
            cfg.fourier,
        )
        self.context = ContextHead(self.element_embedding, self.wyckoff_embedding, sgf, h)
        self.heads = AtomHeads(self.element_embedding, self.wyckoff_embedding, h, cfg.shape_fourier)
        self.coords = CoordinateFactor(
            3 * h,
            cfg.coord_hidden,
            cfg.coord_layers,
            cfg.segment_components,
            cfg.polygon_components,
            cfg.torus_components,
        )
        tables = budget_tables(cfg.max_atoms)
        for name in _BUDGET_FIELDS:
            self.register_buffer(f"budget_{name}", getattr(tables, name).clone(), persistent=False)
        self.register_buffer("polar", _polar_table(), persistent=False)

    # ------------------------------------------------------------------------------------- helpers
    @property
    def num_elements(self) -> int:
        """Size of the element vocabulary."""
        return len(self.vocabulary)

    @property
    def tables(self) -> BudgetTables:
        """The atom-budget tables (:mod:`.masks`) on the model's device."""
        return BudgetTables(self.cfg.max_atoms, *(getattr(self, f"budget_{n}") for n in _BUDGET_FIELDS))

    def group_capacity(self, budget: int | None = None) -> Tensor:
        """(230,) the most distinct elements each group can hold within ``budget`` atoms (default: the model's)."""
        return self.tables.max_elements(self.cfg.max_atoms if budget is None else min(budget, self.cfg.max_atoms))

    def module_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per learning-rate group: ``space_group``, ``composition``, ``lattice``, ``gnn`` (the context
        network and the shared element / Wyckoff embeddings) and ``atoms`` (the per-site heads and coordinates)."""
        gnn = [
            *self.element_embedding.parameters(),
            *self.wyckoff_embedding.parameters(),
            *self.gnn.parameters(),
            *self.context.parameters(),
        ]
        atoms = [*self.heads.parameters(), *self.coords.parameters()]
        return {
            "space_group": [*self.space_group_prior.parameters(), *self.space_group_given_comp.parameters()],
            "composition": list(self.composition.parameters()),
            "lattice": list(self.lattice.parameters()),
            "gnn": gnn,
            "atoms": atoms,
        }

    # ------------------------------------------------------------------------------- global factors
    def _global_terms(self, batch: Any, noise: Tensor | None = None) -> dict[str, Tensor]:
        sg = batch.space_group
        comp = batch.comp.to(self.lattice.sg_features.dtype)
        bsz = sg.shape[0]
        cap = self.group_capacity()
        n_c = comp.sum(1).round().long()
        out: dict[str, Tensor] = {}
        out["g"], out["z_g"] = self.space_group_prior(bsz, cap >= 1).log_prob_terms(sg - 1)
        out["g_c"], out["z_g_c"] = self.space_group_given_comp(comp, cap[None, :] >= n_c[:, None]).log_prob_terms(
            sg - 1
        )
        # p(C | G) and p(C) in one pass of the shared network (the second half gets the zero vector)
        ctx = torch.cat([self.composition(sg).context, self.composition(None, bsz).context])
        max_size = torch.cat([cap[sg - 1], cap.max().expand(bsz)])
        lp_c, z_c = CompositionDistribution(self.composition, ctx, max_size).log_prob_terms(torch.cat([comp, comp]))
        out["c_g"], out["c"], out["z_c_g"], out["z_c"] = lp_c[:bsz], lp_c[bsz:], z_c[:bsz], z_c[bsz:]
        out["l"], out["z_l"] = self.lattice(sg, comp).log_prob_terms(batch.lattice, noise)
        return out

    # --------------------------------------------------------------------------------- site factors
    def site_pieces(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(piece, anchored)`` (N,) of every site: piece ids (:mod:`.shapes`) and whether it is anchored."""
        n = batch.ptr[1:] - batch.ptr[:-1]
        crystal_of = torch.repeat_interleave(torch.arange(n.shape[0], device=n.device), n)
        first = torch.arange(batch.wyckoff.shape[0], device=n.device) == batch.ptr[:-1][crystal_of]
        anchored = first & self.polar[batch.space_group[crystal_of] - 1]
        return self.heads.piece_offset[batch.wyckoff, anchored.long()] + batch.shape, anchored

    def context_states(
        self,
        batch: Any,
        states: PrefixStates,
        cond_frac: Tensor,
        piece: Tensor,
        budget: int | Tensor | None = None,
        reduced: Tensor | None = None,
    ) -> tuple[Tensor, BuildState]:
        """GNN contexts h (S, H) and build states of ``states`` of the crystals of ``batch``, whose sites sit at
        ``cond_frac`` (the conditioning positions: clean, or noisy in training). ``reduced``: the crystals'
        reduced primitive bases (:func:`.periodic.primitive_reduced_basis`), computed when omitted."""
        sg, lat, ptr = batch.space_group, batch.lattice, batch.ptr
        if reduced is None:
            reduced = primitive_reduced_basis(sg, lat)
        edges = minimum_image_edges(cond_frac, piece, ptr, sg, lat, reduced)
        graph = prefix_graph(states, ptr, edges)
        g = self.gnn(graph, batch.wyckoff, batch.element, cond_frac, batch.mult, edges)
        tables = self.tables
        bs = prefix_build_state(
            states,
            ptr,
            sg,
            batch.wyckoff,
            batch.element,
            batch.comp > 0.5,
            tables,
            self.cfg.max_atoms if budget is None else budget,
        )
        volume = torch.linalg.det(reduced).abs()
        c = states.crystal
        h = self.context(
            g,
            bs.space_group,
            bs.comp,
            bs.comp & ~bs.present,
            bs.count,
            bs.budget,
            states.length,
            bs.last_wyckoff,
            bs.last_element,
            lat[c],
            volume[c],
        )
        return h, bs

    def site_terms(
        self, batch: Any, noise: float = 0.0, generator: torch.Generator | None = None, full: bool = False
    ) -> dict[str, Tensor]:
        """Per-crystal (B,) sums of the site factors' log-probabilities (keys of :data:`ATOM_FACTORS`), the z-loss
        term ``zsq`` and the mixture-weight log prior ``log_prior``, by teacher forcing of every prefix at once.

        ``noise`` > 0: the conditioning sites are moved by :func:`.periodic.wyckoff_noise` (Angstrom); the
        targets stay clean. ``full``: also return the per-state tensors (for tests): ``states``, the masked
        log-probability tables ``lp_*_all`` and their targets.
        """
        bsz = batch.space_group.shape[0]
        ptr, sg = batch.ptr, batch.space_group
        n = ptr[1:] - ptr[:-1]
        crystal_of = torch.repeat_interleave(torch.arange(bsz, device=ptr.device), n)
        frac = batch.frac.to(torch.float64)
        piece, anchored = self.site_pieces(batch)
        cond = frac
        if noise > 0:
            cond = wyckoff_noise(frac, piece, sg[crystal_of], batch.lattice[crystal_of], noise, generator)
        states = all_prefixes(ptr)
        h, bs = self.context_states(batch, states, cond, piece)
        tables = self.tables
        positions, pos_valid = candidate_positions(tables, bs.space_group)
        legal, elems = legal_moves(tables, bs, positions, pos_valid)
        stop_ok, cont_ok = stop_mask(bs, legal.any(-1).any(-1))
        lp_stop_all, z_stop = masked_log_softmax(self.heads.stop_logits(h), torch.stack([stop_ok, cont_ok], -1))
        is_end = states.target < 0
        lp_stop = lp_stop_all.gather(1, (~is_end).long().unsqueeze(-1)).squeeze(-1)
        # states that place a site: site `target` is drawn there
        ai = torch.nonzero(~is_end).squeeze(-1)
        t = states.target[ai]
        h_a = h[ai]
        w_t, a_t = batch.wyckoff[t], batch.element[t]
        col = w_t - tables.group_offset[sg[states.crystal[ai]] - 1]
        legal_a = legal[ai]
        w_ok = legal_a.any(-1)
        lp_w_all, z_w = masked_log_softmax(self.heads.wyckoff_logits(h_a, positions[ai], w_ok), w_ok)
        lp_w = lp_w_all.gather(1, col.unsqueeze(-1)).squeeze(-1)
        e_w = self.wyckoff_embedding(w_t)
        # elements: only the elements of C can be legal, so the categorical is computed over them
        elems_a = elems[ai]
        lp_a_all, z_a = masked_log_softmax(self.heads.element_logits(h_a, e_w, elems_a), element_choices(legal_a, col))
        lp_a = torch.where(elems_a == a_t.unsqueeze(-1), lp_a_all, torch.full_like(lp_a_all, -math.inf)).logsumexp(-1)
        e_a = self.element_embedding(a_t)
        cand, cand_ok = self.heads.pieces(w_t, anchored[t])
        lp_s_all, z_s = masked_log_softmax(self.heads.shape_logits(h_a, e_w, e_a, cand, cand_ok), cand_ok)
        lp_s = lp_s_all.gather(1, batch.shape[t].unsqueeze(-1)).squeeze(-1)
        dist = self.coords(torch.cat([h_a, e_w, e_a], -1), piece[t])
        lp_x, prior = dist.log_prob_terms(frac[t])
        ca = states.crystal[ai]

        def per_crystal(x: Tensor, idx: Tensor) -> Tensor:
            return torch.zeros(bsz, dtype=x.dtype, device=x.device).index_add(0, idx, x)

        out = {
            "wyckoff": per_crystal(lp_w, ca),
            "element": per_crystal(lp_a, ca),
            "shape": per_crystal(lp_s, ca),
            "coords": per_crystal(lp_x.to(lp_w.dtype), ca),
            "stop": per_crystal(lp_stop, states.crystal),
            "zsq": per_crystal(z_w + z_a + z_s, ca) + per_crystal(z_stop, states.crystal),
            "log_prior": per_crystal(prior.to(lp_w.dtype), ca),
        }
        if full:
            out.update(
                states=states,
                lp_stop_all=lp_stop_all,
                lp_w_all=lp_w_all,
                lp_a_all=lp_a_all,
                lp_s_all=lp_s_all,
                target_w=col,
                target_a=a_t,
                target_s=batch.shape[t],
                atom_states=ai,
                elements_a=elems_a,
            )
        return out

    # ------------------------------------------------------------------------------------- API
    def global_log_prob(self, batch: Any) -> dict[str, Tensor]:
        """``logp_space_group``, ``logp_composition`` and ``logp_lattice`` (B,) of ``batch.space_group``,
        ``batch.comp`` and ``batch.lattice`` (the first three terms of :meth:`log_prob`)."""
        t = self._global_terms(batch)
        joint = torch.logsumexp(torch.stack([t["g"] + t["c_g"], t["c"] + t["g_c"]]), 0) - LOG2
        comp = torch.logsumexp(torch.stack([t["c_g"], t["c"]]), 0) - LOG2
        return {"logp_space_group": joint - comp, "logp_composition": comp, "logp_lattice": t["l"]}

    def log_prob(self, batch: Any) -> dict[str, Tensor]:
        """Exact per-crystal log-likelihood terms (natural log): the keys of :data:`LOGP_KEYS`."""
        out = self.global_log_prob(batch)
        s = self.site_terms(batch)
        dtype = out["logp_lattice"].dtype
        for f in ATOM_FACTORS:
            out[f"logp_{f}"] = s[f].to(dtype)
        out["logp_total"] = sum(out[f"logp_{f}"] for f in FACTORS)
        return out

    def forward(
        self, batch: Any, train_cfg: TrainConfig, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss (mean over the batch) and per-factor NLL sums (detached) for logging.

        One of the two (G, C) orders is drawn per crystal; both are evaluated so that every parameter takes
        part in every step (DDP), and the unused order gets weight 0. The loss adds the z-loss of every
        categorical and the Dirichlet(1.0001) log prior of every coordinate mixture's weights (times
        ``train_cfg.mixture_prior``); the conditioning lattice and sites are noised (noisy teacher forcing).
        """
        sg = batch.space_group
        bsz = sg.shape[0]
        dev = batch.lattice.device
        order_gc = torch.rand(bsz, generator=generator).to(dev) < 0.5
        scale = torch.tensor(
            [train_cfg.lattice_noise_length] * 3 + [train_cfg.lattice_noise_angle] * 3, dtype=torch.float64
        )
        noise = ((torch.rand(bsz, 6, generator=generator, dtype=torch.float64) * 2 - 1) * scale).to(dev)
        t = self._global_terms(batch, noise)
        s = self.site_terms(batch, train_cfg.atom_noise, generator)
        parts = {
            "space_group": torch.where(order_gc, t["g"], t["g_c"]),
            "composition": torch.where(order_gc, t["c_g"], t["c"]),
            "lattice": t["l"],
            **{f: s[f] for f in ATOM_FACTORS},
        }
        c = train_cfg.rebalance_c
        total = sum(rebalance(v, c) if k in train_cfg.rebalance_factors else v for k, v in parts.items())
        zsq = t["z_g"] + t["z_g_c"] + t["z_c_g"] + t["z_c"] + t["z_l"] + s["zsq"]
        loss = -total.mean() + train_cfg.z_loss * zsq.mean() - train_cfg.mixture_prior * s["log_prior"].mean()
        stats = {f"nll_{k}": -v.detach().sum() for k, v in parts.items()}
        stats["nll_total"] = -sum(v.detach() for v in parts.values()).sum()
        return loss, stats

    @torch.no_grad()
    def sample_global(self, num: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Ancestral samples of (G, C, l) in the G-first order: ``space_group``, ``comp``, ``lattice``.

        ``generator`` is a CPU generator (or None) whatever the model's device: the space groups are drawn on the
        CPU and moved, as every other draw of the sampler (:func:`.factors.draw_categorical`)."""
        cap = self.group_capacity()
        probs = torch.softmax(self.space_group_prior(1, cap >= 1).logits[0], 0)
        sg = torch.multinomial(probs.cpu(), num, replacement=True, generator=generator).to(probs.device) + 1
        comp = self.composition.sample_sets(self.composition(sg).context, generator, max_size=cap[sg - 1])
        lat = self.lattice.sample_lattice(self.lattice(sg, comp).context, sg, generator)
        return {"space_group": sg, "comp": comp, "lattice": lat}


def _polar_table() -> Tensor:
    """(230,) bool: the 68 polar groups, whose first site is anchored in the normal form (its coordinates lie on
    one of its Wyckoff position's anchored pieces, ``WyckoffPosition.anchored_shapes``; :mod:`.shapes`)."""
    from .shapes import is_polar

    return torch.tensor([is_polar(n) for n in range(1, 231)], dtype=torch.bool)


def vocabulary_for(cfg: ModelConfig) -> tuple[int, ...]:
    """The element vocabulary of a model config (Z = 1..max_z)."""
    return tuple(range(1, cfg.max_z + 1))


def bins_for(cfg: ModelConfig, lattice: np.ndarray, space_group: np.ndarray) -> LatticeBins:
    """Data-determined lattice bins for a training set."""
    return LatticeBins.from_data(lattice, space_group, cfg.n_coarse, cfg.n_fine)
