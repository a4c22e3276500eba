"""Faults of the evaluation core: QB-Norm's k and bank, and result files' per-query data (schema 2).

Classes covered:

- ``--qb-k`` larger than the test gallery (train, eval, ablate, a grid file): refused with one line
  before any work, nothing written; a k the gallery can give is recorded with the real bank size.
- result files whose ``per_query`` / ``topk`` are damaged (lengths, signs, types, indices, metrics that
  their own counts contradict, an unknown schema): every reader (``report``, and ``train`` deciding a
  run is done) refuses them naming the file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    tiny_cache,
    tiny_results,
    train_argv,
)

AREA = "eval"
ABLATE = ("--heads", "meanp", "--losses", "infonce", "--seeds", "0", "--epochs", "1", "--batch-size", "8")


def _test_videos(ctx: Context) -> int:
    from vtrbench.cache import FeatureCache

    with FeatureCache(tiny_cache(ctx)) as cache:
        return len(cache.split_rows(str(cache.attrs["default_test"]))[0])


def _nothing_written(results: Path) -> str | None:
    left = [p for p in results.rglob("*.json")] if results.exists() else []
    return f"a result was written: {left[0]}" if left else None


def _qb_k_too_large(command: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        k = _test_videos(ctx) + 1
        results = tmp / "results"
        cache = tiny_cache(ctx)
        if command == "train":
            r = run_cli(train_argv(cache, results, "--qb-k", k))
        elif command == "eval":
            r = run_cli(["eval", "--cache", cache, "--head", "zeroshot", "--device", "cpu",
                         "--results", results, "--qb-k", k])  # fmt: skip
        elif command == "ablate":
            r = run_cli(["ablate", "--cache", cache, *ABLATE, "--device", "cpu", "--quiet",
                         "--results", results, "--qb-k", k])  # fmt: skip
        else:  # a grid file
            grid = tmp / "grid.toml"
            grid.write_text(
                'heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n'
                f"[train]\nepochs = 1\nbatch_size = 8\nqb_k = {k}\n"
            )
            r = run_cli(["ablate", "--cache", cache, "--grid", grid, "--device", "cpu", "--quiet",
                         "--results", results])  # fmt: skip
        out = expect_error(r, f"qb_k {k}")
        if out.kind == "clear_error" and (problem := _nothing_written(results)):
            return Outcome("silently_wrong", problem)
        if out.kind == "clear_error" and "epoch" in r.text.lower() and command != "eval":
            return Outcome("silently_wrong", "refused only after training")
        return out

    return run


def _qb_k_at_the_gallery_is_recorded(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench.results import read_result

    k = _test_videos(ctx)
    results = tmp / "results"
    r = run_cli(["eval", "--cache", tiny_cache(ctx), "--head", "zeroshot", "--device", "cpu",
                 "--results", results, "--qb-k", k])  # fmt: skip

    def check() -> str | None:
        (path,) = results.rglob("*.json")
        data = read_result(path)
        qb = data["protocol"]["qbnorm"]
        if qb["k"] != k:
            return f"k recorded as {qb['k']}, asked {k}"
        sizes = qb["bank_size"]
        if not isinstance(sizes, dict) or max(sizes.values()) >= 5000:
            return f"bank_size recorded as {sizes!r}, not the bank actually used"
        return None

    return expect_ok(r, check)


# ------------------------------------------------------------------ damaged schema-2 result files


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return damage


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: Any) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return change


def _drop(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: Any) -> None:
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return change


def _map(*keys: Any, fn: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def change(d: Any) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = fn(d[keys[-1]])

    return change


DAMAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "per-query-missing": _drop("per_query"),
    "topk-missing": _drop("topk"),
    "per-query-post-missing": _drop("per_query", "raw"),
    "per-query-direction-missing": _drop("per_query", "raw", "v2t"),
    "per-query-short": _map("per_query", "raw", "t2v", "higher", fn=lambda a: a[:-1]),
    "per-query-all-short": _map("per_query", "raw", "t2v", fn=lambda d: {k: v[:-1] for k, v in d.items()}),
    "per-query-negative": _map("per_query", "raw", "t2v", "tied", fn=lambda a: [-1] * len(a)),
    "per-query-no-correct": _map("per_query", "raw", "v2t", "tied_correct", fn=lambda a: [0] * len(a)),
    "per-query-past-gallery": _map("per_query", "raw", "t2v", "higher", fn=lambda a: [10**6] * len(a)),
    "per-query-float": _map("per_query", "raw", "t2v", "higher", fn=lambda a: [float(x) for x in a]),
    "per-query-bool": _map("per_query", "raw", "t2v", "higher", fn=lambda a: [False] * len(a)),
    "per-query-string": _set("per_query", "raw", "t2v", value="counts"),
    "per-query-extra-key": _map("per_query", "raw", "t2v", fn=lambda d: {**d, "lower": d["higher"]}),
    "r1-contradicts-counts": _map("metrics", "raw", "t2v", "R@1", fn=lambda v: 100.0 - v if v != 50 else 1.0),
    "mnr-contradicts-counts": _map("metrics", "raw", "v2t", "MnR", fn=lambda v: v + 1.0),
    "topk-short": _map("topk", "raw", "t2v", fn=lambda a: a[:-1]),
    "topk-row-short": _map("topk", "raw", "t2v", fn=lambda a: [a[0][:-1], *a[1:]]),
    "topk-index-past-gallery": _map("topk", "raw", "t2v", fn=lambda a: [[10**6, *a[0][1:]], *a[1:]]),
    "topk-negative-index": _map("topk", "raw", "v2t", fn=lambda a: [[-1, *a[0][1:]], *a[1:]]),
    "topk-repeated-index": _map("topk", "raw", "t2v", fn=lambda a: [[a[0][0]] * len(a[0]), *a[1:]]),
    "topk-not-a-list": _set("topk", "raw", "t2v", value={"0": [0]}),
    "topk-scores-post-missing": _drop("topk_scores", "dsl"),
    "topk-scores-short": _map("topk_scores", "raw", "t2v", fn=lambda a: a[:-1]),
    "topk-scores-row-short": _map("topk_scores", "raw", "v2t", fn=lambda a: [a[0][:-1], *a[1:]]),
    "topk-scores-not-sorted": _map("topk_scores", "raw", "t2v", fn=lambda a: [a[0][::-1], *a[1:]]),
    "topk-scores-string": _map("topk_scores", "raw", "t2v", fn=lambda a: [["x"] * len(a[0]), *a[1:]]),
    "topk-scores-bool": _map("topk_scores", "dsl", "t2v", fn=lambda a: [[True] * len(a[0]), *a[1:]]),
    "topk-scores-not-an-object": _set("topk_scores", value=[1, 2]),
    "schema-3": _set("schema", value=3),
    "schema-float": _set("schema", value=2.0),
}


def _damaged_for_report(name: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        shutil.copytree(tiny_results(ctx), results)
        path = sorted(results.rglob("*.json"))[0]
        _edit(DAMAGES[name])(path)
        return expect_error(run_cli(["report", results]), path.name)

    return run


def _damaged_then_train(tmp: Path, ctx: Context) -> Outcome:
    """train must not take a result whose per-query data is damaged as done: it redoes the run."""
    from vtrbench.results import read_result

    results = tmp / "results"
    first = run_cli(train_argv(tiny_cache(ctx), results))
    if first.code != 0:
        return Outcome("silently_wrong", f"the clean run failed: {first.text[-200:]}")
    (path,) = results.rglob("*.json")
    _edit(DAMAGES["r1-contradicts-counts"])(path)
    again = run_cli(train_argv(tiny_cache(ctx), results))

    def check() -> str | None:
        if "warning" not in again.err:
            return "the damaged result was taken as done or replaced without a word"
        read_result(path)
        return None

    return expect_ok(again, check)


def cases() -> list[Case]:
    out = [
        Case(AREA, "qb-k-too-large-train", _qb_k_too_large("train")),
        Case(AREA, "qb-k-too-large-eval", _qb_k_too_large("eval")),
        Case(AREA, "qb-k-too-large-ablate", _qb_k_too_large("ablate"), quick=False),
        Case(AREA, "qb-k-too-large-grid", _qb_k_too_large("grid"), quick=False),
        Case(AREA, "qb-k-at-gallery-recorded", _qb_k_at_the_gallery_is_recorded, quick=False),
        Case(AREA, "per-query-damaged-train-redoes", _damaged_then_train, quick=False),
    ]
    quick = {"per-query-short", "r1-contradicts-counts", "topk-index-past-gallery"}
    for name in DAMAGES:
        out.append(Case(AREA, f"result-{name}-report", _damaged_for_report(name), quick=name in quick))
    return out
