"""Batched FIRE relaxation of cell and positions: many crystals per potential call, vectorised updates.

The optimiser is FIRE (Bitzek et al., PRL 97, 170201 (2006)) with the constants and the update rule of
``ase.optimize.FIRE``, on the cell parametrisation of ASE's ``FrechetCellFilter`` (Kaplan et al.; the
log of the deformation gradient). Per crystal of N atoms, with reference cell ``C0`` (rows are lattice
vectors) and deformation gradient ``F``, the current cell is ``C = C0 F^T`` and the atoms sit at
``r_i = F x_i``. The degrees of freedom are the N undeformed positions ``x_i`` and the 3x3 matrix
``U = N log F`` (ASE stores ``N log(N F)``, which differs by the constant ``N log N I``: the same FIRE
trajectory). Their generalised forces are

* atoms: ``F^T f_i`` (``f_i`` the Cartesian force, i.e. ``-dE/dx_i``);
* cell: ``-dE/dU = (1/N) L_exp(X^T, W F^{-T})`` with ``X = U/N``, the virial ``W = -V sigma`` (``sigma``
  the stress, ``(1/V) dE/d(strain)``) and ``L_exp(X, E)`` the Fréchet derivative of the matrix exponential
  at X in direction E. ASE sums the nine directional derivatives ``<L_exp(X, E_mn), A>``; their
  adjoint is one derivative at ``X^T`` (``<L(X, E), A> = <E, L(X^T, A)>``), computed as the upper-right
  block of ``expm([[X^T, A], [0, X^T]])`` (Higham, *Functions of Matrices*, 2008, Thm 3.6).

A crystal has converged when every row of its generalised force (N atom rows and 3 cell rows) has a
Euclidean norm below ``fmax``, ASE's criterion. FIRE per crystal, as ASE does it: the first step only
accelerates from rest; afterwards, when ``P = <F, v> > 0``, ``v <- (1 - a) v + a |v| F/|F|`` and, after
more than ``n_min`` such steps in a row, ``dt <- min(finc dt, dtmax)``, ``a <- fa a``; when ``P <= 0``,
``v <- 0``, ``a <- astart``, ``dt <- fdec dt``. Then ``v <- v + dt F`` and the step ``dt v`` is scaled down
to a Euclidean norm of at most ``maxstep`` over the crystal's whole vector.

The potential is a :class:`BatchCalculator`: it turns one crystal into its input (``prepare``, e.g. a
neighbour graph), weighs it (``cost``) and evaluates energies, forces and stresses for a list of
prepared crystals in one call. Converged crystals leave the batch and waiting ones join it (at most
``batch_size`` crystals and ``batch_atoms`` atoms at a time). The per-crystal time limit is charged with
the crystal's own ``prepare`` time plus its share, by cost, of every batched call and update; a crystal
whose cost alone exceeds ``cost_budget`` is evaluated on its own under a timer limit, so one
pathological cell cannot hold a whole batch. The time is wall-clock time or, with ``clock="cpu"``, the
process's CPU time (:mod:`crystal_eval.timelimit`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.linalg import expm

from crystal_eval.timelimit import TimeLimitExceeded, clock_function, limit_message, time_limit


@dataclass(frozen=True)
class FireParameters:
    """FIRE constants; the defaults are ``ase.optimize.FIRE``'s."""

    dt: float = 0.1
    maxstep: float = 0.2  # Å (and log-strain units times N for the cell rows), per step and crystal
    dtmax: float = 1.0
    n_min: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


@dataclass
class EnergyForcesStress:
    """One crystal's energy (eV/atom), forces (N x 3, eV/Å) and stress (3 x 3, eV/Å^3, ``(1/V) dE/dstrain``)."""

    energy_per_atom: float
    forces: np.ndarray
    stress: np.ndarray


class BatchCalculator(Protocol):
    """A potential that evaluates many crystals in one call."""

    def prepare(self, cell: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> Any:
        """The potential's input for one crystal (rows of ``cell`` are lattice vectors, Cartesian Å)."""

    def cost(self, prepared: Any) -> float:
        """A relative cost of evaluating ``prepared`` (shares batched time between crystals)."""

    def evaluate(self, prepared: Sequence[Any]) -> list[EnergyForcesStress]:
        """Energies, forces and stresses of the prepared crystals, in order."""


@dataclass
class FireOutcome:
    """A crystal after :func:`fire_relax`: final cell and Cartesian positions, energy, steps, status."""

    cell: np.ndarray
    positions: np.ndarray
    energy_per_atom: float = float("nan")
    steps: int = 0
    converged: bool = False
    error: str | None = None  # None: relaxed (converged or stopped at the step cap)
    timed_out: bool = False
    seconds: float = 0.0  # time charged to this crystal


@dataclass
class _State:
    """FIRE state of one crystal (float64)."""

    index: int
    numbers: np.ndarray
    cell0: np.ndarray
    x: np.ndarray  # (N, 3) positions in the undeformed frame
    u: np.ndarray  # (3, 3) N log F
    dt: float
    a: float
    v: np.ndarray | None = None  # (N + 3, 3) velocity; None before the first step
    n_pos: int = 0  # consecutive steps with P > 0 (ASE's Nsteps)
    steps: int = 0
    seconds: float = 0.0
    prepared: Any = None
    cost: float = 1.0
    result: EnergyForcesStress | None = None

    @property
    def n(self) -> int:
        return len(self.numbers)


def deformation_gradients(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``F = expm(U / N)`` for a stack of (3, 3) matrices ``U`` and atom counts ``N``."""
    return expm(u / n[:, None, None])


def expm_frechet_adjoint(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``L_exp(X^T, A)`` for stacks of 3 x 3 matrices: the G with ``<L_exp(X, E), A> = <E, G>`` for every E."""
    block = np.zeros((len(x), 6, 6))
    xt = np.swapaxes(x, 1, 2)
    block[:, :3, :3] = xt
    block[:, 3:, 3:] = xt
    block[:, :3, 3:] = a
    return expm(block)[:, :3, 3:]


def cell_forces(u: np.ndarray, n: np.ndarray, f_def: np.ndarray, cells: np.ndarray, stress: np.ndarray) -> np.ndarray:
    """Generalised forces ``-dE/dU`` (stack of 3 x 3) of the log-deformation cell coordinates ``U = N log F``.

    ``stress`` is ``(1/V) dE/dstrain`` (eV/Å^3); only its symmetric part is used, as ASE does.
    """
    volume = np.abs(np.linalg.det(cells))
    virial = -volume[:, None, None] * 0.5 * (stress + np.swapaxes(stress, 1, 2))
    ucf = virial @ np.linalg.inv(np.swapaxes(f_def, 1, 2))  # -dE/dF
    return expm_frechet_adjoint(u / n[:, None, None], ucf) / n[:, None, None]


def fire_update(
    x: np.ndarray, v: np.ndarray, g: np.ndarray, first: np.ndarray, dt: np.ndarray, a: np.ndarray,
    n_pos: np.ndarray, p: FireParameters,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One FIRE step for a batch: padded (B, R, 3) coordinates ``x``, velocities ``v`` and forces ``g``
    (padding rows zero), per-crystal ``dt``, ``a``, ``n_pos`` and ``first`` (no velocity yet).

    Returns the new ``(x, v, dt, a, n_pos)``; the inputs are not modified.
    """
    v, dt, a, n_pos = np.where(first[:, None, None], 0.0, v), dt.copy(), a.copy(), n_pos.copy()
    vf = np.einsum("bij,bij->b", g, v)
    g_norm = np.sqrt(np.einsum("bij,bij->b", g, g))
    v_norm = np.sqrt(np.einsum("bij,bij->b", v, v))
    up = ~first & (vf > 0.0)
    down = ~first & ~(vf > 0.0)
    mix = np.where(up, a, 0.0)[:, None, None]
    unit = g / np.where(g_norm > 0, g_norm, 1.0)[:, None, None]
    v = (1.0 - mix) * v + mix * unit * v_norm[:, None, None]
    grow = up & (n_pos > p.n_min)
    dt = np.where(grow, np.minimum(dt * p.finc, p.dtmax), dt)
    a = np.where(grow, a * p.fa, a)
    n_pos = np.where(up, n_pos + 1, n_pos)
    v = np.where(down[:, None, None], 0.0, v)
    a = np.where(down, p.astart, a)
    dt = np.where(down, dt * p.fdec, dt)
    n_pos = np.where(down, 0, n_pos)
    v = v + dt[:, None, None] * g
    dr = dt[:, None, None] * v
    norm = np.sqrt(np.einsum("bij,bij->b", dr, dr))
    dr *= np.where(norm > p.maxstep, p.maxstep / np.where(norm > 0, norm, 1.0), 1.0)[:, None, None]
    return x + dr, v, dt, a, n_pos


_TIMED_OUT = "\0time limit"  # the failure "reason" of a crystal that ran past its time limit


def _remaining(st: _State, limit: float | None) -> float | None:
    return None if limit is None else max(limit - st.seconds, 1e-6)


def _failure(exc: Exception) -> str:
    return f"relaxation failed: {type(exc).__name__}: {exc}"


def _prepare(active: list[_State], calculator: BatchCalculator, cells: np.ndarray, f_def: np.ndarray,
             limit: float | None, clock: str = "wall") -> dict[int, str]:  # fmt: skip
    """Each crystal's potential input at its current geometry, timed and charged to that crystal alone."""
    failed: dict[int, str] = {}
    now = clock_function(clock)
    for k, st in enumerate(active):
        t0 = now()
        try:
            with time_limit(_remaining(st, limit), "relaxation", clock):
                st.prepared = calculator.prepare(cells[k], st.x @ f_def[k].T, st.numbers)
                st.cost = max(float(calculator.cost(st.prepared)), 1.0)
        except TimeLimitExceeded:
            failed[k] = _TIMED_OUT
        except Exception as exc:
            failed[k] = _failure(exc)
        st.seconds += now() - t0
    return failed


def _evaluate(active: list[_State], grp: list[int], calculator: BatchCalculator,
              limit: float | None, clock: str = "wall") -> dict[int, str]:  # fmt: skip
    """Evaluate one sub-batch into ``active[k].result``; returns its failures.

    A batch that raises is retried one crystal at a time, so that one bad crystal fails alone. A crystal
    alone in its sub-batch is evaluated under a timer limit of its remaining time (``clock``).
    """
    try:
        if len(grp) == 1:
            with time_limit(_remaining(active[grp[0]], limit), "relaxation", clock):
                results = calculator.evaluate([active[grp[0]].prepared])
        else:
            results = calculator.evaluate([active[k].prepared for k in grp])
    except TimeLimitExceeded:
        return {grp[0]: _TIMED_OUT}
    except Exception as exc:
        if len(grp) == 1:
            return {grp[0]: _failure(exc)}
        failed: dict[int, str] = {}
        now = clock_function(clock)
        for k in grp:
            t0 = now()
            failed |= _evaluate(active, [k], calculator, limit, clock)
            active[k].seconds += now() - t0
        return failed
    failed = {}
    for k, r in zip(grp, results, strict=True):
        e, f, s = r.energy_per_atom, np.asarray(r.forces, float), np.asarray(r.stress, float)
        if f.shape != (active[k].n, 3) or s.shape != (3, 3):
            failed[k] = f"relaxation failed: ValueError: forces {f.shape}, stress {s.shape} for {active[k].n} atoms"
        elif not (math.isfinite(e) and np.isfinite(f).all() and np.isfinite(s).all()):
            failed[k] = "relaxation failed: ValueError: the potential returned a non-finite energy, force or stress"
        else:
            active[k].result = EnergyForcesStress(float(e), f, s)
    return failed


def _groups(active: list[_State], members: list[int], cost_budget: float) -> list[list[int]]:
    """Consecutive sub-batches of total cost at most ``cost_budget`` (a crystal over it on its own)."""
    groups: list[list[int]] = []
    for k in members:
        if groups and sum(active[j].cost for j in groups[-1]) + active[k].cost <= cost_budget:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def _padded(active: list[_State], sel: list[int], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded (B, rows, 3) coordinates (x then U in the last 3 rows) and velocities of ``active[sel]``."""
    x = np.zeros((len(sel), rows, 3))
    v = np.zeros_like(x)
    for j, k in enumerate(sel):
        st = active[k]
        x[j, : st.n], x[j, -3:] = st.x, st.u
        if st.v is not None:
            v[j, : st.n], v[j, -3:] = st.v[: st.n], st.v[st.n :]
    return x, v


def fire_relax(
    crystals: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    calculator: BatchCalculator,
    fmax: float = 0.05,
    max_steps: int = 300,
    limit: float | None = None,
    params: FireParameters | None = None,
    batch_size: int = 32,
    batch_atoms: int = 512,
    cost_budget: float = 250_000.0,
    clock: str = "wall",
) -> list[FireOutcome]:
    """Relax ``crystals`` (``(cell, Cartesian positions, atomic numbers)`` each) together; never raises for one crystal.

    Each crystal stops when converged (every generalised-force row below ``fmax``), after ``max_steps``
    FIRE steps, when the potential fails on it (``error``) or when the time charged to it passes
    ``limit`` seconds of ``clock`` (``timed_out``; ``"wall"`` or ``"cpu"``, the process's CPU time, see
    :mod:`crystal_eval.timelimit`). Crystals enter the batch in order of size (fewest atoms first), so
    that a batch holds similar sizes and the padded update wastes little.
    """
    p = params or FireParameters()
    now = clock_function(clock)
    limit = limit if limit is not None and limit > 0 else None
    out: list[FireOutcome | None] = [None] * len(crystals)
    pending = sorted(range(len(crystals)), key=lambda i: (len(crystals[i][2]), i), reverse=True)  # pop() smallest
    active: list[_State] = []

    def finish(st: _State, error: str | None = None, converged: bool = False) -> None:
        f_def = deformation_gradients(st.u[None], np.array([float(st.n)]))[0]
        ok = error is None and st.result is not None
        timed_out = error == _TIMED_OUT
        if timed_out:
            error = f"TimeLimitExceeded: {limit_message('relaxation', limit, clock)}"  # type: ignore[arg-type]
        out[st.index] = FireOutcome(
            cell=st.cell0 @ f_def.T, positions=st.x @ f_def.T,
            energy_per_atom=st.result.energy_per_atom if ok else float("nan"),  # type: ignore[union-attr]
            steps=st.steps, converged=converged, error=error, timed_out=timed_out, seconds=st.seconds,
        )  # fmt: skip

    while pending or active:
        while pending and len(active) < batch_size:
            cell, pos, numbers = crystals[pending[-1]]
            if active and sum(s.n for s in active) + len(numbers) > batch_atoms:
                break
            i = pending.pop()
            cell0, x0 = np.array(cell, float), np.array(pos, float)
            active.append(_State(i, np.asarray(numbers), cell0, x0, np.zeros((3, 3)), p.dt, p.astart))
        t_step = now()
        own = sum(st.seconds for st in active)
        n = np.array([float(st.n) for st in active])
        f_def = deformation_gradients(np.stack([st.u for st in active]), n)
        cells = np.stack([st.cell0 for st in active]) @ np.swapaxes(f_def, 1, 2)
        failed = _prepare(active, calculator, cells, f_def, limit, clock)
        took_part = [k for k in range(len(active)) if k not in failed]
        for grp in _groups(active, took_part, cost_budget):
            failed |= _evaluate(active, grp, calculator, limit, clock)
        own = sum(st.seconds for st in active) - own  # charged to single crystals above

        live = [k for k in range(len(active)) if k not in failed]
        converged = np.zeros(len(active), bool)
        stepping: list[int] = []
        if live:
            rows = max(active[k].n for k in live) + 3
            g = np.zeros((len(live), rows, 3))
            stress = np.stack([active[k].result.stress for k in live])  # type: ignore[union-attr]
            g[:, -3:] = cell_forces(np.stack([active[k].u for k in live]), n[live], f_def[live], cells[live], stress)
            for j, k in enumerate(live):
                g[j, : active[k].n] = active[k].result.forces @ f_def[k]  # type: ignore[union-attr]
            converged[live] = np.sqrt((g**2).sum(axis=2)).max(axis=1) < fmax
            stepping = [j for j, k in enumerate(live) if not converged[k] and active[k].steps < max_steps]
        if stepping:
            sel = [live[j] for j in stepping]
            x, v = _padded(active, sel, rows)
            first = np.array([active[k].v is None for k in sel])
            scalars = [np.array([getattr(active[k], name) for k in sel]) for name in ("dt", "a", "n_pos")]
            x, v, dts, aas, nps = fire_update(x, v, g[stepping], first, *scalars, p)
            for j, k in enumerate(sel):
                st = active[k]
                st.x, st.u = x[j, : st.n].copy(), x[j, -3:].copy()
                st.v = np.concatenate([v[j, : st.n], v[j, -3:]])
                st.dt, st.a, st.n_pos = float(dts[j]), float(aas[j]), int(nps[j])
        shared = now() - t_step - own  # batched evaluation and update, shared by cost
        total_cost = sum(active[k].cost for k in took_part) or 1.0
        for k in took_part:
            active[k].seconds += shared * active[k].cost / total_cost

        keep: list[_State] = []
        for k, st in enumerate(active):
            if k in failed:
                finish(st, failed[k])
            elif limit is not None and st.seconds > limit:
                finish(st, _TIMED_OUT)
            elif converged[k]:
                finish(st, converged=True)
            elif st.steps >= max_steps:
                finish(st)
            else:
                st.steps += 1
                st.prepared = st.result = None
                keep.append(st)
        active = keep
    return [o for o in out if o is not None]
