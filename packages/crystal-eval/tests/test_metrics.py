"""Pure metric functions against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from crystal_eval.features import standardise_magpie
from crystal_eval.metrics import (
    cmd,
    js_distance,
    mean_pairwise_distance,
    space_group_histogram,
    un_rate,
    wasserstein,
    wilson_interval,
    wyckoff_dim_histogram,
)


def test_js_identical_is_zero_and_disjoint_is_sqrt_ln2():
    p = np.array([3.0, 1.0, 0.0, 6.0])
    assert js_distance(p, p) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(p, 10 * p) == pytest.approx(0.0, abs=1e-12)  # counts are normalised
    assert js_distance([1, 0, 0, 0], [0, 0, 1, 1]) == pytest.approx(math.sqrt(math.log(2)))
    sg_a = space_group_histogram([225, 225, 1])
    sg_b = space_group_histogram([194, 230])
    assert js_distance(sg_a, sg_b) == pytest.approx(math.sqrt(math.log(2)))


def test_js_hand_computation():
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    m = (p + q) / 2
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    assert js_distance(p, q) == pytest.approx(math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def test_js_rejects_mismatched_and_empty():
    with pytest.raises(ValueError):
        js_distance([1, 2], [1, 2, 3])
    assert math.isnan(js_distance([0, 0], [1, 2]))


def test_histograms_have_230_and_4_bins():
    h = space_group_histogram([1, 230, 230])
    assert h.shape == (230,) and h[0] == 1 and h[229] == 2
    w = wyckoff_dim_histogram([0, 0, 3, 1])
    assert w.tolist() == [2, 1, 0, 1]
    with pytest.raises(ValueError):
        space_group_histogram([0])
    with pytest.raises(ValueError):
        wyckoff_dim_histogram([4])


def test_wasserstein_hand_computation():
    # W1 between {0, 1, 3} and {1, 2}: the CDF difference integrated over x
    # F_a: 1/3 on [0,1), 2/3 on [1,3); F_b: 0 on [0,1), 1/2 on [1,2), 1 on [2,3)
    expected = 1 / 3 * 1 + abs(2 / 3 - 1 / 2) * 1 + abs(2 / 3 - 1) * 1
    assert wasserstein([0, 1, 3], [1, 2]) == pytest.approx(expected)
    assert wasserstein([5.0, 5.0], [2.0]) == pytest.approx(3.0)
    assert wasserstein([1, 2, np.nan], [1, 2]) == pytest.approx(0.0)
    assert math.isnan(wasserstein([], [1.0]))


def test_cmd_identity_and_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.random((50, 5))
    assert cmd(x, x) == pytest.approx(0.0, abs=1e-15)
    assert cmd(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)  # order-free
    # 1-D: x = {0, 1}, y = {0, 0}: mean diff 0.5; central moments of x: (0.5^k + (-0.5)^k)/2
    a, b = np.array([[0.0], [1.0]]), np.array([[0.0], [0.0]])
    expected = 0.5 + sum(abs((0.5**k + (-0.5) ** k) / 2) for k in range(2, 6))
    assert cmd(a, b, k=5) == pytest.approx(expected)
    assert cmd(a, b, k=1) == pytest.approx(0.5)
    assert cmd(x, x + 0.1, k=50) == pytest.approx(0.1 * math.sqrt(5))  # a shift moves only the mean


def test_cmd_errors():
    with pytest.raises(ValueError):
        cmd(np.zeros((3, 2)), np.zeros((3, 3)))
    assert math.isnan(cmd(np.zeros((0, 2)), np.zeros((3, 2))))


def test_mean_pairwise_distance():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)
    assert math.isnan(mean_pairwise_distance(x[:1]))


def test_un_rate():
    assert un_rate([True, True, False, True], [True, False, True, True]) == pytest.approx(50.0)


def test_wilson_interval_hand_computation_and_edges():
    # p = 0.4, n = 100, z = 1.959964: centre 0.40370, half-width 0.09430
    lo, hi = wilson_interval(40, 100)
    z = 1.959963984540054
    centre = (0.4 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.4 * 0.6 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert (lo, hi) == pytest.approx((100 * (centre - half), 100 * (centre + half)), abs=1e-12)
    assert (lo, hi) == pytest.approx((30.94, 49.80), abs=5e-3)
    # k = 0 and k = n: one-sided, upper bound z^2 / (n + z^2)
    assert wilson_interval(0, 100) == pytest.approx((0.0, 100 * z * z / (100 + z * z)), abs=1e-12)
    assert wilson_interval(100, 100) == pytest.approx((100 - 100 * z * z / (100 + z * z), 100.0), abs=1e-12)
    assert wilson_interval(0, 0) is None
    # wider with more confidence, narrower with more trials
    assert wilson_interval(40, 100, 0.99)[0] < lo and wilson_interval(400, 1000)[1] < hi
    for bad in ((5, 4), (-1, 4)):
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(*bad)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, 1.0)


def test_wilson_interval_covers_the_rate_95_percent_of_the_time():
    """Exact coverage (binomial sums, no simulation) over rates 0.05..0.95: on average 95 %, never far below."""
    from scipy.stats import binom

    for n, worst in ((20, 0.92), (100, 0.925), (1000, 0.94)):
        intervals = [wilson_interval(k, n) for k in range(n + 1)]
        rates = np.linspace(0.05, 0.95, 91)
        pmf = binom.pmf(np.arange(n + 1)[:, None], n, rates[None, :])
        inside = np.array([[lo / 100 <= p <= hi / 100 for p in rates] for lo, hi in intervals])
        coverage = (pmf * inside).sum(axis=0)
        assert abs(coverage.mean() - 0.95) < 0.006 and coverage.min() > worst, (n, coverage.mean(), coverage.min())


def test_standardise_magpie_uses_cdvae_constants_and_zeroes_nan():
    from crystal_eval._data import comp_scaler

    means, stds = comp_scaler()
    assert means.shape == stds.shape == (132,)
    x = means + stds
    x[3] = np.nan
    z = standardise_magpie(x)
    assert z[3] == 0.0
    assert np.allclose(np.delete(z, 3), 1.0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: js_distance([3, -1, 0], [1, 1, 1]), "finite and >= 0"),
    (lambda: js_distance([np.nan, 1], [1, 1]), "finite and >= 0"),
    (lambda: js_distance(np.ones((2, 2)), np.ones((2, 2))), "1-D"),
    (lambda: cmd(np.zeros((3, 2)), np.zeros((3, 2)), k=0), "integer >= 1"),
    (lambda: cmd(np.zeros((3, 2)), np.zeros((3, 2)), k=2.5), "integer >= 1"),
    (lambda: mean_pairwise_distance(np.arange(5.0)), "2-D"),
    (lambda: space_group_histogram([1.7]), "must be integers"),
    (lambda: wilson_interval(2.7, 5), "whole number"),
    (lambda: wilson_interval(True, 5), "whole number"),
])
def test_bad_metric_input_raises_instead_of_a_wrong_number(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wasserstein_leaves_out_non_finite_values_as_documented():
    assert wasserstein([np.nan, 1.0, 3.0], [1.0, 3.0]) == pytest.approx(0.0)
    assert math.isnan(wasserstein([np.nan], [1.0]))
    assert space_group_histogram([225.0, 225])[224] == 2  # whole floats are integers
