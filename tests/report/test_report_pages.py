"""Paper output that grows (issue 30): notes beside the table or in their own file, footnote values
rounded, tables taller than a page set as several floats, the largest table the README shows compiled.

The big table is ``tests.report_helpers.paper_results``: the default recipe and tuned rows, zero-shot,
three post-processing blocks, 21 result files whose tie rule is the one evaluation writes. Before
issue 30 its LaTeX stopped pdflatex with "Float too large for page by 98.7pt" (measured on this
machine with ``--split none``, which renders as the old code did) and printed
``logit_scale_init=29.689905586686095``; ``test_one_float_of_the_big_table_is_too_large`` keeps that
failure visible, so that the log checks here are known to catch it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.report.test_report import _result
from tests.report_helpers import paper_result, paper_results
from vtrbench.errors import VtrbenchError
from vtrbench.metrics import TIE_POLICY
from vtrbench.report import build_report, markdown_escape, pagefit, render_latex, render_markdown
from vtrbench.report.labels import number_text
from vtrbench.report.latex import render_latex_notes
from vtrbench.report.markdown import render_markdown_notes
from vtrbench.report.notes import place_notes

BASELINE = "meanp + infonce"
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")


@pytest.fixture(scope="module")
def big() -> object:
    return build_report(paper_results(), baseline=BASELINE, n_boot=200, decomposition=False)


def _pdflatex(tex: str, folder: Path, name: str = "t") -> str:
    (folder / f"{name}.tex").write_text(tex)
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (folder / f"{name}.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    return log


def _rows(tex: str) -> list[list[str]]:
    """The body rows of each block of a LaTeX table (the lines after a \\midrule and title)."""
    blocks: list[list[str]] = []
    lines = tex.splitlines()
    for i, line in enumerate(lines):
        if line == "\\midrule":
            blocks.append([])
        elif blocks and lines[i - 1] != "\\midrule" and line.endswith("\\\\") and "&" in line:
            blocks[-1].append(line)
    return blocks


def _clean(log: str) -> None:
    """Nothing runs off the page: no overfull line or page, no float taller than the page, no error."""
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    assert "Overfull \\vbox" not in log, re.findall(r"Overfull \\vbox.*", log)
    assert "Float too large" not in log, re.findall(r"Float too large.*", log)
    assert not re.search(r"^! ", log, re.M)


# --------------------------------------------------------------------------- footnote values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (29.689905586686095, "29.7"),
        (18.03325530911417, "18.0"),  # rounded: the zero stays, it is not the whole number 18
        (0.7710321945, "0.771"),
        (0.5, "0.5"),  # exact at 3 digits: no zeros added
        (0.0003162277660168379, "0.000316"),
        (1.5e-05, "1.5e-5"),
        (123456.7, "1.23e5"),
        (100.0, "100"),
        (-3.14159, "-3.14"),
    ],
)
def test_numbers_in_names_have_three_significant_digits(value, text):
    assert number_text(value) == text


def test_the_big_tables_footnotes_print_no_long_numbers(big):
    md = render_markdown(big)
    tex = render_latex(big)
    for text in (md, tex):
        assert "29.689905586686095" not in text and "0.7710321945" not in text
    notes = [line for line in md.splitlines() if line.startswith("- ")]
    marks = {line[5:] for line in notes if re.match(r"- [a-z]: ", line)}
    assert "seqTransf (tuned, 12 trials) with 2 layers, logit\\_scale\\_init=29.7" in marks
    assert "CAMoE (tuned, 12 trials) with aux 0.771, logit\\_scale\\_init=18.0" in marks
    assert len(marks) == 4
    # No number in a note or a name runs past 6 digits after the point.
    assert not re.search(r"\d\.\d{7,}", "\n".join(notes))


def test_more_digits_only_where_three_would_merge_two_rows():
    a, b = (
        paper_result("seqtransf", "infonce", 0, 20.0, tuned={"logit_scale_init": v}) for v in (29.681, 29.712)
    )
    b["config_hash"] += "-b"
    report = build_report([a, b], decomposition=False)
    md = render_markdown(report)
    assert "logit\\_scale\\_init=29.68" in md and "logit\\_scale\\_init=29.71" in md
    # Loss variants (a DSL temperature sweep) too: 10.01 and 10.02 are two rows, not one refusal.
    rows = [
        _result("meanp", [1, 2, 3, 1], loss="dsl", loss_options={"temperature": t}) for t in (10.01, 10.02)
    ]
    for r, t in zip(rows, ("a", "b"), strict=True):
        r["config_hash"] += t
    md = render_markdown(build_report(rows))
    assert "DSL (τ=10.01)" in md and "DSL (τ=10.02)" in md
    assert "DSL (τ=100)" in render_markdown(
        build_report(
            [
                _result("meanp", [1, 2, 3, 1], loss="dsl", loss_options={"temperature": 100}),
                _result(
                    "meanp", [2, 2, 3, 1], loss="dsl", loss_options={"temperature": 10.5}, config_hash="h2"
                ),
            ]
        )
    )


# --------------------------------------------------------------------------- where the notes go


def test_the_tie_rule_leaves_the_top_of_the_report(big):
    md = render_markdown(big)
    first = md.splitlines()[0]
    assert first.startswith("Provenance: ") and len(first) < 400, first
    assert "ties: expected rank under uniformly random tie-breaking (rule in the notes)" in first
    assert TIE_POLICY not in first
    # The whole rule is the last note, nothing of it lost.
    last = [line for line in md.splitlines() if line.startswith("- ")][-1]
    assert last.startswith("- ties: expected rank under uniformly random tie-breaking: rank = 1 + g")
    assert "eval\\_block or chunk\\_size" in last
    # A short rule (the committed fixtures' "expected rank") stays where it was.
    short = render_markdown(build_report([_result("a", [1, 2]), _result("b", [2, 1])]))
    assert "ties: expected rank · " in short.splitlines()[0]


def test_short_notes_keep_what_a_reader_needs(big):
    placed = place_notes(big, "short")
    text = "\n".join(placed.notes)
    for needed in ("cells:", "bold:", "transductive blocks", ": CAMoE (tuned, 12 trials) with aux 0.771"):
        assert needed in text
    assert "†: different from the baseline at 5 % family-wise (Holm's correction over the 180 tested" in text
    assert "tuned rows: each cell's best configuration" in text
    for moved in ("qbnorm:", "edge of the search space", "TPESampler", "ties:", "(S-1)/S"):
        assert moved not in text, moved
    assert placed.provenance == [] and placed.warnings == big.warnings
    md = render_markdown(big, notes="short")
    assert "Provenance:" not in md and "edge of the search space" not in md
    tex = render_latex(big, notes="short")
    assert "Provenance" not in tex and "TPESampler" not in tex and "Seeds per row: 2 seeds" in tex


def test_unequal_budgets_stay_beside_the_table():
    rs = paper_results()
    for r in rs:
        if (r.get("tuned") or {}).get("cell") == "camoe+dsl":
            r["tuned"]["trials"] = 40
    placed = place_notes(build_report(rs, decomposition=False), "short")
    assert any("UNEQUAL budgets" in n for n in placed.notes)


def test_no_notes_is_the_tables_alone(big):
    md = render_markdown(big, notes="none")
    assert not [line for line in md.splitlines() if line.startswith(("- ", ">", "Provenance", "Labels"))]
    assert md.count("### ") == 3
    tex = render_latex(big, notes="none")
    assert "\\par\\smallskip" not in tex and "Provenance" not in tex


@pytest.mark.parametrize("style", ["short", "none"])
def test_the_notes_file_holds_every_note_in_full(big, style):
    full_md = render_markdown(big)
    notes_md = render_markdown_notes(big)
    for line in full_md.splitlines():
        if line.startswith(("- ", "Provenance", "Labels", "> **Warning")):
            assert line in notes_md, line
    notes_tex = render_latex_notes(big)
    full_tex = render_latex(big, notes="full", split="none")
    for line in full_tex.splitlines():
        if line.endswith("\\par") and not line.startswith("\\par"):
            assert line in notes_tex, line
    # What the table leaves out is in the file, whatever the style.
    for note in set(place_notes(big, "full").notes) - set(place_notes(big, style).notes):
        assert f"- {markdown_escape(note)}" in notes_md.splitlines(), note


def test_unknown_notes_and_split_are_refused(big):
    with pytest.raises(VtrbenchError, match="unknown notes style 'long'"):
        render_markdown(big, notes="long")
    with pytest.raises(VtrbenchError, match="unknown split 'pages'"):
        render_latex(big, split="pages")


# --------------------------------------------------------------------------- tables taller than a page


HEAD = [" & t2v & v2t \\\\", "\\cmidrule(lr){2-2}", "Method & R@1 & R@1 \\\\"]


def test_split_plans_keep_every_row_once_and_in_order():
    for counts in ([11, 11, 11], [60], [3, 250, 4], [1]):
        blocks = [
            [pagefit.ROW_PT + (pagefit.DAGGER_PT if r % 3 == 0 else 0.0) for r in range(n)] for n in counts
        ]
        for split, notes in [(s, n) for s in pagefit.SPLITS for n in (["x" * 300] * 3, ["x" * 900] * 5)]:
            parts = pagefit.plan_floats(blocks, head=HEAD, caption="A caption", notes=notes, split=split)
            pieces = [p for part in parts for p in part]
            covered = [(b, r) for b, lo, hi in pieces for r in range(lo, hi)]
            assert covered == [(b, r) for b, n in enumerate(counts) for r in range(n)], (counts, split)
            if split == "none":
                assert len(parts) == 1
                continue
            if split == "blocks":
                assert all(len({b for b, _, _ in part}) == 1 for part in parts)
            frame = pagefit.head_height(HEAD) + pagefit.caption_height("A caption")
            budget = pagefit.BUDGET * pagefit.PAGE_PT
            # notes that leave no room for a block's first row: only the floats before the last fit
            huge = frame + pagefit.notes_height(notes) + pagefit.BLOCK_PT + max(map(max, blocks)) > budget
            for i, part in enumerate(parts[:-1] if huge else parts):
                body = sum(pagefit.BLOCK_PT + sum(blocks[b][lo:hi]) for b, lo, hi in part)
                notes_pt = pagefit.notes_height(notes) if i == len(parts) - 1 else 0.0
                assert frame + body + notes_pt <= budget, (counts, split, i)


@needs_pdflatex
def test_one_float_of_the_big_table_is_too_large(big, tmp_path):
    # The table as one float with every note, as before issue 30: the log check sees it run off.
    log = _pdflatex(render_latex(big, standalone=True, split="none"), tmp_path)
    assert re.search(r"Float too large for page by [0-9.]+pt", log)


@needs_pdflatex
@pytest.mark.parametrize("notes", ["full", "short", "none"])
@pytest.mark.parametrize("split", ["auto", "blocks"])
def test_the_big_table_compiles_without_running_off_the_page(big, tmp_path, notes, split):
    tex = render_latex(big, standalone=True, notes=notes, split=split)
    tex = tex.replace("\\end{document}", "\\typeout{TABLES=\\arabic{table}}\n\\end{document}")
    log = _pdflatex(tex, tmp_path)
    _clean(log)
    if notes == "full" or split == "blocks":
        assert tex.count("\\begin{table}") > 1  # too tall for one page (full) or asked (blocks)
    if notes == "short" and split == "auto":
        assert tex.count("\\begin{table}") == 1  # the short notes fit the page: one float as before
    assert "TABLES=" + str(tex.count("\\caption{")) in log


@needs_pdflatex
def test_continued_floats_share_the_table_number(big, tmp_path):
    report = build_report(
        paper_results(), baseline=BASELINE, n_boot=50, caption="MSR-VTT 1k-A", tex_label="tab:big"
    )
    tex = render_latex(report, standalone=True, split="blocks", notes="short")
    assert tex.count("\\begin{table}") == 3  # one float per block
    assert tex.count("\\caption{MSR-VTT 1k-A (continued)}") == 2 and tex.count("\\label{tab:big}") == 1
    tex = tex.replace("\\end{document}", "\\typeout{TABLES=\\arabic{table}}\n\\end{document}")
    log = _pdflatex(tex, tmp_path)
    _clean(log)
    assert "TABLES=1" in log  # three floats, one table number


@needs_pdflatex
def test_a_wide_table_in_a_two_column_paper(big, tmp_path):
    tex = render_latex(big, standalone=True, wide=True, notes="full")
    tex = tex.replace("\\documentclass{article}", "\\documentclass[twocolumn]{article}")
    assert "\\begin{table*}" in tex
    _clean(_pdflatex(tex, tmp_path))


@needs_pdflatex
def test_a_table_of_many_systems_is_cut_into_pages(tmp_path):
    # 90 configurations x 3 blocks: 270 rows, far beyond a page; no baseline (no bootstrap to wait for)
    rs = [paper_result("meanp", "infonce", 0, 10.0 + i, tuned=None) for i in range(90)]
    for i, r in enumerate(rs):
        r["label"] = f"meanp-v{i:02d}"
        r["config_hash"] = f"hash-{i}"
    report = build_report(rs, decomposition=False)
    tex = render_latex(report, standalone=True)
    # 270 rows of at least 8 pt (measured, see pagefit) need 4 pages of 550 pt at least
    assert tex.count("\\begin{table}") >= 4
    assert "\\textit{raw (continued)}" in tex  # a block went on in the next float, its title repeated
    _clean(_pdflatex(tex, tmp_path))


def _height(tex: str, folder: Path, width: str) -> float:
    """The height TeX gives a float's contents in a box ``width`` wide (700pt: never scaled)."""
    box = f"\\makeatletter\\def\\@captype{{table}}\\setbox0\\vbox{{\\hsize={width}\\linewidth={width}"
    tex = tex.replace("\\begin{table}[t]", box)
    tex = tex.replace("\\end{table}", "}\\typeout{HEIGHT=\\the\\dimexpr\\ht0+\\dp0\\relax}")
    return float(re.search(r"HEIGHT=([0-9.]+)pt", _pdflatex(tex, folder, "m")).group(1))


@needs_pdflatex
@pytest.mark.parametrize("which", ["big", "demo"])
def test_the_estimate_is_never_below_what_tex_sets(tmp_path, which):
    # Each part of a float as TeX sets it and as pagefit estimates it: the tabular unscaled (a box
    # 700 pt wide), the notes and the caption at the text width. The estimate may be high, never low.
    from tests.report.test_report import FIXTURES
    from tests.report_helpers import with_tie_counts
    from vtrbench.report import load_results
    from vtrbench.report.latex import _footnotes, _paper_head

    results = paper_results() if which == "big" else with_tie_counts(load_results([FIXTURES / "msrvtt"]))
    caption = "Text-video retrieval on MSR-VTT 1k-A: default recipe and tuned heads, three post-processings"
    for posts in (("raw",), ("raw", "dsl", "qbnorm")):
        for columns in (("t2v/R@1", "v2t/R@1", "RSum"), None):
            report = build_report(
                results, baseline=BASELINE, n_boot=50, posts=posts, columns=columns, caption=caption
            )
            head = _paper_head(report)
            bare = render_latex(report, standalone=True, notes="none", split="none")
            table = _height(bare.replace(f"\\caption{{{caption}}}", ""), tmp_path, "700pt")
            estimate = pagefit.head_height(head.lines) + sum(
                pagefit.BLOCK_PT + sum(map(pagefit.row_height, rows)) for rows in _rows(bare)
            )
            assert table <= estimate <= 1.1 * table, (which, posts, columns, table, estimate)
            captioned = _height(bare, tmp_path, "\\textwidth")
            without = _height(bare.replace(f"\\caption{{{caption}}}", ""), tmp_path, "\\textwidth")
            assert captioned - without <= pagefit.caption_height(caption), (captioned, without)
            for notes in ("short", "full"):
                tex = render_latex(report, standalone=True, notes=notes, split="none")
                measured = _height(tex, tmp_path, "\\textwidth") - captioned
                foot = _footnotes(report, head.seeds, place_notes(report, notes))
                assert measured <= pagefit.notes_height(foot) <= 1.15 * measured, (which, notes, measured)


# --------------------------------------------------------------------------- the command line


def _write(results: list[dict], folder: Path) -> Path:
    import json

    folder.mkdir()
    for r in results:
        (folder / f"{r['run_id']}.json").write_text(json.dumps(r))
    return folder


def test_command_line_notes_file_and_refusals(run_cli, tmp_path):
    folder = _write(paper_results()[:5], tmp_path / "res")
    table, notes = tmp_path / "t.tex", tmp_path / "notes.tex"
    argv = ["--format", "latex", "--notes", "short", "--notes-file", notes, "--output", table]
    run = run_cli("report", folder, *argv)
    assert run.code == 0, run.text
    assert "Provenance" not in table.read_text() and "Provenance: cache ViT-B-32/openai" in notes.read_text()
    assert notes.read_text().startswith("% Generated by vtrbench report: the notes of the table, in full.")
    # The defaults spelled out give the same table as no options.
    plain = run_cli("report", folder, "--format", "latex")
    spelled = run_cli("report", folder, "--format", "latex", "--notes", "full", "--split", "auto")
    assert plain.code == spelled.code == 0 and spelled.out == plain.out and "\\begin{table}" in plain.out
    same = tmp_path / "same.md"
    for argv, message in (
        (["--format", "json", "--notes", "short"], "--notes short: only for --format md or latex"),
        (
            ["--format", "csv", "--notes-file", tmp_path / "n.md"],
            "--notes-file: only for --format md or latex",
        ),
        (["--split", "blocks"], "--split blocks: only for --format latex"),
        (["--output", same, "--notes-file", same], "the same file as --output"),
        (["--notes-file", tmp_path], "is a folder"),
        (["--notes", "long"], "--notes"),
    ):
        run = run_cli("report", folder, *argv)
        assert run.code != 0 and message in run.text, (argv, run.text)
        assert "Traceback" not in run.text
    assert not same.exists() and not (tmp_path / "n.md").exists()


def test_command_line_no_notes_still_prints_the_warnings(run_cli, tmp_path):
    folder = _write(paper_results()[:5], tmp_path / "res")
    run = run_cli("report", folder, "--notes", "none", "--baseline", BASELINE, "--n-boot", "50")
    assert run.code == 0, run.text
    assert "warning: some compared systems have only 2 seed(s)" in run.err
    assert "some compared systems" not in run.out
