"""Sites exactly on a piece's relative boundary (which the exact ASU may include) have a finite log-density.

mp-1216138 (R-3, MP-20 val) has C on 6c at (0, 0, 1/6), the included end of the segment (0,0,0)--(0,0,1/6);
a Beta density is 0 or infinite at the end itself, so the factor evaluates such sites 1e-9 inside, where the
sampler keeps its draws.
"""

from __future__ import annotations

import asu_geometry as ag
import pytest
import torch
from crystal_ar_model.coords import CoordinateFactor
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
