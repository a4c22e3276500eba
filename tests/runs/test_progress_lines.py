"""What a log shows of train, ablate and tune (issue 30): plain progress lines when the output is not a
terminal, and train's metrics with every name and number whole.

The CLI runs in-process with stdout and stderr captured (not a terminal). Only contents are checked,
never timing: ``VTRBENCH_PROGRESS_EVERY=0`` prints a line at every update, and ``1e9`` only the lines
that are always printed (a task's first and last), whatever the machine's speed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vtrbench.progress import ENV_EVERY

LINE = re.compile(r"^\[(?P<name>[^\]]+)\] (?P<done>\d+)/(?P<total>\d+)(?: (?P<unit>\w+))? \((?P<pct>\d+)%\)")


def progress_lines(err: str, name: str) -> list[re.Match[str]]:
    return [m for line in err.splitlines() if (m := LINE.match(line)) and m["name"] == name]


def train(run_cli: Any, cache: Path, results: Path, *extra: Any) -> Any:
    r = run_cli(
        "train", "--cache", cache, "--head", "meanp", "--loss", "infonce", "--epochs", 2,
        "--batch-size", 8, "--device", "cpu", "--results", results, *extra,
    )  # fmt: skip
    assert r.code == 0, r.text[-2000:]
    return r


def test_a_piped_train_prints_a_line_per_step_and_every_number_whole(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_EVERY, "0")
    r = train(run_cli, synth_cache, tmp_path)
    steps = progress_lines(r.err, "meanp/infonce s0 train")
    total = int(steps[0]["total"])
    # 0 prints every update: the first line, then one per optimiser step, the last at 100 %
    assert [int(m["done"]) for m in steps] == list(range(total + 1)) and total > 1
    assert {m["unit"] for m in steps} == {"steps"} and steps[-1]["pct"] == "100"
    assert all("ETA" in m.string for m in steps[1:-1]) and "epoch 2/2 loss" in steps[-1].string
    evals = progress_lines(r.err, "meanp/infonce s0 eval")
    assert (
        evals[0]["done"] == "0" and evals[-1]["done"] == evals[-1]["total"] and evals[-1]["unit"] == "queries"
    )
    assert "\x1b[" not in r.text and "━" not in r.text  # no bar, no escape codes in a log
    # stdout: the metrics table with every post-processing name and every number whole
    result = json.loads(next(tmp_path.rglob("*.json")).read_text())
    rows = {line.split("|")[1].strip(): line for line in r.out.splitlines() if line.startswith("| ")}
    for post, m in result["metrics"].items():
        name = post + (" (transductive)" if result["transductive"][post] else "")
        cells = [c.strip() for c in rows[name].strip("|").split("|")][1:]
        keys = [(d, k) for d in ("t2v", "v2t") for k in ("R@1", "R@5", "R@10", "MdR", "MnR")]
        assert cells == [f"{m[d][k]:.1f}" for d, k in keys] + [f"{m['RSum']:.1f}"], post
    assert "…" not in r.out
    assert f"result: {next(tmp_path.rglob('*.json'))}" in r.out.splitlines()


def test_a_long_interval_prints_only_the_first_and_the_last_line(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_EVERY, "1e9")
    r = train(run_cli, synth_cache, tmp_path)
    steps = progress_lines(r.err, "meanp/infonce s0 train")
    assert [m["done"] for m in steps] == ["0", steps[0]["total"]]
    assert len(progress_lines(r.err, "meanp/infonce s0 eval")) == 2
    # --quiet: no progress at all
    quiet = train(run_cli, synth_cache, tmp_path / "q", "--quiet")
    assert not [line for line in quiet.err.splitlines() if LINE.match(line)]


def test_ablate_prints_the_grid_and_the_runs_inside_it(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["ablate", "--cache", synth_cache, "--heads", "meanp", "--losses", "infonce,dsl", "--seeds", "0",
            "--epochs", 1, "--batch-size", 8, "--device", "cpu"]  # fmt: skip
    monkeypatch.setenv(ENV_EVERY, "1e9")
    r = run_cli(*argv, "--results", tmp_path / "a")
    assert r.code == 0, r.text[-2000:]
    lines = [line for line in r.err.splitlines() if LINE.match(line)]
    # the grid's first and last line only: a run inside the grid prints none of its own
    assert [LINE.match(x)["name"] for x in lines] == ["grid", "grid"]
    assert lines[0].startswith("[grid] 0/2 runs (0%)") and lines[1].startswith("[grid] 2/2 runs (100%)")
    monkeypatch.setenv(ENV_EVERY, "0")
    r = run_cli(*argv, "--results", tmp_path / "b")
    assert r.code == 0, r.text[-2000:]
    for run in ("meanp/infonce s0", "meanp/dsl s0"):
        steps = progress_lines(r.err, f"{run} train")
        assert steps and steps[0]["done"] == "1" and steps[-1]["done"] == steps[-1]["total"], run
    grid = progress_lines(r.err, "grid")
    assert [m["done"] for m in grid if m["done"] != "0"][-1] == "2"
    assert any(m.string.endswith("· meanp/dsl seed 0") for m in grid)  # which run is running


def test_tune_prints_its_trials_while_it_runs(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("optuna")
    space = tmp_path / "space.toml"
    space.write_text("[train]\nepochs = {low = 1, high = 2}\nbatch_size = {choices = [4, 8]}\n")
    monkeypatch.setenv(ENV_EVERY, "0")
    r = run_cli(
        "tune", "--cache", synth_cache, "--heads", "meanp", "--losses", "infonce", "--trials", 2,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", tmp_path / "s.db", "--space", space,
        "--device", "cpu",
    )  # fmt: skip
    assert r.code == 0, r.text[-2000:]
    names = {m["name"] for line in r.err.splitlines() if (m := LINE.match(line))}
    cell = next(n for n in names if "trial" not in n)
    trials = progress_lines(r.err, cell)
    assert trials[0]["done"] == "0" and trials[-1]["done"] == "2" and trials[-1]["unit"] == "trials"
    # each trial's training steps show while it runs, under the trial's number
    assert {"meanp/infonce trial 0 train", "meanp/infonce trial 1 train"} <= names
