"""Faults of ``vtrbench tune`` and ``ablate --tuned``: bad space files, unknown and unsampleable
parameters, unreachable or foreign storages, the test split offered as a tuning source, a study made
with another space, and a worker killed mid-trial (full set only: resume to exactly N trials).

Every refusal must come before any training, as one line.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "tune"
SPACE = "[train]\nepochs = {low = 1, high = 2}\nbatch_size = {choices = [2, 4]}\n"


def _argv(
    ctx: Context, folder: Path, *extra: Any, study: Path | None = None, space: str = SPACE
) -> list[Any]:
    (folder / "space.toml").write_text(space)
    return [
        "tune", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--trials", 2,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", study or folder / "s.db",
        "--space", folder / "space.toml", "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def _bad_space(text: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        out = expect_error(run_cli(_argv(ctx, folder, space=text)), *mentions)
        if out.kind == "clear_error" and (folder / "s.db").exists():
            return Outcome("silently_wrong", "the study was opened before the space was checked")
        return out

    return run


def _storage(url: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        argv = _argv(ctx, folder)
        i = argv.index("--study")
        return expect_error(run_cli([*argv[:i], "--storage", url, *argv[i + 2 :]]), "storage")

    return run


def _not_a_study(folder: Path, ctx: Context) -> Outcome:
    fake = folder / "fake.db"
    fake.write_text("this is not an SQLite file\n")
    before = fake.read_bytes()
    out = expect_error(run_cli(["tune", "--status", fake]), "fake.db")
    if fake.read_bytes() != before:
        return Outcome("lost", "the file given as a study was changed")
    return out


def _test_split(*extra: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        argv = (
            [a for a in _argv(ctx, folder) if a not in ("--val-fraction", 0.25)]
            if "--val-split" in extra
            else _argv(ctx, folder)
        )
        return expect_error(run_cli([*argv, *extra]), "test split")

    return run


def _other_space(folder: Path, ctx: Context) -> Outcome:
    first = run_cli(_argv(ctx, folder))
    if first.code != 0:
        return Outcome("silently_wrong", f"the first tuning run failed: {first.text[-200:]}")
    return expect_error(
        run_cli(_argv(ctx, folder, space=SPACE + "warmup = {low = 0.0, high = 0.5}\n")), "space"
    )


def _finished(study: Path) -> int:
    with sqlite3.connect(study) as db:
        return int(
            db.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
        )


def _kill_mid_trial(folder: Path, ctx: Context) -> Outcome:
    """kill -9 of a worker while a trial runs; the rerun must end with exactly 3 finished trials."""
    study = folder / "s.db"
    argv = [str(a) for a in _argv(ctx, folder, "--heartbeat", "1")]
    argv[argv.index("--trials") + 1] = "3"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vtrbench", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline, killed = time.time() + 120, False
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(study) as db:
                killed = bool(
                    db.execute("SELECT 1 FROM trials WHERE state = 'RUNNING' AND number >= 1").fetchall()
                )
        except sqlite3.Error:
            killed = False
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    rerun = run_cli([*argv, "--heartbeat", "1"])
    out = expect_ok(
        rerun, lambda: None if _finished(study) == 3 else f"{_finished(study)} finished trials, not 3"
    )
    if out.kind != "handled":
        return Outcome(out.kind, out.detail, kill=killed)
    # the same command uninterrupted, in another study: one worker, same seed -> the same best trial
    clean = folder / "clean.db"
    argv[argv.index("--study") + 1] = str(clean)
    if run_cli(argv).code != 0:
        return Outcome("silently_wrong", "the uninterrupted comparison run failed", kill=killed)
    return Outcome("handled", out.detail, kill=killed, identical_resume=_best(study) == _best(clean))


def _best(study: Path) -> tuple[Any, ...]:
    from vtrbench.runs.tune.status import read_cells

    (cell,) = read_cells(f"sqlite:///{study}")
    best = cell.best or {}
    return best.get("value"), sorted((best.get("params") or {}).items())


def _startup(value: Any, *expect: str) -> Callable[[Path, Context], Outcome]:
    """``--startup-trials VALUE``: refused (``expect`` empty: ``--startup-trials`` named) or run, and
    then the output must say each of ``expect`` before training."""

    def run(folder: Path, ctx: Context) -> Outcome:
        argv = _argv(ctx, folder, "--startup-trials", value)
        if expect:
            argv.remove("--quiet")  # the sampler note is progress output; a warning is printed anyway
        r = run_cli(argv)
        if not expect:
            out = expect_error(r, "--startup-trials")
            if out.kind == "clear_error" and (folder / "s.db").exists():
                return Outcome("silently_wrong", "the study was opened before --startup-trials was checked")
            return out
        return expect_ok(
            r, lambda: next((f"the output does not say {e!r}" for e in expect if e not in r.text), None)
        )

    return run


def _random_only_said(folder: Path, ctx: Context) -> Outcome:
    """--trials 1 with the default start-up: one random trial, said before it runs, and in --status."""
    argv = _argv(ctx, folder)
    argv[argv.index("--trials") + 1] = 1
    r = run_cli(argv)
    if r.code != 0 or "TPE never leaves random search" not in r.err:
        return expect_ok(r, lambda: "no warning that 1 trial per cell is random search")
    status = run_cli(["tune", "--status", folder / "s.db"])
    return expect_ok(
        status, lambda: None if "random search only" in status.out else "--status does not flag it"
    )


def _few_trials_plot(folder: Path, ctx: Context) -> Outcome:
    """--plot after 2 trials: the history is drawn, the importance plot refused with its reason."""
    r = run_cli(_argv(ctx, folder, "--plot", folder / "plots"))

    def check() -> str | None:
        files = sorted(p.name for p in (folder / "plots").glob("*.png"))
        if files != ["meanp+infonce.history.png"]:
            return f"figures {files}: the importance plot should be left out below the minimum"
        return None if "no importance plot from 2 complete trial(s)" in r.err else "no note says why"

    return expect_ok(r, check)


def cases() -> list[Case]:
    return [
        Case(AREA, "space-invalid-toml", _bad_space("[train\nlr = 1", "invalid TOML")),
        Case(
            AREA, "space-unknown-parameter", _bad_space("[head.meanp]\nadaptr = {choices = [true]}", "adaptr")
        ),
        Case(
            AREA,
            "space-unsampleable",
            _bad_space("[train]\nlr = {low = 0.0, high = 1.0, log = true}", "lr"),
            quick=False,
        ),
        Case(
            AREA,
            "space-value-the-run-refuses",
            _bad_space("[train]\nbatch_size = {choices = [1]}", "batch_size"),
            quick=False,
        ),
        Case(AREA, "storage-unreachable", _storage("postgresql://nobody@127.0.0.1:1/none")),
        Case(AREA, "storage-folder-missing", _storage("sqlite:////nonexistent/vtrbench/s.db"), quick=False),
        Case(AREA, "status-of-a-non-sqlite-file", _not_a_study, quick=False),
        Case(AREA, "train-split-is-test", _test_split("--train-split", "test")),
        Case(AREA, "val-split-is-test", _test_split("--val-split", "test"), quick=False),
        Case(AREA, "study-with-another-space", _other_space, quick=False),
        Case(AREA, "kill-9-mid-trial-then-resume", _kill_mid_trial, quick=False),
        Case(AREA, "startup-trials-negative", _startup(-1)),
        Case(AREA, "startup-trials-not-a-number", _startup("many"), quick=False),
        Case(AREA, "startup-trials-huge", _startup(10**12, "TPE never leaves random search"), quick=False),
        Case(AREA, "startup-trials-zero", _startup(0, "0 random start-up trial(s), then TPE"), quick=False),
        Case(
            AREA, "startup-trials-default-spelled-out", _startup(1, "1 random start-up trial(s)"), quick=False
        ),
        Case(AREA, "one-trial-is-random-search", _random_only_said, quick=False),
        Case(AREA, "importance-plot-from-two-trials", _few_trials_plot, quick=False),
    ]
