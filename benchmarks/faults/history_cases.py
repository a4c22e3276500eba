"""Faults around the per-epoch ``history`` (issue 30): ``--tensorboard DIR`` pointed at places that cannot
hold event files, and result files whose history is damaged or hostile on the way into ``report`` and
``browse`` (a history value must never change how the page parses).

Each case works on copies (the shared fixtures stay untouched) and is classified by
:func:`benchmarks.faults.core.expect_error` / :func:`expect_ok`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
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

TB = "tensorboard"
HISTORY = "history"
ABLATE = ("--heads", "meanp", "--losses", "infonce,dsl", "--seeds", "0", "--epochs", "2", "--batch-size", "8")


def _needs_tensorboard() -> Outcome | None:
    """Without the optional package every --tensorboard run is the install hint (its own case)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return Outcome("handled", "tensorboard not installed here: covered by tensorboard/not-installed")
    return None


def _no_results(results: Path) -> bool:
    return not any(results.rglob("*.json")) if results.exists() else True


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[str]:
    """A folder nobody may write in: a read-only tmpfs for root, mode 0555 otherwise ("" if neither)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "mode 0555"
        finally:
            folder.chmod(0o755)
        return
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    try:
        yield "read-only tmpfs" if made.returncode == 0 else ""
    finally:
        if made.returncode == 0:
            subprocess.run(["umount", str(folder)], capture_output=True)


def _refused(target: Callable[[Path], Any], *mention: str) -> Callable[[Path, Context], Outcome]:
    """``train --tensorboard target(tmp)`` must fail with one line naming ``mention``, before any result."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        skip = _needs_tensorboard()
        if skip is not None:
            return skip
        results = tmp / "results"
        out = expect_error(
            run_cli(train_argv(tiny_cache(ctx), results, "--tensorboard", target(tmp))), *mention
        )
        if out.kind == "clear_error" and not _no_results(results):
            return Outcome("silently_wrong", "refused, but a result file was written")
        return out

    return run


def _file(tmp: Path) -> Path:
    (tmp / "events").write_text("not a folder")
    return tmp / "events"


def _under_file(tmp: Path) -> Path:
    (tmp / "plain").write_text("a file")
    return tmp / "plain" / "tb"


def _read_only_folder(tmp: Path, ctx: Context) -> Outcome:
    skip = _needs_tensorboard()
    if skip is not None:
        return skip
    results = tmp / "results"
    with _read_only(tmp / "ro") as how:
        run = run_cli(train_argv(tiny_cache(ctx), results, "--tensorboard", tmp / "ro" / "tb"))
    if not how:
        return expect_ok(run)  # root without mount: the folder is writable after all
    return expect_error(run, "--tensorboard", "cannot write")


def _run_folder_is_a_file(tmp: Path, ctx: Context) -> Outcome:
    """DIR/<run id> is a file: the run stops before training and the earlier result is kept."""
    skip = _needs_tensorboard()
    if skip is not None:
        return skip
    results, tb = tmp / "results", tmp / "tb"
    first = run_cli(train_argv(tiny_cache(ctx), results))
    if first.code != 0:
        return Outcome("traceback", f"setup: train failed: {first.text[-200:]}")
    (done,) = results.rglob("*.json")
    before = done.read_bytes()
    tb.mkdir()
    (tb / done.name[: -len(".json")]).write_text("in the way")
    out = expect_error(
        run_cli(train_argv(tiny_cache(ctx), results, "--tensorboard", tb, "--overwrite", "always")),
        done.name[: -len(".json")],
        "not a folder",
    )
    if done.read_bytes() != before:
        return Outcome("lost", "the earlier result changed although the rerun stopped")
    return out


def _not_installed(tmp: Path, ctx: Context) -> Outcome:
    saved = {
        k: sys.modules[k] for k in list(sys.modules) if k == "tensorboard" or k.startswith("tensorboard.")
    }
    saved_torch = sys.modules.get("torch.utils.tensorboard")
    sys.modules["tensorboard"] = None  # type: ignore[assignment]  # import tensorboard -> ImportError
    sys.modules.pop("torch.utils.tensorboard", None)
    try:
        run = run_cli(train_argv(tiny_cache(ctx), tmp / "results", "--tensorboard", tmp / "tb"))
    finally:
        sys.modules.pop("tensorboard", None)
        sys.modules.update(saved)
        if saved_torch is not None:
            sys.modules["torch.utils.tensorboard"] = saved_torch
    out = expect_error(run, "vtrbench[tensorboard]")
    if out.kind == "clear_error" and not _no_results(tmp / "results"):
        return Outcome("silently_wrong", "refused, but a result file was written")
    return out


def _ablate_and_report_beside(tmp: Path, ctx: Context) -> Outcome:
    """An ablation logging into its own results folder: one event folder per run, each with every epoch,
    and ``report`` on that folder still reads only the result files."""
    skip = _needs_tensorboard()
    if skip is not None:
        return skip
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = tmp / "results"
    run = run_cli(["ablate", "--cache", tiny_cache(ctx), *ABLATE, "--device", "cpu", "--quiet",
                   "--results", results, "--tensorboard", results])  # fmt: skip

    def check() -> str | None:
        ids = sorted(p.name[: -len(".json")] for p in results.rglob("*.json"))
        logged = sorted(p.name for p in results.iterdir() if p.is_dir() and p.name in ids)
        if len(ids) != 2 or logged != ids:
            return f"runs {ids}, event folders {logged}"
        for rid in ids:
            events = EventAccumulator(str(results / rid))
            events.Reload()
            if [e.step for e in events.Scalars("train/loss")] != [1, 2]:
                return f"{rid}: train/loss steps {[e.step for e in events.Scalars('train/loss')]}"
        rep = run_cli(["report", results])
        return None if rep.code == 0 else f"report beside the event files failed: {rep.text[-200:]}"

    return expect_ok(run, check)


# ------------------------------------------------------------------ result files with a damaged history


def _damaged(
    edit: Callable[[dict[str, Any]], None], command: str, *mention: str
) -> Callable[[Path, Context], Outcome]:
    """``edit`` one result's history; ``report`` / ``browse`` must refuse, naming the file and the key."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = _copy_results(tmp, ctx)
        victim = sorted(results.rglob("*.json"))[0]
        r = json.loads(victim.read_text())
        edit(r)
        victim.write_text(json.dumps(r))
        argv: list[Any] = [command, results]
        if command == "browse":
            argv += ["--cache", tiny_cache(ctx), "--output", tmp / "site"]
        return expect_error(run_cli(argv), victim.name, *mention)

    return run


def _copy_results(tmp: Path, ctx: Context) -> Path:
    import shutil

    results = tmp / "results"
    shutil.copytree(tiny_results(ctx), results)
    return results


def _nan_text(tmp: Path, ctx: Context) -> Outcome:
    """A literal NaN in the history (Python's json writes it; JSON has none): refused when read."""
    results = _copy_results(tmp, ctx)
    victim = sorted(results.rglob("*.json"))[0]
    r = json.loads(victim.read_text())
    r["history"][0]["loss"] = float("nan")
    victim.write_text(json.dumps(r))  # allow_nan: writes the bare token NaN
    return expect_error(run_cli(["report", results]), victim.name)


def _hostile_page(
    edit: Callable[[dict[str, Any]], Any], check_data: Callable[[dict[str, Any], Any], str | None]
) -> Callable[[Path, Context], Outcome]:
    """``edit`` every result's history to something a result file may hold; browse must write a page
    whose structure is unchanged (two script end tags), whose data round-trips, and which runs
    without a script error in headless Chromium where one is installed."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = _copy_results(tmp, ctx)
        token = None
        for p in results.rglob("*.json"):
            r = json.loads(p.read_text())
            token = edit(r)
            p.write_text(json.dumps(r))
        page = tmp / "site" / "index.html"
        built = run_cli(["browse", results, "--cache", tiny_cache(ctx), "--output", tmp / "site"])

        def check() -> str | None:
            from vtrbench.browse import page_data
            from vtrbench.browse.chromium import find_chromium, selftest

            text = page.read_text()
            if text.count("</script>") != 2:
                return f"the page holds {text.count('</script>')} script end tags (2 expected)"
            problem = check_data(page_data(page), token)
            if problem or find_chromium() is None:
                return problem
            got = selftest(page)
            if got["errors"] or got["csp_violations"] or not got["curves"]["points_inside"]:
                return f"in the browser: {got['errors']} {got['csp_violations']} {got['curves']}"
            return None

        return expect_ok(built, check)

    return run


HOSTILE_KEY = '</script><img src="http://example.invalid/x.png"><script>alert(1)</script>'


def _val_key(r: dict[str, Any]) -> str:
    for h in r["history"]:
        h["val"] = {HOSTILE_KEY: 1.0, "t2v/R@1": 10.0, "v2t/R@1": 5.0}
    return HOSTILE_KEY


def _key_survives(data: dict[str, Any], key: Any) -> str | None:
    runs = [run for s in data["systems"] for run in (s["history"] or [])]
    return (
        None if runs and all(key in run["val"] for run in runs) else "the hostile key did not survive as data"
    )


EXTREMES = [1e308, -1e308, 5e-324, -0.0]


def _extremes(r: dict[str, Any]) -> list[float]:
    r["history"] = [
        {"epoch": i + 1, "loss": v, "seconds": 0.0, "pairs_per_s": 0.0, "lr": abs(v), "logit_scale": 1e308}
        for i, v in enumerate(EXTREMES)
    ]
    return EXTREMES


def _values_survive(data: dict[str, Any], values: Any) -> str | None:
    runs = [run for s in data["systems"] for run in (s["history"] or [])]
    bad = [run["loss"] for run in runs if run["loss"] != values]
    return f"the page holds losses {bad[0]}, not {values}" if bad or not runs else None


def _long(r: dict[str, Any]) -> int:
    r["history"] = [
        {"epoch": i + 1, "loss": 1.0 / (i + 1), "seconds": 0.01, "pairs_per_s": 1.0, "lr": 1e-4}
        for i in range(20000)
    ]
    return 20000


def _all_epochs(data: dict[str, Any], n: Any) -> str | None:
    runs = [run for s in data["systems"] for run in (s["history"] or [])]
    return None if runs and all(len(run["epoch"]) == n for run in runs) else "epochs were lost"


def cases() -> list[Case]:
    return [
        Case(TB, "path-is-a-file", _refused(_file, "--tensorboard", "not a folder")),
        Case(TB, "parent-is-a-file", _refused(_under_file, "--tensorboard", "cannot write"), quick=False),
        Case(TB, "empty-path", _refused(lambda t: "", "--tensorboard"), quick=False),
        Case(TB, "nul-byte", _refused(lambda t: t / "a\x00b", "--tensorboard"), quick=False),
        Case(TB, "name-too-long", _refused(lambda t: t / ("x" * 300), "--tensorboard"), quick=False),
        Case(TB, "read-only-folder", _read_only_folder, quick=False),
        Case(TB, "run-folder-is-a-file", _run_folder_is_a_file, quick=False),
        Case(TB, "not-installed", _not_installed),
        Case(TB, "ablate-into-results-folder", _ablate_and_report_beside, quick=False),
        Case(
            HISTORY,
            "loss-is-a-string",
            _damaged(lambda r: r["history"][0].__setitem__("loss", "0.5"), "browse", "history[0].loss"),
        ),
        Case(
            HISTORY,
            "not-a-list",
            _damaged(lambda r: r.__setitem__("history", {"1": 0.5}), "report", "history"),
            quick=False,
        ),
        Case(
            HISTORY,
            "epochs-repeat",
            _damaged(lambda r: r["history"][1].__setitem__("epoch", 1), "report", "history[1].epoch"),
            quick=False,
        ),
        Case(
            HISTORY,
            "val-recall-above-100",
            _damaged(
                lambda r: r["history"][0].__setitem__("val", {"t2v/R@1": 250.0}), "browse", "val.t2v/R@1"
            ),
            quick=False,
        ),
        Case(HISTORY, "nan-loss", _nan_text, quick=False),
        Case(HISTORY, "val-key-breaks-out-of-script", _hostile_page(_val_key, _key_survives)),
        Case(HISTORY, "extreme-values", _hostile_page(_extremes, _values_survive), quick=False),
        Case(HISTORY, "20000-epochs", _hostile_page(_long, _all_epochs), quick=False),
    ]
