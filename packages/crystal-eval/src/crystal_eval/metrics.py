"""Pure metric functions (numbers in, number out). See the package README for the definitions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon, pdist
from scipy.stats import norm, wasserstein_distance

N_SPACE_GROUPS = 230
N_WYCKOFF_DIMS = 4


def wasserstein(generated: Sequence[float], reference: Sequence[float]) -> float:
    """1-D Wasserstein-1 distance of two empirical distributions (``scipy.stats.wasserstein_distance``).

    Non-finite values (e.g. the density of a crystal that could not be built) are left out; NaN when either side
    has no finite value."""
    a, b = np.asarray(generated, dtype=float), np.asarray(reference, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(wasserstein_distance(a, b))


def histogram(values: Iterable[int], n_bins: int, first: int) -> np.ndarray:
    """Counts of the integers ``first .. first + n_bins - 1`` (one bin each); other values raise."""
    raw = np.asarray(list(values))
    if raw.size and not (np.issubdtype(raw.dtype, np.number) and np.all(np.mod(raw, 1) == 0)):
        raise ValueError(f"histogram values must be integers, got e.g. {raw.ravel()[:3].tolist()}")
    v = raw.astype(int)
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
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"histograms must be 1-D with the same shape, got {p.shape} and {q.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q)) and p.min(initial=0) >= 0 and q.min(initial=0) >= 0):
        raise ValueError("histogram counts must be finite and >= 0")
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum()))


def cmd(x: np.ndarray, y: np.ndarray, k: int = 50) -> float:
    """Central Moment Discrepancy (Zellinger et al. 2017) up to order ``k``, without range scaling.

    ``||E[x] - E[y]||_2 + sum_{j=2..k} ||c_j(x) - c_j(y)||_2`` with per-coordinate population central
    moments ``c_j(x) = mean((x - E[x])^j)`` (the official implementation, i.e. features in [0, 1]).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"the highest moment k must be an integer >= 1, got {k!r}")
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
    """Mean Euclidean distance over all unordered pairs of rows (``scipy.spatial.distance.pdist``); NaN for fewer
    than two rows."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"mean_pairwise_distance needs a 2-D array (rows are points), got shape {x.shape}")
    if len(x) < 2:
        return float("nan")
    return float(pdist(x).mean())


def un_rate(is_unique: Sequence[bool], is_novel: Sequence[bool]) -> float:
    """Percentage of samples that are both unique and novel."""
    u, n = np.asarray(is_unique, dtype=bool), np.asarray(is_novel, dtype=bool)
    if u.shape != n.shape:
        raise ValueError("is_unique and is_novel differ in length")
    return float(100.0 * np.mean(u & n)) if u.size else float("nan")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval (percent) of a binomial rate: ``successes`` of ``trials`` crystals.

    With ``p = k/n`` and ``z`` the two-sided normal quantile of ``confidence``::

        (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)

    (Wilson, J. Am. Stat. Assoc. 22, 209 (1927); recommended over the normal interval by Brown, Cai and
    DasGupta, Stat. Sci. 16, 101 (2001)). It stays inside [0, 100] and is never empty at ``k = 0`` or
    ``k = n``. It is the uncertainty of the *model's* rate: the crystals are a random draw from the model.
    None for ``trials == 0``.
    """
    for name, v in (("successes", successes), ("trials", trials)):
        if isinstance(v, bool) or not (isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer())):
            raise ValueError(f"{name} must be a whole number, got {v!r}")
    k, n = int(successes), int(trials)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= trials, got {k} of {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return None
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    if k == 0:
        lo = 0.0  # exact: the formula gives 0 up to rounding
    if k == n:
        hi = 1.0
    return 100.0 * lo, 100.0 * hi
