"""CHGNet's crystal graph built with array operations: the same graph as ``CrystalGraphConverter``, faster.

CHGNet (chgnet 0.4.2) turns a structure into a :class:`~chgnet.graph.crystalgraph.CrystalGraph` in three
steps: pymatgen's neighbour list within ``atom_graph_cutoff`` (6 Å); a graph of Python ``Node`` and ``Edge``
objects that pairs every directed edge ``(i, j, image)`` with its reverse ``(j, i, -image)`` into one
undirected edge; and, in a Python loop over the undirected edges, the line graph of bond pairs that share an
atom with both bonds shorter than ``bond_graph_cutoff`` (3 Å, the "angles"). A batched relaxation rebuilds
the graph of every crystal at every FIRE step, and these Python objects took 13-14 % of a relaxation's CPU
time on generated crystals (2 % with this module; ``benchmarks/chgnet_graph_bench.py``).

:func:`crystal_graph` builds the same ``CrystalGraph``, entry for entry and in the same order, from the same
neighbour list with numpy:

* directed edge ``e`` is the ``e``-th row of the neighbour list (CHGNet adds them in that order);
* the undirected edges are numbered in the order of their first directed edge, and each directed edge joins
  the undirected edge of its reverse when the reverse came first (CHGNet compares distances to 1e-6 Å before
  comparing images; a reverse pair has equal distances, so pairing by ``(i, j, image)`` decides alike);
* the line graph lists, for each undirected edge ``u`` no longer than the cutoff and then for each of its two
  ends ``c`` (with ``u``'s directed edge ``d`` that starts there), every other directed edge at ``c``
  shorter than the cutoff, ordered as CHGNet's ``Node.neighbors`` dict iterates: grouped by neighbour atom in
  the order of that neighbour's first edge from ``c``, and by edge index within a group. Each row is
  ``[c, u, d, undirected(e'), e']``.

A neighbour list whose edges do not all pair up raises ``ValueError``, as CHGNet does (CHGNet also writes the
structure to ``bond_graph_error.cif``; this module writes nothing). One that holds an edge twice, which
pymatgen's neighbour list never does, is left to CHGNet's converter. The tests compare
every tensor with CHGNet's converter (``tests/test_chgnet_graph.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pymatgen.core import Structure

#: chgnet versions whose ``CrystalGraphConverter`` this module reproduces (checked by the tests).
SUPPORTED_CHGNET = ("0.4.2",)


class DuplicateEdgeError(ValueError):
    """The neighbour list holds an edge twice (pymatgen's never does); :func:`crystal_graph` then leaves the
    crystal to CHGNet's converter."""


def supports(converter: Any) -> bool:
    """Whether :func:`crystal_graph` reproduces ``converter``: the installed chgnet is one this module was
    checked against and the converter is CHGNet's own class."""
    from chgnet.graph.converter import CrystalGraphConverter

    return _chgnet_version() in SUPPORTED_CHGNET and type(converter) is CrystalGraphConverter


@functools.cache
def _chgnet_version() -> str:
    import chgnet

    return str(chgnet.__version__)


def graph_of(converter: Any, structure: Structure) -> Any:
    """The crystal graph of ``structure``: :func:`crystal_graph` where it reproduces ``converter``
    (:func:`supports`), else ``converter(structure)``."""
    return crystal_graph(converter, structure) if supports(converter) else converter(structure)


def pair_edges(center: np.ndarray, neighbor: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edge of every directed edge, and the first directed edge of every undirected edge.

    Directed edge ``e = (center[e], neighbor[e], image[e])``; its reverse is ``(neighbor[e], center[e],
    -image[e])``. Undirected edges are numbered in the order of their first directed edge. Raises
    ``ValueError`` when some directed edge has no reverse in the list.
    """
    n = len(center)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    img = np.asarray(image, dtype=np.int64)
    # one integer per directed edge (i, j, image); the reverse edge's integer from (j, i, -image)
    base = 2 * int(np.abs(img).max()) + 1
    n_nodes = int(max(center.max(), neighbor.max())) + 1

    def encode(a: np.ndarray, b: np.ndarray, im: np.ndarray) -> np.ndarray:
        key = a * n_nodes + b
        for axis in range(3):
            key = key * base + (im[:, axis] + base // 2)
        return key

    forward = encode(center, neighbor, img)
    order = np.argsort(forward)
    if (np.diff(forward[order]) == 0).any():
        raise DuplicateEdgeError("the neighbour list holds a directed edge twice")
    backward = encode(neighbor, center, -img)
    at = np.minimum(np.searchsorted(forward[order], backward), n - 1)
    reverse = order[at]
    unpaired = forward[reverse] != backward
    if unpaired.any():
        raise ValueError(f"{int(unpaired.sum())} of {n} directed edges have no reverse edge: the directed edges "
                         "are not complete")
    first = np.minimum(np.arange(n), reverse)  # the directed edge that created the undirected one
    is_first = first == np.arange(n)
    undirected_of_first = np.cumsum(is_first) - 1
    directed2undirected = undirected_of_first[first]
    undirected2directed = np.flatnonzero(is_first)
    return directed2undirected, undirected2directed


def line_graph(center: np.ndarray, neighbor: np.ndarray, distance: np.ndarray, directed2undirected: np.ndarray,
               undirected2directed: np.ndarray, n_atoms: int, cutoff: float) -> np.ndarray:  # fmt: skip
    """The bond graph (``[n_angles, 5]``, rows ``[c, u, d, undirected(e'), e']``) in CHGNet's order."""
    n = len(center)
    if n == 0:
        return np.zeros((0, 5), np.int64)
    e_idx = np.arange(n)
    # CHGNet's Node.neighbors: grouped by neighbour atom in order of its first edge from c, then edge index
    pair_key = center * n_atoms + neighbor
    by_pair = np.argsort(pair_key, kind="stable")  # within a pair, by edge index
    sorted_keys = pair_key[by_pair]
    new_pair = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
    group_rank = np.empty(n, dtype=np.int64)
    group_rank[by_pair] = by_pair[np.flatnonzero(new_pair)][np.cumsum(new_pair) - 1]  # first edge of its pair
    at_center = np.lexsort((e_idx, group_rank, center))
    at_center = at_center[distance[at_center] < cutoff]  # edges shorter than the cutoff, by centre, in order
    counts = np.bincount(center[at_center], minlength=n_atoms)
    starts = np.cumsum(counts) - counts

    # the undirected edges that make angles, each with its two (centre, directed edge) ends in order
    first = undirected2directed
    second = np.empty_like(first)
    is_second = np.ones(n, dtype=bool)
    is_second[first] = False
    second[directed2undirected[is_second]] = e_idx[is_second]
    keep = ~(distance[first] > cutoff)
    u_ids = np.flatnonzero(keep)
    ends_d = np.column_stack([first[u_ids], second[u_ids]]).reshape(-1)
    ends_u = np.repeat(u_ids, 2)
    ends_c = center[ends_d]
    sizes = counts[ends_c]
    if sizes.sum() == 0:
        return np.zeros((0, 5), np.int64)
    rep_end = np.repeat(np.arange(len(ends_d)), sizes)
    offset = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    other = at_center[np.repeat(starts[ends_c], sizes) + offset]
    d = ends_d[rep_end]
    valid = other != d
    rows = np.column_stack([ends_c[rep_end], ends_u[rep_end], d, directed2undirected[other], other])
    return rows[valid]


def crystal_graph(converter: Any, structure: Structure, graph_id: str | None = None,
                  mp_id: str | None = None) -> Any:  # fmt: skip
    """``converter(structure)``: CHGNet's ``CrystalGraph`` of the structure, built with array operations.

    Raises ``ValueError`` for an isolated atom when ``converter.on_isolated_atoms == "error"`` (CHGNet's
    default), as the converter does.
    """
    import torch
    from chgnet.graph.converter import TORCH_DTYPE
    from chgnet.graph.crystalgraph import CrystalGraph

    n_atoms = len(structure)
    center, neighbor, image, distance = structure.get_neighbor_list(
        r=converter.atom_graph_cutoff, sites=structure.sites, numerical_tol=1e-8
    )
    center = np.asarray(center, dtype=np.int64)
    neighbor = np.asarray(neighbor, dtype=np.int64)
    try:
        directed2undirected, undirected2directed = pair_edges(center, neighbor, image)
    except DuplicateEdgeError:
        return converter(structure, graph_id=graph_id, mp_id=mp_id)
    bond_graph = line_graph(center, neighbor, np.asarray(distance), directed2undirected, undirected2directed,
                            n_atoms, converter.bond_graph_cutoff)  # fmt: skip
    n_isolated = n_atoms - len(np.unique(center))
    if n_isolated:
        cutoff = converter.atom_graph_cutoff
        msg = (f"Structure graph_id={graph_id!r} has {n_isolated} isolated atom(s) with atom_graph_cutoff={cutoff!r}. "
               "CHGNet calculation will likely go wrong")  # fmt: skip
        if converter.on_isolated_atoms == "error":
            raise ValueError(msg)
    return CrystalGraph(
        atomic_number=torch.tensor(structure.atomic_numbers, dtype=torch.int32),
        atom_frac_coord=torch.tensor(structure.frac_coords, dtype=TORCH_DTYPE, requires_grad=True),
        atom_graph=torch.from_numpy(np.column_stack([center, neighbor]).astype(np.int32)),
        neighbor_image=torch.tensor(image, dtype=TORCH_DTYPE),
        directed2undirected=torch.from_numpy(directed2undirected.astype(np.int32)),
        undirected2directed=torch.from_numpy(undirected2directed.astype(np.int32)),
        # CHGNet's tensor of an empty list of angles has shape (0,), not (0, 5)
        bond_graph=torch.from_numpy(bond_graph.astype(np.int32) if len(bond_graph) else np.zeros(0, np.int32)),
        lattice=torch.tensor(structure.lattice.matrix, dtype=TORCH_DTYPE, requires_grad=True),
        graph_id=graph_id,
        mp_id=mp_id,
        composition=structure.composition.formula,
        atom_graph_cutoff=converter.atom_graph_cutoff,
        bond_graph_cutoff=converter.bond_graph_cutoff,
    )
