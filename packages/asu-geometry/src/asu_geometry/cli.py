"""The ``asu-geometry`` command line: ``show``, ``canonicalize`` and ``plot``.

Examples::

    asu-geometry show 192                      # the exact ASU and every Wyckoff shape of P6/mcc
    asu-geometry canonicalize NaCl.cif         # the AsuCrystal JSON of a structure
    asu-geometry plot 192 -o asu192.png        # a 3-D picture of the ASU and its special positions

Errors of the library (:class:`~asu_geometry.errors.AsuGeometryError`: an invalid space group, an
unreadable CIF, a disordered structure, symmetry not found) print one line on stderr and exit with
status 2, like argparse usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._rational import fstr
from .errors import AsuGeometryError
from .tables import space_group

PROG = "asu-geometry"
EXIT_ERROR = 2


def _fmt(v: Sequence[object]) -> str:
    return "(" + ", ".join(fstr(c) for c in v) + ")"  # type: ignore[arg-type]


def format_space_group(sg: int) -> str:
    """The text that ``asu-geometry show SG`` prints (exact rationals throughout)."""
    g = space_group(sg)
    a = g.asu
    pg_order = len({r.tobytes() for r in g.rotations})
    lines = [
        f"Space group {g.number}: {g.symbol}",
        f"  Hall symbol     {g.hall_symbol}  (Hall number {g.hall_number})",
        f"  crystal system  {g.crystal_system}  (point group {g.point_group}, order {pg_order})",
        f"  |G/T|           {g.order}  (general multiplicity in the conventional cell)",
        "",
        f"Asymmetric unit: {len(a.cuts)} cut planes, {len(a.vertices)} vertices, volume {fstr(a.volume)}",
        "  cut planes (inward half-spaces; '>' excludes the plane, [on plane: ...] decides ties on it):",
    ]
    lines += [f"    {c}" for c in a.describe()]
    lines.append("  vertices of the closure:")
    lines += [f"    {_fmt(v)}" for v in a.vertices]
    lines += ["", f"Wyckoff positions ({len(g.wyckoff_positions)}):",
              f"  {'label':<6} {'site sym.':<10} {'dim':<4} {'coordinates':<22} shapes in the ASU"]
    for wp in g.wyckoff_positions:
        head = f"  {wp.label:<6} {wp.site_symmetry:<10} {wp.dim:<4} {'(' + wp.ops[0] + ')':<22}"
        for i, shape in enumerate(wp.shapes):
            lines.append((head if i == 0 else " " * len(head)) + f" {shape}")
    if g.is_polar:
        dirs = ", ".join(_fmt(d) for d in g.free_directions)
        lines += ["", f"Polar group: free directions {dirs}; anchor {g.anchor_description} "
                      "(site 0 of the normal form lies there)",
                  f"  {'label':<6} anchored shapes (in the ASU and on the anchor)"]
        for wp in g.wyckoff_positions:
            for i, shape in enumerate(wp.anchored_shapes):
                lines.append(f"  {wp.label if i == 0 else '':<6} {shape}")
    return "\n".join(lines)


def _cmd_show(args: argparse.Namespace) -> int:
    print(format_space_group(args.space_group))
    return 0


def _cmd_canonicalize(args: argparse.Namespace) -> int:
    from .crystal import read_structure, to_asu

    structure = read_structure(args.file)
    crystal = to_asu(structure, symprec=args.symprec, angle_tolerance=args.angle_tolerance, canonical=not args.raw)
    print(crystal.to_json(indent=2))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plot import save_asu_plot

    out = Path(args.output) if args.output else Path(f"asu{args.space_group}.png")
    try:
        save_asu_plot(args.space_group, out, dpi=args.dpi, labels=not args.no_labels,
                      elev=args.elev, azim=args.azim)
    except AsuGeometryError:
        raise  # an invalid group: reported by main
    except ValueError as exc:  # an unknown picture format or a bad dpi
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {out}")
    return 0


def _space_group_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"space group must be an integer 1..230, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Exact asymmetric units and Wyckoff shapes of the 230 space groups, "
                    "and a crystal <-> ASU codec.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"asu-geometry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("show", help="print the exact ASU and every Wyckoff shape of a space group",
                       description="Print the group header, the ASU cut planes and vertices, and every "
                                   "Wyckoff position with its shapes inside the exact ASU (exact rationals).")
    p.add_argument("space_group", type=_space_group_arg, metavar="SG", help="space-group number 1..230")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("canonicalize", help="print the AsuCrystal JSON (normal form) of a structure file",
                       description="Read a CIF (or any structure file pymatgen reads), find its space group "
                                   "with spglib and print the normal form of its asymmetric-unit "
                                   "representation as JSON: one description per crystal, whatever the cell, "
                                   "origin, frame or site order of the file.")
    p.add_argument("file", metavar="FILE", help="structure file, e.g. a CIF")
    p.add_argument("--symprec", type=_positive_float, default=0.1,
                   help="spglib distance tolerance in Angstrom (default 0.1)")
    p.add_argument("--angle-tolerance", type=_positive_float, default=5.0,
                   help="spglib angle tolerance in degrees (default 5)")
    p.add_argument("--raw", action="store_true",
                   help="spglib's standardised description instead of the normal form (debugging)")
    p.set_defaults(func=_cmd_canonicalize)

    p = sub.add_parser("plot", help="draw the ASU and its special positions (PNG, PDF, SVG)",
                       description="3-D matplotlib picture of the exact ASU with its special positions, "
                                   "coloured by dimension: points, segments and polygons.")
    p.add_argument("space_group", type=_space_group_arg, metavar="SG", help="space-group number 1..230")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default asu<SG>.png)")
    p.add_argument("--dpi", type=_positive_int, default=150, help="resolution (default 150)")
    p.add_argument("--elev", type=float, default=22.0, help="view elevation in degrees (default 22)")
    p.add_argument("--azim", type=float, default=-58.0, help="view azimuth in degrees (default -58)")
    p.add_argument("--no-labels", action="store_true", help="do not annotate Wyckoff labels")
    p.set_defaults(func=_cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 success, 2 usage or input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AsuGeometryError as exc:
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
