r"""Construction states and their prefix graphs, batched: teacher forcing of every prefix in one pass.

A *state* (c, k) is crystal c after its first k sites (k = 0 .. n_c). In training and scoring every state of
every crystal of a batch is evaluated at once: state (c, k) predicts site k (when k < n_c) and the stop
decision after k sites. In sampling the states are the unfinished crystals as they stand.

The graph of a state is the partial crystal's *primitive cell*: one node per ASU site placed so far (the
site's symmetry images share its node), and every minimum-image edge between them (computed once per crystal
by :func:`.periodic.minimum_image_edges` and shared by all states that contain both ends). The empty
crystal (k = 0) is a single seed node without edges. Everything is index arithmetic: no loop over states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .masks import BudgetTables, BuildState
from .periodic import CrystalEdges, _ranges


@dataclass
class PrefixStates:
    """S states: ``crystal`` (S,), ``length`` k (S,), ``target`` = global index of site k or -1 (k = n_c)."""

    crystal: Tensor
    length: Tensor
    target: Tensor

    @property
    def size(self) -> int:
        """Number of states."""
        return int(self.crystal.shape[0])


def all_prefixes(ptr: Tensor) -> PrefixStates:
    """Every state (c, k), k = 0..n_c, of crystals with site offsets ``ptr`` (B + 1,), crystal-major."""
    n = ptr[1:] - ptr[:-1]
    crystal = torch.repeat_interleave(torch.arange(n.shape[0], device=ptr.device), n + 1)
    start = torch.cumsum(n + 1, 0) - (n + 1)
    length = torch.arange(crystal.shape[0], device=ptr.device) - start[crystal]
    target = torch.where(length < n[crystal], ptr[:-1][crystal] + length, torch.full_like(length, -1))
    return PrefixStates(crystal, length, target)


def final_states(ptr: Tensor) -> PrefixStates:
    """One state per crystal: all of its sites placed (what sampling evaluates at each step)."""
    n = ptr[1:] - ptr[:-1]
    crystal = torch.arange(n.shape[0], device=ptr.device)
    return PrefixStates(crystal, n, torch.full_like(n, -1))


@dataclass
class PrefixGraph:
    """The disjoint union of the states' graphs (PyG conventions: ``edge_index[0]`` source, ``[1]`` target).

    ``node_atom``: global site index of each node, -1 for a seed node; ``node_state``: its state (the PyG
    ``batch`` vector); ``edge_ref``: index of each edge into the shared :class:`CrystalEdges`.
    """

    node_atom: Tensor
    node_state: Tensor
    edge_index: Tensor
    edge_ref: Tensor
    num_states: int


def prefix_graph(states: PrefixStates, ptr: Tensor, edges: CrystalEdges) -> PrefixGraph:
    """Nodes and edges of every state, gathered from the crystals' atoms and shared edge list."""
    dev = ptr.device
    k = states.length
    n_nodes = k.clamp(min=1)  # the empty crystal is one seed node
    node_start = torch.cumsum(n_nodes, 0) - n_nodes
    node_state = torch.repeat_interleave(torch.arange(states.size, device=dev), n_nodes)
    local = torch.arange(node_state.shape[0], device=dev) - node_start[node_state]
    atom = ptr[:-1][states.crystal][node_state] + local
    node_atom = torch.where(k[node_state] > 0, atom, torch.full_like(atom, -1))
    # edges of state (c, k): the first count_by_last[c, k] edges of crystal c (sorted by their last site)
    n_edges = edges.count_by_last[states.crystal, k.clamp(max=edges.count_by_last.shape[1] - 1)]
    edge_ref = _ranges(edges.start[states.crystal], n_edges)
    edge_state = torch.repeat_interleave(torch.arange(states.size, device=dev), n_edges)
    base = ptr[:-1][edges.crystal[edge_ref]]
    src = node_start[edge_state] + (edges.sender[edge_ref] - base)
    dst = node_start[edge_state] + (edges.receiver[edge_ref] - base)
    return PrefixGraph(node_atom, node_state, torch.stack([src, dst]), edge_ref, states.size)


def prefix_build_state(
    states: PrefixStates,
    ptr: Tensor,
    space_group: Tensor,
    wyckoff: Tensor,
    element: Tensor,
    comp: Tensor,
    tables: BudgetTables,
    budget: int | Tensor,
) -> BuildState:
    """The :class:`BuildState` of every state, from the crystals' (clean) site sequences.

    Args:
        states: the states. ptr: (B + 1,) site offsets. space_group: (B,) 1..230.
        wyckoff, element: (N,) global Wyckoff index and vocabulary index of every site.
        comp: (B, V) composition spaces (multi-hot). budget: the atom limit (scalar or (B,)).
    """
    dev = ptr.device
    bsz, v = comp.shape
    c, k = states.crystal, states.length
    n = ptr[1:] - ptr[:-1]
    crystal_of = torch.repeat_interleave(torch.arange(bsz, device=dev), n)
    local = torch.arange(wyckoff.shape[0], device=dev) - ptr[:-1][crystal_of]
    prev = ptr[:-1][c] + k - 1
    has_prev = k > 0
    safe_prev = prev.clamp(min=0)
    if wyckoff.numel():
        last_w = torch.where(has_prev, wyckoff[safe_prev], torch.full_like(k, -1))
        last_e = torch.where(has_prev, element[safe_prev], torch.full_like(k, -1))
    else:
        last_w = last_e = torch.full_like(k, -1)
    cost = tables.prim_mult[wyckoff]
    incl = torch.cumsum(cost, 0)
    upto = torch.cat([torch.zeros(1, dtype=incl.dtype, device=dev), incl])  # cost of all sites before index i
    count = upto[ptr[:-1][c] + k] - upto[ptr[:-1][c]]
    # first position of each element in each crystal -> present after k sites
    first = torch.full((bsz, v), 1 << 30, dtype=torch.long, device=dev)
    flat = first.view(-1)
    flat.scatter_reduce_(0, crystal_of * v + element, local, reduce="amin")
    present = first[c] < k.unsqueeze(-1)
    b = torch.as_tensor(budget, device=dev)
    budget_s = b.expand(bsz)[c] if b.dim() else b.expand(states.size)
    return BuildState(space_group[c], last_w, last_e, count, comp[c].bool(), present, budget_s.long())
