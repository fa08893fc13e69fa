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


def test_standardise_magpie_uses_cdvae_constants_and_zeroes_nan():
    from crystal_eval._data import comp_scaler

    means, stds = comp_scaler()
    assert means.shape == stds.shape == (132,)
    x = means + stds
    x[3] = np.nan
    z = standardise_magpie(x)
    assert z[3] == 0.0
    assert np.allclose(np.delete(z, 3), 1.0)
