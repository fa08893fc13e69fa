"""``crystal-ar sample`` acceptance tests (issue 11), on the tiny model trained in the test session.

* exact symmetry of every sample of a run over ten groups (P1, P-1, C2/m, P2_1/c, Pnma, I4/mmm, R-3m, P6_3/mmc,
  Pm-3m, Fm-3m): every operation of the sampled group maps the conventional cell onto itself within 1e-6, and
  spglib at symprec 1e-3 finds that group or a supergroup, never a subgroup (:mod:`crystal_ar_model.fidelity`);
* the constraints hold for every sample: the listed groups, elements within ``--elements`` and containing
  ``--require-elements``, the partial crystal's atoms present unchanged (polar and non-polar groups);
* ``crystal-ar score`` of every written CIF reproduces the record's ``logp_total`` to 1e-3 nats;
* the same seed gives byte-identical files (with 0 or 1 worker processes), two shards are disjoint and their
  union is the unsharded run; every CIF parses with pymatgen and the extxyz with ASE;
* every bad input exits with status 2 and a one-line message, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import asu_geometry as ag
import numpy as np
import pandas as pd
import pytest
from asu_geometry.normalform import same_description
from crystal_ar_model.fidelity import max_operation_error, spglib_relation
from crystal_ar_model.model import LOGP_KEYS
from crystal_ar_model.outputs import SampleRecord, read_samples

GROUPS = (1, 2, 12, 14, 62, 139, 166, 194, 221, 225)
ALLOWED = ("Li", "Na", "Mg", "Al", "Si", "O", "S", "Cl", "Fe", "Cu")
REQUIRED = ("O",)
Cli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture `cli`


def _sample(cli: Cli, run: Path, out: Path, *args: str) -> list[SampleRecord]:
    r = cli("sample", "--checkpoint", str(run), "-o", str(out), "--no-progress", *args)
    assert r.returncode == 0, r.stderr
    return read_samples(out / "samples.jsonl")


def _score_cifs(cli: Cli, run: Path, out: Path) -> pd.DataFrame:
    csv = out / "rescored.csv"
    r = cli("score", str(out / "cif"), "--checkpoint", str(run), "-o", str(csv))
    assert r.returncode == 0, r.stderr
    return pd.read_csv(csv).set_index("id")


def _assert_round_trip(records: list[SampleRecord], scores: pd.DataFrame) -> None:
    assert sorted(scores.index) == sorted(r.id for r in records)
    diff = np.array([abs(scores.loc[r.id, "logp_total"] - r.logp["logp_total"]) for r in records])
    assert np.isfinite(diff).all() and float(diff.max()) < 1e-3, float(diff.max())


@pytest.fixture(scope="module")
def many_groups(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SampleRecord]]:
    from crystal_ar_model.cli import main

    out = tmp_path_factory.mktemp("many") / "out"
    rc = main(["sample", "--checkpoint", str(trained_run), "-o", str(out), "--no-progress", "-n", "60",
               "--batch-size", "30", "--space-group", ",".join(map(str, GROUPS)), "--elements", ",".join(ALLOWED),
               "--require-elements", ",".join(REQUIRED), "--workers", "0"])
    assert rc == 0
    return out, read_samples(out / "samples.jsonl")


def test_every_sample_is_exactly_symmetric(many_groups: tuple[Path, list[SampleRecord]]) -> None:
    _, recs = many_groups
    assert len(recs) == 60
    seen = {r.sample.space_group for r in recs}
    assert len(seen) >= 5, seen  # the run really covers many groups
    for r in recs:
        assert max_operation_error(r.sample) <= 1e-6, r.id
        rel, number = spglib_relation(r.sample, 1e-3)
        assert rel in ("same", "supergroup"), (r.id, rel, number)


def test_constraints_hold_for_every_sample(many_groups: tuple[Path, list[SampleRecord]]) -> None:
    _, recs = many_groups
    for r in recs:
        for c in (r.sample, r.crystal):
            elements = {s.element for s in c.sites}
            assert elements <= set(ALLOWED) and set(REQUIRED) <= elements, (r.id, elements)
        assert r.sample.space_group in GROUPS, r.id
    first = json.loads((many_groups[0] / "samples.jsonl").read_text().splitlines()[0])
    assert first["run"]["constraints"]["space_groups"] == list(GROUPS)
    assert first["run"]["constraints"]["required"] == list(REQUIRED)


def test_records_round_trip_through_score(cli: Cli, trained_run: Path,
                                          many_groups: tuple[Path, list[SampleRecord]]) -> None:
    out, recs = many_groups
    _assert_round_trip(recs, _score_cifs(cli, trained_run, out))
    xyz_scores = out / "rescored_extxyz.csv"  # the extxyz file holds the same crystals, named by record id
    res = cli("score", str(out / "samples.extxyz"), "--checkpoint", str(trained_run), "-o", str(xyz_scores))
    assert res.returncode == 0, res.stderr
    _assert_round_trip(recs, pd.read_csv(xyz_scores).set_index("id"))
    for r in recs:
        assert abs(sum(r.logp[k] for k in LOGP_KEYS[:-1]) - r.logp["logp_total"]) < 1e-3
        if r.logp_drawn is None:  # the drawn sequence is the normal form
            assert same_description(r.crystal, r.sample, 1e-9, 1e-9)


def test_every_output_parses(many_groups: tuple[Path, list[SampleRecord]]) -> None:
    import ase.io
    from pymatgen.core import Structure

    out, recs = many_groups
    frames = ase.io.read(out / "samples.extxyz", index=":")
    assert [f.info["id"] for f in frames] == [r.id for r in recs]
    assert [len(f) for f in frames] == [r.sample.num_atoms for r in recs]
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert first["run"]["seed"] == 0 and first["run"]["checkpoint"]["sha256"]
    assert set(first["run"]["versions"]) >= {"crystal-ar-model", "asu-geometry", "torch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in recs:
            s = Structure.from_file(out / "cif" / f"{r.id}.cif")
            assert len(s) == r.sample.num_atoms and s.composition.reduced_formula == \
                r.sample.to_structure().composition.reduced_formula


# ------------------------------------------------------------------------------------------- in-filling
def _user_atoms(sg: int, sites: list[dict]) -> list[tuple[str, np.ndarray]]:
    """Conventional-cell atoms of the user's sites (independent of the representatives the code chooses)."""
    from asu_geometry.crystal import expand_orbit

    return [(s["element"], p) for s in sites for p in expand_orbit(sg, np.asarray(s["frac_coords"], dtype=float))]


def _contains_atoms(crystal: ag.AsuCrystal, atoms: list[tuple[str, np.ndarray]], free: tuple[int, ...],
                    tol: float = 1e-8) -> bool:
    """Whether the crystal's conventional cell holds every given atom, after one common translation along the
    free axes ``free`` (none for a non-polar group)."""
    s = crystal.to_structure()
    frac, species = s.frac_coords, [str(x) for x in s.species]
    el0, p0 = atoms[0]
    fixed = [k for k in range(3) if k not in free]
    for i in (i for i, e in enumerate(species) if e == el0):
        t = np.zeros(3)
        t[list(free)] = (frac[i] - p0)[list(free)]
        d0 = frac[i] - p0 - t
        if np.abs((d0 - np.round(d0))[fixed]).max(initial=0.0) > tol:
            continue
        ok = True
        for el, p in atoms:
            d = frac - (p + t)
            d -= np.round(d)
            if not any(species[j] == el for j in np.nonzero(np.abs(d).max(1) < tol)[0]):
                ok = False
                break
        if ok:
            return True
    return False


@pytest.mark.parametrize("case", ["rocksalt", "wurtzite"])
def test_partial_crystal_is_present_unchanged(cli: Cli, trained_run: Path, tmp_path: Path,
                                              case: str) -> None:
    if case == "rocksalt":  # non-polar, lattice given: the user's atoms at the user's positions
        user = {"space_group": "Fm-3m", "lattice": [5.64, 5.64, 5.64, 90, 90, 90],
                "sites": [{"element": "Na", "wyckoff": "a", "frac_coords": [0.5, 0.5, 0]},
                          {"element": "Cl", "frac_coords": [0, 0, 0.5]}]}
        sg = 225
    else:  # polar P6_3mc, no lattice: positions along z are defined relative to each other only
        user = {"space_group": 186, "sites": [{"element": "Zn", "frac_coords": [1 / 3, 2 / 3, 0.1]},
                                              {"element": "O", "frac_coords": [2 / 3, 1 / 3, 0.98]}]}
        sg = 186
    free = ag.space_group(sg).free_axes
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(user))
    out = tmp_path / "out"
    recs = _sample(cli, trained_run, out, "--partial", str(path), "-n", "24", "--batch-size", "12",
                   "--workers", "0", "--max-atoms", "12")
    atoms = _user_atoms(sg, user["sites"])
    for r in recs:
        c = r.sample
        assert c.space_group == sg
        if user.get("lattice"):
            assert c.lattice == tuple(float(v) for v in user["lattice"])
        assert _contains_atoms(c, atoms, free), (r.id, c)
        assert max_operation_error(c) <= 1e-6
    assert max(len(r.sample.sites) for r in recs) > len(user["sites"])  # the model adds sites to the partial one
    _assert_round_trip(recs, _score_cifs(cli, trained_run, out))


# ------------------------------------------------------------------------------------ reproducibility
def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_identical_files(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    args = ("-n", "10", "--batch-size", "4", "--seed", "7", "--min-distance", "0.5", "--temperature", "0.9")
    _sample(cli, trained_run, tmp_path / "a", *args, "--workers", "0")
    _sample(cli, trained_run, tmp_path / "b", *args, "--workers", "1")
    _sample(cli, trained_run, tmp_path / "c", *args, "--workers", "0", "--cif", "zip")
    _sample(cli, trained_run, tmp_path / "d", *args, "--workers", "0", "--cif", "zip")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 12 and a == b
    assert _files(tmp_path / "c") == _files(tmp_path / "d")
    recs = read_samples(tmp_path / "a" / "samples.jsonl")
    assert all(r.min_distance is not None and r.min_distance["threshold"] == 0.5 for r in recs)
    other = _sample(cli, trained_run, tmp_path / "e", "-n", "10", "--batch-size", "4", "--seed", "8",
                    "--workers", "0")
    assert [r.crystal for r in other] != [r.crystal for r in recs]


def test_every_parallel_mode_writes_the_same_files(trained_run: Path, tmp_path: Path) -> None:
    """In-process, whole blocks in 2 worker processes (the CPU default) and the GPU pipeline (this process draws,
    2 workers derive the normal forms) give byte-identical outputs, summaries included."""
    from crystal_ar_model.constraints import SamplingConstraints
    from crystal_ar_model.generate import SampleRun, SampleSettings
    from crystal_ar_model.score import load_model

    model, meta = load_model(trained_run / "best")
    info = {"name": "best", "sha256": "0" * 64, "epoch": meta.get("epoch")}
    files, counts = [], []
    for workers, parallel in ((0, "auto"), (2, "auto"), (2, "pipeline")):
        run = SampleRun(model, info, SamplingConstraints(), SampleSettings(
            13, 4, 5, min_distance=0.5, cif="zip", workers=workers, parallel=parallel))
        assert run.parallel_mode() == {0: "inline", 2: parallel.replace("auto", "blocks")}[workers]
        summary = run.run(tmp_path / f"{workers}-{parallel}", progress=False)
        files.append(_files(tmp_path / f"{workers}-{parallel}"))
        counts.append((summary.crystals, dict(summary.redraws), summary.not_normal, summary.symmetrised,
                       summary.min_distance_used))
    assert len(files[0]) == 3 and files[0] == files[1] == files[2]
    assert counts[0][0] == 13 and counts[0] == counts[1] == counts[2]


def test_shards_are_disjoint_and_complete(cli: Cli, trained_run: Path,
                                          tmp_path: Path) -> None:
    args = ("-n", "11", "--batch-size", "3", "--seed", "3", "--workers", "0")
    full = _sample(cli, trained_run, tmp_path / "full", *args)
    parts = [_sample(cli, trained_run, tmp_path / f"s{i}", *args, "--shard", f"{i}/2") for i in range(2)]
    ids = [{r.id for r in p} for p in parts]
    assert not ids[0] & ids[1] and len(ids[0]) == 6 and len(ids[1]) == 5  # blocks 0, 2 / 1, 3
    lines = {}
    for i in range(2):
        for ln in (tmp_path / f"s{i}" / "samples.jsonl").read_text().splitlines():
            d = json.loads(ln)
            assert d["run"].pop("shard") == f"{i}/2"
            lines[d["index"]] = d
    ref = [json.loads(ln) for ln in (tmp_path / "full" / "samples.jsonl").read_text().splitlines()]
    for d in ref:
        assert d["run"].pop("shard") == "0/1"
    assert [lines[k] for k in sorted(lines)] == ref
    assert len(full) == 11
    for i in range(2):
        for p in (tmp_path / f"s{i}" / "cif").glob("*.cif"):
            assert p.read_bytes() == (tmp_path / "full" / "cif" / p.name).read_bytes()


# --------------------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BAD = {
    "unknown element": (["--elements", "Li,Xx"], "ConstraintError: unknown element symbol 'Xx'"),
    "element outside the vocabulary": (["--elements", "Og,O"], "outside the model's element vocabulary"),
    "group above 230": (["--space-group", "231"], "outside 1..230"),
    "unknown group symbol": (["--space-group", "Fm3m3"], "unknown space-group symbol"),
    "required outside allowed": (["--elements", "Fe,O", "--require-elements", "Li"], "not among the allowed"),
    "too many required elements": (["--require-elements", "Li,Na,K,Rb,Cs", "--max-atoms", "3"],
                                    "asks for 5 distinct elements"),
    "max-atoms above the model": (["--max-atoms", "500"], "exceeds the model's limit"),
    "bad shard": (["--shard", "2/2"], "--shard i/n needs 0 <= i < n"),
    "negative shard": (["--shard", "-1/2"], "--shard i/n needs 0 <= i < n, got '-1/2'"),  # not "expected one argument"
    "zero temperature": (["--temperature", "0"], "must be a positive number"),
    "negative min-distance": (["--min-distance", "-1"], "must be a positive number"),
    "zero crystals": (["-n", "0"], "must be a positive integer"),
    "missing checkpoint": (["--checkpoint", "/nonexistent/run"], "CheckpointFormatError"),
    "cuda without a GPU": (["--device", "cuda"], "ConfigError: --device cuda"),
    "empty space-group list": (["--space-group", ""], "no space group in ''"),
    "empty element list": (["--elements", " , "], "no element in"),
    "empty required list": (["--require-elements", ""], "no element in ''"),
    "negative seed": (["--seed", "-1"], "must be an integer >= 0"),
    "zero threads": (["--threads", "0"], "must be a positive integer"),
    "not a number": (["--temperature", "warm"], "expected a number"),
}
PARTIAL_BAD = {
    "site off its position": ('{"space_group": 225, "sites": [{"element": "Na", "wyckoff": "a", '
                              '"frac_coords": [0.1, 0.2, 0.3]}]}', [], "not on 4a"),
    "partial group not allowed": ('{"space_group": 225, "sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]}',
                                  ["--space-group", "221"], "not among --space-group"),
    "two sites on one orbit": ('{"space_group": 225, "sites": [{"element": "Na", "frac_coords": [0, 0, 0]}, '
                               '{"element": "Cl", "frac_coords": [0.5, 0.5, 0]}]}', [], "same orbit"),
    "lattice of the wrong family": ('{"space_group": 225, "lattice": [4, 5, 6, 90, 90, 90], '
                                    '"sites": [{"element": "Na", "frac_coords": [0, 0, 0]}]}', [], "cubic form"),
    "partial above max-atoms": ('{"space_group": 225, "sites": [{"element": "Na", "frac_coords": [0.1, 0.2, 0.3]}]}',
                                ["--max-atoms", "20"], "more than the budget"),
    "malformed json": ("{", [], "not valid JSON"),
    "partial closer than min-distance": ('{"space_group": 1, "lattice": [4, 4, 4, 90, 90, 90], "sites": ['
                                         '{"element": "Na", "frac_coords": [0, 0, 0]}, '
                                         '{"element": "Cl", "frac_coords": [0.05, 0, 0]}]}',
                                         ["--min-distance", "0.5"], "closer than --min-distance"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2(cli: Cli, trained_run: Path, tmp_path: Path, case: str) -> None:
    extra, message = BAD[case]
    ckpt = [] if "--checkpoint" in extra else ["--checkpoint", str(trained_run)]
    r = cli("sample", *ckpt, "-o", str(tmp_path / "out"), "--no-progress", "-n", "2", *extra)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out" / "samples.jsonl").exists()


@pytest.mark.parametrize("case", sorted(PARTIAL_BAD))
def test_bad_partial_exits_2(cli: Cli, trained_run: Path, tmp_path: Path, case: str) -> None:
    text, extra, message = PARTIAL_BAD[case]
    p = _write(tmp_path, "partial.json", text)
    r = cli("sample", "--checkpoint", str(trained_run), "-o", str(tmp_path / "out"), "--no-progress",
              "-n", "2", "--partial", p, *extra)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0  # one line


def test_output_folder_is_checked_before_sampling_and_never_overwritten_silently(
        cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    base = ["sample", "--checkpoint", str(trained_run), "--no-progress", "-n", "2", "--workers", "0"]
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for out, message in ((a_file, "exists and is not a folder"), (a_file / "sub", "cannot write there")):
        r = cli(*base, "-o", str(out))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert a_file.read_text() == "keep me"
    out = tmp_path / "out"
    assert cli(*base, "-o", str(out)).returncode == 0
    first = (out / "samples.jsonl").read_bytes()
    r = cli(*base, "--seed", "1", "-o", str(out))
    assert r.returncode == 2 and "already holds an earlier run (samples.jsonl, samples.extxyz, cif)" in r.stderr
    assert "--overwrite" in r.stderr and (out / "samples.jsonl").read_bytes() == first  # nothing lost
    assert cli(*base, "--seed", "1", "-o", str(out), "--overwrite").returncode == 0
    assert (out / "samples.jsonl").read_bytes() != first


def test_score_checks_its_output_file_before_scoring(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    from pymatgen.core import Lattice, Structure

    cifs = [tmp_path / "CsCl.cif"]
    Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(cifs[0]))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for target, message in ((tmp_path, "is a folder"), (a_file / "x.csv", "exists and is not a folder")):
        r = cli("score", str(cifs[0]), "--checkpoint", str(trained_run), "-o", str(target))
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    for flag, value, message in (("--symprec", "-1", "must be a positive number"),
                                 ("--symprec", "nan", "must be a positive number"),
                                 ("--workers", "-1", "must be an integer >= 0"),
                                 ("--threads", "0", "must be a positive integer")):
        r = cli("score", str(cifs[0]), "--checkpoint", str(trained_run), flag, value)
        assert r.returncode == 2 and message in r.stderr, (flag, value, r.stderr)


def test_score_names_the_file_and_row_of_a_bad_csv_cell(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text('material_id,cif\nmp-1,\nmp-2,"data_x"\n')
    r = cli("score", str(csv), "--checkpoint", str(trained_run))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{csv}: crystal mp-1: cannot parse CIF: the text is empty" in r.stderr and "--skip-invalid" in r.stderr


def test_cache_folder_is_checked_before_converting(cli: Cli, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    csv = tmp_path / "rows.csv"
    csv.write_text("material_id,cif\n")
    r = cli("preprocess", str(csv), "--cache-dir", str(a_file))
    assert r.returncode == 2 and "cache folder" in r.stderr and "exists and is not a folder" in r.stderr, r.stderr


def test_missing_partial_file(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    r = cli("sample", "--checkpoint", str(trained_run), "-o", str(tmp_path / "o"), "--partial",
              str(tmp_path / "none.json"))
    assert r.returncode == 2 and "ConstraintError" in r.stderr and "no such file" in r.stderr
    r = cli("sample", "--checkpoint", str(trained_run), "-o", str(tmp_path / "o"), "--partial", str(tmp_path))
    assert r.returncode == 2 and "is a folder" in r.stderr
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\x8b\xff\x00")
    r = cli("sample", "--checkpoint", str(trained_run), "-o", str(tmp_path / "o"), "--partial", str(binary))
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------ shipped model
def test_shipped_model_is_the_default(cli: Cli, trained_run: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from crystal_ar_model import checkpoint
    from crystal_ar_model.ship_model import ship

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(checkpoint, "shipped_checkpoint_dir", lambda: empty)
    for cmd in (["sample", "-o", str(tmp_path / "o"), "-n", "2"], ["score", str(tmp_path / "x.cif")]):
        r = cli(*cmd)
        assert r.returncode == 2 and "NoShippedModelError" in r.stderr and "--checkpoint" in r.stderr, r.stderr
    shipped = ship(trained_run / "best", dest=tmp_path / "pretrained")
    assert sorted(p.name for p in shipped.iterdir()) == ["meta.json", "metrics.jsonl", "model.safetensors"]
    monkeypatch.setattr(checkpoint, "shipped_checkpoint_dir", lambda: shipped)
    r = cli("sample", "-o", str(tmp_path / "o"), "-n", "3", "--no-progress", "--workers", "0")
    assert r.returncode == 0, r.stderr
    recs = read_samples(tmp_path / "o" / "samples.jsonl")
    assert len(recs) == 3
    first = json.loads((tmp_path / "o" / "samples.jsonl").read_text().splitlines()[0])
    assert first["run"]["checkpoint"]["name"] == "shipped"
    r = cli("score", str(tmp_path / "o" / "cif"), "-o", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    _assert_round_trip(recs, pd.read_csv(tmp_path / "s.csv").set_index("id"))


def test_a_failing_block_stops_the_workers_and_publishes_nothing(trained_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A block whose crystals the scorer can never read fails after MAX_REDRAW_ROUNDS in its worker process: the
    error reaches the caller (the pool is terminated) and no output file is published."""
    import crystal_ar_model.generate as generate
    from crystal_ar_model.constraints import SamplingConstraints
    from crystal_ar_model.errors import SamplingError
    from crystal_ar_model.score import load_model

    monkeypatch.setattr(generate, "_derive", lambda crystals: [(None, "SymmetryNotFoundError: forced")] * len(crystals))
    monkeypatch.setattr(generate, "MAX_REDRAW_ROUNDS", 1)  # the workers are forked after this: they see it too
    model, meta = load_model(trained_run / "best")
    run = generate.SampleRun(model, {"name": "best", "sha256": "0" * 64, "epoch": meta.get("epoch")},
                             SamplingConstraints(), generate.SampleSettings(40, 4, 0, workers=2))
    assert run.parallel_mode() == "blocks"
    with pytest.raises(SamplingError, match="cannot be read back"):
        run.run(tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "samples.jsonl").exists() and (tmp_path / "out" / "samples.jsonl.partial").exists()


def test_glue_shard_reads_a_negative_shard_as_its_value_and_leaves_other_arguments_alone():
    from crystal_ar_model.cli import _glue_shard

    assert _glue_shard(["sample", "--shard", "-1/2", "-o", "x"]) == ["sample", "--shard=-1/2", "-o", "x"]
    assert _glue_shard(["sample", "--shard=0/2"]) == ["sample", "--shard=0/2"]
    assert _glue_shard(["sample", "--shard"]) == ["sample", "--shard"]  # argparse names the missing value
    assert _glue_shard(["preprocess", "--", "--shard", "b.csv"]) == ["preprocess", "--", "--shard", "b.csv"]
