"""Space-group features, read from :mod:`asu_geometry` once and turned into a matrix.

The 62 features per group are defined by ``asu_geometry.space_group_features`` (crystal system, centring,
point-group and Wyckoff-count descriptors); this module only stacks them for the 230 groups, so that the
model reads the exact tables in one place.
"""

from __future__ import annotations

from functools import cache

import numpy as np

NUM_SPACE_GROUPS = 230
FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")


@cache
def space_group_feature_matrix() -> np.ndarray:
    """Shape (230, F) float32 (F = 62): row ``n - 1`` is ``asu_geometry.space_group_features(n)``."""
    import asu_geometry as ag

    fn = getattr(ag, "space_group_features", None)
    if fn is None:  # exported from the package root in later asu-geometry versions
        from asu_geometry.features import space_group_features as fn
    rows = [np.asarray(fn(n), dtype=np.float64) for n in range(1, NUM_SPACE_GROUPS + 1)]
    mat = np.stack(rows)
    if not np.all(np.isfinite(mat)):
        raise ValueError("asu_geometry.space_group_features returned non-finite values")
    return mat.astype(np.float32)


@cache
def family_index_table() -> np.ndarray:
    """Shape (230,) int64: index into :data:`FAMILIES` of each group's crystal family."""
    import asu_geometry as ag

    return np.array([FAMILIES.index(ag.space_group(n).crystal_family) for n in range(1, 231)], dtype=np.int64)
