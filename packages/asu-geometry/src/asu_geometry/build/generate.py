"""Generate ``asu_geometry/data/space_groups.json.gz``: exact ASUs and Wyckoff shapes of all 230 groups.

Usage::

    python -m asu_geometry.build.generate                 # rebuild the shipped table (about 1 min)
    python -m asu_geometry.build.generate --groups 62 227 --compare   # regenerate some groups and diff

Inputs: the exact ASUs of Grosse-Kunstleve et al. (2011) from cctbx's reference table
(``cctbx.sgtbx.direct_space_asu.reference_table``), and the operations and Wyckoff positions of
pyxtal ``Group(n)`` (ITA standard setting, origin choice 2, hexagonal axes for R groups; the two
agree operator by operator for all 230 groups, which :func:`check_settings` asserts). Output is
deterministic: same inputs, same bytes.
"""

from __future__ import annotations

# cctbx must be imported before scipy/torch: its bundled C++ libraries crash (segfault) when loaded
# after theirs. This module is the only one that imports cctbx, and it is never imported at run time.
import cctbx.sgtbx  # noqa: F401  isort: skip

import argparse
import gzip
import json
import sys
from fractions import Fraction
from importlib.metadata import version
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from .._rational import float_to_frac, fstr, vstr
from ..cuts import Cut, CutExpression, Node
from .intersect import (
    ExactAsu,
    Op,
    anchor_values,
    anchored_sections,
    interior_columns,
    points_0d,
    polygons_2d,
    segments_1d,
    stabilizer_order,
)

FORMAT_VERSION = 2  # 2: anchors of the polar groups and the anchored sections of their Wyckoff positions
DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "space_groups.json.gz"


def _boost_frac(v: Any) -> Fraction:
    if isinstance(v, int):
        return Fraction(v)
    return Fraction(int(v.numerator()), int(v.denominator()))


def _convert(node: Any) -> Node:
    from cctbx.sgtbx.direct_space_asu import cut_plane

    if isinstance(node, cut_plane.cut_expression):
        return CutExpression(node.op, _convert(node.lhs), _convert(node.rhs))
    nested = _convert(node.cut_expr) if node.cut_expr is not None else None
    return Cut(tuple(int(x) for x in node.n), _boost_frac(node.c), bool(node.inclusive), nested)  # type: ignore[arg-type]


def cctbx_asu(number: int) -> tuple[str, ExactAsu]:
    from cctbx.sgtbx.direct_space_asu import reference_table

    a = reference_table.get_asu(number)
    cuts = [_convert(c) for c in a.cuts]
    verts = [tuple(_boost_frac(x) for x in v) for v in a.shape_vertices()]
    return a.hall_symbol, ExactAsu(cuts, sorted(verts))  # type: ignore[arg-type]


def _op_from_symmop(op: Any) -> Op:
    rot = tuple(tuple(int(round(x)) for x in row) for row in op.rotation_matrix)
    t = tuple(float_to_frac(float(x)) for x in op.translation_vector)
    return rot, t  # type: ignore[return-value]


def _reduce(op: Op) -> Op:
    return op[0], tuple(x - (x.numerator // x.denominator) for x in op[1])  # type: ignore[return-value]


def check_settings(number: int, hall_symbol: str, ops: list[Op]) -> None:
    """Assert that cctbx's ASU setting and pyxtal's operations are the same group (as sets)."""
    from cctbx import sgtbx

    group = sgtbx.space_group_info("Hall: " + hall_symbol).group()
    theirs = set()
    for op in group.all_ops():
        r = op.r().as_double()
        t = op.t().as_double()
        rot = tuple(tuple(int(round(r[3 * i + j])) for j in range(3)) for i in range(3))
        theirs.add(_reduce((rot, tuple(float_to_frac(x) for x in t))))  # type: ignore[arg-type]
    ours = {_reduce(op) for op in ops}
    if ours != theirs:
        raise RuntimeError(f"space group {number}: cctbx ASU setting {hall_symbol!r} differs from pyxtal's")


def _parse_rep(wp: Any) -> tuple[list[list[int]], tuple[Fraction, ...]]:
    op = wp.ops[0]
    m = [[int(round(x)) for x in row] for row in op.rotation_matrix]
    t = tuple(float_to_frac(float(x)) for x in op.translation_vector)
    return m, t


def free_axes(ops: list[Op]) -> list[int]:
    """Coordinate axes fixed by every rotation (rows and columns of the identity): the free directions of a
    polar group in its standard setting; raises if the fixed subspace is not spanned by such axes."""
    import numpy as np

    rots = np.array([op[0] for op in ops], dtype=int)
    eye = np.eye(3, dtype=int)
    axes = [k for k in range(3) if np.all(rots[:, :, k] == eye[k]) and np.all(rots[:, k, :] == eye[k])]
    if len(axes) != 3 - np.linalg.matrix_rank(np.concatenate([r - eye for r in rots]).astype(float)):
        raise RuntimeError("the fixed subspace of the point group is not spanned by coordinate axes")
    return axes


def _shape_dicts(points: list[Any], segments: list[Any], isolated: list[Any], polygons: list[Any]
                 ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"dim": 0, "point": vstr(p)} for p in points]
    out += [{"dim": 1, "start": vstr(s.start), "end": vstr(s.end), "include_start": s.include_start,
             "include_end": s.include_end} for s in segments]
    out += [{"dim": 0, "point": vstr(x), "isolated": True} for x in isolated]
    out += [{"dim": 2, "origin": vstr(pg.origin), "basis": [vstr(b) for b in pg.basis],
             "chart": [[fstr(u), fstr(v)] for u, v in pg.chart]} for pg in polygons]
    return out


def build_group(number: int) -> dict[str, Any]:
    """Exact ASU, operations and every Wyckoff shape of one space group, as a JSON-ready dict."""
    from pyxtal.symmetry import Group

    g = Group(number)
    hall_symbol, asu = cctbx_asu(number)
    ops = [_reduce(_op_from_symmop(o)) for o in g.Wyckoff_positions[0].ops]
    check_settings(number, hall_symbol, ops)
    n_general = len(ops)
    axes = free_axes(ops)
    anchor = anchor_values(asu, axes) if axes else []
    wyckoffs = []
    for wp in sorted(g.Wyckoff_positions, key=lambda w: (w.multiplicity, w.letter.lower() != w.letter, w.letter)):
        wp.get_site_symmetry()
        m, t = _parse_rep(wp)
        dim = int(wp.get_dof())
        site_order = n_general // wp.multiplicity
        shapes: list[dict[str, Any]] = []
        if dim == 0:
            pts = points_0d(asu, ops, t)  # type: ignore[arg-type]
            if len(pts) != 1:
                raise RuntimeError(f"{number}{wp.letter}: {len(pts)} points in the exact ASU, expected 1")
            if stabilizer_order(ops, pts[0]) != site_order:
                raise RuntimeError(f"{number}{wp.letter}: stabilizer order mismatch")
            shapes.append({"dim": 0, "point": vstr(pts[0])})
        elif dim == 1:
            (d,) = interior_columns(m)
            segs, isolated = segments_1d(asu, ops, t, d, site_order)  # type: ignore[arg-type]
            for s in segs:
                shapes.append({"dim": 1, "start": vstr(s.start), "end": vstr(s.end),
                               "include_start": s.include_start, "include_end": s.include_end})
            for x in isolated:
                shapes.append({"dim": 0, "point": vstr(x), "isolated": True})
        elif dim == 2:
            for pg in polygons_2d(asu, ops, t, interior_columns(m)):  # type: ignore[arg-type]
                shapes.append({"dim": 2, "origin": vstr(pg.origin), "basis": [vstr(b) for b in pg.basis],
                               "chart": [[fstr(u), fstr(v)] for u, v in pg.chart]})
        else:
            shapes.append({"dim": 3})
        if not shapes:
            raise RuntimeError(f"{number}{wp.letter}: no shape in the exact ASU")
        entry = {
            "letter": wp.letter,
            "multiplicity": int(wp.multiplicity),
            "dim": dim,
            "site_symmetry": str(wp.site_symm),
            "ops": [o.as_xyz_str() for o in wp.ops],
            "shapes": shapes,
        }
        if axes:
            sections = anchored_sections(asu, ops, t, interior_columns(m), axes, anchor,  # type: ignore[arg-type]
                                         site_order)
            entry["anchored_shapes"] = _shape_dicts(*sections)
            if not entry["anchored_shapes"]:
                raise RuntimeError(f"{number}{wp.letter}: no anchored piece on the anchor {anchor}")
        wyckoffs.append(entry)
    return {
        "number": number,
        "symbol": g.symbol,
        "hall_number": int(g.hall_number),
        "hall_symbol": hall_symbol,
        "crystal_system": g.lattice_type,
        "point_group": g.point_group,
        "ops": [[*(x for row in r for x in row), *(int(v * 24) for v in tt)] for r, tt in ops],
        "asu": {"cuts": [c.to_dict() for c in asu.cuts], "vertices": [vstr(v) for v in asu.vertices]},
        "wyckoff": wyckoffs,
        **({"anchor": {"axes": axes, "values": vstr(anchor)}} if axes else {}),
    }


def build(groups: list[int], processes: int = 2) -> list[dict[str, Any]]:
    from tqdm import tqdm

    with Pool(processes) as pool:
        return list(tqdm(pool.imap(build_group, groups), total=len(groups), desc="space groups", unit="sg"))


def dump(groups: list[dict[str, Any]], path: Path) -> None:
    payload = {
        "format_version": FORMAT_VERSION,
        "generator": "asu_geometry.build.generate",
        "sources": {"cctbx-base": version("cctbx-base"), "pyxtal": version("pyxtal")},
        "groups": groups,
    }
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, nargs="*", help="space-group numbers (default: all 230)")
    ap.add_argument("--compare", action="store_true",
                    help="regenerate the groups and compare with the shipped table instead of writing")
    ap.add_argument("-o", "--output", type=Path, default=DATA_FILE)
    ap.add_argument("-j", "--processes", type=int, default=2)
    args = ap.parse_args(argv)
    numbers = args.groups or list(range(1, 231))
    built = build(numbers, args.processes)
    if args.compare:
        with gzip.open(DATA_FILE, "rt") as fh:
            shipped = {g["number"]: g for g in json.load(fh)["groups"]}
        bad = [g["number"] for g in built
               if json.dumps(g, sort_keys=True) != json.dumps(shipped[g["number"]], sort_keys=True)]
        if bad:
            print(f"MISMATCH with the shipped table for groups {bad}", file=sys.stderr)
            return 1
        print(f"{len(built)} groups identical to the shipped table")
        return 0
    if len(numbers) != 230:
        print("refusing to write a partial table; use --compare for a subset", file=sys.stderr)
        return 2
    dump(built, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
