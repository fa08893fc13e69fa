"""fit_reference_polygon: determinism, low distortion, injectivity checks and errors."""

from __future__ import annotations

import polygon_flows.reference as reference_module
import pytest
import torch
from polygon_flows import REFERENCE_TRIANGLE, check_injective, fit_reference_polygon, reference_distortion
from polygon_flows.testing import EXAMPLE_POLYGONS as POLYGONS
from polygon_flows.testing import regular_polygon


def test_triangle_reference_is_the_corners() -> None:
    torch.testing.assert_close(fit_reference_polygon(POLYGONS["triangle"]), REFERENCE_TRIANGLE)
    # an affine map has zero distortion
    assert float(reference_distortion(POLYGONS["triangle"], REFERENCE_TRIANGLE)) < 1e-20


@pytest.mark.parametrize("name", ["quad", "pentagon", "hexagon", "thin", "skewed"])
def test_fit_is_deterministic_injective_and_better_than_naive(name: str) -> None:
    v = POLYGONS[name]
    reference_module._CACHE.clear()
    ref = fit_reference_polygon(v)
    reference_module._CACHE.clear()
    torch.testing.assert_close(fit_reference_polygon(v), ref, rtol=0, atol=0)
    assert check_injective(v, ref)
    e = float(reference_distortion(v, ref))
    assert 0 <= e < 0.1
    # a naive placement (first three vertices at the corners, the rest at the midpoint of the last edge)
    k = v.shape[0]
    naive = torch.cat(
        [
            REFERENCE_TRIANGLE,
            torch.stack([torch.tensor([0.0, 1.0 - (i + 1) / (k - 2)]) for i in range(k - 3)]).double(),
        ]
    )
    assert e <= float(reference_distortion(v, naive)) + 1e-12


def test_regular_polygon_distortion_decreases_with_optimisation() -> None:
    v = regular_polygon(8)
    ref = fit_reference_polygon(v)
    assert float(reference_distortion(v, ref)) < 0.02


def test_non_injective_reference_is_detected() -> None:
    v = regular_polygon(6)
    ref = fit_reference_polygon(v)
    folded = ref.clone()
    folded[[1, 2]] = ref[[2, 1]]  # boundary traversed back and forth: the map folds over
    assert not check_injective(v, folded)
    assert float(reference_distortion(v, folded)) == float("inf")


def test_fit_raises_when_not_injective(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_module, "check_injective", lambda *a, **k: False)
    reference_module._CACHE.clear()
    with pytest.raises(ValueError, match="not injective"):
        fit_reference_polygon(regular_polygon(7))


def test_batched_fit_and_dtype() -> None:
    v = torch.stack([POLYGONS["hexagon"], POLYGONS["hexagon"] * 3]).float()
    ref = fit_reference_polygon(v)
    assert ref.shape == (2, 6, 2) and ref.dtype == torch.float32
    torch.testing.assert_close(ref[0], ref[1])  # distortion is scale invariant


def test_fit_rejects_bad_polygons() -> None:
    with pytest.raises(ValueError, match="clockwise"):
        fit_reference_polygon(POLYGONS["hexagon"].flip(0))


def test_validate_reference_batched_errors() -> None:
    from polygon_flows.reference import validate_reference

    good = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    validate_reference(torch.stack([good, good]), 4)  # a batch of valid references passes
    off = good.clone()
    off[2] = torch.tensor([0.4, 0.4], dtype=torch.float64)  # inside T3, not on its boundary
    with pytest.raises(ValueError, match="boundary of the reference triangle"):
        validate_reference(torch.stack([good, off]), 4)
    no_corner = torch.tensor([[0.0, 0.0], [0.7, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="three corners"):
        validate_reference(torch.stack([good, no_corner]), 4)
    clockwise = good.flip(0)
    with pytest.raises(ValueError, match="counter-clockwise"):
        validate_reference(torch.stack([good, clockwise]), 4)
    twice = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.0]], dtype=torch.float64)  # winds twice
    with pytest.raises(ValueError, match="counter-clockwise"):
        validate_reference(twice, 4)
