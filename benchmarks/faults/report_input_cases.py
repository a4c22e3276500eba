"""Hostile inputs of ``vtrbench report`` (issue 19.3, 19.8, 19 tracebacks; issue 18.1), as classes:

- every range and consistency check of a result file (one impossible value each, schema 1 through the
  command line, schema-2 tie counts through ``validate_result``): a clear error naming file and key;
- Δ on tie-heavy results: its point estimate must be the difference of the two columns; schema-1
  files give "n/a" with a warning, never a number from another quantity;
- every name check: renames that merge rows or columns, blank names, characters LaTeX cannot set
  (caption, rename, a label inside a result file), and the ones it can (must compile-ready ASCII);
- every output pre-check as root: /proc, /sys, nested missing folders there, a device file.

Works on copies of tests/fixtures/results/msrvtt; each case takes well under a second.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "results" / "msrvtt"
VICTIM = "msrvtt.meanp.infonce.016d6569.s0.json"


def _results(tmp: Path) -> Path:
    folder = tmp / "results"
    shutil.copytree(FIXTURE, folder)
    return folder


def _setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return change


# ------------------------------------------------------------------ result-file ranges (schema 1, CLI)

RANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "recall-150": (_setter("metrics.raw.t2v.R@1", 150.0), "metrics.raw.t2v.R@1"),
    "recall-minus-5": (_setter("metrics.raw.t2v.R@1", -5.0), "metrics.raw.t2v.R@1"),
    "recall-50-above-100": (_setter("metrics.qbnorm.v2t.R@50", 100.5), "metrics.qbnorm.v2t.R@50"),
    "recall-falls-with-k": (_setter("metrics.raw.t2v.R@10", 50.0), "metrics.raw.t2v.R@10"),
    "recall-contradicts-ranks": (_setter("metrics.raw.t2v.R@1", 80.0), "metrics.raw.t2v.R@1"),
    "recall-k-beyond-gallery-below-100": (_setter("metrics.dsl.t2v.R@50", 95.0), "metrics.dsl.t2v.R@50"),
    "mdr-0": (_setter("metrics.raw.t2v.MdR", 0.0), "metrics.raw.t2v.MdR"),
    "mdr-contradicts-ranks": (_setter("metrics.raw.t2v.MdR", 3.0), "metrics.raw.t2v.MdR"),
    "mnr-beyond-gallery": (_setter("metrics.dsl.v2t.MnR", 25.0), "metrics.dsl.v2t.MnR"),
    "mnr-contradicts-ranks": (_setter("metrics.qbnorm.v2t.MnR", 2.0), "metrics.qbnorm.v2t.MnR"),
    "rsum-not-the-sum": (_setter("metrics.raw.RSum", 1.0), "metrics.raw.RSum"),
    "n-queries-minus-3": (_setter("protocol.n_queries", -3), "protocol.n_queries"),
    "n-queries-float": (_setter("protocol.n_queries", 20.5), "protocol.n_queries"),
    "n-queries-bool": (_setter("protocol.n_queries", True), "protocol.n_queries"),
    "n-gallery-0": (_setter("protocol.n_gallery", 0), "protocol.n_gallery"),
    "fewer-captions-than-videos": (_setter("protocol.n_queries", 10), "protocol.n_queries"),
    "excluded-videos-negative": (_setter("protocol.excluded_failed_videos", -2), "excluded_failed_videos"),
    "rank-999-in-a-20-video-gallery": (
        _setter("per_query_ranks.raw.t2v.0", 999),
        "per_query_ranks.raw.t2v[0]",
    ),
    "rank-off-the-tie-grid": (_setter("per_query_ranks.raw.v2t.2", 1.3), "per_query_ranks.raw.v2t[2]"),
    "ranks-fewer-than-queries": (_setter("per_query_ranks.dsl.t2v", [1, 2]), "per_query_ranks.dsl.t2v"),
    "ranks-unknown-post": (_setter("per_query_ranks.dls", {"t2v": [1]}), "per_query_ranks.dls"),
    "seed-minus-1": (_setter("seed", -1), "seed"),
    "raw-transductive": (_setter("transductive.raw", True), "transductive.raw"),
    "dsl-not-transductive": (_setter("transductive.dsl", False), "transductive.dsl"),
    "transductive-unknown-post": (_setter("transductive.dls", True), "transductive.dls"),
    "random-weights-text": (_setter("cache.random_weights", "false"), "cache.random_weights"),
}


def _range_case(change: Callable[[dict[str, Any]], None], key: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        data = json.loads((folder / VICTIM).read_text())
        change(data)
        (folder / "impossible.json").write_text(json.dumps(data))
        result = run_cli(["report", folder, "--post", "raw"])
        outcome = expect_error(result, "impossible.json", key)
        if outcome.kind == "clear_error" and result.out.strip():
            return Outcome("silently_wrong", "a table was printed before the refusal")
        return outcome

    return run


# ------------------------------------------------------------------ schema-2 tie counts (API)


def _scored(seed: int = 0, ties: bool = True) -> dict[str, Any]:
    """A schema-2 result computed as evaluation does (vtrbench.metrics) on coarse, tie-heavy scores."""
    from vtrbench import metrics as M

    rng = np.random.default_rng(seed)
    qv = np.repeat(np.arange(10), 2)
    sim = rng.integers(0, 3, size=(20, 10)).astype(float)
    if not ties:
        sim = sim + rng.normal(scale=0.5, size=sim.shape)
    t2v = M.gt_counts(sim, qv)
    v2t = M.v2t_counts(sim.T, np.arange(10), qv, "clip4clip")
    mt, mv = M.retrieval_metrics(t2v), M.retrieval_metrics(v2t)
    label = "twins" if ties else "free"

    def js(c: Any) -> dict[str, list[int]]:
        return {k: [int(x) for x in getattr(c, k)] for k in ("higher", "tied", "tied_correct")}

    return {
        "schema": 2,
        "run_id": f"toy.{label}.s{seed}",
        "dataset": "toy",
        "head": "meanp",
        "loss": "infonce",
        "label": label,
        "config_hash": f"hash-{label}",
        "seed": seed,
        "cache": {"fingerprint": "fp", "random_weights": False},
        "protocol": {"test_split": "t", "n_queries": 20, "n_gallery": 10, "v2t_multi_caption": "clip4clip"},
        "metrics": {"raw": {"t2v": mt, "v2t": mv, "RSum": M.rsum(mt, mv)}},
        "transductive": {"raw": False},
        "per_query_ranks": {
            "raw": {"t2v": M.expected_ranks(t2v).tolist(), "v2t": M.expected_ranks(v2t).tolist()}
        },
        "per_query": {"raw": {"t2v": js(t2v), "v2t": js(v2t)}},
    }


COUNTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "higher-negative": (_setter("per_query.raw.t2v.higher.0", -1), "per_query.raw.t2v.higher[0]"),
    "tied-correct-0": (_setter("per_query.raw.v2t.tied_correct.1", 0), "per_query.raw.v2t.tied_correct[1]"),
    "count-as-text": (_setter("per_query.raw.t2v.tied.2", "1"), "per_query.raw.t2v.tied"),
    "count-fractional": (_setter("per_query.raw.t2v.tied.2", 0.5), "per_query.raw.t2v.tied"),
    "counts-beyond-gallery": (_setter("per_query.raw.t2v.higher.0", 10), "per_query.raw.t2v[0]"),
    "counts-length": (_setter("per_query.raw.v2t.tied", [0] * 9), "per_query.raw.v2t"),
    "counts-extra-key": (_setter("per_query.raw.t2v.rank", [1] * 20), "per_query.raw.t2v"),
    "counts-unknown-post": (_setter("per_query.dls", {}), "per_query.dls"),
    "recall-contradicts-counts": (_setter("metrics.raw.t2v.R@5", 99.0), "metrics.raw.t2v.R@5"),
    "mnr-contradicts-counts": (_setter("metrics.raw.v2t.MnR", 1.0), "metrics.raw.v2t.MnR"),
    "ranks-contradict-counts": (_setter("per_query_ranks.raw.t2v.4", 9.0), "per_query_ranks.raw.t2v[4]"),
}


def _counts_case(change: Callable[[dict[str, Any]], None], key: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        from vtrbench.errors import VtrbenchError
        from vtrbench.report import build_report

        data = _scored()
        change(data)
        try:
            build_report([data], n_boot=10)
        except VtrbenchError as e:
            text = str(e)
            if key not in text or "\n" in text:
                return Outcome("silently_wrong", f"the error does not name {key}: {text[:200]}")
            return Outcome("clear_error", text[:200])
        return Outcome("silently_wrong", f"an impossible result ({key}) was accepted")

    return run


def _delta_is_the_column_difference(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench.report import build_report

    results = [_scored(s, ties=True) for s in range(3)] + [_scored(10 + s, ties=False) for s in range(3)]
    for r in results[3:]:
        r["seed"] -= 10
        r["run_id"] = r["run_id"].replace("s1", "s")
    cols = tuple(f"{d}/{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MnR"))
    block = build_report(results, baseline="free", columns=cols, n_boot=20).blocks[0]
    a, b = ("twins", "infonce"), ("free", "infonce")
    worst = max(abs(block.diff.loc[a, c] - (block.mean.loc[a, c] - block.mean.loc[b, c])) for c in cols)
    if not worst < 1e-9:
        return Outcome("silently_wrong", f"Δ differs from the difference of the columns by {worst:.3g}")
    return Outcome("handled")


def _schema_1_delta_is_na(tmp: Path, ctx: Context) -> Outcome:
    run = run_cli(["report", _results(tmp), "--post", "raw", "--baseline", "meanp + infonce", "--n-boot", 20])

    def check() -> str | None:
        if "n/a" not in run.out or "re-run vtrbench eval" not in run.out:
            return "schema-1 files got a Δ (or no n/a with the reason) instead of n/a"
        return None

    return expect_ok(run, check)


# ------------------------------------------------------------------ names


def _name_error(
    *argv: Any, mention: str, files: dict[str, str] | None = None
) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        args = [str(tmp / a[1:]) if isinstance(a, str) and a.startswith("@") else a for a in argv]
        result = run_cli(["report", folder, *args])
        outcome = expect_error(result, mention)
        if outcome.kind == "clear_error" and result.out.strip():
            return Outcome("silently_wrong", "a table was printed before the refusal")
        return outcome

    return run


def _label_in_file(label: str, ok: bool) -> Callable[[Path, Context], Outcome]:
    """A label inside the result files (both seeds of meanp + InfoNCE) and LaTeX output."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = _results(tmp)
        for path in folder.glob("msrvtt.meanp.infonce.*.json"):
            data = json.loads(path.read_text())
            data["label"] = label
            path.write_text(json.dumps(data))
        result = run_cli(["report", folder, "--format", "latex", "--post", "raw"])
        if ok:
            return expect_ok(result, lambda: None if result.out.isascii() else "non-ASCII left in the .tex")
        return expect_error(result, label[0])

    return run


def _latex_can_set(caption: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        result = run_cli(
            ["report", _results(tmp), "--format", "latex", "--post", "raw", "--caption", caption]
        )
        return expect_ok(
            result,
            lambda: None if result.out.isascii() and "\\caption{" in result.out else "caption not ASCII",
        )

    return run


# ------------------------------------------------------------------ output pre-checks (as root too)


def _output(option: str, target: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        top = Path("/" + target.split("/")[1])
        if not top.exists():
            return Outcome("handled", f"no {top} on this system")
        argv: list[Any] = ["report", _results(tmp), option, target]
        if option == "--plot":
            argv += ["--output", tmp / "table.md"]
        result = run_cli(argv)
        outcome = expect_error(result, target)
        if outcome.kind == "clear_error" and (result.out.strip() or (tmp / "table.md").exists()):
            return Outcome("silently_wrong", "the table was written or printed before the refusal")
        return outcome

    return run


def cases() -> list[Case]:
    quick_ranges = {"recall-150", "recall-contradicts-ranks", "raw-transductive"}
    found = [
        Case("report", f"input-range-{name}", _range_case(change, key), quick=name in quick_ranges)
        for name, (change, key) in RANGES.items()
    ]
    found += [
        Case(
            "report",
            f"input-counts-{name}",
            _counts_case(change, key),
            quick=name == "recall-contradicts-counts",
        )
        for name, (change, key) in COUNTS.items()
    ]
    found += [
        Case("report", "input-delta-is-the-column-difference-with-ties", _delta_is_the_column_difference),
        Case("report", "input-schema-1-delta-is-na", _schema_1_delta_is_na, quick=False),
        Case(
            "report",
            "input-rename-merges-two-rows",
            _name_error("--rename", "meanp=seqTransf", mention="seqTransf"),
        ),
        Case(
            "report",
            "input-two-renames-to-one-name",
            _name_error("--rename", "meanp=X", "--rename", "seqtransf=X", mention="'X + "),
            quick=False,
        ),
        Case(
            "report",
            "input-rename-file-blank-name",
            _name_error(
                "--rename-file", "@names.json", mention="meanp", files={"names.json": '{"meanp": ""}'}
            ),
        ),
        Case(
            "report",
            "input-rename-file-spaces-name",
            _name_error(
                "--rename-file", "@names.json", mention="meanp", files={"names.json": '{"meanp": "  "}'}
            ),
            quick=False,
        ),
        Case(
            "report",
            "input-rename-blank",
            _name_error("--rename", "meanp= ", mention="--rename"),
            quick=False,
        ),
        Case(
            "report",
            "input-latex-caption-cjk",
            _name_error("--format", "latex", "--caption", "漢字の表", mention="漢"),
        ),
        Case(
            "report",
            "input-latex-rename-cjk",
            _name_error("--format", "latex", "--rename", "meanp=平均", mention="平"),
            quick=False,
        ),
        Case(
            "report",
            "input-latex-caption-emoji",
            _name_error("--format", "latex", "--caption", "best 🚀", mention="🚀"),
            quick=False,
        ),
        Case(
            "report",
            "input-latex-label-greek",
            _name_error("--format", "latex", "--label", "tab:α", mention="--label"),
            quick=False,
        ),
        Case("report", "input-latex-label-in-file-cjk", _label_in_file("漢字", ok=False), quick=False),
        Case(
            "report",
            "input-latex-label-in-file-greek",
            _label_in_file("α-pool ✓ naïve", ok=True),
            quick=False,
        ),
        Case(
            "report",
            "input-latex-caption-greek-accents",
            _latex_can_set("τ, β, Ω: Résumé ✓ Straße"),
            quick=False,
        ),
    ]
    outputs = [
        ("--output", "/proc/x.md"),
        ("--output", "/proc/vtrbench/deeper/x.md"),
        ("--output", "/sys/x.md"),
        ("--output", "/dev/null"),
        ("--output", "/dev/full"),
        ("--plot", "/proc/fig.png"),
        ("--plot", "/sys/fig.png"),
        ("--plot", "/sys/a/b/fig.pdf"),
    ]
    found += [
        Case(
            "report",
            f"input-{opt[2:]}-{target.strip('/').replace('/', '-')}",
            _output(opt, target),
            quick=target in ("/proc/x.md", "/sys/fig.png"),
        )
        for opt, target in outputs
    ]
    return found
