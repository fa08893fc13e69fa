"""The reference hull on a toy chemical system, by hand and with pymatgen (no potential needed)."""

from __future__ import annotations

import numpy as np
import pytest
from crystal_eval.hull import ReferenceEnergies, ReferenceHull, fit_chemical_potentials
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

# Two elements and one binary (eV/atom): Fe at -8, O at -4, FeO at -7.5 (formation -1.5 eV/atom).
MU = {"Fe": -8.0, "O": -4.0}
ROWS = [({"Fe": 2.0}, -8.0), ({"O": 2.0}, -4.0), ({"Fe": 2.0, "O": 2.0}, -7.5)]


FE3O4 = ({"Fe": 3.0, "O": 4.0}, -6.9)  # x_O = 4/7, 0.1 eV/atom above the hull: does not change it


def toy(mode: str, rows=ROWS) -> ReferenceHull:
    formation = [e - sum(a * MU[el] for el, a in c.items()) / sum(c.values()) for c, e in rows]
    energies = ReferenceEnergies(
        names=[str(i) for i in range(len(rows))],
        compositions=[c for c, _ in rows],
        ml_energy=[e for _, e in rows],
        dft_formation=formation,
        potential="toy",
        file_hash="0",
    )
    return ReferenceHull(mode, energies)  # type: ignore[arg-type]


# (composition, energy per atom, E_hull by hand)
CASES = [
    # x_O = 1/4: hull between Fe (x=0, -8) and FeO (x=1/2, -7.5) -> -7.75
    ({"Fe": 3, "O": 1}, -7.60, 0.15),
    # x_O = 3/5: hull between FeO (1/2, -7.5) and O (1, -4) -> -7.5 + (0.1/0.5) * 3.5 = -6.8
    ({"Fe": 2, "O": 3}, -7.00, -0.20),
    # on the binary itself and above it
    ({"Fe": 1, "O": 1}, -7.50, 0.0),
    ({"Fe": 1, "O": 1}, -7.30, 0.2),
]


@pytest.mark.parametrize("mode", ["ml", "dft"])
def test_toy_hull_by_hand_and_pymatgen(mode: str):
    hull = toy(mode)
    full = PhaseDiagram([PDEntry(Composition(c), e * sum(c.values())) for c, e in ROWS])
    for comp, e, by_hand in CASES:
        ours = hull.e_above_hull(comp, e)
        assert ours == pytest.approx(by_hand, abs=1e-9), (comp, e)
        pmg = e - full.get_hull_energy_per_atom(Composition(comp))
        assert ours == pytest.approx(pmg, abs=1e-9)
        if by_hand >= 0:  # pymatgen's own E_hull of a new entry
            entry = PDEntry(Composition(comp), e * sum(comp.values()))
            assert full.get_e_above_hull(entry, allow_negative=True) == pytest.approx(by_hand, abs=1e-9)
    ref = hull.reference_e_above_hull()
    assert np.allclose(ref, 0.0, atol=1e-9)  # every toy reference is on its own hull


def test_fitted_chemical_potentials_stand_in_for_missing_elements():
    comps = [c for c, _ in ROWS] + [FE3O4[0]]
    ml = [e for _, e in ROWS] + [FE3O4[1]]
    formation = [e - sum(a * MU[el] for el, a in c.items()) / sum(c.values()) for c, e in zip(comps, ml, strict=True)]
    mu, rms = fit_chemical_potentials(comps, ml, formation)
    assert mu == pytest.approx(MU) and rms == pytest.approx(0.0, abs=1e-12)
    # without elemental rows (two compounds fix the two potentials) the terminals come from the fit
    no_elements = toy("ml", [ROWS[2], FE3O4])
    assert no_elements.mu == pytest.approx(MU)
    for comp, e, by_hand in CASES:
        assert no_elements.e_above_hull(comp, e) == pytest.approx(by_hand, abs=1e-9)


def test_element_outside_the_hull_is_an_error():
    with pytest.raises(ValueError, match="Na"):
        toy("ml").e_above_hull({"Na": 1, "O": 1}, -5.0)
    with pytest.raises(ValueError, match="non-finite"):
        toy("ml").e_above_hull({"Fe": 1}, float("nan"))
