"""The benchmark report page (docs/results.md) is rendered from its JSON alone: every number of its tables is a
value of the JSON, and changing a value changes the page.

The fixture ``tests/data/report_fixture.json`` is the output of a small dry run of ``docs/report/build.py``
(300 samples per set, a training checkpoint, not the shipped model; the bulky per-set crystal-eval reports
removed). No sampling or evaluation runs here.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "report_fixture.json"
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def _load_report_script(name: str) -> Any:
    """A module of docs/report/ (scripts, not an installed package), loaded from its file."""
    spec = importlib.util.spec_from_file_location(f"report_{name}", ROOT / "docs" / "report" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


render = _load_report_script("render")


@pytest.fixture
def report() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def _walk(x: Any, strings: set[str], numbers: list[float]) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            strings.add(str(k))
            _walk(v, strings, numbers)
    elif isinstance(x, list):
        for v in x:
            _walk(v, strings, numbers)
    elif isinstance(x, str):
        strings.add(x)
    elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        numbers.append(float(x))


def _allowed(rep: dict[str, Any]) -> tuple[list[str], set[str]]:
    """(JSON strings longest first, every way the renderer may print a JSON number)."""
    strings: set[str] = set()
    numbers: list[float] = []
    _walk(rep, strings, numbers)
    forms = set()
    for x in numbers:
        forms.update(f"{x:.{d}f}" for d in range(5))
        forms.update(f"{x:,.{d}f}" for d in range(5))
    return sorted(strings, key=len, reverse=True), forms


def _stray_numbers(text: str, strings: list[str], forms: set[str]) -> list[str]:
    """Numeric tokens of ``text`` that are neither a formatted JSON number nor inside a JSON string that occurs
    there as a whole (not cutting through a number)."""
    covered = []
    for s in strings:
        if not s:
            continue
        for m in re.finditer(re.escape(s), text):
            a, b = m.span()
            if (a > 0 and (text[a - 1].isdigit() or text[a - 1] == ".")) or (
                    b < len(text) and (text[b].isdigit() or text[b] == ".")):
                continue
            covered.append((a, b))
    stray = []
    for m in NUMBER.finditer(text):
        token = m.group().rstrip(",")
        if token in forms or any(a <= m.start() and m.start() + len(token) <= b for a, b in covered):
            continue
        stray.append(token)
    return stray


def test_every_number_in_the_tables_comes_from_the_json(report):
    md = render.render(report)
    strings, forms = _allowed(report)
    table_lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table_lines) > 30  # Table 1, NLL, fidelity, distributions, speed, stage times
    stray = {ln: bad for ln in table_lines if (bad := _stray_numbers(ln, strings, forms))}
    assert not stray, f"numbers in the tables that are not JSON values: {stray}"


def test_every_decimal_number_on_the_page_comes_from_the_json(report):
    md = render.render(report)
    strings, forms = _allowed(report)
    stray = [t for t in _stray_numbers(md, strings, forms) if "." in t]
    assert not stray, f"decimal numbers on the page that are not JSON values: {stray}"


def test_a_typed_number_is_caught(report):
    """The check above can fail: a number that is not in the JSON is reported."""
    strings, forms = _allowed(report)
    assert _stray_numbers("| crystal-ar, seed 0 | 12.3456789 |", strings, forms) == ["12.3456789"]


def test_changing_a_table_value_changes_the_page(report):
    base = render.render(report)
    cols = report["table"]["columns"]
    changed = 0
    for i, row in enumerate(report["table"]["rows"]):
        for c in cols:
            if row["values"].get(c["key"]) is None:
                continue
            rep = copy.deepcopy(report)
            new = float(rep["table"]["rows"][i]["values"][c["key"]]) + 7.123456
            rep["table"]["rows"][i]["values"][c["key"]] = new
            md = render.render(rep)
            assert md != base
            line = next(ln for ln in md.splitlines() if ln.startswith(f"| {row['label']} | {row['protocol']} |"))
            assert render.fmt(new, c["digits"]) in line
            changed += 1
    assert changed >= 20


def test_null_values_print_na_and_other_sections_follow_the_json(report):
    rep = copy.deepcopy(report)
    row = rep["table"]["rows"][0]
    row["values"]["cmd_crystalnn"] = None
    rep["fidelity"]["operations_hold_pct"] = 12.3456
    rep["nll"]["factors"][0]["nats"] = 98.7654
    rep["speed"]["rows"][0]["seconds_per_500"] = 4321.0
    md = render.render(rep)
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {row['label']} |"))
    assert render.NA in line
    assert "12.35 %" in md and "98.765" in md and "4321.0" in md


def test_wrong_format_is_refused(report):
    report["format"] = "something-else/1"
    with pytest.raises(ValueError, match="format"):
        render.render(report)


def test_fmt():
    assert render.fmt(None) == "n/a" and render.fmt(float("nan")) == "n/a"
    assert render.fmt(0.123456, 4) == "0.1235" and render.fmt_int(10000) == "10,000"


def test_readme_headline_is_the_committed_reports_row():
    """The root README shows the headline rows exactly as the committed report JSON renders them."""
    committed = ROOT / "docs" / "results.json"
    assert committed.is_file(), "docs/results.json is missing: run `nox -s report`"
    rep = json.loads(committed.read_text())
    lines = render.headline(rep)
    assert len(lines) == 2 + len(render.HEADLINE_ROWS)
    readme = (ROOT / "README.md").read_text()
    assert "\n".join(lines) in readme, "README.md's headline table differs from render.headline(docs/results.json)"
    assert "docs/results.md" in readme


def _check_interval_row(md: str, row: dict[str, Any], which: str, key: str, name: str) -> None:
    """Each of ``row``'s intervals contains its rate, and the page's interval line of the row prints ``key``'s."""
    for k, (lo, hi) in row["intervals_95"].items():
        assert lo <= row["values"][k] <= hi, (row["label"], k)
    lo, hi = row["intervals_95"][key]
    line = next(ln for ln in md.splitlines() if ln.startswith(f"- {row['label']}, 95 % Wilson intervals {which}:"))
    assert f"{name} [{render.fmt(lo, 1)}, {render.fmt(hi, 1)}] %" in line


def test_committed_page_is_its_json_rendered_with_the_stability_intervals():
    """docs/results.md is render(docs/results.json); each stability row's 95 % intervals are the Wilson intervals
    of its committed report's counts, and the page prints them."""
    from crystal_eval.metrics import wilson_interval

    committed = json.loads((ROOT / "docs" / "results.json").read_text())
    md = render.render(committed)
    stale = "docs/results.md is stale: run `python docs/report/build.py --refresh-committed`"
    assert md == (ROOT / "docs" / "results.md").read_text(), stale
    build = _load_report_script("build")
    rows = committed["stability"]["rows"]
    assert rows
    for row in rows:
        rep = json.loads((ROOT / row["file"]).read_text())["report"]
        sm, iv = rep["stability_meta"], row["intervals_95"]
        assert iv == build.stability_intervals(rep)
        assert iv["stable_rate"] == pytest.approx(wilson_interval(sm["n_stable"], sm["n_evaluated"]))
        assert iv["sun_rate_0"] == pytest.approx(wilson_interval(sm["n_stable_0"], sm["n_draw"]))
        _check_interval_row(md, row, "of the rates", "stable_rate", "Stable")


def test_stability_intervals_prefer_the_reports_own():
    build = _load_report_script("build")
    rep = {"stability_meta": {"intervals_95": {"stable_rate": [1.0, 2.0]}}}
    assert build.stability_intervals(rep) == {"stable_rate": [1.0, 2.0]}


def test_table1_rate_intervals_are_the_wilson_intervals_of_the_eval_counts():
    """Our Table 1 rows and the data row carry the 95 % Wilson intervals of their crystal-eval report's counts
    (validity over all samples, U.N. over the valid draw), each contains its rate, and the page prints them."""
    from crystal_eval.metrics import wilson_interval

    committed = json.loads((ROOT / "docs" / "results.json").read_text())
    md = render.render(committed)
    rows = [r for r in committed["table"]["rows"] if r.get("key") in committed["evals"]]
    assert {r["key"] for r in rows} == {"seed0", "mindist", "data"}
    for row in rows:
        m = committed["evals"][row["key"]]["report"]["meta"]
        iv = row["intervals_95"]
        assert iv["structural_validity"] == pytest.approx(wilson_interval(m["n_struct_valid"], m["n_samples"]))
        assert iv["compositional_validity"] == pytest.approx(wilson_interval(m["n_comp_valid"], m["n_samples"]))
        assert iv["un_rate"] == pytest.approx(wilson_interval(m["n_unique_and_novel"], m["n_un"]))
        _check_interval_row(md, row, "of the Table 1 rates", "un_rate", "U.N.")


def test_table1_intervals_prefer_the_reports_own_and_print_only_when_present(report):
    build = _load_report_script("build")
    own = {"meta": {"intervals_95": {"un_rate": [1.0, 2.0], "other": [0.0, 1.0]}}}
    assert build.table_intervals(own) == {"un_rate": [1.0, 2.0]}
    assert render.table1_intervals(report) == []  # the fixture's rows carry none
    report["table"]["rows"][0]["intervals_95"] = {"structural_validity": [12.25, 13.75], "un_rate": None}
    lines = render.table1_intervals(report)
    title = report["table"]["columns"][0]["title"].removesuffix(" %")
    assert lines == [f"- {report['table']['rows'][0]['label']}, 95 % Wilson intervals of the Table 1 rates: "
                     f"{title} [12.2, 13.8] %."]
    assert lines[0] in render.render(report)


def test_committed_speed_rows_are_their_run_files():
    """Our rows of the speed table are the committed ``docs/samples/*.run.json`` files: the seconds, the source and
    how the run used its worker processes (on the CPU each worker draws whole blocks; none means one process)."""
    build = _load_report_script("build")
    committed = json.loads((ROOT / "docs" / "results.json").read_text())
    ours = {build.SETS[k][2]: k for k in build.SETS}
    rows = [r for r in committed["speed"]["rows"] if r["label"] in ours]
    assert {ours[r["label"]] for r in rows} == set(build.SETS)
    for row in rows:
        info = json.loads((ROOT / "docs" / "samples" / f"{build.SETS[ours[row['label']]][0]}.run.json").read_text())
        assert row == build.sample_speed_row(ours[row["label"]], info)
        assert row["seconds_per_500"] == pytest.approx(500 * info["seconds"] / info["n"], abs=0.01)
    assert build.workers_label({"workers": 0}) == "no worker process (all in one process)"
    assert build.workers_label({"workers": 2}) == "2 worker processes drawing whole blocks"
    assert "default workers" in build.workers_label({"workers": None})  # --jobs 0 writes "workers": null
