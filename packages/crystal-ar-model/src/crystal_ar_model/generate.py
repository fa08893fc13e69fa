r"""``crystal-ar sample``: generation from constraints to published output files, reproducible and shardable.

**The stream.** A run of ``num`` crystals is a sequence of *blocks* of ``batch_size`` crystals (the last one may
be shorter); block k holds the crystals with indices ``k * batch_size ...`` and is drawn, as one vectorised batch,
with its own generator seeded from ``(seed, k)`` (:func:`block_generator`). Every random number of a block comes
from that generator, on the CPU (:func:`.factors.draw_categorical`), so a block is the same whatever else the
run does. ``--shard i/n`` draws the blocks k with ``k mod n == i``: shards are disjoint, each is reproducible, and
the union of the records of all n shards (same seed, ``-n`` and ``--batch-size``) is the unsharded run, record
for record (the ``run.shard`` field aside). Records carry the crystal's index in the unsharded stream.

**Processes** (:meth:`SampleRun.parallel_mode`). On the CPU, ``--workers`` processes each take whole blocks
(draw, normal forms, redraws, scores: :meth:`SampleRun.process_block`) and this process writes them in stream
order; with a model on a GPU, this process draws on the device while the workers derive the normal forms (spglib)
of the previous block; ``--workers 0`` does everything in this process. A block's work does not depend on which
process does it, so every choice writes the same files. The worker processes, and the CLI's own, keep the memory
they free for reuse instead of handing it back to the system after every atom step (:mod:`.allocator`).

**What each record holds** (:class:`.outputs.SampleRecord`). ``drawn``: the crystal as sampled (its space group,
sites in construction order), exactly symmetric by construction; the CIF and extxyz files hold this crystal.
``crystal``: its normal form *as* ``crystal-ar score`` *derives it from the CIF*: ``asu_geometry.to_asu`` at
``symprec`` 0.1 A and 5 degrees (:data:`.score.SYMPREC`), computed from the drawn crystal's conventional cell
(in worker processes). Usually this is the normal form of the drawn crystal; when the drawn atoms lie within
0.1 A of a more symmetric arrangement, ``to_asu`` symmetrises them (other Wyckoff letters, possibly a supergroup),
exactly as the scorer does. ``logp_*``: the model's per-factor log-likelihood of that normal form's construction
sequence (what ``crystal-ar score`` reports for the CIF). ``logp_drawn``: the model's (untempered,
unconstrained) log-likelihood of the sequence actually drawn, present when that sequence is not the normal form
(other site order, another description of the same crystal, or symmetrised). ``min_distance``: the
``--min-distance`` record. ``redraws``: see below.

**Unreadable samples.** A drawn crystal whose atoms (images included) nearly coincide (spglib reports
overlapping atoms) has no normal form: ``crystal-ar score`` cannot read its CIF back. Such a crystal is
discarded and its slot redrawn from the same block generator (deterministic), at most
:data:`MAX_REDRAW_ROUNDS` rounds; ``redraws`` counts the discarded draws of the slot and the summary lists the
reasons. The samples are therefore drawn from the model conditioned on "the scorer can read the crystal back".
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import package_versions
from .constraints import SamplerMasks, SamplingConstraints, for_model
from .errors import ConfigError, SamplingError
from .model import LOGP_KEYS
from .outputs import RenderedBatch, SampleRecord, SampleWriter, render_batch
from .sampling import MIN_DISTANCE_TRIES, sample
from .score import ANGLE_TOLERANCE, SYMPREC, init_worker

MAX_REDRAW_ROUNDS = 20
"""How often one block may redraw the crystals the scorer cannot read back before the run stops."""
SAME_DESCRIPTION_TOL = 1e-9
"""Coordinates and lattice parameters equal within this: the drawn sequence *is* the normal form."""


# ------------------------------------------------------------------------------------------------ stream
@dataclass(frozen=True)
class Block:
    """Block ``index`` of the stream: crystals ``start .. start + size - 1``."""

    index: int
    start: int
    size: int


def parse_shard(text: str) -> tuple[int, int]:
    """``'i/n'`` -> (i, n) with 0 <= i < n (raises ``ValueError``)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def stream_blocks(num: int, batch_size: int, shard: tuple[int, int] = (0, 1)) -> list[Block]:
    """The blocks of shard ``shard = (i, n)`` of a ``num``-crystal stream (module docstring)."""
    i, n = shard
    starts = range(0, num, batch_size)
    return [Block(k, s, min(batch_size, num - s)) for k, s in enumerate(starts) if k % n == i]


def block_generator(seed: int, block: int) -> torch.Generator:
    """The CPU generator of block ``block`` of the stream with seed ``seed`` (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(seed), int(block)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


# ----------------------------------------------------------------------------------------- normal forms
def scorer_normal_form(crystal: Any) -> Any:
    """The normal form ``crystal-ar score`` derives from ``crystal``'s CIF: ``to_asu`` of its conventional cell at
    :data:`.score.SYMPREC` and :data:`.score.ANGLE_TOLERANCE` (raises what ``to_asu`` raises). It is
    ``asu_geometry.to_asu_crystal``, which skips spglib's symmetry search for a cubic crystal when it can prove
    the search's outcome (the crystal's own group and sites), with the same result to rounding."""
    import asu_geometry as ag

    return ag.to_asu_crystal(crystal, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)


def _derive(crystals: Sequence[Any]) -> list[tuple[Any, str | None]]:
    """:func:`scorer_normal_form` of each crystal, or ``(None, "<Error>: reason")`` (runs in worker processes)."""
    out: list[tuple[Any, str | None]] = []
    for c in crystals:
        try:
            out.append((scorer_normal_form(c), None))
        except Exception as exc:  # every failure is a reason to redraw; none is dropped silently
            out.append((None, f"{type(exc).__name__}: {exc}"))
    return out


def _chunks(items: Sequence[Any], parts: int) -> list[list[Any]]:
    step = max(1, -(-len(items) // max(parts, 1)))
    return [list(items[i : i + step]) for i in range(0, len(items), step)]


@torch.no_grad()
def score_normal_forms(model: Any, crystals: Sequence[Any], batch_size: int = 1024) -> tuple[dict[str, np.ndarray],
                                                                                            list[tuple[int, str]]]:
    """Per-factor log-likelihoods of normal forms, computed as ``crystal-ar score`` does (``CrystalTensors`` and
    ``model.log_prob``), on the model's device. Returns the columns of :data:`.model.LOGP_KEYS` (NaN for dropped
    crystals) and the dropped ``(position, reason)`` (e.g. more atoms than the model allows)."""
    from .data import CrystalTensors, ProcessedDataset

    n = len(crystals)
    out = {k: np.full(n, np.nan) for k in LOGP_KEYS}
    if n == 0:
        return out, []
    ds = ProcessedDataset.from_crystals([(str(i), c) for i, c in enumerate(crystals)])
    tensors = CrystalTensors(ds, model.vocabulary, strict=False, max_atoms=model.cfg.max_atoms)
    dropped = [(int(ident), why) for ident, why in tensors.dropped]
    kept = np.array([int(i) for i in tensors.ids], dtype=np.int64)
    dev = model.polar.device
    for s in range(0, len(tensors), batch_size):
        idx = np.arange(s, min(s + batch_size, len(tensors)))
        b = tensors.batch(idx)
        lp = model.log_prob(b if dev.type == "cpu" else b.to(dev))
        for k in LOGP_KEYS:
            out[k][kept[idx]] = lp[k].double().cpu().numpy()
    return out, dropped


# ----------------------------------------------------------------------------------------------- the run
@dataclass
class SampleSettings:
    """Everything of a run besides the model and the constraints (the CLI's options)."""

    num: int = 1000
    batch_size: int = 500
    seed: int = 0
    shard: tuple[int, int] = (0, 1)
    temperature: float = 1.0
    min_distance: float | None = None
    cif: str = "dir"
    workers: int = 1
    parallel: str = "auto"

    def __post_init__(self) -> None:
        if self.num < 1 or self.batch_size < 1:
            raise ConfigError(f"-n and --batch-size must be at least 1, got {self.num} and {self.batch_size}")
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be positive, got {self.temperature}")
        if self.min_distance is not None and not self.min_distance > 0:
            raise ConfigError(f"--min-distance must be positive, got {self.min_distance}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.parallel not in ("auto", "blocks", "pipeline"):
            raise ConfigError(f"parallel must be 'auto', 'blocks' or 'pipeline', got {self.parallel!r}")


@dataclass
class RunSummary:
    """Counts of a finished run (printed at the end)."""

    crystals: int = 0
    seconds: float = 0.0
    redraws: Counter[str] = field(default_factory=Counter)  # reason (error class) -> discarded draws
    symmetrised: int = 0  # normal form in other letters or another group than drawn
    not_normal: int = 0  # drawn sequence differs from the normal form's (logp_drawn recorded)
    min_distance_used: int = 0
    min_distance_unmet: int = 0

    @property
    def rate(self) -> float:
        """Crystals per second of the run (NaN before it has a duration)."""
        return self.crystals / self.seconds if self.seconds > 0 else float("nan")

    def add(self, other: RunSummary) -> None:
        """Add the counts of ``other`` (one block's) to these (``crystals`` and ``seconds`` are the run's)."""
        self.redraws.update(other.redraws)
        self.symmetrised += other.symmetrised
        self.not_normal += other.not_normal
        self.min_distance_used += other.min_distance_used
        self.min_distance_unmet += other.min_distance_unmet


@dataclass
class _BlockState:
    block: Block
    generator: torch.Generator
    drawn: list[Any]
    logp: dict[str, np.ndarray]
    tries: np.ndarray
    ok: np.ndarray
    redraws: np.ndarray
    job: Any = None


def _symmetrised(normal: Any, drawn: Any) -> bool:
    """Whether the scorer's normal form is not merely another description of the drawn crystal: another space
    group or other orbit sizes (a normalizer image keeps both)."""
    import asu_geometry as ag

    if normal.space_group != drawn.space_group:
        return True
    g = ag.space_group(drawn.space_group)
    return sorted(g.wyckoff(x.wyckoff).multiplicity for x in normal.sites) != sorted(
        g.wyckoff(x.wyckoff).multiplicity for x in drawn.sites)


_BLOCK_RUN: SampleRun | None = None  # the run of a "blocks" worker process (set once, inherited by fork)


def _init_block_worker(run: SampleRun) -> None:
    global _BLOCK_RUN
    _BLOCK_RUN = run
    init_worker()


def _block_in_worker(block: Block) -> tuple[RenderedBatch, RunSummary]:
    """:meth:`SampleRun.process_block` in a worker, which also renders the records' output text (only the
    writing stays in the main process)."""
    assert _BLOCK_RUN is not None, "worker not initialised"
    records, summary = _BLOCK_RUN.process_block(block)
    return render_batch(records, _BLOCK_RUN.run_info, _BLOCK_RUN.settings.cif), summary


def checkpoint_sha256(ckpt: Path) -> str:
    """SHA-256 of a checkpoint's ``model.safetensors`` (what records cite)."""
    h = hashlib.sha256()
    with open(ckpt / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SampleRun:
    """One ``crystal-ar sample`` run: draw, derive the normal forms, score, write (module docstring).

    Args:
        model: a :class:`.model.CrystalARModel` (on the device to sample on).
        checkpoint: ``{"name", "sha256", "epoch"}`` of the model, stored in every record.
        constraints: the parsed constraints (checked against the model here, before any sampling).
        settings: sizes, seed, shard, knobs and output options.
    """

    def __init__(self, model: Any, checkpoint: dict[str, Any], constraints: SamplingConstraints,
                 settings: SampleSettings) -> None:
        self.model = model
        self.settings = settings
        self.constraints = constraints
        self.masks: SamplerMasks = for_model(constraints, model, settings.min_distance)
        s = settings
        self.run_info = {
            "seed": s.seed, "shard": f"{s.shard[0]}/{s.shard[1]}", "num": s.num, "batch_size": s.batch_size,
            "temperature": s.temperature, "min_distance": s.min_distance,
            "min_distance_tries": MIN_DISTANCE_TRIES if s.min_distance is not None else None,
            "constraints": constraints.to_dict(), "checkpoint": dict(checkpoint),
            "device": str(model.polar.device.type), "versions": package_versions(),
            "normal_form": {"symprec": SYMPREC, "angle_tolerance": ANGLE_TOLERANCE},
        }
        self.summary = RunSummary()

    # ------------------------------------------------------------------ drawing
    def _draw(self, n: int, generator: torch.Generator) -> tuple[list[Any], dict[str, np.ndarray], np.ndarray,
                                                                  np.ndarray]:
        s = self.settings
        out = sample(self.model, n, generator, temperature=s.temperature, min_distance=s.min_distance,
                     **self.masks.kwargs())
        logp = {k: v.double().cpu().numpy() for k, v in out.logp.items()}
        tries = out.min_distance_tries.cpu().numpy() if out.min_distance_tries is not None else np.zeros(n, int)
        ok = out.min_distance_ok.cpu().numpy() if out.min_distance_ok is not None else np.ones(n, bool)
        return out.crystals(), logp, tries, ok

    def _start(self, block: Block, pool: Any) -> _BlockState:
        g = block_generator(self.settings.seed, block.index)
        drawn, logp, tries, ok = self._draw(block.size, g)
        st = _BlockState(block, g, drawn, logp, tries, ok, np.zeros(block.size, dtype=np.int64))
        st.job = self._submit(drawn, pool)
        return st

    def _submit(self, crystals: Sequence[Any], pool: Any) -> Any:
        if pool is None:
            return _derive(crystals)
        return pool.map_async(_derive, _chunks(crystals, self.settings.workers))

    @staticmethod
    def _collect(job: Any) -> list[tuple[Any, str | None]]:
        if isinstance(job, list):
            return job
        return [r for part in job.get() for r in part]

    # ------------------------------------------------------------------ finishing a block
    def _finish(self, st: _BlockState, pool: Any, summary: RunSummary) -> list[SampleRecord]:
        from asu_geometry.normalform import same_description

        n = st.block.size
        normal: list[Any] = [None] * n
        todo = np.arange(n)
        results = self._collect(st.job)
        for rnd in range(MAX_REDRAW_ROUNDS + 1):
            bad = []
            for i, (nf, err) in zip(todo.tolist(), results, strict=True):
                if nf is None:
                    bad.append(i)
                    summary.redraws[str(err).split(":")[0]] += 1
                normal[i] = nf
            # the scorer must also be able to score the normal form (e.g. within the model's atom limit)
            scorable = [i for i in todo.tolist() if normal[i] is not None]
            differs = [i for i in scorable if not same_description(normal[i], st.drawn[i], SAME_DESCRIPTION_TOL,
                                                                   SAME_DESCRIPTION_TOL)]
            scored, dropped = score_normal_forms(self.model, [normal[i] for i in differs])
            for pos, why in dropped:
                bad.append(differs[pos])
                summary.redraws[why.split(":")[0]] += 1
            for k in LOGP_KEYS:
                for pos, i in enumerate(differs):
                    st.logp.setdefault(f"nf_{k}", np.full(n, np.nan))[i] = scored[k][pos]
            for i in scorable:
                if i not in differs:
                    for k in LOGP_KEYS:
                        st.logp.setdefault(f"nf_{k}", np.full(n, np.nan))[i] = st.logp[k][i]
            if not bad:
                break
            if rnd == MAX_REDRAW_ROUNDS:
                reasons = Counter(str(r[1]).split(":")[0] for r in results if r[0] is None)
                raise SamplingError(
                    f"block {st.block.index}: after {MAX_REDRAW_ROUNDS} rounds of redraws, {len(bad)} crystal(s) "
                    f"still cannot be read back by the scorer ({dict(reasons)}); the model or the constraints "
                    "produce nearly overlapping atoms (try --min-distance)")
            todo = np.array(sorted(bad))
            st.redraws[todo] += 1
            drawn, logp, tries, ok = self._draw(len(todo), st.generator)
            for pos, i in enumerate(todo.tolist()):
                st.drawn[i] = drawn[pos]
                normal[i] = None
                for k in LOGP_KEYS:
                    st.logp[k][i] = logp[k][pos]
                st.tries[i], st.ok[i] = tries[pos], ok[pos]
            results = self._collect(self._submit([st.drawn[i] for i in todo.tolist()], pool))
        return self._records(st, normal, summary)

    def _records(self, st: _BlockState, normal: list[Any], summary: RunSummary) -> list[SampleRecord]:
        from asu_geometry.normalform import same_description

        s = self.settings
        width = max(6, len(str(s.num - 1)))
        out = []
        for pos in range(st.block.size):
            nf, drawn = normal[pos], st.drawn[pos]
            same = same_description(nf, drawn, SAME_DESCRIPTION_TOL, SAME_DESCRIPTION_TOL)
            logp = {k: float(st.logp[f"nf_{k}"][pos]) for k in LOGP_KEYS}
            md = None
            if s.min_distance is not None:
                md = {"threshold": s.min_distance, "used": bool(st.tries[pos] > 0), "tries": int(st.tries[pos]),
                      "satisfied": bool(st.ok[pos])}
                summary.min_distance_used += int(st.tries[pos] > 0)
                summary.min_distance_unmet += int(not st.ok[pos])
            if not same:
                summary.not_normal += 1
            if _symmetrised(nf, drawn):
                summary.symmetrised += 1
            index = st.block.start + pos
            out.append(SampleRecord(
                f"s{index:0{width}d}", index, nf, logp, None if same else float(st.logp["logp_total"][pos]), md,
                {"redraws": int(st.redraws[pos])}, drawn,
            ))
        return out

    def process_block(self, block: Block) -> tuple[list[SampleRecord], RunSummary]:
        """One block from start to finish in this process: draw, derive the normal forms, redraw what the scorer
        cannot read, score, make the records. Returns the records and the block's counts."""
        summary = RunSummary()
        return self._finish(self._start(block, None), None, summary), summary

    def parallel_mode(self) -> str:
        """``"blocks"`` (each worker process runs whole blocks, :meth:`process_block`) for a model on the CPU,
        ``"pipeline"`` (this process samples on the device, workers derive the normal forms) otherwise;
        ``"inline"`` without workers. Every mode writes the same files."""
        if self.settings.workers == 0:
            return "inline"
        if self.settings.parallel != "auto":
            return self.settings.parallel
        return "blocks" if self.model.polar.device.type == "cpu" else "pipeline"

    # ------------------------------------------------------------------ the whole run
    def run(self, out: str | Path, progress: bool = True, log: Callable[[str], None] | None = None) -> RunSummary:
        """Draw every block of this shard, write the files in ``out`` and return the summary."""
        from tqdm import tqdm

        s = self.settings
        blocks = stream_blocks(s.num, s.batch_size, s.shard)
        writer = SampleWriter(out, self.run_info, cif=s.cif)
        total = sum(b.size for b in blocks)
        bar = tqdm(total=total, desc="sampling", unit="crystal", disable=not progress, file=sys.stderr)
        mode = self.parallel_mode() if blocks else "inline"
        if mode == "blocks" and len(blocks) == 1:
            mode = "inline"  # one block: a worker process would only add its start-up
        pool = None
        if mode != "inline":
            import multiprocessing as mp

            init, args = (_init_block_worker, (self,)) if mode == "blocks" else (init_worker, ())
            pool = mp.get_context("fork").Pool(min(s.workers, len(blocks)) if mode == "blocks" else s.workers,
                                               initializer=init, initargs=args)
        t0 = time.perf_counter()
        try:
            if mode == "pipeline":
                window: deque[_BlockState] = deque()
                for b in blocks:
                    window.append(self._start(b, pool))  # the next block is drawn while workers derive this one
                    if len(window) > 1:
                        self._write(writer, self._finish(window.popleft(), pool, self.summary), bar)
                while window:
                    self._write(writer, self._finish(window.popleft(), pool, self.summary), bar)
            else:
                done = (pool.imap(_block_in_worker, blocks) if pool is not None
                        else (self.process_block(b) for b in blocks))
                for records, counts in done:  # in stream order
                    self.summary.add(counts)
                    self._write(writer, records, bar)
        except BaseException:
            if pool is not None:  # an error or Ctrl-C: stop the workers now, not after the queued blocks
                pool.terminate()
                pool.join()
                pool = None
            writer.abort()
            raise
        finally:
            if pool is not None:
                pool.close()
                pool.join()
            bar.close()
        writer.close()
        self.summary.seconds = time.perf_counter() - t0
        self.summary.crystals = writer.count
        self.text = self._summary_text(writer)
        if log is not None:
            log(self.text)
        return self.summary

    def _write(self, writer: SampleWriter, records: list[SampleRecord] | RenderedBatch, bar: Any) -> None:
        if isinstance(records, RenderedBatch):
            writer.write_rendered(records)
            bar.update(records.count)
        else:
            writer.write(records)
            bar.update(len(records))

    def _summary_text(self, writer: SampleWriter) -> str:
        sm = self.summary
        lines = [writer.summary(sm.seconds)]
        n = max(sm.crystals, 1)
        lines.append(f"  normal forms: {sm.not_normal} of {sm.crystals} drawn sequences were not their normal form "
                     f"(logp_drawn recorded), {sm.symmetrised} symmetrised by the scorer's to_asu "
                     f"(symprec {SYMPREC} A)")
        total_redraws = sum(sm.redraws.values())
        if total_redraws:
            lines.append(f"  redrawn: {total_redraws} draws the scorer could not read back "
                         f"({100 * total_redraws / n:.1f} % of the crystals; {dict(sm.redraws)})")
        if self.settings.min_distance is not None:
            lines.append(f"  --min-distance {self.settings.min_distance} A: coordinates redrawn in "
                         f"{sm.min_distance_used} crystals, threshold not met in {sm.min_distance_unmet}")
        return "\n".join(lines)
