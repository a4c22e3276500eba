"""Tables in a terminal never cut a cell (issue 30): at 80, 120 and 200 columns every number printed is a
whole cell of the full table (``+10.2 [+5.5, +`` was printed at 120), whole columns are left out and
named, and a pipe gets every cell (Markdown for ``report``, a plain table for ``train``/``eval``).

Each check compares every printed cell with the full value it must be: the cells of the complete
table (``text_rows`` of the block with every column), never the renderer's own output.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.report_helpers import with_tie_counts
from vtrbench.report import build_report, load_results, render_markdown
from vtrbench.report.model import text_columns, text_rows
from vtrbench.report.terminal import print_report
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"
BASELINE = "meanp + infonce"


@pytest.fixture(scope="module")
def report() -> Any:
    # schema 2 (tie counts from the fixtures' whole ranks): the Δ column holds real intervals
    results = with_tie_counts([json.loads(p.read_text()) for p in sorted(FIXTURE.glob("*.json"))])
    return build_report(results, layout="paper", baseline=BASELINE)


def render(width: int, draw: Any) -> str:
    console = Console(width=width, record=True, force_terminal=True, color_system=None, file=io.StringIO())
    draw(console)
    return console.export_text()


def tables(text: str) -> list[list[list[str]]]:
    """The body rows of each table in ``text``, as lists of stripped fields; a row's continuation
    lines (a wrapped name) are merged into it."""
    found: list[list[list[str]]] = []
    for line in text.splitlines():
        if line.startswith("┏"):
            found.append([])
        elif line.startswith("│") and found:
            fields = [f.strip() for f in line.strip().strip("│").split("│")]
            rows = found[-1]
            if rows and not any(fields[1:]) and fields[0]:  # a name's continuation line
                rows[-1][0] += " " + fields[0]
            elif rows and not fields[0] and not any(fields[1:]):
                continue
            else:
                rows.append(fields)
    return found


def left_out(text: str, what: str = "columns") -> list[str]:
    m = re.search(rf"(?:^| ){what} left out to fit \d+ characters: (.*?) \(pipe", text.replace("\n", " "))
    return [] if m is None else [x.strip() for x in m.group(1).split(", ")]


def in_order(cells: list[str], whole: list[str]) -> bool:
    """Each of ``cells`` equals a cell of ``whole`` (whole strings), in ``whole``'s order."""
    at = 0
    for c in cells:
        while at < len(whole) and whole[at] != c:
            at += 1
        if at == len(whole):
            return False
        at += 1
    return True


def squeeze(name: str) -> str:
    return name.replace(" ", "")  # a wrapped name's lines are joined with a space, folded words too


@pytest.mark.parametrize("width", [80, 120, 200])
def test_every_number_printed_is_a_whole_cell_and_the_rest_is_named(report: Any, width: int) -> None:
    text = render(width, lambda c: print_report(report, c))
    assert max(len(line) for line in text.splitlines()) <= width
    printed = tables(text)
    missing = left_out(text)
    for block, rows in zip(report.blocks, printed, strict=False):
        n_fields = len(block.mean.index.names)
        full = text_rows(block, "plain", with_diff=True)
        headers = text_columns(block, "plain")[n_fields + 1 :] + ["Δ"]
        assert len(rows) == len(full)
        for shown, whole in zip(rows, full, strict=True):
            numbers = whole[n_fields + 1 :]  # the metric cells, then Δ
            cells = shown[n_fields + 1 :]
            assert shown[n_fields] == whole[n_fields]  # n
            # each printed cell is a whole cell of its row, in the table's order
            assert in_order(cells, numbers), (shown, whole)
        # a column is shown or named as left out, never both, never neither
        assert len(cells) + len(missing) == len(headers)
    assert not [line for line in text.splitlines() if "│" in line and "…" in line]  # rich's ellipsis
    if width == 200:
        assert missing == []
    if width == 120:  # the width of issue 30: Δ outranks R@5 and below, and its interval is whole
        assert "Δ" not in missing and "t2v/R@5" not in missing and "t2v/R@10" in missing
        assert re.fullmatch(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]", printed[0][0][-1])


def test_the_decomposition_tables_drop_whole_inference_columns(report: Any) -> None:
    results = with_tie_counts([json.loads(p.read_text()) for p in sorted(FIXTURE.glob("*.json"))])
    wide = build_report(results, layout="paper", baseline=BASELINE, posts=("raw", "dsl", "qbnorm"))
    dec = wide.decomposition
    assert dec is not None
    from vtrbench.report.decomposition import head_tables

    expected = [rows for hd in dec.heads for _, _, rows in head_tables(hd)]
    for width in (60, 80, 200):
        text = render(width, lambda c: print_report(wide, c))
        section = text[text.index("Loss × inference") :]
        printed = tables(section)
        assert len(printed) == len(expected)
        for rows, full in zip(printed, expected, strict=True):
            for shown, whole in zip(rows, full, strict=True):
                assert in_order(shown[1:], whole[1:]), (width, shown, whole)
        assert max(len(line) for line in text.splitlines()) <= width


def test_a_window_too_narrow_for_any_number_gets_plain_rows(report: Any) -> None:
    text = render(30, lambda c: print_report(report, c))
    assert "┏" not in text.split("Loss × inference")[0]
    block = report.blocks[0]
    for whole in text_rows(block, "plain", with_diff=True):
        t2v = whole[len(block.mean.index.names) + 1]
        assert any(
            line.startswith(f"{whole[0]} · {whole[1]}: ") and f"t2v R@1 ↑ {t2v}," in line
            for line in text.splitlines()
        )


def test_report_in_a_pipe_is_the_whole_markdown(run_cli: Any) -> None:
    r = run_cli("report", FIXTURE, "--baseline", BASELINE)
    assert r.code == 0, r.text[-1000:]
    assert r.out == render_markdown(build_report(load_results([FIXTURE]), baseline=BASELINE))


# ------------------------------------------------------------------ train / eval


def every_post_result() -> dict[str, Any]:
    """A result with all nine post-processings (their names are what got cut to ``is-…``)."""
    r = json.loads(sorted(FIXTURE.glob("msrvtt.camoe.dsl.*.json"))[0].read_text())
    r = copy.deepcopy(r)
    raw = r["metrics"]["raw"]
    r["metrics"] = {}
    for i, post in enumerate(POSTPROCESSING):
        m = copy.deepcopy(raw)
        m["t2v"]["MnR"] = 1234.5 + i  # wide numbers: the widest a real gallery gives
        m["RSum"] = 299.9 + i
        r["metrics"][post] = m
    r["transductive"] = dict(TRANSDUCTIVE)
    return r


KEYS = [(d, k) for d in ("t2v", "v2t") for k in ("R@1", "R@5", "R@10", "MdR", "MnR")]


def whole_rows(r: dict[str, Any]) -> dict[str, list[str]]:
    return {
        post + (" (transductive)" if r["transductive"][post] else ""): [f"{m[d][k]:.1f}" for d, k in KEYS]
        + [f"{m['RSum']:.1f}"]
        for post, m in r["metrics"].items()
    }


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_train_on_a_terminal_shows_whole_names_and_cells(width: int) -> None:
    from vtrbench.cli.train_cmds import print_metrics

    r = every_post_result()
    text = render(width, lambda c: print_metrics(r, c))
    assert max(len(line) for line in text.splitlines()) <= width
    expected = whole_rows(r)
    missing = left_out(text)
    printed = tables(text)
    if not printed:  # too narrow for a table: one plain line per post-processing
        for name, cells in expected.items():
            assert any(line.startswith(f"{name}: t2v R@1 {cells[0]},") for line in text.splitlines())
        return
    (rows,) = printed
    assert [squeeze(row[0]) for row in rows] == [squeeze(n) for n in expected]  # wrapped, never cut
    for row, whole in zip(rows, expected.values(), strict=True):
        assert in_order(row[1:], whole), (row, whole)
        assert len(row) - 1 + len(missing) == 11
    assert (missing == []) == (width == 200)
    assert "…" not in text


def test_train_in_a_pipe_prints_every_column_whole() -> None:
    from vtrbench.cli.train_cmds import print_metrics

    r = every_post_result()
    buf = io.StringIO()
    print_metrics(r, Console(file=buf, width=80, force_terminal=False))
    lines = buf.getvalue().splitlines()
    expected = whole_rows(r)
    for name, cells in expected.items():
        (line,) = [x for x in lines if x.startswith(f"| {name} ")]
        assert [c.strip() for c in line.strip("|").split("|")] == [name, *cells]
    assert max(len(x) for x in lines) > 80  # wider than the console: nothing was fitted
