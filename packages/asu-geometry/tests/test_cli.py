"""Tests of the ``asu-geometry`` command line (in process via ``main`` and as a console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import asu_geometry as ag
import pytest
from asu_geometry.cli import format_space_group, main

DATA = Path(__file__).parent / "data"
RUTILE = DATA / "rutile_TiO2_shifted.cif"  # P4_2/mnm in P1, origin shifted by (0.1, 0.2, 0.3)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def console_script() -> list[str]:
    exe = Path(sys.executable).with_name("asu-geometry")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("asu-geometry")
    return [found] if found else [sys.executable, "-m", "asu_geometry.cli"]


# ------------------------------------------------------------------------------------------------ show

def test_show_62(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "show", "62")
    assert rc == 0 and err == ""
    assert out.startswith("Space group 62: Pnma")
    assert "-P 2ac 2n" in out and "Hall number 292" in out and "orthorhombic" in out
    assert "|G/T|           8" in out and "volume 1/8" in out
    labels = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()
              and line.split()[0] in {"4a", "4b", "4c", "8d"}]
    assert labels == ["4a", "4b", "4c", "8d"]
    assert "(x, 1/4, z)" in out and "polygon (4 vertices)" in out and "ASU interior" in out
    assert "0.25" not in out  # exact rationals only


def test_show_192_lists_every_shape(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "show", "192")
    assert rc == 0
    assert "P6/mcc" in out and "-P 6 2c" in out and "Wyckoff positions (13)" in out
    for wp in ag.wyckoff_positions(192):
        assert f"  {wp.label} " in out
        for shape in wp.shapes:
            assert str(shape) in out
    assert "segment [(1/2, 0, 1/4) -- (2/3, 1/3, 1/4)]" in out  # the second piece of 12k
    for cut in ag.asu(192).describe():
        assert cut in out
    assert "(2/3, 1/3, 1/4)" in out


def test_show_all_groups_format() -> None:
    for n in (1, 91, 139, 166, 227, 230):
        text = format_space_group(n)
        assert text.splitlines()[0] == f"Space group {n}: {ag.space_group(n).symbol}"
        pieces = sum(len(wp.shapes) + len(wp.anchored_shapes) for wp in ag.wyckoff_positions(n))
        assert sum(line.count("point (") + line.count("segment ") + line.count("polygon (")
                   + line.count("ASU interior") for line in text.splitlines()) == pieces
    assert "isolated contact point" in format_space_group(91)


# -------------------------------------------------------------------------------------------- canonical

def test_canonicalize_rutile(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "canonicalize", str(RUTILE))
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert out.startswith("{\n  ")  # indent 2
    assert d["space_group"] == 136
    assert [(s["element"], s["wyckoff"]) for s in d["sites"]] == [("Ti", "a"), ("O", "f")]
    assert d["lattice"][:3] == pytest.approx([4.594, 4.594, 2.959])
    x = d["sites"][1]["frac_coords"]
    assert x[0] == pytest.approx(x[1]) and x[2] == pytest.approx(0.0)
    crystal = ag.AsuCrystal.from_dict(d)
    assert crystal.num_atoms == 6
    assert ag.asu(136).contains(x, tol=1e-6)


def test_canonicalize_raw_is_spglibs_description(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "canonicalize", str(RUTILE), "--raw")
    assert rc == 0
    from asu_geometry.normalform import same_description

    raw = ag.AsuCrystal.from_dict(json.loads(out))
    assert not raw.anchored or not ag.space_group(raw.space_group).is_polar
    assert same_description(ag.normal_form(raw), ag.to_asu(ag.read_structure(RUTILE)), 1e-9, 1e-9)


def test_show_polar_group_lists_the_anchor(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "show", "99")
    assert rc == 0
    assert "Polar group: free directions (0, 0, 1); anchor z = 0" in out
    assert "  1a     point (0, 0, 0)" in out and "segment [(0, 0, 0) -- (1/2, 1/2, 0)]" in out
    rc, out, _ = run_main(capsys, "show", "62")
    assert "Polar group" not in out


def test_canonicalize_round_trips_to_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    rc, out, _ = run_main(capsys, "canonicalize", str(RUTILE), "--symprec", "0.01", "--angle-tolerance", "1")
    assert rc == 0
    rebuilt = ag.AsuCrystal.from_dict(json.loads(out)).to_structure()
    assert StructureMatcher().fit(rebuilt, ag.read_structure(RUTILE))


# -------------------------------------------------------------------------------------------------- plot

def test_plot_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "asu192.png"
    rc, stdout, err = run_main(capsys, "plot", "192", "-o", str(out), "--dpi", "40")
    assert rc == 0 and err == "" and str(out) in stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_axes_content() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = ag.plot_asu(91)
    try:
        assert "P4122" in ax.get_title()
        _, names = ax.get_legend_handles_labels()
        assert "1-D Wyckoff positions (segments)" in names
        assert "isolated contact point of a 1-D position" in names
        assert "0-D Wyckoff positions (points)" not in names  # 91 has no 0-D position
        assert ax.get_xlabel() == "x (fractional)" and ax.get_zlabel() == "z (fractional)"
    finally:
        plt.close(ax.figure)


# ------------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize(("argv", "needle"), [
    (["show", "0"], "InvalidSpaceGroupError"),
    (["show", "231"], "InvalidSpaceGroupError"),
    (["plot", "231", "-o", "never.png"], "InvalidSpaceGroupError"),
    (["canonicalize", "does/not/exist.cif"], "CifReadError"),
    (["canonicalize", str(DATA / "garbage.cif")], "CifReadError"),
    (["canonicalize", str(DATA / "disordered_CuAu.cif")], "DisorderedStructureError"),
    (["canonicalize", str(DATA / "overlapping_atoms.cif")], "SymmetryNotFoundError"),
    (["canonicalize", str(DATA / "dummy_species_Xx.cif")], "UnknownSpeciesError: site at"),
])
def test_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                     needle: str) -> None:
    rc, out, err = run_main(capsys, *argv)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("asu-geometry: error: ") and needle in err
    assert "Traceback" not in err
    assert not Path("never.png").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["canonicalize", "x.cif", "--symprec", "-1"], "must be a positive number"),
    (["canonicalize", "x.cif", "--symprec", "nan"], "must be a positive number"),
    (["canonicalize", "x.cif", "--angle-tolerance", "-5"], "must be a positive number"),
    (["plot", "225", "--dpi", "0"], "must be a positive integer"),
])
def test_bad_numbers_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err


def test_plot_with_an_unknown_suffix_names_the_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "plot", "2", "-o", str(tmp_path / "asu.unknownext"))
    assert rc == 2 and out == "" and "'.unknownext'" in err and ".png" in err and "Traceback" not in err
    assert not (tmp_path / "asu.unknownext").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from asu_geometry import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"asu-geometry {__version__}"


def test_plot_to_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_main(capsys, "plot", "2", "-o", str(tmp_path / "no" / "such" / "dir.png"), "--dpi", "30")
    assert rc == 2 and err.startswith("asu-geometry: error:")


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["show", "Pnma"])
    assert exc.value.code == 2
    assert "space group must be an integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("show", "canonicalize", "plot"))
    with pytest.raises(SystemExit) as exc:
        main(["canonicalize", "--help"])
    assert exc.value.code == 0 and "--angle-tolerance" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- console script

def test_console_script_show_and_error() -> None:
    exe = console_script()
    ok = subprocess.run([*exe, "show", "62"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "4c" in ok.stdout and "8d" in ok.stdout and "Pnma" in ok.stdout
    bad = subprocess.run([*exe, "show", "231"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stdout == "" and bad.stderr.strip().count("\n") == 0
    assert "outside 1..230" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("name", "needle"), [("disordered_CuAu.cif", "DisorderedStructureError"),
                                              ("dummy_species_Xx.cif", "UnknownSpeciesError")])
def test_console_script_canonicalize_error(name: str, needle: str) -> None:
    bad = subprocess.run([*console_script(), "canonicalize", str(DATA / name)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_output_piped_into_a_pager_that_closes_early_is_not_an_error():
    cmd = " ".join(console_script()) + " show 225 | head -n 1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Space group 225")
    assert "error" not in proc.stderr.lower()
