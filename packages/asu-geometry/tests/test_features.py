"""Tests of the space-group (62) and Wyckoff-position (231) feature vectors."""

from __future__ import annotations

import asu_geometry as ag
import numpy as np
import pytest
from asu_geometry import features as F

SG = F.space_group_feature_names()
WY = F.wyckoff_feature_names()

# The 11 enantiomorphic pairs of space-group types.
ENANTIOMORPHS = [(76, 78), (91, 95), (92, 96), (144, 145), (151, 153), (152, 154), (169, 170), (171, 172),
                 (178, 179), (180, 181), (212, 213)]


def sgf(n: int) -> dict[str, float]:
    return dict(zip(SG, F.space_group_features(n), strict=True))


def screws(n: int) -> set[str]:
    return {k.split("=")[1] for k, v in sgf(n).items() if k.startswith("screw=") and v > 0}


def glides(n: int) -> set[str]:
    return {k.split("=")[1] for k, v in sgf(n).items() if k.startswith("glide=") and v > 0}


@pytest.fixture(scope="module")
def sg_matrix() -> np.ndarray:
    return F.space_group_feature_matrix()


@pytest.fixture(scope="module")
def wy_matrix() -> np.ndarray:
    return ag.wyckoff_feature_matrix()


# ------------------------------------------------------------------------------------------ space groups

def test_space_group_shapes_names_and_ranges(sg_matrix: np.ndarray) -> None:
    assert len(SG) == ag.SPACE_GROUP_FEATURE_DIM == 62 and len(set(SG)) == 62
    assert sg_matrix.shape == (230, 62) and sg_matrix.dtype == np.float64
    assert np.isfinite(sg_matrix).all()
    assert sg_matrix.min() >= 0.0 and sg_matrix.max() <= 1.0
    v = ag.space_group_features(62)
    assert v.shape == (62,) and v.dtype == np.float64
    assert not v.flags.writeable
    np.testing.assert_array_equal(ag.space_group_features(ag.space_group(62)), v)


def test_one_hot_blocks_and_counts(sg_matrix: np.ndarray) -> None:
    for lo, hi in ((0, 7), (7, 13), (13, 45)):
        np.testing.assert_array_equal(sg_matrix[:, lo:hi].sum(1), 1.0)
    cent = dict(zip(F.CENTRINGS, sg_matrix[:, 0:7].sum(0).astype(int), strict=True))
    assert cent == {"P": 149, "A": 4, "B": 0, "C": 16, "I": 38, "F": 16, "R": 7}
    fam = dict(zip(F.CRYSTAL_FAMILIES, sg_matrix[:, 7:13].sum(0).astype(int), strict=True))
    assert fam == {"triclinic": 2, "monoclinic": 13, "orthorhombic": 59, "tetragonal": 68, "hexagonal": 52,
                   "cubic": 36}
    assert (sg_matrix[:, 13:45].sum(0) > 0).all()  # every one of the 32 classes occurs
    assert int(sg_matrix[:, 45].sum()) == 65  # Sohncke groups
    assert int(sg_matrix[:, 46].sum()) == 92  # centrosymmetric groups
    assert int(sg_matrix[:, 47].sum()) == 73  # symmorphic groups


def test_point_group_from_operations_matches_table() -> None:
    for n in range(1, 231):
        g = ag.space_group(n)
        assert F.point_group_of(list(g.rotations)) == g.point_group
        assert sgf(n)[f"point_group={g.point_group}"] == 1.0


def test_point_group_rejects_non_groups() -> None:
    with pytest.raises(ValueError):
        F.point_group_of([np.eye(3, dtype=int), -np.eye(3, dtype=int), np.diag([1, 1, -1])])
    with pytest.raises(ValueError):
        F.rotation_type(np.diag([2, 1, 1]))


def test_p21c_p2c_p2m() -> None:
    assert screws(14) == {"2_1"} and glides(14) == {"axial"}  # P2_1/c
    assert screws(13) == set() and glides(13) == {"axial"}  # P2/c
    assert screws(10) == set() and glides(10) == set()  # P2/m
    assert screws(12) == set() and glides(12) == set()  # C2/m: mirrors win over the centring's a glides
    a, b = F.space_group_features(14), F.space_group_features(13)
    differ = {SG[i] for i in np.flatnonzero(a != b)}
    assert differ == {"screw=2_1"}
    f = sgf(14)
    assert f["centring=P"] == f["family=monoclinic"] == f["point_group=2/m"] == f["centrosymmetric"] == 1.0
    assert f["chiral"] == f["symmorphic"] == 0.0


@pytest.mark.parametrize(("n", "want_screws", "want_glides"), [
    (1, set(), set()),
    (4, {"2_1"}, set()),                       # P2_1
    (19, {"2_1"}, set()),                      # P2_12_12_1
    (62, {"2_1"}, {"axial", "n"}),             # Pnma
    (64, {"2_1"}, {"axial"}),                  # Cmce (c and e)
    (70, set(), {"d"}),                        # Fddd
    (76, {"2_1", "4_1"}, set()),               # P4_1
    (78, {"2_1", "4_3"}, set()),               # P4_3
    (77, {"4_2"}, set()),                      # P4_2
    (80, {"4_1", "4_3"}, set()),               # I4_1: centring gives both
    (141, {"4_1", "4_3"}, {"axial", "d"}),     # I4_1/amd
    (144, {"3_1"}, set()),                     # P3_1
    (145, {"3_2"}, set()),                     # P3_2
    (161, set(), {"axial"}),                   # R3c
    (166, set(), set()),                       # R-3m
    (169, {"2_1", "3_1", "6_1"}, set()),       # P6_1
    (171, {"3_2", "6_2"}, set()),              # P6_2
    (173, {"2_1", "6_3"}, set()),              # P6_3
    (192, set(), {"axial"}),                   # P6/mcc
    (194, {"2_1", "6_3"}, {"axial"}),          # P6_3/mmc
    (198, {"2_1"}, set()),                     # P2_13
    (221, set(), set()),                       # Pm-3m
    (225, set(), set()),                       # Fm-3m
    (227, {"4_1", "4_3"}, {"d"}),              # Fd-3m
    (230, {"4_1", "4_3"}, {"axial", "d"}),     # Ia-3d
])
def test_screw_and_glide_content(n: int, want_screws: set[str], want_glides: set[str]) -> None:
    assert screws(n) == want_screws
    assert glides(n) == want_glides


def test_screw_fractions_count_directions() -> None:
    assert sgf(16)["screw=2_1"] == 0.0
    assert sgf(17)["screw=2_1"] == pytest.approx(1 / 3)  # P222_1
    assert sgf(18)["screw=2_1"] == pytest.approx(2 / 3)  # P2_12_12
    assert sgf(19)["screw=2_1"] == 1.0  # P2_12_12_1
    # P6/mcc: 7 reflection orientations (m perpendicular to c, six vertical c glides)
    assert sgf(192)["glide=axial"] == pytest.approx(6 / 7)
    el = F.symmetry_elements(192)
    # linear parts are counted, so R and R^-1 of a 3- or 6-fold axis count twice
    assert el.n_reflections == 7 and el.n_rotations == {2: 7, 3: 2, 4: 0, 6: 2}


def test_enantiomorphic_pairs_differ() -> None:
    for a, b in ENANTIOMORPHS:
        fa, fb = F.space_group_features(a), F.space_group_features(b)
        assert sgf(a)["chiral"] == sgf(b)["chiral"] == 1.0
        differ = {SG[i] for i in np.flatnonzero(fa != fb)}
        assert differ and all(d.startswith("screw=") for d in differ), (a, b, differ)


def test_documented_collisions() -> None:
    coll = F.space_group_feature_collisions()
    assert (149, 150) in coll and (151, 152) in coll and (112, 116, 117) in coll
    assert len(coll) == 21
    assert 230 - sum(len(c) - 1 for c in coll) == 208
    for c in coll:  # colliding groups always share centring, point group and element content
        assert len({ag.space_group(n).point_group for n in c}) == 1
    assert (23, 24) not in coll and (197, 199) not in coll  # the symmorphic bit separates them


def test_deterministic_after_cache_clear(sg_matrix: np.ndarray) -> None:
    F._space_group_features.cache_clear()
    F.symmetry_elements.cache_clear()
    np.testing.assert_array_equal(F.space_group_feature_matrix(), sg_matrix)


def test_invalid_group() -> None:
    with pytest.raises(ag.InvalidSpaceGroupError):
        ag.space_group_features(0)
    with pytest.raises(ag.InvalidSpaceGroupError):
        ag.wyckoff_features(231, "a")
    with pytest.raises(ag.UnknownWyckoffPositionError):
        ag.wyckoff_features(62, "z")


# ----------------------------------------------------------------------------------------------- Wyckoff

def test_wyckoff_matrix_shape_and_rows(wy_matrix: np.ndarray) -> None:
    wps = ag.all_wyckoff_positions()
    assert len(WY) == ag.WYCKOFF_FEATURE_DIM == 231 and len(set(WY)) == 231
    assert wy_matrix.shape == (1731, 231) and wy_matrix.dtype == np.float64
    assert np.isfinite(wy_matrix).all()
    assert not wy_matrix.flags.writeable
    for i in (0, 1, 500, 1000, 1730):
        wp = wps[i]
        np.testing.assert_array_equal(ag.wyckoff_features(wp.space_group, wp.letter), wy_matrix[wp.index])


def test_wyckoff_blocks_decode(wy_matrix: np.ndarray) -> None:
    for wp in ag.all_wyckoff_positions():
        row = dict(zip(WY, wy_matrix[wp.index], strict=True))
        assert round(np.exp(row["ln(mult)/ln(192)"] * np.log(192))) == wp.multiplicity
        assert row["mult/192"] * 192 == pytest.approx(wp.multiplicity)
        assert row["1/site_order"] == pytest.approx(1 / wp.stabilizer_order)
        assert row[f"dim={wp.dim}"] == 1.0 and sum(row[f"dim={d}"] for d in range(4)) == 1.0
        np.testing.assert_array_equal(wy_matrix[wp.index, 61:123], F.space_group_features(wp.space_group))
        assert sum(row[f"pieces={k}"] for k in (1, 2, 3)) + row["pieces>=4"] == 1.0


# oriented site-symmetry symbols whose point-group class has another standard name
_SYNONYMS = {"2mm": "mm2", "m2m": "mm2", "-4m2": "-42m", "-6m2": "-62m"}


def test_site_point_group_matches_site_symmetry_symbols(wy_matrix: np.ndarray) -> None:
    """The class computed from the operations agrees with pyxtal's oriented site-symmetry symbols."""
    pg = wy_matrix[:, 8:40]
    np.testing.assert_array_equal(pg.sum(1), 1.0)
    for wp in ag.all_wyckoff_positions():
        sym = wp.site_symmetry.replace(".", "")
        want = _SYNONYMS.get(sym, sym)
        assert F.POINT_GROUPS[int(np.argmax(pg[wp.index]))] == want, (wp, want)
        if wp.dim == 3:
            assert want == "1"


def test_site_element_counts() -> None:
    row = dict(zip(WY, ag.wyckoff_features(227, "a"), strict=True))  # 8a, -43m: 3 x 2, 8 x 3, 6 x -4, 6 x m
    got = {t: round(row[f"site_count={t}"] * 24) for t in F.ELEMENT_TYPES}
    assert got == {"2": 3, "3": 8, "4": 0, "6": 0, "-1": 0, "m": 6, "-3": 0, "-4": 6, "-6": 0}


def test_shape_geometry_on_known_positions() -> None:
    # 62 Pnma 4a is the point (0, 0, 0): every sine 0, every cosine 1
    row = ag.wyckoff_features(62, "a")
    np.testing.assert_allclose(row[135:183:2], 0.0, atol=1e-12)
    np.testing.assert_allclose(row[136:183:2], 1.0)
    np.testing.assert_array_equal(row[135:183], row[183:231])  # one point: vertices == centre of mass
    # 62 4c is the rectangle y = 1/4, 0 <= x <= 1/2, 0 <= z <= 1 (notes, 5.1)
    r = dict(zip(WY, ag.wyckoff_features(62, "c"), strict=True))
    assert (r["com_mean_x"], r["com_mean_y"], r["com_mean_z"]) == pytest.approx((0.25, 0.25, 0.5))
    assert r["mean_vertices_per_piece/10"] == pytest.approx(0.4) and r["pieces=1"] == 1.0
    assert r["site_point_group=m"] == 1.0 and r["dim=2"] == 1.0
    # P1's ASU is the unit cube: centre (1/2, 1/2, 1/2)
    r = dict(zip(WY, ag.wyckoff_features(1, "a"), strict=True))
    assert (r["com_mean_x"], r["com_mean_y"], r["com_mean_z"]) == pytest.approx((0.5, 0.5, 0.5))
    # 139 I4/mmm 4e (0, 0, z) has two segments; 91 4c has an isolated contact point (notes, 5.1 and 5.4)
    assert dict(zip(WY, ag.wyckoff_features(139, "e"), strict=True))["pieces=2"] == 1.0
    assert dict(zip(WY, ag.wyckoff_features(91, "c"), strict=True))["has_isolated_point"] == 1.0
    assert dict(zip(WY, ag.wyckoff_features(62, "c"), strict=True))["has_isolated_point"] == 0.0


def test_centroids_of_uniform_measure() -> None:
    # a triangle's centroid is the mean of its vertices; the ASU interior's is its volume centroid
    g = ag.space_group(227)
    for wp in g.wyckoff_positions:
        for sh in wp.shapes:
            c = F.shape_centroid(sh, g.asu.faces)
            if sh.dim == 2 and len(sh.vertices) == 3:
                np.testing.assert_allclose(c, sh.vertices_array.mean(0))
            lo, hi = g.asu.vertices_array.min(0) - 1e-12, g.asu.vertices_array.max(0) + 1e-12
            assert np.all(c >= lo) and np.all(c <= hi)
    with pytest.raises(ValueError):
        F.shape_centroid(g.wyckoff_positions[-1].shapes[0])


def test_wyckoff_rows_distinct_except_in_colliding_groups(wy_matrix: np.ndarray) -> None:
    wps = ag.all_wyckoff_positions()
    colliding = {n: set(c) for c in F.space_group_feature_collisions() for n in c}
    by_row: dict[bytes, list[int]] = {}
    for i, row in enumerate(wy_matrix):
        by_row.setdefault(row.tobytes(), []).append(i)
    assert len(by_row) > 1650
    for idx in by_row.values():
        groups = {wps[i].space_group for i in idx}
        assert len(groups) == len(idx), "two positions of one group share a feature vector"
        if len(idx) > 1:
            first = next(iter(groups))
            assert groups <= colliding.get(first, {first}), groups
    # within a group, special positions with the same site symmetry are told apart by their geometry
    a, b = ag.wyckoff_features(62, "a"), ag.wyckoff_features(62, "b")
    assert np.any(a[123:] != b[123:]) and np.array_equal(a[:49], b[:49])


def test_wyckoff_deterministic_after_cache_clear(wy_matrix: np.ndarray) -> None:
    before = wy_matrix.copy()
    F._wyckoff_rows.cache_clear()
    F._wyckoff_matrix.cache_clear()
    np.testing.assert_array_equal(ag.wyckoff_feature_matrix(), before)
    np.testing.assert_array_equal(F.computed_wyckoff_feature_matrix(), F.computed_wyckoff_feature_matrix())


def test_shipped_feature_tables_are_the_computation(wy_matrix: np.ndarray) -> None:
    """The shipped matrices are what this module computes (rebuild: python -m asu_geometry.build.feature_tables)."""
    from asu_geometry.build import feature_tables as T

    sg_computed, wy_computed = F.computed_space_group_feature_matrix(), F.computed_wyckoff_feature_matrix()
    assert sg_computed.shape == (230, 62) and wy_computed.shape == wy_matrix.shape == (1731, 231)
    assert T.difference(F.shipped_space_group_feature_matrix(), sg_computed) <= T.CHECK_TOLERANCE
    assert T.difference(wy_matrix, wy_computed) <= T.CHECK_TOLERANCE
    for n in (1, 62, 227):  # what the package hands out is the shipped table
        np.testing.assert_allclose(ag.space_group_features(n), sg_computed[n - 1], rtol=0, atol=1e-12)
        assert not ag.space_group_features(n).flags.writeable
    matrix = ag.space_group_feature_matrix()
    assert matrix.flags.writeable and not np.shares_memory(matrix, F.shipped_space_group_feature_matrix())
    for i in (0, 777, 1730):
        wp = ag.all_wyckoff_positions()[i]
        got = ag.wyckoff_features(wp.space_group, wp.letter)
        np.testing.assert_allclose(got, wy_computed[i], rtol=0, atol=1e-12)
        assert not got.flags.writeable
    # the file format round-trips the bits, its bytes are deterministic, and a stale table is caught
    import gzip
    import io

    data = T.table_bytes(wy_computed)
    np.testing.assert_array_equal(np.load(io.BytesIO(gzip.decompress(data))), wy_computed)
    assert data == T.table_bytes(wy_computed)
    assert T.difference(wy_matrix, wy_computed[:-1]) == float("inf")
    bumped = sg_computed.copy()
    bumped[5, 7] += 1e-9
    assert T.difference(F.shipped_space_group_feature_matrix(), bumped) > T.CHECK_TOLERANCE
    assert T.main(["--check"]) == 0
