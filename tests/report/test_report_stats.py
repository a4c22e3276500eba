"""Δ and † from the same per-query quantity as the columns; p-values and multiple comparisons.

Expected values come from vtrbench.metrics (the metric's own code, for the per-query formulas), plain
loops over the documented draws, and a step-down loop for Holm's procedure.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from tests.report.test_report import _result
from tests.report_helpers import scored_result, twin_scores, with_tie_counts
from vtrbench import metrics as M
from vtrbench.report import build_report, load_results, render_latex, render_markdown
from vtrbench.report.perquery import expected_ranks, expected_recall
from vtrbench.report.stats import adjust_p, bootstrap_p, hierarchical_replicates, paired_replicates

KS = (1, 5, 10, 50)


def _tie_heavy(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Coarse scores (many exact ties), 2 captions per video."""
    qv = np.repeat(np.arange(n // 2), 2)
    sim = rng.integers(0, 4, size=(n, n // 2)).astype(float)
    return sim, qv


def test_per_query_formulas_match_the_metrics_module():
    rng = np.random.default_rng(0)
    sim, qv = _tie_heavy(rng)
    for counts in (
        M.gt_counts(sim, qv),
        M.v2t_counts(sim.T, np.arange(sim.shape[1]), qv, "clip4clip"),
        M.v2t_counts(sim.T, np.arange(sim.shape[1]), qv, "any-caption"),  # several correct items tie
    ):
        assert counts.tied.max() > 3
        np.testing.assert_array_equal(expected_ranks(*counts), M.expected_ranks(counts))
        for k in (*KS, 2, 3, 7):
            np.testing.assert_allclose(expected_recall(*counts, k), M.expected_recall(counts, k), atol=1e-12)
    multi = M.v2t_counts(sim.T, np.arange(sim.shape[1]), qv, "any-caption")
    assert multi.tied_correct.max() > 1  # the several-correct branch was exercised


def _twins_vs_tie_free(seeds: int = 3) -> list[dict]:
    rng = np.random.default_rng(5)
    qv = np.repeat(np.arange(40), 2)
    out = []
    for s in range(seeds):
        out.append(scored_result("twins", twin_scores(40, 2, rng=rng, ties=True), qv, seed=s))
        out.append(scored_result("free", twin_scores(40, 2, rng=rng, ties=False), qv, seed=s))
    return out


@pytest.mark.parametrize("bootstrap", ["seeds+queries", "queries"])
def test_delta_is_the_difference_of_the_columns_on_tie_heavy_systems(bootstrap):
    results = _twins_vs_tie_free()
    twins = [r for r in results if r["label"] == "twins"]
    # The fixture is tie-heavy: counting "expected rank <= 1" as a hit, as Δ did before, gives
    # another number than the R@1 column.
    ranks = np.array(twins[0]["per_query_ranks"]["raw"]["t2v"])
    assert abs(100 * np.mean(ranks <= 1) - twins[0]["metrics"]["raw"]["t2v"]["R@1"]) > 10
    columns = tuple(f"{d}/{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "R@50", "MnR"))
    for metric in ("t2v/R@1", "v2t/R@5", "t2v/MnR"):
        report = build_report(
            results, baseline="free", columns=columns, metric=metric, n_boot=50, bootstrap=bootstrap
        )
        block = report.blocks[0]
        a, b = ("twins", "infonce"), ("free", "infonce")
        for col in columns:
            column_diff = block.mean.loc[a, col] - block.mean.loc[b, col]
            assert block.diff.loc[a, col] == pytest.approx(column_diff, abs=1e-9), col
        # The printed Δ column agrees with the printed cells.
        md = render_markdown(report)
        assert f"{block.diff.loc[a, metric]:+.1f} [".replace("-0.0 ", "+0.0 ") in md


def test_delta_matches_a_plain_loop_over_expected_recall():
    results = _twins_vs_tie_free(seeds=2)
    report = build_report(
        results, baseline="free", posts=("raw",), n_boot=40, boot_seed=2, bootstrap="queries"
    )
    block = report.blocks[0]

    def per_query(label: str) -> np.ndarray:
        rows = []
        for r in results:
            if r["label"] != label:
                continue
            c = r["per_query"]["raw"]["t2v"]
            vals = []
            for g, t, n_c in zip(c["higher"], c["tied"], c["tied_correct"], strict=True):
                assert n_c == 1
                vals.append(100.0 * min(1.0, max(0.0, (1 - g) / (t + 1))))
            rows.append(vals)
        return np.mean(rows, axis=0)

    a, b = per_query("twins"), per_query("free")
    rng = np.random.default_rng(2)
    reps = []
    for _ in range(40):
        idx = rng.integers(0, len(a), size=len(a))
        reps.append(float(np.mean([a[i] - b[i] for i in idx])))
    lo, hi = np.percentile(reps, [2.5, 97.5])
    key = ("twins", "infonce")
    assert block.diff.loc[key, "t2v/R@1"] == pytest.approx(float(np.mean(a - b)))
    assert (block.diff_lo.loc[key, "t2v/R@1"], block.diff_hi.loc[key, "t2v/R@1"]) == pytest.approx((lo, hi))
    below, above = np.mean(np.array(reps) <= 1e-9), np.mean(np.array(reps) >= -1e-9)
    assert block.diff_p.loc[key, "t2v/R@1"] == pytest.approx(min(1.0, 2 * min(below, above)))


def test_schema_1_results_make_tables_but_their_delta_is_na():
    from pathlib import Path

    results = load_results([Path(__file__).parents[1] / "fixtures" / "results" / "msrvtt"])
    report = build_report(results, baseline="meanp + infonce", posts=("raw",), n_boot=20)
    block = report.blocks[0]
    assert block.diff.isna().all().all() and block.diff_na.any().any()
    assert not block.sig.any().any()
    assert any(
        "n/a where a result has no per-query tie counts" in w and "vtrbench eval" in w
        for w in report.warnings
    )
    md = render_markdown(report)
    assert re.search(r"\|\s+n/a \|", md)
    # The same files with counts: numbers again.
    counted = build_report(with_tie_counts(results), baseline="meanp + infonce", posts=("raw",), n_boot=20)
    assert counted.blocks[0].diff.notna().any().any()
    assert not any("n/a" in w for w in counted.warnings)


# --------------------------------------------------------------------------- p-values, corrections


def test_bootstrap_p_matches_a_plain_count():
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.3, 2.0):
        a = rng.normal(shift, 1, size=(3, 30))
        b = rng.normal(0, 1, size=(2, 30))
        _, reps = hierarchical_replicates(a, b, n_boot=300, seed=4)
        le = sum(1 for r in reps if r <= 0) / len(reps)
        ge = sum(1 for r in reps if r >= 0) / len(reps)
        assert bootstrap_p(reps) == pytest.approx(min(1.0, 2 * min(le, ge)))
    _, same = paired_replicates(np.ones(10), np.ones(10), n_boot=50)
    assert bootstrap_p(same) == 1.0  # identical systems: every replicate is 0


def _holm_by_loop(p: list[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure as usually stated: reject while p_(i) <= alpha / (m - i + 1)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    reject = [False] * m
    for step, i in enumerate(order):
        if p[i] <= alpha / (m - step):
            reject[i] = True
        else:
            break
    return reject


def test_holm_and_bonferroni_against_their_definitions():
    rng = np.random.default_rng(7)
    for _ in range(200):
        m = int(rng.integers(1, 12))
        p = list(np.round(rng.random(m) ** 3, 3))  # rounding makes ties among p-values
        for alpha in (0.01, 0.05, 0.2):
            holm = adjust_p(p, "holm")
            assert [bool(x <= alpha) for x in holm] == _holm_by_loop(p, alpha)
            assert [bool(x <= alpha) for x in adjust_p(p, "bonferroni")] == [x * m <= alpha for x in p]
    assert list(adjust_p([0.2, np.nan, 0.01], "holm")[[0, 2]]) == [0.2, 0.02]
    assert np.isnan(adjust_p([0.2, np.nan, 0.01], "holm")[1])


def _many_small_gaps() -> list[dict]:
    """Five systems a little better than the base (R@1 +10 points on 40 queries), 3 seeds each."""
    out = [_result("base", [1] * 10 + [2] * 30, seed=s) for s in range(3)]
    for name in "abcde":
        out += [_result(name, [1] * 14 + [2] * 26, seed=s) for s in range(3)]
    return out


def test_correction_default_and_choices():
    rs = _many_small_gaps()
    cols = ("t2v/R@1", "t2v/R@5")
    auto = build_report(rs, baseline="base", columns=cols, n_boot=400)
    assert auto.correction == "holm" and auto.n_tested == 10  # 5 rows x t2v/R@1, t2v/R@5
    none = build_report(rs, baseline="base", columns=cols, n_boot=400, correction="none")
    bonf = build_report(rs, baseline="base", columns=cols, n_boot=400, correction="bonferroni")
    p = none.blocks[0].diff_p["t2v/R@1"].dropna()
    assert ((p > 0.005) & (p < 0.05)).all()  # significant alone, not after correcting for 10 cells
    assert none.blocks[0].sig["t2v/R@1"].sum() == 5
    assert auto.blocks[0].sig.sum().sum() == 0 and bonf.blocks[0].sig.sum().sum() == 0
    assert "per cell without a multiple-comparison correction" in render_markdown(none)
    assert "Bonferroni over the 10 tested cells" in render_markdown(bonf)
    # Few cells: auto applies no correction, and says that Holm would apply above 3.
    few = build_report(rs[:6], baseline="base", columns=("t2v/R@1",), n_boot=400)
    assert few.correction == "none" and few.n_tested == 1
    assert "Holm applies by default above 3" in render_markdown(few)
    assert "Holm applies by default above 3" in render_latex(few)


def test_few_seeds_warn():
    rs = _many_small_gaps()
    two = [r for r in rs if r["seed"] < 2]
    report = build_report(two, baseline="base", n_boot=20)
    assert any("only 2 seed(s), fewer than 3" in w and "(S-1)/S" in w for w in report.warnings)
    three = build_report(rs, baseline="base", n_boot=20)
    assert not any("fewer than 3" in w for w in three.warnings)
    assert not any("fewer than 3" in w for w in build_report(two).warnings)  # no comparison, no warning


def test_hierarchical_p_is_consistent_with_the_interval():
    # Away from the boundary, "interval excludes 0" and "p < 0.05" agree.
    rng = np.random.default_rng(11)
    agree = 0
    for shift, _ in itertools.product((0.0, 0.05, 0.5, 1.0), range(5)):
        a = rng.normal(shift, 1, size=(3, 50))
        b = rng.normal(0, 1, size=(3, 50))
        _, reps = hierarchical_replicates(a, b, n_boot=400, seed=0)
        lo, hi = np.percentile(reps, [2.5, 97.5])
        p = bootstrap_p(reps)
        if abs(p - 0.05) > 0.01:
            assert (p < 0.05) == (lo > 0 or hi < 0)
            agree += 1
    assert agree > 10
