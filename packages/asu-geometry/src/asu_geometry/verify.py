"""Round-trip verification of the crystal <-> ASU codec on real structures.

:func:`round_trip` runs ``to_asu -> to_structure`` and classifies the outcome:

* ``"ok"``: the rebuilt conventional cell matches the input (pymatgen ``StructureMatcher()`` defaults),
  spglib finds the same space group on it, and ``to_dict``/``from_dict`` is lossless;
* ``"tolerance"``: the input is only approximately symmetric at ``symprec``: either symmetrising it
  moves atoms beyond the matcher's tolerances (pymatgen's own refinement at the same tolerances does
  not match the input either, while our rebuilt cell matches that refinement), or the symmetrised cell
  is within ``symprec`` of a supergroup (spglib finds exactly our group at symprec 1e-3);
* ``"failure"``: anything else (an exception, a lost atom, a mismatch the codec is responsible for).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from .crystal import AsuCrystal, structure_from_cif_string, to_asu


@dataclass(frozen=True)
class RoundTrip:
    """Outcome of :func:`round_trip` for one structure: ``status`` ``"ok"``, ``"tolerance"`` or ``"failure"`` with its
    ``reason``, the space group found and the normal form (when ``to_asu`` succeeded)."""
    status: str  # "ok" | "tolerance" | "failure"
    reason: str
    space_group: int | None = None
    crystal: AsuCrystal | None = None  # the normal form, when to_asu succeeded


def _spglib_number(s: Any, symprec: float, angle_tolerance: float) -> int | None:
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = spglib.get_symmetry_dataset((s.lattice.matrix, s.frac_coords, [x.Z for x in s.species]),
                                         symprec=symprec, angle_tolerance=angle_tolerance)
    return None if ds is None else int(ds.number)


def round_trip(structure: Any, symprec: float = 0.1, angle_tolerance: float = 5.0) -> RoundTrip:
    """Check ``to_asu`` then ``to_structure`` on one structure (a pymatgen Structure or a CIF string)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        s = structure_from_cif_string(structure) if isinstance(structure, str) else structure
        crystal = to_asu(s, symprec=symprec, angle_tolerance=angle_tolerance)
        back = crystal.to_structure()
        again = AsuCrystal.from_dict(json.loads(crystal.to_json()))
    except Exception as exc:  # every failure is reported with its reason
        return RoundTrip("failure", f"{type(exc).__name__}: {exc}")
    sg = crystal.space_group
    if again != crystal:
        return RoundTrip("failure", "to_dict/from_dict changed the crystal", sg, crystal)
    if len(back) != crystal.num_atoms:
        return RoundTrip("failure", f"{len(back)} atoms rebuilt, expected {crystal.num_atoms}", sg, crystal)
    exact = _spglib_number(back, 1e-3, -1.0)
    if exact != sg:
        return RoundTrip("failure", f"spglib (symprec 1e-3) finds {exact} on the rebuilt cell, expected {sg}", sg,
                         crystal)
    if not back.is_valid(tol=0.5):
        return RoundTrip("failure", "rebuilt cell has sites closer than 0.5 A", sg, crystal)
    matcher = StructureMatcher()
    if not matcher.fit(s, back):
        refined = SpacegroupAnalyzer(s, symprec=symprec, angle_tolerance=angle_tolerance).get_refined_structure()
        if matcher.fit(s, refined) or not matcher.fit(refined, back):
            return RoundTrip("failure", "rebuilt cell does not match the input", sg, crystal)
        return RoundTrip("tolerance", f"symmetrisation at symprec={symprec} moves atoms beyond StructureMatcher "
                                      "tolerances (pymatgen's refinement does not match the input either)", sg, crystal)
    loose = _spglib_number(back, symprec, angle_tolerance)
    if loose != sg:
        return RoundTrip("tolerance", f"the symmetrised cell is within symprec={symprec} of group {loose}", sg,
                         crystal)
    return RoundTrip("ok", "", sg, crystal)


def random_unimodular(rng: Any, steps: int = 4) -> Any:
    """A random integer matrix with determinant +1 (a product of ``steps`` elementary shears, each row
    operation ``r_i += k r_j`` with ``k`` in {-1, 1}), generally non-diagonal."""
    import numpy as np

    m = np.eye(3, dtype=int)
    for _ in range(steps):
        i, j = rng.choice(3, size=2, replace=False)
        m[i] += int(rng.choice([-1, 1])) * m[j]
    return m


def random_rotation(rng: Any) -> Any:
    """A uniformly random proper rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    import numpy as np

    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def redescribe(structure: Any, rng: Any, supercell: Any | None = None) -> Any:
    """The same crystal written again as a new user might: another cell of the same lattice (a random
    det +1 change of basis, times ``supercell`` when given, e.g. ``(1, 2, 1)``), a random origin, a rotated
    Cartesian frame and shuffled sites. Only proper motions: the handedness is kept."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    s = structure.copy()
    basis = random_unimodular(rng)
    if supercell is not None:
        basis = np.diag(supercell) @ basis
    s.make_supercell(basis)
    s.translate_sites(list(range(len(s))), rng.random(3), frac_coords=True, to_unit_cell=True)
    rot = random_rotation(rng)
    lattice = Lattice(s.lattice.matrix @ rot.T)
    order = rng.permutation(len(s))
    return Structure(lattice, [s[i].species for i in order], s.frac_coords[order])


def mirror_image(structure: Any) -> Any:
    """The mirror image (all coordinates negated, i.e. the crystal inverted through the origin)."""
    from pymatgen.core import Structure

    return Structure(structure.lattice, [site.species for site in structure], -structure.frac_coords)
