r"""In-filling: the sites of a partial crystal are kept verbatim in every sample, the rest is drawn from the model.

A partial crystal (:class:`.constraints.PartialCrystal`: a space group G, optionally the lattice, some sites)
is turned into *forced moves* of the construction sequence (the seed paper's in-filling, here for any subset of
sites):

* G is fixed, C must contain the partial crystal's elements, and the lattice is fixed when given;
* the partial sites are sorted in construction order (Wyckoff index, element, coordinates). At every step the
  next *pending* partial site p restricts the moves: either a new site whose (position, element) comes strictly
  before p's, or p itself, placed verbatim (its shape and coordinates are not drawn). The model's own
  categorical over these moves decides which: the draw of (w_p, a_p) places p. A new site may never take a
  0-D position that a partial site holds, and stop is masked while sites are pending;
* the atom budget accounts for the pending sites: their primitive-cell atoms are reserved, their elements count
  as present, and the 0-D positions they hold are no slot for other elements
  (:func:`.masks.tables_with_reserved_points`).
  A move is legal iff, after it, the pending sites and one site per still-missing element fit into the budget
  (exact, as for :mod:`.masks`), so sampling never reaches a state without a legal move.

Polar groups. In the 68 polar groups the origin along the free directions is not fixed by symmetry: the normal
form anchors site 0 (the first in construction order) on :attr:`asu_geometry.SpaceGroup.anchor`, and a partial
crystal only fixes its sites *relative to each other* along those directions. We make the partial crystal's
first site (least position, then element, then coordinates) the anchored site 0: the whole partial crystal is
translated along the free directions so that this site lies on the anchor (a translation that maps the crystal
onto itself), and new sites are masked before it (at step 0 only the forced move is legal). Samples in a polar
group are therefore drawn from the model conditioned on "the partial crystal is present *and provides site 0*".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .constraints import ConstraintError, PartialCrystal, symbols
from .masks import INF, BudgetTables, BuildState, legal_moves, tables_with_reserved_points

SAME_SITE_TOL = 1e-6  # fractional: two partial sites closer than this in their ASU representatives are one orbit


@dataclass(frozen=True)
class PartialSites:
    """A partial crystal prepared for the sampler: its sites in construction order as model tensors (CPU).

    ``shape`` indexes ``wp.anchored_shapes`` for site 0 of a polar group (``anchored``), ``wp.shapes``
    otherwise. ``translation`` is the shift applied along the free directions of a polar group (zero otherwise).
    ``tables``: the budget tables with the partial 0-D positions reserved; ``capacity``: the most distinct
    elements a sample can hold (the partial crystal's included) within ``budget`` atoms.
    """

    space_group: int
    lattice: tuple[float, ...] | None
    wyckoff: Tensor  # (P,) long, global Wyckoff index
    element: Tensor  # (P,) long, vocabulary index
    shape: Tensor  # (P,) long
    frac: Tensor  # (P, 3) float64
    anchored: bool  # site 0 is anchored (polar group)
    prim_cost: Tensor  # (P,) long: atoms in the primitive cell
    element_mask: Tensor  # (V,) bool: elements of the partial crystal
    tables: BudgetTables
    budget: int
    capacity: int
    translation: tuple[float, float, float]

    @property
    def size(self) -> int:
        """Number of sites of the partial crystal."""
        return int(self.wyckoff.shape[0])

    def suffix_cost(self) -> Tensor:
        """(P + 1,) atoms of the sites k..P-1 (what is still reserved when k sites are placed)."""
        c = self.prim_cost.flip(0).cumsum(0).flip(0)
        return torch.cat([c, torch.zeros(1, dtype=torch.long)])

    def suffix_elements(self) -> Tensor:
        """(P + 1, V) bool: elements of the sites k..P-1."""
        v = self.element_mask.shape[0]
        out = torch.zeros(self.size + 1, v, dtype=torch.bool)
        for k in range(self.size - 1, -1, -1):
            out[k] = out[k + 1]
            out[k, self.element[k]] = True
        return out

    def sites(self, vocabulary: tuple[int, ...]) -> list[Any]:
        """The sites as ``asu_geometry.AsuSite`` (construction order), as they appear in every sample."""
        import asu_geometry as ag

        from .elements import symbol

        wps = ag.all_wyckoff_positions()
        return [
            ag.AsuSite(symbol(vocabulary[int(e)]), wps[int(w)].letter, int(s), tuple(float(v) for v in x))  # type: ignore[arg-type]
            for w, e, s, x in zip(self.wyckoff, self.element, self.shape, self.frac.tolist(), strict=True)
        ]


def _anchored_shape_index(sg: int, wyckoff_local: int, x: np.ndarray) -> int:
    """Index into ``wp.anchored_shapes`` of the anchored piece containing ``x`` (the normal form's own matcher)."""
    from asu_geometry.normalform import _anchored_candidates

    cands = _anchored_candidates(sg)[wyckoff_local]
    dist, col, _, _ = cands.match(x[None, :])
    if cands.size == 0 or float(dist[0]) > 1e-8:
        raise ConstraintError(f"space group {sg}: no anchored piece of position {wyckoff_local} contains {x.tolist()}")
    return int(cands.shape_index[int(col[0])])


def prepare_partial(partial: PartialCrystal, model: Any, budget: int) -> PartialSites:
    """Check a partial crystal against the model and the atom budget and put it in construction order.

    Raises :class:`.constraints.ConstraintError` for an element outside the model's vocabulary, two sites on
    one orbit, more atoms than ``budget`` and a lattice without mass under the model.
    """
    import asu_geometry as ag

    from .elements import symbol

    sg = partial.space_group
    g = ag.space_group(sg)
    vocab = {z: i for i, z in enumerate(model.vocabulary)}
    z_of = {symbol(z): z for z in model.vocabulary}
    outside = sorted({s.element for s in partial.sites} - set(z_of))
    if outside:
        raise ConstraintError(f"the partial crystal contains {', '.join(outside)}, outside the model's element "
                              f"vocabulary ({symbol(model.vocabulary[0])}..{symbol(model.vocabulary[-1])})")
    local = {wp.letter: i for i, wp in enumerate(g.wyckoff_positions)}
    frac = np.array([s.frac_coords for s in partial.sites], dtype=np.float64)
    w_loc = np.array([local[s.wyckoff] for s in partial.sites])
    elem = np.array([vocab[z_of[s.element]] for s in partial.sites])
    # one orbit, one site: equal letters and representatives
    for i in range(len(frac)):
        for j in range(i):
            if w_loc[i] == w_loc[j] and np.max(np.abs(frac[i] - frac[j])) < SAME_SITE_TOL:
                raise ConstraintError(f"partial crystal sites {j} and {i} are the same orbit "
                                      f"({g.wyckoff_positions[w_loc[i]].label} at {np.round(frac[i], 6).tolist()})")
    order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], elem, w_loc))
    frac, w_loc, elem = frac[order], w_loc[order], elem[order]
    shape = np.array([s.shape_index for s in partial.sites])[order]
    shift = np.zeros(3)
    if g.is_polar:
        axes = list(g.free_axes)
        shift[axes] = np.array([float(v) for v in g.anchor]) - frac[0, axes]
        moved = frac + shift
        pts = ag.to_asu_points(sg, moved[1:], tol=1e-6) if len(moved) > 1 else None
        if pts is not None:
            if list(pts.letters) != [g.wyckoff_positions[w].letter for w in w_loc[1:]]:
                raise AssertionError("a translation along the free directions changed a Wyckoff letter")
            moved[1:] = np.where(np.abs(pts.frac) < 1e-12, 0.0, pts.frac)
            shape[1:] = pts.shape_index
        moved[0, axes] = np.array([float(v) for v in g.anchor])
        shape[0] = _anchored_shape_index(sg, int(w_loc[0]), moved[0])
        frac = moved
    offset = g.wyckoff_positions[0].index
    wyckoff = torch.as_tensor(w_loc + offset, dtype=torch.long)
    base = model.tables
    pm = base.prim_mult.cpu()[wyckoff]
    reserve = int(pm.sum())
    if reserve > budget:
        raise ConstraintError(f"the partial crystal has {reserve} atoms in the primitive cell, more than the budget "
                              f"of {budget} atoms (--max-atoms or the model's limit)")
    zero_dim = base.zero_dim.cpu()[wyckoff]
    held = wyckoff[zero_dim]
    if len(set(held.tolist())) < int(held.numel()):
        raise ConstraintError("the partial crystal has two sites on one 0-D Wyckoff position")
    tables = tables_with_reserved_points(base, sg, held.tolist())
    n_elem = len(set(elem.tolist()))
    if g.is_polar:  # new elements only after site 0 (no reuse of its position: conservative, never a dead end)
        extra_cost = tables.after_cost[int(wyckoff[0])].cpu()
    else:
        extra_cost = tables.start_cost[sg - 1].cpu()
    extra = int((reserve + extra_cost <= budget).sum()) - 1  # column 0 (no extra element) always fits
    capacity = min(n_elem + extra, int(model.group_capacity(budget)[sg - 1]))
    emask = torch.zeros(model.num_elements, dtype=torch.bool)
    emask[torch.as_tensor(elem)] = True
    out = PartialSites(
        sg,
        partial.lattice,
        wyckoff,
        torch.as_tensor(elem, dtype=torch.long),
        torch.as_tensor(shape, dtype=torch.long),
        torch.as_tensor(frac, dtype=torch.float64),
        bool(g.is_polar),
        pm.long(),
        emask,
        tables,
        budget,
        capacity,
        tuple(float(v) for v in shift),  # type: ignore[arg-type]
    )
    if partial.lattice is not None:
        _check_lattice(model, out)
    return out


def _check_lattice(model: Any, partial: PartialSites) -> None:
    """A given lattice must satisfy the family's equalities and have mass under the model's lattice factor."""
    import asu_geometry as ag
    from asu_geometry.crystal import symmetrize_lattice

    g = ag.space_group(partial.space_group)
    lat = partial.lattice
    assert lat is not None
    sym = symmetrize_lattice(g.crystal_system, lat)
    if not np.allclose(sym, lat, rtol=0, atol=1e-6):
        raise ConstraintError(f"the partial crystal's lattice {list(lat)} does not have the {g.crystal_system} "
                              f"form of space group {g.symbol} ({g.number}), e.g. {[round(v, 6) for v in sym]}")
    dev = model.polar.device
    comp = partial.element_mask.to(dev, model.space_group_prior.logits.dtype).unsqueeze(0)
    sgt = torch.tensor([partial.space_group], device=dev)
    with torch.no_grad():
        lp = model.lattice(sgt, comp).log_prob(torch.tensor([lat], dtype=torch.float64, device=dev))
    if not bool(torch.isfinite(lp).all()):
        raise ConstraintError(f"the partial crystal's lattice {list(lat)} has probability 0 under the model's "
                              "lattice factor (outside its bins)")


# ------------------------------------------------------------------------------------------------- masks
@dataclass
class InfillMoves:
    """Legal moves of S states under in-filling: ``legal (S, W, Kc)`` over the candidate positions and the
    elements of C (``elements``), which entry is the pending site (``pending_col``, ``pending_elem``; only where
    ``has_pending``) and whether stop is allowed."""

    legal: Tensor
    elements: Tensor
    has_pending: Tensor
    pending_col: Tensor
    pending_elem: Tensor
    stop_ok: Tensor


def infill_moves(
    partial: PartialSites,
    state: BuildState,
    next_site: Tensor,
    positions: Tensor,
    pos_valid: Tensor,
    suffix_cost: Tensor,
    suffix_elements: Tensor,
    sites_placed: Tensor,
) -> InfillMoves:
    """The legal moves of states with ``next_site`` (S,) partial sites placed (module docstring).

    ``state`` is the true build state (the model's context) with the user's budget; ``suffix_cost`` /
    ``suffix_elements`` from :meth:`PartialSites.suffix_cost` / :meth:`PartialSites.suffix_elements` (on the
    states' device); ``sites_placed`` (S,): sites placed so far (0: in a polar group only the pending site).
    """
    dev = state.count.device
    tables = partial.tables
    n_p = partial.size
    has = next_site < n_p
    k = next_site.clamp(max=max(n_p - 1, 0))
    pw = partial.wyckoff.to(dev)[k]
    pa = partial.element.to(dev)[k]
    present = state.present | suffix_elements[next_site]
    st = BuildState(state.space_group, state.last_wyckoff, state.last_element, state.count, state.comp, present,
                    state.budget - suffix_cost[next_site])
    legal, elems = legal_moves(tables, st, positions, pos_valid)
    # new sites strictly before the pending one, never on a 0-D position it holds
    same_pos = positions == pw.unsqueeze(-1)
    before = (positions < pw.unsqueeze(-1)).unsqueeze(-1) | (
        (same_pos & ~tables.zero_dim[pw].unsqueeze(-1)).unsqueeze(-1) & (elems < pa.unsqueeze(-1)).unsqueeze(1)
    )
    if partial.anchored:
        before &= (sites_placed > 0).view(-1, 1, 1)
    legal &= before | ~has.view(-1, 1, 1)
    # the pending site itself: order, and the budget of the rest after it
    missing = st.comp & ~present
    n_miss = missing.sum(-1)
    v = missing.shape[1]
    larger = missing & (torch.arange(v, device=dev) > pa.unsqueeze(-1))
    k1 = tables.max_atoms
    cost = tables.lookahead[pw, n_miss.clamp(max=k1), larger.sum(-1).clamp(max=k1)]
    cost = torch.where(n_miss > k1, torch.full_like(cost, INF), cost)
    fits = state.count + suffix_cost[next_site] + cost <= state.budget
    order = (pw > state.last_wyckoff) | (
        (pw == state.last_wyckoff) & ~tables.zero_dim[pw] & (pa >= state.last_element)
    )
    col = pw - tables.group_offset[state.space_group - 1]
    j = (elems == pa.unsqueeze(-1)).long().argmax(-1)
    rows = torch.nonzero(has).squeeze(-1)
    legal[rows, col[rows], j[rows]] = (fits & order)[rows]
    complete = ~(state.comp & ~state.present).any(-1)
    return InfillMoves(legal, elems, has, col, pa, complete & ~has)


def describe(partial: PartialSites, vocabulary: tuple[int, ...]) -> str:
    """One line for logs: group, sites, translation."""
    import asu_geometry as ag

    g = ag.space_group(partial.space_group)
    els = symbols([vocabulary[int(e)] for e in partial.element])
    shift = "" if not any(partial.translation) else f", translated by {np.round(partial.translation, 6).tolist()}"
    return f"{g.symbol} ({g.number}), {partial.size} site(s) {els}{shift}"
