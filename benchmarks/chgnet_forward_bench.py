"""CHGNet's forward and backward pass, CHGNet's own against ``crystal_eval.chgnet_forward``: alone and in relaxations.

    crystal-ar sample -n 40 --seed 0 --cif none -o /tmp/s40
    python benchmarks/chgnet_forward_bench.py /tmp/s40/samples.extxyz [--n 24] [--steps 100] [--repeats 2]

One process, one torch thread (run it on an otherwise idle core). For the first ``--n`` crystals of the file,
as primitive cells (what ``crystal-eval --stability`` relaxes by default), it prints:

1. the size of their batched CHGNet graph (atoms, directed bonds within 6 A, angles);
2. the CPU time of one batched evaluation of energies, forces and stresses (``CHGNetBatchCalculator.evaluate``,
   crystal graphs built beforehand) on each path, alternating, the median of ``--rounds`` rounds each, and the
   largest differences between the two. The paths: ``CHGNet._compute`` on ``BatchedGraph.from_graphs``
   (``split_layers=False``), and ``chgnet_forward.SplitCHGNet`` on ``chgnet_forward.batch_graphs`` (the default);
3. the CPU time of a batched FIRE relaxation of all of them (``--steps`` steps at most, fmax 0.05 eV/A, no time
   limit) with each forward, alternating ``--repeats`` times, with the FIRE steps taken and the crystals
   converged, and how far the two forwards' relaxed energies lie apart, for the crystals converged with both and
   for the others: far from a minimum, FIRE amplifies float32 rounding, so two relaxations of the same crystal
   that differ only in the order of the sums can part ways and stop at different points or minima.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="an extxyz file of crystals (e.g. crystal-ar sample's samples.extxyz)")
    ap.add_argument("--n", type=int, default=24, help="crystals to use, the first of the file (24)")
    ap.add_argument("--rounds", type=int, default=10, help="timed evaluations per forward, alternating (10)")
    ap.add_argument("--steps", type=int, default=100, help="FIRE step cap of the relaxations (100)")
    ap.add_argument("--repeats", type=int, default=2, help="relaxations per forward, alternating (2)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")

    import numpy as np
    from ase.io import read
    from crystal_eval.potential import CHGNetBatchCalculator, CHGNetPotential
    from crystal_eval.stability import primitive_cell
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [primitive_cell(AseAtomsAdaptor.get_structure(a)) for a in read(args.samples, index=f":{args.n}")]
    potentials = {"CHGNet._compute": CHGNetPotential(split_layers=False), "chgnet_forward": CHGNetPotential()}
    model = potentials["chgnet_forward"].model
    calculators = {name: CHGNetBatchCalculator(model, split_layers=p.split_layers) for name, p in potentials.items()}
    assert calculators["chgnet_forward"].split is not None, "the shipped CHGNet should be supported"
    graphs = [calculators["chgnet_forward"].prepare(s.lattice.matrix, s.cart_coords, np.array(s.atomic_numbers))
              for s in structures]  # fmt: skip
    print(f"{len(structures)} crystals as primitive cells: {sum(map(len, structures))} atoms, "
          f"{sum(len(g.atom_graph) for g in graphs)} directed bonds, {sum(len(g.bond_graph) for g in graphs)} angles")

    results, times = {}, {name: [] for name in calculators}
    for name, calc in calculators.items():
        results[name] = calc.evaluate(graphs)  # also warms up
    for _ in range(args.rounds):
        for name, calc in calculators.items():
            t = time.process_time()
            calc.evaluate(graphs)
            times[name].append(time.process_time() - t)
    ref, new = results["CHGNet._compute"], results["chgnet_forward"]
    de = max(abs(a.energy_per_atom - b.energy_per_atom) for a, b in zip(ref, new, strict=True))
    df = max(float(np.abs(a.forces - b.forces).max()) for a, b in zip(ref, new, strict=True))
    fmax = max(float(np.abs(a.forces).max()) for a in ref)
    ds = max(float(np.abs(a.stress - b.stress).max()) for a, b in zip(ref, new, strict=True))
    base = statistics.median(times["CHGNet._compute"])
    for name, ts in times.items():
        ms = 1e3 * statistics.median(ts)
        print(f"one evaluation (forward + backward), {name:15s}: median {ms:7.1f} ms of CPU "
              f"({1e3 * min(ts):.1f}-{1e3 * max(ts):.1f}), {base / statistics.median(ts):.2f}x")
    print(f"largest differences: energy {de:.2e} eV/atom, force {df:.2e} eV/A (largest force {fmax:.1f}), "
          f"stress {ds:.2e} eV/A^3")

    outcomes: dict[str, list] = {}
    for rep in range(args.repeats):
        for name, pot in potentials.items():
            t = time.process_time()
            out = pot.relax_batch(structures, 0.05, args.steps)
            cpu = time.process_time() - t
            outcomes.setdefault(name, out)
            steps = sum(getattr(o, "steps", 0) for o in out)
            converged = sum(bool(getattr(o, "converged", False)) for o in out)
            print(f"relaxation {rep + 1}, {name:15s}: {cpu:7.2f} s of CPU, {steps} FIRE steps, "
                  f"{converged}/{len(out)} converged", flush=True)  # fmt: skip
    if not outcomes:  # --repeats 0
        return
    # Far from a minimum, a relaxation amplifies float32 rounding: compare crystals by outcome.
    groups: dict[str, list[float]] = {"converged with both": [], "stopped at the step cap with either": []}
    for a, b in zip(outcomes["CHGNet._compute"], outcomes["chgnet_forward"], strict=True):
        if not (hasattr(a, "energy_per_atom") and hasattr(b, "energy_per_atom")):
            continue
        key = "converged with both" if a.converged and b.converged else "stopped at the step cap with either"
        groups[key].append(abs(a.energy_per_atom - b.energy_per_atom))
    for key, gaps in groups.items():
        if gaps:
            print(f"relaxed energies, chgnet_forward against CHGNet._compute, {key} ({len(gaps)} crystals): "
                  f"median difference {statistics.median(gaps):.1e} eV/atom, largest {max(gaps):.1e}, "
                  f"{sum(g > 1e-3 for g in gaps)} above 1e-3")

if __name__ == "__main__":
    main()
