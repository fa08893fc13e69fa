"""Parsing and validation of the sampling constraints (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crystal_ar_model.constraints import (
    ConstraintError,
    build_constraints,
    parse_elements,
    parse_space_groups,
    read_partial,
)


def test_space_groups_by_number_and_symbol() -> None:
    assert parse_space_groups("225") == (225,)
    assert parse_space_groups("Fm-3m") == (225,)
    assert parse_space_groups("F m -3 m") == (225,)
    assert parse_space_groups("P6_3/mmc,194, p63/MMC") == (194,)
    assert parse_space_groups("229,221,225") == (221, 225, 229)
    assert parse_space_groups("P2_12_12_1") == (19,)
    assert parse_space_groups([1, "P-1"]) == (1, 2)


@pytest.mark.parametrize("bad, why", [("231", "outside 1..230"), ("0", "outside"), ("Fm3m3", "unknown space-group"),
                                      (",", "no space group")])
def test_bad_space_groups(bad: str, why: str) -> None:
    with pytest.raises(ConstraintError, match=why):
        parse_space_groups(bad)


def test_elements() -> None:
    assert parse_elements("Li,Fe,P,O") == (3, 8, 15, 26)
    with pytest.raises(ConstraintError, match="did you mean Fe"):
        parse_elements("fe")
    with pytest.raises(ConstraintError, match="unknown element symbol 'Xx'"):
        parse_elements("Li,Xx")


def test_contradictions_fail_before_sampling() -> None:
    with pytest.raises(ConstraintError, match="required element.*Li.*not among"):
        build_constraints(elements="Fe,O", require_elements="Li,O")
    with pytest.raises(ConstraintError, match="at least 1"):
        build_constraints(max_atoms=0)
    c = build_constraints(space_group="Fm-3m,221", elements="Na,Cl,K", require_elements="Cl", max_atoms=12)
    assert c.groups == (221, 225) and c.must_contain == (17,)
    assert json.loads(json.dumps(c.to_dict()))["elements"] == ["Na", "Cl", "K"]


def _write(tmp_path: Path, d: dict) -> Path:
    p = tmp_path / "partial.json"
    p.write_text(json.dumps(d))
    return p


def test_partial_json_is_mapped_into_the_asu(tmp_path: Path) -> None:
    # rock salt's Na on 4a written at an equivalent position (1/2, 1/2, 0) -> the ASU representative (0, 0, 0)
    part = read_partial(_write(tmp_path, {"space_group": "Fm-3m", "lattice": None,
                                          "sites": [{"element": "Na", "wyckoff": "a", "frac_coords": [0.5, 0.5, 0]}]}))
    assert part.space_group == 225 and part.lattice is None
    (site,) = part.sites
    assert site.wyckoff == "a" and site.frac_coords == (0.0, 0.0, 0.0)
    c = build_constraints(partial=_write(tmp_path, {"space_group": 225, "sites": [
        {"element": "Na", "frac_coords": [0, 0, 0]}]}), require_elements="Cl")
    assert c.groups == (225,) and c.must_contain == (11, 17)


@pytest.mark.parametrize("record, why", [
    ({"space_group": 225, "sites": [{"element": "Na", "wyckoff": "a", "frac_coords": [0.11, 0.23, 0.37]}]},
     r"is on Wyckoff position 192l of Fm-3m \(225\), not on 4a"),
    ({"space_group": 225, "sites": [{"element": "Na", "wyckoff": "z", "frac_coords": [0, 0, 0]}]},
     "no Wyckoff position"),
    ({"space_group": 225, "sites": [{"element": "Xx", "frac_coords": [0, 0, 0]}]}, "unknown element"),
    ({"space_group": 225, "sites": []}, "has no sites"),
    ({"sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]}, "needs a 'space_group'"),
    ({"space_group": 225, "lattice": [1, 1, -1, 90, 90, 90], "sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]},
     "lattice must be"),
])
def test_bad_partial_crystals(tmp_path: Path, record: dict, why: str) -> None:
    with pytest.raises(ConstraintError, match=why):
        read_partial(_write(tmp_path, record))


def test_partial_against_other_constraints(tmp_path: Path) -> None:
    p = _write(tmp_path, {"space_group": 225, "sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]})
    with pytest.raises(ConstraintError, match="not among --space-group"):
        build_constraints(space_group="221", partial=p)
    with pytest.raises(ConstraintError, match="contains Na, outside"):
        build_constraints(elements="Cl,K", partial=p)
    with pytest.raises(ConstraintError, match="no such file"):
        read_partial(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConstraintError, match="not valid JSON"):
        read_partial(tmp_path / "bad.json")
