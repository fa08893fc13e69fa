"""Reading generated crystals and reference sets.

Generated crystals are read into a list of :class:`Item` (a name plus a *raw* payload: CIF text, a
record dict, a pymatgen ``Structure``, or an error message for an unreadable entry). Parsing into
``Structure`` happens later, in the worker processes, so that a broken entry only makes that crystal
invalid and never stops the run.

Supported sample inputs (by path):

* a folder of ``*.cif`` files (sorted by name) or a ``.zip`` holding ``*.cif`` members;
* an extended-XYZ file (``.extxyz`` / ``.xyz``) with ``Lattice="..."`` in each comment line;
* a JSON-lines file (``.jsonl``): one record per line, see :func:`record_to_structure`;
* a CSV in the CDVAE layout (``.csv``, ``.csv.gz``, ``.csv.xz``): a ``cif`` column;
* a PyTorch file in the layout of CDVAE's and DiffCSP's ``eval_gen.pt`` (``.pt``; needs torch), see
  :func:`read_generation_pt`.

Reference sets are CDVAE-layout CSVs (full MP-20 or the partial files).
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Lattice, Structure


class InputError(ValueError):
    """Raised for inputs that cannot be evaluated at all (missing file, unknown format, no crystals)."""


@dataclass(frozen=True)
class Item:
    """One generated crystal as read from disk: ``payload`` is CIF text, a record, a Structure or None.

    ``error`` is set when the entry could not even be read (it then counts as an invalid crystal).
    """

    name: str
    payload: Any
    error: str | None = None


CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.xz", ".csv.bz2", ".csv.zip")


def _is_csv(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in CSV_SUFFIXES)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the cache key of reference files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_cdvae_csv(path: str | Path) -> pd.DataFrame:
    """Read a CDVAE-layout CSV (plain or compressed); it must have a ``cif`` column."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"reference/sample file not found: {p}")
    try:
        df = pd.read_csv(p)
    except Exception as exc:  # pandas raises many types
        raise InputError(f"cannot read CSV {p}: {exc}") from exc
    if "cif" not in df.columns:
        raise InputError(f"{p} has no 'cif' column (CDVAE layout expected; columns: {list(df.columns)})")
    return df


def _csv_names(df: pd.DataFrame) -> list[str]:
    if "material_id" in df.columns:
        return [str(x) for x in df["material_id"]]
    return [str(i) for i in range(len(df))]


def parse_cif(text: str) -> Structure:
    """Parse CIF text into an ordered Structure (first block); raises ValueError on any problem."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty CIF")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            s = Structure.from_str(text, fmt="cif")
        except Exception as exc:
            raise ValueError(f"unreadable CIF: {type(exc).__name__}: {exc}".strip()) from exc
    if not s.is_ordered:
        raise ValueError("disordered structure (partial occupancies) is not supported")
    return s


def record_to_structure(rec: dict[str, Any]) -> Structure:
    """Build a Structure from an AsuCrystal-like record.

    Accepted keys: ``cif`` (CIF text), or a lattice (``lattice``/``lattice_matrix``: 3x3 matrix in Å,
    or ``lattice_params``: a,b,c,alpha,beta,gamma, or ``lengths`` + ``angles``) plus species
    (``species``/``elements``/``atom_types``/``numbers``: symbols or atomic numbers) plus positions
    (``frac_coords``, or ``cart_coords``/``positions`` in Å). Raises ValueError when incomplete.
    Non-finite numbers are kept (the crystal is then structurally invalid, not a crash).
    """
    if not isinstance(rec, dict):
        raise ValueError(f"record is a {type(rec).__name__}, expected an object")
    if rec.get("cif"):
        return parse_cif(rec["cif"])
    lattice: Lattice
    if rec.get("lattice") is not None or rec.get("lattice_matrix") is not None:
        m = np.asarray(rec.get("lattice", rec.get("lattice_matrix")), dtype=float)
        if m.shape == (6,):
            lattice = Lattice.from_parameters(*m)
        elif m.shape == (3, 3):
            lattice = Lattice(m)
        else:
            raise ValueError(f"lattice must be 3x3 or 6 parameters, got shape {m.shape}")
    elif rec.get("lattice_params") is not None:
        lattice = Lattice.from_parameters(*np.asarray(rec["lattice_params"], dtype=float))
    elif rec.get("lengths") is not None and rec.get("angles") is not None:
        lattice = Lattice.from_parameters(*np.asarray(rec["lengths"], float), *np.asarray(rec["angles"], float))
    else:
        raise ValueError("record has no 'cif' and no lattice ('lattice', 'lattice_params', 'lengths'+'angles')")
    species = next((rec[k] for k in SPECIES_KEYS if k in rec), None)
    if species is None:
        raise ValueError("record has no species ('species', 'elements', 'atom_types' or 'numbers')")
    species = [int(x) if isinstance(x, (int, np.integer, float)) else str(x) for x in species]
    if rec.get("frac_coords") is not None:
        coords, cart = np.asarray(rec["frac_coords"], dtype=float), False
    elif rec.get("cart_coords", rec.get("positions")) is not None:
        coords, cart = np.asarray(rec.get("cart_coords", rec.get("positions")), dtype=float), True
    else:
        raise ValueError("record has no 'frac_coords' or 'cart_coords'")
    coords = coords.reshape(-1, 3) if coords.size else np.zeros((0, 3))
    if len(species) != len(coords):
        raise ValueError(f"{len(species)} species but {len(coords)} coordinates")
    if len(species) == 0:
        raise ValueError("record has no atoms")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure(lattice, species, coords, coords_are_cartesian=cart)


def item_to_structure(item: Item) -> Structure:
    """Turn an :class:`Item` into a Structure; raises ValueError with a readable message on failure."""
    if item.error is not None:
        raise ValueError(item.error)
    p = item.payload
    if isinstance(p, Structure):
        return p
    if isinstance(p, str):
        return parse_cif(p)
    if isinstance(p, dict):
        return record_to_structure(p)
    raise ValueError(f"cannot interpret payload of type {type(p).__name__}")


def structure_key(s: Structure) -> str:
    """Content hash of a Structure (lattice, species, fractional coordinates rounded to 1e-6)."""
    h = hashlib.sha256(b"structure:v1\n")
    h.update((np.round(s.lattice.matrix, 6) + 0.0).tobytes())
    h.update("|".join(str(sp) for sp in s.species).encode())
    h.update((np.round(s.frac_coords, 6) + 0.0).tobytes())
    return h.hexdigest()


def item_key(item: Item) -> str:
    """Content hash of an item's payload (the per-crystal cache key)."""
    p = item.payload
    if item.error is not None:
        return hashlib.sha256(f"error:{item.error}".encode()).hexdigest()
    if isinstance(p, Structure):
        return structure_key(p)
    if isinstance(p, str):
        return hashlib.sha256(b"cif:" + p.encode()).hexdigest()
    try:
        blob = json.dumps(p, sort_keys=True, default=str)
    except TypeError:
        blob = repr(p)
    return hashlib.sha256(b"record:" + blob.encode()).hexdigest()


def _read_extxyz(path: Path) -> list[Item]:
    """Minimal extended-XYZ reader: needs ``Lattice="..."``; positions are Cartesian (Å)."""
    import re
    import shlex

    lines = path.read_text().splitlines()
    items: list[Item] = []
    i, frame = 0, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        name = f"{path.name}#{frame}"
        try:
            n = int(lines[i].split()[0])
        except (ValueError, IndexError):
            items.append(Item(name, None, f"bad extxyz atom-count line {i + 1}: {lines[i][:60]!r}"))
            break
        comment = lines[i + 1] if i + 1 < len(lines) else ""
        body = lines[i + 2 : i + 2 + n]
        i += 2 + n
        frame += 1
        try:
            m = re.search(r'Lattice\s*=\s*"([^"]*)"', comment, flags=re.IGNORECASE)
            if m is None:
                raise ValueError('no Lattice="..." in the comment line')
            lat = np.array([float(x) for x in m.group(1).split()], dtype=float)
            if lat.size != 9:
                raise ValueError("Lattice must have 9 numbers")
            props = re.search(r"Properties\s*=\s*(\S+)", comment, flags=re.IGNORECASE)
            sp_col, pos_col = 0, 1
            if props:
                fields = props.group(1).split(":")
                col = 0
                for k in range(0, len(fields) - 2, 3):
                    key, ncols = fields[k].lower(), int(fields[k + 2])
                    if key == "species":
                        sp_col = col
                    elif key == "pos":
                        pos_col = col
                    col += ncols
            if len(body) != n:
                raise ValueError(f"expected {n} atom lines, found {len(body)}")
            species, pos = [], []
            for row in body:
                tok = shlex.split(row)
                species.append(tok[sp_col])
                pos.append([float(t) for t in tok[pos_col : pos_col + 3]])
            m_name = re.search(r'(?:^|\s)(?:name|id)\s*=\s*"?([^"\s]+)', comment)
            items.append(
                Item(
                    m_name.group(1) if m_name else name,
                    {"lattice": lat.reshape(3, 3).tolist(), "species": species, "cart_coords": pos},
                )
            )
        except Exception as exc:
            items.append(Item(name, None, f"bad extxyz frame: {exc}"))
    return items


def _read_jsonl(path: Path) -> list[Item]:
    items: list[Item] = []
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        name = f"{path.name}:{k + 1}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append(Item(name, None, f"bad JSON on line {k + 1}: {exc}"))
            continue
        if isinstance(rec, dict):
            fmt = str(rec.get("@format", ""))
            if fmt.startswith(ASU_RECORD_FORMATS) and "cif" not in rec and not any(k in rec for k in SPECIES_KEYS):
                raise InputError(
                    f"{path}: line {k + 1} is an asymmetric-unit record ({fmt}), e.g. of `crystal-ar sample`, which "
                    "crystal-eval does not expand; evaluate the conventional cells written beside it (samples.extxyz "
                    "or the cif/ folder of the same run)")
            name = str(rec.get("id", rec.get("name", rec.get("material_id", name))))
        items.append(Item(name, rec))
    return items


ASU_RECORD_FORMATS = ("crystal-ar-sample/", "asu-crystal/")
"""``@format`` prefixes of asymmetric-unit records (crystal-ar's samples.jsonl, asu-geometry's AsuCrystal JSON):
refused unless they also carry a CIF or a species list, since only their sites, not their atoms, are given."""

SPECIES_KEYS = ("species", "elements", "atom_types", "numbers")
"""The keys a JSON-lines record may give its species under (the first present one is read)."""


PT_KEYS = ("frac_coords", "num_atoms", "atom_types", "lengths", "angles")


def _pt_error(path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}")


def read_generation_pt(path: str | Path, sample: int = 0) -> list[Item]:
    """Crystals of a PyTorch file in the layout of CDVAE's ``eval_gen.pt`` (Xie et al., ICLR 2022), which
    DiffCSP and others keep: a dict of tensors ``frac_coords`` (E, N_total, 3), ``atom_types`` (E, N_total;
    atomic numbers), ``num_atoms`` (E, n), ``lengths`` (E, n, 3; Å) and ``angles`` (E, n, 3; degrees), where E
    counts repeated samplings (``num_evals``) and the atoms of the n crystals follow one another.

    ``sample`` picks one of the E samplings (CDVAE's ``compute_metrics`` evaluates the first, 0); a file
    without the leading E axis is one sampling. The file is read with ``torch.load(weights_only=True)``,
    which unpickles tensors, containers and ``argparse.Namespace`` (CDVAE's ``eval_setting``) and nothing
    else. Raises :class:`InputError` without torch, for a file torch cannot read, a missing key or sizes that
    do not add up; a crystal that cannot be built (e.g. atomic number 0) is an invalid crystal, not an error.
    """
    import argparse
    import pickle
    import re

    path = Path(path)
    try:
        import torch
    except ImportError as exc:
        raise _pt_error(path, "reading a .pt file needs PyTorch (pip install torch), or convert it to .jsonl "
                              "(lengths, angles, atom_types, frac_coords per line)") from exc  # fmt: skip
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise _pt_error(path, "not a readable PyTorch file (torch.load cannot unpickle it)") from exc
        raise _pt_error(path, f"it holds a {found.group(1)}, and crystal-eval unpickles only tensors, containers "
                              f"and argparse.Namespace; save the five tensors {', '.join(PT_KEYS)} in a "
                              "dict") from exc  # fmt: skip
    except Exception as exc:
        raise _pt_error(path, f"not a readable PyTorch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise _pt_error(path, f"holds a {type(data).__name__}, expected a dict with {', '.join(PT_KEYS)}")
    missing = [k for k in PT_KEYS if k not in data]
    if missing:
        raise _pt_error(path, f"missing {', '.join(missing)} (expected the eval_gen.pt keys {', '.join(PT_KEYS)})")
    arrays = {k: np.asarray(data[k].detach().cpu() if hasattr(data[k], "detach") else data[k]) for k in PT_KEYS}
    batched = arrays["num_atoms"].ndim == 2
    if batched:
        n_samplings = len(arrays["num_atoms"])
        if not 0 <= sample < n_samplings:
            raise _pt_error(path, f"sample {sample} asked for, the file has {n_samplings} sampling(s)")
        arrays = {k: v[sample] for k, v in arrays.items()}
    elif sample != 0:
        raise _pt_error(path, f"sample {sample} asked for, the file has one sampling")
    counts, types, frac = arrays["num_atoms"].astype(np.int64), arrays["atom_types"], arrays["frac_coords"]
    lengths, angles = arrays["lengths"].reshape(-1, 3), arrays["angles"].reshape(-1, 3)
    if counts.ndim != 1 or (counts < 0).any():
        raise _pt_error(path, f"num_atoms must hold one non-negative count per crystal, got shape {counts.shape}")
    if types.ndim != 1:
        raise _pt_error(path, f"atom_types must be atomic numbers, one per atom; got shape {types.shape}")
    if frac.shape != (len(types), 3) or int(counts.sum()) != len(types):
        raise _pt_error(path, f"sizes do not add up: num_atoms sums to {int(counts.sum())}, atom_types has "
                              f"{len(types)} atoms, frac_coords has shape {tuple(frac.shape)}")  # fmt: skip
    if not len(lengths) == len(angles) == len(counts):
        raise _pt_error(path, f"{len(counts)} crystals in num_atoms but {len(lengths)} lengths and "
                              f"{len(angles)} angles")  # fmt: skip
    starts = np.concatenate([[0], np.cumsum(counts)])
    tag = f"#{sample}:" if batched else "#"
    return [
        Item(f"{path.name}{tag}{i}", {"lengths": lengths[i].tolist(), "angles": angles[i].tolist(),
                                      "atom_types": [int(z) for z in types[a:b]], "frac_coords": frac[a:b].tolist()})
        for i, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True))
    ]  # fmt: skip


def _read_text_or_error(name: str, data: bytes) -> Item:
    try:
        return Item(name, data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Item(name, None, f"not UTF-8 text: {exc}")


def load_items(path: str | Path, pt_sampling: int = 0) -> list[Item]:
    """Read generated crystals from a folder/zip of CIFs, an extxyz, a JSONL, a CDVAE CSV or an ``eval_gen.pt`` file
    (its sampling ``pt_sampling``, :func:`read_generation_pt`).

    Raises :class:`InputError` when the path is missing, the format is unknown, nothing is found, or
    ``pt_sampling`` is given for another format. Individual unreadable entries become items with ``error`` set.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"samples not found: {p}")
    if pt_sampling != 0 and p.suffix.lower() != ".pt":
        raise InputError("--pt-sampling applies to .pt samples files only")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".cif")
        items = [_read_text_or_error(f.name, f.read_bytes()) for f in files]
    elif p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                names = sorted(n for n in zf.namelist() if n.lower().endswith(".cif") and not n.endswith("/"))
                items = [_read_text_or_error(n, zf.read(n)) for n in names]
        except zipfile.BadZipFile as exc:
            raise InputError(f"{p} is not a readable zip file: {exc}") from exc
    elif p.suffix.lower() in (".extxyz", ".xyz"):
        items = _read_extxyz(p)
    elif p.suffix.lower() in (".jsonl", ".ndjson"):
        items = _read_jsonl(p)
    elif p.suffix.lower() == ".cif":
        items = [_read_text_or_error(p.name, p.read_bytes())]
    elif p.suffix.lower() == ".pt":
        items = read_generation_pt(p, sample=pt_sampling)
    elif _is_csv(p):
        df = read_cdvae_csv(p)
        items = [
            Item(n, c if isinstance(c, str) else None, None if isinstance(c, str) else "empty CIF field")
            for n, c in zip(_csv_names(df), df["cif"], strict=True)
        ]
    else:
        raise InputError(
            f"unknown sample format for {p}: expected a folder or .zip of .cif files, .extxyz/.xyz, .jsonl, "
            "a CDVAE .csv(.gz/.xz) or an eval_gen.pt-layout .pt file"
        )
    if not items:
        raise InputError(f"no crystals found in {p}")
    return items


def items_from_structures(structures: Iterable[Structure | None], names: Sequence[str] | None = None) -> list[Item]:
    """Wrap in-memory Structures (``None`` = a crystal that could not be built) as items."""
    out = []
    for k, s in enumerate(structures):
        name = names[k] if names is not None else str(k)
        out.append(Item(name, s) if s is not None else Item(name, None, "no structure (None)"))
    return out


def reference_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """One or more reference CSV paths as a list; :class:`InputError` when none is given or one is missing."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise InputError("no reference file given")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"reference file not found: {p}")
    return [Path(p) for p in paths]


def load_reference_cifs(paths: str | Path | Sequence[str | Path]) -> tuple[list[str], list[str], str]:
    """Read one or more CDVAE CSVs; return ``(names, cif_texts, combined content hash)``.

    Raises :class:`InputError` when a file is missing or has no ``cif`` column.
    """
    paths = reference_files(paths)
    names: list[str] = []
    cifs: list[str] = []
    h = hashlib.sha256(b"reference:v1\n")
    for p in paths:
        h.update(file_sha256(p).encode())
        df = read_cdvae_csv(p)
        names += _csv_names(df)
        cifs += [c if isinstance(c, str) else "" for c in df["cif"]]
    if not cifs:
        raise InputError(f"reference file(s) {list(map(str, paths))} contain no rows")
    return names, cifs, h.hexdigest()
