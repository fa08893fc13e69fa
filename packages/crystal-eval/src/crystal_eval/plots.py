"""PNG plots of samples vs test set: space-group histogram, N_el histogram, density distribution; with
``--stability``, the E_hull distribution of the U.N. crystals against the reference crystals' and the
relaxation displacements."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _finish(fig: Any, ax: Any, path: Path) -> Path:
    """Legend, layout, save at 120 dpi, close; returns the path written."""
    import matplotlib.pyplot as plt

    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(plot_data: Mapping[str, Any], out_dir: str | Path, label: str = "samples") -> list[Path]:
    """Write ``space_groups.png``, ``num_elements.png`` and ``density.png`` into ``out_dir``, and
    ``stability.png`` when ``plot_data`` has a ``stability`` entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def norm_counts(values, lo, hi):
        v = np.asarray(list(values), dtype=int)
        c = np.bincount(v - lo, minlength=hi - lo + 1)[: hi - lo + 1].astype(float)
        return c / c.sum() if c.sum() else c

    fig, ax = plt.subplots(figsize=(12, 4))
    x = np.arange(1, 231)
    ax.bar(x - 0.2, norm_counts(plot_data["test_space_groups"], 1, 230), width=0.4, label="test")
    ax.bar(x + 0.2, norm_counts(plot_data["sample_space_groups"], 1, 230), width=0.4, label=label)
    ax.set(xlabel="space group number", ylabel="fraction", title="Space groups (symprec 0.1, 5 deg)")
    written.append(_finish(fig, ax, out / "space_groups.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(1, 11)
    ax.bar(x - 0.2, norm_counts(np.clip(plot_data["test_n_elements"], 1, 10), 1, 10), width=0.4, label="test")
    ax.bar(x + 0.2, norm_counts(np.clip(plot_data["sample_n_elements"], 1, 10), 1, 10), width=0.4, label=label)
    ax.set(xlabel="number of elements (10 = 10 or more)", ylabel="fraction", title="N_el")
    written.append(_finish(fig, ax, out / "num_elements.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    t = np.asarray(plot_data["test_density"], dtype=float)
    s = np.asarray(plot_data["sample_density"], dtype=float)
    t, s = t[np.isfinite(t)], s[np.isfinite(s)]
    hi = float(np.percentile(np.concatenate([t, s]), 99.5)) if len(t) + len(s) else 1.0
    bins = np.linspace(0, hi, 60)
    for values, name in ((t, "test"), (s, label)):
        if len(values):  # an empty sample set (nothing valid) gives an empty plot, not a warning
            ax.hist(values, bins=bins, density=True, alpha=0.5, label=name)
    ax.set(xlabel="density (g/cm^3)", ylabel="probability density", title="Density")
    written.append(_finish(fig, ax, out / "density.png"))
    if plot_data.get("stability") is not None:
        written.append(_stability_plot(plot_data["stability"], out / "stability.png", label))
    return written


def _stability_plot(data: Mapping[str, Any], path: Path, label: str) -> Path:
    """Left: fraction of crystals with E_hull <= x (the U.N. crystals, failures never counted, so the curve meets
    ``stable_rate`` at the threshold; the reference crystals against their own hull). Right: RMS displacement
    of the relaxations."""
    import matplotlib.pyplot as plt

    from crystal_eval.stability import e_hull_cdf

    e, ref = np.asarray(data["e_hull"], float), np.asarray(data["reference_e_hull"], float)
    threshold = float(data["threshold"])
    finite = [v[np.isfinite(v)] for v in (e, ref) if np.isfinite(v).any()]
    lo = min([0.0] + [float(v.min()) for v in finite])
    hi = max([2 * threshold] + [float(np.percentile(v, 98)) for v in finite])
    grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 400)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(grid, e_hull_cdf(e, grid), label=f"{label} (U.N., n={len(e)}; {int((~np.isfinite(e)).sum())} failed)")
    left.plot(grid, e_hull_cdf(ref, grid), label=f"reference crystals, own hull (n={len(ref)})", ls="--")
    for x, name in ((0.0, "0"), (threshold, f"{threshold:g} eV/atom")):
        left.axvline(x, color="grey", lw=0.8)
        left.text(x, 0.98, f" {name}", color="grey", fontsize=8, va="top", transform=left.get_xaxis_transform())
    left.set(xlabel="E_hull after relaxation (eV/atom)", ylabel="fraction with E_hull <= x", ylim=(0, 1.02),
             title=str(data["label"]))  # fmt: skip
    left.title.set_fontsize(9)
    rmsd = np.asarray(data["rmsd"], float)
    rmsd = rmsd[np.isfinite(rmsd)]
    if len(rmsd):
        right.hist(rmsd, bins=np.linspace(0.0, max(float(rmsd.max()), 1e-3), 40), label=f"{label} (n={len(rmsd)})")
    right.set(xlabel="RMS displacement of the relaxation (Å)", ylabel="crystals", title="Relaxation displacement")
    right.legend()
    return _finish(fig, left, path)
