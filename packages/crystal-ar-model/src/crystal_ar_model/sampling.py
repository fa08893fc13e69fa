r"""Vectorised ancestral sampling from :class:`.model.CrystalARModel`.

Order of the draws (the model's own factorisation):

1. the order of (G, C): G first or C first with probability 1/2 each (the model's p(G, C) is the mixture of both
   orders), then the space group and the composition space from p(G) p(C | G) or p(C) p(G | C);
2. the lattice from p(l | G, C) (bin centres of the discretised lattice);
3. sites until stop: at every step **one** batched GNN call evaluates all unfinished crystals as they stand,
   then stop, Wyckoff position, element, piece and coordinates are drawn for each of them at once (no loop over
   crystals). The masks of :mod:`.masks` guarantee a legal move or a legal stop in every state, so every
   crystal finishes within ``max_atoms`` steps.

Hard constraints are masks on the same factors, never rejection: ``space_groups`` restricts G (renormalised),
``elements`` C to a subset, ``required`` C to a superset, ``max_atoms`` lowers the atom budget (every factor's
mask, global ones included, uses it). ``temperature`` divides every categorical's logits (the coordinate
densities are not tempered).

:func:`sample` returns the crystals as ``asu_geometry.AsuCrystal`` (sites in construction order) with two
log-probabilities per crystal: ``logp`` -- the model's exact, untempered, unconstrained per-factor
log-likelihood of the construction sequence drawn (by re-scoring it with :meth:`.model.CrystalARModel.log_prob`)
-- and ``logp_proposal`` -- the log-probability under the distribution actually sampled (constraints and
temperature included), accumulated while drawing. Without constraints at temperature 1 the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from .masks import candidate_positions, element_choices, legal_moves, stop_mask
from .prefix import final_states

NEG_INF = float("-inf")


@dataclass
class SampleBatch:
    """Sampled crystals: tensors in construction order and the log-probabilities (see the module docstring)."""

    space_group: Tensor  # (B,) 1..230
    lattice: Tensor  # (B, 6)
    comp: Tensor  # (B, V) multi-hot
    ptr: Tensor  # (B + 1,) site offsets
    wyckoff: Tensor  # (N,) global Wyckoff index
    element: Tensor  # (N,) vocabulary index
    shape: Tensor  # (N,) shape index (into the anchored sections for an anchored site)
    frac: Tensor  # (N, 3) float64
    mult: Tensor  # (N,)
    logp: dict[str, Tensor]  # the model's per-factor log-likelihoods of the drawn sequences (B,)
    logp_proposal: Tensor  # (B,) log-probability under the sampled (constrained, tempered) distribution
    vocabulary: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.space_group.shape[0])

    def as_batch(self) -> Any:
        """The same crystals as a model batch (what :meth:`CrystalARModel.log_prob` takes)."""
        return SimpleNamespace(
            space_group=self.space_group,
            lattice=self.lattice,
            comp=self.comp,
            ptr=self.ptr,
            wyckoff=self.wyckoff,
            element=self.element,
            shape=self.shape,
            frac=self.frac,
            mult=self.mult,
            num_graphs=len(self),
        )

    def crystals(self) -> list[Any]:
        """``asu_geometry.AsuCrystal`` objects (sites in construction order)."""
        import asu_geometry as ag

        from .elements import symbol

        wps = ag.all_wyckoff_positions()
        sg = self.space_group.tolist()
        lat = self.lattice.tolist()
        ptr = self.ptr.tolist()
        w, e, s, x = self.wyckoff.tolist(), self.element.tolist(), self.shape.tolist(), self.frac.tolist()
        out = []
        for c in range(len(self)):
            sites = tuple(
                ag.AsuSite(symbol(self.vocabulary[e[i]]), wps[w[i]].letter, int(s[i]), tuple(x[i]))  # type: ignore[arg-type]
                for i in range(ptr[c], ptr[c + 1])
            )
            out.append(ag.AsuCrystal(int(sg[c]), tuple(lat[c]), sites))  # type: ignore[arg-type]
        return out


def _draw(logits: Tensor, mask: Tensor, temperature: float, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """A draw from the masked, tempered categorical per row and its log-probability."""
    lg = (logits / temperature).masked_fill(~mask, NEG_INF)
    logp = torch.log_softmax(lg, -1)
    idx = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    return idx, logp.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample_global(
    model: Any,
    num: int,
    generator: torch.Generator | None = None,
    space_groups: Tensor | None = None,
    elements: Tensor | None = None,
    required: Tensor | None = None,
    max_atoms: int | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(space_group, comp, lattice, logp_proposal)`` of ``num`` crystals (module docstring for the arguments:
    ``space_groups`` (230,) bool, ``elements``/``required`` (V,) bool). ``logp_proposal`` is the exact
    log-probability of (G, C, l) under the sampled mixture of both orders, constraints and temperature included."""
    dev = model.polar.device
    v = model.num_elements
    cap = model.group_capacity(max_atoms)  # (230,)
    n_req = int(required.sum()) if required is not None else 0
    groups_ok = cap >= max(1, n_req)
    if space_groups is not None:
        groups_ok &= space_groups.to(dev)
    if not bool(groups_ok.any()):
        raise ValueError("no allowed space group can hold the required elements within the atom budget")
    c_max = cap[groups_ok].max()
    g_first = torch.rand(num, generator=generator).to(dev) < 0.5
    sg = torch.zeros(num, dtype=torch.long, device=dev)
    comp = torch.zeros(num, v, device=dev, dtype=model.space_group_prior.logits.dtype)
    gi = torch.nonzero(g_first).squeeze(-1)
    if gi.numel():  # p(G), then p(C | G)
        logits = model.space_group_prior(gi.numel()).logits
        g, _ = _draw(logits, groups_ok.expand_as(logits), temperature, generator)
        sg[gi] = g + 1
        ctx = model.composition(g + 1).context
        comp[gi] = model.composition.sample_sets(ctx, generator, cap[g], elements, required, temperature)
    ci = torch.nonzero(~g_first).squeeze(-1)
    if ci.numel():  # p(C), then p(G | C)
        ctx = model.composition(None, ci.numel()).context
        c = model.composition.sample_sets(ctx, generator, c_max.expand(ci.numel()), elements, required, temperature)
        comp[ci] = c
        logits = model.space_group_given_comp.net(c)
        g, _ = _draw(logits, _groups_given(cap, groups_ok, c), temperature, generator)
        sg[ci] = g + 1
    # exact proposal log-probability of (G, C): the mixture of both orders under the masked, tempered factors
    lp_g = torch.log_softmax((model.space_group_prior.logits / temperature).masked_fill(~groups_ok, NEG_INF), -1)
    lp_a = lp_g[sg - 1].double() + _proposal_comp(
        model, model.composition(sg).context, comp, cap[sg - 1], elements, required, temperature
    )
    lg_gc = (model.space_group_given_comp.net(comp) / temperature).masked_fill(
        ~_groups_given(cap, groups_ok, comp), NEG_INF
    )
    lp_b = torch.log_softmax(lg_gc, -1).gather(1, (sg - 1).unsqueeze(-1)).squeeze(-1).double() + _proposal_comp(
        model, model.composition(None, num).context, comp, c_max.expand(num), elements, required, temperature
    )
    lp = torch.logsumexp(torch.stack([lp_a, lp_b]), 0) - math.log(2.0)
    dist = model.lattice(sg, comp)
    lat = model.lattice.sample_lattice(dist.context, sg, generator, temperature)
    lp = lp + model.lattice.lattice_log_prob(dist.context, sg, lat, temperature=temperature)[0].double()
    return sg, comp, lat, lp


def _groups_given(cap: Tensor, groups_ok: Tensor, comp: Tensor) -> Tensor:
    """(B, 230): allowed groups that can hold the |C| elements of each composition space."""
    n_c = comp.sum(-1).round().long()
    return groups_ok[None, :] & (cap[None, :] >= n_c[:, None])


def _proposal_comp(
    model: Any,
    ctx: Tensor,
    comp: Tensor,
    max_size: Tensor,
    elements: Tensor | None,
    required: Tensor | None,
    temperature: float,
) -> Tensor:
    """log-probability of element sets under the masked, tempered composition sampler (for ``logp_proposal``)."""
    f = model.composition
    if elements is None and required is None and temperature == 1.0:
        return f.sequence_log_prob(ctx, comp, max_size)[0].double()
    bsz, v = comp.shape
    present = comp > 0.5
    n = present.sum(1)
    k = int(n.max()) if bsz else 0
    key = torch.where(present, torch.arange(v, device=comp.device).expand(bsz, v), torch.full_like(n, v)[:, None])
    idx = key.sort(1).values[:, :k]
    total = torch.zeros(bsz, dtype=torch.float64, device=comp.device)
    last = torch.full((bsz,), f.stop, dtype=torch.long, device=comp.device)
    set_sum = torch.zeros_like(ctx)
    req = None if required is None else required.to(comp.device).expand(bsz, v).clone()
    allow = None if elements is None else elements.to(comp.device).expand(bsz, v)
    ar = torch.arange(v, device=comp.device)
    for step in range(k + 1):
        nxt, step_allow = None, allow
        if req is not None:
            nxt = torch.where(req, ar, torch.full_like(ar, v)).min(-1).values
            optional = step + 1 + req.sum(-1) <= max_size
            step_allow = (req | optional.unsqueeze(-1)) & (allow if allow is not None else True)
        logits = f._step_logits(ctx, set_sum, last, torch.full_like(n, step) < max_size, step_allow, nxt) / temperature
        lpz = torch.log_softmax(logits, -1)
        active = step <= n
        tgt = torch.where(step < n, idx[:, min(step, max(k - 1, 0))] if k else last, torch.full_like(n, f.stop))
        total += torch.where(active, lpz.gather(1, tgt.unsqueeze(-1)).squeeze(-1).double(), torch.zeros_like(total))
        placed = step < n
        e = torch.where(placed, tgt, torch.zeros_like(tgt))
        set_sum = set_sum + f._embed(e) * placed.unsqueeze(-1)
        last = torch.where(placed, tgt, last)
        if req is not None:
            req[placed, e[placed]] = False
    return total


@torch.no_grad()
def sample(
    model: Any,
    num: int,
    generator: torch.Generator | None = None,
    space_groups: Tensor | None = None,
    elements: Tensor | None = None,
    required: Tensor | None = None,
    max_atoms: int | None = None,
    temperature: float = 1.0,
    rescore: bool = True,
) -> SampleBatch:
    """Draw ``num`` crystals (module docstring). ``space_groups`` (230,) bool, ``elements``/``required`` (V,) bool
    over the model's vocabulary; ``max_atoms`` at most the model's; ``rescore``: compute ``logp`` (one extra
    scoring pass; without it ``logp`` is empty)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    budget = model.cfg.max_atoms if max_atoms is None else min(int(max_atoms), model.cfg.max_atoms)
    was_training = model.training
    model.eval()
    dev = model.polar.device
    sg, comp, lat, lp_prop = sample_global(model, num, generator, space_groups, elements, required, budget, temperature)
    k_max = budget  # every site costs at least one atom
    wy = torch.zeros(num, k_max, dtype=torch.long, device=dev)
    el = torch.zeros_like(wy)
    sh = torch.zeros_like(wy)
    mu = torch.zeros_like(wy)
    pc = torch.zeros_like(wy)
    fr = torch.zeros(num, k_max, 3, dtype=torch.float64, device=dev)
    n_sites = torch.zeros(num, dtype=torch.long, device=dev)
    done = torch.zeros(num, dtype=torch.bool, device=dev)
    tables = model.tables
    import asu_geometry as ag

    mult_table = torch.tensor([wp.multiplicity for wp in ag.all_wyckoff_positions()], dtype=torch.long, device=dev)
    for _ in range(k_max + 1):
        act = torch.nonzero(~done).squeeze(-1)
        if act.numel() == 0:
            break
        n = n_sites[act]
        ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), torch.cumsum(n, 0)])
        keep = torch.arange(k_max, device=dev) < n.unsqueeze(-1)
        b = SimpleNamespace(
            space_group=sg[act],
            lattice=lat[act],
            comp=comp[act],
            ptr=ptr,
            wyckoff=wy[act][keep],
            element=el[act][keep],
            shape=sh[act][keep],
            mult=mu[act][keep],
        )
        states = final_states(ptr)
        h, bs = model.context_states(b, states, fr[act][keep], pc[act][keep], budget)
        positions, pos_valid = candidate_positions(tables, bs.space_group)
        legal, elems = legal_moves(tables, bs, positions, pos_valid)
        w_ok = legal.any(-1)
        stop_ok, cont_ok = stop_mask(bs, w_ok.any(-1))
        if not bool((stop_ok | cont_ok).all()):
            raise AssertionError("a sampled crystal reached a state without a legal move (mask bug)")
        choice, lps = _draw(model.heads.stop_logits(h), torch.stack([stop_ok, cont_ok], -1), temperature, generator)
        lp_prop[act] += lps.double()
        stop = choice == 0
        done[act[stop]] = True
        go = torch.nonzero(~stop).squeeze(-1)
        if go.numel() == 0:
            continue
        rows = act[go]
        hg = h[go]
        col, lpw = _draw(model.heads.wyckoff_logits(hg, positions[go], w_ok[go]), w_ok[go], temperature, generator)
        w_new = positions[go].gather(1, col.unsqueeze(-1)).squeeze(-1)
        e_w = model.wyckoff_embedding(w_new)
        el_cand = elems[go]
        j, lpa = _draw(
            model.heads.element_logits(hg, e_w, el_cand), element_choices(legal[go], col), temperature, generator
        )
        a_new = el_cand.gather(1, j.unsqueeze(-1)).squeeze(-1)
        e_a = model.element_embedding(a_new)
        anchored = (n[go] == 0) & model.polar[sg[rows] - 1]
        cand, cand_ok = model.heads.pieces(w_new, anchored)
        s_new, lps_ = _draw(model.heads.shape_logits(hg, e_w, e_a, cand, cand_ok), cand_ok, temperature, generator)
        piece = cand.gather(1, s_new.unsqueeze(-1)).squeeze(-1)
        dist = model.coords(torch.cat([hg, e_w, e_a], -1), piece)
        x = dist.sample(generator=generator)
        lpx = dist.log_prob(x)
        lp_prop[rows] += lpw.double() + lpa.double() + lps_.double() + lpx.double()
        k = n_sites[rows]
        wy[rows, k], el[rows, k], sh[rows, k], pc[rows, k] = w_new, a_new, s_new, piece
        mu[rows, k] = mult_table[w_new]
        fr[rows, k] = x.to(torch.float64)
        n_sites[rows] += 1
    if not bool(done.all()):
        raise AssertionError("sampling did not stop within the atom budget (mask bug)")
    keep = torch.arange(k_max, device=dev) < n_sites.unsqueeze(-1)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), torch.cumsum(n_sites, 0)])
    out = SampleBatch(
        sg, lat, comp, ptr, wy[keep], el[keep], sh[keep], fr[keep], mu[keep], {}, lp_prop, model.vocabulary
    )
    if rescore:
        out.logp = {k: v.double() for k, v in model.log_prob(out.as_batch()).items()}
    if was_training:
        model.train()
    return out


def proposal_matches(batch: SampleBatch, atol: float = 1e-3) -> bool:
    """Whether the accumulated proposal log-probabilities equal the re-scored ``logp_total`` (no constraints,
    temperature 1): a consistency check between sampling and scoring."""
    return bool(torch.allclose(batch.logp_proposal, batch.logp["logp_total"], atol=atol, rtol=0)) and not math.isnan(
        float(batch.logp_proposal.sum())
    )
