"""Throughput of the coordinate factor (crystal-ar-model ``coords.py``) on a realistic MP-20 mix of pieces.

    python benchmarks/coords_bench.py [--data-dir ../shared/data/mp_20_partial] [--rows 1000] [--batch 256]
        [--threads 1] [--repeats 5]

The first ``--rows`` crystals of ``train.first1000.csv.xz`` (MP-20 available subset) are converted with
``asu_geometry.to_asu`` (not timed); their ASU atoms give the mix of pieces (points, segments, polygons by
vertex count, ASU interiors by group order) and the coordinates. With an untrained ``CoordinateFactor``
(context 64, hidden 64, 2 layers, 10/30/50 components) the script times, per batch of ``--batch`` crystals
(median over ``--repeats`` passes over the data): the forward pass plus ``log_prob`` (scoring), the same plus
backward (training), and ``sample``; then ``log_prob`` restricted to the atoms of each kind, to show where the
time goes (the Newton inverse of the mean value map for polygons with k > 3 vertices, the fold over up to 192
operations for the interior). One torch thread by default; the machine may be shared, so the figures are
indicative.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_atoms(path: Path, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """``(piece ids, frac coords, crystal index, crystals converted, failures)`` of the first ``rows`` rows."""
    import asu_geometry as ag
    import pandas as pd
    from crystal_ar_model.shapes import piece_ids, shape_table

    table = shape_table()
    df = pd.read_csv(path).head(rows)
    wyck, shape, anchored, frac, crystal = [], [], [], [], []
    failed = 0
    n_ok = 0
    for cif in df["cif"]:
        try:
            c = ag.to_asu(ag.structure_from_cif_string(cif))
        except ag.AsuGeometryError:
            failed += 1
            continue
        g = ag.space_group(c.space_group)
        for i, site in enumerate(c.sites):
            w = g.wyckoff(site.wyckoff).index
            a = bool(getattr(c, "is_anchored", lambda _i: False)(i))
            wyck.append(w)
            shape.append(site.shape_index)
            anchored.append(a and int(table.piece_count[w, 1]) > 0)
            frac.append(site.frac_coords)
            crystal.append(n_ok)
        n_ok += 1
    pieces = piece_ids(torch.tensor(wyck), torch.tensor(shape), torch.tensor(anchored))
    return pieces, torch.tensor(frac, dtype=torch.float64), torch.tensor(crystal), n_ok, failed


def median_time(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mp_20_partial"))
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = Path(args.data_dir) / "train.first1000.csv.xz"
    if not src.is_file():
        raise SystemExit(f"{src} not found: pass --data-dir")

    from crystal_ar_model.coords import CoordinateDistribution, CoordinateFactor
    from crystal_ar_model.piece_geometry import group_operations, piece_geometry

    t0 = time.perf_counter()
    pieces, frac, crystal, n_cryst, failed = load_atoms(src, args.rows)
    print(f"converted {n_cryst} crystals ({failed} failed) in {time.perf_counter() - t0:.1f} s; "
          f"{len(pieces)} ASU atoms; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    geo, ops = piece_geometry(), group_operations()
    dim = geo.dim[pieces]
    k = geo.polygon_size[pieces]
    order = ops.order[geo.space_group[pieces]]
    census = Counter(int(d) for d in dim)
    print("atoms by piece dimension: " + ", ".join(f"{d}-D {census[d]}" for d in range(4)))
    print("polygon atoms by vertex count: " + ", ".join(f"k={kk}: {int((k[dim == 2] == kk).sum())}"
                                                       for kk in sorted(set(k[dim == 2].tolist()))))
    orders = Counter(order[dim == 3].tolist())
    print("interior atoms by |G/T|: " + ", ".join(f"{o}: {orders[o]}" for o in sorted(orders)))
    mean_images = float(order[dim == 3].double().mean()) if bool((dim == 3).any()) else 0.0
    print(f"mean fold size of an interior atom: {mean_images:.1f} operations")

    torch.manual_seed(0)
    factor = CoordinateFactor(context_dim=64, hidden=64)
    ctx_all = torch.randn(len(pieces), 64)
    batches = []
    for start in range(0, n_cryst, args.batch):
        sel = torch.nonzero((crystal >= start) & (crystal < start + args.batch)).flatten()
        batches.append(sel)
    n_atoms = len(pieces)

    def score() -> None:
        with torch.no_grad():
            for sel in batches:
                factor(ctx_all[sel], pieces[sel]).log_prob(frac[sel])

    def train() -> None:
        for sel in batches:
            ctx = ctx_all[sel].requires_grad_(True)
            lp, prior = factor(ctx, pieces[sel]).log_prob_terms(frac[sel])
            (-(lp.sum() + prior.sum())).backward()

    gen = torch.Generator().manual_seed(0)

    def sample() -> None:
        with torch.no_grad():
            for sel in batches:
                factor(ctx_all[sel], pieces[sel]).sample(generator=gen)

    score()  # warm up (caches, references)
    for name, fn in (("forward + log_prob (no grad)", score), ("forward + log_prob + backward", train),
                     ("forward + sample", sample)):
        dt = median_time(fn, args.repeats)
        print(f"{name}: {n_cryst / dt:,.0f} crystals/s = {n_atoms / dt:,.0f} atoms/s (batch {args.batch} crystals)")

    # where the time goes: log_prob of each kind alone, parameters fixed (no networks)
    with torch.no_grad():
        full = factor(ctx_all, pieces)
    kinds = [("points", dim == 0), ("segments", dim == 1), ("triangles", (dim == 2) & (k == 3)),
             ("polygons k>3 (Newton inverse)", (dim == 2) & (k > 3)),
             ("interior, |G/T| <= 8", (dim == 3) & (order <= 8)),
             ("interior, |G/T| 12..48", (dim == 3) & (order > 8) & (order <= 48)),
             ("interior, |G/T| 96..192", (dim == 3) & (order > 48))]
    total = 0.0
    rows = []
    for name, mask in kinds:
        sel = torch.nonzero(mask).flatten()
        if sel.numel() == 0:
            continue
        sub = _subset(full, sel)
        dt = median_time(lambda sub=sub, sel=sel: sub.log_prob(frac[sel]), args.repeats)
        total += dt
        rows.append((name, sel.numel(), dt))
    for name, n, dt in rows:
        print(f"  log_prob {name:32s} {n:6d} atoms  {dt * 1e3:8.1f} ms  {n / dt:12,.0f} atoms/s  {dt / total:6.1%}")
    # Newton iterations of the mean value map's inverse on the polygon atoms with k > 3
    from polygon_flows import SimplexToPolygon

    sel = torch.nonzero((dim == 2) & (k > 3)).flatten()
    iters = []
    for kk in sorted(set(k[sel].tolist())):
        s = sel[k[sel] == kk]
        f = SimplexToPolygon(geo.polygon[pieces[s], :kk], geo.reference[pieces[s], :kk])
        f.inv(_chart_frame(frac[s], pieces[s]))
        iters.append(f.last_newton_iterations.double())
    if iters:
        it = torch.cat(iters)
        print(f"  Newton iterations on the k > 3 polygon atoms: mean {float(it.mean()):.2f}, max {int(it.max())}")
    assert isinstance(full, CoordinateDistribution)


def _chart_frame(frac: torch.Tensor, pieces: torch.Tensor) -> torch.Tensor:
    """Frame coordinates (n, 2) of points on polygon pieces."""
    from crystal_ar_model.piece_geometry import piece_geometry

    geo = piece_geometry()
    return torch.einsum("nj,nij->ni", frac - geo.origin[pieces], geo.frame[pieces])


def _subset(dist, sel: torch.Tensor):  # noqa: ANN001, ANN202
    """The distribution of the atoms ``sel`` (parameters taken from ``dist``)."""
    from crystal_ar_model.coords import CoordinateDistribution, PolygonParams, SegmentParams, TorusParams

    pos = {d: {int(a): j for j, a in enumerate(dist.index[d].tolist())} for d in (1, 2, 3)}
    out = {}
    kinds = ((1, dist.segment, SegmentParams), (2, dist.polygon, PolygonParams), (3, dist.torus, TorusParams))
    for d, params, cls in kinds:
        rows = [pos[d][int(a)] for a in sel.tolist() if int(a) in pos[d]]
        if rows:
            r = torch.tensor(rows)
            out[d] = cls(*(getattr(params, f)[r] for f in params.__dataclass_fields__))
    return CoordinateDistribution(dist.piece[sel], out.get(1), out.get(2), out.get(3), validate_args=False)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
