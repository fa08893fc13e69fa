"""Symmetry-fidelity checks: exact operations and spglib's view at several tolerances."""

from __future__ import annotations

from pathlib import Path

import asu_geometry as ag
import pandas as pd
import pytest
from crystal_ar_model.fidelity import fidelity_table, max_operation_error, operations_hold, spglib_relation

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def crystals() -> list[ag.AsuCrystal]:
    df = pd.read_csv(DATA / "mp20_train300.csv.xz").head(60)
    return [ag.to_asu(ag.structure_from_cif_string(c)) for c in df["cif"]]


def test_asu_crystals_are_exactly_symmetric(crystals: list[ag.AsuCrystal]) -> None:
    assert all(max_operation_error(c) < 1e-9 for c in crystals)
    table = fidelity_table(crystals, symprecs=(0.001,))
    assert table["n"] == 60 and table["operations_hold_pct"] == 100.0
    assert table["spglib"]["0.001"]["same"] + table["spglib"]["0.001"]["supergroup"] == 100.0


def test_an_atom_off_its_position_breaks_the_operations() -> None:
    off = ag.AsuCrystal(225, (5.6, 5.6, 5.6, 90.0, 90.0, 90.0), (ag.AsuSite("Na", "a", 0, (0.01, 0.0, 0.0)),))
    assert max_operation_error(off) == pytest.approx(0.02, abs=1e-9)
    assert not operations_hold(off)


def test_a_crystal_written_in_a_subgroup_is_seen_in_its_supergroup() -> None:
    nacl = ag.AsuCrystal(225, (5.64,) * 3 + (90.0,) * 3, (ag.AsuSite("Na", "a", 0, (0.0, 0.0, 0.0)),
                                                          ag.AsuSite("Cl", "b", 0, (0.5, 0.0, 0.0))))
    p1 = ag.AsuCrystal(1, nacl.lattice, tuple(ag.AsuSite(str(s.specie), "a", 0, tuple(s.frac_coords.tolist()))
                                              for s in nacl.to_structure()))
    assert spglib_relation(nacl, 0.01) == ("same", 225)
    assert spglib_relation(p1, 0.01) == ("supergroup", 225)


def test_a_near_cubic_cell_is_a_supergroup_only_at_loose_tolerance() -> None:
    # CsCl written in P4/mmm: with c = a it is cubic (Pm-3m) at any tolerance; with c = a + 0.02 A only at 0.1 A
    def cscl(c: float) -> ag.AsuCrystal:
        return ag.AsuCrystal(123, (4.1, 4.1, c, 90.0, 90.0, 90.0),
                             (ag.AsuSite("Cs", "a", 0, (0.0, 0.0, 0.0)), ag.AsuSite("Cl", "d", 0, (0.5, 0.5, 0.5))))

    assert spglib_relation(cscl(4.1), 0.001) == ("supergroup", 221)
    assert [spglib_relation(cscl(4.12), p) for p in (0.001, 0.01, 0.1)] == [
        ("same", 123), ("same", 123), ("supergroup", 221)]
