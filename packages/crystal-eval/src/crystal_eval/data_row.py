"""The "data" reference row: score the MP-20 test split as if it were a model's output.

    python -m crystal_eval.data_row --data-dir ../shared/data -o out/crystal-eval-data

Uses the full CDVAE files ``DATA_DIR/mp_20/{train,val,test}.csv`` when present, else the partial files
``DATA_DIR/mp_20_partial/{train.first1000,val.partial,test.partial}.csv.xz``: samples = test, novelty
against train + val, distributions, CMD and diversity of the U.N. test crystals of the valid draw
against the whole test file (the paper's protocol). With ``--stability`` the reference hull is built
from train + val only (the test crystals play the generated ones). Writes ``report.json``, ``details.csv`` and
``plots/`` into the output folder and prints the table. Extra arguments go to ``crystal-eval``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from crystal_eval.cli import main as cli_main


def find_mp20(data_dir: Path) -> tuple[str, list[Path], Path]:
    """``(label, [train, val], test)``: full MP-20 if present, else the partial files.

    Raises FileNotFoundError when neither exists.
    """
    full = data_dir / "mp_20"
    if all((full / f"{s}.csv").is_file() for s in ("train", "val", "test")):
        return "data (MP-20)", [full / "train.csv", full / "val.csv"], full / "test.csv"
    part = data_dir / "mp_20_partial"
    files = [part / "train.first1000.csv.xz", part / "val.partial.csv.xz", part / "test.partial.csv.xz"]
    if all(f.is_file() for f in files):
        return "data (partial MP-20)", files[:2], files[2]
    raise FileNotFoundError(f"neither {full}/{{train,val,test}}.csv nor the partial files in {part} exist")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m crystal_eval.data_row", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/data", help="folder holding mp_20/ or mp_20_partial/")
    p.add_argument("-o", "--out", default="out/crystal-eval-data", help="output folder")
    args, rest = p.parse_known_args(argv)
    try:
        label, train, test = find_mp20(Path(args.data_dir))
    except FileNotFoundError as exc:
        print(f"crystal-eval data row: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    cmd = [str(test), "--train", *map(str, train), "--test", str(test), "-o", str(out / "report.json")]
    cmd += ["--details", str(out / "details.csv"), "--plots", str(out / "plots"), "--label", label, *rest]
    if "--stability" in rest and "--stability-reference" not in rest:
        cmd += ["--stability-reference", *map(str, train)]  # the test crystals are the "generated" ones
    print("crystal-eval " + " ".join(cmd))
    return cli_main(cmd)


if __name__ == "__main__":
    sys.exit(main())
