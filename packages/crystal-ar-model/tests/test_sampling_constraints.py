"""Parsing and validation of the sampling constraints (no model needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from crystal_ar_model.constraints import (
    ConstraintError,
    SamplingConstraints,
    build_constraints,
    parse_elements,
    parse_space_groups,
    partial_from_dict,
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


def test_sample_refuses_masks_and_knobs_that_would_draw_something_else() -> None:
    """An empty element mask used to give pure-H crystals, required elements outside the allowed ones were
    ignored, a NaN temperature gave degenerate cells: each is refused with a clear message."""
    import torch
    from crystal_ar_model.sampling import sample

    from .test_masks import small_model

    tiny_model = small_model(8, (1, 3, 8, 12, 26, 29), seed=11)
    v = len(tiny_model.vocabulary)
    g = torch.Generator().manual_seed(0)
    none = torch.zeros(v, dtype=torch.bool)
    first = none.clone()
    first[0] = True
    second = none.clone()
    second[1] = True
    cases = [
        (dict(elements=none), "elements allows no element"),
        (dict(elements=first, required=second), "required asks for elements"),
        (dict(space_groups=torch.zeros(230, dtype=torch.bool)), "allows no space group"),
        (dict(space_groups=torch.ones(229, dtype=torch.bool)), "bool tensor of shape (230,)"),
        (dict(elements=torch.ones(v)), "bool tensor"),
        (dict(temperature=float("nan")), "temperature must be a positive finite number"),
        (dict(min_distance=-1.0), "min_distance must be a positive finite number"),
        (dict(max_atoms=2.5), "max_atoms must be a positive whole number"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            sample(tiny_model, 2, g, **kwargs)
    for num in (0, -1, 1.5):
        with pytest.raises(ValueError, match="num must be a positive whole number"):
            sample(tiny_model, num, g)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(space_groups=(0,)), "not numbers 1..230"),
    (dict(space_groups=(231,)), "not numbers 1..230"),
    (dict(space_groups=()), "list of space groups is empty"),
    (dict(elements=()), "allowed elements is empty"),
    (dict(elements=(0, 8)), "not atomic numbers"),
    (dict(max_atoms=2.5), "whole number"),
])
def test_sampling_constraints_validate_their_numbers(kwargs, message) -> None:
    """Space group 0 used to select group 230 (index -1)."""
    with pytest.raises(ConstraintError, match=re.escape(message)):
        SamplingConstraints(**kwargs)


def test_partial_lattice_without_volume_and_malformed_sites_are_refused() -> None:
    with pytest.raises(ConstraintError, match="make a cell with volume"):
        partial_from_dict({"space_group": 1, "lattice": [4, 4, 4, 120, 120, 120],
                           "sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]})
    with pytest.raises(ConstraintError, match="'sites' must be a list of objects"):
        partial_from_dict({"space_group": 1, "sites": [5]})
    with pytest.raises(ConstraintError, match="frac_coords must be three finite numbers"):
        partial_from_dict({"space_group": 1, "sites": [{"element": "Na", "frac_coords": "abc"}]})
