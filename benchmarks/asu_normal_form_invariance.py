"""Invariance of the normal form on whole CDVAE CSV files (prints counts; not a test).

    python benchmarks/asu_normal_form_invariance.py [FILE.csv.xz ...] [-j 2] [--variants 2] [--perturb 1e-5]

Default files: ../shared/data/mp_20_partial/*.csv.xz. For every row, ``to_asu`` of the CIF is compared
with ``to_asu`` of ``--variants`` redescriptions of the same crystal
(``asu_geometry.verify.redescribe``: a random det +1 cell, every other one also a supercell, a random
origin, a rotated frame, shuffled sites) and of a copy with every atom moved by ``--perturb`` Angstrom in a
random direction. Same normal form means the same group, sites (element, letter, shape index) and, within
1e-5 (fractional) and 1e-4 (A, degrees), coordinates and lattice. Rows whose round trip is only a tolerance
case (``asu_geometry.verify.round_trip``: the input is only approximately symmetric at symprec=0.1) are
counted apart; every other difference is listed.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_20_partial"
SUPERCELLS = [(1, 1, 2), (2, 1, 1), (1, 2, 1)]


def _same(a, b) -> bool:  # noqa: ANN001
    from asu_geometry.normalform import same_description

    return same_description(a, b, coord_tol=1e-5, lattice_tol=1e-4)


def _check(job: tuple[int, str, str, int, float]) -> tuple[str, str, str]:
    import asu_geometry as ag
    from asu_geometry.verify import redescribe, round_trip

    index, ident, cif, variants, perturb = job
    rng = np.random.default_rng(index)
    try:
        s = ag.structure_from_cif_string(cif)
        ref = ag.to_asu(s)
    except Exception as exc:  # noqa: BLE001
        return ident, "error", f"{type(exc).__name__}: {exc}"
    problems = []
    for v in range(variants):
        sup = SUPERCELLS[(index + v) % 3] if v % 2 else None
        try:
            other = ag.to_asu(redescribe(s, rng, sup))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"variant {v}: {type(exc).__name__}: {exc}")
            continue
        if not _same(ref, other):
            problems.append(f"variant {v}{' (supercell)' if sup else ''}: {_diff(ref, other)}")
    if perturb > 0:
        p = s.copy()
        step = rng.normal(size=(len(p), 3))
        step *= perturb / np.linalg.norm(step, axis=1, keepdims=True)
        p = p.__class__(p.lattice, p.species, p.cart_coords + step, coords_are_cartesian=True)
        if not _same(ref, ag.to_asu(p)):
            problems.append(f"perturbed by {perturb} A: {_diff(ref, ag.to_asu(p))}")
    if not problems:
        return ident, "same", ""
    status = round_trip(cif).status
    return ident, "tolerance" if status == "tolerance" else "different", f"sg {ref.space_group}: " + "; ".join(problems)


def _diff(a, b) -> str:  # noqa: ANN001
    if a.space_group != b.space_group:
        return f"space group {a.space_group} vs {b.space_group}"
    if not np.allclose(a.lattice, b.lattice, atol=1e-4):
        return f"lattice {np.round(a.lattice, 4).tolist()} vs {np.round(b.lattice, 4).tolist()}"
    da = [(s.element, s.wyckoff, s.shape_index) for s in a.sites]
    db = [(s.element, s.wyckoff, s.shape_index) for s in b.sites]
    if da != db:
        return f"sites {da} vs {db}"
    xa = np.array([s.frac_coords for s in a.sites])
    xb = np.array([s.frac_coords for s in b.sites])
    return f"coordinates differ by up to {np.max(np.abs(xa - xb)):.2e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=sorted(SHARED.glob("*.csv.xz")))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--variants", type=int, default=2, help="redescriptions per row (default 2)")
    ap.add_argument("--perturb", type=float, default=1e-5, help="perturbation in Angstrom (0: none)")
    ap.add_argument("--rows", type=int, default=None, help="only the first ROWS rows of each file")
    args = ap.parse_args()
    from tqdm import tqdm

    total: Counter[str] = Counter()
    t0 = time.perf_counter()
    with Pool(args.jobs) as pool:
        for path in args.files:
            df = pd.read_csv(path).iloc[:args.rows]
            jobs = [(i, ident, cif, args.variants, args.perturb)
                    for i, (ident, cif) in enumerate(zip(df.material_id, df.cif, strict=True))]
            results = list(tqdm(pool.imap(_check, jobs, chunksize=10), total=len(jobs), desc=path.name))
            counts = Counter(r[1] for r in results)
            total.update(counts)
            print(f"{path.name}: {len(df)} rows x {args.variants} redescriptions + perturbed copy: same normal form "
                  f"{counts['same']}, tolerance-case rows that differ {counts['tolerance']}, other rows that differ "
                  f"{counts['different']}, errors {counts['error']}")
            for ident, status, reason in results:
                if status != "same":
                    print(f"  {status:9s} {ident}: {reason}")
    n = sum(total.values())
    print(f"all: {n} rows, same normal form {total['same']} ({100 * total['same'] / n:.2f} %), tolerance-case rows "
          f"{total['tolerance']}, other differences {total['different']}, errors {total['error']}; "
          f"{time.perf_counter() - t0:.0f} s with {args.jobs} processes")


if __name__ == "__main__":
    main()
