"""Benchmarks of asu-geometry (prints figures; not a test).

    python benchmarks/asu_geometry_bench.py [--csv FILE] [--rows 1000] [--points 100000]

1. Loading the tables of all 230 groups (fresh process, so nothing is cached); then the feature tables of all
   groups and Wyckoff positions, read from the shipped files against derived again.
2. ``to_asu`` (the normal form) structures/s on one core (median of timed passes after a first pass that
   also fills the per-group caches; the first pass is printed too), on MP-20 rows (default:
   ../shared/data/mp_20_partial/train.first1000.csv.xz when present, else the committed test fixture),
   next to ``to_asu(..., canonical=False)`` (spglib's description, no normal form), spglib alone, pymatgen's
   ``SpacegroupAnalyzer(...).get_symmetrized_structure()`` and pyxtal's ``from_seed`` on the same rows;
   then the distribution of the number of candidate descriptions the normal form compared per crystal.
3. ``to_asu_points`` (vectorised ``to_asu_point``) points/s on uniform random points for a few groups.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data" / "mp_20_partial" / "train.first1000.csv.xz"
FIXTURE = ROOT / "packages" / "asu-geometry" / "tests" / "data" / "mp20_fixture.csv.gz"


def bench_loading(repeats: int = 5) -> None:
    code = ("import time, asu_geometry as ag; t = time.perf_counter(); ag.load_all(); "
            "print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
             for _ in range(repeats)]
    print(f"load all 230 groups (fresh process, after import): median {np.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {repeats} runs)")
    code = ("import time, asu_geometry as ag; from asu_geometry import features as F; ag.load_all(); "
            "t = time.perf_counter(); ag.space_group_feature_matrix(); ag.wyckoff_feature_matrix(); "
            "t1 = time.perf_counter(); F.computed_space_group_feature_matrix(); F.computed_wyckoff_feature_matrix(); "
            "print(t1 - t, time.perf_counter() - t1)")
    runs = np.array([[float(v) for v in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                        check=True).stdout.split()] for _ in range(repeats)])
    shipped, computed = np.median(runs, axis=0)
    print(f"feature tables of all groups and Wyckoff positions (fresh process, tables loaded): shipped files "
          f"{1e3 * shipped:.1f} ms, derived {computed:.2f} s (medians of {repeats} runs)")


def _rates(call, items: list, passes: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """Items per second over ``passes`` passes: by wall clock and by the process's CPU time (the second is
    less sensitive to other jobs on a shared machine; both are printed)."""
    wall, cpu = [], []
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        for item in items:
            call(item)
        wall.append(len(items) / (time.perf_counter() - t))
        cpu.append(len(items) / (time.process_time() - c))
    return wall, cpu


def bench_to_asu(csv: Path, rows: int, passes: int = 5) -> None:
    import asu_geometry as ag

    df = pd.read_csv(csv).iloc[:rows]
    structures = [ag.structure_from_cif_string(c) for c in df.cif]
    n = len(structures)
    t = time.perf_counter()
    for s in structures:  # first pass: also builds the per-group caches (compiled cuts, stacked shapes)
        ag.to_asu(s)
    cold = n / (time.perf_counter() - t)
    rates, cpu_rates = _rates(lambda s: ag.to_asu(s), structures, passes)
    print(f"to_asu (normal form): median {np.median(rates):.1f} structures/s over {passes} passes after the first "
          f"(min {min(rates):.1f}, max {max(rates):.1f}; first pass with cold per-group caches {cold:.1f}; {n} rows "
          f"of {csv.name}, one process); by CPU time of the process {np.median(cpu_rates):.1f}/s")
    raw_rates, raw_cpu = _rates(lambda s: ag.to_asu(s, canonical=False), structures, passes)
    print(f"to_asu(canonical=False) (spglib's description, no normal form): median {np.median(raw_rates):.1f} "
          f"structures/s; by CPU time {np.median(raw_cpu):.1f}/s")
    bench_candidates(structures)

    import spglib

    cells = [(s.lattice.matrix, s.frac_coords, [x.Z for x in s.species]) for s in structures]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rates, cpu_rates = _rates(lambda c: spglib.get_symmetry_dataset(c, symprec=0.1, angle_tolerance=5.0),
                                  cells, passes)
    print(f"spglib get_symmetry_dataset alone (inside to_asu): median {np.median(rates):.1f} structures/s; by CPU "
          f"time {np.median(cpu_rates):.1f}/s")
    per_row, groups = [], []
    for cell in cells:  # where spglib's time goes: one timed call per row
        t = time.perf_counter()
        ds = spglib.get_symmetry_dataset(cell, symprec=0.1, angle_tolerance=5.0)
        per_row.append(time.perf_counter() - t)
        groups.append(ds.number)
    per_row = np.array(per_row)
    fcc = np.array([ag.space_group(int(g)).centering == "F" and ag.space_group(int(g)).crystal_system == "cubic"
                    for g in groups])
    share = per_row[fcc].sum() / per_row.sum()
    print(f"  of which face-centred cubic rows: {fcc.sum()} of {n} rows take {share:.0%} of spglib's time "
          f"({1e3 * per_row[fcc].mean():.1f} ms each vs {1e3 * per_row[~fcc].mean():.2f} ms for the rest)"
          if fcc.any() else "  (no face-centred cubic rows)")

    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    t = time.perf_counter()
    for s in structures:
        SpacegroupAnalyzer(s, symprec=0.1, angle_tolerance=5.0).get_symmetrized_structure()
    print(f"pymatgen SpacegroupAnalyzer.get_symmetrized_structure: {n / (time.perf_counter() - t):.1f} structures/s")

    from pyxtal import pyxtal

    t = time.perf_counter()
    ok = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in structures:
            try:
                pyxtal().from_seed(s, tol=0.1)
                ok += 1
            except Exception:  # pyxtal fails on some rows; time them all the same
                pass
    print(f"pyxtal from_seed: {n / (time.perf_counter() - t):.1f} structures/s ({ok}/{n} succeeded)")


def bench_candidates(structures: list) -> None:
    """How many descriptions the normal form compares per crystal (normalizer images + anchored ones)."""
    import asu_geometry as ag

    reports = [ag.normal_form_report(ag.to_asu(s, canonical=False)) for s in structures]
    total = np.array([r.candidates for r in reports])
    images = np.array([r.normalizer_candidates for r in reports])
    polar = np.array([ag.space_group(r.crystal.space_group).is_polar for r in reports])
    bins = [(1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 10**9)]
    hist = ", ".join(f"{lo if lo == hi else f'{lo}-{hi}' if hi < 10**9 else f'>{lo - 1}'}: "
                     f"{int(((total >= lo) & (total <= hi)).sum())}" for lo, hi in bins)
    print(f"candidate descriptions compared per crystal: median {np.median(total):.0f}, mean {total.mean():.1f}, "
          f"max {total.max()} (normalizer images: median {np.median(images):.0f}, max {images.max()}; anchored "
          f"descriptions of the {polar.sum()} polar crystals: median {np.median(total[polar] - images[polar]):.0f}, "
          f"max {(total[polar] - images[polar]).max() if polar.any() else 0})")
    print(f"  histogram: {hist}")


def bench_points(n_points: int) -> None:
    import asu_geometry as ag

    rng = np.random.default_rng(0)
    x = rng.random((n_points, 3))
    for sg in (1, 14, 62, 139, 166, 194, 225, 227):
        ag.to_asu_points(sg, x[:10])
        times = []
        for _ in range(3):
            t = time.perf_counter()
            ag.to_asu_points(sg, x)
            times.append(time.perf_counter() - t)
        print(f"to_asu_points sg {sg:3d} (|G/T| = {ag.space_group(sg).order:3d}): {n_points / np.median(times):,.0f} "
              "points/s (median of 3 calls)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, default=DEFAULT_SHARED if DEFAULT_SHARED.exists() else FIXTURE)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--passes", type=int, default=5, help="timed to_asu passes after the first (median reported)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs visible")
    bench_loading()
    bench_to_asu(args.csv, args.rows, args.passes)
    bench_points(args.points)


if __name__ == "__main__":
    main()
