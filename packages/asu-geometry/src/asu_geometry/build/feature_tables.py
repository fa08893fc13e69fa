"""Write the shipped feature tables: ``data/space_group_features.npy.gz`` (230 x 62) and
``data/wyckoff_features.npy.gz`` (1,731 x 231).

Usage::

    python -m asu_geometry.build.feature_tables            # rewrite both files
    python -m asu_geometry.build.feature_tables --check    # exit 1 when one differs from the computation (> 1e-12)

:func:`asu_geometry.space_group_features` and :func:`asu_geometry.wyckoff_feature_matrix` read these files
instead of deriving the features of every group and Wyckoff position in each new process (about 1.5 s in
all). They are derived from the shipped space-group table by
:func:`asu_geometry.features.computed_space_group_feature_matrix` and
:func:`asu_geometry.features.computed_wyckoff_feature_matrix`; a test checks that the files and the
computation agree (within :data:`CHECK_TOLERANCE`; bit for bit on the machine that wrote them), so a change
to the features or the table must be followed by this command. Deterministic: ``gzip`` without a time stamp.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import features as F

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CHECK_TOLERANCE = 1e-12
"""The files hold the computation's bits on the machine that wrote them; another platform's ``sin``, ``cos``
or ``det`` may differ in the last bit, hence a tolerance rather than byte equality."""

TABLES: dict[str, tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]] = {
    F.SPACE_GROUP_TABLE: (F.computed_space_group_feature_matrix, F.shipped_space_group_feature_matrix),
    F.WYCKOFF_TABLE: (F.computed_wyckoff_feature_matrix, F.wyckoff_feature_matrix),
}
"""File name -> (the computation, the shipped matrix as the package reads it)."""


def table_bytes(matrix: np.ndarray) -> bytes:
    """A file's bytes for ``matrix``: ``numpy.save`` (float64, C order), gzipped with mtime 0."""
    raw = io.BytesIO()
    np.save(raw, np.ascontiguousarray(matrix, dtype=np.float64), allow_pickle=False)
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def difference(shipped: np.ndarray, computed: np.ndarray) -> float:
    """Largest absolute difference between two matrices (inf when their shapes differ)."""
    if shipped.shape != computed.shape:
        return float("inf")
    return float(np.max(np.abs(shipped - computed)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write or check the shipped feature tables.")
    ap.add_argument("--check", action="store_true", help="compare the shipped files with the computation only")
    args = ap.parse_args(argv)
    stale = 0
    for name, (compute, shipped) in TABLES.items():
        computed = compute()
        path = DATA_DIR / name
        if args.check:
            diff = difference(shipped(), computed)
            ok = diff <= CHECK_TOLERANCE
            stale += not ok
            print(f"{path}: largest difference from the computation {diff:.3g} "
                  f"({'up to date' if ok else 'stale: rerun without --check'})")
            continue
        data = table_bytes(computed)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data):,} bytes)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
