"""vtrbench.report: result JSONs -> tables. Golden files, statistics checked by hand, refusals.

Golden outputs live in tests/golden/report_*.{md,tex}. After an intended change of the output,
regenerate them with ``VTRBENCH_UPDATE_GOLDEN=1 pytest tests/test_report*.py`` (those tests then
write the files and skip: they never pass by comparing a file with itself) and read the diff before
keeping it.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.report_helpers import counts_from_ranks, with_tie_counts
from vtrbench.errors import VtrbenchError
from vtrbench.report import (
    RANDOM_WEIGHTS_NOTE,
    build_report,
    latex_escape,
    latex_prose,
    load_results,
    markdown_escape,
    paired_bootstrap,
    plot_report,
    render_latex,
    render_markdown,
    results_frame,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "results"
GOLDEN = Path(__file__).parents[1] / "golden"
CAMOE = "camoe[action,entity,fusion;pos;single]"


@pytest.fixture(scope="module")
def results() -> list[dict]:
    return load_results([FIXTURES / "msrvtt"])


def _fixture_json(head: str, loss: str) -> list[dict]:
    """The fixture files of one configuration, read with plain json (not through the code under test)."""
    return [
        json.loads(p.read_text()) for p in sorted((FIXTURES / "msrvtt").glob(f"msrvtt.{head}.{loss}.*.json"))
    ]


def check_goldens(texts: dict[str, str]) -> None:
    """Compare each text with tests/golden/<name>. In update mode (VTRBENCH_UPDATE_GOLDEN=1) write
    them all and skip: a test never passes by comparing a file with the text just written into it."""
    if os.environ.get("VTRBENCH_UPDATE_GOLDEN") == "1":
        for name, text in texts.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text)
        pytest.skip(
            f"VTRBENCH_UPDATE_GOLDEN=1: wrote {', '.join(texts)}; review the diff, then rerun without it"
        )
    for name, text in texts.items():
        path = GOLDEN / name
        assert path.exists(), f"{path} missing: run with VTRBENCH_UPDATE_GOLDEN=1 and review it"
        assert text == path.read_text(), (
            f"{name} differs from the golden file (VTRBENCH_UPDATE_GOLDEN=1 to rewrite)"
        )


def _result(label: str, ranks_t2v: list[float], *, loss: str = "infonce", seed: int = 0, **over) -> dict:
    """A minimal schema-2 result whose metrics follow from its whole-number ranks (raw only; v2t has
    the same ranks). The gallery holds as many videos as there are captions when the ranks fit in it,
    else its size is not recorded (a toy with ranks beyond its query count)."""
    r = np.asarray(ranks_t2v, dtype=float)
    per_dir = {f"R@{k}": 100.0 * float(np.mean(r <= k)) for k in (1, 5, 10, 50)}
    per_dir.update(MdR=float(np.median(r)), MnR=float(r.mean()))
    protocol = {
        "test_split": "1k-A",
        "n_queries": len(r),
        "v2t_multi_caption": "clip4clip",
        "ties": "expected rank",
    }
    if r.max() <= len(r):
        protocol["n_gallery"] = len(r)
    whole = all(float(x).is_integer() for x in ranks_t2v)
    result = {
        "schema": 2,
        "run_id": f"toy.{label}.{loss}.s{seed}",
        "dataset": "toy",
        "head": "meanp",
        "loss": loss,
        "label": label,
        "config_hash": f"hash-{label}-{loss}",
        "seed": seed,
        "cache": {"fingerprint": "fp0", "model": "ViT-B-32", "pretrained": "openai", "random_weights": False},
        "protocol": protocol,
        "metrics": {
            "raw": {
                "t2v": dict(per_dir),
                "v2t": dict(per_dir),
                "RSum": 2 * sum(per_dir[f"R@{k}"] for k in (1, 5, 10)),
            }
        },
        "transductive": {"raw": False},
        "per_query_ranks": {"raw": {"t2v": list(ranks_t2v), "v2t": list(ranks_t2v)}},
    }
    if whole:  # tie counts follow from untied ranks only; else a schema-1 result (Δ/† n/a)
        counts = counts_from_ranks(list(ranks_t2v))
        result["per_query"] = {"raw": {"t2v": counts, "v2t": dict(counts)}}
    else:
        result["schema"] = 1
    result.update(over)
    return result


# --------------------------------------------------------------------------- frame and fixtures


def test_fixture_metrics_follow_from_their_ranks(results):
    # Guards the fixtures themselves: every stored metric is recomputed from per_query_ranks by hand.
    assert len(results) == 13
    for res in results:
        for post, dirs in res["per_query_ranks"].items():
            for direction, ranks in dirs.items():
                stored = res["metrics"][post][direction]
                assert stored["R@1"] == pytest.approx(100 * sum(x <= 1 for x in ranks) / len(ranks))
                assert stored["MnR"] == pytest.approx(sum(ranks) / len(ranks))
                assert stored["MdR"] == statistics.median(ranks)


def test_results_frame_one_row_per_file_and_post(results):
    frame = results_frame(results)
    assert len(frame) == 13 * 3
    assert {"label", "head", "loss", "seed", "post", "t2v/R@1", "v2t/MnR", "RSum"} <= set(frame.columns)
    camoe = frame[(frame["head"] == "camoe") & (frame["post"] == "raw")]
    assert set(camoe["head_options.experts"]) == {"action,entity,fusion"}
    assert frame.loc[frame["post"] == "dsl", "transductive"].all()
    assert not frame.loc[frame["post"] == "raw", "transductive"].any()


def test_load_results_refuses_an_empty_folder(tmp_path):
    with pytest.raises(VtrbenchError, match="no result files"):
        load_results([tmp_path])


# --------------------------------------------------------------------------- golden outputs


def test_golden_paper_layout(results):
    report = build_report(with_tie_counts(results), layout="paper", baseline="meanp + infonce")
    check_goldens({"report_paper.md": render_markdown(report), "report_paper.tex": render_latex(report)})


def test_golden_pivot_layout(results):
    report = build_report(
        with_tie_counts(results),
        layout="pivot",
        rows="label",
        cols="loss",
        metric="t2v/R@1",
        posts=("raw", "dsl"),
        baseline="meanp",
    )
    check_goldens({"report_pivot.md": render_markdown(report), "report_pivot.tex": render_latex(report)})


# --------------------------------------------------------------------------- numbers by hand


def test_mean_and_sample_std_over_seeds_by_hand(results):
    report = build_report(results, posts=("raw",))
    block = report.blocks[0]
    seeds = _fixture_json("camoe", "dsl")
    assert len(seeds) == 2
    values = [s["metrics"]["raw"]["t2v"]["R@1"] for s in seeds]
    mean, std = sum(values) / 2, abs(values[0] - values[1]) / 2**0.5  # ddof=1 with two values
    key = (CAMOE, "dsl")
    assert block.mean.loc[key, "t2v/R@1"] == pytest.approx(mean)
    assert block.std.loc[key, "t2v/R@1"] == pytest.approx(std)
    assert block.n.loc[key, "t2v/R@1"] == 2
    text = block.formatted().set_index(["Method", "Loss"])
    assert text.loc[("CAMoE", "DSL"), "t2v R@1 ↑"] == f"{mean:.1f} ± {std:.1f}"
    mdr = [s["metrics"]["raw"]["v2t"]["MdR"] for s in seeds]
    assert block.std.loc[key, "v2t/MdR"] == pytest.approx(statistics.stdev(mdr))
    # One seed: the mean alone, and n = 1.
    zs = _fixture_json("zeroshot", "none")[0]["metrics"]["raw"]["t2v"]["R@1"]
    assert text.loc[("Zero-shot", "—"), "t2v R@1 ↑"] == f"{zs:.1f}"
    assert text.loc[("Zero-shot", "—"), "n"] == "1"


def test_pivot_cells_hold_the_same_numbers_as_the_paper_rows(results):
    paper = build_report(results, posts=("qbnorm",)).blocks[0]
    pivot = build_report(results, layout="pivot", metric="v2t/MdR", posts=("qbnorm",)).blocks[0]
    for label, loss in paper.mean.index:
        assert pivot.mean.loc[label, loss] == pytest.approx(paper.mean.loc[(label, loss), "v2t/MdR"])
    assert np.isnan(pivot.mean.loc["zeroshot", "dsl"])


def test_bold_follows_each_metric_direction():
    # b has the worst R@1 but the best (smallest) MnR; c ties a on R@1 and b on MnR at one decimal.
    a = _result("a", [1, 1, 1, 10, 10, 10])  # R@1 50.0, MnR 5.5
    b = _result("b", [1, 2, 2, 2, 2, 2])  # R@1 16.7, MnR 1.833 -> 1.8
    c = _result("c", [1, 1, 1, 2, 2, 4])  # R@1 50.0, MnR 1.833 -> 1.8
    cols = ("t2v/R@1", "t2v/MdR", "t2v/MnR")
    block = build_report([a, b, c], columns=cols).blocks[0]
    best = block.best
    assert list(best["t2v/R@1"]) == [True, False, True]
    assert list(best["t2v/MnR"]) == [False, True, True]
    assert list(best["t2v/MdR"]) == [False, False, True]  # medians 5.5, 2.0, 1.5
    lines = {
        line.split("|")[1].strip(): line
        for line in render_markdown(build_report([a, b, c], columns=cols)).splitlines()
        if line.startswith("| ")
    }
    assert "**50.0**" in lines["a"] and "**50.0**" in lines["c"] and "**16.7**" not in lines["b"]
    assert "**1.8**" in lines["b"] and "**1.8**" in lines["c"] and "**5.5**" not in lines["a"]


def test_bold_lower_is_better_for_ranks_exact():
    a = _result("a", [1, 1, 1, 10, 10, 10])  # MdR 5.5, MnR 5.5, R@1 50
    b = _result("b", [2, 2, 2, 2, 2, 2])  # MdR 2.0, MnR 2.0, R@1 0
    cols = ("t2v/R@1", "t2v/MdR", "t2v/MnR")
    block = build_report([a, b], columns=cols).blocks[0]
    assert block.best.loc[("a", "infonce"), "t2v/R@1"] and not block.best.loc[("b", "infonce"), "t2v/R@1"]
    assert block.best.loc[("b", "infonce"), "t2v/MnR"] and not block.best.loc[("a", "infonce"), "t2v/MnR"]
    assert block.best.loc[("b", "infonce"), "t2v/MdR"] and not block.best.loc[("a", "infonce"), "t2v/MdR"]
    tex = render_latex(build_report([a, b], columns=cols))
    row_b = next(line for line in tex.splitlines() if line.startswith("b & ")).split(" & ")
    assert row_b[2] == "0.0"  # t2v R@1: worst, not bold (one seed per row: no n column in LaTeX)
    assert row_b[3] == r"\textbf{2.0}"  # t2v MdR: smallest, bold
    assert row_b[4].startswith(r"\textbf{2.0}")  # t2v MnR: smallest, bold


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_by_hand(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    q = len(a)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, q, size=q)
        reps.append(sum(a[i] - b[i] for i in idx) / q)
    reps.sort()

    # numpy's default percentile: linear interpolation between order statistics at (n-1)*p.
    def pct(p: float) -> float:
        pos = (n_boot - 1) * p
        lo = int(np.floor(pos))
        hi = min(lo + 1, n_boot - 1)
        return reps[lo] + (reps[hi] - reps[lo]) * (pos - lo)

    return float(np.mean(a - b)), pct(0.025), pct(0.975)


def test_baseline_difference_matches_an_independent_bootstrap(results):
    report = build_report(
        with_tie_counts(results),
        posts=("raw",),
        baseline="meanp + infonce",
        n_boot=500,
        boot_seed=7,
        bootstrap="queries",
    )
    block = report.blocks[0]

    def indicator(head: str, loss: str) -> np.ndarray:
        seeds = _fixture_json(head, loss)
        per_seed = [[100.0 if x <= 1 else 0.0 for x in s["per_query_ranks"]["raw"]["t2v"]] for s in seeds]
        return np.array([sum(col) / len(col) for col in zip(*per_seed, strict=True)])

    expected = _bootstrap_by_hand(indicator("camoe", "dsl"), indicator("meanp", "infonce"), 500, 7)
    key = (CAMOE, "dsl")
    got = (
        block.diff.loc[key, "t2v/R@1"],
        block.diff_lo.loc[key, "t2v/R@1"],
        block.diff_hi.loc[key, "t2v/R@1"],
    )
    assert got == pytest.approx(expected)
    # The point estimate equals the difference of the table means (no ties in the fixtures).
    diff_of_means = block.mean.loc[key, "t2v/R@1"] - block.mean.loc[("meanp", "infonce"), "t2v/R@1"]
    assert got[0] == pytest.approx(diff_of_means)
    assert np.isnan(block.diff.loc[("meanp", "infonce"), "t2v/R@1"])
    md = render_markdown(report)
    assert f"{expected[0]:+.1f} [{expected[1]:+.1f}, {expected[2]:+.1f}]" in md


def test_bootstrap_degenerate_cases():
    ranks = [1, 3, 1, 7, 2, 1, 1, 12]
    a = _result("a", ranks)
    same = _result("same", ranks)
    shifted = _result("shifted", [r + 100 for r in ranks])
    block = build_report([a, same, shifted], baseline="a").blocks[0]
    assert block.diff.loc[("same", "infonce"), "t2v/R@1"] == 0.0
    assert block.diff_lo.loc[("same", "infonce"), "t2v/R@1"] == 0.0
    assert block.diff_hi.loc[("same", "infonce"), "t2v/R@1"] == 0.0
    # Every query of 'shifted' misses R@1 while 'a' hits on half of them: a constant per-query gap is
    # not constant here, but for MnR a constant shift of +100 is: the interval collapses to +100.
    block_mnr = build_report([a, same, shifted], baseline="a", metric="t2v/MnR").blocks[0]
    key = ("shifted", "infonce")
    assert (block_mnr.diff.loc[key, "t2v/MnR"], block_mnr.diff_lo.loc[key, "t2v/MnR"]) == (100.0, 100.0)
    assert block_mnr.diff_hi.loc[key, "t2v/MnR"] == 100.0
    md = render_markdown(build_report([a, same], baseline="a"))
    assert "+0.0 [+0.0, +0.0]" in md


def test_bootstrap_interval_agrees_with_the_normal_approximation():
    # Independent of the resampling details: for many queries the percentile interval approaches
    # mean ± 1.96 sd / sqrt(Q) of the per-query differences.
    rng = np.random.default_rng(3)
    a = (rng.random(4000) < 0.45).astype(float) * 100
    b = (rng.random(4000) < 0.40).astype(float) * 100
    d, lo, hi = paired_bootstrap(a, b, n_boot=1000, seed=0)
    half = 1.96 * np.std(a - b, ddof=1) / np.sqrt(len(a))
    assert d == pytest.approx(np.mean(a - b))
    assert lo == pytest.approx(d - half, abs=0.25 * half)
    assert hi == pytest.approx(d + half, abs=0.25 * half)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("cache", "fingerprint", "another-cache"),
        ("protocol", "test_split", "full"),
        ("protocol", "v2t_multi_caption", "any-caption"),
        ("protocol", "ties", "optimistic"),
    ],
)
def test_mixed_results_are_refused_with_the_reason(results, section, key, value):
    mixed = copy.deepcopy(results)
    # Every seed of one configuration moves, so that with allow_mixed it is still one clean row.
    odd = [r for r in mixed if r["config_hash"] == mixed[3]["config_hash"]]
    original = odd[0][section][key]
    for r in odd:
        r[section] = dict(r[section], **{key: value})
    with pytest.raises(VtrbenchError) as err:
        build_report(mixed)
    message = str(err.value)
    assert f"{section}.{key} differs" in message
    assert repr(value) in message and repr(str(original)) in message
    assert all(Path(r["_path"]).name in message for r in odd)
    report = build_report(mixed, allow_mixed=True)
    assert any(f"mixed {section}.{key}" in w for w in report.warnings)
    assert markdown_escape(f"mixed {section}.{key}") in render_markdown(report)
    assert latex_prose(f"mixed {section}.{key}") in render_latex(report)


def test_random_weights_are_flagged_loudly(results):
    flagged = copy.deepcopy(results)
    for r in flagged:
        r["cache"] = dict(r["cache"], random_weights=True)
    report = build_report(flagged, posts=("raw",))
    assert report.warnings[0] == RANDOM_WEIGHTS_NOTE
    assert f"**Warning: {RANDOM_WEIGHTS_NOTE}**" in render_markdown(report)
    assert rf"\textbf{{Warning: {RANDOM_WEIGHTS_NOTE}.}}" in render_latex(report)
    assert RANDOM_WEIGHTS_NOTE not in render_markdown(build_report(results, posts=("raw",)))


def test_two_configurations_in_one_cell_are_refused(results):
    other = copy.deepcopy([r for r in results if r["head"] == "camoe" and r["loss"] == "dsl"])
    for r in other:
        r["config_hash"] = "ffffffffffffffff"
        r["label"] = "camoe[entity;pos;single]"
        r["_path"] = r["_path"].replace(".json", ".other.json")
    with pytest.raises(VtrbenchError, match="2 different configurations.*choose rows/cols"):
        build_report(results + other, layout="pivot", rows="head", cols="loss")
    # Separated by label they are two rows.
    report = build_report(results + other, layout="pivot", rows="label", cols="loss", posts=("raw",))
    assert len(report.blocks[0].mean) == 5


def test_a_copied_result_counts_once_and_a_changed_copy_is_refused(results):
    # The same run (config_hash, seed, cache) in two files: one seed, not two; the copy is named.
    dup = copy.deepcopy(results[0])
    dup["_path"] = "/elsewhere/copy-" + Path(dup["_path"]).name
    report = build_report(results + [dup], posts=("raw",))
    plain = build_report(results, posts=("raw",))
    assert report.blocks[0].n.equals(plain.blocks[0].n)
    assert report.blocks[0].mean.equals(plain.blocks[0].mean)
    assert any("1 duplicate result file" in n and "copy-" in n for n in report.notes)
    changed = copy.deepcopy(dup)
    # Other metrics that still agree with the file's own ranks (else the file alone is refused).
    changed["metrics"]["raw"] = changed["metrics"]["dsl"]
    changed["per_query_ranks"]["raw"] = changed["per_query_ranks"]["dsl"]
    with pytest.raises(VtrbenchError, match="same run .* with different metrics"):
        build_report(results + [changed])
    # Two files of one configuration that claim the same seed but are different runs (another cache
    # would be refused as mixed; a different config_hash under one label is two configurations).
    other = copy.deepcopy(dup)
    other["config_hash"] = "ffffffffffffffff"
    with pytest.raises(VtrbenchError, match="2 different configurations"):
        build_report(results + [other])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"metric": "t2v/R@2"}, "unknown metric 't2v/R@2'"),
        ({"posts": ("raw", "dls")}, "unknown post-processing 'dls'"),
        ({"layout": "wide"}, "unknown layout 'wide'"),
        ({"baseline": "meanp"}, "matches 2 rows"),
        ({"baseline": "nothing"}, "not a row of the table"),
        ({"baseline": "zeroshot", "metric": "t2v/MdR"}, "per-query metric"),
        ({"layout": "pivot", "rows": "colour"}, "rows='colour' is not a result field"),
        ({"layout": "pivot", "rows": "loss", "cols": "loss"}, "both 'loss'"),
    ],
)
def test_bad_options_raise_clear_errors(results, kwargs, pattern):
    with pytest.raises(VtrbenchError, match=pattern.replace("(", r"\(").replace("[", r"\[")):
        build_report(results, **kwargs)


def test_options_object_builds_the_same_report(results):
    """build_report's keyword parameters and one ReportOptions (build_report_from) are one code path."""
    from dataclasses import fields

    from vtrbench.report import ReportOptions, build_report_from

    kw = {"posts": ("raw", "dsl"), "baseline": "zeroshot", "n_boot": 50, "correction": "none"}
    by_keywords = build_report(with_tie_counts(results), **kw)
    by_options = build_report_from(with_tie_counts(results), ReportOptions(**kw))
    assert render_markdown(by_options) == render_markdown(by_keywords)
    assert render_latex(by_options) == render_latex(by_keywords)
    # the options carry exactly build_report's keyword parameters, with the same defaults
    params = inspect.signature(build_report).parameters
    assert [f.name for f in fields(ReportOptions)] == [p for p in params if p != "results"]
    assert all(f.default == params[f.name].default for f in fields(ReportOptions))
    assert render_markdown(build_report_from(results)) == render_markdown(build_report(results))
    with pytest.raises(VtrbenchError, match="unknown layout 'wide'"):
        build_report_from(results, ReportOptions(layout="wide"))


def test_baseline_by_label_or_tuple(results):
    by_name = build_report(results, posts=("raw",), baseline="zeroshot", n_boot=50)
    by_tuple = build_report(results, posts=("raw",), baseline=("zeroshot", "none"), n_boot=50)
    assert by_name.baseline == by_tuple.baseline == "zeroshot + none"
    assert by_name.blocks[0].diff.equals(by_tuple.blocks[0].diff)


def test_post_processing_blocks_are_separate_and_selectable(results):
    report = build_report(results, posts=("dsl", "raw"))
    assert [b.post for b in report.blocks] == ["dsl", "raw"]
    assert report.blocks[0].title == "dsl (transductive)" and report.blocks[1].title == "raw"
    md = render_markdown(report)
    assert "### dsl (transductive)" in md and "### qbnorm" not in md
    only_raw = [copy.deepcopy(r) for r in results]
    for r in only_raw:
        r["metrics"] = {"raw": r["metrics"]["raw"]}
    report = build_report(only_raw)
    assert [b.post for b in report.blocks] == ["raw"]
    assert any("no result has dsl metrics" in n for n in report.notes)


# --------------------------------------------------------------------------- escaping and LaTeX

NASTY = "a_b%c&d#e^f~g{h}i\\j$k|l<m"


def test_latex_escape_of_special_characters():
    expected = (
        r"a\_b\%c\&d\#e\textasciicircum{}f\textasciitilde{}g\{h\}i\textbackslash{}j\$k\textbar{}l\textless{}m"
    )
    assert latex_escape(NASTY) == expected
    assert latex_escape("± Δ") == r"$\pm$ $\Delta$"


def test_labels_are_escaped_in_both_renderers():
    rs = [_result(NASTY, [1, 2, 3, 4]), _result("[plain]", [2, 2, 3, 1])]
    report = build_report(rs, baseline=NASTY)
    tex = render_latex(report)
    assert latex_escape(NASTY) + " & InfoNCE" in tex
    assert "\n{}[plain] & InfoNCE" in tex  # a row may not start with '[' after '\\'
    assert NASTY not in tex
    md = render_markdown(report)
    assert r"a\_b%c&d#e^f~g{h}i\\j$k\|l\<m" in md
    assert "|l<m" not in md


def _compile(tex: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "t.tex").write_text(tex)
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH")
def test_latex_compiles(results, tmp_path):
    rs = results + [_result(NASTY, [1, 2] * 10, cache=results[0]["cache"], protocol=results[0]["protocol"])]
    for report in (
        build_report(rs, baseline="meanp + infonce", allow_mixed=True),
        build_report(results, layout="pivot", baseline="meanp"),
    ):
        proc = _compile(render_latex(report, standalone=True), tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:]


def test_standalone_latex_is_a_document(results):
    tex = render_latex(build_report(results, posts=("raw",)), standalone=True)
    assert tex.startswith("\\documentclass") and "\\usepackage{booktabs}" in tex
    assert tex.rstrip().endswith("\\end{document}")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in tex


# --------------------------------------------------------------------------- figure


def test_plot_report_writes_a_png(results, tmp_path):
    pytest.importorskip("matplotlib")
    import struct

    from vtrbench.report.figures import COLUMN_WIDTH_IN, PANEL_HEIGHT_IN

    out = plot_report(results, tmp_path / "fig" / "report.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    # One paper column at 200 dpi (a tight bounding box trims a little), three stacked panels
    # (t2v, v2t and the CAMoE gate, which the fixtures carry) and the legend of 7 systems under them
    # (3 rows of 6 pt text: well under half an inch).
    assert 0.8 * COLUMN_WIDTH_IN * 200 <= width <= 1.05 * COLUMN_WIDTH_IN * 200
    assert 0.8 * 3 * PANEL_HEIGHT_IN * 200 <= height <= 1.05 * (3 * PANEL_HEIGHT_IN + 0.5) * 200


def test_plot_report_without_matplotlib(results, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(VtrbenchError, match=r"matplotlib is not installed: pip install 'vtrbench\[plot\]'"):
        plot_report(results, tmp_path / "x.png")


def test_results_missing_failed_test_videos_are_flagged() -> None:
    from vtrbench.report import build_report, load_results, render_markdown

    results = load_results([Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"])
    changed = copy.deepcopy(results)
    for r in changed:
        r["protocol"]["excluded_failed_videos"] = 7
    assert "failed to decode" not in render_markdown(build_report(results))
    assert "7 test videos failed to decode" in render_markdown(build_report(changed))
