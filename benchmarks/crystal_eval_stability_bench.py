"""Benchmark of ``crystal-eval --stability`` (CHGNet 0.3.0 on the CPU, one torch thread per process).

    python benchmarks/crystal_eval_stability_bench.py [--n-relax 200] [--n-total 1000] [--jobs 0]
        [--optimizer batched|ase] [--cache-dir DIR] [--data-dir ../shared/data] [--measure-total]

Prints three figures:

1. the wall time to build the reference hull (single points on every reference crystal; default
   references: MP-20 available subset train.first1000 + val.partial, 8,344 rows, i.e. the hull of the
   data row), cold when the cache folder holds no hull yet (the script says which);
2. the relaxation rate (crystals/min) on ``--n-relax`` crystals: the first MP-20 test.partial crystals,
   each slightly perturbed (Gaussian displacements of 0.05 Å per Cartesian coordinate and a random
   symmetric strain of up to 2%, seeded) so that the relaxation has work to do, as a generated crystal would,
   with ``--optimizer`` (``batched``: many crystals per CHGNet call, the default; ``ase``: ASE's FIRE one
   crystal at a time); relaxations already in the cache folder are not redone, so time each optimizer
   with a cache folder that holds no relaxations yet (a copy of one with a warm hull);
3. the total for a ``--n-total``-crystal stability evaluation with a warm hull: measured with
   ``--measure-total`` (relaxes that many perturbed crystals), otherwise extrapolated as
   ``hull load (warm) + n_total / rate`` and labelled as extrapolated.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def perturbed_test_crystals(test_csv: Path, n: int, offset: int = 0, seed: int = 0):
    """The first ``n`` crystals of ``test_csv`` (after ``offset``), perturbed as the module docstring says."""
    from crystal_eval.io import load_reference_cifs, parse_cif
    from pymatgen.core import Structure

    _, cifs, _ = load_reference_cifs(test_csv)
    rng = np.random.default_rng(seed)
    out = []
    for cif in cifs[offset : offset + n]:
        s = parse_cif(cif)
        strain = rng.uniform(-0.02, 0.02, size=(3, 3))
        s.apply_strain(((strain + strain.T) / 2).tolist())
        cart = s.cart_coords + rng.normal(scale=0.05, size=(len(s), 3))
        out.append(Structure(s.lattice, s.species, cart, coords_are_cartesian=True))
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its waited-for children (the pool workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache-dir", help="feature cache (default: a new temporary folder, i.e. a cold hull)")
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    ap.add_argument("--optimizer", choices=["batched", "ase"], default="batched", help="relaxation optimizer")
    ap.add_argument("--n-relax", type=int, default=200, help="crystals for the relaxation rate (200)")
    ap.add_argument("--n-total", type=int, default=1000, help="size of the full evaluation (1000)")
    ap.add_argument("--measure-total", action="store_true", help="measure the n-total run instead of extrapolating")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from crystal_eval.cache import FeatureCache
    from crystal_eval.hull import energies_cache_key
    from crystal_eval.stability import StabilityConfig, evaluate_stability, format_stability, reference_hull

    part = Path(args.data_dir) / "mp_20_partial"
    refs = [part / "train.first1000.csv.xz", part / "val.partial.csv.xz"]
    test = part / "test.partial.csv.xz"
    if not all(p.is_file() for p in [*refs, test]):
        print(f"benchmark needs {part} (../shared/data beside the checkout)", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = args.jobs or cores
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cores} cores available, jobs={jobs}, load average at start {load:.1f} (the machine may be shared)")
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(args.cache_dir or tmp)
        cfg = StabilityConfig(n_jobs=jobs, progress=True, optimizer=args.optimizer)
        state = "warm" if cache.get(energies_cache_key([str(p) for p in refs], cfg.potential_id)) else "cold"
        t0 = time.perf_counter()
        hull = reference_hull(refs, cfg, cache)
        t_hull = time.perf_counter() - t0
        n_ref = len(hull.energies.names)
        print(f"1. reference hull ({state}, {n_ref} reference crystals, {cfg.potential_id}): {t_hull:.1f} s wall")
        t0 = time.perf_counter()
        hull = reference_hull(refs, cfg, cache)
        t_hull_warm = time.perf_counter() - t0
        print(f"   reference hull again (warm, from the cache): {t_hull_warm:.2f} s wall")

        crystals = perturbed_test_crystals(test, args.n_relax)
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        res = evaluate_stability(crystals, len(crystals), refs, cfg, cache)
        t_relax = time.perf_counter() - t0
        cpu_per = (cpu_seconds() - cpu0) / len(crystals)
        rate = 60.0 * len(crystals) / t_relax
        meta = res.report["stability_meta"]
        steps = res.details.relax_steps[res.details.stability_error == ""]
        print(
            f"2. relaxation rate: {len(crystals)} perturbed test.partial crystals in {t_relax:.1f} s wall = "
            f"{rate:.1f} crystals/min ({args.optimizer} optimizer, {jobs} processes; "
            f"median {np.median(steps):.0f} FIRE steps, "
            f"{meta['n_failed']} failed, {meta['n_time_limit']} time limit, {meta['n_not_converged']} at the step cap)"
        )
        print(
            f"   CPU time (this process and its finished workers): {cpu_per:.1f} s per crystal, i.e. "
            f"{60.0 * jobs / cpu_per:.1f} crystals/min on {jobs} idle cores (CPU-bound estimate)"
        )
        print("   " + format_stability(res.report).replace("\n", "\n   "))
        print("   (these are perturbed reference crystals, not generated ones; 'space group kept' compares with the "
              "perturbed cells, whose symmetry the perturbation broke, so it is no figure of merit here)")
        if args.measure_total:
            more = perturbed_test_crystals(test, args.n_total, seed=1)
            t0 = time.perf_counter()
            evaluate_stability(more, len(more), refs, cfg, cache)
            total = t_hull_warm + time.perf_counter() - t0
            print(f"3. total for {args.n_total} crystals (measured, warm hull): {total:.1f} s = {total / 60:.1f} min")
        else:
            total = t_hull_warm + 60.0 * args.n_total / rate
            print(
                f"3. total for {args.n_total} crystals (EXTRAPOLATED from part 2: warm hull {t_hull_warm:.1f} s + "
                f"{args.n_total} / {rate:.1f} per min): {total:.0f} s = {total / 60:.1f} min"
            )
        print(
            f"SUMMARY hull_{state}_s={t_hull:.1f} relax_rate_per_min={rate:.1f} "
            f"total_{args.n_total}_min={total / 60:.1f} optimizer={args.optimizer} jobs={jobs} load_start={load:.1f} "
            f"load_end={os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
