"""Figures of the benchmark report that crystal-eval does not draw itself (matplotlib, Agg backend).

* :func:`wyckoff_dim_bars`: fraction of occupied orbits per Wyckoff dimension (0-3), samples against test;
* :func:`nll_curves`: train and validation NLL per epoch from a run's ``metrics.jsonl``, total and per factor;
* :func:`sample_grid`: the first crystals of a sample set drawn as pictures (ASE's ``plot_atoms``, conventional
  cell seen slightly off the c axis), titled with formula, space group and the model's log-likelihood.

The space-group, N_el and density histograms are crystal-eval's own (``crystal-eval --plots``), so the figures
show exactly the population of the table's metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wyckoff_dim_bars(samples_pct: Sequence[float], test_pct: Sequence[float], path: Path,
                     label: str = "samples") -> Path:
    """Grouped bars: percent of occupied orbits with 0, 1, 2, 3 free coordinates."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(samples_pct))
    ax.bar(x - 0.2, test_pct, width=0.4, label="test")
    ax.bar(x + 0.2, samples_pct, width=0.4, label=label)
    ax.set(xticks=x, xlabel="Wyckoff dimension (free coordinates of the orbit)", ylabel="% of occupied orbits",
           title="Wyckoff dimensions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def nll_curves(metrics: Sequence[Mapping[str, Any]], path: Path, selected: Mapping[str, int] | None = None) -> Path:
    """Train/validation NLL (nats per crystal) against the epoch: the total, then one panel per factor.
    ``selected``: unit name -> epoch of the composed checkpoint (drawn as vertical lines)."""
    plt = _plt()
    epochs = [m["epoch"] for m in metrics]
    keys = [k for k in metrics[0]["val"] if k.startswith("nll_")]
    keys = ["nll_total", *[k for k in keys if k != "nll_total"]]
    cols = 3
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, k in zip(axes.flat, keys, strict=False):
        ax.plot(epochs, [m["train"][k] for m in metrics], label="train")
        ax.plot(epochs, [m["val"][k] for m in metrics], label="validation")
        for ep in sorted(set((selected or {}).values())):
            ax.axvline(ep, color="grey", lw=0.6, ls=":")
        ax.set_title(k.removeprefix("nll_"), fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    axes.flat[0].set_ylabel("nats / crystal", fontsize=8)
    fig.suptitle("NLL per epoch (dotted: epochs the composed checkpoint takes its units from)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_grid(structures: Sequence[Any], titles: Sequence[str], path: Path, ncols: int = 4) -> Path:
    """The structures (pymatgen, conventional cells) as a grid of ASE pictures with the given titles."""
    from ase.visualize.plot import plot_atoms
    from pymatgen.io.ase import AseAtomsAdaptor

    plt = _plt()
    n = len(structures)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, s, title in zip(axes.flat, structures, titles, strict=False):
        atoms = AseAtomsAdaptor.get_atoms(s)
        plot_atoms(atoms, ax, radii=0.5, rotation="10x,-10y,0z", show_unit_cell=2)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
