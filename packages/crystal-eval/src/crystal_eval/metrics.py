"""Pure metric functions (numbers in, number out). See the package README for the definitions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon, pdist
from scipy.stats import wasserstein_distance

N_SPACE_GROUPS = 230
N_WYCKOFF_DIMS = 4


def wasserstein(generated: Sequence[float], reference: Sequence[float]) -> float:
    """1-D Wasserstein-1 distance of two empirical distributions (``scipy.stats.wasserstein_distance``)."""
    a, b = np.asarray(generated, dtype=float), np.asarray(reference, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(wasserstein_distance(a, b))


def histogram(values: Iterable[int], n_bins: int, first: int) -> np.ndarray:
    """Counts of the integers ``first .. first + n_bins - 1`` (one bin each); other values raise."""
    v = np.asarray(list(values), dtype=int)
    if v.size and (v.min() < first or v.max() >= first + n_bins):
        raise ValueError(f"values outside [{first}, {first + n_bins - 1}]")
    return np.bincount(v - first, minlength=n_bins).astype(float)


def space_group_histogram(space_groups: Iterable[int]) -> np.ndarray:
    """230-bin counts of space-group numbers 1..230."""
    return histogram(space_groups, N_SPACE_GROUPS, 1)


def wyckoff_dim_histogram(dims: Iterable[int]) -> np.ndarray:
    """4-bin counts of Wyckoff dimensions 0..3 (one count per occupied orbit)."""
    return histogram(dims, N_WYCKOFF_DIMS, 0)


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon **distance** with natural log (``scipy.spatial.distance.jensenshannon``, base e).

    ``p`` and ``q`` are counts or probabilities over the same bins; each is normalised to sum 1.
    JS distance = sqrt(0.5 KL(P||M) + 0.5 KL(Q||M)), M = (P+Q)/2; it lies in [0, sqrt(ln 2) ~ 0.8326].
    NaN if either histogram is empty.
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"histograms have different shapes {p.shape} and {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum()))


def cmd(x: np.ndarray, y: np.ndarray, k: int = 50) -> float:
    """Central Moment Discrepancy (Zellinger et al. 2017) up to order ``k``, without range scaling.

    ``||E[x] - E[y]||_2 + sum_{j=2..k} ||c_j(x) - c_j(y)||_2`` with per-coordinate population central
    moments ``c_j(x) = mean((x - E[x])^j)`` (the official implementation, i.e. features in [0, 1]).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"cmd needs two 2-D arrays with the same number of columns, got {x.shape}, {y.shape}")
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    total = float(np.linalg.norm(mx - my))
    cx, cy = x - mx, y - my
    px, py = cx.copy(), cy.copy()
    for _ in range(2, k + 1):
        px *= cx
        py *= cy
        total += float(np.linalg.norm(px.mean(axis=0) - py.mean(axis=0)))
    return total


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs of rows (``scipy.spatial.distance.pdist``)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or len(x) < 2:
        return float("nan")
    return float(pdist(x).mean())


def un_rate(is_unique: Sequence[bool], is_novel: Sequence[bool]) -> float:
    """Percentage of samples that are both unique and novel."""
    u, n = np.asarray(is_unique, dtype=bool), np.asarray(is_novel, dtype=bool)
    if u.shape != n.shape:
        raise ValueError("is_unique and is_novel differ in length")
    return float(100.0 * np.mean(u & n)) if u.size else float("nan")
