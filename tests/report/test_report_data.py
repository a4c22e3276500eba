"""``report --format json|csv``: the same numbers, marks and notes as the Markdown table."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from tests.report.test_report import _result
from tests.report_helpers import with_tie_counts
from vtrbench.cli import main
from vtrbench.report import build_report, load_results, render_csv, render_json, render_markdown

FIXTURES = Path(__file__).parents[1] / "fixtures" / "results"


@pytest.fixture(scope="module")
def paper_report():
    results = with_tie_counts(load_results([FIXTURES / "sweep"]))
    return build_report(results, baseline="meanp + infonce", n_boot=200, correction="none")


def _markdown_rows(md: str) -> dict[str, list[dict[str, str]]]:
    """{block title: [{header: cell text}]} parsed from the Markdown tables."""
    out: dict[str, list[dict[str, str]]] = {}
    title = None
    header: list[str] = []
    for line in md.splitlines():
        if line.startswith("### "):
            title, header = line[4:], []
            out[title] = []
        elif line.startswith("|") and title is not None:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not header:
                header = cells
            elif not set(line) <= set("|:- "):
                out[title].append(dict(zip(header, cells, strict=True)))
    return out


def _cell_text(rec: dict) -> str:
    mean = f"{rec['mean']:.1f}"
    mean = f"**{mean}**" if rec["best"] else mean
    mean += "†" if rec["significant"] else ""
    return mean if rec["std"] is None else f"{mean} ± {rec['std']:.1f}"


def _signed(x: float) -> str:
    return f"{x:+.1f}".replace("-0.0", "+0.0")


def _check_against_markdown(report, records: list[dict]) -> int:
    md = _markdown_rows(render_markdown(report))
    checked = 0
    by_row: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        by_row.setdefault((rec["block"], rec["row_name"]), []).append(rec)
    delta_header = next(
        (h for rows in md.values() for h in (rows[0] if rows else {}) if h.startswith("Δ")), None
    )
    for (block, row_name), recs in by_row.items():
        row = next(r for r in md[block] if f"{r['Method']} + {r['Loss']}" == row_name)
        for rec in recs:
            header = (
                f"{rec['column'].replace('/', ' ')} {'↓' if rec['column'].endswith(('MdR', 'MnR')) else '↑'}"
            )
            assert row[header] == _cell_text(rec), (row_name, header)
            checked += 1
            if rec["column"] == report.metric and delta_header:
                shown = row[delta_header]
                if rec["baseline"]:
                    assert shown == "(baseline)"
                else:
                    assert (
                        shown
                        == f"{_signed(rec['delta'])} [{_signed(rec['delta_lo'])}, {_signed(rec['delta_hi'])}]"
                    )
        ns = {r["n"] for r in recs}
        assert row["n"] == "/".join(map(str, sorted(ns))) if len(ns) > 1 else row["n"] == str(ns.pop())
    return checked


def test_json_holds_the_markdown_cells_marks_and_notes(paper_report):
    data = json.loads(render_json(paper_report))
    assert data["format"] == "vtrbench-report" and data["correction"] == "none"
    assert data["notes"] == paper_report.notes and data["warnings"] == paper_report.warnings
    assert data["baseline"] == "meanP + InfoNCE"
    assert _check_against_markdown(paper_report, data["cells"]) == len(data["cells"]) > 40
    assert any(c["significant"] for c in data["cells"])  # the † marks are there, as in the Markdown
    column = {(d["block"], d["row_name"]): d for d in data["delta_column"]}
    for c in data["cells"]:
        if c["column"] == paper_report.metric:
            assert column[(c["block"], c["row_name"])]["delta"] == c["delta"]
    for c in data["cells"]:
        if c["p_adjusted"] is not None:
            assert c["significant"] == (c["p_adjusted"] < 0.05) and c["p_adjusted"] == c["p"]


def test_csv_holds_the_same_numbers_as_the_json(paper_report):
    rows = list(csv.DictReader(io.StringIO(render_csv(paper_report))))
    cells = [r for r in rows if r["kind"] == "cell"]
    data = json.loads(render_json(paper_report))["cells"]
    assert len(cells) == len(data)
    for row, rec in zip(cells, data, strict=True):
        assert (row["label"], row["loss"], row["column"]) == (rec["label"], rec["loss"], rec["column"])
        for key in ("mean", "std", "delta", "delta_lo", "delta_hi", "p", "p_adjusted"):
            assert (float(row[key]) if row[key] else None) == rec[key], key  # full precision, no rounding
        assert row["significant"] == str(rec["significant"]) and int(row["n"]) == rec["n"]
    records = [
        {**rec, "mean": float(r["mean"]), "std": float(r["std"]) if r["std"] else None}
        for r, rec in zip(cells, data, strict=True)
    ]
    _check_against_markdown(paper_report, records)
    assert [r["text"] for r in rows if r["kind"] == "note"] == paper_report.notes
    assert [r["text"] for r in rows if r["kind"] == "provenance"] == paper_report.provenance


def test_the_delta_column_is_there_when_its_metric_is_not_shown(paper_report):
    report = build_report(
        with_tie_counts(load_results([FIXTURES / "sweep"])),
        baseline="meanp + infonce",
        metric="v2t/MnR",
        columns=("t2v/R@1",),
        n_boot=20,
    )
    data = json.loads(render_json(report))
    md = render_markdown(report)
    rows = [d for d in data["delta_column"] if not d["baseline"]]
    assert rows and all(d["metric"] == "v2t/MnR" and d["delta"] is not None for d in rows)
    for d in rows:
        assert f"{_signed(d['delta'])} [{_signed(d['delta_lo'])}, {_signed(d['delta_hi'])}]" in md


def test_pivot_and_na_cells():
    rs = [_result("a", [1, 2] * 10, loss="infonce"), _result("b", [1, 1, 2, 3] * 5, loss="infonce")]
    rs.append(_result("a", [1, 2.5] * 10, loss="dsl"))  # a fractional rank: schema 1, Δ n/a
    rs.append(_result("b", [1, 2] * 10, loss="dsl"))
    report = build_report(rs, layout="pivot", rows="label", cols="loss", baseline="a", n_boot=30)
    data = json.loads(render_json(report))
    cell = {(c["label"], c["column"]): c for c in data["cells"]}
    assert cell[("b", "infonce")]["delta"] == pytest.approx(report.blocks[0].diff.loc["b", "infonce"])
    assert cell[("b", "dsl")]["delta"] is None and cell[("b", "dsl")]["delta_na"] is True
    assert cell[("a", "dsl")]["baseline"] is True
    assert re.search(r"\|\s+n/a \|", render_markdown(report))
    assert any("n/a" in w for w in data["warnings"])


def test_command_line_formats(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["report", str(FIXTURES / "msrvtt"), "--format", "json", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["cells"]) == 7 * 9 * 3  # 7 rows x 9 default columns x 3 post-processing blocks
    capsys.readouterr()
    assert main(["report", str(FIXTURES / "msrvtt"), "--format", "csv", "--post", "raw"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("kind,block,post,transductive,label,loss,row_name,")
