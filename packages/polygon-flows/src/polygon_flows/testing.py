r"""Testing helpers: example polygons and a binned chi-square goodness-of-fit statistic.

The goodness-of-fit test compares ``sample`` with ``log_prob`` (the pyro ``testing/gof.py`` idea):
samples are binned into cells, the expected cell probabilities are the quadrature integrals of
``exp(log_prob)`` over the cells, and Pearson's statistic

.. math:: X^2 = \sum_c \frac{(O_c - N p_c)^2}{N p_c}

is returned with its degrees of freedom (number of cells minus one) for comparison with a
chi-square quantile. A wrong Jacobian or a wrong sampler makes :math:`X^2` grow linearly in
:math:`N`.

References:
    K. Pearson, "On the criterion that a given system of deviations ...", Phil. Mag. 50 (1900) 157-175.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .quadrature import _triangle_rule, polygon_cells

__all__ = ["EXAMPLE_POLYGONS", "chi_square_polygon", "chi_square_statistic", "regular_polygon"]


def regular_polygon(
    k: int, radius: float = 1.0, center: tuple[float, float] = (0.0, 0.0), phase: float = 0.1
) -> Tensor:
    """Counter-clockwise regular ``k``-gon in float64, shape ``(k, 2)``."""
    a = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k + phase
    return torch.stack([torch.cos(a), torch.sin(a)], -1) * radius + torch.tensor(center, dtype=torch.float64)


EXAMPLE_POLYGONS: dict[str, Tensor] = {
    "triangle": torch.tensor([[0.1, 0.2], [1.3, 0.4], [0.5, 1.1]], dtype=torch.float64),
    "quad": torch.tensor([[0.0, 0.0], [2.0, 0.2], [1.8, 1.5], [0.1, 1.0]], dtype=torch.float64),
    "pentagon": regular_polygon(5, 1.0, (0.3, -0.2)),
    "hexagon": regular_polygon(6),
    "thin": torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.5, 0.3], [0.2, 0.4]], dtype=torch.float64),
    "skewed": torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 1.0], [3.2, 1.3], [2.0, 1.2]], dtype=torch.float64),
}
"""Named convex counter-clockwise polygons (float64): regular, thin and skewed cases."""


def chi_square_statistic(observed: Tensor, probabilities: Tensor) -> tuple[float, int]:
    """Pearson's statistic for counts ``observed`` against cell ``probabilities``; returns ``(X^2, dof)``."""
    n = observed.sum()
    expected = n * probabilities / probabilities.sum()
    return float(((observed - expected) ** 2 / expected).sum()), int(observed.numel() - 1)


def chi_square_polygon(
    samples: Tensor,
    log_prob: Callable[[Tensor], Tensor],
    vertices: Tensor,
    level: int = 2,
    degree: int = 10,
) -> tuple[float, int, float]:
    """Binned goodness of fit of ``samples`` ``(N, 2)`` against a density on a convex polygon.

    Cells are the ``k * 4**level`` triangles of :func:`~polygon_flows.polygon_cells`.

    Returns:
        ``(X^2, dof, min_expected)``; ``min_expected`` is the smallest expected count (should be >= 5).
    """
    cells = polygon_cells(vertices, level)  # (m, 3, 2)
    x, w = _triangle_rule(cells, degree)  # cell by cell, so the flat points reshape to (m, q)
    with torch.no_grad():
        dens = log_prob(x).exp()
    prob = (dens * w).reshape(cells.shape[0], -1).sum(-1)
    a, e1, e2 = cells[:, 0], cells[:, 1] - cells[:, 0], cells[:, 2] - cells[:, 0]
    # locate samples: barycentric coordinates in every cell
    rel = samples[:, None, :] - a[None]
    inv_det = 1.0 / (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    l1 = (rel[..., 0] * e2[:, 1] - rel[..., 1] * e2[:, 0]) * inv_det
    l2 = (e1[:, 0] * rel[..., 1] - e1[:, 1] * rel[..., 0]) * inv_det
    score = torch.minimum(torch.minimum(l1, l2), 1 - l1 - l2)  # max over cells picks the containing one
    cell = score.argmax(-1)
    observed = torch.bincount(cell, minlength=cells.shape[0]).to(prob.dtype)
    stat, dof = chi_square_statistic(observed, prob)
    return stat, dof, float(samples.shape[0] * prob.min() / prob.sum())
