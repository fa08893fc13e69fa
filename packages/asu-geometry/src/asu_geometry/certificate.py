r"""A proof, without spglib, that spglib would find a cubic crystal's own space group and orbits.

:func:`asu_geometry.to_asu_cell` asks spglib for the space group of a cell at a distance tolerance
:math:`\varepsilon` (``symprec``, Angstrom) and an angle tolerance :math:`\alpha`. spglib accepts an operation
:math:`(R, t)` when :math:`R` is a symmetry of the lattice at :math:`(\varepsilon, \alpha)` (basis lengths within
:math:`\varepsilon`, angles within :math:`\alpha`) and every atom :math:`x` has an atom of its species within
:math:`\varepsilon` of :math:`Rx + t` (Cartesian, modulo the lattice); the site symmetry of an atom is the set
of accepted operations that move it less than :math:`\varepsilon`; when its search fails it retries with a
*smaller* tolerance. A crystal built from an :class:`~asu_geometry.AsuCrystal` of a group G (its conventional
cell in G's standard setting) is exactly G-symmetric, so spglib finds G or a supergroup of G, and a site
symmetry at least G's. :func:`own_group_certified` proves that it finds exactly G, with the crystal's own sites as
orbits, for the 36 cubic groups (195-230), where spglib's search costs most (up to |G|^2 overlap tests per orbit
and Wyckoff position in its Wyckoff assignment), from three facts:

1. **The lattice.** The cell is exactly cubic with :math:`a \ge` :data:`MIN_CELL` :math:`\varepsilon` and
   :math:`\alpha \le` :data:`MAX_ANGLE_TOLERANCE`. The lattice vectors of a cubic P, I or F lattice have
   lengths :math:`a\sqrt{k/4}`, k an integer, and shells this close to the short vectors are more than
   :math:`\varepsilon` apart for such :math:`a`; the angles between vectors of one short shell are 90 and 180
   (P), 60, 90, 120 and 180 (F) or 70.5, 109.5 and 180 degrees (I), more than :math:`2\alpha` apart. So every
   lattice symmetry spglib can accept is an exact one: a signed permutation of the cubic axes (the holohedry
   m-3m, 48 rotations), which contains G's point group P.
2. **No close atoms.** No two distinct atoms of the cell are within :data:`SAFETY` :math:`\varepsilon`: the
   accepted operations that move an atom less than :math:`\varepsilon` fix it exactly, so the site symmetries
   and the orbits are G's (and spglib reports no overlapping atoms).
3. **No extra operation.** Suppose :math:`(R, t) \notin G` maps every atom within :math:`\varepsilon`. Composed
   with an exact operation of G (which only permutes the atoms) it gives such an operation whose rotation is a
   chosen representative :math:`R_c` of the left coset :math:`RP` of P in m-3m, the identity when
   :math:`R \in P` (then :math:`t` is no centring translation of G). It maps an atom :math:`x_0` of the
   species with the fewest atoms within :math:`\varepsilon` of an atom :math:`y` of that species, so the
   candidate :math:`t' = y - R_c x_0` differs from its translation by less than :math:`\varepsilon` and maps
   every atom within :math:`2\varepsilon`. The proof tests every candidate (every :math:`y`, every coset
   representative) and requires that each leaves some atom farther than :math:`2\,` :data:`SAFETY`
   :math:`\varepsilon` from every atom of its species.

The margin :data:`SAFETY` > 1 covers rounding and the coordinates a CIF file keeps. When any condition fails
(a non-cubic group, a near-symmetric arrangement, atoms within :data:`SAFETY` :math:`\varepsilon`, or more
candidate tests than :data:`MAX_TESTS`), the answer is ``False`` and :func:`asu_geometry.to_asu_crystal` calls
spglib as :func:`~asu_geometry.to_asu_cell` does. Reference: A. Togo, K. Shinohara & I. Tanaka, Sci. Technol.
Adv. Mater. Meth. 4 (2024) 2384822 (spglib's algorithm and tolerances).
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np

from .tables import SpaceGroup

CUBIC_GROUPS = range(195, 231)
"""The groups the proof covers (cubic; elsewhere the lattice may be nearly of a higher family)."""
SAFETY = 1.5
"""Margin over spglib's tolerance: the proof holds up to SAFETY * symprec."""
MIN_CELL = 25.0
"""The proof needs a cubic cell parameter of at least this many times symprec (separated length shells)."""
MAX_ANGLE_TOLERANCE = 5.0
"""Largest angle tolerance (degrees) for which the lattice argument holds with room to spare."""
MAX_TESTS = 200_000
"""Candidate-atom distance tests above which the proof is not attempted (spglib is asked instead)."""


@cache
def _holohedry() -> np.ndarray:
    """The 48 signed permutation matrices (m-3m in the cubic basis), identity first."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = s
            mats.append(m)
    return np.array(mats)


@cache
def _coset_representatives(sg: int) -> np.ndarray:
    """One rotation of each left coset R P of the point group P of group ``sg`` in m-3m, the identity first."""
    from .tables import space_group

    pg = space_group(sg).point_group_rotations
    reps: list[np.ndarray] = []
    covered: set[bytes] = set()
    for m in _holohedry():
        if m.tobytes() in covered:
            continue
        reps.append(m)
        covered.update((m @ r + 0.0).tobytes() for r in pg)  # + 0.0: no negative zeros in the keys
    out = np.array(reps)
    out.setflags(write=False)
    return out


def _centring(sg: int) -> np.ndarray:
    """The pure translations of group ``sg`` in the conventional cell (the zero vector and the centring
    vectors), fractional: the normalizer's group data, which holds them in units of 1/GRID."""
    from .normalizer import GRID, _group_data

    return _group_data(sg)[4] / GRID


def _wrapped(d: np.ndarray) -> np.ndarray:
    return d - np.round(d)


def _closest_of_species(moved: np.ndarray, frac: np.ndarray, same: np.ndarray) -> np.ndarray:
    """For each candidate c and atom i, the fractional distance (in units of a) from ``moved[c, i]`` to the
    nearest atom j with ``same[i, j]``; shapes (C, n, 3), (n, 3), (n, n) -> (C, n)."""
    d = _wrapped(moved[:, :, None, :] - frac[None, None, :, :])
    dist = np.sqrt(np.einsum("cijk,cijk->cij", d, d))
    return np.where(same[None], dist, np.inf).min(axis=2)


def own_group_certified(g: SpaceGroup, a: float, frac: np.ndarray, numbers: np.ndarray, symprec: float,
                        angle_tolerance: float) -> bool:
    """Whether spglib, at ``symprec`` (Angstrom) and ``angle_tolerance`` (degrees), provably finds exactly the
    group ``g`` and the given orbits for the conventional cell of ``g`` with cubic cell parameter ``a`` (Angstrom),
    fractional coordinates ``frac`` (n, 3) and atomic numbers ``numbers`` (n,), an exactly ``g``-symmetric cell
    in ``g``'s standard setting (module docstring). ``False`` means "not proved", not "spglib finds another
    group"."""
    if g.number not in CUBIC_GROUPS or not 0 < angle_tolerance <= MAX_ANGLE_TOLERANCE or not a >= MIN_CELL * symprec:
        return False
    frac = np.asarray(frac, dtype=float)
    numbers = np.asarray(numbers)
    n = len(frac)
    close = SAFETY * symprec / a  # fractional distances: the cell is a cube of side a
    # 2. no two distinct atoms within SAFETY * symprec
    d = _wrapped(frac[:, None, :] - frac[None, :, :])
    dist = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
    np.fill_diagonal(dist, np.inf)
    if dist.min() <= close:
        return False
    # 3. no candidate operation outside G maps every atom within 2 * SAFETY * symprec
    species, counts = np.unique(numbers, return_counts=True)
    rare = np.nonzero(numbers == species[np.argmin(counts)])[0]
    reps = _coset_representatives(g.number)
    if len(reps) * len(rare) * n * n > MAX_TESTS:
        return False
    x0 = frac[rare[0]]
    same = numbers[:, None] == numbers[None, :]
    centring = _centring(g.number)
    for k, rot in enumerate(reps):
        t = frac[rare] - rot @ x0  # (C, 3): the candidates y - R_c x0
        if k == 0:  # pure translations: drop G's own (zero and the centring vectors)
            own = np.abs(_wrapped(t[:, None, :] - centring[None, :, :])).max(axis=2).min(axis=1) < 1e-9
            t = t[~own]
        if len(t) == 0:
            continue
        moved = (frac @ rot.T)[None, :, :] + t[:, None, :]
        worst = _closest_of_species(moved, frac, same).max(axis=1)  # (C,): the atom left farthest away
        if worst.min() <= 2 * close:
            return False
    return True
