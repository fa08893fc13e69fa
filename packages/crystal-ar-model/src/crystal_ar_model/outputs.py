"""Output files of ``crystal-ar sample``, written batch by batch and published atomically.

In ``OUT/``:

* ``samples.jsonl``: one JSON record per crystal (:meth:`SampleRecord.to_dict`): the ``AsuCrystal`` in normal
  form, the per-factor log-likelihoods of that normal form (``logp_*``, what ``crystal-ar score`` reports),
  the crystal as drawn (``drawn``) and the log-probability of the sequence actually drawn when it differs, the
  min-distance resampling record, and the run's constraints, seed, shard, checkpoint hash and package versions;
* ``samples.extxyz``: the conventional cells (Cartesian, Angstrom) of the crystals as drawn, readable by ASE;
* ``cif/`` (one ``<id>.cif`` per crystal) or ``cif.zip``: symmetric CIFs of the crystals as drawn, with the
  space group's operations and one row per ASU site (multiplicity and Wyckoff letter), from
  :func:`asu_geometry.writers.to_cif`.

Files grow as ``*.partial`` while sampling runs and are renamed when the run completes, so a killed run never
leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asu_geometry import AsuCrystal
from asu_geometry.writers import to_cif, to_extxyz

RECORD_FORMAT = "crystal-ar-sample/1"


@dataclass
class SampleRecord:
    """One generated crystal and everything needed to reproduce and re-score it."""

    id: str
    index: int  # position in the unsharded stream of the run
    crystal: AsuCrystal  # normal form
    logp: dict[str, float]  # per-factor log-likelihoods of the normal form (natural log)
    logp_drawn: float | None = None  # log-probability of the construction sequence actually drawn, if different
    min_distance: dict[str, Any] | None = None  # {"threshold": A, "used": bool, "tries": int} when enabled
    extra: dict[str, Any] = field(default_factory=dict)
    drawn: AsuCrystal | None = None  # the crystal as drawn (what the CIF and extxyz hold); None: ``crystal``

    @property
    def sample(self) -> AsuCrystal:
        """The crystal as drawn (written to the CIF and extxyz files)."""
        return self.drawn if self.drawn is not None else self.crystal

    def to_dict(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON record of ``samples.jsonl``: format, id, index, the normal form (``crystal``), the ``logp_*``
        columns, the sequence as drawn (``drawn``) and its ``logp_drawn`` when it differs from the normal form,
        ``min_distance`` when used, extra fields, and the run's settings ``run``."""
        d: dict[str, Any] = {"@format": RECORD_FORMAT, "id": self.id, "index": self.index,
                             "crystal": self.crystal.to_dict(), **{k: float(v) for k, v in self.logp.items()}}
        if self.drawn is not None:
            d["drawn"] = self.drawn.to_dict()
        if self.logp_drawn is not None:
            d["logp_drawn"] = float(self.logp_drawn)
        if self.min_distance is not None:
            d["min_distance"] = self.min_distance
        return d | self.extra | {"run": dict(run)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SampleRecord:
        """A record from :meth:`to_dict`'s layout (``ValueError`` for another format); other keys go to ``extra``."""
        if d.get("@format") != RECORD_FORMAT:
            raise ValueError(f"not a crystal-ar sample record (format {d.get('@format')!r})")
        logp = {k: float(v) for k, v in d.items() if k.startswith("logp_") and k != "logp_drawn"}
        known = {"@format", "id", "index", "crystal", "drawn", "logp_drawn", "min_distance", "run", *logp}
        drawn = AsuCrystal.from_dict(d["drawn"]) if d.get("drawn") is not None else None
        return cls(str(d["id"]), int(d["index"]), AsuCrystal.from_dict(d["crystal"]), logp, d.get("logp_drawn"),
                   d.get("min_distance"), {k: v for k, v in d.items() if k not in known}, drawn)


def read_samples(path: str | Path) -> list[SampleRecord]:
    """The records of a ``samples.jsonl`` (or ``.jsonl.xz`` / ``.jsonl.gz``) file."""
    p = Path(path)
    if p.suffix == ".xz":
        import lzma

        text = lzma.open(p, "rt").read()
    elif p.suffix == ".gz":
        import gzip

        text = gzip.open(p, "rt").read()
    else:
        text = p.read_text()
    return [SampleRecord.from_dict(json.loads(ln)) for ln in text.splitlines() if ln.strip()]


@dataclass(frozen=True)
class RenderedBatch:
    """A batch of records as the text of the three output files, made where the records are (e.g. in the
    worker process that drew them), so that the writer only appends it."""

    jsonl: str  # lines of samples.jsonl
    extxyz: str  # frames of samples.extxyz
    cifs: tuple[tuple[str, str], ...]  # (file name, CIF text) per crystal; empty for cif="none"
    groups: Counter[int]  # space group -> crystals (as drawn)
    elements: Counter[str]  # element -> crystals containing it (as drawn)
    count: int


def render_batch(records: Sequence[SampleRecord], run: Mapping[str, Any], cif: str = "dir") -> RenderedBatch:
    """The text of ``records`` in the three formats of :class:`SampleWriter` (``run``: the run-level metadata
    of every record; ``cif``: ``"dir"``, ``"zip"`` or ``"none"``)."""
    jsonl = "".join(json.dumps(r.to_dict(run)) + "\n" for r in records)
    info = [{"id": r.id, **{k: v for k, v in r.logp.items()}} for r in records]
    extxyz = to_extxyz([r.sample for r in records], info) if records else ""
    cifs = tuple((f"{r.id}.cif", to_cif(r.sample, name=r.id, comments={"logp_total": r.logp.get("logp_total")}))
                 for r in records) if cif != "none" else ()
    groups: Counter[int] = Counter(r.sample.space_group for r in records)
    elements: Counter[str] = Counter()
    for r in records:
        elements.update({s.element for s in r.sample.sites})
    return RenderedBatch(jsonl, extxyz, cifs, groups, elements, len(records))


class SampleWriter:
    """Append batches of :class:`SampleRecord` to the output files; :meth:`close` publishes them.

    Args:
        out: the output folder (created).
        run: run-level metadata stored in every record (constraints, seed, shard, checkpoint hash, versions).
        cif: ``"dir"`` (``OUT/cif/<id>.cif``), ``"zip"`` (``OUT/cif.zip``) or ``"none"``.
    """

    def __init__(self, out: str | Path, run: Mapping[str, Any], cif: str = "dir") -> None:
        if cif not in ("dir", "zip", "none"):
            raise ValueError(f"cif must be 'dir', 'zip' or 'none', got {cif!r}")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run = dict(run)
        self.cif = cif
        self.count = 0
        self.groups: Counter[int] = Counter()
        self.elements: Counter[str] = Counter()
        self._jsonl = open(self.out / "samples.jsonl.partial", "w")  # noqa: SIM115 (closed in close())
        self._xyz = open(self.out / "samples.extxyz.partial", "w")  # noqa: SIM115
        self._zip = zipfile.ZipFile(self.out / "cif.zip.partial", "w", zipfile.ZIP_DEFLATED) if cif == "zip" else None
        self._cif_dir = self.out / "cif.partial"
        if cif == "dir":
            self._cif_dir.mkdir(exist_ok=True)

    def write(self, records: Sequence[SampleRecord]) -> None:
        """Write one batch (all three formats)."""
        self.write_rendered(render_batch(records, self.run, self.cif))

    def write_rendered(self, batch: RenderedBatch) -> None:
        """Append a batch rendered by :func:`render_batch` (with this writer's ``run`` and ``cif``)."""
        if batch.count == 0:
            return
        self._jsonl.write(batch.jsonl)
        self._xyz.write(batch.extxyz)
        for name, text in batch.cifs:
            if self._zip is not None:  # fixed timestamps: the same run gives a byte-identical zip
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                self._zip.writestr(info, text)
            elif self.cif == "dir":
                (self._cif_dir / name).write_text(text)
        self.groups.update(batch.groups)
        self.elements.update(batch.elements)
        self.count += batch.count
        self._jsonl.flush()
        self._xyz.flush()

    def abort(self) -> None:
        """Close the files of a failed run without publishing them (they stay as ``*.partial``)."""
        self._jsonl.close()
        self._xyz.close()
        if self._zip is not None:
            self._zip.close()

    def close(self) -> Path:
        """Finish the files and rename them into place (replacing an earlier run's files)."""
        self._jsonl.close()
        self._xyz.close()
        os.replace(self.out / "samples.jsonl.partial", self.out / "samples.jsonl")
        os.replace(self.out / "samples.extxyz.partial", self.out / "samples.extxyz")
        if self._zip is not None:
            self._zip.close()
            os.replace(self.out / "cif.zip.partial", self.out / "cif.zip")
        elif self.cif == "dir":
            final = self.out / "cif"
            if final.exists():
                for f in final.glob("*.cif"):
                    f.unlink()
                final.rmdir()
            os.replace(self._cif_dir, final)
        return self.out

    def summary(self, seconds: float, top: int = 10) -> str:
        """A few lines for the end of a run: counts, rate, the most frequent groups and elements."""
        import asu_geometry as ag

        rate = self.count / seconds if seconds > 0 else float("nan")
        groups = ", ".join(f"{ag.space_group(g).symbol} ({g}) {n}" for g, n in self.groups.most_common(top))
        elements = ", ".join(f"{e} {n}" for e, n in self.elements.most_common(top))
        return (f"{self.count} crystals in {seconds:.1f} s ({rate:.1f} crystals/s) -> {self.out}\n"
                f"  space groups ({len(self.groups)} distinct): {groups}\n"
                f"  elements ({len(self.elements)} distinct, crystals containing each): {elements}")
