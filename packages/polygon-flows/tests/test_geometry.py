"""Mean value coordinates: reproduction, limits on the boundary, exact gradient, validation."""

from __future__ import annotations

import math

import pytest
import torch
from polygon_flows import mean_value_coordinates, mean_value_coordinates_and_jacobian, validate_convex_polygon
from polygon_flows.testing import EXAMPLE_POLYGONS as POLYGONS


def interior_points(v: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    w = torch.distributions.Dirichlet(torch.ones(v.shape[0], dtype=v.dtype)).sample((n,))
    return w @ v


@pytest.mark.parametrize("name", sorted(POLYGONS))
def test_partition_of_unity_and_linear_precision(name: str) -> None:
    torch.manual_seed(0)
    v = POLYGONS[name]
    x = interior_points(v, 200)
    lam = mean_value_coordinates(x, v)
    assert lam.shape == (200, v.shape[0])
    assert (lam > 0).all()
    torch.testing.assert_close(lam.sum(-1), torch.ones(200, dtype=torch.float64), rtol=0, atol=1e-13)
    torch.testing.assert_close(lam @ v, x, rtol=0, atol=1e-12)


def test_triangle_gives_barycentric_coordinates() -> None:
    v = POLYGONS["triangle"]
    lam_true = torch.tensor([[0.2, 0.3, 0.5], [0.7, 0.1, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(mean_value_coordinates(lam_true @ v, v), lam_true, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_limits_no_nan(dtype: torch.dtype) -> None:
    v = POLYGONS["hexagon"].to(dtype)
    k = v.shape[0]
    vertex_lam = mean_value_coordinates(v, v)
    torch.testing.assert_close(vertex_lam, torch.eye(k, dtype=dtype))
    s = torch.tensor([0.25, 0.5, 0.9], dtype=dtype)
    for i in range(k):
        p = v[i] + s[:, None] * (v[(i + 1) % k] - v[i])
        lam = mean_value_coordinates(p, v)
        expected = torch.zeros(3, k, dtype=dtype)
        expected[:, i] = 1 - s
        expected[:, (i + 1) % k] = s
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(lam, expected, rtol=0, atol=tol)
    # approaching an edge and a vertex: continuous, finite, and the gradients are finite
    for delta in [1e-3, 1e-8, 1e-15, 0.0]:
        mid = 0.5 * (v[0] + v[1])
        inward = (v.mean(0) - mid) / (v.mean(0) - mid).norm()
        p = torch.stack([mid + delta * inward, v[2] + delta * (v.mean(0) - v[2])]).requires_grad_(True)
        lam = mean_value_coordinates(p, v)
        assert torch.isfinite(lam).all()
        assert abs(float(lam[0, 0].detach()) - 0.5) < 1e-2 and abs(float(lam[1, 2].detach()) - 1) < 1e-2
        lam.sum().backward()
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ["quad", "hexagon", "skewed"])
def test_analytic_gradient_matches_autograd(name: str) -> None:
    torch.manual_seed(1)
    v = POLYGONS[name]
    x = interior_points(v, 5)
    _, grad = mean_value_coordinates_and_jacobian(x, v)
    for j in range(5):
        jac = torch.autograd.functional.jacobian(lambda p: mean_value_coordinates(p, v), x[j])
        torch.testing.assert_close(grad[j], jac, rtol=1e-9, atol=1e-11)


def test_batched_broadcasting() -> None:
    v = torch.stack([POLYGONS["hexagon"], POLYGONS["hexagon"] * 2])  # (2, 6, 2)
    x = torch.zeros(4, 1, 2, dtype=torch.float64)
    lam = mean_value_coordinates(x, v)
    assert lam.shape == (4, 2, 6)
    torch.testing.assert_close(lam[:, 0], lam[:, 1])


@pytest.mark.parametrize(
    ("vertices", "message"),
    [
        (torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), "clockwise"),
        (torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.2], [1.0, 2.0]]), "not a strictly convex"),
        (torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]), "degenerate"),
        (torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "degenerate"),
        (torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.0, 1.0]]), "convex"),
        (torch.zeros(3, 3), "shape"),
        (torch.zeros(2, 2), "shape"),
        (torch.tensor([[0.0, 0.0], [1.0, float("nan")], [0.0, 1.0]]), "non-finite"),
    ],
)
def test_invalid_polygons_raise(vertices: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_convex_polygon(vertices)


def test_a_star_polygon_is_not_convex() -> None:
    """The pentagram turns left at every vertex and has positive signed area, but winds twice."""
    import math

    from polygon_flows import validate_convex_polygon

    star = torch.tensor([[math.cos(4 * math.pi * i / 5), math.sin(4 * math.pi * i / 5)] for i in range(5)],
                        dtype=torch.float64)
    with pytest.raises(ValueError, match="winds around its centre more than once"):
        validate_convex_polygon(star)
    pentagon = torch.tensor([[math.cos(2 * math.pi * i / 5), math.sin(2 * math.pi * i / 5)] for i in range(5)],
                            dtype=torch.float64)
    validate_convex_polygon(pentagon)  # the same points in convex order pass


def test_quadrature_refuses_a_polygon_its_fan_would_miscount() -> None:
    """The centroid fan covers a non-convex or clockwise polygon wrongly (its weights would not sum to the
    area), so :func:`polygon_quadrature` refuses it; the convex counter-clockwise square still integrates."""
    from polygon_flows import polygon_quadrature

    dart = torch.tensor([[0.0, 0.0], [2.0, 1.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)  # reflex at (1, 1)
    with pytest.raises(ValueError, match="vertices"):
        polygon_quadrature(dart)
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="clockwise"):
        polygon_quadrature(square.flip(0))
    _, w = polygon_quadrature(square, level=1, degree=2)
    assert abs(float(w.sum()) - 1.0) < 1e-12
    # a vertex in the middle of an edge is still a convex polygon for the fan (found by a review)
    mid = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    x, w = polygon_quadrature(mid, level=1, degree=4)
    assert abs(float(w.sum()) - 1.0) < 1e-12 and abs(float((w * x[:, 0] ** 2).sum()) - 1 / 3) < 1e-12
    star = torch.tensor([[math.cos(4 * math.pi * i / 5), math.sin(4 * math.pi * i / 5)] for i in range(5)],
                        dtype=torch.float64)
    with pytest.raises(ValueError, match="winds around its centre more than once"):
        polygon_quadrature(star)
