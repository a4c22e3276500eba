"""Faults of ``tune``'s studies and ``ablate --tuned``/``report``/``browse`` around them (issue 28).

``ablate --tuned`` with options the study fixes or cells it does not hold; ``--space`` tables for
heads/losses the run does not tune; read-only commands (``tune --status``, ``ablate --tuned``) on an
empty, a foreign, a damaged and a valid study file, which must not change one byte or timestamp of
it; journal storages on a device, a folder or a kernel file; a result file without its head given
to ``report --baseline``; ``browse --baseline`` naming no system.
"""

from __future__ import annotations

import json
import os
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
)

AREA = "tune-io"
SPACE = "[train]\nepochs = {low = 1, high = 2}\nbatch_size = {choices = [2, 4]}\n"


def _tune_argv(ctx: Context, folder: Path, *extra: Any, space: str = SPACE) -> list[Any]:
    (folder / "space.toml").write_text(space)
    return [
        "tune",
        "--cache",
        tiny_cache(ctx),
        "--heads",
        "meanp",
        "--losses",
        "infonce",
        "--trials",
        1,
        "--max-epochs",
        2,
        "--val-fraction",
        0.25,
        "--space",
        folder / "space.toml",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def _study(ctx: Context) -> Path:
    """A finished study of two cells (meanp x infonce, dsl; 2 trials each); copy it before use."""

    def make(folder: Path) -> Path:
        study = folder / "s.db"
        argv = _tune_argv(ctx, folder, "--study", study)
        argv[argv.index("--losses") + 1] = "infonce,dsl"
        argv[argv.index("--trials") + 1] = 2
        run = run_cli(argv)
        if run.code != 0:
            raise RuntimeError(f"fixture: vtrbench tune failed: {run.text[-300:]}")
        return study

    return ctx.once("tune-io-study", make)


def _copy_study(ctx: Context, folder: Path) -> Path:
    study = folder / "s.db"
    shutil.copy2(_study(ctx), study)
    return study


def _ablate(ctx: Context, folder: Path, study: Path, *extra: Any) -> list[Any]:
    return [
        "ablate",
        "--cache",
        tiny_cache(ctx),
        "--tuned",
        study,
        "--seeds",
        0,
        "--device",
        "cpu",
        "--results",
        folder / "res",
        "--quiet",
        *extra,
    ]


def _ran(folder: Path) -> int:
    return len(list((folder / "res").rglob("*.json")))


# ---------------------------------------------------------------- ablate --tuned: cells and options


def _tuned_refuses(*extra: Any, mentions: tuple[str, ...]) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        out = expect_error(run_cli(_ablate(ctx, folder, _copy_study(ctx, folder), *extra)), *mentions)
        if out.kind == "clear_error" and _ran(folder):
            return Outcome("silently_wrong", f"refused, but {_ran(folder)} result(s) were written first")
        return out

    return run


def _tuned_subset(folder: Path, ctx: Context) -> Outcome:
    """--losses dsl picks one of the study's two cells: exactly one run, of meanp+dsl."""
    r = run_cli(_ablate(ctx, folder, _copy_study(ctx, folder), "--losses", "dsl"))

    def check() -> str | None:
        files = sorted(p.name for p in (folder / "res").rglob("*.json"))
        if len(files) != 1 or ".meanp.dsl." not in files[0]:
            return f"--losses dsl ran {files}, not the one meanp+dsl cell"
        return None

    return expect_ok(r, check)


def _tuned_honours(*extra: Any) -> Callable[[Path, Context], Outcome]:
    """Options ablate --tuned honours (seeds, device, output, evaluation): both cells run."""

    def run(folder: Path, ctx: Context) -> Outcome:
        r = run_cli(_ablate(ctx, folder, _copy_study(ctx, folder), *extra))
        return expect_ok(r, lambda: None if _ran(folder) == 2 else f"{_ran(folder)} results, not 2")

    return run


# ---------------------------------------------------------------- --space tables for cells not run


def _space_refused(text: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        study = folder / "s.db"
        out = expect_error(run_cli(_tune_argv(ctx, folder, "--study", study, space=SPACE + text)), *mentions)
        if out.kind == "clear_error" and study.exists():
            return Outcome("silently_wrong", "the study was opened before the space file was checked")
        return out

    return run


def _space_dev_zero(folder: Path, ctx: Context) -> Outcome:
    """``--space /dev/zero``: an endless file, refused by the TOML reader's size/regular-file check."""
    return expect_error(
        run_cli([*_tune_argv(ctx, folder, "--study", folder / "s.db"), "--space", "/dev/zero"]), "/dev/zero"
    )


def _space_for_the_run(text: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        return expect_ok(run_cli(_tune_argv(ctx, folder, "--study", folder / "s.db", space=SPACE + text)))

    return run


# ---------------------------------------------------------------- read-only commands never write


def _stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


def _untouched(make: Callable[[Path, Context], Path], command: str, ok: bool, *mentions: str) -> Callable:
    """``command`` (status or ablate) on the file ``make`` gives: refused with ``mentions`` (or run
    when ``ok``), the file's bytes and mtime unchanged and no file created beside it."""

    def run(folder: Path, ctx: Context) -> Outcome:
        study = make(folder, ctx)
        os.utime(study, ns=(1_500_000_000 * 10**9, 1_500_000_000 * 10**9))  # an mtime any write moves
        before, beside = _stamp(study), sorted(os.listdir(study.parent))
        argv = ["tune", "--status", study] if command == "status" else _ablate(ctx, folder, study)
        r = run_cli(argv)
        out = expect_ok(r) if ok else expect_error(r, *mentions)
        if _stamp(study) != before:
            size = study.stat().st_size
            return Outcome("lost", f"{command} changed the study file ({len(before[0])} -> {size} bytes)")
        extra = set(os.listdir(study.parent)) - set(beside) - {"res"}
        if extra:
            return Outcome("silently_wrong", f"{command} created {sorted(extra)} beside the study")
        return out

    return run


def _empty(folder: Path, ctx: Context) -> Path:
    (folder / "empty.db").write_bytes(b"")
    return folder / "empty.db"


def _foreign(folder: Path, ctx: Context) -> Path:
    (folder / "notes.db").write_text("not a study\n" * 100)
    return folder / "notes.db"


def _valid(folder: Path, ctx: Context) -> Path:
    return _copy_study(ctx, folder)


def _damaged(folder: Path, ctx: Context) -> Path:
    """The valid study with 4 KiB of flipped bytes a quarter of the way in (past the header)."""
    study = _copy_study(ctx, folder)
    data = bytearray(study.read_bytes())
    start = len(data) // 4
    for i in range(start, min(start + 4096, len(data))):
        data[i] ^= 0xFF
    study.write_bytes(bytes(data))
    return study


def _tune_on_damaged(folder: Path, ctx: Context) -> Outcome:
    study = _damaged(folder, ctx)
    return expect_error(run_cli(_tune_argv(ctx, folder, "--study", study)), "damaged")


def _journal_status_missing(folder: Path, ctx: Context) -> Outcome:
    journal = folder / "none.log"
    out = expect_error(run_cli(["tune", "--status", f"journal:{journal}"]), "none.log")
    if journal.exists():
        return Outcome("silently_wrong", "tune --status created the journal file it was asked to read")
    return out


def _journal_damaged(folder: Path, ctx: Context) -> Outcome:
    journal = folder / "bad.log"
    journal.write_text('{"op_code": 0, "worker_id": "x"}\nnot json\n')
    return expect_error(run_cli(["tune", "--status", f"journal:{journal}"]), "damaged")


# ---------------------------------------------------------------- journal paths that are not files


def _journal(target: Callable[[Path], str], *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        return expect_error(
            run_cli(_tune_argv(ctx, folder, "--storage", f"journal:{target(folder)}")), *mentions
        )

    return run


# ---------------------------------------------------------------- report and browse


def _results_without(ctx: Context, folder: Path, key: str) -> Path:
    results = folder / "results"
    shutil.copytree(tiny_results(ctx), results)
    first = sorted(results.rglob("*.json"))[0]
    data = json.loads(first.read_text())
    data.pop(key)
    first.write_text(json.dumps(data))
    return results


def _report_without(key: str) -> Callable[[Path, Context], Outcome]:
    def run(folder: Path, ctx: Context) -> Outcome:
        results = _results_without(ctx, folder, key)
        return expect_error(
            run_cli(["report", results, "--baseline", "xpool + infonce"]), f"'{key}'", ".json"
        )

    return run


def _browse_bad_baseline(folder: Path, ctx: Context) -> Outcome:
    out_dir = folder / "page"
    argv = [
        "browse",
        tiny_results(ctx),
        "--cache",
        tiny_cache(ctx),
        "--output",
        out_dir,
        "--baseline",
        "nope",
    ]
    out = expect_error(run_cli(argv), "nope", "meanP + InfoNCE")
    if out.kind == "clear_error" and (out_dir / "index.html").exists():
        return Outcome("silently_wrong", "refused, but the page was written")
    return out


def cases() -> list[Case]:
    meanp_only = "[head.meanp]\nlogit_scale_init = {low = 10.0, high = 20.0, log = true}\n"
    return [
        Case(
            AREA,
            "ablate-tuned-head-not-in-study",
            _tuned_refuses("--heads", "camoe", mentions=("camoe", "meanp+dsl")),
        ),
        Case(
            AREA,
            "ablate-tuned-loss-not-in-study",
            _tuned_refuses("--losses", "triplet", mentions=("triplet", "meanp+infonce")),
            quick=False,
        ),
        Case(
            AREA,
            "ablate-tuned-head-option",
            _tuned_refuses("--head-option", "logit_scale=fixed", mentions=("--head-option",)),
        ),
        Case(AREA, "ablate-tuned-lr", _tuned_refuses("--lr", "0.5", mentions=("--lr",)), quick=False),
        Case(
            AREA,
            "ablate-tuned-epochs-default-spelled-out",
            _tuned_refuses("--epochs", "5", mentions=("--epochs",)),
            quick=False,
        ),
        Case(
            AREA,
            "ablate-tuned-temperature",
            _tuned_refuses("--temperature", "0.05", mentions=("--temperature",)),
            quick=False,
        ),
        Case(AREA, "ablate-tuned-losses-subset", _tuned_subset, quick=False),
        Case(
            AREA,
            "ablate-tuned-honours-run-options",
            _tuned_honours("--seeds", "0", "--qb-bank", "8", "--overwrite", "always"),
            quick=False,
        ),
        Case(
            AREA,
            "space-table-for-unknown-head",
            _space_refused("[head.nosuchhead]\nlayers = {choices = [1]}\n", "nosuchhead"),
        ),
        Case(
            AREA,
            "space-table-for-head-not-run",
            _space_refused("[head.camoe]\nlayers = {choices = [1]}\n", "camoe", "--heads"),
            quick=False,
        ),
        Case(
            AREA,
            "space-negative-dsl-temperature-on-infonce-run",
            _space_refused("[loss.dsl]\ntemperature = {low = -5.0, high = 1.0}\n", "dsl"),
            quick=False,
        ),
        Case(
            AREA,
            "space-typo-in-loss-name",
            _space_refused("[loss.infonse]\ntemperature = {low = 0.01, high = 0.1}\n", "infonce"),
            quick=False,
        ),
        Case(AREA, "space-dev-zero", _space_dev_zero, quick=False),
        Case(AREA, "space-table-for-the-run-still-works", _space_for_the_run(meanp_only), quick=False),
        Case(AREA, "status-of-a-0-byte-file-writes-nothing", _untouched(_empty, "status", False, "empty.db")),
        Case(
            AREA,
            "ablate-tuned-on-a-0-byte-file-writes-nothing",
            _untouched(_empty, "ablate", False, "empty.db"),
            quick=False,
        ),
        Case(
            AREA,
            "status-of-a-foreign-file-writes-nothing",
            _untouched(_foreign, "status", False, "notes.db"),
            quick=False,
        ),
        Case(AREA, "status-of-a-valid-study-writes-nothing", _untouched(_valid, "status", True)),
        Case(
            AREA,
            "ablate-tuned-on-a-valid-study-writes-nothing",
            _untouched(_valid, "ablate", True),
            quick=False,
        ),
        Case(AREA, "status-of-a-damaged-study", _untouched(_damaged, "status", False, "damaged")),
        Case(
            AREA,
            "ablate-tuned-on-a-damaged-study",
            _untouched(_damaged, "ablate", False, "damaged"),
            quick=False,
        ),
        Case(AREA, "tune-on-a-damaged-study", _tune_on_damaged, quick=False),
        Case(AREA, "status-of-a-missing-journal-creates-nothing", _journal_status_missing, quick=False),
        Case(AREA, "status-of-a-damaged-journal", _journal_damaged, quick=False),
        Case(AREA, "journal-on-dev-null", _journal(lambda f: "/dev/null", "/dev/null")),
        Case(AREA, "journal-on-a-folder", _journal(lambda f: str(f), "folder"), quick=False),
        Case(AREA, "journal-on-proc", _journal(lambda f: "/proc/self/status", "/proc"), quick=False),
        Case(AREA, "report-baseline-on-a-result-without-head", _report_without("head")),
        Case(AREA, "report-on-a-result-without-loss", _report_without("loss"), quick=False),
        Case(AREA, "browse-unknown-baseline", _browse_bad_baseline),
    ]
