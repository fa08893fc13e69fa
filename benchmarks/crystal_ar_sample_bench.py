"""Benchmark of ``crystal-ar sample``: crystals/s end to end at batch 500, where the time goes, and the ratio to
pyxtal's ``from_random`` on the same space groups and compositions.

    python benchmarks/crystal_ar_sample_bench.py [--checkpoint DIR] [-n 1000] [--batch-size 500] [--workers N]
        [--repeats 3] [--pyxtal 200] [--round-trip] [--device cpu|cuda] [--cubic 1000] [--malloc-ab]

Figures (each printed with its definition):

* end to end: ``SampleRun`` (what ``crystal-ar sample`` runs: on the CPU, ``--workers`` processes (default: the
  CPU count) each draw whole blocks, derive the scorer's normal forms and score them, and this process writes
  samples.jsonl + samples.extxyz + cif/) for ``-n`` crystals, after a warm-up run of one small batch (imports and
  torch start-up; the workers of the measured run start with cold asu-geometry caches, as in a user's run);
  wall clock, and the CPU time of this process and of its worker processes, for each of ``--repeats`` identical
  runs, and their median;
* the stages, each alone on the same drawn crystals, one process, one torch thread (wall and CPU milliseconds per
  crystal): ``sampling.sample`` (vectorised ancestral sampling, log-likelihood accumulated while drawing), the
  scorer's normal form (``asu_geometry.to_asu_crystal`` at symprec 0.1: ``to_asu_cell`` of each conventional cell,
  without spglib's search for the cubic crystals whose outcome it proves; spglib's search alone on the others:
  mean, median and the groups taking most of it, what the skipped ones would have cost, and spglib on five
  textbook cells of rising group order), the model's score of the normal forms that differ from the drawn
  sequence, and the three output files (rendered in the workers, written by this process);
* whole blocks in one worker (CPU): the run's blocks in one forked process, set up as the run's workers are,
  first with the asu-geometry caches and the fresh heap a new worker has, then warm (the share of the caches and of
  the memory's first use, with the system CPU time and the minor page faults of each pass, and the gap between the
  stages and the workers' CPU);
* ``--malloc-ab``: each end-to-end run is followed by one whose workers keep glibc's default ``malloc`` settings
  (``crystal_ar_model.allocator.keep_freed_memory`` not called): both medians and the rate ratio run by run. This
  process then keeps glibc's defaults (forked workers inherit them), so the stages below are timed with them;
  without the flag it keeps freed memory for reuse, as the ``crystal-ar`` command does;
* ``--round-trip``: ``crystal-ar score``'s path (CIF file -> to_asu -> model) on every CIF of the end-to-end run,
  against the records' ``logp_total`` (largest and mean absolute difference);
* the ceiling those stages allow: ``--workers`` cores divided by the stages' CPU per crystal, with and without
  spglib's share (redraws, start-up and cold caches not counted, so the end-to-end rate stays below it);
* ``--cubic N``: ``asu_geometry.to_asu_crystal`` against ``to_asu_cell`` on N crystals drawn in the cubic groups:
  how many skip spglib's search (outcome proved), how many spglib symmetrises into another group, agreement, and
  the CPU time of each;
* the unreadable draws of the stage batch: the largest of their shortest interatomic distances;
* pyxtal ``from_random`` (3-D, the same space group and conventional-cell element counts as each of the first
  ``--pyxtal`` samples, one try each, ``max_count`` 10): crystals per second over the successful calls, the
  failure count, and our end-to-end rate divided by it.

The checkpoint: ``--checkpoint``, else the shipped model, else an untrained ``default`` model (printed). Other
jobs on a shared machine slow every figure down; the CPU-time figures are what one free core delivers.

``--device cuda`` puts the model on the GPU, as ``crystal-ar sample --device cuda`` does: the end-to-end runs use
the CLI's GPU mode (this process draws and scores on the GPU and writes the files, ``--workers`` processes derive
the normal forms; default: the CPU count minus one), the stages are timed on the GPU (synchronised), and the CPU
ceiling is not printed (it describes the CPU mode).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _model(checkpoint: str | None) -> tuple[object, dict, str]:
    from crystal_ar_model.checkpoint import default_checkpoint
    from crystal_ar_model.errors import NoShippedModelError
    from crystal_ar_model.generate import checkpoint_sha256
    from crystal_ar_model.score import load_model

    what = ""
    if checkpoint is None:
        try:
            checkpoint, what = str(default_checkpoint()), "the shipped model"
        except NoShippedModelError:
            checkpoint = None
    if checkpoint is not None:
        model, meta = load_model(checkpoint)
        what = what or f"checkpoint {checkpoint} (epoch {meta.get('epoch')})"
        return model, {"name": Path(checkpoint).name, "sha256": checkpoint_sha256(Path(checkpoint)),
                       "epoch": meta.get("epoch")}, what
    from crystal_ar_model.config import Config
    from crystal_ar_model.factors import LatticeBins
    from crystal_ar_model.model import CrystalARModel, vocabulary_for

    cfg = Config.load("default")
    torch.manual_seed(0)
    bins = LatticeBins((2.0,) * 3 + (30.0, 30.0, 30.0), (30.0,) * 3 + (150.0, 150.0, 150.0))
    model = CrystalARModel(cfg.model, bins, vocabulary_for(cfg.model)).eval()
    return model, {"name": "untrained-default", "sha256": "", "epoch": None}, "an untrained default model"


def _sync(device: str) -> None:
    """Wait for the GPU's queued work, so that wall-clock timings include it."""
    if device == "cuda":
        torch.cuda.synchronize()


def end_to_end(model: object, info: dict, n: int, batch: int, workers: int, round_trip: bool, repeats: int = 1,
               malloc_ab: bool = False) -> float:
    """``repeats`` identical runs (same seed, fresh worker processes each time); prints each and returns the median
    rate (a shared virtual machine's speed varies by tens of percent from one run to the next). With ``malloc_ab``
    each run is followed by one whose workers keep glibc's default ``malloc`` settings
    (:func:`crystal_ar_model.allocator.keep_freed_memory` not called), and the pairwise ratio is printed."""
    from crystal_ar_model import score
    from crystal_ar_model.constraints import SamplingConstraints
    from crystal_ar_model.generate import SampleRun, SampleSettings

    rates, defaults = [], []
    with tempfile.TemporaryDirectory() as tmp:
        SampleRun(model, info, SamplingConstraints(), SampleSettings(min(batch, 50), batch, 99, workers=workers)).run(
            Path(tmp) / "warm", progress=False)
        for k in range(repeats):
            for keep in (True, False) if malloc_ab else (True,):
                run = SampleRun(model, info, SamplingConstraints(), SampleSettings(n, batch, 0, workers=workers))
                kept = score.keep_freed_memory
                if not keep:
                    score.keep_freed_memory = lambda: False  # the forked workers keep glibc's defaults
                try:
                    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                    s = run.run(Path(tmp) / "out", progress=False)
                    dt, cpu, kids = time.perf_counter() - t0, time.process_time() - c0, _children_cpu() - k0
                finally:
                    score.keep_freed_memory = kept
                (rates if keep else defaults).append(s.crystals / dt)
                label = "" if keep else ", glibc's default malloc settings in the workers"
                print(f"end to end, run {k + 1} of {repeats}{label} (SampleRun, -n {n}, --batch-size {batch}, "
                      f"--workers {workers} ({run.parallel_mode()} mode), 1 torch thread each): "
                      f"{s.crystals / dt:.1f} crystals/s "
                      f"({dt:.1f} s wall; CPU {1e3 * cpu / s.crystals:.1f} ms/crystal in the main process + "
                      f"{1e3 * kids / s.crystals:.1f} ms/crystal in the workers)")
        print("  " + run.text.replace("\n", "\n  "))
        median = float(np.median(rates))
        print(f"end to end: median {median:.1f} crystals/s over {repeats} run(s) (min {min(rates):.1f}, max "
              f"{max(rates):.1f}) = {500 / median:.2f} s per 500 crystals")
        if malloc_ab:
            ratios = [a / b for a, b in zip(rates, defaults, strict=True)]
            print(f"  with glibc's default malloc settings in the workers: median {np.median(defaults):.1f} crystals/s "
                  f"(min {min(defaults):.1f}, max {max(defaults):.1f}); rate ratio, run by run: median "
                  f"{np.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
        if model.polar.device.type == "cpu" and workers > 0:
            _block_costs(run, n, batch)
        if round_trip:
            _round_trip(model, Path(tmp) / "out")
    return median


def _block_cpu(run: object, blocks: list) -> list[tuple[float, float, int]]:
    """CPU seconds, system CPU seconds and minor page faults of ``run.process_block`` on ``blocks`` (in a forked
    worker, set up as the run's workers are), first pass then second pass."""
    from crystal_ar_model.score import init_worker

    init_worker()
    out = []
    for _ in range(2):
        r0, c0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
        for b in blocks:
            run.process_block(b)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out.append((time.process_time() - c0, r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt))
    return out


def _block_costs(run: object, n: int, batch: int) -> None:
    """What a worker spends per crystal on whole blocks (``SampleRun.process_block``: draw, normal forms, redraws of
    unreadable draws, scores, records), in one forked process that starts as the end-to-end workers did (this
    process's state after the runs): the run's blocks once (cold asu-geometry caches and a fresh heap, as a worker
    meets them) and again (warm). Their difference is the cost of the caches and of the first use of the memory
    (page faults, counted in the system CPU time); the warm figure against the stages below is the redraws (each
    redraw round is a small, overhead-bound batch) and the bookkeeping."""
    import multiprocessing as mp

    from crystal_ar_model.generate import stream_blocks

    blocks = stream_blocks(n, batch)
    with mp.get_context("fork").Pool(1) as pool:
        (cold, cold_sys, cold_flt), (warm, warm_sys, warm_flt) = pool.apply(_block_cpu, (run, blocks))
    print(f"  whole blocks in one worker ({len(blocks)} block(s) of the run, CPU per crystal): "
          f"{1e3 * cold / n:.2f} ms with the caches a fresh worker has, {1e3 * warm / n:.2f} ms warm "
          f"(the caches and first use: {1e3 * (cold - warm) / n:.2f} ms); of which system time "
          f"{1e3 * cold_sys / n:.2f} and {1e3 * warm_sys / n:.2f} ms, minor page faults {cold_flt / n:.0f} and "
          f"{warm_flt / n:.0f} per crystal")


def _round_trip(model: object, out: Path) -> None:
    """``crystal-ar score`` of every written CIF (to_asu at symprec 0.1 of the parsed file) against the records."""
    from crystal_ar_model.data import ProcessedDataset
    from crystal_ar_model.outputs import read_samples
    from crystal_ar_model.score import read_input, score_dataset, to_crystals

    ids, items = read_input(out / "cif")
    crystals, _ = to_crystals(ids, items)
    df = score_dataset(model, ProcessedDataset.from_crystals(crystals)).set_index("id")
    recs = read_samples(out / "samples.jsonl")
    diff = np.array([abs(df.loc[r.id, "logp_total"] - r.logp["logp_total"]) for r in recs])
    print(f"  round trip: crystal-ar score of the {len(df)} CIFs vs the records' logp_total: largest difference "
          f"{diff.max():.2e} nats, mean {diff.mean():.2e}")


def stages(model: object, batch: int, workers: int, device: str = "cpu") -> list:
    from asu_geometry.normalform import same_description
    from crystal_ar_model.generate import SAME_DESCRIPTION_TOL, _derive, score_normal_forms
    from crystal_ar_model.outputs import SampleRecord, SampleWriter
    from crystal_ar_model.sampling import sample

    cpu_ms: list[float] = []  # CPU per crystal of the stages a worker runs for every crystal

    def timed(label: str, fn, count: int):  # noqa: ANN001, ANN202
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"  {label}: {1e3 * dt / count:.2f} ms/crystal wall, {1e3 * cpu / count:.2f} ms/crystal CPU")
        cpu_ms.append(1e3 * cpu / count)
        return out

    where = "one process, one thread" if device == "cpu" else "one process, the model on the GPU"
    print(f"stages ({where}, batch {batch}):")
    out = timed("sampling.sample (ancestral, logp accumulated)", lambda: sample(model, batch,
                                                                              torch.Generator().manual_seed(5)), batch)
    sites = float((out.ptr[1:] - out.ptr[:-1]).double().mean())
    crystals = out.crystals()
    derived = timed("scorer's normal form (to_asu_crystal: to_asu_cell of the conventional cell)",
                    lambda: _derive(crystals), batch)
    spglib_ms = _spglib_alone(crystals)
    _spglib_reference_cells()
    ok = [(nf, c) for (nf, _), c in zip(derived, crystals, strict=True) if nf is not None]
    differ = [nf for nf, c in ok if not same_description(nf, c, SAME_DESCRIPTION_TOL, SAME_DESCRIPTION_TOL)]
    timed(f"score of the {len(differ)} normal forms that differ from the drawn sequence (per crystal of the batch)",
          lambda: score_normal_forms(model, differ), batch)
    with tempfile.TemporaryDirectory() as tmp:
        recs = [SampleRecord(f"s{i:06d}", i, nf, {"logp_total": 0.0}, drawn=c) for i, (nf, c) in enumerate(ok)]

        def write() -> None:
            w = SampleWriter(tmp, {"seed": 0})
            w.write(recs)
            w.close()

        timed("writing samples.jsonl + samples.extxyz + cif/", write, len(recs))
    if device == "cpu":
        _ceiling(cpu_ms, spglib_ms, workers)
    bad = [c for (nf, _), c in zip(derived, crystals, strict=True) if nf is None]
    closest = max((_closest_pair(c) for c in bad), default=float("nan"))
    print(f"  ({sites:.2f} sites per crystal; {len(bad)} of {batch} unreadable by the scorer, the largest of their "
          f"shortest interatomic distances {closest:.3f} A)")
    return [c for (nf, _), c in zip(derived, crystals, strict=True) if nf is not None]


def _ceiling(cpu_ms: list[float], spglib_ms: float, workers: int) -> None:
    """The most crystals/s these stages allow on ``workers`` busy cores: their CPU per crystal (draw, normal form,
    scores, files; redraws, process start-up and cold caches come on top) shared by the cores, with and without
    spglib's share."""
    per = sum(cpu_ms)
    print(f"  ceiling from these stages on {workers} core(s), redraws and start-up not counted: "
          f"{1e3 * workers / per:.0f} crystals/s ({per:.2f} ms CPU per crystal); with spglib's "
          f"{spglib_ms:.2f} ms taken out: {1e3 * workers / (per - spglib_ms):.0f} crystals/s")


def _spglib_alone(crystals: list) -> float:
    """spglib's symmetry search alone (``get_symmetry_dataset`` at symprec 0.1 and 5 degrees, as ``to_asu_cell``)
    on the drawn conventional cells that ``to_asu_crystal`` hands to it (it skips the cubic ones whose outcome it
    proves, ``asu_geometry.needs_symmetry_search``): per crystal of the batch, the mean and median over the searched
    ones, the space groups that take the largest share, and what the skipped ones would have cost. Returns the
    mean per crystal of the batch (ms)."""
    import warnings
    from collections import Counter, defaultdict

    import spglib
    from asu_geometry import needs_symmetry_search
    from asu_geometry.writers import to_cells

    cells = to_cells(crystals)  # one batched expansion
    times, skipped, by_group, searched = [], [], defaultdict(float), Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c, (lat, frac, z) in zip(crystals, cells, strict=True):
            t0 = time.perf_counter()
            spglib.get_symmetry_dataset((lat, frac, z.tolist()), symprec=0.1, angle_tolerance=5.0)
            dt = time.perf_counter() - t0
            if needs_symmetry_search(c, 0.1, 5.0):
                times.append(dt)
                by_group[c.space_group] += dt
                searched[c.space_group] += 1
            else:
                skipped.append(dt)
    total = sum(times)
    top = sorted(by_group.items(), key=lambda kv: -kv[1])[:3]
    share = ", ".join(f"group {g} ({searched[g]} crystals) {100 * t / total:.0f} %" for g, t in top)
    print(f"  of which spglib's symmetry search alone: skipped for {len(skipped)} of {len(crystals)} crystals (cubic, "
          f"outcome proved; they would have cost {1e3 * sum(skipped) / len(crystals):.2f} ms per crystal of the "
          f"batch); on the other {len(times)}: {1e3 * total / len(crystals):.2f} ms per crystal of the batch, median "
          f"{1e3 * float(np.median(times)):.2f} ms, largest {1e3 * max(times):.1f} ms; share of its time: {share}")
    return 1e3 * total / len(crystals)


def _spglib_reference_cells(repeats: int = 20) -> None:
    """spglib alone on textbook cells of rising symmetry: its cost grows with the order of the group and with the
    number of orbits (the Wyckoff letter of each orbit is found by testing pairs of the group's operations for every
    Wyckoff position), not with the number of atoms."""
    import warnings

    import spglib

    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = {
        "one atom, orthorhombic P (Pmmm, |G| = 8)": (np.diag([3.0, 4.0, 5.0]), [[0, 0, 0]], [1]),
        "one atom, cubic P (Pm-3m, |G| = 48)": (np.eye(3) * 3.0, [[0, 0, 0]], [1]),
        "CsCl (Pm-3m, 2 atoms)": (np.eye(3) * 4.1, [[0, 0, 0], [0.5, 0.5, 0.5]], [55, 17]),
        "fcc Cu, conventional cell (Fm-3m, |G| = 192, 4 atoms)": (np.eye(3) * 3.6, fcc, [29] * 4),
        "NaCl, conventional cell (Fm-3m, 8 atoms)": (np.eye(3) * 5.6, np.vstack([fcc, (fcc + [0.5, 0, 0]) % 1]),
                                                     [11] * 4 + [17] * 4),
    }
    def mean_ms(call, cell) -> float:  # noqa: ANN001
        t0 = time.perf_counter()
        for _ in range(repeats):
            call(cell, symprec=0.1, angle_tolerance=5.0)
        return 1e3 * (time.perf_counter() - t0) / repeats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [f"{name} {mean_ms(spglib.get_symmetry_dataset, cell):.2f} ms" for name, cell in cells.items()]
        nacl = cells["NaCl, conventional cell (Fm-3m, 8 atoms)"]
        others = [f"{label} {mean_ms(call, nacl):.2f} ms"
                  for label, call in [("get_symmetry", spglib.get_symmetry), ("find_primitive", spglib.find_primitive)]]
    print(f"  spglib alone on textbook cells (mean of {repeats} calls): {'; '.join(parts)}; on the NaCl cell, "
          f"{', '.join(others)} (no cheaper entry point)")


def _closest_pair(crystal: object) -> float:
    """Shortest distance between two distinct atoms of the conventional cell (periodic, pymatgen)."""
    from asu_geometry.writers import to_structures

    s = to_structures([crystal])[0]
    if len(s) < 2:
        return float("inf")
    d = s.distance_matrix
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def pyxtal_rate(crystals: list, count: int) -> float:
    from pyxtal import pyxtal

    jobs = []
    import asu_geometry as ag

    for c in crystals[:count]:
        g = ag.space_group(c.space_group)
        comp: dict[str, int] = {}
        for site in c.sites:  # conventional-cell atom counts per element
            comp[site.element] = comp.get(site.element, 0) + g.wyckoff(site.wyckoff).multiplicity
        jobs.append((c.space_group, list(comp), list(comp.values())))
    ok, t0, c0 = 0, time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (sg, species, counts) in enumerate(jobs):
            x = pyxtal()
            try:
                x.from_random(3, sg, species, counts, max_count=10, random_state=i)
                ok += bool(x.valid)
            except Exception:  # pyxtal raises for compositions its Wyckoff search cannot place
                pass
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = ok / dt if dt > 0 else float("nan")
    print(f"pyxtal from_random on the same {len(jobs)} space groups and compositions: {ok} crystals in {dt:.1f} s "
          f"= {rate:.1f} crystals/s, {1e3 * cpu / max(ok, 1):.1f} ms CPU per crystal ({len(jobs) - ok} failed)")
    return rate


def cubic_check(model: object, n: int, batch: int) -> None:
    """``to_asu_crystal`` against ``to_asu_cell`` on ``n`` crystals the model draws in the 36 cubic groups (the
    ``--space-group 195-230`` constraint, seeds 100, 101, ...): how many it proves (spglib skipped), how many spglib
    puts in another group, whether the two agree (``same_description`` to 1e-9, or the same error class) and the
    time per crystal of each, one process."""
    from asu_geometry import needs_symmetry_search, to_asu_cell, to_asu_crystal
    from asu_geometry.normalform import same_description
    from asu_geometry.writers import to_cells
    from crystal_ar_model.constraints import SamplingConstraints, for_model
    from crystal_ar_model.sampling import sample

    masks = for_model(SamplingConstraints(space_groups=tuple(range(195, 231))), model, None).kwargs()
    crystals: list = []
    while len(crystals) < n:
        seed = 100 + len(crystals) // batch
        drawn = sample(model, min(batch, n - len(crystals)), torch.Generator().manual_seed(seed), **masks)
        crystals += drawn.crystals()

    def run(fn):  # noqa: ANN001, ANN202
        out, t0 = [], time.process_time()
        for c in crystals:
            try:
                out.append(fn(c))
            except Exception as exc:  # the scorer's errors (e.g. overlapping atoms) must agree too
                out.append(type(exc))
        return out, 1e3 * (time.process_time() - t0) / n

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, t_ref = run(lambda c: to_asu_cell(*to_cells([c])[0], symprec=0.1, angle_tolerance=5.0))
        new, t_new = run(lambda c: to_asu_crystal(c, symprec=0.1, angle_tolerance=5.0))
    proved = sum(not needs_symmetry_search(c, 0.1, 5.0) for c in crystals)
    other = sum(not isinstance(r, type) and r.space_group != c.space_group for r, c in zip(ref, crystals, strict=True))
    agree = sum((a is b) if isinstance(a, type) or isinstance(b, type) else same_description(a, b, 1e-9, 1e-9)
                for a, b in zip(ref, new, strict=True))
    errors = sum(isinstance(r, type) for r in ref)
    print(f"cubic groups ({n} crystals drawn with --space-group 195-230): spglib's search skipped (outcome proved) for "
          f"{proved}; spglib puts {other} in another group and cannot read {errors}; to_asu_crystal agrees with "
          f"to_asu_cell on {agree} of {n}; CPU {t_new:.2f} ms per crystal against {t_ref:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("-n", "--num", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--workers", type=int, default=None,
                    help="crystal-ar sample --workers (on the CPU each worker runs whole blocks) [CPU count; with "
                    "--device cuda, CPU count - 1]")
    ap.add_argument("--repeats", type=int, default=3, help="end-to-end runs; the median is reported [3]")
    ap.add_argument("--pyxtal", type=int, default=200, help="samples to repeat with pyxtal (0: skip)")
    ap.add_argument("--round-trip", action="store_true", help="also re-score every written CIF (crystal-ar score)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs [cpu]")
    ap.add_argument("--malloc-ab", action="store_true",
                    help="alternate each end-to-end run with one whose workers keep glibc's default malloc settings")
    ap.add_argument("--cubic", type=int, default=0,
                    help="also compare to_asu_crystal with to_asu_cell on this many crystals drawn in cubic groups")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available to torch")
    cores = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (cores if args.device == "cpu" else max(1, cores - 1))
    torch.set_num_threads(1)
    from crystal_ar_model.allocator import keep_freed_memory

    kept = not args.malloc_ab and keep_freed_memory()  # as crystal-ar does; --malloc-ab: the workers decide
    gpu = f"; GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} on {cores} CPUs{gpu}; glibc malloc in "
          f"this process: {'freed memory kept for reuse, as crystal-ar does' if kept else 'its default settings'}")
    model, info, what = _model(args.checkpoint)
    model = model.to(args.device)
    print(f"model: {what}, on {args.device}")
    rate = end_to_end(model, info, args.num, args.batch_size, workers, args.round_trip, args.repeats,
                      args.malloc_ab)
    crystals = stages(model, args.batch_size, workers, args.device)
    if args.pyxtal:
        px = pyxtal_rate(crystals, args.pyxtal)
        print(f"ratio: crystal-ar sample end to end / pyxtal from_random = {rate / px:.2f}")
    if args.cubic:
        cubic_check(model, args.cubic, args.batch_size)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
