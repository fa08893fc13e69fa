"""Regenerate the frozen tables shipped in ``src/crystal_eval/data/`` (maintainers only).

    python packages/crystal-eval/scripts/build_package_data.py

* ``smact14.json``: the SMACT14 oxidation states, Pauling electronegativities and the SMACT metal list,
  read once from the installed SMACT (>= 3 keeps the old list as ``Element.oxidation_states_smact14``),
  so compositional validity never drifts with the installed SMACT version.
* ``wyckoff_dof.json``: for each space group (standard ITA setting) and Wyckoff letter, the number of
  free coordinates (0-3), read from pyxtal's Wyckoff tables.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "crystal_eval" / "data"


def build_smact14() -> dict:
    import smact
    from pymatgen.core.periodic_table import Element as PmgElement
    from smact import Element

    ox: dict[str, list[int]] = {}
    eneg: dict[str, float | None] = {}
    for z in range(1, 104):
        sym = PmgElement.from_Z(z).symbol
        try:
            el = Element(sym)
        except Exception:  # element unknown to SMACT
            continue
        states = getattr(el, "oxidation_states_smact14", None)
        if states is None:
            states = el.oxidation_states  # SMACT < 3: this *is* SMACT14
        ox[sym] = [int(s) for s in (states or [])]
        eneg[sym] = None if el.pauling_eneg is None else float(el.pauling_eneg)
    return {
        "description": "SMACT14 oxidation states, Pauling electronegativities and SMACT metals, frozen so "
        "that compositional validity does not depend on the installed SMACT version.",
        "source": f"SMACT {smact.__version__} (MIT License, WMD-group/SMACT): "
        "Element.oxidation_states_smact14, Element.pauling_eneg, smact.metals",
        "oxidation_states": ox,
        "pauling_eneg": eneg,
        "metals": sorted(smact.metals),
    }


def build_wyckoff_dof() -> dict:
    from pyxtal.symmetry import Group

    table: dict[str, dict[str, int]] = {}
    for sg in range(1, 231):
        g = Group(sg)
        table[str(sg)] = {wp.letter: int(wp.get_dof()) for wp in g.Wyckoff_positions}
    return {
        "description": "Number of free coordinates (0-3) of each Wyckoff position, by space group "
        "and letter.",
        "source": "pyxtal Wyckoff tables (Group(sg).Wyckoff_positions[i].get_dof())",
        "dof": table,
    }


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "smact14.json").write_text(json.dumps(build_smact14(), indent=1) + "\n")
    (DATA / "wyckoff_dof.json").write_text(json.dumps(build_wyckoff_dof(), indent=1) + "\n")


if __name__ == "__main__":
    main()
