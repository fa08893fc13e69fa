"""SimplexToPolygon: Jacobian against autograd, inverse round trip, affine case, contracts."""

from __future__ import annotations

import pytest
import torch
from polygon_flows import SimplexToPolygon, fit_reference_polygon, polygon_area
from polygon_flows.testing import EXAMPLE_POLYGONS as POLYGONS
from torch.distributions import constraints as tc

NAMES = sorted(POLYGONS)


def reference_points(n: int, concentration: float, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    lam = torch.distributions.Dirichlet(torch.full((3,), concentration, dtype=torch.float64)).sample((n,))
    return lam[:, 1:]


@pytest.mark.parametrize("name", NAMES)
def test_log_abs_det_jacobian_matches_autograd(name: str) -> None:
    f = SimplexToPolygon(POLYGONS[name])
    u = reference_points(6, 1.0, seed=3)
    ladj = f.log_abs_det_jacobian(u, f(u))
    assert ladj.shape == (6,)
    for j in range(6):
        jac = torch.autograd.functional.jacobian(f, u[j])
        torch.testing.assert_close(ladj[j], torch.linalg.det(jac).abs().log(), rtol=1e-10, atol=1e-10)
        assert torch.linalg.det(jac) > 0


@pytest.mark.parametrize("name", NAMES)
def test_inverse_round_trip_float64(name: str) -> None:
    f = SimplexToPolygon(POLYGONS[name])
    # interior points, points near the boundary and the corners (small concentrations)
    u = torch.cat([reference_points(2000, 2.0), reference_points(2000, 0.2, seed=1)])
    u = u.clamp_min(1e-12)
    x = f(u)
    assert f.codomain.check(x).all()
    u2 = f.inv(x)
    assert (u2 - u).abs().max() < 1e-9
    assert (f(u2) - x).abs().max() < 1e-10 * float(POLYGONS[name].abs().max())
    iters = f.last_newton_iterations
    assert iters is not None and iters.shape == (4000,) and int(iters.max()) <= f.max_iter


def test_inverse_of_boundary_points_and_vertices() -> None:
    v = POLYGONS["hexagon"]
    f = SimplexToPolygon(v)
    s = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None]
    x = torch.cat([v, v[0] + s * (v[1] - v[0]), v[3] + s * (v[4] - v[3])])
    u = f.inv(x)
    assert torch.isfinite(u).all()
    assert (f(u) - x).abs().max() < 1e-9


def test_triangle_is_affine_barycentric_map() -> None:
    v = POLYGONS["triangle"]
    f = SimplexToPolygon(v)
    u = reference_points(50, 1.0)
    lam = torch.stack([1 - u.sum(-1), u[:, 0], u[:, 1]], -1)
    torch.testing.assert_close(f(u), lam @ v, rtol=0, atol=1e-14)
    ladj = f.log_abs_det_jacobian(u, f(u))
    torch.testing.assert_close(ladj, torch.log(2 * polygon_area(v)).expand(50), rtol=0, atol=1e-14)
    torch.testing.assert_close(f.inv(f(u)), u, rtol=0, atol=1e-13)


def test_float32_forward_and_inverse() -> None:
    v = POLYGONS["hexagon"].float()
    f = SimplexToPolygon(v)
    u = reference_points(500, 1.5).float()
    x = f(u)
    assert x.dtype == torch.float32
    u2, ladj = f.inverse_and_log_abs_det_jacobian(x)
    assert u2.dtype == torch.float32 and ladj.dtype == torch.float32
    assert (u2 - u).abs().max() < 1e-5
    assert torch.isfinite(ladj).all()


def test_inverse_gradient_is_exact() -> None:
    v = POLYGONS["pentagon"]
    ref = fit_reference_polygon(v)
    u0 = reference_points(3, 2.0)
    x = SimplexToPolygon(v, ref)(u0).detach()

    def inv(xx: torch.Tensor, vv: torch.Tensor) -> torch.Tensor:
        return SimplexToPolygon(vv, ref).inverse_and_log_abs_det_jacobian(xx)[0]

    def ladj(xx: torch.Tensor, vv: torch.Tensor) -> torch.Tensor:
        return SimplexToPolygon(vv, ref).inverse_and_log_abs_det_jacobian(xx)[1]

    args = (x.clone().requires_grad_(True), v.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(inv, args, atol=1e-6, rtol=1e-5)
    assert torch.autograd.gradcheck(ladj, args, atol=1e-6, rtol=1e-5)


def test_batched_vertices_broadcast() -> None:
    v = torch.stack([POLYGONS["hexagon"], 2 * POLYGONS["hexagon"] + 1])
    f = SimplexToPolygon(v)
    assert f.reference.shape == (2, 6, 2)
    torch.testing.assert_close(f.reference[0], f.reference[1])  # the fit is similarity invariant
    u = reference_points(7, 2.0)[:, None, :]  # (7, 1, 2) -> batch (7, 2)
    x = f(u)
    assert x.shape == (7, 2, 2)
    torch.testing.assert_close(x[:, 1], 2 * x[:, 0] + 1)
    u2 = f.inv(x)
    assert u2.shape == (7, 2, 2)
    assert (u2 - u).abs().max() < 1e-9
    assert f.log_abs_det_jacobian(u, x).shape == (7, 2)


def test_transform_contract() -> None:
    f = SimplexToPolygon(POLYGONS["quad"])
    assert f.bijective and f.domain.event_dim == 1 and f.codomain.event_dim == 1
    assert f == SimplexToPolygon(POLYGONS["quad"], f.reference)
    assert f != SimplexToPolygon(POLYGONS["quad"] * 2)
    g = f.with_cache(1)
    u = reference_points(4, 2.0)
    x = g(u)
    assert g.inv(x) is u  # cached
    assert isinstance(f.inv.codomain, tc.Constraint)
    # composes with TransformedDistribution: a uniform law on [0, 1/2]^2 (inside T3) pushed forward
    half = torch.full((2,), 0.5, dtype=torch.float64)
    base = torch.distributions.Independent(
        torch.distributions.Uniform(torch.zeros(2, dtype=torch.float64), half), 1
    )
    td = torch.distributions.TransformedDistribution(base, [f], validate_args=False)
    assert td.event_shape == (2,)
    u = 0.5 * reference_points(4, 2.0).clamp(0.01, 0.99)
    x = f(u)
    expected = torch.log(torch.tensor(4.0, dtype=torch.float64)) - f.log_abs_det_jacobian(u, x)
    torch.testing.assert_close(td.log_prob(x), expected, rtol=1e-10, atol=1e-10)


def test_bad_reference_raises() -> None:
    v = POLYGONS["quad"]
    with pytest.raises(ValueError, match="boundary"):
        SimplexToPolygon(v, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.3, 0.3], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="corners"):
        SimplexToPolygon(v, torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="counter-clockwise"):
        SimplexToPolygon(v, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4, 2\)"):
        SimplexToPolygon(v, torch.zeros(3, 2))


def test_batched_per_point_polygons_invert_like_one_at_a_time() -> None:
    # Regression (0.2.0): with one polygon per point, the initial guess summed the references over the batch,
    # so some points started on T3's boundary and needed restarts. Each point must now converge in the first
    # stage, in a handful of iterations, to the same inverse as when it is alone.
    names = ["quad", "pentagon", "thin", "skewed"]
    k = 4
    polys = [POLYGONS[n] for n in names if POLYGONS[n].shape[0] == k] + [POLYGONS["quad"] * 0.3 + 1.0]
    verts = torch.stack(polys).repeat(50, 1, 1)  # (100, 4, 2)
    refs = torch.stack([fit_reference_polygon(v) for v in polys]).repeat(50, 1, 1)
    u_true = reference_points(len(verts), 1.0, seed=3)
    f = SimplexToPolygon(verts, refs)
    x = f(u_true)
    u = f.inv(x)
    iters = f.last_newton_iterations
    assert iters is not None and int(iters.max()) <= 8
    assert float(iters.double().mean()) < 4.5  # a good initial guess (the batched bug averaged above 5)
    torch.testing.assert_close(u, u_true, rtol=0, atol=1e-12)
    for i in (0, 1, 37):
        alone = SimplexToPolygon(verts[i : i + 1], refs[i : i + 1]).inv(x[i : i + 1])
        torch.testing.assert_close(u[i : i + 1], alone, rtol=0, atol=1e-13)
