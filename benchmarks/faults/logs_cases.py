"""Faults of what a log shows and what others can read (issue 30): hostile ``VTRBENCH_PROGRESS_EVERY``
values on every command that shows progress, tables in absurdly narrow windows and pipes, and file
modes under strict and loose umasks.

A bad interval must be one error line naming the variable, before anything is written; a narrow
window or a pipe must never cut a number; a file must get the mode a plain ``open`` would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.faults.core import (
    Case,
    CliRun,
    Context,
    Outcome,
    environment,
    expect_error,
    expect_ok,
    extract_argv,
    run_cli,
    run_cli_subprocess,
    synthetic_dataset,
    tiny_cache,
    tiny_results,
    train_argv,
)

AREA = "logs"
ENV = "VTRBENCH_PROGRESS_EVERY"
BAD_VALUES = ("-1", "-0.5", "nan", "inf", "-inf", "1e999", "ten", "10s", "0x10", "1,5")
LINE = re.compile(r"^\[(?P<name>[^\]]+)\] (?P<done>\d+)/(?P<total>\d+)")


@contextlib.contextmanager
def _umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _nothing_written(folder: Path) -> str | None:
    made = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
    return f"written despite the error: {made[:5]}" if made else None


def _refused(run: CliRun, folder: Path) -> Outcome:
    outcome = expect_error(run, ENV)
    problem = _nothing_written(folder)
    return Outcome("lost" if problem else outcome.kind, problem or outcome.detail)


# ------------------------------------------------------------------ bad intervals, per command


def _train_bad(value: str, *extra: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        argv = [a for a in train_argv(tiny_cache(ctx), folder / "results") if a != "--quiet"]
        with environment(**{ENV: value}):
            return _refused(run_cli([*argv, *extra]), folder)

    return run


def _ablate_bad(folder: Path, ctx: Context) -> Outcome:
    argv = ["ablate", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--seeds", "0",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--results", folder / "results"]  # fmt: skip
    with environment(**{ENV: "-1"}):
        return _refused(run_cli(argv), folder)  # the grid file is not written either


def _extract_bad(folder: Path, ctx: Context) -> Outcome:
    argv = [a for a in extract_argv(synthetic_dataset(ctx), folder / "c.h5") if a != "--quiet"]
    with environment(**{ENV: "nan"}):
        return _refused(run_cli(argv), folder)  # no lock, manifest or part left behind


def _tune_bad(folder: Path, ctx: Context) -> Outcome:
    if importlib.util.find_spec("optuna") is None:
        return Outcome("handled", "optuna not installed: tune refuses earlier")
    space = folder.parent / f"{folder.name}-space.toml"
    space.write_text("[train]\nepochs = {low = 1, high = 1}\n")
    argv = ["tune", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--trials", "1",
            "--max-epochs", "1", "--val-fraction", "0.25", "--study", folder / "s.db", "--space", space,
            "--device", "cpu"]  # fmt: skip
    with environment(**{ENV: "ten"}):
        return _refused(run_cli(argv), folder)  # the study file is not created


def _demo_bad(folder: Path, ctx: Context) -> Outcome:
    with environment(**{ENV: "inf"}):
        return _refused(run_cli(["demo", "--output", folder / "demo", "--videos", "16"]), folder)


# ------------------------------------------------------------------ good but extreme intervals


def _train_lines(
    value: str, check: Callable[[list[str], int], str | None]
) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        argv = [a for a in train_argv(tiny_cache(ctx), folder / "results") if a != "--quiet"]
        with environment(**{ENV: value}):
            r = run_cli(argv)
        lines = [x for x in r.err.splitlines() if (m := LINE.match(x)) and m["name"].endswith(" train")]
        total = int(LINE.match(lines[-1])["total"]) if lines else 0
        return expect_ok(r, lambda: check(lines, total) or _one_result(folder / "results"))

    return run


def _every_step(lines: list[str], total: int) -> str | None:
    return None if len(lines) == total + 1 and total > 0 else f"{len(lines)} lines for {total} steps at 0"


def _only_ends(lines: list[str], total: int) -> str | None:
    return None if len(lines) == 2 else f"{len(lines)} lines with a huge interval (expected first and last)"


def _one_result(results: Path) -> str | None:
    return None if len(list(results.rglob("*.json"))) == 1 else "no result written"


# ------------------------------------------------------------------ tables in narrow windows and pipes


def _piped_train_narrow(folder: Path, ctx: Context) -> Outcome:
    # a pipe whose COLUMNS says 20: the metrics table must still hold every number, whole
    argv = [a for a in train_argv(tiny_cache(ctx), folder / "results") if a != "--quiet"]
    r = run_cli_subprocess(argv, env={"COLUMNS": "20"})

    def check() -> str | None:
        files = list((folder / "results").rglob("*.json"))
        if len(files) != 1:
            return "no result written"
        result = json.loads(files[0].read_text())
        for post, m in result["metrics"].items():
            name = post + (" (transductive)" if result["transductive"][post] else "")
            row = next((x for x in r.out.splitlines() if x.startswith(f"| {name} ")), None)
            if row is None:
                return f"no whole row for {name!r} in the piped table"
            if f"| {m['RSum']:.1f} |" not in row:
                return f"RSum of {name} is not whole: {row}"
        return "an ellipsis in the piped output" if "…" in r.out else None

    return expect_ok(r, check)


def _terminal_report(width: int) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        results = tiny_results(ctx)
        r = run_cli_subprocess(
            ["report", results, "--baseline", "meanp + infonce"],
            env={"COLUMNS": str(width), "FORCE_COLOR": "1", "TERM": "xterm"},
        )

        def check() -> str | None:
            plain = re.sub(r"\x1b\[[0-9;]*m", "", r.out)
            cut = [x for x in plain.splitlines() if "│" in x and "…" in x]
            # a table never outgrows the window (rich would cut it); too narrow for a table, the rows
            # are plain lines that the terminal wraps, whole
            wide = [x for x in plain.splitlines() if len(x) > width and any(c in x for c in "│┃━─")]
            return f"cut cells: {cut[:2]}" if cut else (f"table lines wider than {width}" if wide else None)

        return expect_ok(r, check)

    return run


# ------------------------------------------------------------------ file modes


def _modes(mask: int) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        results = folder / "results"
        with _umask(mask):
            r = run_cli(train_argv(tiny_cache(ctx), results, "--save-checkpoint", folder / "ckpt.pt"))
            r2 = run_cli(["report", results, "--output", folder / "report.md"])
        want = 0o666 & ~mask

        def check() -> str | None:
            if r2.code != 0:
                return f"report failed: {r2.text[-200:]}"
            files = [p for p in folder.rglob("*") if p.is_file()]
            wrong = {
                p.name: oct(stat.S_IMODE(p.stat().st_mode))
                for p in files
                if stat.S_IMODE(p.stat().st_mode) != want
            }
            if len(files) < 3:
                return f"expected a result, a checkpoint and a report, found {[p.name for p in files]}"
            return f"modes other than {oct(want)} under umask {oct(mask)}: {wrong}" if wrong else None

        return expect_ok(r, check)

    return run


def cases() -> list[Case]:
    out: list[Case] = []
    for value in BAD_VALUES:
        # CI keeps three spellings; the full run has all
        out.append(
            Case(AREA, f"interval-{value}-train", _train_bad(value), quick=value in ("-1", "nan", "ten"))
        )
    out.append(Case(AREA, "interval-bad-train-quiet", _train_bad("-1", "--quiet")))
    out.append(Case(AREA, "interval-bad-ablate", _ablate_bad))
    out.append(Case(AREA, "interval-bad-extract", _extract_bad))
    out.append(Case(AREA, "interval-bad-tune", _tune_bad))
    out.append(Case(AREA, "interval-bad-demo", _demo_bad))
    out.append(Case(AREA, "interval-0-every-step", _train_lines("0", _every_step)))
    out.append(Case(AREA, "interval-huge-only-ends", _train_lines("1e300", _only_ends)))
    out.append(Case(AREA, "interval-empty-is-default", _train_lines("", lambda lines, total: None)))
    out.append(Case(AREA, "piped-train-columns-20", _piped_train_narrow, quick=False))
    for width in (12, 45, 120):
        out.append(Case(AREA, f"terminal-report-{width}-columns", _terminal_report(width), quick=False))
    for mask in (0o022, 0o077, 0o002):
        out.append(Case(AREA, f"umask-{mask:03o}", _modes(mask), quick=mask == 0o077))
    return out
