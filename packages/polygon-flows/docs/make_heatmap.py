"""Render docs/hexagon_dirichlet_mixture.png: a 3-component Dirichlet mixture on a hexagon.

Run from the repository root: ``python packages/polygon-flows/docs/make_heatmap.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from polygon_flows import PolygonDirichletMixture, polygon_quadrature  # noqa: E402
from polygon_flows.testing import regular_polygon  # noqa: E402


def main() -> None:
    hexagon = regular_polygon(6, phase=0.0)
    d = PolygonDirichletMixture(
        hexagon,
        logits=torch.tensor([0.0, 0.3, -0.2], dtype=torch.float64),
        concentration=torch.tensor([[8.0, 2.0, 2.0], [2.0, 6.0, 3.0], [2.5, 2.5, 9.0]], dtype=torch.float64),
    )
    n = 400
    g = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx, yy], -1).reshape(-1, 2)
    dens = torch.full((n * n,), float("nan"), dtype=torch.float64)
    inside = d.support.check(pts)
    dens[inside] = d.log_prob(pts[inside]).exp()
    x, w = polygon_quadrature(hexagon, level=3, degree=12)
    total = float((d.log_prob(x).exp() * w).sum())
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    im = ax.imshow(dens.reshape(n, n).numpy(), origin="lower", extent=(-1, 1, -1, 1), cmap="viridis")
    closed = torch.cat([hexagon, hexagon[:1]])
    ax.plot(closed[:, 0], closed[:, 1], "k-", lw=1)
    ax.plot(*(d.transform(torch.tensor([[1 / 3, 1 / 3]], dtype=torch.float64))[0].tolist()), "w+")
    ax.set_title(
        f"3-component Dirichlet mixture on a hexagon\n(quadrature integral = {total:.8f})", fontsize=9
    )
    ax.set_aspect("equal")
    fig.colorbar(im, ax=ax, label="density w.r.t. area")
    out = Path(__file__).with_name("hexagon_dirichlet_mixture.png")
    fig.savefig(out, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
