"""The interatomic potential behind ``--stability``: a small interface and its CHGNet implementation.

A :class:`Potential` gives single-point energies and relaxations. The shipped one is CHGNet (Deng et al.,
Nat. Mach. Intell. 5, 1031 (2023)), whose pretrained weights (0.3.0, trained on MPtrj with the MP2020
energy corrections) ship inside the ``chgnet`` wheel, so it runs offline. A user with network access
can plug in another universal potential by writing a class with the same three members and passing a
picklable zero-argument factory for it (:class:`crystal_eval.stability.StabilityConfig.potential`). Any ASE
calculator serves as well (:class:`AseCalculatorPotential`), and :func:`load_potential` turns a
``module:factory`` string (the CLI's ``--potential``) into either.

Relaxation: cell and positions together, FIRE (Bitzek et al., PRL 97, 170201 (2006)) on the
log-deformation cell coordinates of ASE's ``FrechetCellFilter`` until every row of the generalised force
(atoms and cell) has a norm below ``fmax`` (eV/Å) or ``max_steps`` steps are done. Two implementations
of the same optimiser: :meth:`CHGNetPotential.relax_batch` relaxes many crystals together, one batched
CHGNet call per step (:mod:`crystal_eval.fire`, the default); :meth:`CHGNetPotential.relax` is ASE's
``FIRE(FrechetCellFilter(atoms))``, one crystal at a time. :func:`relax_structures` uses a potential's
optional ``relax_batch`` and otherwise relaxes one crystal at a time under a per-crystal time limit.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pymatgen.core import Structure

from crystal_eval.fire import EnergyForcesStress, fire_relax
from crystal_eval.io import InputError
from crystal_eval.timelimit import TimeLimitExceeded, clock_function, time_limit

EXTRA = "crystal-eval[stability]"


class MissingExtraError(InputError):
    """The optional dependencies of ``--stability`` are not installed."""


@dataclass
class RelaxOutcome:
    """A relaxed crystal: its structure, energy (eV/atom), FIRE steps taken, whether fmax was reached and the
    seconds the relaxation took (charged to this crystal; NaN when unknown)."""

    structure: Structure
    energy_per_atom: float
    steps: int
    converged: bool
    seconds: float = float("nan")


@dataclass
class RelaxFailure:
    """A relaxation that did not finish: the reason, whether it ran past the time limit, and the seconds charged
    to it (NaN when unknown)."""

    reason: str
    timed_out: bool = False
    seconds: float = float("nan")


@runtime_checkable
class Potential(Protocol):
    """What ``--stability`` needs from a potential."""

    label: str  # e.g. "CHGNet 0.3.0": printed with every stability figure

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        """Single-point energies (eV/atom) of the structures as given (NaN where it fails)."""

    def relax(self, structure: Structure, fmax: float, max_steps: int) -> RelaxOutcome:
        """Relax cell and positions (raises on failure)."""

    # Optional: ``relax_batch(structures, fmax, max_steps, limit, clock="wall") -> list[RelaxOutcome |
    # RelaxFailure]`` relaxes many crystals together (limit: seconds per crystal or None, on ``clock``, "wall" or
    # "cpu"; the ``clock`` parameter may be left out); see :func:`relax_structures`.


def relax_structures(
    potential: Potential,
    structures: Sequence[Structure],
    fmax: float,
    max_steps: int,
    limit: float | None = None,
    batched: bool = True,
    clock: str = "wall",
) -> list[RelaxOutcome | RelaxFailure]:
    """Relax every structure; a failure or a time-out is returned as a :class:`RelaxFailure`, never raised.

    With ``batched`` and a potential that has ``relax_batch``, the crystals are relaxed together by it;
    otherwise one at a time with ``potential.relax`` under a timer limit of ``limit`` seconds each.
    ``clock``: the limit counts wall-clock time (``"wall"``) or the process's CPU time (``"cpu"``,
    :mod:`crystal_eval.timelimit`); a plug-in ``relax_batch`` without a ``clock`` parameter is used for
    ``"wall"`` only, and with ``"cpu"`` the crystals are relaxed one at a time instead.
    Every outcome carries the seconds charged to its crystal: its share of the batched calls (the time the
    limit is checked against) or, one at a time, the time of its relaxation, on ``clock``.
    """
    limit = limit if limit is not None and limit > 0 else None
    now = clock_function(clock)
    batch = getattr(potential, "relax_batch", None)
    if batched and callable(batch):
        if clock == "wall":
            return list(batch(list(structures), fmax, max_steps, limit))
        if _takes_clock(batch):
            return list(batch(list(structures), fmax, max_steps, limit, clock=clock))
    out: list[RelaxOutcome | RelaxFailure] = []
    for s in structures:
        t0 = now()
        try:
            with time_limit(limit, "relaxation", clock):
                res: RelaxOutcome | RelaxFailure = potential.relax(s, fmax, max_steps)
        except TimeLimitExceeded as exc:
            res = RelaxFailure(f"TimeLimitExceeded: {exc}", timed_out=True)
        except Exception as exc:
            res = RelaxFailure(f"relaxation failed: {type(exc).__name__}: {exc}")
        res.seconds = now() - t0
        out.append(res)
    return out


def _takes_clock(method: Any) -> bool:
    """True when ``method`` accepts a ``clock`` keyword (by name or through ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "clock" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def ase_fire_relax(structure: Structure, calculator: Any, fmax: float, max_steps: int) -> RelaxOutcome:
    """ASE's ``FIRE(FrechetCellFilter(atoms))`` with ``calculator`` until every generalised force row is below
    ``fmax`` (eV/Å) or ``max_steps`` steps are done (raises on failure or a non-finite energy)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        energy = float(atoms.get_potential_energy()) / len(atoms)
    if not np.isfinite(energy):
        raise ValueError("the potential returned a non-finite energy")
    return RelaxOutcome(AseAtomsAdaptor.get_structure(atoms), energy, int(opt.nsteps), converged)


def batched_fire_relax(
    structures: Sequence[Structure], calculator: Any, fmax: float, max_steps: int, limit: float | None = None,
    **fire_options: Any,
) -> list[RelaxOutcome | RelaxFailure]:
    """:func:`crystal_eval.fire.fire_relax` of ``structures`` with a ``fire.BatchCalculator``, as outcomes
    (``fire_options``: its batching knobs). A crystal whose final cell is degenerate fails alone."""
    crystals = [(s.lattice.matrix, s.cart_coords, np.array(s.atomic_numbers)) for s in structures]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fire_relax(crystals, calculator, fmax, max_steps, limit, **fire_options)
    out: list[RelaxOutcome | RelaxFailure] = []
    for s, r in zip(structures, res, strict=True):
        if r.error is not None:
            out.append(RelaxFailure(r.error, r.timed_out, r.seconds))
            continue
        try:
            relaxed = Structure(r.cell, s.species, r.positions, coords_are_cartesian=True)
        except Exception as exc:
            out.append(RelaxFailure(f"relaxation failed: {type(exc).__name__}: {exc}", seconds=r.seconds))
            continue
        out.append(RelaxOutcome(relaxed, r.energy_per_atom, r.steps, r.converged, r.seconds))
    return out


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
    energies (the MPtrj training targets). ``batch_size`` and ``batch_atoms`` bound the crystals relaxed
    together by :meth:`relax_batch`; ``split_layers`` (default) evaluates them with :mod:`crystal_eval.chgnet_forward`
    (the same network, half the CPU time, float32 sums in another order), False with CHGNet's ``BatchedGraph`` and
    ``_compute``. Single points always use CHGNet's ``predict_graph``.
    """

    def __init__(self, model_name: str = "0.3.0", threads: int = 1, batch_size: int = 32,
                 batch_atoms: int = 512, split_layers: bool = True) -> None:  # fmt: skip
        require_extra()
        import torch
        from chgnet.model import CHGNet

        if threads > 0:
            torch.set_num_threads(threads)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its size
            warnings.simplefilter("ignore")
            self.model = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
        self.model.eval()
        for param in self.model.parameters():  # forces and stresses need input gradients only
            param.requires_grad_(False)
        self.batch_size, self.batch_atoms, self.split_layers = batch_size, batch_atoms, split_layers
        self.version = str(self.model.version or model_name)
        self.label = f"CHGNet {self.version}"
        self._calculator = None

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        """Batched single points; a batch that fails is retried one structure at a time."""
        if not structures:
            return []
        import torch

        try:
            with warnings.catch_warnings(), torch.no_grad():  # energies only: no autograd graph
                warnings.simplefilter("ignore")
                graphs = [self._graph(s) for s in structures]
                preds = self.model.predict_graph(graphs, task="e", batch_size=16)
            preds = [preds] if isinstance(preds, dict) else preds
            return [float(np.asarray(p["e"]).reshape(-1)[0]) for p in preds]
        except Exception:
            if len(structures) == 1:
                return [float("nan")]
            return [e for s in structures for e in self.energies_per_atom([s])]

    def _graph(self, structure: Structure) -> Any:
        """CHGNet's crystal graph of ``structure`` (:func:`crystal_eval.chgnet_graph.graph_of`)."""
        from crystal_eval.chgnet_graph import graph_of

        return graph_of(self.model.graph_converter, structure)

    def relax(self, structure: Structure, fmax: float, max_steps: int) -> RelaxOutcome:
        """FIRE on cell and positions (``FrechetCellFilter``) with the CHGNet ASE calculator."""
        from chgnet.model.dynamics import CHGNetCalculator

        if self._calculator is None:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the device it runs on
                self._calculator = CHGNetCalculator(model=self.model, use_device="cpu", on_isolated_atoms="error")
        return ase_fire_relax(structure, self._calculator, fmax, max_steps)

    def relax_batch(
        self, structures: Sequence[Structure], fmax: float, max_steps: int, limit: float | None = None,
        clock: str = "wall",
    ) -> list[RelaxOutcome | RelaxFailure]:
        """Relax the structures together (:func:`crystal_eval.fire.fire_relax`, one CHGNet call per step;
        ``limit`` seconds of ``clock`` each)."""
        calculator = CHGNetBatchCalculator(self.model, split_layers=self.split_layers)
        return batched_fire_relax(structures, calculator, fmax, max_steps, limit,
                                  batch_size=self.batch_size, batch_atoms=self.batch_atoms, clock=clock)  # fmt: skip


class CHGNetBatchCalculator:
    """CHGNet energies, forces and stresses of many crystals in one call (a ``fire.BatchCalculator``).

    One forward pass over CHGNet's batched graph and **one** backward pass for the gradients of the total
    energy with respect to every crystal's atom positions and strain, without a double-backward graph.
    CHGNet's own ``forward(task="efs")`` takes two backward passes (forces, then stress), each building
    the graph for second derivatives (``create_graph=True``, for training); the values are the same.
    Forces are ``-dE/dr``, the stress ``(1/V) dE/dstrain`` in eV/Å^3 (ASE's convention). With ``split_layers``
    (default, where :func:`crystal_eval.chgnet_forward.supports` the model) the batch is assembled by
    :func:`~crystal_eval.chgnet_forward.batch_graphs` and the energy computed by
    :class:`~crystal_eval.chgnet_forward.SplitCHGNet`; otherwise by CHGNet's ``BatchedGraph.from_graphs`` and
    ``CHGNet._compute`` (chgnet 0.4.2, pinned; tests compare both with ``predict_structure``).
    """

    def __init__(self, model: Any, split_layers: bool = True) -> None:
        from crystal_eval.chgnet_forward import SplitCHGNet

        self.model = model
        self.split = SplitCHGNet.of(model) if split_layers else None

    def prepare(self, cell: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> Any:
        """CHGNet's crystal graph (raises for an atom with no neighbour within the 6 Å cutoff;
        :func:`crystal_eval.chgnet_graph.graph_of`)."""
        from pymatgen.core import Lattice

        from crystal_eval.chgnet_graph import graph_of

        structure = Structure(Lattice(cell), numbers.tolist(), positions, coords_are_cartesian=True)
        return graph_of(self.model.graph_converter, structure)

    def cost(self, graph: Any) -> float:
        """Directed bonds plus angles: what the message passing scales with."""
        return float(len(graph.atom_graph) + len(graph.bond_graph))

    def evaluate(self, graphs: Sequence[Any]) -> list[EnergyForcesStress]:
        """Energies (eV/atom), forces and stresses of the graphs, batched."""
        import torch
        from chgnet.model.model import BatchedGraph

        if self.split is not None:
            return self._evaluate_split(self.split, graphs)
        m = self.model
        with torch.enable_grad():
            bg = BatchedGraph.from_graphs(
                list(graphs), bond_basis_expansion=m.bond_basis_expansion,
                angle_basis_expansion=m.angle_basis_expansion, compute_stress=True,
            )  # fmt: skip
            pred = m._compute(bg, compute_force=False, compute_stress=False)
            energy, n_atoms = pred["e"], pred["atoms_per_graph"]  # eV/atom for the intensive CHGNet 0.3.0
            total = (energy * n_atoms).sum() if m.is_intensive else energy.sum()
            grads = torch.autograd.grad(total, [*bg.atom_positions, *bg.strains])
        per_atom = self._energy_per_atom(graphs, energy, n_atoms)
        k = len(graphs)
        volumes = bg.volumes.detach().double().numpy()
        return [
            EnergyForcesStress(float(per_atom[i]), -grads[i].double().numpy(),
                               grads[k + i].double().numpy() / volumes[i])  # fmt: skip
            for i in range(k)
        ]

    def _energy_per_atom(self, graphs: Sequence[Any], energy: Any, n_atoms: Any) -> np.ndarray:
        """CHGNet's energies (eV/atom) with its composition model's reference energies added."""
        m = self.model
        comp = m.composition_model(list(graphs)) if m.composition_model is not None else 0.0
        per_atom = (energy if m.is_intensive else energy / n_atoms) + (comp if m.is_intensive else comp / n_atoms)
        return per_atom.detach().double().numpy()

    def _evaluate_split(self, split: Any, graphs: Sequence[Any]) -> list[EnergyForcesStress]:
        """:meth:`evaluate` with :func:`~crystal_eval.chgnet_forward.batch_graphs` and ``split`` (a
        :class:`~crystal_eval.chgnet_forward.SplitCHGNet`): one backward pass to all positions and strains."""
        import torch

        from crystal_eval.chgnet_forward import batch_graphs

        with torch.enable_grad():
            batch = batch_graphs(self.model, list(graphs))
            energy, n_atoms = split.energy(batch)
            total = (energy * n_atoms).sum() if self.model.is_intensive else energy.sum()
            d_positions, d_strains = torch.autograd.grad(total, [batch.positions, batch.strains])
        per_atom = self._energy_per_atom(graphs, energy, n_atoms)
        forces = torch.split(-d_positions.detach().double(), batch.atoms_per_crystal)
        stresses = d_strains.detach().double().numpy() / batch.volumes.double().numpy()[:, None, None]
        return [EnergyForcesStress(float(per_atom[i]), forces[i].numpy(), stresses[i]) for i in range(len(graphs))]


# ----------------------------------------------------------------------------- any ASE calculator


def fresh(calculator: Any) -> Any:
    """``calculator`` with its state of the previous crystal dropped (``reset()``, where it has one): an ASE
    calculator keeps per-structure state (EMT its neighbour list), which a crystal of another size, or one it
    failed on, would otherwise meet."""
    reset = getattr(calculator, "reset", None)
    if callable(reset):
        reset()
    return calculator


class AseBatchCalculator:
    """An ASE calculator as a ``fire.BatchCalculator``: one crystal per call, energy (eV/atom), forces
    ``-dE/dr`` and the stress ``(1/V) dE/dstrain`` (ASE's ``get_stress(voigt=False)``, eV/Å^3)."""

    def __init__(self, calculator: Any) -> None:
        self.calculator = calculator

    def prepare(self, cell: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> Any:
        """The crystal as periodic ASE ``Atoms``."""
        from ase import Atoms

        return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)

    def cost(self, atoms: Any) -> float:
        """The number of atoms."""
        return float(len(atoms))

    def evaluate(self, batch: Sequence[Any]) -> list[EnergyForcesStress]:
        """Energies, forces and stresses, one crystal after the other."""
        out = []
        for atoms in batch:
            atoms.calc = fresh(self.calculator)
            energy = float(atoms.get_potential_energy()) / len(atoms)
            out.append(EnergyForcesStress(energy, np.array(atoms.get_forces(), dtype=float),
                                          np.array(atoms.get_stress(voigt=False), dtype=float)))  # fmt: skip
        return out


class AseCalculatorPotential:
    """Any ASE calculator (``get_potential_energy``, ``get_forces``, ``get_stress``) as a :class:`Potential`.

    ``relax_batch`` runs the default optimiser (:func:`crystal_eval.fire.fire_relax`: the FIRE updates of all
    crystals together) with one calculator call per crystal and step, each under the crystal's remaining time
    limit; ``relax`` is ASE's FIRE on ``FrechetCellFilter``, as for CHGNet. Single points that fail are NaN.
    """

    def __init__(self, calculator: Any, label: str) -> None:
        self.calculator, self.label = calculator, label

    def energies_per_atom(self, structures: list[Structure]) -> list[float]:
        """Single-point energies (eV/atom), NaN where the calculator fails."""
        from pymatgen.io.ase import AseAtomsAdaptor

        out = []
        for s in structures:
            try:
                atoms = AseAtomsAdaptor.get_atoms(s)
                atoms.calc = fresh(self.calculator)
                out.append(float(atoms.get_potential_energy()) / len(atoms))
            except Exception:
                out.append(float("nan"))
        return out

    def relax(self, structure: Structure, fmax: float, max_steps: int) -> RelaxOutcome:
        """ASE's FIRE on cell and positions (``FrechetCellFilter``)."""
        return ase_fire_relax(structure, fresh(self.calculator), fmax, max_steps)

    def relax_batch(
        self, structures: Sequence[Structure], fmax: float, max_steps: int, limit: float | None = None,
        clock: str = "wall",
    ) -> list[RelaxOutcome | RelaxFailure]:
        """Relax the structures with the batched FIRE, one calculator call per crystal and step."""
        # cost_budget 0: every crystal evaluated alone, charged its own time, under its own timer limit
        return batched_fire_relax(structures, AseBatchCalculator(self.calculator), fmax, max_steps, limit,
                                  cost_budget=0.0, clock=clock)  # fmt: skip


# ----------------------------------------------------------------------------- --potential MODULE:FACTORY

SPEC_EXAMPLE = "ase.calculators.emt:EMT"


def _spec_error(spec: str, why: str) -> InputError:
    return InputError(f"--potential {spec!r}: {why}")


def resolve_factory(spec: str) -> Callable[[], Any]:
    """The callable that ``spec`` (``"package.module:name"``, e.g. ``"ase.calculators.emt:EMT"``) names.

    Imports the module but calls nothing. Raises :class:`~crystal_eval.io.InputError` naming the problem: a
    malformed spec, a module that cannot be imported, a missing name, or an object that is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not (sep and module_name and attr):
        raise _spec_error(spec, f"expected MODULE:FACTORY, e.g. {SPEC_EXAMPLE}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise _spec_error(spec, f"cannot import {module_name} ({type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _spec_error(spec, f"{module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise _spec_error(spec, f"{attr} is a {type(obj).__name__}, not a zero-argument callable")
    return obj


def _is_ase_calculator(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("get_potential_energy", "get_forces", "get_stress"))


def load_potential(spec: str) -> Potential:
    """Call the zero-argument factory that ``spec`` names (:func:`resolve_factory`) and return a :class:`Potential`.

    A returned :class:`Potential` (``label``, ``energies_per_atom``, ``relax``) is used as it is; an ASE
    calculator is wrapped in :class:`AseCalculatorPotential`, labelled ``spec``. Anything else, or a factory
    that raises, is an :class:`~crystal_eval.io.InputError`. ``functools.partial(load_potential, spec)`` is
    the picklable factory of :class:`crystal_eval.stability.StabilityConfig`.
    """
    factory = resolve_factory(spec)
    try:
        obj = factory()
    except Exception as exc:
        raise _spec_error(spec, f"calling it failed ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, Potential):
        return obj
    if _is_ase_calculator(obj):
        return AseCalculatorPotential(obj, spec)
    raise _spec_error(spec, f"it returned a {type(obj).__name__}, which is neither a crystal_eval Potential "
                            "(label, energies_per_atom, relax) nor an ASE calculator (get_potential_energy, "
                            "get_forces, get_stress)")  # fmt: skip


def potential_id(spec: str) -> str:
    """The identity of ``spec``'s potential in cache keys: the spec and the version of the distribution that
    provides its top-level package (``"ase.calculators.emt:EMT (ase 3.29.0)"``; ``unversioned`` for a module
    outside any installed distribution, whose cached results a changed factory does not invalidate)."""
    top = spec.partition(":")[0].split(".")[0]
    for dist in packages_distributions().get(top, []):
        try:
            return f"{spec} ({dist} {version(dist)})"
        except PackageNotFoundError:
            continue
    return f"{spec} (unversioned)"
