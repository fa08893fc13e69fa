"""Throughput and accuracy figures of polygon-flows (quoted in packages/polygon-flows/README.md).

    python benchmarks/polygon_flows_bench.py            # all figures
    python benchmarks/polygon_flows_bench.py --quick    # fewer repetitions

Prints: log_prob / sample throughput (float32, CPU) for segments, triangles and hexagons, Newton
iterations of the hexagon inverse, quadrature integration errors (float64) per case, and the
distortion of fitted references.
"""

from __future__ import annotations

import argparse
import time

import torch
from polygon_flows import (
    FoldedDistribution,
    PolygonDirichletMixture,
    SegmentBetaMixture,
    TorusVonMisesMixture,
    box_quadrature,
    fit_reference_polygon,
    polygon_quadrature,
    reference_distortion,
    segment_quadrature,
)
from polygon_flows import reference as _reference_module
from polygon_flows.testing import EXAMPLE_POLYGONS, regular_polygon


def _rate(fn, n: int, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def throughput(repeats: int) -> None:
    f32 = torch.float32
    logits = torch.tensor([0.0, 0.5, -0.3], dtype=f32)
    conc = torch.tensor([[2.0, 3.0, 4.0], [3.0, 2.0, 2.0], [1.5, 1.2, 5.0]], dtype=f32)
    seg = SegmentBetaMixture(
        torch.zeros(3, dtype=f32), torch.ones(3, dtype=f32), logits, conc[:, 0] + 1, conc[:, 1]
    )
    tri = PolygonDirichletMixture(EXAMPLE_POLYGONS["triangle"].to(f32), logits, conc)
    hexa = PolygonDirichletMixture(regular_polygon(6).to(f32), logits, conc)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32")
    print(f"{'case':<10}{'points':>10}{'log_prob pts/s':>18}{'sample pts/s':>16}")
    for name, d, n in [("segment", seg, 10**6), ("triangle", tri, 10**6), ("hexagon", hexa, 10**5)]:
        torch.manual_seed(0)
        x = d.sample((n,))
        with torch.no_grad():
            lp = _rate(lambda d=d, x=x: d.log_prob(x), n, repeats)
        sp = _rate(lambda d=d, n=n: d.sample((n,)), n, repeats)
        print(f"{name:<10}{n:>10}{lp:>18.3e}{sp:>16.3e}")
    torch.manual_seed(0)
    x = hexa.sample((10**5,))
    with torch.no_grad():
        hexa.log_prob(x)
    it = hexa.transform.last_newton_iterations.float()
    print(f"hexagon inverse, Newton iterations over 1e5 samples: mean {it.mean():.3f}, max {int(it.max())}")


def accuracy() -> None:
    f64 = torch.float64
    logits = torch.tensor([0.0, 0.5, -0.3], dtype=f64)
    conc = torch.tensor([[2.0, 3.0, 4.0], [3.0, 2.0, 2.0], [1.0, 1.0, 5.0]], dtype=f64)
    print("\nintegration error |integral - 1| (float64, basix quadrature)")
    seg = SegmentBetaMixture(
        torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64), logits, conc[:, 0] + 1, conc[:, 1]
    )
    x, w = segment_quadrature(seg.start, seg.end, pieces=4, degree=20)
    print(f"  {'segment':<22}{abs(float((seg.log_prob(x).exp() * w).sum()) - 1):.2e}")
    for name, v in EXAMPLE_POLYGONS.items():
        d = PolygonDirichletMixture(v, logits, conc)
        x, w = polygon_quadrature(v, level=3, degree=12)
        print(f"  {name + f' (k={v.shape[0]})':<22}{abs(float((d.log_prob(x).exp() * w).sum()) - 1):.2e}")
    loc = torch.tensor([[0.1, 0.7, 0.3], [0.6, 0.2, 0.9]], dtype=f64)
    kappa = torch.tensor([[4.0, 2.0, 6.0], [1.0, 5.0, 3.0]], dtype=f64)
    torus = TorusVonMisesMixture(loc, kappa, torch.tensor([0.3, -0.2], dtype=f64))
    x, w = box_quadrature(torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64), pieces=4, degree=20)
    print(f"  {'torus (von Mises)':<22}{abs(float((torus.log_prob(x).exp() * w).sum()) - 1):.2e}")
    r4 = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=f64)
    groups = {
        "folded, inversion": (
            torch.stack([torch.eye(3, dtype=f64), -torch.eye(3, dtype=f64)]),
            [0.5, 1.0, 1.0],
        ),
        "folded, 4-fold axis": (
            torch.stack([torch.linalg.matrix_power(r4, i) for i in range(4)]),
            [0.5, 0.5, 1.0],
        ),
    }
    for name, (rot, hi) in groups.items():
        fd = FoldedDistribution(torus, rot, torch.zeros(len(rot), 3, dtype=f64), lambda y: y, period=1.0)
        x, w = box_quadrature(torch.zeros(3, dtype=f64), torch.tensor(hi, dtype=f64), pieces=4, degree=20)
        print(f"  {name:<22}{abs(float((fd.log_prob(x).exp() * w).sum()) - 1):.2e}")
    print("\ndistortion E of fitted references (0 = affine)")
    cases = dict(EXAMPLE_POLYGONS)
    cases["regular octagon"] = regular_polygon(8)
    for name, v in cases.items():
        _reference_module._CACHE.clear()  # time a fresh fit
        t0 = time.perf_counter()
        ref = fit_reference_polygon(v)
        dt = time.perf_counter() - t0
        e = float(reference_distortion(v, ref))
        print(f"  {name + f' (k={v.shape[0]})':<22}E = {e:.4f} (fit {dt:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timing repetition instead of three")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    throughput(1 if args.quick else 3)
    accuracy()


if __name__ == "__main__":
    main()
