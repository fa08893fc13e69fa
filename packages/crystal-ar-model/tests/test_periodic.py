"""Periodic geometry: primitive-cell orbits, reduced bases, minimum images (against brute force), Wyckoff noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from crystal_ar_model.data import load_csv
from crystal_ar_model.periodic import (
    atom_images,
    group_geometry,
    inside_asu,
    lattice_matrix,
    minimum_image_edges,
    piece_images,
    reduce_basis,
    wyckoff_noise,
)
from crystal_ar_model.shapes import shape_table

from .conftest import TRAIN_FIXTURE


def test_primitive_images_count_multiplicity_over_centring() -> None:
    import asu_geometry as ag

    t, pi, gg = shape_table(), piece_images(), group_geometry()
    wps = ag.all_wyckoff_positions()
    for p in range(t.num_pieces):
        wp = wps[int(t.wyckoff[p])]
        assert int(pi.image_count[p]) * int(gg.centring[wp.space_group - 1]) == wp.multiplicity
    # images of a point on a piece are distinct modulo the primitive lattice (spot check: Fm-3m general position)
    g = 225
    w = ag.space_group(g).wyckoff_positions[-1].index
    piece = torch.tensor([int(t.piece_offset[w, 0])])
    _, pos = atom_images(torch.tensor([[0.11, 0.07, 0.03]], dtype=torch.float64), piece)
    prim = gg.primitive_basis[g - 1]
    u = pos @ torch.linalg.inv(prim)
    d = u[:, None] - u[None]
    same = ((d - d.round()).abs() < 1e-9).all(-1)
    assert pos.shape[0] == 48 and int(same.sum()) == 48


def test_distinct_image_ops_match_the_pairwise_definition() -> None:
    """For every piece's point, the operations kept are the first of each class of images equal modulo the
    primitive lattice, found by comparing every pair of images within 1e-7 (the definition)."""
    import asu_geometry as ag
    import numpy as np
    from crystal_ar_model.periodic import _PRIMITIVE_BASIS, _distinct_image_ops
    from crystal_ar_model.shapes import piece_shapes

    t, shapes, wps = shape_table(), piece_shapes(), ag.all_wyckoff_positions()
    for p in range(t.num_pieces):
        g = ag.space_group(wps[int(t.wyckoff[p])].space_group)
        prim_inv = np.linalg.inv(np.array(_PRIMITIVE_BASIS[g.centering], dtype=np.float64))
        point = shapes[p].vertices_array.mean(axis=0)
        u = g.apply(point) @ prim_inv
        d = u[:, None, :] - u[None, :, :]
        first = np.all(np.abs(d - np.round(d)) < 1e-7, axis=-1).argmax(axis=1)
        assert _distinct_image_ops(g, point, prim_inv) == [i for i in range(len(u)) if first[i] == i], p


def test_reduced_basis_is_shortest() -> None:
    """The reduced basis of a skewed basis of an orthorhombic lattice (3, 4, 5 Angstrom, rotated) spans the same
    lattice and consists of its three shortest independent vectors."""
    gen = torch.Generator().manual_seed(0)
    base = torch.eye(3, dtype=torch.float64) * torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64)
    for _ in range(20):
        skew = torch.eye(3, dtype=torch.float64) + torch.randint(-3, 4, (3, 3), generator=gen).double().triu(1)
        b = skew @ base @ torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
        r = reduce_basis(b)
        m = r @ torch.linalg.inv(b)  # integer unimodular
        assert torch.allclose(m, m.round(), atol=1e-8) and abs(abs(float(torch.det(m.round()))) - 1) < 1e-9
        assert torch.allclose(r.norm(dim=-1).sort().values, torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64))


def test_lattice_matrix_parameters() -> None:
    p = torch.tensor([[4.1, 5.2, 6.3, 71.0, 83.0, 97.0]], dtype=torch.float64)
    a = lattice_matrix(p)[0]
    n = a.norm(dim=-1)
    assert torch.allclose(n, p[0, :3])
    cos = lambda i, j: float(a[i] @ a[j] / (n[i] * n[j]))  # noqa: E731
    for (i, j), ang in zip(((1, 2), (0, 2), (0, 1)), (71.0, 83.0, 97.0), strict=True):
        assert abs(cos(i, j) - np.cos(np.radians(ang))) < 1e-12
    assert float(a[0, 1]) == 0 and float(a[0, 2]) == 0 and float(a[1, 2]) == 0


@pytest.fixture(scope="module")
def fixture_crystals():  # noqa: ANN201
    ds, _ = load_csv(TRAIN_FIXTURE, cache_dir=None)
    from crystal_ar_model.data import site_pieces

    ds = ds.subset(np.arange(0, 300, 5))
    return ds, torch.as_tensor(site_pieces(ds))


def test_minimum_image_edges_match_brute_force(fixture_crystals) -> None:  # noqa: ANN001
    """Every (receiver, primitive-cell atom) pair: the shortest displacement(s) over a wide translation search."""
    ds, piece = fixture_crystals
    frac = torch.as_tensor(ds.site_frac)
    ptr = torch.as_tensor(ds.site_ptr)
    sg, lat = torch.as_tensor(ds.space_group), torch.as_tensor(ds.lattice)
    e = minimum_image_edges(frac, piece, ptr, sg, lat)
    gg = group_geometry()
    checked = 0
    for c in range(len(ds)):
        a, b = int(ptr[c]), int(ptr[c + 1])
        amat = lattice_matrix(lat[c]).numpy()
        shifts = np.array(list(itertools.product(range(-3, 4), repeat=3))) @ gg.primitive_basis[sg[c] - 1].numpy()
        owner, pos = atom_images(frac[a:b], piece[a:b])
        for r in range(b - a):
            want = []
            for i in range(len(owner)):
                dc = (pos[i].numpy() - frac[a + r].numpy() + shifts) @ amat
                n = np.linalg.norm(dc, axis=1)
                if n.min() < 1e-8:
                    continue
                for k in np.nonzero(n <= n.min() + 1e-6)[0]:
                    want.append((a + int(owner[i]), dc[k]))
            sel = e.receiver == a + r
            got = list(zip(e.sender[sel].tolist(), e.vector[sel].numpy(), strict=True))
            assert len(got) == len(want), (ds.ids[c], r)
            for s, v in want:  # one-to-one: every expected displacement is found exactly once
                hits = [j for j, (s2, v2) in enumerate(got) if s2 == s and np.abs(v2 - v).max() < 1e-6]
                assert len(hits) == 1, (ds.ids[c], r, s, v)
            ties = e.ties[sel]
            checked += len(got)
    assert checked > 1000
    # edges are sorted by (crystal, last) and counted per prefix length
    key = e.crystal * 100 + e.last
    assert bool((key[1:] >= key[:-1]).all())
    assert bool((e.count_by_last[:, -1] == torch.bincount(e.crystal, minlength=len(ds))).all())
    assert int(ties.min()) >= 1


def test_wyckoff_noise_stays_on_position_inside_asu(fixture_crystals) -> None:  # noqa: ANN001
    import asu_geometry as ag

    ds, piece = fixture_crystals
    frac = torch.as_tensor(ds.site_frac)
    n = np.diff(ds.site_ptr)
    crystal = torch.repeat_interleave(torch.arange(len(ds)), torch.as_tensor(n))
    sg = torch.as_tensor(ds.space_group)[crystal]
    lat = torch.as_tensor(ds.lattice)[crystal]
    noisy = wyckoff_noise(frac, piece, sg, lat, 0.2, torch.Generator().manual_seed(0))
    assert bool(inside_asu(sg, noisy, 1e-9).all())
    moved = (noisy - frac).abs().max(-1).values > 1e-9
    dims = shape_table().dim[piece]
    assert not bool(moved[dims == 0].any()) and bool(moved[dims == 3].all())
    # each noisy site lies on its Wyckoff position: its orbit has the position's multiplicity
    for i in range(len(frac)):
        wp = ag.all_wyckoff_positions()[int(ds.site_wyckoff[i])]
        imgs = ag.space_group(wp.space_group).apply(noisy[i].numpy())
        imgs -= np.floor(imgs + 1e-9)
        d = np.abs(imgs[:, None] - imgs[None])
        d = np.minimum(d, 1 - d).max(-1)
        distinct = len({int(np.argmax(row < 1e-6)) for row in d})
        assert distinct == wp.multiplicity, (ds.ids[int(crystal[i])], wp.label)


def test_off_piece_sites_are_detected(fixture_crystals) -> None:  # noqa: ANN001
    from crystal_ar_model.data import CrystalTensors, off_piece_sites, site_pieces
    from crystal_ar_model.errors import DataError

    ds, _ = fixture_crystals
    assert len(off_piece_sites(ds)) == 0
    bad = ds.subset(np.arange(len(ds)))
    dims = shape_table().dim[torch.as_tensor(site_pieces(bad))]
    i = int(torch.nonzero(dims == 1)[0])  # a site on a segment, moved off its line
    bad.site_frac[i] += np.array([1e-3, 2e-3, 0.0])
    assert i in set(off_piece_sites(bad).tolist())
    t = CrystalTensors(bad, tuple(range(1, 95)), strict=False)
    assert len(t) == len(ds) - 1 and t.dropped[0][1].startswith("DataError")
    with pytest.raises(DataError):
        CrystalTensors(bad, tuple(range(1, 95)))
