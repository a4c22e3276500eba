"""Faults in command-line use that need no fixture: unknown names and missing inputs."""

from __future__ import annotations

from pathlib import Path

from benchmarks.faults.core import Case, Context, Outcome, expect_error, run_cli


def _unknown_dataset(tmp: Path, ctx: Context) -> Outcome:
    return expect_error(run_cli(["extract", "--dataset", "msrvt", "--annotations", tmp]), "msrvt")


def _report_missing_path(tmp: Path, ctx: Context) -> Outcome:
    missing = tmp / "no-such-results"
    return expect_error(run_cli(["report", missing]), str(missing))


def _inspect_missing_file(tmp: Path, ctx: Context) -> Outcome:
    missing = tmp / "nothing.h5"
    return expect_error(run_cli(["inspect", missing]), "nothing.h5")


def cases() -> list[Case]:
    return [
        Case("cli", "unknown-dataset", _unknown_dataset),
        Case("cli", "report-missing-path", _report_missing_path),
        Case("cli", "inspect-missing-file", _inspect_missing_file),
        Case("cli", "report-of-fixture", _report_of_fixture),
    ]


def _report_of_fixture(tmp: Path, ctx: Context) -> Outcome:
    from benchmarks.faults.core import expect_ok, tiny_results

    results = tiny_results(ctx)
    run = run_cli(["report", results])
    return expect_ok(run, lambda: None if "meanp" in run.text else "the report does not show meanp")
