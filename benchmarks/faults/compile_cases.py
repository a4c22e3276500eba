"""Faults of ``--compile MODE`` (torch.compile of the training step) on train, ablate, tune, grid files.

- a bad mode (a typo, an empty value, torch's own spelling ``reduce_overhead``, a grid file's bool) is
  refused before any training with one line naming the option;
- where torch.compile cannot run, ``--compile`` fails before training with one line saying why and how
  to run without it. Simulated honestly: a child process whose ``CXX`` names a compiler that does not
  exist, so torch's own compiler search (which reads ``CXX``) finds none, exactly as on a machine
  without g++; eager training in that same environment must still work;
- ``--compile none`` spelled out is the run of leaving it out (same run id, found as done);
- ``--compile reduce-overhead --device cuda`` on a machine without CUDA: one line, nothing written;
- a compiled run is its own configuration (its own run id, ``config.compile`` in the result), and
  ``report`` keeps it apart from the eager run instead of pooling their seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_ok,
    expect_refused_before_training,
    run_cli,
    run_cli_subprocess,
    tiny_cache,
    train_argv,
)

AREA = "compile"
NO_CXX = {"CXX": "/nonexistent/bin/g++"}
GRID = 'heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n[train]\nepochs = 1\nbatch_size = 8\n'


def _results(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if not p.name.startswith(".")) if folder.exists() else []


def _bad_mode(command: str, value: str) -> Any:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        cache = tiny_cache(ctx)
        if command == "train":
            r = run_cli(train_argv(cache, results, "--compile", value))
        elif command == "ablate":
            r = run_cli(["ablate", "--cache", cache, "--heads", "meanp", "--losses", "infonce",
                         "--seeds", "0", "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--quiet",
                         "--results", results, "--compile", value])  # fmt: skip
        else:
            r = run_cli(["tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", 1,
                         "--max-epochs", 1, "--study", tmp / "s.db", "--device", "cpu", "--quiet",
                         "--compile", value])  # fmt: skip
            if (tmp / "s.db").exists():
                return Outcome("silently_wrong", "a study file was written for a refused --compile")
        return expect_refused_before_training(r, results, "--compile")

    return run


def _grid_value(text: str, *mentions: str) -> Any:
    def run(tmp: Path, ctx: Context) -> Outcome:
        grid = tmp / "grid.toml"
        grid.write_text(GRID + f"compile = {text}\n")
        results = tmp / "results"
        r = run_cli(["ablate", "--cache", tiny_cache(ctx), "--grid", grid, "--device", "cpu", "--quiet",
                     "--results", results])  # fmt: skip
        return expect_refused_before_training(r, results, "grid.toml", *mentions)

    return run


def _no_compiler(command: str) -> Any:
    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        cache = tiny_cache(ctx)
        if command == "train":
            argv = train_argv(cache, results, "--compile", "default")
        elif command == "ablate":
            grid = tmp / "grid.toml"
            grid.write_text(GRID + 'compile = "max-autotune"\n')
            argv = [
                "ablate",
                "--cache",
                cache,
                "--grid",
                grid,
                "--device",
                "cpu",
                "--quiet",
                "--results",
                results,
            ]
        else:
            argv = ["tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", 1,
                    "--max-epochs", 1, "--study", tmp / "s.db", "--device", "cpu", "--quiet",
                    "--compile", "reduce-overhead"]  # fmt: skip
        r = run_cli_subprocess(argv, cwd=tmp, env=NO_CXX)
        out = expect_refused_before_training(r, results, "C++ compiler", "--compile none")
        if out.kind != "clear_error":
            return out
        if command == "tune" and (tmp / "s.db").exists():
            return Outcome("silently_wrong", "a study file was written before the refusal")
        if command == "train":  # the way out the line names works in the same environment
            eager = run_cli_subprocess(train_argv(cache, results, "--compile", "none"), cwd=tmp, env=NO_CXX)
            if eager.code != 0 or len(_results(results)) != 1:
                return Outcome(
                    "silently_wrong", f"eager training failed without a compiler: {eager.text[-200:]}"
                )
        return out

    return run


def _cuda_absent(tmp: Path, ctx: Context) -> Outcome:
    import torch

    if torch.cuda.is_available():
        return Outcome("handled", "CUDA is present here: the case needs a machine without it")
    results = tmp / "results"
    argv = train_argv(tiny_cache(ctx), results, "--compile", "reduce-overhead")
    r = run_cli([("cuda" if a == "cpu" else a) for a in argv])  # train_argv's --device cpu -> cuda
    return expect_refused_before_training(r, results, "cuda")


def _none_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    cache = tiny_cache(ctx)
    first = run_cli(train_argv(cache, results))
    if first.code != 0:
        return Outcome("traceback" if first.traceback else "silently_wrong", first.text[-300:])
    again = run_cli(train_argv(cache, results, "--compile", "none"))

    def check() -> str | None:
        files = _results(results)
        if len(files) != 1:
            return f"{len(files)} result files for one configuration: {[f.name for f in files]}"
        if "skipped" not in again.text:
            return "--compile none was trained again instead of being found as done"
        if "compile" in json.loads(files[0].read_text())["config"]:
            return "an eager run records compile in its config (its run id moved from earlier releases)"
        return None

    return expect_ok(again, check)


def _compiled_is_its_own_run(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    cache = tiny_cache(ctx)
    eager = run_cli(train_argv(cache, results, "--seed", "0"))
    if eager.code != 0:
        return Outcome("traceback" if eager.traceback else "silently_wrong", eager.text[-300:])
    compiled = run_cli(train_argv(cache, results, "--seed", "0", "--compile", "default"))

    def check() -> str | None:
        files = _results(results)
        if len(files) != 2:
            return f"expected the eager and the compiled result, found {[f.name for f in files]}"
        modes = sorted(json.loads(f.read_text())["config"].get("compile", "none") for f in files)
        if modes != ["default", "none"]:
            return f"the results record compile modes {modes}"
        report = run_cli(["report", results, "--format", "csv"])
        if report.code != 0:
            return f"report refused the folder: {report.text[-200:]}"
        rows = [ln for ln in report.out.splitlines() if "compile" in ln]
        if not rows:
            return "report does not name compile anywhere: the eager and compiled rows are not told apart"
        return None

    return expect_ok(compiled, check)


def cases() -> list[Case]:
    return [
        Case(AREA, "train --compile fast", _bad_mode("train", "fast")),
        Case(AREA, "train --compile '' (empty)", _bad_mode("train", "")),
        Case(
            AREA,
            "train --compile reduce_overhead (torch's underscore)",
            _bad_mode("train", "reduce_overhead"),
        ),
        Case(AREA, "ablate --compile NONE", _bad_mode("ablate", "NONE")),
        Case(AREA, "tune --compile max_autotune", _bad_mode("tune", "max_autotune")),
        Case(AREA, "grid compile = true", _grid_value("true", "compile")),
        Case(AREA, 'grid compile = "fast"', _grid_value('"fast"', "compile")),
        Case(AREA, "grid compile = 1", _grid_value("1", "compile")),
        Case(AREA, "train --compile default without a C++ compiler", _no_compiler("train"), quick=False),
        Case(AREA, "ablate grid compile without a C++ compiler", _no_compiler("ablate"), quick=False),
        Case(AREA, "tune --compile without a C++ compiler", _no_compiler("tune"), quick=False),
        Case(AREA, "--compile reduce-overhead --device cuda without CUDA", _cuda_absent),
        Case(AREA, "--compile none spelled out: same run id", _none_spelled_out),
        Case(AREA, "compiled run is its own configuration in report", _compiled_is_its_own_run, quick=False),
    ]
