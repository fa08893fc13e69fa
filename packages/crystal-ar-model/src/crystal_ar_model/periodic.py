r"""Periodic geometry of partial crystals as tensors: orbits in the primitive cell, minimum images, noise.

Everything here is float64 and vectorised over all atoms of a batch (no loop over crystals or atoms).

* :func:`piece_images`: for every piece (Wyckoff shape, id from :mod:`.shapes`), the space-group operations
  that give the *distinct* images of a point of the piece modulo the **primitive** lattice
  (``multiplicity / n_centring`` of them), and the affine directions of the piece. All points of a piece
  have the same stabiliser (the piece lies in the fixed space of the site-symmetry group H and every point
  of it belongs to the position), so one list per piece serves every point on it and on its affine span.
* :func:`group_geometry`: per space group the number of centring points, a primitive basis (in conventional
  fractional coordinates) and the ASU's bounding half-spaces.
* :func:`lattice_matrix`: the Cartesian frame fixed by the conventional lattice parameters: ``a`` along x,
  ``b`` in the xy plane, ``c`` completing a right-handed frame (rows are the basis vectors, Angstrom).
* :func:`reduce_basis`: a greedy (Minkowski-type) reduction of 3-D bases, vectorised.
* :func:`minimum_image_edges`: for every pair (receiver ASU atom r, sender atom s) of a crystal and every image
  of s in the primitive cell, the shortest displacement(s) from r to that image modulo the primitive lattice.
  Ties (several lattice translates at the same shortest distance, e.g. an image at half a lattice vector)
  are all kept and carry ``ties`` = their number, so that the GNN can weight each by ``1 / ties``.
* :func:`wyckoff_noise`: Gaussian noise in Angstrom restricted to each atom's Wyckoff subspace (orthogonal
  projection in the Cartesian metric), folded back into the asymmetric unit (noisy teacher forcing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import Tensor

from .shapes import piece_shapes, shape_table

MAX_PRIMITIVE_IMAGES = 48  # |point group| <= 48: the largest orbit in a primitive cell
MAX_OPS = 192
_CENTRING_COUNT = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
# primitive basis vectors (rows) in conventional fractional coordinates, per centring letter
_PRIMITIVE_BASIS = {
    "P": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "A": ((1, 0, 0), (0, 0.5, 0.5), (0, -0.5, 0.5)),
    "B": ((0.5, 0, 0.5), (0, 1, 0), (-0.5, 0, 0.5)),
    "C": ((0.5, 0.5, 0), (-0.5, 0.5, 0), (0, 0, 1)),
    "I": ((-0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, -0.5)),
    "F": ((0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
    "R": ((2 / 3, 1 / 3, 1 / 3), (-1 / 3, 1 / 3, 1 / 3), (-1 / 3, -2 / 3, 1 / 3)),  # hexagonal axes, obverse
}
_NEIGHBOURS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.float64)  # (27, 3)


# ---------------------------------------------------------------------------------------- static tables
@dataclass(frozen=True)
class GroupGeometry:
    """Per space group (row ``n - 1``): centring count, primitive basis, ASU half-spaces, all operations."""

    centring: Tensor  # (230,) long: number of centring points of the conventional cell (1, 2, 3 or 4)
    primitive_basis: Tensor  # (230, 3, 3) float64: rows in conventional fractional coordinates
    asu_planes: Tensor  # (230, K, 4) float64: rows (n, c), the closed ASU is n . x + c >= 0 (padded 0, 0, 0, 1)
    asu_box: Tensor  # (230, 2, 3) float64: lower and upper corners of the ASU's bounding box
    ops_rot: Tensor  # (230, 192, 3, 3) float64, padded with the identity
    ops_trans: Tensor  # (230, 192, 3) float64
    ops_count: Tensor  # (230,) long


@cache
def group_geometry() -> GroupGeometry:
    """The :class:`GroupGeometry` of the 230 groups (built once from :mod:`asu_geometry`)."""
    import asu_geometry as ag

    cent = np.zeros(230, dtype=np.int64)
    prim = np.zeros((230, 3, 3))
    planes_l, box = [], np.zeros((230, 2, 3))
    rot = np.tile(np.eye(3), (230, MAX_OPS, 1, 1))
    trans = np.zeros((230, MAX_OPS, 3))
    count = np.zeros(230, dtype=np.int64)
    for n in range(1, 231):
        g = ag.space_group(n)
        cent[n - 1] = _CENTRING_COUNT[g.centering]
        prim[n - 1] = np.array(_PRIMITIVE_BASIS[g.centering], dtype=np.float64)
        pl = [(*map(float, cut.normal), float(cut.offset)) for cut in g.asu.cuts]  # top-level cuts only
        planes_l.append(pl)
        lo, hi = g.asu.box_arrays
        box[n - 1, 0], box[n - 1, 1] = lo, hi
        k = g.order
        rot[n - 1, :k] = g.rotations
        trans[n - 1, :k] = g.translations
        count[n - 1] = k
        n_identity = int(sum(np.array_equal(r, np.eye(3)) for r in g.rotations))
        if n_identity != cent[n - 1]:
            raise AssertionError(f"group {n}: {n_identity} pure translations, expected {cent[n - 1]}")
    kmax = max(len(p) for p in planes_l)
    planes = np.zeros((230, kmax, 4))
    planes[:, :, 3] = 1.0
    for i, pl in enumerate(planes_l):
        planes[i, : len(pl)] = pl
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return GroupGeometry(t(cent), t(prim), t(planes), t(box), t(rot), t(trans), t(count))


@dataclass(frozen=True)
class PieceImages:
    """Per piece id: the operations giving its distinct primitive-cell images, and its affine directions."""

    image_rot: Tensor  # (P, 48, 3, 3) float64, padded with the identity
    image_trans: Tensor  # (P, 48, 3) float64
    image_count: Tensor  # (P,) long: multiplicity / centring count
    basis: Tensor  # (P, 3, 3) float64: rows are the piece's affine directions (fractional), zero rows padded


_IMAGE_GRID = 24 * 27720
"""Denominator that makes the pieces' points exact integers: ASU vertices have denominators dividing 24 (at most
12 in the tables), and a piece's point is the mean of at most 12 of them (27720 = lcm(1..12); the tables have at
most 10); the inverse primitive bases are integer matrices, so primitive coordinates stay on the grid.
``piece_images`` checks every orbit's size, so a point off this grid could not pass unnoticed."""


def _distinct_image_ops(g: object, point: np.ndarray, prim_inv: np.ndarray) -> list[int]:
    """Indices of the operations of ``g`` whose images of ``point`` are distinct modulo the primitive lattice
    (the first operation of each class, in table order): the images in primitive coordinates, reduced modulo 1
    on the exact grid :data:`_IMAGE_GRID`, compared as integers."""
    u = g.apply(point) @ prim_inv  # type: ignore[attr-defined]  # (K, 3) primitive-basis coordinates
    cells = np.rint(u * _IMAGE_GRID).astype(np.int64) % _IMAGE_GRID
    keys = (cells[:, 0] * _IMAGE_GRID + cells[:, 1]) * _IMAGE_GRID + cells[:, 2]
    _, first = np.unique(keys, return_index=True)  # the first operation giving each atom of the primitive cell
    return sorted(first.tolist())


@cache
def piece_images() -> PieceImages:
    """The :class:`PieceImages` of every piece (built once, about a second)."""
    import asu_geometry as ag

    table = shape_table()
    shapes = piece_shapes()
    p_count = table.num_pieces
    rot = np.tile(np.eye(3), (p_count, MAX_PRIMITIVE_IMAGES, 1, 1))
    trans = np.zeros((p_count, MAX_PRIMITIVE_IMAGES, 3))
    count = np.zeros(p_count, dtype=np.int64)
    basis = np.zeros((p_count, 3, 3))
    wps = ag.all_wyckoff_positions()
    cache_ops: dict[tuple[int, bytes], list[int]] = {}
    prim_invs = {c: np.linalg.inv(np.array(b, dtype=np.float64)) for c, b in _PRIMITIVE_BASIS.items()}
    for p in range(p_count):
        sh = shapes[p]
        w = int(table.wyckoff[p])
        wp = wps[w]
        g = ag.space_group(wp.space_group)
        nc = _CENTRING_COUNT[g.centering]
        prim_inv = prim_invs[g.centering]
        point = sh.vertices_array.mean(axis=0)  # inside the (convex) piece: a point of the position
        key = (w, point.tobytes())
        ops = cache_ops.get(key) or _distinct_image_ops(g, point, prim_inv)
        cache_ops[key] = ops
        if len(ops) * nc != wp.multiplicity:
            raise AssertionError(
                f"piece {p} of {wp.space_group}{wp.label}: {len(ops)} primitive images x {nc} centring points "
                f"!= multiplicity {wp.multiplicity}"
            )
        count[p] = len(ops)
        rot[p, : len(ops)] = g.rotations[ops]
        trans[p, : len(ops)] = g.translations[ops]
        if sh.dim:
            basis[p, : sh.dim] = sh.basis_array
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return PieceImages(t(rot), t(trans), t(count), t(basis))


# ------------------------------------------------------------------------------------------- lattices
def lattice_matrix(params: Tensor) -> Tensor:
    """Cartesian basis (rows a, b, c; Angstrom) of lattices (..., 6) = (a, b, c, alpha, beta, gamma in degrees).

    The frame is fixed by the parameters alone: ``a`` along x, ``b`` in the xy plane, ``c`` with positive z.
    """
    p = params.to(torch.float64)
    a, b, c = p[..., 0], p[..., 1], p[..., 2]
    al, be, ga = (torch.deg2rad(p[..., i]) for i in (3, 4, 5))
    ca, cb, cg, sg = torch.cos(al), torch.cos(be), torch.cos(ga), torch.sin(ga)
    zero = torch.zeros_like(a)
    cy = (ca - cb * cg) / sg
    cz = torch.sqrt(torch.clamp(1.0 - cb**2 - cy**2, min=1e-12))
    rows = [
        torch.stack([a, zero, zero], -1),
        torch.stack([b * cg, b * sg, zero], -1),
        torch.stack([c * cb, c * cy, c * cz], -1),
    ]
    return torch.stack(rows, -2)


def reduce_basis(basis: Tensor, max_iter: int = 64) -> Tensor:
    """Greedy reduction of bases (..., 3, 3) (rows): no row can be shortened by adding +-1 times the others'
    sums. In three dimensions this greedy reduction is Minkowski reduction (Nguyen & Stehle, ACM Trans.
    Algorithms 5 (2009) 46), so the Voronoi-relevant vectors have coefficients in {-1, 0, 1}."""
    b = basis.to(torch.float64).clone()
    combos = _NEIGHBOURS.to(b.device)  # (27, 3)
    for _ in range(max_iter):
        changed = torch.zeros(b.shape[:-2], dtype=torch.bool, device=b.device)
        for i in range(3):
            others = [j for j in range(3) if j != i]
            # size-reduce row i against the other two (nearest integer projection), then try +-1 combinations
            o = b[..., others, :]  # (..., 2, 3)
            gram = o @ o.transpose(-1, -2)
            coef = torch.linalg.solve(gram, (o @ b[..., i, :].unsqueeze(-1))).squeeze(-1)  # (..., 2)
            base = b[..., i, :] - (torch.round(coef).unsqueeze(-1) * o).sum(-2)
            c2 = combos[:, :2][(combos[:, 2] == 0)].unique(dim=0)  # (9, 2)
            cand = base.unsqueeze(-2) + c2.to(b.dtype) @ o  # (..., 9, 3)
            norms = (cand**2).sum(-1)
            best = cand.gather(-2, norms.argmin(-1)[..., None, None].expand(*cand.shape[:-2], 1, 3)).squeeze(-2)
            better = (best**2).sum(-1) < (b[..., i, :] ** 2).sum(-1) * (1 - 1e-12)
            b[..., i, :] = torch.where(better.unsqueeze(-1), best, b[..., i, :])
            changed |= better
        if not bool(changed.any()):
            break
    return b


def primitive_reduced_basis(space_group: Tensor, lattice: Tensor) -> Tensor:
    """Reduced Cartesian basis (B, 3, 3) of the primitive lattice of each crystal."""
    gg = group_geometry()
    prim = gg.primitive_basis.to(lattice.device)[space_group - 1]  # (B, 3, 3) conventional fractional
    return reduce_basis(prim @ lattice_matrix(lattice))


# ------------------------------------------------------------------------------------- minimum images
@dataclass
class CrystalEdges:
    """Directed edges sender image -> receiver between the ASU atoms of each crystal (all pairs, all ties).

    ``receiver``/``sender`` are global atom indices, ``last`` = max of their indices inside the crystal (the
    edge belongs to every prefix longer than ``last``). Edges are sorted by (crystal, last).
    """

    receiver: Tensor  # (E,) long
    sender: Tensor  # (E,) long
    crystal: Tensor  # (E,) long
    last: Tensor  # (E,) long
    vector: Tensor  # (E, 3) float64, Cartesian displacement receiver -> sender image (Angstrom)
    ties: Tensor  # (E,) long, number of equally short displacements of that (receiver, image) pair
    count_by_last: Tensor  # (B, n_max + 1) long: edges of crystal c with last < k, cumulative (k = 0..n_max)
    start: Tensor  # (B,) long: first edge of each crystal


_CENTRE = 13  # index of (0, 0, 0) in _NEIGHBOURS


def _rowvec_times(x: Tensor, m: Tensor) -> Tensor:
    """Row vectors times matrices, ``x (..., 3) @ m (..., 3, 3)``, as three fused multiply-adds (much faster on
    CPU than a batched matmul of 3 x 3 matrices)."""
    return x[..., 0:1] * m[..., 0, :] + x[..., 1:2] * m[..., 1, :] + x[..., 2:3] * m[..., 2, :]


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + c)`` for each pair (vectorised)."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=starts.device)
    offsets = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return torch.arange(total, device=starts.device) + offsets


def atom_images(frac: Tensor, piece: Tensor) -> tuple[Tensor, Tensor]:
    """The primitive-cell images of each atom: ``(owner, positions)`` with ``owner`` (M,) the atom index and
    ``positions`` (M, 3) conventional fractional coordinates (not reduced modulo 1)."""
    pg = piece_images()
    count = pg.image_count.to(frac.device)[piece]
    owner = torch.repeat_interleave(torch.arange(frac.shape[0], device=frac.device), count)
    q = _ranges(torch.zeros_like(count), count)  # image index within each atom
    p = piece[owner]
    rot = pg.image_rot.to(frac.device)[p, q]
    trans = pg.image_trans.to(frac.device)[p, q]
    return owner, (rot @ frac[owner].unsqueeze(-1)).squeeze(-1) + trans


def minimum_image_edges(
    frac: Tensor,
    piece: Tensor,
    ptr: Tensor,
    space_group: Tensor,
    lattice: Tensor,
    reduced: Tensor | None = None,
    tie_tol: float = 1e-6,
) -> CrystalEdges:
    """All minimum-image edges of a batch of crystals (module docstring).

    Args:
        frac: (N, 3) fractional coordinates of the ASU atoms (conventional cell).
        piece: (N,) piece ids. ptr: (B + 1,) atom offsets of the crystals.
        space_group: (B,) 1..230. lattice: (B, 6) parameters.
        reduced: (B, 3, 3) reduced primitive bases (computed when omitted).
        tie_tol: displacements within ``tie_tol`` Angstrom of the shortest count as ties.
    """
    dev = frac.device
    frac = frac.to(torch.float64)
    bsz = ptr.shape[0] - 1
    n_atoms = ptr[1:] - ptr[:-1]
    crystal_of = torch.repeat_interleave(torch.arange(bsz, device=dev), n_atoms)
    local = torch.arange(frac.shape[0], device=dev) - ptr[:-1][crystal_of]
    if reduced is None:
        reduced = primitive_reduced_basis(space_group, lattice)
    amat = lattice_matrix(lattice)  # (B, 3, 3)
    red_inv = torch.linalg.inv(reduced)
    owner, pos = atom_images(frac, piece)  # images of every atom (senders)
    img_crystal = crystal_of[owner]
    # everything per image / per atom first (cheap), then per (receiver, image) pair only elementwise work
    pos_u = _rowvec_times(_rowvec_times(pos, amat[img_crystal]), red_inv[img_crystal])  # reduced coordinates
    atom_u = _rowvec_times(_rowvec_times(frac, amat[crystal_of]), red_inv[crystal_of])
    per_img = n_atoms[img_crystal]
    img_idx = torch.repeat_interleave(torch.arange(owner.shape[0], device=dev), per_img)
    recv = _ranges(ptr[:-1][img_crystal], per_img)
    c = img_crystal[img_idx]
    u = pos_u[img_idx] - atom_u[recv]
    u = u - torch.round(u)
    nbc = _NEIGHBOURS.to(dev) @ reduced  # (B, 27, 3): Cartesian neighbour shifts per crystal
    cand = _rowvec_times(u, reduced[c]).unsqueeze(-2) + nbc[c]  # (T, 27, 3)
    dist = cand.norm(dim=-1)
    for _ in range(8):  # local descent over the 26 neighbours (Voronoi-relevant vectors of a reduced basis)
        best = dist.argmin(-1)
        moved = dist.gather(-1, best.unsqueeze(-1)).squeeze(-1) < dist[:, _CENTRE] - 1e-9  # strictly shorter
        if not bool(moved.any()):
            break
        idx = moved.nonzero().squeeze(-1)
        centre = cand[idx, best[idx]]
        cand[idx] = centre.unsqueeze(-2) + nbc[c[idx]]
        dist[idx] = cand[idx].norm(dim=-1)
    dmin = dist.min(-1).values
    tie = dist <= (dmin + tie_tol).unsqueeze(-1)
    tie &= ~(dmin < 1e-8).unsqueeze(-1)  # the receiver itself
    n_ties = tie.sum(-1)
    t_idx, k_idx = tie.nonzero(as_tuple=True)
    receiver = recv[t_idx]
    sender = owner[img_idx[t_idx]]
    crystal = c[t_idx]
    last = torch.maximum(local[receiver], local[sender])
    vector = cand[t_idx, k_idx]
    ties = n_ties[t_idx]
    order = torch.argsort(crystal * (int(n_atoms.max()) + 1 if bsz else 1) + last, stable=True)
    receiver, sender, crystal, last, vector, ties = (x[order] for x in (receiver, sender, crystal, last, vector, ties))
    n_max = int(n_atoms.max()) if bsz else 0
    counts = torch.zeros(bsz, n_max + 1, dtype=torch.long, device=dev)
    counts.index_put_((crystal, last + 1), torch.ones_like(last), accumulate=True)
    count_by_last = counts.cumsum(1)
    per_crystal = torch.bincount(crystal, minlength=bsz)
    start = torch.cumsum(per_crystal, 0) - per_crystal
    return CrystalEdges(receiver, sender, crystal, last, vector, ties, count_by_last, start)


# -------------------------------------------------------------------------------------- noisy teacher
def inside_asu(space_group: Tensor, frac: Tensor, tol: float = 1e-9) -> Tensor:
    """Whether points (..., 3) lie in the closed ASU of their group (``space_group`` broadcastable)."""
    planes = group_geometry().asu_planes.to(frac.device)[space_group - 1]  # (..., K, 4)
    val = (planes[..., :3] * frac.unsqueeze(-2)).sum(-1) + planes[..., 3]
    return (val >= -tol).all(-1)


def fold_into_asu(frac: Tensor, near: Tensor, piece: Tensor, space_group: Tensor) -> Tensor:
    """The image of each point (N, 3) (conventional fractional) in the closed ASU of its group that is closest
    to ``near`` (N, 3) (the clean position: on a boundary face the choice among equivalent images is thereby
    the natural continuation). Points whose images miss the ASU numerically are returned unchanged."""
    dev = frac.device
    owner, imgs = atom_images(frac, piece)  # primitive-distinct images
    # add the centring translations: the conventional-cell orbit
    ctrans = _centring_vectors(dev)[space_group - 1]  # (N, 4, 3) padded with NaN
    imgs = imgs.unsqueeze(1) + ctrans[owner]  # (M, 4, 3)
    imgs = imgs - torch.floor(imgs)
    shifts = torch.tensor(list(itertools.product((0.0, -1.0), repeat=3)), dtype=torch.float64, device=dev)
    cand = imgs.unsqueeze(2) + shifts  # (M, 4, 8, 3)
    sg = space_group[owner][:, None, None].expand(cand.shape[:-1])
    ok = inside_asu(sg, cand, 1e-9) & torch.isfinite(cand).all(-1)
    dist = ((cand - near[owner][:, None, None, :]) ** 2).sum(-1)
    dist = torch.where(ok, dist, torch.full_like(dist, math.inf)).flatten(1)  # (M, 32)
    cand = cand.flatten(1, 2)
    best_d, best_k = dist.min(-1)
    # best over the images of each atom
    n = frac.shape[0]
    best_per_atom = torch.full((n,), math.inf, dtype=torch.float64, device=dev).scatter_reduce(
        0, owner, best_d, reduce="amin"
    )
    is_best = (best_d == best_per_atom[owner]) & torch.isfinite(best_d)
    idx = torch.nonzero(is_best).squeeze(-1)
    out = frac.clone()
    # several images may tie exactly (same point): any of them
    out[owner[idx]] = cand[idx, best_k[idx]]
    return out


@cache
def _centring_vectors_cpu() -> Tensor:
    gg = group_geometry()
    out = torch.full((230, 4, 3), math.nan, dtype=torch.float64)
    for n in range(230):
        rot, tr, k = gg.ops_rot[n], gg.ops_trans[n], int(gg.ops_count[n])
        eye = (rot[:k] == torch.eye(3, dtype=torch.float64)).all(-1).all(-1)
        vecs = tr[:k][eye]
        out[n, : vecs.shape[0]] = vecs
    return out


def _centring_vectors(device: torch.device) -> Tensor:
    return _centring_vectors_cpu().to(device)


def wyckoff_noise(
    frac: Tensor,
    piece: Tensor,
    space_group: Tensor,
    lattice: Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noisy copies of atoms (N, 3): isotropic Gaussian noise of ``sigma`` Angstrom per Cartesian direction,
    orthogonally projected onto the Cartesian span of each piece's affine directions (0-D pieces do not move),
    then folded back into the closed ASU (:func:`fold_into_asu`). ``space_group`` and ``lattice`` are per atom."""
    if sigma <= 0 or frac.shape[0] == 0:
        return frac
    dev = frac.device
    amat = lattice_matrix(lattice)  # (N, 3, 3)
    dirs = piece_images().basis.to(dev)[piece] @ amat  # (N, 3, 3) Cartesian directions (zero rows padded)
    gram = dirs @ dirs.transpose(-1, -2)
    proj = dirs.transpose(-1, -2) @ torch.linalg.pinv(gram, hermitian=True, rtol=1e-10) @ dirs  # (N, 3, 3)
    eps = torch.randn(frac.shape, generator=generator, dtype=torch.float64).to(dev) * sigma
    dcart = (proj @ eps.unsqueeze(-1)).squeeze(-1)
    dfrac = torch.linalg.solve(amat.transpose(-1, -2), dcart.unsqueeze(-1)).squeeze(-1)
    noisy = frac.to(torch.float64) + dfrac
    out = noisy.clone()
    outside = ~inside_asu(space_group, noisy)
    idx = torch.nonzero(outside).squeeze(-1)
    if idx.numel():
        out[idx] = fold_into_asu(noisy[idx], frac[idx].to(torch.float64), piece[idx], space_group[idx])
    return out
