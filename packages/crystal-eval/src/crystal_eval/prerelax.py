"""Isotropic volume pre-relaxation (``crystal-eval --stability --prerelax-volume``), before FIRE.

Generated crystals often start far from their equilibrium volume (atoms nearly touching, or a cell that
is too large), and FIRE, whose step is capped at ``maxstep`` per iteration, then spends many steps on
the volume alone. This module finds, for each crystal, the isotropic scale factor ``s`` of its lattice
(fractional coordinates fixed, volume ``s^3 V``) that minimises the potential's energy per atom, by a
bracketing line search on energies alone (no forces, no stress: every :class:`~crystal_eval.potential.Potential`
can do it):

1. evaluate ``E(1 - h)``, ``E(1)`` and ``E(1 + h)``;
2. while the lowest of the three is at an end, step further downhill, each new step ``growth`` times the
   previous one (clipped to ``[lo, hi]``), until the energy rises again or the bound has been evaluated;
3. ``refine`` times, evaluate the vertex of the parabola through the lowest point and its two neighbours
   (when it lies between them);
4. take the scale of the lowest energy evaluated.

All crystals still searching are evaluated together, one batched potential call per round. A crystal
whose energy at ``s = 1`` is not finite keeps its cell (``s = 1``); a non-finite energy elsewhere ends
the search in that direction. The scaled crystal's energy is never higher than at ``s = 1``.

The relaxation that follows is the same FIRE on cell and positions; only its starting point changes, so
a crystal may end in another local minimum than without the pre-relaxation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from crystal_eval.potential import Potential


@dataclass(frozen=True)
class VolumeSearch:
    """Knobs of the line search over the linear scale factor ``s`` (volume ``s^3 V``)."""

    step: float = 0.04  # first step h
    growth: float = 1.5  # each further step is this many times the previous one
    lo: float = 0.8  # smallest scale tried
    hi: float = 1.5  # largest scale tried
    refine: int = 2  # parabolic steps once the minimum is bracketed

    def validate(self) -> None:
        """Raise ValueError for an empty or inverted bracket."""
        if not (0 < self.lo < 1 - self.step and 1 + self.step < self.hi and self.growth >= 1 and self.step > 0
                and self.refine >= 0):
            raise ValueError(f"need 0 < lo < 1 - step, 1 + step < hi, growth >= 1 (got {self})")


def scaled(structure: Structure, scale: float) -> Structure:
    """``structure`` with its lattice scaled by ``scale`` in every direction (fractional coordinates kept)."""
    out = structure.copy()
    if scale != 1.0:
        out.scale_lattice(structure.volume * scale**3)
    return out


def _energies(potential: Potential, structures: Sequence[Structure], scales: Sequence[float]) -> np.ndarray:
    if not structures:
        return np.zeros(0)
    e = np.asarray(potential.energies_per_atom([scaled(s, x) for s, x in zip(structures, scales, strict=True)]),
                   dtype=float)
    return np.where(np.isfinite(e), e, np.inf)


def _evaluate(potential: Potential, structures: Sequence[Structure], points: list[dict[float, float]],
              todo: list[tuple[int, float]]) -> None:
    """Add ``E(scale)`` to ``points[i]`` for every ``(i, scale)`` of ``todo`` (one batched call)."""
    es = _energies(potential, [structures[i] for i, _ in todo], [x for _, x in todo])
    for (i, x), e in zip(todo, es, strict=True):
        points[i][x] = float(e)


def _vertex(xs: np.ndarray, ys: np.ndarray) -> float | None:
    """Abscissa of the vertex of the parabola through three points (None unless it is a minimum)."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if not np.isfinite(den) or den == 0:
        return None
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    bend = (y0 - y1) / (x0 - x1) - (y1 - y2) / (x1 - x2)  # left slope - right slope
    if not bend < 0:  # the slope must increase through a minimum (x0 < x1 < x2)
        return None
    return float(x1 - 0.5 * num / den)


def volume_scales(potential: Potential, structures: Sequence[Structure],
                  search: VolumeSearch | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The energy-minimising isotropic scale of each crystal (module docstring) and the number of energy
    evaluations each took. Never raises for one crystal."""
    sr = search or VolumeSearch()
    sr.validate()
    n = len(structures)
    points: list[dict[float, float]] = [{} for _ in range(n)]
    for x in (1.0 - sr.step, 1.0, 1.0 + sr.step):
        _evaluate(potential, structures, points, [(i, x) for i in range(n)])
    step = np.full(n, sr.step)
    active = [i for i in range(n) if np.isfinite(points[i][1.0])]
    while active:
        nxt: list[tuple[int, float]] = []
        for i in active:
            xs = sorted(points[i])
            k = int(np.argmin([points[i][x] for x in xs]))
            if 0 < k < len(xs) - 1:
                continue  # bracketed
            step[i] *= sr.growth
            x = float(np.clip(xs[k] + (step[i] if k == len(xs) - 1 else -step[i]), sr.lo, sr.hi))
            if x not in points[i] and np.isfinite(points[i][xs[k]]):
                nxt.append((i, x))
        if not nxt:
            break
        _evaluate(potential, structures, points, nxt)
        active = [i for i, _ in nxt]
    for _ in range(sr.refine):  # parabolic steps inside the bracket, all crystals in one call per round
        refine: list[tuple[int, float]] = []
        for i in range(n):
            xs = np.array(sorted(points[i]))
            ys = np.array([points[i][x] for x in xs])
            k = int(np.argmin(ys))
            if 0 < k < len(xs) - 1 and np.all(np.isfinite(ys[k - 1 : k + 2])):
                v = _vertex(xs[k - 1 : k + 2], ys[k - 1 : k + 2])
                if v is not None and xs[k - 1] < v < xs[k + 1] and min(abs(v - x) for x in xs) > 1e-9:
                    refine.append((i, v))
        if not refine:
            break
        _evaluate(potential, structures, points, refine)
    scales = np.array([min(p, key=p.__getitem__) if np.isfinite(p[1.0]) else 1.0 for p in points])
    evals = np.array([len(p) for p in points])
    return scales, evals


def prerelax_volumes(potential: Potential, structures: Sequence[Structure],
                     search: VolumeSearch | None = None) -> tuple[list[Structure], np.ndarray]:
    """The crystals scaled by :func:`volume_scales`, and the scales."""
    scales, _ = volume_scales(potential, structures, search)
    return [scaled(s, float(x)) for s, x in zip(structures, scales, strict=True)], scales
