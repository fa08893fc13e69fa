"""Render ``docs/results.md`` from the report JSON (``docs/results.json``) and nothing else.

Every number on the page is a value of the JSON, formatted by :func:`fmt`; every label, column title and hardware
description is a string of the JSON. The text around them is a fixed template. ``tests/test_report_render.py``
checks this (each numeric token of the rendered tables is a formatted JSON value; changing a JSON value changes
the page). Rendering needs only the standard library:

    python docs/report/render.py docs/results.json -o docs/results.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FORMAT = "crystal-ar-report/1"
NA = "n/a"


def fmt(x: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``None``/NaN -> ``n/a``; ints without decimals when ``digits == 0``."""
    if x is None or isinstance(x, str):
        return NA if x is None else x
    if isinstance(x, bool):
        return "yes" if x else "no"
    v = float(x)
    if not math.isfinite(v):
        return NA
    return f"{v:.{digits}f}"


def fmt_int(x: Any) -> str:
    """An integer with thousands separators (``10,000``); ``None`` -> ``n/a``."""
    return NA if x is None else f"{int(x):,}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _row_value(row: Mapping[str, Any], col: Mapping[str, Any]) -> str:
    text = fmt(row["values"].get(col["key"]), col["digits"])
    if row.get("unverified", {}).get(col["key"]):
        text += " †"
    return text


def table1(rep: Mapping[str, Any]) -> list[str]:
    """Table 1: our rows, the data row and the paper's rows, with the protocol of each."""
    t = rep["table"]
    cols = t["columns"]
    header = ["model", "protocol", *(c["title"] for c in cols)]
    rows = [[r["label"], r["protocol"], *(_row_value(r, c) for c in cols)] for r in t["rows"]]
    return _table(header, rows)


def table1_intervals(rep: Mapping[str, Any]) -> list[str]:
    """One line per Table 1 row that carries ``intervals_95`` (our rows and the data row): the 95 % Wilson
    intervals of its rates, named by their column titles."""
    cols = {c["key"]: c["title"].removesuffix(" %") for c in rep["table"]["columns"]}
    out = []
    for r in rep["table"]["rows"]:
        iv = r.get("intervals_95") or {}
        parts = [f"{cols.get(k, k)} [{fmt(v[0], 1)}, {fmt(v[1], 1)}] %" for k, v in iv.items() if v]
        if parts:
            out.append(f"- {r['label']}, 95 % Wilson intervals of the Table 1 rates: {', '.join(parts)}.")
    return out


HEADLINE_ROWS = ("seed0", "data", "paper:WyckoffAUGen")


def headline(rep: Mapping[str, Any]) -> list[str]:
    """The root README's headline rows of Table 1 (our seed-0 set, the data row, the paper's WyckoffAUGen row),
    the same cells as :func:`table1`."""
    t = rep["table"]
    cols = t["columns"]
    header = ["model", "protocol", *(c["title"] for c in cols)]
    by_key = {r.get("key"): r for r in t["rows"]}
    rows = [[r["label"], r["protocol"], *(_row_value(r, c) for c in cols)] for k in HEADLINE_ROWS
            if (r := by_key.get(k)) is not None]
    return _table(header, rows)


def _comparison_lines(rep: Mapping[str, Any]) -> list[str]:
    """Our seed-0 row against the reference paper row, column by column, with the data row beside them."""
    t = rep["table"]
    d = rep["discussion"]
    by = {r["key"]: r for r in t["rows"]}
    ours, paper, data = by.get(d["ours_row"]), by.get(d["paper_row"]), by.get(d["data_row"])
    if ours is None or paper is None:
        return []
    lines = []
    worse, better = [], []
    for c in t["columns"]:
        a, b = ours["values"].get(c["key"]), paper["values"].get(c["key"])
        if a is None or b is None or c.get("better") not in ("higher", "lower"):
            continue
        if not (math.isfinite(float(a)) and math.isfinite(float(b))):
            continue
        is_worse = a < b if c["better"] == "higher" else a > b
        ref = f", data row {fmt(data['values'].get(c['key']), c['digits'])}" if data is not None else ""
        text = f"{c['title']}: {fmt(a, c['digits'])} against {fmt(b, c['digits'])}{ref}"
        (worse if is_worse else better).append(text)
    lines.append(f"Against the {paper['label']} row ({paper['protocol']}), {ours['label']} is worse on "
                 f"{len(worse)} and not worse on {len(better)} of the columns that both rows report (diversity: "
                 "closer to the data row is better, and speed is measured on other hardware, so neither is "
                 "counted):")
    lines.append("")
    lines += [f"- worse: {w}" for w in worse] + [f"- not worse: {b}" for b in better]
    return lines


def render(rep: Mapping[str, Any]) -> str:
    """The whole markdown page."""
    if rep.get("format") != FORMAT:
        raise ValueError(f"not a report JSON of format {FORMAT!r} (got {rep.get('format')!r})")
    m, data, built, s = rep["model"], rep["data"], rep["built"], rep["samples"]
    L: list[str] = []
    L += [f"# {rep['title']}", ""]
    L += [f"Generated by `{built['command']}` from `{built['json']}` (commit `{built['git_commit']}`, "
          f"{built['utc']}); do not edit by hand. Model: {m['description']}, checkpoint `{m['name']}` "
          f"(sha256 `{m['sha256'][:12]}`, {fmt_int(m['parameters'])} parameters, training epoch "
          f"{fmt_int(m['epoch'])}). Samples: `{s['seed0']['file']}` and `{s['mindist']['file']}` "
          f"({fmt_int(s['seed0']['n'])} crystals each).", ""]
    L += [f"Our rows follow the **{data['protocol_ours']}**: the model was trained on "
          f"{fmt_int(data['n_train_rows'])} rows ({', '.join(data['train_files'])}); novelty is checked against "
          f"those rows and the distributions are compared with {fmt_int(data['n_test_rows'])} test rows "
          f"({', '.join(data['test_files'])}). Copied rows are labelled **{data['protocol_paper']}**.", ""]

    # ---------------------------------------------------------------- Table 1
    ev = rep["table"]["eval"]
    L += ["## Table 1", ""]
    L += table1(rep)
    L += ["", f"crystal-eval settings: seed {fmt_int(ev['seed'])} for the draw of {fmt_int(ev['n_un'])} valid "
          f"crystals (U.N. rate) and of {fmt_int(ev['n_eval'])} valid crystals; distribution distances, CMD and "
          f"diversity on the {ev['population']} crystals of the draw; spglib symprec {fmt(ev['symprec'], 1)}. "
          f"{ev['conventions']}", ""]
    for note in rep["table"]["notes"]:
        L.append(f"- {note}")
    L += table1_intervals(rep)
    st = rep["stability"]
    L += ["", f"Stability columns: {st['status']}; {st['reason']}", ""]
    if st.get("rows"):
        L += _table(["population", "Stable %", "Stable_0 %", "S.U.N. %", "S.U.N._0 %", "median relaxation RMSD (A)",
                     "SG kept %"],
                    [[r["label"], fmt(r["values"]["stable_rate"]), fmt(r["values"]["stable_rate_0"]),
                      fmt(r["values"]["sun_rate"]), fmt(r["values"]["sun_rate_0"]),
                      fmt(r["values"]["relax_rmsd_median"], 3), fmt(r["values"]["sg_kept_rate"], 1)]
                     for r in st["rows"]])
        L += [""]
        names = {"stable_rate": "Stable", "stable_rate_0": "Stable_0", "sun_rate": "S.U.N.", "sun_rate_0": "S.U.N._0",
                 "sg_kept_rate": "SG kept"}  # fmt: skip
        for r in st["rows"]:
            iv = r.get("intervals_95") or {}
            parts = [f"{name} [{fmt(iv[k][0], 1)}, {fmt(iv[k][1], 1)}] %" for k, name in names.items() if iv.get(k)]
            if parts:
                L += [f"- {r['label']}, 95 % Wilson intervals of the rates: {', '.join(parts)}."]
        for r in st["rows"]:
            cell = f"; relaxed cell: {r['relax_cell']}" if r.get("relax_cell") else ""
            L += [f"- {r['label']}: {r['potential']}; {r['what']} ({fmt_int(r['n_evaluated'])} crystals evaluated of "
                  f"a draw of {fmt_int(r['n_draw'])}; `{r['file']}`, produced by `{r['command']}`{cell})."]
        L += [""]

    # ---------------------------------------------------------------- likelihood
    nll = rep["nll"]
    L += ["## Likelihood on the test rows", ""]
    L += [f"Per-factor negative log-likelihood (nats per crystal, mean over {fmt_int(nll['n_scored'])} of "
          f"{fmt_int(nll['n_rows'])} rows of {nll['file']}; {fmt_int(nll['n_skipped'])} skipped by "
          f"`crystal-ar score --skip-invalid`). The coordinate term is a log-density in fractional units, "
          f"so it can be negative.", ""]
    L += _table(["factor", "NLL (nats/crystal)"], [[f["factor"], fmt(f["nats"], 3)] for f in nll["factors"]])
    ab = nll["ablations"]
    L += ["", "### The training stabilisers, switched off one at a time", ""]
    L += [f"Ablations: {ab['status']}. {ab['reason']}."]
    if ab.get("rows"):
        names = list(ab["rows"][0]["test_nll"])
        L += [f"Each run: the `default` config for {fmt_int(ab['epochs'])} epochs, scored with its per-unit best "
              f"checkpoint on the test rows (nats per crystal; {ab['hardware']}; produced by `{ab['command']}`)."]
        L += [""]
        header = ["run", *names, "Δ total vs. baseline"]
        L += _table(header, [[r["label"], *(fmt(r["test_nll"][n], 3) for n in names), fmt(r["delta_total"], 3)]
                             for r in ab["rows"]])
        L += ["", "A negative Δ means the run without that stabiliser scores better on the test rows at this budget."]
        bs = ab.get("baseline_vs_shipped")
        if bs is not None:
            L += [f"The baseline repeats the first {fmt_int(ab['epochs'])} epochs of the shipped model's training run "
                  f"(same recipe and seeds): their validation NLL agree within {bs['max_first_epochs']:.1e} nats over "
                  f"the first {fmt_int(bs['first_epochs'])} epochs, and float summation-order differences grow to "
                  f"{fmt(bs['max_all_epochs'], 3)} nats by the end, so differences of that size between the rows "
                  "are run-to-run noise."]
    L += [""]

    # ---------------------------------------------------------------- fidelity
    fd = rep["fidelity"]
    L += ["## Symmetry fidelity", ""]
    L += [f"Of the {fmt_int(fd['n'])} crystals of `{fd['file']}` (as drawn), {fmt(fd['operations_hold_pct'], 2)} % "
          f"satisfy every operation of their sampled space group within {fd['tolerance_text']} (fractional). "
          "spglib on the conventional cell, compared operation by operation with the sampled group "
          "(percent of the crystals):", ""]
    rels = fd["relations"]
    L += _table(["symprec (Å)", *rels],
                [[p, *(fmt(fd["spglib"][p][r], 2) for r in rels)] for p in fd["symprecs"]])
    L += [""]

    ds = rep["distributions"]
    L += ["### Sampled groups and Wyckoff dimensions against the test rows", ""]
    L += [f"Sampled space groups (as drawn, all {fmt_int(ds['n_samples'])} crystals) against the test rows' groups "
          f"(spglib, symprec {fmt(ds['test_symprec'], 1)}); the {fmt_int(len(ds['space_group_top']))} most frequent "
          "sampled groups:", ""]
    L += _table(["space group", "samples %", "test %"],
                [[f"{g['symbol']} ({g['number']})", fmt(g["samples_pct"], 2), fmt(g["test_pct"], 2)]
                 for g in ds["space_group_top"]])
    L += ["", f"Distinct groups: {fmt_int(ds['n_groups_samples'])} sampled, {fmt_int(ds['n_groups_test'])} in the "
          f"test rows. Wyckoff dimensions (degrees of freedom of each occupied orbit), percent of the orbits:", ""]
    wd = ds["wyckoff_dim"]
    L += _table(["dimension", "samples %", "test %"],
                [[str(d), fmt(a, 2), fmt(b, 2)] for d, a, b in zip(wd["dims"], wd["samples_pct"], wd["test_pct"],
                                                                   strict=True)])
    L += [""]

    # ---------------------------------------------------------------- speed
    sp = rep["speed"]
    L += ["## Speed", ""]
    L += ["Seconds to sample 500 crystals. Ours: measured by `crystal-ar sample` itself in the report run "
          "(its own timer, from the first draw to the last record written, normal forms and their scores "
          "included). Paper: as reported, on its hardware.", ""]
    L += _table(["model", "s / 500 crystals", "hardware", "source"],
                [[r["label"], fmt(r["seconds_per_500"], r["digits"]), r["hardware"], r["source"]]
                 for r in sp["rows"]])
    L += [""]

    # ---------------------------------------------------------------- figures
    L += ["## Figures", ""]
    for f in rep["figures"]:
        L += [f"**{f['title']}** ({f['caption']})", "", f"![{f['title']}]({f['path']})", ""]

    # ---------------------------------------------------------------- discussion
    d = rep["discussion"]
    L += ["## Discussion", ""]
    L += _comparison_lines(rep)
    L += ["", "What differs from the paper's protocol, and why we think our rows are worse where they are:", ""]
    L += [f"- **Training rows.** {fmt_int(data['n_train_rows'])} rows in the available training files (a part is "
          f"held out for validation) instead of the full MP-20 training split of "
          f"{fmt_int(data['full_mp20']['train'])} rows: the model has seen at most about "
          f"{fmt(data['train_fraction_pct'], 0)} % as many crystals. Novelty is "
          "checked against these rows only, so U.N. is measured against a smaller reference than the paper's.",
          f"- **Test rows.** {fmt_int(data['n_test_rows'])} test rows instead of "
          f"{fmt_int(data['full_mp20']['test'])}: the distribution distances compare with a different sample "
          "of MP-20.",
          f"- **Model size and training.** {fmt_int(m['parameters'])} parameters ({m['config']} config), trained "
          f"on {d['training_hardware']}; the composed checkpoint takes each unit from its best validation epoch "
          f"({d['selection_text']}).",
          f"- **Sample count.** {fmt_int(s['seed0']['n'])} samples per set; crystal-eval draws "
          f"{fmt_int(ev['n_un'])} valid ones with seed {fmt_int(ev['seed'])}.",
          f"- **Paper rows.** {d['paper_rows_text']}", ""]
    L += [f"The one experiment that would test the data explanation: {d['experiment']}", ""]
    L += ["To reproduce the full protocol with the full MP-20 split (CDVAE CSVs `train.csv`, `val.csv`, "
          "`test.csv` in `DIR`):", "", "```bash", *d["full_protocol_commands"], "```", ""]
    L += ["## Stage times of this report run", ""]
    L += [f"Wall time on {rep['hardware']['label']} (load average {fmt(rep['hardware']['load_average'], 1)} at the "
          f"start; other jobs share the machine):", ""]
    L += _table(["stage", "seconds"], [[k, fmt(v, 1)] for k, v in built["stages"].items()])
    L += [""]
    return "\n".join(L)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/report/render.py", description=__doc__.split("\n\n")[0])
    p.add_argument("json", help="report JSON (docs/results.json)")
    p.add_argument("-o", "--output", default=None, help="markdown file to write [stdout]")
    args = p.parse_args(argv)
    try:
        text = render(json.loads(Path(args.json).read_text()))
    except (OSError, ValueError, KeyError) as exc:
        print(f"render: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
