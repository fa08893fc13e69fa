"""PNG plots of samples vs test set: space-group histogram, N_el histogram, density distribution."""

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
    """Write ``space_groups.png``, ``num_elements.png`` and ``density.png`` into ``out_dir``."""
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
    return written
