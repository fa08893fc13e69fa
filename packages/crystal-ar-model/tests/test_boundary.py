"""Sites exactly on a piece's relative boundary (which the exact ASU may include) have a finite log-density.

mp-1216138 (R-3, MP-20 val) has C on 6c at (0, 0, 1/6), the included end of the segment (0,0,0)--(0,0,1/6);
a Beta density is 0 or infinite at the end itself, so the factor evaluates such sites 1e-9 inside, where the
sampler keeps its draws.
"""

from __future__ import annotations

import asu_geometry as ag
import pytest
import torch
from crystal_ar_model.coords import CoordinateFactor, _piece_centres
from crystal_ar_model.shapes import shape_table


@pytest.mark.parametrize("bias", [-3.0, 3.0])  # concentrations well below and well above 1
def test_piece_boundary_points_have_finite_log_prob(bias: float) -> None:
    t = shape_table()
    factor = CoordinateFactor(4, 8).double()
    with torch.no_grad():
        for head in (factor.segment_head, factor.polygon_head):
            head[-1].bias.fill_(bias)
    w = ag.space_group(148).wyckoff("c").index
    seg = int(t.piece_offset[w, 0])
    poly = int(torch.nonzero((t.dim == 2) & ~t.anchored)[0])
    pieces = torch.tensor([seg, seg, poly, poly])
    x = torch.stack([t.vertices[seg, 0], t.vertices[seg, 1], t.vertices[poly, 0], t.vertices[poly, 1]])
    lp = factor(torch.zeros(4, 4, dtype=torch.float64), pieces).log_prob(x)
    assert torch.isfinite(lp).all(), lp
    off = x.clone()
    off[:, 0] += 1e-3  # off the piece's affine hull: still outside the support (a ValueError with validation)
    with pytest.raises(ValueError):
        factor(torch.zeros(4, 4, dtype=torch.float64), pieces).log_prob(off)


def test_points_just_outside_a_piece_by_rounding_are_pulled_inside() -> None:
    """A normal form's representative computed in floating point may lie a few 1e-10 outside its piece (seen on
    a sample of the shipped model: Ru on 2b of Amm2 at z = -6.8e-10 of the segment [0, 1/2)); it gets the density
    of the point SAMPLE_MARGIN inside, like a point on the boundary. Points farther out than ON_PIECE_TOL keep
    probability 0."""
    t = shape_table()
    factor = CoordinateFactor(4, 8).double()
    w = ag.space_group(148).wyckoff("c").index
    seg = int(t.piece_offset[w, 0])
    poly = int(torch.nonzero((t.dim == 2) & ~t.anchored)[0])
    pieces = torch.tensor([seg, poly])
    ctx = torch.zeros(2, 4, dtype=torch.float64)
    dist = factor(ctx, pieces)
    dist_nv = type(dist).__new__(type(dist))
    dist_nv.__dict__.update(dist.__dict__)
    dist_nv._validate_args = False  # the points below are off the piece by more than validation allows
    on = torch.stack([t.vertices[seg, 0], t.vertices[poly, 0]]).to(torch.float64)
    centres = _piece_centres()[pieces]  # moving along the ray from the centre: the same pulled-in point
    outward = on - centres
    outward = outward / outward.norm(dim=-1, keepdim=True)
    lp_on = dist_nv.log_prob(on)
    lp_out = dist_nv.log_prob(on + 7e-10 * outward)
    assert torch.isfinite(lp_on).all() and torch.isfinite(lp_out).all(), (lp_on, lp_out)
    assert torch.allclose(lp_out, lp_on, atol=1e-6), (lp_out, lp_on)
    far = dist_nv.log_prob(on + 1e-4 * outward)
    assert torch.isneginf(far).all(), far
    inside = 0.5 * (on + centres)  # properly inside: untouched
    assert torch.isfinite(dist_nv.log_prob(inside)).all()
