r"""Fit the reference polygons of every polygon piece once, deterministically, and write them as package data.

For each polygon piece (the 245 polygons of the 2-D Wyckoff positions and the polygonal anchored sections of
the polar groups), the polygon is written in the orthonormal frame of its plane
(:func:`crystal_ar_model.piece_geometry.frame_polygon`) and :func:`polygon_flows.fit_reference_polygon`
places its reference polygon :math:`T_k` (minimum area-normalised distortion of the mean value map;
triangles get :math:`T_3` itself, the affine map). The fit is deterministic (fixed candidate order,
L-BFGS from a fixed start, float64), so rerunning this module reproduces the file.

Usage::

    python -m crystal_ar_model.build_references            # rewrite the shipped file
    python -m crystal_ar_model.build_references --check    # refit and compare with the shipped file
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .piece_geometry import REFERENCE_FILE, REFERENCE_FORMAT, frame_polygon, piece_key, polygon_pieces
from .shapes import piece_shapes

__all__ = ["fit_piece_reference", "fit_references", "main"]


def fit_piece_reference(piece: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(frame vertices (k, 2), reference (k, 2), distortion E)`` of one polygon piece, fitted now."""
    from polygon_flows import fit_reference_polygon, reference_distortion

    _, _, verts = frame_polygon(piece_shapes()[piece])
    v = torch.from_numpy(verts)
    ref = fit_reference_polygon(v)
    return verts, ref.numpy(), float(reference_distortion(v, ref))


def fit_references(pieces: Sequence[int] | None = None, progress: bool = True) -> dict[str, dict[str, object]]:
    """Fit the reference polygons of ``pieces`` (default: all polygon pieces); ``key -> entry`` (JSON-ready)."""
    ids = polygon_pieces() if pieces is None else list(pieces)
    out: dict[str, dict[str, object]] = {}
    for p in tqdm(ids, desc="reference polygons", disable=not progress, unit="polygon"):
        verts, ref, dist = fit_piece_reference(p)
        out[piece_key(p)] = {"vertices": verts.tolist(), "reference": ref.tolist(), "distortion": dist}
    return out


def _dumps(data: dict[str, object]) -> str:
    """JSON with one polygon per line (stable, diff-friendly); floats round-trip exactly (``repr``)."""
    polygons = data["polygons"]
    assert isinstance(polygons, dict)
    head = {k: v for k, v in data.items() if k != "polygons"}
    lines = [json.dumps(head, sort_keys=True)[:-1] + ', "polygons": {']
    items = sorted(polygons.items())
    for i, (key, entry) in enumerate(items):
        sep = "," if i + 1 < len(items) else ""
        lines.append(f"{json.dumps(key)}: {json.dumps(entry, sort_keys=True)}{sep}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def _default_path() -> Path:
    return Path(str(files("crystal_ar_model").joinpath(REFERENCE_FILE)))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: fit the reference polygons and write the package data file, or check the shipped file."""
    parser = argparse.ArgumentParser(
        prog="python -m crystal_ar_model.build_references",
        description="Fit the reference polygons of all polygon pieces (Wyckoff polygons and anchored sections) "
        "and write them as the package data file, or check the shipped file.",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"where to write (default: the package's {REFERENCE_FILE})"
    )
    parser.add_argument("--check", action="store_true", help="refit and compare with the shipped file; write nothing")
    parser.add_argument("--limit", type=int, default=None, help="only the first N polygon pieces (for a quick look)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be positive")
    torch.set_num_threads(1)
    ids = polygon_pieces()[: args.limit] if args.limit else polygon_pieces()
    fitted = fit_references(ids, progress=not args.quiet)
    if args.check:
        path = args.output or _default_path()
        if not path.is_file():
            print(f"{parser.prog}: error: FileNotFoundError: {path}", file=sys.stderr)
            return 2
        shipped = json.loads(path.read_text())["polygons"]
        worst, missing = 0.0, [k for k in fitted if k not in shipped]
        for key, entry in fitted.items():
            if key in shipped:
                diff = np.abs(np.asarray(entry["reference"]) - np.asarray(shipped[key]["reference"])).max()
                worst = max(worst, float(diff))
        print(
            f"checked {len(fitted)} pieces: {len(missing)} missing from {path}, "
            f"largest reference difference {worst:.3g}"
        )
        return 0 if not missing and worst <= 1e-9 else 1
    dist = np.array([float(e["distortion"]) for e in fitted.values()])  # type: ignore[arg-type]
    data = {
        "format_version": REFERENCE_FORMAT,
        "description": "Reference polygons T_k of the mean value map for every polygon piece, in the orthonormal "
        "frame of its plane (fractional coordinates); key = group:letter:n|a:shape index. Written by "
        "`python -m crystal_ar_model.build_references`.",
        "polygons": fitted,
    }
    path = args.output or _default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(data))
    print(
        f"wrote {len(fitted)} reference polygons to {path}; distortion E: median {np.median(dist):.4f}, "
        f"max {dist.max():.4f} (0 for triangles)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
