"""The interatomic potential behind ``--stability``: a small interface and its CHGNet implementation.

A :class:`Potential` gives single-point energies and relaxations. The shipped one is CHGNet (Deng et al.,
Nat. Mach. Intell. 5, 1031 (2023)), whose pretrained weights (0.3.0, trained on MPtrj with the MP2020
energy corrections) ship inside the ``chgnet`` wheel, so it runs offline. A user with network access
can plug in another universal potential by writing a class with the same three members and passing a
picklable zero-argument factory for it (:class:`crystal_eval.stability.StabilityConfig.potential`).

Relaxation: cell and positions together, ASE's ``FrechetCellFilter`` (Kaplan et al. 2022) driven by FIRE
(Bitzek et al., PRL 97, 170201 (2006)) until every force and stress component is below ``fmax``
(eV/Å) or ``max_steps`` steps are done; the time limit is the caller's (:mod:`crystal_eval.timelimit`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from pymatgen.core import Structure

from crystal_eval.io import InputError

EXTRA = "crystal-eval[stability]"


class MissingExtraError(InputError):
    """The optional dependencies of ``--stability`` are not installed."""


@dataclass
class RelaxOutcome:
    """A relaxed crystal: its structure, energy (eV/atom), FIRE steps taken and whether fmax was reached."""

    structure: Structure
    energy_per_atom: float
    steps: int
    converged: bool


@runtime_checkable
class Potential(Protocol):
    """What ``--stability`` needs from a potential."""

    label: str  # e.g. "CHGNet 0.3.0": printed with every stability figure

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        """Single-point energies (eV/atom) of the structures as given (NaN where it fails)."""

    def relax(self, structure: Structure, fmax: float, max_steps: int) -> RelaxOutcome:
        """Relax cell and positions (raises on failure)."""


def require_extra() -> None:
    """Raise :class:`MissingExtraError` naming the extra when chgnet or ase cannot be imported."""
    try:
        import ase  # noqa: F401
        import chgnet  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"--stability needs the optional extra: pip install '{EXTRA}' ({exc.name or exc} is not installed)"
        ) from exc


class CHGNetPotential:
    """CHGNet with its packaged weights (``model_name`` '0.3.0' by default), on the CPU, one torch thread.

    Energies are CHGNet's per-atom energies, which are on the scale of MP2020-corrected GGA/GGA+U total
    energies (the MPtrj training targets).
    """

    def __init__(self, model_name: str = "0.3.0", threads: int = 1) -> None:
        require_extra()
        import torch
        from chgnet.model import CHGNet

        if threads > 0:
            torch.set_num_threads(threads)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its size
            warnings.simplefilter("ignore")
            self.model = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
        self.version = str(self.model.version or model_name)
        self.label = f"CHGNet {self.version}"
        self._calculator = None

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        """Batched single points; a batch that fails is retried one structure at a time."""
        if not structures:
            return []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                preds = self.model.predict_structure(list(structures), task="e", batch_size=16)
            preds = [preds] if isinstance(preds, dict) else preds
            return [float(np.asarray(p["e"]).reshape(-1)[0]) for p in preds]
        except Exception:
            if len(structures) == 1:
                return [float("nan")]
            return [e for s in structures for e in self.energies_per_atom([s])]

    def relax(self, structure: Structure, fmax: float, max_steps: int) -> RelaxOutcome:
        """FIRE on cell and positions (``FrechetCellFilter``) with the CHGNet ASE calculator."""
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE
        from chgnet.model.dynamics import CHGNetCalculator
        from pymatgen.io.ase import AseAtomsAdaptor

        if self._calculator is None:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the device it runs on
                self._calculator = CHGNetCalculator(model=self.model, use_device="cpu", on_isolated_atoms="error")
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self._calculator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = FIRE(FrechetCellFilter(atoms), logfile=None)
            converged = bool(opt.run(fmax=fmax, steps=max_steps))
            energy = float(atoms.get_potential_energy()) / len(atoms)
        if not np.isfinite(energy):
            raise ValueError("the potential returned a non-finite energy")
        relaxed = AseAtomsAdaptor.get_structure(atoms)
        return RelaxOutcome(relaxed, energy, int(opt.nsteps), converged)
