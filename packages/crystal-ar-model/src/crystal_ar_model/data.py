"""Data pipeline: CDVAE-layout CSVs / CIFs -> ``AsuCrystal`` -> arrays cached on disk -> PyG batches.

One path for every input::

    CSV rows or CIF files --(asu_geometry.to_asu)--> AsuCrystal --(encode)--> ProcessedDataset (.npz cache)
        --(CrystalTensors)--> torch_geometric.data.Batch

A :class:`ProcessedDataset` is vocabulary-independent (elements are atomic numbers). The cache key is the
SHA-256 of the input file's bytes together with the conversion settings, the pipeline version and a hash
of the installed asu-geometry modules and table, so editing a file or changing the codec re-processes it.
Every crystal that fails to convert is recorded with its id and reason in a :class:`ConversionReport`;
nothing is dropped silently.

Batches carry per crystal ``space_group`` (1..230), ``lattice`` (a, b, c, alpha, beta, gamma; Angstrom,
degrees), ``comp`` (multi-hot element occupancy over the vocabulary) and per ASU atom (a PyG node)
``wyckoff`` (global index 0..1730), ``element`` (vocabulary index), ``shape`` (shape index), ``frac``
(fractional coordinates in the exact ASU) and ``mult`` (Wyckoff multiplicity), with ``batch``/``ptr``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, TooManyAtomsError, UnknownElementError

PIPELINE_VERSION = 1
PRESETS = ("mp20", "mp20-available")
_ARRAYS = (
    "space_group",
    "lattice",
    "site_ptr",
    "site_wyckoff",
    "site_z",
    "site_shape",
    "site_frac",
    "site_mult",
)


# --------------------------------------------------------------------------------------------- conversion
@dataclass
class ConversionReport:
    """How many crystals of a source converted, and why the others failed."""

    source: str
    total: int = 0
    converted: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    from_cache: bool = False

    @property
    def failed(self) -> int:
        """Number of rows that could not be converted (``failures``)."""
        return len(self.failures)

    def reasons(self) -> dict[str, int]:
        """Failure counts per error class name."""
        return dict(Counter(r.split(":", 1)[0] for _, r in self.failures))

    def summary(self) -> str:
        """One line: source, converted of total, failures (with their counts per error class) and the rate."""
        rate = f", {self.total / self.seconds:.1f} crystals/s" if self.seconds > 0 and not self.from_cache else ""
        src = " (cached)" if self.from_cache else ""
        s = f"{self.source}: {self.converted}/{self.total} converted, {self.failed} failed{src}{rate}"
        if self.failures:
            s += " " + json.dumps(self.reasons())
        return s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the report; :meth:`from_dict` reads it back."""
        return {
            "source": self.source,
            "total": self.total,
            "converted": self.converted,
            "failures": [list(f) for f in self.failures],
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConversionReport:
        """A report from :meth:`to_dict`'s layout."""
        return cls(d["source"], d["total"], d["converted"], [tuple(f) for f in d["failures"]], d["seconds"])


def _convert_one(args: tuple[str, str, float, float]) -> tuple[str, Any]:
    import asu_geometry as ag

    ident, cif, symprec, angle_tolerance = args
    try:
        crystal = ag.to_asu(ag.structure_from_cif_string(cif), symprec=symprec, angle_tolerance=angle_tolerance)
        return ident, crystal
    except Exception as exc:  # recorded with its class name; never dropped silently
        return ident, f"{type(exc).__name__}: {exc}"


def convert_cifs(
    ids: Sequence[str],
    cifs: Sequence[str],
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    workers: int = 1,
    source: str = "input",
    progress: bool = False,
) -> tuple[list[tuple[str, Any]], ConversionReport]:
    """Convert CIF strings with ``asu_geometry.to_asu``.

    Returns:
        ``(converted, report)`` where ``converted`` lists ``(id, AsuCrystal)`` in input order.
    """
    t0 = time.perf_counter()
    jobs = [(str(i), c, symprec, angle_tolerance) for i, c in zip(ids, cifs, strict=True)]
    if workers > 1 and len(jobs) > 50:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            it: Iterable[tuple[str, Any]] = pool.imap(_convert_one, jobs, chunksize=16)
            results = list(_progress(it, len(jobs), progress, source))
    else:
        results = list(_progress(map(_convert_one, jobs), len(jobs), progress, source))
    report = ConversionReport(source, total=len(jobs))
    ok = []
    for ident, r in results:
        if isinstance(r, str):
            report.failures.append((ident, r))
        else:
            ok.append((ident, r))
    report.converted = len(ok)
    report.seconds = time.perf_counter() - t0
    return ok, report


def _progress(it: Iterable[Any], total: int, on: bool, desc: str) -> Iterable[Any]:
    if not on:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=f"to_asu {desc}", unit="crystal", leave=False)


# ------------------------------------------------------------------------------------------ the arrays
@dataclass
class ProcessedDataset:
    """Crystals as flat numpy arrays (CSR layout for the ASU sites). Vocabulary independent."""

    ids: np.ndarray  # (n,) str
    space_group: np.ndarray  # (n,) int64, 1..230
    lattice: np.ndarray  # (n, 6) float64
    site_ptr: np.ndarray  # (n + 1,) int64
    site_wyckoff: np.ndarray  # (m,) int64 global Wyckoff index
    site_z: np.ndarray  # (m,) int64 atomic number
    site_shape: np.ndarray  # (m,) int64
    site_frac: np.ndarray  # (m, 3) float64
    site_mult: np.ndarray  # (m,) int64

    def __len__(self) -> int:
        return int(self.space_group.shape[0])

    @classmethod
    def from_crystals(cls, items: Sequence[tuple[str, Any]]) -> ProcessedDataset:
        """Encode ``(id, AsuCrystal)`` pairs."""
        import asu_geometry as ag
        from pymatgen.core import Element

        ids, sgs, lats, ptr = [], [], [], [0]
        wy, zs, sh, fr, mu = [], [], [], [], []
        for ident, c in items:
            g = ag.space_group(c.space_group)
            if not getattr(c, "anchored", True):
                raise DataError(
                    f"crystal {ident}: not in normal form (a polar crystal without its anchored site 0); "
                    "convert it with asu_geometry.to_asu"
                )
            ids.append(str(ident))
            sgs.append(c.space_group)
            lats.append(c.lattice)
            for s in c.sites:
                wp = g.wyckoff(s.wyckoff)
                wy.append(wp.index)
                zs.append(Element(s.element).Z)
                sh.append(s.shape_index)
                fr.append(s.frac_coords)
                mu.append(wp.multiplicity)
            ptr.append(len(wy))
        return cls(
            np.array(ids, dtype=str),
            np.array(sgs, dtype=np.int64),
            np.array(lats, dtype=np.float64).reshape(-1, 6),
            np.array(ptr, dtype=np.int64),
            np.array(wy, dtype=np.int64),
            np.array(zs, dtype=np.int64),
            np.array(sh, dtype=np.int64),
            np.array(fr, dtype=np.float64).reshape(-1, 3),
            np.array(mu, dtype=np.int64),
        )

    def subset(self, idx: Sequence[int] | np.ndarray) -> ProcessedDataset:
        """The crystals at positions ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.site_ptr[idx], self.site_ptr[idx + 1]
        counts = ends - starts
        node = _ranges(starts, counts)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return ProcessedDataset(
            self.ids[idx],
            self.space_group[idx],
            self.lattice[idx],
            ptr,
            self.site_wyckoff[node],
            self.site_z[node],
            self.site_shape[node],
            self.site_frac[node],
            self.site_mult[node],
        )

    @classmethod
    def concat(cls, parts: Sequence[ProcessedDataset]) -> ProcessedDataset:
        """One dataset of several, in order (site pointers shifted)."""
        ptrs, off = [np.zeros(1, np.int64)], 0
        for p in parts:
            ptrs.append(p.site_ptr[1:] + off)
            off += int(p.site_ptr[-1])
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(
            cat("ids"),
            cat("space_group"),
            cat("lattice"),
            np.concatenate(ptrs),
            cat("site_wyckoff"),
            cat("site_z"),
            cat("site_shape"),
            cat("site_frac"),
            cat("site_mult"),
        )

    def element_sets(self) -> list[tuple[int, ...]]:
        """Sorted atomic numbers present in each crystal."""
        return [
            tuple(sorted(set(self.site_z[a:b].tolist())))
            for a, b in zip(self.site_ptr[:-1], self.site_ptr[1:], strict=True)
        ]

    def content_hash(self) -> str:
        """SHA-256 over every array (what checkpoints record as the data hash)."""
        h = hashlib.sha256()
        for name in ("ids", *_ARRAYS):
            a = np.ascontiguousarray(getattr(self, name))
            h.update(name.encode())
            h.update(a.astype("U64").tobytes() if name == "ids" else a.tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        """Write atomically as ``.npz``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, ids=self.ids, **{k: getattr(self, k) for k in _ARRAYS})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ProcessedDataset:
        """A dataset written by :meth:`save` (an ``.npz`` file, read without pickle)."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z["ids"], *(z[k] for k in _ARRAYS))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total, dtype=np.int64) + offsets


# ---------------------------------------------------------------------------------------- CSV + cache
def read_cdvae_csv(path: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, cifs)`` of a CDVAE-layout CSV (``.csv``, ``.csv.xz``, ``.csv.gz``); ids: ``material_id``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as CSV ({type(exc).__name__}: {exc})") from exc
    if "cif" not in df.columns:
        raise DataError(f"{path}: no 'cif' column (columns: {list(df.columns)})")
    if "material_id" in df.columns:
        ids = [str(x) for x in df["material_id"]]
    else:
        ids = [f"row{i}" for i in range(len(df))]
    return ids, ["" if pd.isna(c) else str(c) for c in df["cif"]]  # an empty cell is an empty CIF, not "nan"


def default_cache_dir() -> Path:
    """``$CRYSTAL_AR_CACHE`` or ``~/.cache/crystal-ar``."""
    return Path(os.environ.get("CRYSTAL_AR_CACHE", Path.home() / ".cache" / "crystal-ar"))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@cache
def codec_fingerprint() -> str:
    """SHA-256 of the installed asu_geometry modules and table, so a fixed codec invalidates the cache."""
    import asu_geometry as ag

    root = Path(ag.__file__).parent
    h = hashlib.sha256()
    for f in sorted([*root.glob("*.py"), *root.glob("data/*")]):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(path: Path, symprec: float, angle_tolerance: float) -> str:
    """Content hash of a source file plus everything that changes its conversion (settings, codec code)."""
    import asu_geometry as ag

    h = hashlib.sha256()
    h.update(_file_sha256(path).encode())
    h.update(codec_fingerprint().encode())
    h.update(
        json.dumps(
            {
                "symprec": symprec,
                "angle_tolerance": angle_tolerance,
                "pipeline": PIPELINE_VERSION,
                "asu_geometry": getattr(ag, "__version__", "?"),
            },
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:32]


def load_csv(
    path: str | Path,
    cache_dir: str | Path | None = None,
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    workers: int = 1,
    progress: bool = False,
) -> tuple[ProcessedDataset, ConversionReport]:
    """Convert a CDVAE CSV, or load its processed form from the cache (keyed by content hash)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(path, symprec, angle_tolerance)
    npz, rep = cache / f"{key}.npz", cache / f"{key}.report.json"
    if npz.is_file() and rep.is_file():
        t0 = time.perf_counter()
        ds = ProcessedDataset.load(npz)
        report = ConversionReport.from_dict(json.loads(rep.read_text()))
        report.from_cache, report.seconds = True, time.perf_counter() - t0
        return ds, report
    ids, cifs = read_cdvae_csv(path)
    items, report = convert_cifs(ids, cifs, symprec, angle_tolerance, workers, source=path.name, progress=progress)
    ds = ProcessedDataset.from_crystals(items)
    ds.save(npz)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(report.to_dict(), fh)
    os.replace(tmp, rep)
    return ds, report


@dataclass
class DataSplits:
    """Train / validation (/ test) datasets of a preset, with conversion reports and a hash."""

    preset: str
    train: ProcessedDataset
    val: ProcessedDataset
    test: ProcessedDataset | None
    reports: list[ConversionReport]

    @property
    def data_hash(self) -> str:
        """SHA-256 over the train and validation sets' content hashes (what checkpoints record)."""
        h = hashlib.sha256()
        for d in (self.train, self.val):
            h.update(d.content_hash().encode())
        return h.hexdigest()


def _find(directory: Path, stem: str) -> Path:
    for ext in (".csv", ".csv.xz", ".csv.gz", ".csv.bz2"):
        p = directory / f"{stem}{ext}"
        if p.is_file():
            return p
    raise DataError(f"{directory}: no {stem}.csv[.xz|.gz|.bz2]")


def holdout_split(n: int, fraction: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of ``range(n)`` into (train, holdout) indices, holdout of ``fraction``."""
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(fraction * n))) if n > 1 else 0
    return np.sort(perm[k:]), np.sort(perm[:k])


def load_preset(
    preset: str,
    data_dir: str | Path | None,
    cache_dir: str | Path | None = None,
    symprec: float = 0.1,
    angle_tolerance: float = 5.0,
    workers: int = 1,
    progress: bool = False,
    max_rows: int | None = None,
    load_test: bool = False,
) -> DataSplits:
    """Load a named dataset preset, or a single CDVAE CSV file given as ``preset``.

    * ``mp20``: ``DIR/{train,val,test}.csv`` (the full CDVAE MP-20 split, downloaded by the user).
    * ``mp20-available``: train on ``DIR/train.first1000.csv.xz`` + ``DIR/val.partial.csv.xz`` with a fixed
      5 % held out for validation; test on ``DIR/test.partial.csv.xz``.
    * a path to one CSV file: train on it with a fixed 5 % held out for validation (test fixtures).

    ``max_rows`` truncates the training set (after the split), for quick runs.
    """
    kw = dict(
        cache_dir=cache_dir,
        symprec=symprec,
        angle_tolerance=angle_tolerance,
        workers=workers,
        progress=progress,
    )
    reports: list[ConversionReport] = []

    def get(p: Path) -> ProcessedDataset:
        ds, rep = load_csv(p, **kw)  # type: ignore[arg-type]
        reports.append(rep)
        return ds

    test = None
    if preset == "mp20":
        if data_dir is None:
            raise DataError("preset mp20 needs --data-dir (the folder with train.csv, val.csv, test.csv)")
        d = Path(data_dir)
        train, val = get(_find(d, "train")), get(_find(d, "val"))
        if load_test:
            test = get(_find(d, "test"))
    elif preset == "mp20-available":
        if data_dir is None:
            raise DataError("preset mp20-available needs --data-dir (e.g. ../shared/data/mp_20_partial)")
        d = Path(data_dir)
        pool = ProcessedDataset.concat([get(_find(d, "train.first1000")), get(_find(d, "val.partial"))])
        tr, ho = holdout_split(len(pool), 0.05, seed=0)
        train, val = pool.subset(tr), pool.subset(ho)
        if load_test:
            test = get(_find(d, "test.partial"))
    elif Path(preset).is_file():
        pool = get(Path(preset))
        tr, ho = holdout_split(len(pool), 0.05, seed=0)
        train, val = pool.subset(tr), pool.subset(ho)
    else:
        raise DataError(f"unknown data preset {preset!r}: use one of {PRESETS} or a path to a CDVAE CSV file")
    if max_rows is not None:
        train = train.subset(np.arange(min(max_rows, len(train))))
    return DataSplits(preset, train, val, test, reports)


# ----------------------------------------------------------------------------------------- to tensors
def primitive_atom_counts(ds: ProcessedDataset) -> np.ndarray:
    """(n,) atoms in the primitive cell of each crystal: sum over sites of multiplicity / centring points."""
    from .periodic import group_geometry

    cent = group_geometry().centring.numpy()[ds.space_group - 1]
    conv = np.add.reduceat(ds.site_mult, ds.site_ptr[:-1]) if len(ds) and len(ds.site_mult) else np.zeros(len(ds))
    conv = np.where(np.diff(ds.site_ptr) > 0, conv, 0)
    return (conv // cent).astype(np.int64)


def site_pieces(ds: ProcessedDataset) -> np.ndarray:
    """(m,) piece id (:mod:`.shapes`) of every site: site 0 of a polar crystal is on an anchored section."""
    from .shapes import is_polar, shape_table

    t = shape_table()
    polar = np.array([is_polar(n) for n in range(1, 231)])
    n = np.diff(ds.site_ptr)
    crystal = np.repeat(np.arange(len(ds)), n)
    anchored = (np.arange(len(ds.site_wyckoff)) == ds.site_ptr[:-1][crystal]) & polar[ds.space_group[crystal] - 1]
    offset = t.piece_offset.numpy()[ds.site_wyckoff, anchored.astype(np.int64)]
    count = t.piece_count.numpy()[ds.site_wyckoff, anchored.astype(np.int64)]
    return np.where(ds.site_shape < count, offset + ds.site_shape, -1)


def off_piece_sites(ds: ProcessedDataset, tol: float = 1e-6) -> np.ndarray:
    """Indices of sites that are not on their piece: outside the closed ASU, off the piece's affine hull (more
    than ``tol`` in fractional units), or with a shape index the position does not have. A crystal in normal form
    from ``asu_geometry.to_asu`` has none; such a site has probability 0 under the model."""
    from .periodic import inside_asu, piece_images
    from .shapes import shape_table

    piece = site_pieces(ds)
    bad = piece < 0
    p = torch.as_tensor(np.where(bad, 0, piece))
    x = torch.as_tensor(ds.site_frac, dtype=torch.float64)
    crystal = np.repeat(np.arange(len(ds)), np.diff(ds.site_ptr))
    sg = torch.as_tensor(ds.space_group[crystal])
    outside = ~inside_asu(sg, x, 1e-7)
    basis = piece_images().basis[p]  # (m, 3, 3) rows: the piece's directions, zero rows padded
    d = x - shape_table().vertices[p, 0]
    proj = torch.linalg.pinv(basis @ basis.transpose(-1, -2), hermitian=True, rtol=1e-10)
    along = (basis.transpose(-1, -2) @ proj @ basis @ d.unsqueeze(-1)).squeeze(-1)
    off = (d - along).abs().max(-1).values > tol
    return np.nonzero(bad | outside.numpy() | off.numpy())[0]


class CrystalTensors:
    """A :class:`ProcessedDataset` as torch tensors over an element vocabulary; makes PyG batches fast.

    Args:
        ds: the processed crystals.
        vocabulary: sorted atomic numbers the model knows.
        strict: raise :class:`UnknownElementError` for a crystal with an element outside the vocabulary,
            :class:`TooManyAtomsError` for one above ``max_atoms`` and :class:`DataError` for one with a site off
            its piece (:func:`off_piece_sites`); otherwise such crystals are left out and listed in
            :attr:`dropped` as ``(id, reason)``.
        max_atoms: the model's atom limit (primitive cell), or None for no limit.
    """

    def __init__(
        self, ds: ProcessedDataset, vocabulary: Sequence[int], strict: bool = True, max_atoms: int | None = None
    ) -> None:
        self.dropped: list[tuple[str, str]] = []
        if len(ds):
            sites = off_piece_sites(ds)
            if len(sites):
                crystal_of = np.repeat(np.arange(len(ds)), np.diff(ds.site_ptr))
                bad = np.unique(crystal_of[sites])
                for i in bad:
                    j = int(sites[crystal_of[sites] == i][0])
                    reason = (
                        f"site {j - ds.site_ptr[i]} at {np.round(ds.site_frac[j], 6).tolist()} is not on its "
                        "Wyckoff piece inside the ASU (not a normal form of asu-geometry's to_asu)"
                    )
                    if strict:
                        raise DataError(f"crystal {ds.ids[i]}: {reason}")
                    self.dropped.append((str(ds.ids[i]), f"DataError: {reason}"))
                ds = ds.subset(np.setdiff1d(np.arange(len(ds)), bad))
        if max_atoms is not None and len(ds):
            n_prim = primitive_atom_counts(ds)
            over = np.nonzero(n_prim > max_atoms)[0]
            for i in over:
                reason = f"{n_prim[i]} atoms in the primitive cell, the model allows at most {max_atoms}"
                if strict:
                    raise TooManyAtomsError(f"crystal {ds.ids[i]}: {reason}")
                self.dropped.append((str(ds.ids[i]), f"TooManyAtomsError: {reason}"))
            if len(over):
                ds = ds.subset(np.setdiff1d(np.arange(len(ds)), over))
        vocab = np.asarray(vocabulary, dtype=np.int64)
        lut = np.full(max(int(vocab.max()), int(ds.site_z.max(initial=0))) + 1, -1, dtype=np.int64)
        lut[vocab] = np.arange(len(vocab))
        elem = lut[ds.site_z]
        bad_site = elem < 0
        if bad_site.any():
            crystal_of_site = np.repeat(np.arange(len(ds)), np.diff(ds.site_ptr))
            bad = np.unique(crystal_of_site[bad_site])
            from .elements import symbol

            for i in bad:
                zs = sorted(set(ds.site_z[ds.site_ptr[i] : ds.site_ptr[i + 1]].tolist()) - set(vocab.tolist()))
                reason = f"UnknownElementError: {', '.join(symbol(z) for z in zs)} not in the model's vocabulary"
                if strict:
                    raise UnknownElementError(f"crystal {ds.ids[i]}: {reason.split(': ', 1)[1]}")
                self.dropped.append((str(ds.ids[i]), reason))
            ds = ds.subset(np.setdiff1d(np.arange(len(ds)), bad))
            elem = lut[ds.site_z]
        self.ids = ds.ids
        self.num_elements = len(vocab)
        n = len(ds)
        self.space_group = torch.as_tensor(ds.space_group)
        self.lattice = torch.as_tensor(ds.lattice, dtype=torch.float64)
        self.site_ptr = ds.site_ptr
        crystal_of_site = np.repeat(np.arange(n), np.diff(ds.site_ptr))
        comp = np.zeros((n, len(vocab)), dtype=np.float32)
        comp[crystal_of_site, elem] = 1.0
        self.comp = torch.as_tensor(comp)
        self.wyckoff = torch.as_tensor(ds.site_wyckoff)
        self.element = torch.as_tensor(elem)
        self.shape = torch.as_tensor(ds.site_shape)
        self.frac = torch.as_tensor(ds.site_frac, dtype=torch.float64)
        self.mult = torch.as_tensor(ds.site_mult)

    def __len__(self) -> int:
        return int(self.space_group.shape[0])

    def batch(self, idx: Sequence[int] | np.ndarray | torch.Tensor) -> Any:
        """A ``torch_geometric.data.Batch`` of the crystals at ``idx`` (one graph per crystal)."""
        from torch_geometric.data import Batch

        idx_np = np.asarray(idx, dtype=np.int64)
        starts = self.site_ptr[idx_np]
        counts = self.site_ptr[idx_np + 1] - starts
        node = torch.as_tensor(_ranges(starts, counts))
        it = torch.as_tensor(idx_np)
        ptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]))
        return Batch(
            batch=torch.repeat_interleave(torch.arange(len(idx_np)), torch.as_tensor(counts)),
            ptr=ptr,
            space_group=self.space_group[it],
            lattice=self.lattice[it],
            comp=self.comp[it],
            wyckoff=self.wyckoff[node],
            element=self.element[node],
            shape=self.shape[node],
            frac=self.frac[node],
            mult=self.mult[node],
        )

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterable[Any]:
        """Consecutive batches over ``order`` (default: dataset order)."""
        order_np = np.arange(len(self)) if order is None else np.asarray(order)
        for s in range(0, len(order_np), batch_size):
            yield self.batch(order_np[s : s + batch_size])
