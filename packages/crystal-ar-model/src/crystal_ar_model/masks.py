r"""Exact, vectorised masks of the construction sequence, with an atom budget that can never be a dead end.

A crystal is built in its normal-form order: sites by Wyckoff table index (non-decreasing), on the same
position by atomic number (non-decreasing); a 0-D position holds at most one site; every element comes from
the composition space C; stop is allowed only once every element of C is present. The model has a maximum
number of atoms, counted in the **primitive** cell: a site on position w costs ``pm(w) = multiplicity(w) /
n_centring`` atoms, and the sites of a crystal cost at most the budget ``B`` (``ModelConfig.max_atoms``).

Lookahead. A move (w, a) is legal only if the elements of C still missing afterwards can be placed within the
budget. Because the order is non-decreasing, every later site is on a position w' > w, or on w itself (if w is
not 0-D) with an element of larger Z; and every 0-D position after w is necessarily still empty (0-D positions
before w are unusable anyway). So the cheapest completion needs only per-position tables, independent of the
crystal built so far:

* ``after_cost[w, k]``: the k cheapest slots among positions after w, where a 0-D position is one slot and any
  other position is unlimited slots (k distinct elements can share one position) -- the sum of the k smallest
  items of that multiset (``INF`` if there are fewer than k);
* ``lookahead[w, k, h] = min_{0 <= j <= h} j * pm(w) + after_cost[w, k - j]`` (j = 0 only when w is 0-D): k
  missing elements of which h have a larger Z than the element just placed (only those may reuse w).

A move (w, a) is legal iff order and element rules hold and ``count + pm(w) + lookahead[w, k', h'] <= B``. The
Wyckoff mask is "some element is legal there", the element mask the legal elements on the chosen w, and
continuing (rather than stopping) is allowed iff some move is legal. By construction every state reached by
legal moves has a legal continuation or may stop: sampling never gets stuck. When every element of C is
present and no site fits into the remaining budget, stop is forced (probability 1, log-probability 0).

Global factors, consistently: a group G can hold at most ``max_elements[G] = max{k : start_cost[G, k] <= B}``
distinct elements (``start_cost[G, k]``: the k cheapest slots of all of G's positions). p(C | G) may not add an
element beyond that, p(G | C) masks groups with ``max_elements < |C|``, p(G) masks groups that cannot hold a
single element and p(C) stops at ``max_G max_elements``. So every sampled (G, C) admits a crystal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import torch
from torch import Tensor

INF = 1 << 30  # cost of an impossible completion (far above any budget)


@dataclass(frozen=True)
class BudgetTables:
    """Per-position and per-group tables of the atom budget (see the module docstring). Tensors are long."""

    max_atoms: int  # K: the largest budget the tables serve (costs up to K distinct elements)
    prim_mult: Tensor  # (1731,) multiplicity / centring count
    zero_dim: Tensor  # (1731,) bool
    group_offset: Tensor  # (230,) first global Wyckoff index of each group
    group_count: Tensor  # (230,) number of Wyckoff positions of each group
    after_cost: Tensor  # (1731, K + 1)
    lookahead: Tensor  # (1731, K + 1, K + 1)
    start_cost: Tensor  # (230, K + 1)

    @property
    def max_positions(self) -> int:
        """The most Wyckoff positions of any group (the width of the per-position tables)."""
        return int(self.group_count.max())

    def max_elements(self, budget: int | Tensor) -> Tensor:
        """(230,) or (B, 230): the most distinct elements each group can hold within ``budget`` atoms."""
        b = torch.as_tensor(budget, device=self.start_cost.device)
        ok = self.start_cost <= b.reshape(*b.shape, 1, 1)  # (..., 230, K + 1); column 0 is always 0 <= b
        return ok.sum(-1) - 1

    def to(self, device: torch.device | str) -> BudgetTables:
        """The same tables on ``device``."""
        return BudgetTables(
            self.max_atoms,
            *(
                getattr(self, f).to(device)
                for f in (
                    "prim_mult",
                    "zero_dim",
                    "group_offset",
                    "group_count",
                    "after_cost",
                    "lookahead",
                    "start_cost",
                )
            ),
        )


def _k_smallest_sums(zero_dim_costs: list[int], unlimited_cost: int | None, k_max: int) -> np.ndarray:
    """Sums of the k smallest items (k = 0..k_max) of {each 0-D cost once} + {unlimited copies of one cost}."""
    items = sorted(zero_dim_costs)
    out = np.full(k_max + 1, INF, dtype=np.int64)
    total = 0
    out[0] = 0
    pool = list(items)
    for k in range(1, k_max + 1):
        nxt = pool[0] if pool else None
        if unlimited_cost is not None and (nxt is None or unlimited_cost <= nxt):
            total += unlimited_cost
        elif nxt is not None:
            total += pool.pop(0)
        else:
            break
        out[k] = total
    return out


def _slot_sums(
    costs: list[int], dims: list[int], first: int, k_max: int, available: list[bool] | None = None
) -> np.ndarray:
    """:func:`_k_smallest_sums` over the positions ``first, first + 1, ...`` of one group (only the
    ``available`` ones when given)."""
    ok = available if available is not None else [True] * len(costs)
    rows = list(zip(costs[first:], dims[first:], ok[first:], strict=True))
    zd = [c for c, d, a in rows if d == 0 and a]
    free = [c for c, d, a in rows if d > 0 and a]
    return _k_smallest_sums(zd, min(free) if free else None, k_max)


def _group_rows(
    costs: list[int], dims: list[int], k_max: int, available: list[bool] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start_cost (K+1,), after_cost (W, K+1), lookahead (W, K+1, K+1))`` of one group's W positions."""
    n_pos = len(costs)
    start = _slot_sums(costs, dims, 0, k_max, available)
    after = np.full((n_pos, k_max + 1), INF, dtype=np.int64)
    look = np.full((n_pos, k_max + 1, k_max + 1), INF, dtype=np.int64)
    kk, jj = np.meshgrid(np.arange(k_max + 1), np.arange(k_max + 1), indexing="ij")
    for i in range(n_pos):
        a = _slot_sums(costs, dims, i + 1, k_max, available)
        after[i] = a
        if dims[i] == 0:
            look[i] = a[:, None]
            continue
        m = np.where(jj <= kk, np.minimum(jj * costs[i] + a[np.clip(kk - jj, 0, None)], INF), INF)
        look[i] = np.minimum.accumulate(m, axis=1)  # min over j <= h
    return start, after, look


@cache
def budget_tables(max_atoms: int) -> BudgetTables:
    """The :class:`BudgetTables` for budgets up to ``max_atoms`` (built once per value, a fraction of a second)."""
    import asu_geometry as ag

    from .periodic import group_geometry

    k_max = int(max_atoms)
    cent = group_geometry().centring
    wps = ag.all_wyckoff_positions()
    n_w = len(wps)
    pm = np.zeros(n_w, dtype=np.int64)
    zero = np.zeros(n_w, dtype=bool)
    g_off = np.zeros(230, dtype=np.int64)
    g_cnt = np.zeros(230, dtype=np.int64)
    after = np.full((n_w, k_max + 1), INF, dtype=np.int64)
    look = np.full((n_w, k_max + 1, k_max + 1), INF, dtype=np.int64)
    start = np.full((230, k_max + 1), INF, dtype=np.int64)
    for n in range(1, 231):
        g = ag.space_group(n)
        nc = int(cent[n - 1])
        pos = g.wyckoff_positions
        g_off[n - 1], g_cnt[n - 1] = pos[0].index, len(pos)
        costs = [wp.multiplicity // nc for wp in pos]
        dims = [wp.dim for wp in pos]
        for wp, c in zip(pos, costs, strict=True):
            if wp.multiplicity % nc:
                raise AssertionError(f"{n}{wp.label}: multiplicity not divisible by the centring count {nc}")
            pm[wp.index], zero[wp.index] = c, wp.dim == 0

        rows = slice(pos[0].index, pos[0].index + len(pos))
        start[n - 1], after[rows], look[rows] = _group_rows(costs, dims, k_max)
    t = torch.from_numpy
    return BudgetTables(k_max, t(pm), t(zero), t(g_off), t(g_cnt), t(after), t(look), t(start))


def tables_with_reserved_points(tables: BudgetTables, space_group: int, reserved: Sequence[int]) -> BudgetTables:
    """The budget tables of ``tables`` in which the 0-D positions ``reserved`` (global indices, positions of
    ``space_group``) are no slot for further elements: in-filling reserves them for the partial crystal's sites
    (:mod:`.infill`). Only the rows of ``space_group`` change; the others are shared with ``tables``."""
    import asu_geometry as ag

    g = ag.space_group(space_group)
    pos = g.wyckoff_positions
    first = pos[0].index
    keep = set(int(r) for r in reserved)
    if any(not first <= r < first + len(pos) for r in keep):
        raise ValueError(f"reserved positions {sorted(keep)} are not all positions of space group {space_group}")
    pm = tables.prim_mult.cpu().numpy()
    costs = [int(pm[wp.index]) for wp in pos]
    dims = [wp.dim for wp in pos]
    available = [not (wp.dim == 0 and wp.index in keep) for wp in pos]
    start, after, look = _group_rows(costs, dims, tables.max_atoms, available)
    dev = tables.after_cost.device
    rows = slice(first, first + len(pos))
    out_after, out_look, out_start = tables.after_cost.clone(), tables.lookahead.clone(), tables.start_cost.clone()
    out_after[rows] = torch.from_numpy(after).to(dev)
    out_look[rows] = torch.from_numpy(look).to(dev)
    out_start[space_group - 1] = torch.from_numpy(start).to(dev)
    return replace(tables, after_cost=out_after, lookahead=out_look, start_cost=out_start)


# ------------------------------------------------------------------------------------------- the state
@dataclass
class BuildState:
    """Where each of S partial crystals stands (all tensors on one device, first dimension S).

    ``last_wyckoff``: global index of the last site's position (-1 before the first site); ``last_element``:
    vocabulary index of its element (-1 before); ``count``: atoms used (primitive cell); ``comp``/``present``:
    (S, V) bool, the composition space and the elements placed so far; ``budget``: (S,) atom limit.
    """

    space_group: Tensor
    last_wyckoff: Tensor
    last_element: Tensor
    count: Tensor
    comp: Tensor
    present: Tensor
    budget: Tensor


def candidate_positions(tables: BudgetTables, space_group: Tensor) -> tuple[Tensor, Tensor]:
    """(S, W) global indices of every position of each state's group (padded with the group's first) and
    the (S, W) validity mask; W = the largest number of positions of a group (27)."""
    w = tables.max_positions
    ar = torch.arange(w, device=space_group.device)
    off = tables.group_offset[space_group - 1]
    cnt = tables.group_count[space_group - 1]
    valid = ar < cnt.unsqueeze(-1)
    return torch.where(valid, off.unsqueeze(-1) + ar, off.unsqueeze(-1)), valid


def _compact_composition(comp: Tensor) -> tuple[Tensor, Tensor]:
    """(S, Kc) vocabulary indices of the elements of each composition space, ascending, padded with -1."""
    s, v = comp.shape
    kc = max(int(comp.sum(-1).max()) if s else 0, 1)
    key = torch.where(
        comp, torch.arange(v, device=comp.device).expand(s, v), torch.full_like(comp, v, dtype=torch.long)
    )
    idx = key.sort(-1).values[:, :kc]
    return torch.where(idx < v, idx, torch.full_like(idx, -1)), idx < v


def legal_moves(tables: BudgetTables, st: BuildState, positions: Tensor, pos_valid: Tensor) -> tuple[Tensor, Tensor]:
    """Legal (position, element) moves: ``(legal (S, W, Kc) bool, elements (S, Kc) vocabulary indices)`` for
    the candidate ``positions`` (S, W) (global indices, mask ``pos_valid``) and the elements of C."""
    elem, elem_valid = _compact_composition(st.comp)  # (S, Kc)
    safe_elem = elem.clamp(min=0)
    missing_all = st.comp & ~st.present  # (S, V)
    missing = missing_all.gather(1, safe_elem) & elem_valid  # (S, Kc)
    n_miss = missing_all.sum(-1)  # (S,)
    k_after = n_miss.unsqueeze(-1) - missing.long()  # missing after placing element j
    h_after = missing.long().flip(-1).cumsum(-1).flip(-1) - missing.long()  # missing with larger Z than j
    same = positions == st.last_wyckoff.unsqueeze(-1)  # (S, W)
    order_ok = pos_valid & (positions >= st.last_wyckoff.unsqueeze(-1))
    order_ok &= ~(same & tables.zero_dim[positions])  # a 0-D position at most once
    elem_ok = elem_valid.unsqueeze(1) & (~same.unsqueeze(-1) | (elem >= st.last_element.unsqueeze(-1)).unsqueeze(1))
    k1 = tables.max_atoms + 1
    idx = (positions.unsqueeze(-1) * k1 + k_after.clamp(max=tables.max_atoms).unsqueeze(1)) * k1 + h_after.clamp(
        max=tables.max_atoms
    ).unsqueeze(1)
    cost = tables.lookahead.reshape(-1)[idx]  # (S, W, Kc)
    cost = torch.where(k_after.unsqueeze(1) > tables.max_atoms, torch.full_like(cost, INF), cost)
    used = st.count.unsqueeze(-1) + tables.prim_mult[positions]  # (S, W)
    fits = used.unsqueeze(-1) + cost <= st.budget.reshape(-1, 1, 1)
    return order_ok.unsqueeze(-1) & elem_ok & fits, elem


def wyckoff_mask(legal: Tensor) -> Tensor:
    """(S, W): positions where some element is legal."""
    return legal.any(-1)


def element_choices(legal: Tensor, choice: Tensor) -> Tensor:
    """(S, Kc) legal elements of C (columns of ``legal``'s element list) on the chosen candidate column."""
    return legal.gather(1, choice.reshape(-1, 1, 1).expand(-1, 1, legal.shape[-1])).squeeze(1)


def element_mask(legal: Tensor, elements: Tensor, choice: Tensor, num_elements: int) -> Tensor:
    """(S, V) legal elements on the chosen candidate column ``choice`` (S,) (index into W)."""
    row = legal.gather(1, choice.reshape(-1, 1, 1).expand(-1, 1, legal.shape[-1])).squeeze(1)  # (S, Kc)
    out = torch.zeros(legal.shape[0], num_elements + 1, dtype=torch.bool, device=legal.device)
    tgt = torch.where(elements >= 0, elements, torch.full_like(elements, num_elements))
    out.scatter_(1, tgt, row & (elements >= 0))
    return out[:, :num_elements]


def stop_mask(st: BuildState, can_continue: Tensor) -> tuple[Tensor, Tensor]:
    """``(stop_allowed, continue_allowed)`` (S,) bool; at least one of them holds in every reachable state."""
    complete = ~(st.comp & ~st.present).any(-1)
    return complete, can_continue
