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
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .factors import draw_categorical
from .infill import PartialSites, infill_moves
from .masks import candidate_positions, element_choices, legal_moves, stop_mask
from .model import ATOM_FACTORS, FACTORS
from .periodic import primitive_reduced_basis
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
    min_distance_tries: Tensor | None = None  # (B,) coordinate redraws of --min-distance (None when off)
    min_distance_ok: Tensor | None = None  # (B,) bool: every drawn site met the threshold

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
    idx = draw_categorical(logp.exp(), generator)
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
    capacity: Tensor | None = None,
    lattice: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(space_group, comp, lattice, logp_proposal)`` of ``num`` crystals (module docstring for the arguments:
    ``space_groups`` (230,) bool, ``elements``/``required`` (V,) bool). ``logp_proposal`` is the exact
    log-probability of (G, C, l) under the sampled mixture of both orders, constraints and temperature included.
    ``capacity`` (230,) replaces the groups' element capacities within the budget (in-filling reserves atoms and
    positions); ``lattice`` (6,) fixes the lattice (not drawn; no proposal term)."""
    dev = model.polar.device
    v = model.num_elements
    cap = model.group_capacity(max_atoms) if capacity is None else capacity.to(dev)  # (230,)
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
    if lattice is not None:
        return sg, comp, lattice.to(dev, torch.float64).expand(num, 6).clone(), lp
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


MIN_DISTANCE_TRIES = 100
"""How many times ``--min-distance`` redraws one site's coordinates before giving up (recorded per crystal)."""


def _check_sample_args(model: Any, num: Any, space_groups: Tensor | None, elements: Tensor | None,
                       required: Tensor | None, max_atoms: Any, temperature: float, min_distance: float | None) -> None:
    """``ValueError`` for arguments of :func:`sample` that would draw something else than asked (an empty element
    mask used to give pure-H crystals, a NaN temperature degenerate cells) or fail deep inside torch."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive whole number, got {num!r}")
    if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if min_distance is not None and not (isinstance(min_distance, (int, float)) and 0 < min_distance < math.inf):
        raise ValueError(f"min_distance must be a positive finite number of Angstrom, got {min_distance!r}")
    if max_atoms is not None and (isinstance(max_atoms, bool) or not isinstance(max_atoms, (int, np.integer))
                                  or max_atoms < 1):
        raise ValueError(f"max_atoms must be a positive whole number, got {max_atoms!r}")
    size = len(model.vocabulary)
    for name, mask, n in (("space_groups", space_groups, 230), ("elements", elements, size),
                          ("required", required, size)):
        if mask is None:
            continue
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (n,):
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{name} must be a bool tensor of shape ({n},), got {got}")
    if space_groups is not None and not bool(space_groups.any()):
        raise ValueError("space_groups allows no space group")
    if elements is not None and not bool(elements.any()):
        raise ValueError("elements allows no element")
    if elements is not None and required is not None and bool((required.cpu() & ~elements.cpu()).any()):
        raise ValueError("required asks for elements that elements does not allow")


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
    rescore: bool = False,
    partial: PartialSites | None = None,
    min_distance: float | None = None,
    max_tries: int = MIN_DISTANCE_TRIES,
) -> SampleBatch:
    """Draw ``num`` crystals (module docstring). ``space_groups`` (230,) bool, ``elements``/``required`` (V,) bool
    over the model's vocabulary; ``max_atoms`` at most the model's; ``partial``: in-filling (:mod:`.infill`);
    ``min_distance`` (Angstrom): redraw a site's coordinates (at most ``max_tries`` times) while any atom comes
    closer to it than that (:mod:`.distances`). ``logp`` is accumulated while drawing; ``rescore`` recomputes it
    by teacher forcing (:meth:`.model.CrystalARModel.log_prob`, one extra pass; the two agree to rounding)."""
    _check_sample_args(model, num, space_groups, elements, required, max_atoms, temperature, min_distance)
    model_budget = model.cfg.max_atoms
    budget = model_budget if max_atoms is None else min(int(max_atoms), model_budget)
    was_training = model.training
    model.eval()
    dev = model.polar.device
    cap_override = None
    fixed_lattice = None
    if partial is not None:
        if partial.budget != budget:
            raise ValueError(f"the partial crystal was prepared for a budget of {partial.budget} atoms, not {budget}")
        only = torch.zeros(230, dtype=torch.bool, device=dev)
        only[partial.space_group - 1] = True
        space_groups = only if space_groups is None else space_groups.to(dev) & only
        pe = partial.element_mask.to(dev)
        required = pe if required is None else required.to(dev) | pe
        cap_override = torch.zeros(230, dtype=torch.long, device=dev)
        cap_override[partial.space_group - 1] = partial.capacity
        if partial.lattice is not None:
            fixed_lattice = torch.tensor(partial.lattice, dtype=torch.float64, device=dev)
    sg, comp, lat, lp_prop = sample_global(
        model, num, generator, space_groups, elements, required, budget, temperature, cap_override, fixed_lattice
    )
    k_max = budget  # every site costs at least one atom
    wy = torch.zeros(num, k_max, dtype=torch.long, device=dev)
    el = torch.zeros_like(wy)
    sh = torch.zeros_like(wy)
    mu = torch.zeros_like(wy)
    pc = torch.zeros_like(wy)
    fr = torch.zeros(num, k_max, 3, dtype=torch.float64, device=dev)
    n_sites = torch.zeros(num, dtype=torch.long, device=dev)
    done = torch.zeros(num, dtype=torch.bool, device=dev)
    lp_site = {f: torch.zeros(num, dtype=torch.float64, device=dev) for f in ATOM_FACTORS}
    md_tries = torch.zeros(num, dtype=torch.long, device=dev)
    md_ok = torch.ones(num, dtype=torch.bool, device=dev)
    tables = model.tables
    user_masks = budget != model_budget or partial is not None
    import asu_geometry as ag

    mult_table = torch.tensor([wp.multiplicity for wp in ag.all_wyckoff_positions()], dtype=torch.long, device=dev)
    if partial is not None:
        next_p = torch.zeros(num, dtype=torch.long, device=dev)
        p_suffix_cost = partial.suffix_cost().to(dev)
        p_suffix_elem = partial.suffix_elements().to(dev)
        p_w, p_s = partial.wyckoff.to(dev), partial.shape.to(dev)
        p_x = partial.frac.to(dev)
        p_anch = torch.zeros(partial.size, dtype=torch.bool, device=dev)
        p_anch[0] = partial.anchored
        p_piece = model.heads.piece_offset[p_w, p_anch.long()] + p_s
    reduced = primitive_reduced_basis(sg, lat)  # the lattice is fixed from here on
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
        h, bs = model.context_states(b, states, fr[act][keep], pc[act][keep], reduced=reduced[act])  # model's own
        positions, pos_valid = candidate_positions(tables, bs.space_group)
        legal_m, elems = legal_moves(tables, bs, positions, pos_valid)  # the model's masks
        w_ok_m = legal_m.any(-1)
        stop_ok_m, cont_ok_m = stop_mask(bs, w_ok_m.any(-1))
        if partial is not None:
            user_state = replace(bs, budget=torch.full_like(bs.budget, budget))
            mv = infill_moves(partial, user_state, next_p[act], positions, pos_valid, p_suffix_cost, p_suffix_elem, n)
            legal_u, stop_ok_u = mv.legal, mv.stop_ok
        elif user_masks:
            legal_u, _ = legal_moves(tables, replace(bs, budget=torch.full_like(bs.budget, budget)), positions,
                                     pos_valid)
            stop_ok_u = stop_ok_m
        else:
            legal_u, stop_ok_u = legal_m, stop_ok_m
        w_ok_u = legal_u.any(-1)
        cont_ok_u = w_ok_u.any(-1)
        if not bool((stop_ok_u | cont_ok_u).all()):
            raise AssertionError("a sampled crystal reached a state without a legal move (mask bug)")
        stop_logits = model.heads.stop_logits(h)
        choice, lps = _draw(stop_logits, torch.stack([stop_ok_u, cont_ok_u], -1), temperature, generator)
        lp_prop[act] += lps.double()
        lp_site["stop"][act] += _model_lp(stop_logits, torch.stack([stop_ok_m, cont_ok_m], -1), choice)
        stop = choice == 0
        done[act[stop]] = True
        go = torch.nonzero(~stop).squeeze(-1)
        if go.numel() == 0:
            continue
        rows = act[go]
        hg = h[go]
        w_logits = model.heads.wyckoff_logits(hg, positions[go], w_ok_m[go])
        col, lpw = _draw(w_logits, w_ok_u[go], temperature, generator)
        w_new = positions[go].gather(1, col.unsqueeze(-1)).squeeze(-1)
        e_w = model.wyckoff_embedding(w_new)
        el_cand = elems[go]
        a_logits = model.heads.element_logits(hg, e_w, el_cand)
        j, lpa = _draw(a_logits, element_choices(legal_u[go], col), temperature, generator)
        a_new = el_cand.gather(1, j.unsqueeze(-1)).squeeze(-1)
        e_a = model.element_embedding(a_new)
        anchored = (n[go] == 0) & model.polar[sg[rows] - 1]
        cand, cand_ok = model.heads.pieces(w_new, anchored)
        s_logits = model.heads.shape_logits(hg, e_w, e_a, cand, cand_ok)
        s_new, lps_ = _draw(s_logits, cand_ok, temperature, generator)
        forced = torch.zeros_like(go, dtype=torch.bool)
        if partial is not None:
            has = mv.has_pending[go]
            forced = has & (col == mv.pending_col[go]) & (a_new == mv.pending_elem[go])
            fk = next_p[rows].clamp(max=partial.size - 1)
            s_new = torch.where(forced, p_s[fk], s_new)
            lps_ = torch.where(forced, torch.zeros_like(lps_), lps_)
        piece = cand.gather(1, s_new.unsqueeze(-1)).squeeze(-1)
        ctx = torch.cat([hg, e_w, e_a], -1)
        dist = model.coords(ctx, piece)
        x = dist.sample(generator=generator)
        if partial is not None and bool(forced.any()):
            x = torch.where(forced.unsqueeze(-1), p_x[fk], x)
        if min_distance is not None:
            x = _enforce_min_distance(
                model, ctx, piece, x, rows, ~forced, min_distance, max_tries, generator, md_tries, md_ok,
                sg, lat, wy, pc, fr, n_sites, (partial, next_p, p_piece, p_x) if partial is not None else None,
            )
            dist = model.coords(ctx, piece)
        lpx = dist.log_prob(x)
        lp_prop[rows] += lpw.double() + lpa.double() + lps_.double() + torch.where(forced, 0.0, lpx.double())
        lp_site["wyckoff"][rows] += _model_lp(w_logits, w_ok_m[go], col)
        lp_site["element"][rows] += _model_lp(a_logits, element_choices(legal_m[go], col), j)
        lp_site["shape"][rows] += _model_lp(s_logits, cand_ok, s_new)
        lp_site["coords"][rows] += lpx.double()
        k = n_sites[rows]
        wy[rows, k], el[rows, k], sh[rows, k], pc[rows, k] = w_new, a_new, s_new, piece
        mu[rows, k] = mult_table[w_new]
        fr[rows, k] = x.to(torch.float64)
        n_sites[rows] += 1
        if partial is not None:
            next_p[rows] += forced.long()
    if not bool(done.all()):
        raise AssertionError("sampling did not stop within the atom budget (mask bug)")
    if partial is not None and not bool((next_p == partial.size).all()):
        raise AssertionError("a sample stopped before every partial site was placed (mask bug)")
    keep = torch.arange(k_max, device=dev) < n_sites.unsqueeze(-1)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), torch.cumsum(n_sites, 0)])
    out = SampleBatch(
        sg, lat, comp, ptr, wy[keep], el[keep], sh[keep], fr[keep], mu[keep], {}, lp_prop, model.vocabulary,
        md_tries if min_distance is not None else None, md_ok if min_distance is not None else None,
    )
    logp = {k: v.double() for k, v in model.global_log_prob(out.as_batch()).items()}
    logp.update({f"logp_{f}": lp_site[f] for f in ATOM_FACTORS})
    logp["logp_total"] = sum(logp[f"logp_{f}"] for f in FACTORS)
    out.logp = logp
    if rescore:
        out.logp = {k: v.double() for k, v in model.log_prob(out.as_batch()).items()}
    if was_training:
        model.train()
    return out


def _model_lp(logits: Tensor, mask: Tensor, idx: Tensor) -> Tensor:
    """The model's (untempered) log-probability of entry ``idx`` (S,) under its own mask (float64)."""
    return torch.log_softmax(logits.masked_fill(~mask, NEG_INF), -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1).double()


def _enforce_min_distance(
    model: Any,
    ctx: Tensor,
    piece: Tensor,
    x: Tensor,
    rows: Tensor,
    drawn: Tensor,
    threshold: float,
    max_tries: int,
    generator: torch.Generator | None,
    tries: Tensor,
    ok: Tensor,
    sg: Tensor,
    lat: Tensor,
    wy: Tensor,
    pc: Tensor,
    fr: Tensor,
    n_sites: Tensor,
    infill: tuple[PartialSites, Tensor, Tensor, Tensor] | None,
) -> Tensor:
    """Redraw the coordinates of the new sites (``drawn`` among ``rows``) that come closer than ``threshold``
    to any atom already placed or still pending (images included), at most ``max_tries`` times; updates
    ``tries`` (redraws per crystal) and ``ok`` (whether every site met the threshold) in place."""
    from .distances import nearest_distances

    dev = x.device
    others = _other_sites(rows, pc, fr, n_sites, infill)

    def too_close(idx: Tensor) -> Tensor:
        r = rows[idx]  # one new site per crystal
        slot = torch.full((sg.shape[0],), -1, dtype=torch.long, device=dev)
        slot[r] = torch.arange(r.numel(), device=dev)
        sel = slot[others[2]] >= 0
        d = nearest_distances(x[idx], piece[idx], torch.arange(r.numel(), device=dev), others[0][sel],
                              others[1][sel], slot[others[2][sel]], sg[r], lat[r])
        return d < threshold

    idx = torch.nonzero(drawn).squeeze(-1)
    if idx.numel() == 0:
        return x
    bad = idx[too_close(idx)]
    movable = model.coords.piece_dim[piece[bad]] > 0
    ok[rows[bad[~movable]]] = False  # a 0-D site cannot move
    bad = bad[movable]
    for _ in range(max_tries):
        if bad.numel() == 0:
            break
        x = x.clone()
        x[bad] = model.coords(ctx[bad], piece[bad]).sample(generator=generator)
        tries[rows[bad]] += 1
        bad = bad[too_close(bad)]
    ok[rows[bad]] = False
    return x


def _other_sites(
    rows: Tensor, pc: Tensor, fr: Tensor, n_sites: Tensor, infill: tuple[PartialSites, Tensor, Tensor, Tensor] | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(frac, piece, crystal)`` of the sites placed in the crystals ``rows`` and of their pending partial sites."""
    k_max = pc.shape[1]
    n = n_sites[rows]
    keep = torch.arange(k_max, device=pc.device) < n.unsqueeze(-1)
    crystal = rows.unsqueeze(-1).expand(-1, k_max)[keep]
    frac, piece = fr[rows][keep], pc[rows][keep]
    if infill is not None:
        partial, next_p, p_piece, p_x = infill
        pend = torch.arange(partial.size, device=pc.device) >= next_p[rows].unsqueeze(-1)  # (R, P)
        r_idx, k_idx = pend.nonzero(as_tuple=True)
        frac = torch.cat([frac, p_x[k_idx]])
        piece = torch.cat([piece, p_piece[k_idx]])
        crystal = torch.cat([crystal, rows[r_idx]])
    return frac, piece, crystal


def proposal_matches(batch: SampleBatch, atol: float = 1e-3) -> bool:
    """Whether the accumulated proposal log-probabilities equal the re-scored ``logp_total`` (no constraints,
    temperature 1): a consistency check between sampling and scoring."""
    return bool(torch.allclose(batch.logp_proposal, batch.logp["logp_total"], atol=atol, rtol=0)) and not math.isnan(
        float(batch.logp_proposal.sum())
    )
