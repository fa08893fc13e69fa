"""Matplotlib picture of an exact ASU with the Wyckoff shapes (special positions) drawn on it.

Only :func:`plot_asu` is public; matplotlib is imported lazily, with the non-interactive Agg backend
when :func:`save_asu_plot` writes a file.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .tables import space_group

#: Colours of the Wyckoff shapes by dimension (0-D points, 1-D segments, 2-D polygons).
DIM_COLOURS = {0: "#d62728", 1: "#1f77b4", 2: "#2ca02c"}
DIM_LABELS = {0: "0-D Wyckoff positions (points)", 1: "1-D Wyckoff positions (segments)",
              2: "2-D Wyckoff positions (polygons)"}
ISOLATED_LABEL = "isolated contact point of a 1-D position"
ASU_COLOUR = "#9e9e9e"


_TICK_STEPS = (Fraction(1, 24), Fraction(1, 12), Fraction(1, 8), Fraction(1, 6), Fraction(1, 4),
               Fraction(1, 3), Fraction(1, 2), Fraction(1))


def _fraction_ticks(lo: float, hi: float, max_ticks: int = 5) -> list[float]:
    """Ticks at multiples of a simple fraction (1/24 ... 1) inside [lo, hi], at most ``max_ticks``."""
    for step in _TICK_STEPS:
        first = math.ceil(lo / step - 1e-9)
        last = math.floor(hi / step + 1e-9)
        if last - first + 1 <= max_ticks:
            return [float(k * step) for k in range(first, last + 1)]
    return [lo, hi]


def _fraction_label(x: float) -> str:
    f = Fraction(x).limit_denominator(24)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def plot_asu(sg: int, ax: Any = None, labels: bool = True, elev: float = 22.0, azim: float = -58.0) -> Any:
    """Draw the exact ASU of ``sg`` (translucent facets) and its special positions on a 3-D axes.

    Points (0-D) are markers, segments (1-D) lines and polygons (2-D) translucent patches, coloured
    by dimension; isolated contact points of 1-D positions are drawn as hollow markers of the 1-D
    colour. With ``labels`` each special position is annotated with its Wyckoff label (e.g. ``4c``)
    at the centre of its first piece. Coordinates are fractional. Returns the axes.
    """
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    g = space_group(sg)
    if ax is None:
        fig = plt.figure(figsize=(7.5, 6.5))
        ax = fig.add_subplot(projection="3d")
    faces = [np.array([[float(c) for c in v] for v in face]) for face in g.asu.faces]
    ax.add_collection3d(Poly3DCollection(faces, facecolors=ASU_COLOUR, edgecolors="#424242", linewidths=0.8,
                                         alpha=0.12, label="exact asymmetric unit"))
    seen_dims: set[int] = set()
    for wp in g.wyckoff_positions:
        if wp.dim == 3:
            continue
        colour = DIM_COLOURS[wp.dim]
        for piece, shape in enumerate(wp.shapes):
            key = -1 if shape.isolated else wp.dim
            lab = (ISOLATED_LABEL if shape.isolated else DIM_LABELS[wp.dim]) if key not in seen_dims else None
            seen_dims.add(key)
            v = shape.vertices_array
            if shape.dim == 0:
                hollow = shape.isolated
                ax.scatter(*v.T, s=46, marker="o", depthshade=False, label=lab, zorder=5,
                           facecolors="none" if hollow else colour, edgecolors=colour if hollow else "black",
                           linewidths=1.2 if hollow else 0.6)
            elif shape.dim == 1:
                ax.plot(*v.T, color=colour, linewidth=2.6, label=lab, solid_capstyle="round", zorder=4)
            else:
                patch = Poly3DCollection([v], facecolors=colour, edgecolors=colour, linewidths=1.0,
                                         alpha=0.35, label=lab)
                ax.add_collection3d(patch)
            if labels and piece == 0:
                c = v.mean(axis=0)
                ax.text(*c, f" {wp.label}", fontsize=8, color="black", zorder=10)
    verts = g.asu.vertices_array
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    pad = 0.04 * max(float((hi - lo).max()), 1e-9)
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_zlim(lo[2] - pad, hi[2] + pad)
    ax.set_box_aspect(tuple(np.maximum(hi - lo, 0.3 * (hi - lo).max()) + 2 * pad))
    for axis, a, b in zip((ax.xaxis, ax.yaxis, ax.zaxis), lo - pad, hi + pad, strict=True):
        ticks = _fraction_ticks(float(a), float(b))
        axis.set_ticks(ticks)
        axis.set_ticklabels([_fraction_label(t) for t in ticks])
    ax.set_xlabel("x (fractional)")
    ax.set_ylabel("y (fractional)")
    ax.set_zlabel("z (fractional)")
    ax.view_init(elev=elev, azim=azim)
    ax.set_title(f"{g.symbol} (No. {g.number}, Hall {g.hall_symbol}, |G/T| = {g.order}):\n"
                 "exact asymmetric unit and Wyckoff shapes", pad=10, fontsize=11)
    handles, names = ax.get_legend_handles_labels()
    if names:
        ax.legend(handles, names, loc="upper left", fontsize=8, framealpha=0.85)
    return ax


def save_asu_plot(sg: int, path: str | Path, dpi: int = 150, **kwargs: Any) -> Path:
    """Render :func:`plot_asu` with the Agg backend and write it to ``path`` (format from the suffix).

    Raises ``ValueError`` for a ``dpi`` that is not positive or a suffix matplotlib cannot write, before any
    drawing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    space_group(sg)  # validate before opening a figure
    path = Path(path)
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()  # no figure needed (and none of the caller's closed)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ValueError(f"{path}: cannot write a picture with suffix {path.suffix or '(none)'!r}; use one of "
                         + ", ".join(f".{k}" for k in sorted(formats)))
    fig = plt.figure(figsize=(7.5, 6.5))
    ax = fig.add_subplot(projection="3d")
    try:
        plot_asu(sg, ax=ax, **kwargs)
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)
    return path
