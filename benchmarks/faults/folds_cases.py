"""Faults of ``vtrbench tune --folds K``, ``--objective`` and the too-small-validation rule (issues 27, 28),
and ``tune --status --results``.

Every refusal must come before the study is opened (no study file) and before any training, as one
line; a spelled-out default must resume the same study; ``--status --results`` must not write.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "tune-folds"
SPACE = "[train]\nepochs = {low = 1, high = 1}\nbatch_size = {choices = [4]}\n"


def _argv(ctx: Context, folder: Path, *extra: Any, validation: tuple = ("--folds", 2)) -> list[Any]:
    (folder / "space.toml").write_text(SPACE)
    return [
        "tune", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--trials", 1,
        "--max-epochs", 1, *validation, "--study", folder / "s.db", "--space", folder / "space.toml",
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def _refused(*extra: Any, mentions: tuple[str, ...], validation: tuple = ("--folds", 2)) -> Callable:
    def run(folder: Path, ctx: Context) -> Outcome:
        out = expect_error(run_cli(_argv(ctx, folder, *extra, validation=validation)), *mentions)
        if out.kind == "clear_error" and (folder / "s.db").exists():
            return Outcome("silently_wrong", "the study was opened before the options were checked")
        return out

    return run


def _train_videos(ctx: Context) -> int:
    from vtrbench.cache import FeatureCache

    with FeatureCache(tiny_cache(ctx)) as cache:
        return len(cache.split_rows(str(cache.attrs["default_train"]))[0])


def _more_folds_than_videos(folder: Path, ctx: Context) -> Outcome:
    k = _train_videos(ctx) + 1
    return _refused(mentions=(f"--folds {k}", "at least 2"), validation=("--folds", k))(folder, ctx)


def _small_folds_warned(folder: Path, ctx: Context) -> Outcome:
    """Folds of <= 10 videos: tuning runs, and says before training that the objective hardly resolves."""
    r = run_cli(_argv(ctx, folder))
    return expect_ok(r, lambda: None if "validates on only" in r.err else "no warning about small folds")


def _spelled_out(*first: Any, second: tuple) -> Callable:
    """The same study run again with defaults spelled out must resume it (same identity), not refuse."""

    def run(folder: Path, ctx: Context) -> Outcome:
        one = run_cli(_argv(ctx, folder, *first))
        if one.code != 0:
            return Outcome("silently_wrong", f"the first run failed: {one.text[-200:]}")
        two = run_cli(_argv(ctx, folder, *second))
        return expect_ok(
            two, lambda: None if "0 trial(s) run" in two.err else "the spelled-out run trained again"
        )

    return run


def _status_results_read_only(folder: Path, ctx: Context) -> Outcome:
    """--status --results with no tuned results: one line, and the study file is not written."""
    first = run_cli(_argv(ctx, folder))
    if first.code != 0:
        return Outcome("silently_wrong", f"the tuning run failed: {first.text[-200:]}")
    study = folder / "s.db"
    (folder / "results").mkdir()
    (folder / "results" / "note.txt").write_text("no results here\n")
    before = study.read_bytes()
    out = expect_error(run_cli(["tune", "--status", study, "--results", folder / "results"]), "results")
    if study.read_bytes() != before:
        return Outcome("lost", "tune --status --results wrote to the study")
    return out


def cases() -> list[Case]:
    val = ("--val-fraction", 0.25)
    return [
        Case(AREA, "folds-0", _refused(mentions=("--folds",), validation=("--folds", 0))),
        Case(AREA, "folds-1", _refused(mentions=("--folds", ">= 2"), validation=("--folds", 1))),
        Case(
            AREA, "folds-negative", _refused(mentions=("--folds",), validation=("--folds", -3)), quick=False
        ),
        Case(
            AREA, "folds-huge", _refused(mentions=("--folds",), validation=("--folds", 10**12)), quick=False
        ),
        Case(AREA, "folds-nan", _refused(mentions=("--folds",), validation=("--folds", "nan")), quick=False),
        Case(AREA, "folds-more-than-videos", _more_folds_than_videos),
        Case(
            AREA, "folds-with-val-split", _refused("--val-split", "test", mentions=("--folds", "--val-split"))
        ),
        Case(
            AREA,
            "folds-with-val-fraction",
            _refused(*val, mentions=("--folds", "--val-fraction")),
            quick=False,
        ),
        Case(
            AREA,
            "val-fraction-one-video",
            _refused(mentions=("1 usable video", "--val-fraction"), validation=("--val-fraction", 1e-9)),
        ),
        Case(
            AREA, "objective-unknown", _refused("--objective", "mAP", mentions=("--objective",)), quick=False
        ),
        Case(AREA, "objective-inf", _refused("--objective", "inf", mentions=("--objective",)), quick=False),
        Case(AREA, "results-without-status", _refused("--results", "x", mentions=("--results", "--status"))),
        Case(AREA, "small-folds-warned", _small_folds_warned, quick=False),
        Case(
            AREA, "objective-default-spelled-out", _spelled_out(second=("--objective", "rsum")), quick=False
        ),
        Case(AREA, "status-results-read-only", _status_results_read_only, quick=False),
    ]
