r"""Shortest interatomic distances of new sites, symmetric images included (``--min-distance``).

For a site x of a crystal with space group G, the shortest distance between any atom of its orbit and any other
atom of the crystal equals the shortest distance from x itself to every other atom (the operations of G are
isometries that map the crystal onto itself), so only the representative x is queried:

    d(x) = min( min_{y in other sites' orbits, L} |x - y - L|,  min_{g x != x, L} |x - g x - L| )

over primitive lattice translations L (Cartesian metric of the conventional lattice parameters). Images are
taken modulo the primitive lattice (:func:`.periodic.atom_images`), minimum images in a Minkowski-reduced
primitive basis with a local descent over its 26 neighbour vectors, as in :func:`.periodic.minimum_image_edges`.
Everything is float64 and vectorised over all queried sites of a batch. An atom and its own lattice translates
are not compared: that distance is a property of the lattice, which resampling coordinates cannot change.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .periodic import _NEIGHBOURS, _ranges, _rowvec_times, atom_images, lattice_matrix, primitive_reduced_basis

_CENTRE = 13  # index of (0, 0, 0) in _NEIGHBOURS


def _min_image_norm(disp: Tensor, reduced: Tensor, red_inv: Tensor) -> Tensor:
    """|shortest lattice translate| of Cartesian displacements (T, 3), per-row reduced bases (T, 3, 3)."""
    u = _rowvec_times(disp, red_inv)
    u = u - torch.round(u)
    nb = _NEIGHBOURS.to(disp.device, disp.dtype)
    shifts = torch.einsum("kj,tjd->tkd", nb, reduced)  # (T, 27, 3)
    cand = _rowvec_times(u, reduced).unsqueeze(-2) + shifts
    dist = cand.norm(dim=-1)
    for _ in range(8):
        best = dist.argmin(-1)
        moved = dist.gather(-1, best.unsqueeze(-1)).squeeze(-1) < dist[:, _CENTRE] - 1e-12
        if not bool(moved.any()):
            break
        idx = moved.nonzero().squeeze(-1)
        cand[idx] = cand[idx, best[idx]].unsqueeze(-2) + shifts[idx]
        dist[idx] = cand[idx].norm(dim=-1)
    return dist.min(-1).values


def nearest_distances(
    query_frac: Tensor,
    query_piece: Tensor,
    query_crystal: Tensor,
    frac: Tensor,
    piece: Tensor,
    crystal: Tensor,
    space_group: Tensor,
    lattice: Tensor,
) -> Tensor:
    """The shortest distance (Angstrom) from each queried site to any other atom of its crystal (module docstring).

    Args:
        query_frac, query_piece, query_crystal: (Q, 3) fractional coordinates, (Q,) piece ids and (Q,) crystal
            index of the queried sites (at most one per crystal).
        frac, piece, crystal: the other sites of the crystals (N, 3), (N,), (N,).
        space_group, lattice: (B,) and (B, 6) of the crystals.

    Returns:
        (Q,) float64 distances; ``inf`` for a site alone in its crystal with one atom per primitive cell.
    """
    dev = query_frac.device
    bsz = space_group.shape[0]
    qn = query_frac.shape[0]
    out = torch.full((qn,), float("inf"), dtype=torch.float64, device=dev)
    if qn == 0:
        return out
    reduced = primitive_reduced_basis(space_group, lattice)
    red_inv = torch.linalg.inv(reduced)
    amat = lattice_matrix(lattice)
    qf = query_frac.to(torch.float64)
    # the other sites' images, grouped by crystal
    if frac.shape[0]:
        owner, pos = atom_images(frac.to(torch.float64), piece)
        img_c = crystal[owner]
        order = torch.argsort(img_c, stable=True)
        pos, img_c = pos[order], img_c[order]
        counts = torch.bincount(img_c, minlength=bsz)
        starts = torch.cumsum(counts, 0) - counts
        per_q = counts[query_crystal]
        pair_q = torch.repeat_interleave(torch.arange(qn, device=dev), per_q)
        pair_img = _ranges(starts[query_crystal], per_q)
        disp = pos[pair_img] - qf[pair_q]
        c = query_crystal[pair_q]
        d = _min_image_norm(_rowvec_times(disp, amat[c]), reduced[c], red_inv[c])
        out = out.scatter_reduce(0, pair_q, d, reduce="amin")
    # the site's own images (image 0 is the identity: operation 0 of every group)
    q_owner, q_pos = atom_images(qf, query_piece)
    first = torch.ones_like(q_owner, dtype=torch.bool)
    first[1:] = q_owner[1:] != q_owner[:-1]
    own = ~first
    if bool(own.any()):
        o = q_owner[own]
        c = query_crystal[o]
        d = _min_image_norm(_rowvec_times(q_pos[own] - qf[o], amat[c]), reduced[c], red_inv[c])
        out = out.scatter_reduce(0, o, d, reduce="amin")
    return out
