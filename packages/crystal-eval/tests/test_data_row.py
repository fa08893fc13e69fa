"""The data-row runner finds full or partial MP-20 files and fails clearly without them."""

from __future__ import annotations

from pathlib import Path

import pytest
from crystal_eval.data_row import find_mp20, main


def test_find_partial_then_full(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        find_mp20(tmp_path)
    part = tmp_path / "mp_20_partial"
    part.mkdir()
    for f in ("train.first1000.csv.xz", "val.partial.csv.xz", "test.partial.csv.xz"):
        (part / f).write_text("")
    label, train, test = find_mp20(tmp_path)
    assert "partial" in label and test.name == "test.partial.csv.xz" and len(train) == 2
    full = tmp_path / "mp_20"
    full.mkdir()
    for s in ("train", "val", "test"):
        (full / f"{s}.csv").write_text("")
    label, train, test = find_mp20(tmp_path)
    assert label == "data (MP-20)" and [p.name for p in train] == ["train.csv", "val.csv"]


def test_missing_data_dir_exits_2(tmp_path: Path, capsys):
    assert main(["--data-dir", str(tmp_path / "none"), "-o", str(tmp_path / "out")]) == 2
    assert "error" in capsys.readouterr().err
