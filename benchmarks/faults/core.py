"""The fault suite's shared vocabulary: a case, its outcome, and how a CLI run is classified.

Each area module (``extract_cases``, ``train_cases``, ``report_cases``, ...) defines
``cases() -> list[Case]``. A case gets a fresh folder and the shared :class:`Context`
(small fixtures made once), injects one fault on purpose, runs vtrbench, and says what
happened as one of :data:`KINDS`. Nothing here knows about a particular fault.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a case can end as. The targets: 0 traceback, 0 silently_wrong, 0 lost.
#   clear_error     non-zero exit with a one-line error (names the file or option), no traceback
#   handled         the run succeeded and the result is right (e.g. a failed video recorded, a resume)
#   traceback       a Python traceback, a crash (segfault) or an exception escaping ``main``
#   silently_wrong  exit 0 (or a success message) but the output is wrong or unflagged
#   lost            data that existed before the run is gone or damaged afterwards
KINDS = ("clear_error", "handled", "traceback", "silently_wrong", "lost")
BAD_KINDS = ("traceback", "silently_wrong", "lost")


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""
    kill: bool = False  # the case killed a process on purpose
    identical_resume: bool | None = None  # for kills: the resumed output equals an uninterrupted run

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}")


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    run: Callable[[Path, Context], Outcome]
    quick: bool = True  # part of the fast set that tests/top/test_faults.py runs in CI


@dataclass
class Context:
    """Fixtures shared by all cases of one run, made lazily once (cases must not modify them)."""

    root: Path
    _made: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[Path], Any]) -> Any:
        if key not in self._made:
            folder = self.root / "_shared" / key
            folder.mkdir(parents=True, exist_ok=True)
            self._made[key] = make(folder)
        return self._made[key]


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str
    traceback: str = ""  # non-empty when an exception escaped or a traceback was printed

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(argv: Sequence[Any]) -> CliRun:
    """Run ``vtrbench.cli.main`` in-process, capturing output; an escaping exception is recorded."""
    from vtrbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "1000"
    tb = ""
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    except BaseException:  # noqa: BLE001 - anything escaping main is the finding
        tb = traceback.format_exc()
        code = 1
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    text = out.getvalue() + err.getvalue()
    if not tb and "Traceback (most recent call last)" in text:
        tb = text
    return CliRun(code, out.getvalue(), err.getvalue(), tb)


def run_cli_subprocess(
    argv: Sequence[Any], cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> CliRun:
    """Run ``python -m vtrbench.cli`` in a child process (for kills, segfaults and real exit codes)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vtrbench.cli", *[str(a) for a in argv]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "1000", **(env or {})},
    )
    text = proc.stdout + proc.stderr
    crashed = proc.returncode < 0  # killed by a signal (segfault, abort)
    tb = text if ("Traceback (most recent call last)" in text or crashed) else ""
    return CliRun(proc.returncode, proc.stdout, proc.stderr, tb)


def expect_error(run: CliRun, *mentions: str) -> Outcome:
    """The run should fail with one clear line that mentions each of ``mentions`` (e.g. the file)."""
    if run.traceback:
        return Outcome("traceback", run.traceback.strip().splitlines()[-1][:200])
    if run.code == 0:
        return Outcome("silently_wrong", "exit 0 where an error was expected: " + run.text.strip()[-200:])
    error_lines = [ln for ln in run.err.splitlines() if "error" in ln.lower()]
    if not error_lines:
        return Outcome("silently_wrong", f"exit {run.code} without an error line: {run.text.strip()[-200:]}")
    missing = [m for m in mentions if m not in run.text]
    if missing:
        return Outcome("silently_wrong", f"the error does not name {missing}: {error_lines[0][:200]}")
    return Outcome("clear_error", error_lines[0][:200])


def expect_ok(run: CliRun, check: Callable[[], str | None] | None = None) -> Outcome:
    """The run should succeed; ``check()`` returns a description of what is wrong, or None."""
    if run.traceback:
        return Outcome("traceback", run.traceback.strip().splitlines()[-1][:200])
    if run.code != 0:
        return Outcome("silently_wrong", f"exit {run.code} where success was expected: {run.text[-200:]}")
    problem = check() if check is not None else None
    return Outcome("silently_wrong", problem) if problem else Outcome("handled")


# ------------------------------------------------------------------ shared fixtures (made once per run)

TINY_MODEL = "vtrbench-tiny"


def synthetic_dataset(ctx: Context, videos: int = 8) -> Path:
    """A small rendered synthetic dataset (``vtrbench synth``), read-only for cases."""

    def make(folder: Path) -> Path:
        out = folder / "data"
        argv = ["synth", out, "--videos", videos, "--seed", 0, "--size", 64, "--fps", 5, "--seconds", 4]
        run = run_cli([*argv, "--quiet"])
        if run.code != 0:
            raise RuntimeError(f"fixture: vtrbench synth failed: {run.text[-300:]}")
        return out

    return ctx.once(f"synthetic-{videos}", make)


def extract_argv(dataset_dir: Path, output: Path, *extra: Any) -> list[Any]:
    """The ``vtrbench extract`` arguments for a synthetic dataset with the tiny random model."""
    return [
        "extract", "--dataset", "synthetic", "--annotations", dataset_dir, "--model", TINY_MODEL,
        "--pretrained", "none", "--device", "cpu", "--chunk-size", 2, "--workers", 0, "--quiet",
        "--output", output, *extra,
    ]  # fmt: skip


def tiny_cache(ctx: Context) -> Path:
    """A complete cache of :func:`synthetic_dataset` (copy it before damaging it)."""

    def make(folder: Path) -> Path:
        out = folder / "tiny.h5"
        run = run_cli(extract_argv(synthetic_dataset(ctx), out))
        if run.code != 0 or not out.is_file():
            raise RuntimeError(f"fixture: vtrbench extract failed: {run.text[-300:]}")
        return out

    return ctx.once("tiny-cache", make)


def train_argv(cache: Path, results: Path, *extra: Any) -> list[Any]:
    """A fast ``vtrbench train`` on the tiny cache (meanp, 2 epochs)."""
    return [
        "train", "--cache", cache, "--head", "meanp", "--loss", "infonce", "--epochs", 2,
        "--batch-size", 8, "--device", "cpu", "--results", results, "--quiet", *extra,
    ]  # fmt: skip


def tiny_results(ctx: Context) -> Path:
    """A folder of result files (meanp, seeds 0 and 1) trained on :func:`tiny_cache`."""

    def make(folder: Path) -> Path:
        out = folder / "results"
        run = run_cli(train_argv(tiny_cache(ctx), out, "--seed", "0,1"))
        if run.code != 0:
            raise RuntimeError(f"fixture: vtrbench train failed: {run.text[-300:]}")
        return out

    return ctx.once("tiny-results", make)


def expect_refused_before_training(run: CliRun, results: Path, *mentions: str) -> Outcome:
    """:func:`expect_error`, and no result file under ``results`` and no epoch in the output: the
    refusal came before any training (for options checked when a run is planned)."""
    out = expect_error(run, *mentions)
    if out.kind != "clear_error":
        return out
    left = list(results.rglob("*.json")) if results.exists() else []
    if left:
        return Outcome("silently_wrong", f"a result was written: {left[0]}")
    if "epoch" in run.text.lower():
        return Outcome("silently_wrong", "refused only after training")
    return out


@contextlib.contextmanager
def environment(unset: tuple[str, ...] = (), **values: str) -> Iterator[None]:
    """Set ``values`` and remove ``unset`` in ``os.environ`` for the block; every name restored after."""
    names = (*values, *unset)
    old = {k: os.environ.get(k) for k in names}
    for k in unset:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
