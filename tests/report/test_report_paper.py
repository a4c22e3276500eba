"""Paper-ready reports: statistics over >= 3 uneven seeds, the hierarchical bootstrap, short labels,
renames, significance marks, Markdown rows that never break, LaTeX that fits the page, figures.

Expected values come from Python's ``statistics``, plain loops over the same random draws, or the
documented convention (not from vtrbench's own functions).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.report.test_report import _result, check_goldens
from tests.report_helpers import with_tie_counts
from vtrbench.errors import VtrbenchError
from vtrbench.report import build_report, load_results, render_latex, render_markdown
from vtrbench.report.labels import read_renames
from vtrbench.report.stats import hierarchical_bootstrap, paired_bootstrap

FIXTURES = Path(__file__).parents[1] / "fixtures" / "results"
SWEEP = FIXTURES / "sweep"


@pytest.fixture(scope="module")
def sweep() -> list[dict]:
    return load_results([SWEEP])


@pytest.fixture(scope="module")
def demo_like() -> list[dict]:
    return load_results([FIXTURES / "msrvtt"])


def _raw_json(pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(SWEEP.glob(pattern))]


# --------------------------------------------------------------------------- mean ± sample std


@pytest.mark.parametrize("metric", ["t2v/R@1", "v2t/R@1", "t2v/MdR", "v2t/R@10", "RSum"])
def test_mean_and_sample_std_over_three_uneven_seeds_in_both_layouts(sweep, metric):
    seeds = _raw_json("msrvtt.meanp.infonce.*.json")
    assert len(seeds) == 3
    direction, _, name = metric.rpartition("/")
    values = [s["metrics"]["raw"][direction][name] if direction else s["metrics"]["raw"][name] for s in seeds]
    # The fixture is made so that the median would be a different (wrong) aggregate.
    assert statistics.mean(values) != pytest.approx(statistics.median(values)) or metric == "RSum"
    paper = build_report(sweep, posts=("raw",), columns=(metric,)).blocks[0]
    key = ("meanp", "infonce")
    assert paper.mean.loc[key, metric] == pytest.approx(statistics.mean(values))
    assert paper.std.loc[key, metric] == pytest.approx(statistics.stdev(values))
    assert paper.n.loc[key, metric] == 3
    pivot = build_report(sweep, layout="pivot", metric=metric, posts=("raw",)).blocks[0]
    assert pivot.mean.loc["meanp", "infonce"] == pytest.approx(statistics.mean(values))
    assert pivot.std.loc["meanp", "infonce"] == pytest.approx(statistics.stdev(values))
    md = render_markdown(build_report(sweep, posts=("raw",), columns=(metric,)))
    row = next(line for line in md.splitlines() if line.startswith("| meanP ") and "InfoNCE" in line)
    assert f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" in row


# --------------------------------------------------------------------------- hierarchical bootstrap


def _hierarchical_by_hand(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, chunk: int = 64):
    """The documented procedure with plain loops: per chunk, seeds of a, seeds of b, then queries."""
    rng = np.random.default_rng(seed)
    reps = []
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        sa = rng.integers(0, a.shape[0], size=(m, a.shape[0]))
        sb = rng.integers(0, b.shape[0], size=(m, b.shape[0]))
        q = rng.integers(0, a.shape[1], size=(m, a.shape[1]))
        for r in range(m):
            total_a = sum(a[s, j] for s in sa[r] for j in q[r]) / (len(sa[r]) * len(q[r]))
            total_b = sum(b[s, j] for s in sb[r] for j in q[r]) / (len(sb[r]) * len(q[r]))
            reps.append(total_a - total_b)
        done += m
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def test_hierarchical_bootstrap_follows_its_documented_draws():
    rng = np.random.default_rng(0)
    a = (rng.random((3, 15)) < 0.5) * 100.0
    b = (rng.random((2, 15)) < 0.4) * 100.0
    assert hierarchical_bootstrap(a, b, n_boot=150, seed=4) == pytest.approx(
        _hierarchical_by_hand(a, b, 150, 4)
    )


def test_hierarchical_interval_covers_seed_noise():
    rng = np.random.default_rng(1)
    q = 2000
    base = (rng.random(q) < 0.4) * 100.0
    # Seeds that differ a lot: each seed of `a` hits R@1 on a different share of the queries.
    a_noisy = np.stack([(rng.random(q) < p) * 100.0 for p in (0.35, 0.45, 0.60)])
    b = np.stack([base, base, base])
    _, lo_h, hi_h = hierarchical_bootstrap(a_noisy, b, n_boot=400, seed=0)
    _, lo_q, hi_q = paired_bootstrap(a_noisy.mean(0), b.mean(0), n_boot=400, seed=0)
    assert (hi_h - lo_h) > 2.0 * (hi_q - lo_q)
    # Identical seeds: nothing to add, the two intervals agree within resampling noise.
    a_same = np.stack([a_noisy[1]] * 3)
    _, lo_h, hi_h = hierarchical_bootstrap(a_same, b, n_boot=400, seed=0)
    _, lo_q, hi_q = paired_bootstrap(a_same.mean(0), b.mean(0), n_boot=400, seed=0)
    assert (hi_h - lo_h) == pytest.approx(hi_q - lo_q, rel=0.2)


def test_report_uses_the_hierarchical_bootstrap_and_says_so(sweep):
    report = build_report(
        with_tie_counts(sweep), posts=("raw",), baseline="meanp + infonce", n_boot=200, boot_seed=3
    )
    block = report.blocks[0]

    def per_seed(pattern: str, temperature: int | None = None) -> np.ndarray:
        seeds = [s for s in _raw_json(pattern) if s["loss_options"].get("temperature") == temperature]
        return np.array(
            [[100.0 if r <= 1 else 0.0 for r in s["per_query_ranks"]["raw"]["t2v"]] for s in seeds]
        )

    a = per_seed("msrvtt.camoe.dsl.*.json", 1000)
    base = per_seed("msrvtt.meanp.infonce.*.json")
    assert a.shape == (3, 20) and base.shape == (3, 20)
    expected = _hierarchical_by_hand(a, base, 200, 3)
    key = ("camoe[action,entity,fusion;pos;uniform]", "dsl[temperature=1000]")
    got = tuple(f.loc[key, "t2v/R@1"] for f in (block.diff, block.diff_lo, block.diff_hi))
    assert got == pytest.approx(expected)
    assert any("resamples each system's seeds, then the queries" in n for n in report.notes)
    queries = build_report(
        with_tie_counts(sweep), posts=("raw",), baseline="meanp + infonce", bootstrap="queries"
    )
    assert any("seed noise is not covered" in n for n in queries.notes)


def test_one_seed_says_seed_noise_is_not_covered():
    a = _result("a", [1, 2, 1, 3, 1, 1])
    b = _result("b", [2, 2, 1, 3, 4, 1])
    report = build_report([a, b], baseline="a")
    assert any("one seed, so seed noise is not covered" in n for n in report.notes)


# --------------------------------------------------------------------------- labels and renames


def _camoe(
    gate: str, seed: int = 0, experts: tuple[str, ...] = ("action", "entity", "fusion"), repeat: int = 1
) -> dict:
    label = f"camoe[{','.join(experts)};pos;{gate}]"
    r = _result(label, [1, 2, 1, 3, 1, 1, 2, 5] * repeat, seed=seed, head="camoe")
    r["head_options"] = {"experts": list(experts), "streams": "pos", "gate": gate, "aux_weight": 0.5}
    return r


def test_short_labels_show_only_the_options_that_differ():
    rs = [_camoe("single"), _camoe("uniform"), _result("meanp", [2, 2, 3, 1, 1, 4, 2, 2])]
    report = build_report(rs)
    md = render_markdown(report)
    assert "| CAMoE (single gate) " in md and "| CAMoE (uniform gate) " in md and "| meanP " in md
    # The full labels stay in the Markdown provenance.
    assert "CAMoE (uniform gate) = `camoe[action,entity,fusion;pos;uniform]`" in md
    tex = render_latex(report)
    assert "\nCAMoE (uniform gate) & InfoNCE" in tex
    full = render_markdown(build_report(rs, labels="full"))
    assert "| camoe[action,entity,fusion;pos;uniform] " in full


def test_long_differences_become_footnote_marks():
    rs = [
        _camoe("single", experts=("action", "entity", "fusion", "scene")),
        _camoe("uniform", experts=("entity",)),
    ]
    report = build_report(rs)
    md = render_markdown(report)
    assert "| CAMoE^a " in md and "| CAMoE^b " in md
    assert "- a: CAMoE with experts action, entity, fusion, scene, single gate" in md
    tex = render_latex(report)
    assert "\nCAMoE\\textsuperscript{a} & InfoNCE" in tex
    assert "\\textsuperscript{b} CAMoE with experts entity, uniform gate" in tex


def test_renames_from_options_and_files(tmp_path):
    rs = [_camoe("single"), _camoe("uniform"), _result("meanp", [2, 2, 3, 1, 1, 4, 2, 2])]
    mapping = tmp_path / "names.json"
    mapping.write_text(json.dumps({"CAMoE (uniform gate)": "Ours"}))
    lines = tmp_path / "names.txt"
    lines.write_text("# mine\nmeanp=Mean pooling\n")
    renames = read_renames(["camoe[action,entity,fusion;pos;single]=CAMoE"], [mapping, lines])
    md = render_markdown(build_report(rs, rename=renames))
    assert "| Ours " in md and "| Mean pooling " in md and "| CAMoE " in md
    with pytest.raises(VtrbenchError, match="--rename 'Nope'"):
        build_report(rs, rename={"Nope": "x"})
    with pytest.raises(VtrbenchError, match="expected old=new"):
        read_renames(["no-separator"])


def test_a_newline_or_pipe_in_a_label_never_breaks_a_markdown_row():
    rs = [_result("two\nlines | and pipe", [1, 2, 3, 1]), _result("ok", [2, 2, 1, 1])]
    md = render_markdown(build_report(rs, baseline="ok"))
    table = [line for line in md.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
    assert len(widths) == 1, table  # every row has the same number of cell separators
    assert "two lines \\| and pipe" in md
    tex = render_latex(build_report(rs))
    assert "two lines \\textbar{} and pipe &" in tex


# --------------------------------------------------------------------------- significance marks


def _clear_winner() -> list[dict]:
    good = [_result("good", [1] * 30 + [3] * 10, seed=s) for s in (0, 1, 2)]
    base = [_result("base", [1] * 10 + [3] * 30, seed=s) for s in (0, 1, 2)]
    tie = [_result("tie", [1] * 10 + [3] * 30, seed=s) for s in (0, 1, 2)]
    return good + base + tie


def test_significance_marks_where_the_interval_excludes_zero():
    report = build_report(_clear_winner(), baseline="base", n_boot=200)
    block = report.blocks[0]
    assert block.sig.loc[("good", "infonce"), "t2v/R@1"]  # 75 % vs 25 %: far from 0
    assert not block.sig.loc[("tie", "infonce"), "t2v/R@1"]  # identical: interval [0, 0]
    assert not block.sig.loc[("good", "infonce"), "t2v/R@5"]  # both 100 %
    assert not block.sig.loc[("good", "infonce"), "t2v/MdR"]  # not a per-query metric: no mark
    md = render_markdown(report)
    good_row = next(line for line in md.splitlines() if line.startswith("| good "))
    assert "**75.0**† ± 0.0" in good_row and "100.0**†" not in good_row
    # 2 rows x 6 per-query columns (t2v/v2t R@1, R@5, R@10) tested: Holm by default, said so.
    assert report.correction == "holm" and report.n_tested == 12
    assert "- †: the difference to the baseline is significant at 5 % family-wise (Holm" in md
    tex = render_latex(report)
    assert "\\textbf{75.0}$^{\\dagger}_{0.0}$" in tex
    assert "$^{\\dagger}$: the difference to the baseline is significant at 5 \\% family-wise (Holm" in tex
    assert "hierarchical paired bootstrap (200 replicates" in tex


def test_golden_short_labels_renames_marks_and_escaping():
    rs = _clear_winner()[:6] + [_camoe("single", repeat=5), _camoe("uniform", repeat=5)]
    nasty = _result("x_%&#{}~^\\$|<>\nend", [1, 3] * 20, seed=0)
    report = build_report(
        rs + [nasty],
        baseline="base",
        n_boot=100,
        rename={"CAMoE (uniform gate)": "Ours (uniform)"},
        caption="Retrieval on toy data; 50 % of R_1",
        tex_label="tab:toy",
    )
    check_goldens(
        {
            "report_labels.md": render_markdown(report),
            "report_labels.tex": render_latex(report, standalone=True),
        }
    )


# --------------------------------------------------------------------------- LaTeX on the page


def _pdflatex(tex: str, folder: Path) -> str:
    (folder / "t.tex").write_text(tex)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (folder / "t.log").read_text(errors="replace")
    assert proc.returncode == 0, proc.stdout[-3000:]
    return log


def _overfull(log: str) -> list[float]:
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_warning_naming_deep_file_paths_fits_the_text_width(tmp_path):
    # Schema-1 files in a deeply nested folder: the warning names them by path, and a path must break
    # at its slashes instead of running past the margin (CI's checkout lived deeper than ours once).
    deep = tmp_path.joinpath(*["a_rather_long_folder_name"] * 6, "msrvtt")
    shutil.copytree(FIXTURES / "msrvtt", deep)
    report = build_report(load_results([deep]), baseline="meanp + infonce", n_boot=50)
    assert any(str(deep) in w for w in report.warnings)
    tex = render_latex(report, standalone=True)
    log = _pdflatex(tex, tmp_path)
    assert [w for w in _overfull(log) if w > 1.0] == [], log[-2000:]


def test_latex_prose_breaks_long_tokens_only():
    from vtrbench.report.text import latex_prose

    assert latex_prose("see t2v/R@1 and x_y") == "see t2v/R@1 and x\\_y"
    out = latex_prose("file /very/long/folder_name/run.id.s0.json ok")
    assert out == (
        "file /\\allowbreak{}very/\\allowbreak{}long/\\allowbreak{}folder\\_\\allowbreak{}name/"
        "\\allowbreak{}run.\\allowbreak{}id.\\allowbreak{}s0.\\allowbreak{}json ok"
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("wide", [False, True])
def test_demo_like_latex_fits_the_text_width(demo_like, tmp_path, wide):
    # 7 systems x 3 post-processings, as the demo makes (schema 2: with † marks); the article's text
    # width is 345 pt.
    report = build_report(
        with_tie_counts(demo_like),
        baseline="meanp + infonce",
        caption="Demo",
        tex_label="tab:demo",
        n_boot=200,
    )
    assert not any("tie counts" in w for w in report.warnings)
    tex = render_latex(report, standalone=True, wide=wide)
    if wide:
        tex = tex.replace("\\documentclass{article}", "\\documentclass[twocolumn]{article}")
    log = _pdflatex(tex, tmp_path)
    assert [w for w in _overfull(log) if w > 1.0] == [], log[-2000:]
    assert "\\caption{Demo}" in tex and "\\label{tab:demo}" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_fewer_columns_fit_without_scaling(demo_like, tmp_path):
    cols = ("t2v/R@1", "t2v/R@5", "t2v/R@10", "v2t/R@1", "v2t/R@5", "v2t/R@10", "RSum")
    report = build_report(demo_like, columns=cols, n_boot=50)
    log = _pdflatex(render_latex(report, standalone=True), tmp_path)
    assert "vtrbench: table scaled" not in log
    assert [w for w in _overfull(log) if w > 1.0] == []


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_nasty_labels_compile(tmp_path):
    rs = [_result("x_%&#{}~^\\$|<>\nend", [1, 3] * 10), _result("[b]", [2, 1] * 10)]
    log = _pdflatex(render_latex(build_report(rs, baseline="[b]"), standalone=True), tmp_path)
    assert [w for w in _overfull(log) if w > 1.0] == []


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_non_ascii_names_and_captions_compile(tmp_path):
    rs = [
        _result("α-pool ✓ naïve", [1, 3] * 10),
        _result("Ωmega Straße Øre", [2, 1] * 10),
        _result("base", [2, 2] * 10),
    ]
    report = build_report(
        rs, baseline="base", caption="Résumé: τ, β, μ, σ and Σ; ✓ = better; “quoted”", tex_label="tab:x"
    )
    tex = render_latex(report, standalone=True)
    assert tex.isascii()  # every non-ASCII character became a LaTeX command
    assert '\\ensuremath{\\alpha}-pool \\ensuremath{\\surd} na\\"{\\i}ve' in tex
    assert "R\\'{e}sum\\'{e}" in tex and "Stra\\ss{}e" in tex and "\\O{}re" in tex
    log = _pdflatex(tex, tmp_path)
    assert "Unicode character" not in log and "Undefined control sequence" not in log


@pytest.mark.parametrize(("where", "text"), [("caption", "表 1"), ("name", "モデル")])
def test_characters_latex_cannot_set_are_refused_by_name(where, text):
    rs = [_result(text if where == "name" else "a", [1, 2] * 5), _result("b", [2, 1] * 5)]
    report = build_report(rs, caption=text if where == "caption" else None)
    render_markdown(report)  # Markdown holds any text
    with pytest.raises(VtrbenchError, match=rf"{where} .*LaTeX cannot set the character '{text[0]}' \(U\+"):
        render_latex(report)


def test_the_command_line_refuses_a_latex_caption_before_the_work(capsys, tmp_path):
    from vtrbench.cli import main

    code = main(["report", str(FIXTURES / "msrvtt"), "--format", "latex", "--caption", "漢字"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "--caption '漢字': LaTeX cannot set the character '漢'" in " ".join(captured.err.split())
    code = main(["report", str(FIXTURES / "msrvtt"), "--format", "latex", "--rename", "meanp=✗ mean"])
    assert code == 2 and "--rename meanp=" in " ".join(capsys.readouterr().err.split())


def test_renames_that_merge_rows_or_blank_them_are_refused(tmp_path):
    rs = [_result("meanp", [1, 2] * 5), _result("xpool", [2, 1] * 5)]
    with pytest.raises(VtrbenchError, match="two rows would both be shown as 'xpool \\+ InfoNCE'"):
        build_report(rs, rename={"meanp": "xpool"})
    with pytest.raises(VtrbenchError, match="two rows would both be shown as 'same \\+ InfoNCE'"):
        build_report(rs, rename={"meanp": "same", "xpool": "same"})
    for blank in ("", "   ", "\n"):
        with pytest.raises(VtrbenchError, match="a name must be non-blank text"):
            build_report(rs, rename={"meanp": blank})
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"meanp": ""}))
    with pytest.raises(VtrbenchError, match="a name must be non-blank text"):
        build_report(rs, rename=read_renames([], [names]))
    # Different rows in the pivot layout's columns too.
    pivot = [_result("a", [1, 2] * 5, loss="infonce"), _result("a", [1, 1] * 5, loss="dsl")]
    with pytest.raises(VtrbenchError, match="two columns would both be shown as 'X'"):
        build_report(pivot, layout="pivot", rows="label", cols="loss", rename={"InfoNCE": "X", "DSL": "X"})
    # A rename to a fresh name is fine.
    assert "| Mean pooling " in render_markdown(build_report(rs, rename={"meanp": "Mean pooling"}))


def test_unknown_columns_and_bootstrap_are_refused(demo_like):
    with pytest.raises(VtrbenchError, match="unknown column 't2v/R@2'"):
        build_report(demo_like, columns=("t2v/R@2",))
    with pytest.raises(VtrbenchError, match="unknown bootstrap 'seeds'"):
        build_report(demo_like, bootstrap="seeds")
    with pytest.raises(VtrbenchError, match="unknown label style 'long'"):
        build_report(demo_like, labels="long")
    with pytest.raises(VtrbenchError, match="--label 'tab:a}b'"):
        build_report(demo_like, tex_label="tab:a}b")


# --------------------------------------------------------------------------- figures


def test_plot_writes_the_format_of_its_extension(tmp_path):
    pytest.importorskip("matplotlib")
    from vtrbench.report import plot_report

    rs = [_result("a", [1, 2, 3, 1]), _result("b", [2, 2, 1, 4])]
    magic = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}
    for suffix, head in magic.items():
        data = plot_report(rs, tmp_path / f"fig{suffix}").read_bytes()
        assert data.startswith(head), suffix
    assert b"<svg" in (tmp_path / "fig.svg").read_bytes()


def test_plot_report_figure_content(demo_like, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from vtrbench.report import figures

    saved: list[Figure] = []
    monkeypatch.setattr(figures, "_save", lambda fig, out: (saved.append(fig), out)[1])
    figures.plot_report(demo_like, tmp_path / "fig.png")
    (fig,) = saved
    w, h = fig.get_size_inches()
    assert w == pytest.approx(figures.COLUMN_WIDTH_IN)  # one paper column wide
    t2v, v2t, gate = fig.axes
    (legend,) = fig.legends  # one legend for all panels, under them
    assert len(t2v.get_lines()) >= 7 and {t.get_text() for t in legend.get_texts()} >= {
        "CAMoE + DSL",
        "meanP + InfoNCE",
        "Zero-shot",
    }
    # The error bars are the sample std over seeds, as in the table: CAMoE + DSL at K = 1 (t2v).
    seeds = [
        json.loads(p.read_text())["metrics"]["raw"]["t2v"]["R@1"]
        for p in sorted((FIXTURES / "msrvtt").glob("msrvtt.camoe.dsl.*.json"))
    ]
    container = next(c for c in t2v.containers if c.get_label() == "CAMoE + DSL")
    segments = container.lines[2][0].get_segments()
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2 * statistics.stdev(seeds))
    assert [t.get_text() for t in gate.get_xticklabels()] == ["action", "entity", "fusion"]


def test_sweep_figure_one_line_per_head(sweep, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from vtrbench.report import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, out: (saved.append((fig, out)), out)[1])
    paths = figures.plot_sweeps(sweep, tmp_path / "fig.pdf")
    assert [p.name for p in paths] == ["fig-sweep-temperature.pdf"]
    ((fig, _),) = saved
    ax = fig.axes[0]
    assert ax.get_xlabel() == "temperature"
    lines = {c.get_label(): c for c in ax.containers}
    assert set(lines) == {"CAMoE + DSL", "meanP + DSL"}
    xs = list(lines["meanP + DSL"].lines[0].get_xdata())
    ys = list(lines["meanP + DSL"].lines[0].get_ydata())
    assert xs == [10.0, 100.0, 1000.0]
    by_t = {
        t: statistics.mean(
            s["metrics"]["raw"]["t2v"]["R@1"]
            for s in _raw_json("msrvtt.meanp.dsl.*.json")
            if s["loss_options"]["temperature"] == t
        )
        for t in (10, 100, 1000)
    }
    assert ys == pytest.approx([by_t[10], by_t[100], by_t[1000]])
    assert figures.plot_sweeps(load_results([FIXTURES / "msrvtt"]), tmp_path / "none.png") == []


def test_results_that_cannot_be_plotted_are_refused(demo_like, tmp_path):
    pytest.importorskip("matplotlib")
    from vtrbench.report import plot_report

    with pytest.raises(VtrbenchError, match=r"\.png, \.pdf or \.svg"):
        plot_report(demo_like, tmp_path / "fig.jpg")
    mixed = copy.deepcopy(demo_like)
    mixed[0]["cache"] = dict(mixed[0]["cache"], fingerprint="other")
    with pytest.raises(VtrbenchError, match="fingerprint differs"):
        plot_report(mixed, tmp_path / "fig.png")


def test_boolean_and_numeric_options_read_as_words():
    with_adapter = _result("meanp", [1, 2, 1, 3])
    with_adapter["head_options"] = {"adapter": True}
    without = _result("meanp[no-adapter]", [2, 2, 1, 3])
    without["head_options"] = {"adapter": False}
    seq4 = _result("seqtransf", [1, 1, 2, 3], head="seqtransf")
    seq4["head_options"] = {"layers": 4}
    seq2 = _result("seqtransf[layers=2]", [1, 2, 2, 3], head="seqtransf")
    seq2["head_options"] = {"layers": 2}
    md = render_markdown(build_report([with_adapter, without, seq4, seq2]))
    for name in ("meanP (adapter)", "meanP (no adapter)", "seqTransf (4 layers)", "seqTransf (2 layers)"):
        assert f"| {name} " in md
