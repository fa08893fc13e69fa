"""CHGNet's crystal graph: CHGNet's converter against ``crystal_eval.chgnet_graph``, alone and in relaxations.

    crystal-ar sample -n 40 --seed 0 --cif none -o /tmp/s40
    python benchmarks/chgnet_graph_bench.py /tmp/s40/samples.extxyz [--n 24] [--steps 100] [--repeats 2]

One process, one torch thread (run it on an otherwise idle core). For the first ``--n`` crystals of the file,
as primitive cells (what ``crystal-eval --stability`` relaxes by default), it prints:

1. the CPU time to build every crystal's graph once, with each builder (mean of 20 rounds), and whether the
   graphs are equal tensor for tensor;
2. the CPU time of a batched FIRE relaxation of all of them (``--steps`` steps at most, fmax 0.05 eV/Å, no time
   limit), alternating the two builders ``--repeats`` times, with the FIRE steps taken, the shares of the CPU
   time spent building graphs, in CHGNet's forward and backward passes and in the rest (the FIRE updates), and
   whether the relaxed energies are identical.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="an extxyz file of crystals (e.g. crystal-ar sample's samples.extxyz)")
    ap.add_argument("--n", type=int, default=24, help="crystals to use, the first of the file (24)")
    ap.add_argument("--steps", type=int, default=100, help="FIRE step cap of the relaxations (100)")
    ap.add_argument("--repeats", type=int, default=2, help="relaxations per builder, alternating (2)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")

    import crystal_eval.chgnet_graph as cg
    import torch
    from ase.io import read
    from crystal_eval.potential import CHGNetBatchCalculator, CHGNetPotential
    from crystal_eval.stability import primitive_cell
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [primitive_cell(AseAtomsAdaptor.get_structure(a)) for a in read(args.samples, index=f":{args.n}")]
    pot = CHGNetPotential()  # one torch thread
    converter = pot.model.graph_converter
    print(f"{len(structures)} crystals, {sum(map(len, structures))} atoms as primitive cells; "
          f"chgnet graph builder supported: {cg.supports(converter)}")  # fmt: skip

    fields = ("atomic_number", "atom_frac_coord", "atom_graph", "neighbor_image", "directed2undirected",
              "undirected2directed", "bond_graph", "lattice")  # fmt: skip
    same = all(torch.equal(getattr(a, f), getattr(b, f)) for s in structures
               for a, b in [(converter(s), cg.crystal_graph(converter, s))] for f in fields)  # fmt: skip
    for name, build in [("CHGNet converter", converter), ("chgnet_graph", lambda s: cg.crystal_graph(converter, s))]:
        t = time.process_time()
        for _ in range(20):
            for s in structures:
                build(s)
        ms = (time.process_time() - t) / 20 / len(structures) * 1e3
        print(f"graph building, {name:16s}: {ms:6.2f} ms of CPU per crystal")
    print(f"graphs equal tensor for tensor: {same}")

    supported = cg.supports
    spent = {"prepare": 0.0, "evaluate": 0.0}  # CPU seconds in the batch calculator's two calls

    def timed(method_name: str):
        method = getattr(CHGNetBatchCalculator, method_name)

        def wrapper(self, *a, **kw):
            t0 = time.process_time()
            try:
                return method(self, *a, **kw)
            finally:
                spent[method_name] += time.process_time() - t0

        return wrapper

    CHGNetBatchCalculator.prepare, CHGNetBatchCalculator.evaluate = timed("prepare"), timed("evaluate")
    energies = {}
    for rep in range(args.repeats):
        for name, sup in [("CHGNet converter", lambda c: False), ("chgnet_graph", supported)]:
            cg.supports = sup
            spent.update(prepare=0.0, evaluate=0.0)
            t = time.process_time()
            out = pot.relax_batch(structures, 0.05, args.steps)
            cpu = time.process_time() - t
            energies.setdefault(name, [getattr(o, "energy_per_atom", None) for o in out])
            steps = sum(getattr(o, "steps", 0) for o in out)
            graphs, passes = (100 * spent[k] / cpu for k in ("prepare", "evaluate"))
            print(f"relaxation {rep + 1}, {name:16s}: {cpu:7.2f} s of CPU, {steps} FIRE steps; graphs {graphs:4.1f} %, "
                  f"CHGNet passes {passes:4.1f} %, the rest {100 - graphs - passes:4.1f} %", flush=True)  # fmt: skip
    cg.supports = supported
    print(f"relaxed energies identical: {energies['CHGNet converter'] == energies['chgnet_graph']}")


if __name__ == "__main__":
    main()
