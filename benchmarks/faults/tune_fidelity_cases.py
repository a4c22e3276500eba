"""Faults of ``vtrbench tune --fidelity/--rungs/--eta`` (issue 29 item 1): bad fractions (0, > 1, NaN,
inf, negative), rungs that do not grow, exceed --max-epochs or the full-fidelity budget, unknown axes,
options of another fidelity, and defaults spelled out (same study identity: the study resumes).

Every refusal must come before the study storage is created, as one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "tune_fidelity"
SPACE = "[train]\nepochs = {low = 1, high = 2}\nbatch_size = {choices = [2, 4]}\n"
MULTI = ("--fidelity", "data,epochs")


def _argv(ctx: Context, folder: Path, *extra: Any, trials: int = 2) -> list[Any]:
    (folder / "space.toml").write_text(SPACE)
    return [
        "tune", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--trials", trials,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", folder / "s.db",
        "--space", folder / "space.toml", "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def _refused(*extra: Any, mentions: tuple[str, ...]) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        out = expect_error(run_cli(_argv(ctx, folder, *extra)), *mentions)
        if out.kind == "clear_error" and (folder / "s.db").exists():
            return Outcome("silently_wrong", "the study storage was created before the options were checked")
        return out

    return run


def _rungs(text: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    return _refused(*MULTI, "--rungs", text, mentions=("--rungs", *mentions))


def _same_study(first: tuple[Any, ...], again: tuple[Any, ...]) -> Callable[[Path, Context], Outcome]:
    """Tune with ``first``, then with ``again`` (the defaults spelled out): the second run must open
    the same study (no 'made with another ...') and add no trial to the finished budget."""

    def run(folder: Path, ctx: Context) -> Outcome:
        one = run_cli(_argv(ctx, folder, *first))
        if one.code != 0:
            return expect_ok(one)

        def unchanged() -> str | None:
            return None if "tuning done: 0 trial(s) run" in two.text else "trials were run again"

        two = run_cli(_argv(ctx, folder, *again))
        return expect_ok(two, unchanged)

    return run


def _status_is_read_only(folder: Path, ctx: Context) -> Outcome:
    first = run_cli(_argv(ctx, folder, *MULTI, "--rungs", "0.5:1,1:max", "--eta", 2))
    if first.code != 0:
        return expect_ok(first)
    study = folder / "s.db"
    before = (study.read_bytes(), study.stat().st_mtime_ns)

    def check() -> str | None:
        if (study.read_bytes(), study.stat().st_mtime_ns) != before:
            return "tune --status changed the study file"
        if (
            "caption-epochs" not in status.text
            or "successive halving over rungs 0.5:1,1:2" not in status.text
        ):
            return "tune --status shows no caption-epochs or fidelity line"
        return None

    status = run_cli(["tune", "--status", study])
    return expect_ok(status, check)


def cases() -> list[Case]:
    return [
        Case(AREA, "rung-fraction-zero", _rungs("0:1,1:max", "(0, 1]")),
        Case(AREA, "rung-fraction-above-one", _rungs("0.5:1,1.5:max", "(0, 1]")),
        Case(AREA, "rung-fraction-nan", _rungs("nan:1,1:max", "(0, 1]")),
        Case(AREA, "rung-fraction-inf", _rungs("inf:1,1:max", "(0, 1]"), quick=False),
        Case(AREA, "rung-fraction-negative", _rungs("-0.5:1,1:max", "(0, 1]"), quick=False),
        Case(AREA, "rung-fraction-not-a-number", _rungs("half:1,1:max", "not a number"), quick=False),
        Case(AREA, "rung-epochs-zero", _rungs("0.5:0,1:max", "--max-epochs"), quick=False),
        Case(AREA, "rung-epochs-above-max-epochs", _rungs("0.5:3,1:max", "--max-epochs 2")),
        Case(AREA, "rung-epochs-huge", _rungs(f"0.5:{10**12},1:max", "--max-epochs 2"), quick=False),
        Case(AREA, "rungs-not-increasing", _rungs("0.5:1,0.25:2,1:max", "must grow")),
        Case(AREA, "rungs-repeated", _rungs("0.5:1,0.5:1,1:max", "must grow"), quick=False),
        Case(AREA, "rungs-not-ending-at-full-fidelity", _rungs("0.25:1,0.5:2", "1:max"), quick=False),
        Case(AREA, "rungs-only-full-fidelity", _rungs("1:max", "cheaper rung"), quick=False),
        Case(AREA, "rungs-empty", _rungs("", "FRACTION:EPOCHS"), quick=False),
        Case(
            AREA,
            "schedule-exceeds-the-budget",
            _refused(*MULTI, "--rungs", "0.9:2,1:max", "--eta", 2, mentions=("--rungs", "exceeds")),
        ),
        Case(AREA, "eta-one", _refused(*MULTI, "--eta", 1, mentions=("--eta",))),
        Case(AREA, "eta-zero", _refused(*MULTI, "--eta", 0, mentions=("--eta",)), quick=False),
        Case(AREA, "eta-nan", _refused(*MULTI, "--eta", "nan", mentions=("--eta",)), quick=False),
        Case(AREA, "fidelity-unknown-axis", _refused("--fidelity", "data,lr", mentions=("--fidelity",))),
        Case(AREA, "fidelity-empty", _refused("--fidelity", "", mentions=("--fidelity",)), quick=False),
        Case(AREA, "rungs-without-data-fidelity", _refused("--rungs", "0.5:1,1:max", mentions=("--rungs",))),
        Case(AREA, "eta-without-data-fidelity", _refused("--eta", 3, mentions=("--eta",)), quick=False),
        Case(
            AREA, "pruner-with-data-fidelity", _refused(*MULTI, "--pruner", "median", mentions=("--pruner",))
        ),
        Case(
            AREA,
            "pruner-with-no-fidelity",
            _refused("--fidelity", "none", "--pruner", "hyperband", mentions=("--pruner",)),
            quick=False,
        ),
        Case(
            AREA,
            "default-fidelity-spelled-out",
            _same_study((), ("--fidelity", "epochs", "--pruner", "median")),
            quick=False,
        ),
        Case(
            AREA,
            "fidelity-none-is-pruner-none",
            _same_study(("--pruner", "none"), ("--fidelity", "none")),
            quick=False,
        ),
        Case(
            AREA,
            "default-rungs-spelled-out",
            _same_study(
                MULTI,
                (
                    "--fidelity",
                    "epochs,data",
                    "--eta",
                    3,
                    "--rungs",
                    "0.1111111111111111:1,0.3333333333333333:1,1:max",
                ),
            ),  # fmt: skip
            quick=False,
        ),
        Case(AREA, "status-of-a-fidelity-study-is-read-only", _status_is_read_only, quick=False),
    ]
