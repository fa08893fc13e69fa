"""Worked examples of the normal form (prints text; not a test).

    python benchmarks/asu_normal_form_examples.py [--ids mp-1025536 mp-10225] [--seed 0]

For each material id of ../shared/data/mp_20_partial/train.first1000.csv.xz: spglib's standardised
description (``to_asu(..., canonical=False)``) and the normal form (``to_asu``) of the CIF as given, then of
the same crystal with its origin moved by a random vector (seeded). The normal forms agree; spglib's
descriptions need not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_20_partial" / "train.first1000.csv.xz"


def describe(crystal) -> str:  # noqa: ANN001
    import asu_geometry as ag

    g = ag.space_group(crystal.space_group)
    a, b, c, al, be, ga = crystal.lattice
    lines = [f"  {g.symbol} ({g.number}), a={a:.4f} b={b:.4f} c={c:.4f} alpha={al:.2f} beta={be:.2f} gamma={ga:.2f}"]
    for i, s in enumerate(crystal.sites):
        wp = g.wyckoff(s.wyckoff)
        tag = " anchored" if crystal.is_anchored(i) else ""
        x = ", ".join(f"{v:.4f}" for v in s.frac_coords)
        lines.append(f"    {s.element:<3} {wp.label:<4} shape {s.shape_index}{tag:<9} ({x})")
    return "\n".join(lines)


def main() -> None:
    import asu_geometry as ag

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", nargs="*", default=["mp-1025536", "mp-10225"], help="material ids (Cmmm, R3m)")
    ap.add_argument("--csv", type=Path, default=SHARED)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = pd.read_csv(args.csv).set_index("material_id")
    rng = np.random.default_rng(args.seed)
    for ident in args.ids:
        s = ag.structure_from_cif_string(df.loc[ident, "cif"])
        shift = rng.random(3)
        moved = s.copy()
        moved.translate_sites(list(range(len(s))), shift, frac_coords=True, to_unit_cell=True)
        print(f"{ident} ({df.loc[ident, 'pretty_formula']})")
        print(" spglib's description of the file (canonical=False):")
        print(describe(ag.to_asu(s, canonical=False)))
        print(f" spglib's description after moving the origin by ({', '.join(f'{v:.3f}' for v in shift)}):")
        print(describe(ag.to_asu(moved, canonical=False)))
        a, b = ag.to_asu(s), ag.to_asu(moved)
        print(" normal form of the file:")
        print(describe(a))
        print(" normal form after the origin shift:")
        print(describe(b))
        from asu_geometry.normalform import same_description

        print(f" identical normal forms: {same_description(a, b, 1e-9, 1e-9)}\n")


if __name__ == "__main__":
    main()
