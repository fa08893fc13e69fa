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
    status: str  # "ok" | "tolerance" | "failure"
    reason: str
    space_group: int | None = None


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
        return RoundTrip("failure", "to_dict/from_dict changed the crystal", sg)
    if len(back) != crystal.num_atoms:
        return RoundTrip("failure", f"{len(back)} atoms rebuilt, expected {crystal.num_atoms}", sg)
    exact = _spglib_number(back, 1e-3, -1.0)
    if exact != sg:
        return RoundTrip("failure", f"spglib (symprec 1e-3) finds {exact} on the rebuilt cell, expected {sg}", sg)
    if not back.is_valid(tol=0.5):
        return RoundTrip("failure", "rebuilt cell has sites closer than 0.5 A", sg)
    matcher = StructureMatcher()
    if not matcher.fit(s, back):
        refined = SpacegroupAnalyzer(s, symprec=symprec, angle_tolerance=angle_tolerance).get_refined_structure()
        if matcher.fit(s, refined) or not matcher.fit(refined, back):
            return RoundTrip("failure", "rebuilt cell does not match the input", sg)
        return RoundTrip("tolerance", f"symmetrisation at symprec={symprec} moves atoms beyond StructureMatcher "
                                      "tolerances (pymatgen's refinement does not match the input either)", sg)
    loose = _spglib_number(back, symprec, angle_tolerance)
    if loose != sg:
        return RoundTrip("tolerance", f"the symmetrised cell is within symprec={symprec} of group {loose}", sg)
    return RoundTrip("ok", "", sg)
