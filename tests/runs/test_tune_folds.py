"""``vtrbench tune --folds K``: video-disjoint folds fixed by the seed, the objective as the mean over fold
models (the pruner on the running mean), the too-small-validation rule, and validation beside test.

Oracles are written out here (round-robin sizes, the mean, Spearman's formula without ties); tuning
runs are tiny (meanp, 1 epoch, 1-2 trials on the 12-video fixture cache).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

SPACE = """
[train]
epochs = {low = 1, high = 1}
batch_size = {choices = [4]}
"""


def _args(cache: Path, study: Path, tmp_path: Path, *extra: Any, trials: int = 2) -> list[Any]:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return [
        "tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", trials,
        "--max-epochs", 1, "--study", study, "--space", space, "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def _fake_split(n_videos: int, captions: int = 2) -> Any:
    """Split data with ``captions`` captions per video, each feature holding its video's number."""
    import numpy as np

    from vtrbench.runs.data import SplitData

    tv = torch.arange(n_videos).repeat_interleave(captions)
    video = {"frames": torch.arange(n_videos, dtype=torch.float32)[:, None, None].expand(n_videos, 2, 3)}
    text = {"tokens": tv.float()[:, None, None].expand(len(tv), 1, 3), "eot": torch.zeros(len(tv))}
    return SplitData("train", video, text, tv, np.arange(100, 100 + n_videos), np.arange(len(tv)))


@pytest.mark.parametrize(("n", "k"), [(12, 3), (13, 3), (7, 2), (192, 4)])
def test_folds_partition_the_videos_round_robin_and_keep_captions_with_their_video(n: int, k: int) -> None:
    from vtrbench.runs.tune.folds import fold_parts

    parts = fold_parts(_fake_split(n), k, seed=5)
    val_rows = [set(val.video_rows.tolist()) for _, val in parts]
    assert sorted(len(v) for v in val_rows) == sorted([n // k + (f < n % k) for f in range(k)])
    assert set().union(*val_rows) == set(range(100, 100 + n))  # every video validates exactly once
    assert sum(len(v) for v in val_rows) == n
    for (train, val), rows in zip(parts, val_rows, strict=True):
        assert not rows & set(train.video_rows.tolist())  # video-disjoint
        for part in (train, val):  # each caption sits with its own video (feature = video number)
            got = part.text["tokens"][:, 0, 0]
            assert torch.equal(got, part.video["frames"][part.text_video, 0, 0])
            assert part.n_texts == 2 * part.n_videos


def test_folds_are_fixed_by_the_seed_alone() -> None:
    from vtrbench.runs.tune.folds import fold_of

    torch.manual_seed(1)
    a = fold_of(50, 4, seed=0)
    torch.manual_seed(2)  # the global RNG must not matter
    assert torch.equal(a, fold_of(50, 4, seed=0))
    assert not torch.equal(a, fold_of(50, 4, seed=1))


def test_objective_running_mean_and_spread_match_the_formulas() -> None:
    from vtrbench.runs.tune.folds import objective_of, running_mean, spread

    val = {"t2v/R@1": 12.5, "v2t/R@1": 25.0, "RSum": 180.0}
    assert objective_of(val, "r1") == 37.5 and objective_of(val, "rsum") == 180.0
    assert running_mean([10.0, 20.0], 60.0) == pytest.approx(30.0)
    assert running_mean([], 7.0) == 7.0
    assert spread([1.0, 2.0, 4.0]) == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    assert spread([3.0]) is None


def test_spearman_matches_its_formula_and_handles_ties() -> None:
    from vtrbench.runs.tune.valtest import spearman

    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]
    d2 = sum((x - y) ** 2 for x, y in zip([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], strict=True))
    assert spearman(a, b) == pytest.approx(1 - 6 * d2 / (5 * (25 - 1)))
    assert spearman(a, [-x for x in a]) == pytest.approx(-1.0)
    # ties: Pearson on average ranks; b's ranks are (1.5, 1.5, 3)
    assert spearman([1.0, 2.0, 3.0], [5.0, 5.0, 9.0]) == pytest.approx(
        statistics.correlation([1, 2, 3], [1.5, 1.5, 3])
    )
    assert spearman([1.0, 2.0], [1.0, 2.0]) is None and spearman([1.0, 1.0, 1.0], a[:3]) is None


class _Trial:
    """What train_trial asks of an Optuna trial: report(), should_prune(), user attributes."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []
        self.attrs: dict[str, Any] = {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value


def test_a_trial_reports_the_running_mean_over_folds_and_returns_their_mean(
    synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vtrbench.cache import FeatureCache
    from vtrbench.runs import train as train_mod
    from vtrbench.runs.tune.plan import TuneSpec, plan
    from vtrbench.runs.tune.trial import train_trial

    seen: list[set[int]] = []

    def fake_fit(head: Any, train: Any, config: Any, seed: int, *, val: Any, on_epoch: Any, **kw: Any) -> Any:
        seen.append(set(val.video_rows.tolist()))
        f = len(seen)  # fold f (1-based) scores rsum 10 f + epoch, r1 f
        history = []
        for e in (1, 2):
            entry = {"epoch": e, "val": {"t2v/R@1": f, "v2t/R@1": 0.0, "RSum": 10.0 * f + e}}
            on_epoch(entry)
            history.append(entry)
        return history

    monkeypatch.setattr(train_mod, "fit", fake_fit)
    spec = TuneSpec(
        cache_path=synth_cache, heads=("meanp",), losses=("infonce",), trials=1, max_epochs=2,
        storage=f"sqlite:///{tmp_path / 's.db'}", val_fraction=None, folds=2, objective="rsum",
    )  # fmt: skip
    p = plan(spec)
    trial = _Trial()
    with FeatureCache(synth_cache) as cache:
        value = train_trial(p, p.cells[0], {"epochs": 2, "batch_size": 4}, cache, {}, trial)
    finals = [12.0, 22.0]
    assert value == pytest.approx(statistics.fmean(finals))
    # fold 0 at steps 1, 2: its own values; fold 1 at steps 3, 4: mean of fold 0's final and its own
    assert trial.reports == [(1, 11.0), (2, 12.0), (3, (12.0 + 21.0) / 2), (4, (12.0 + 22.0) / 2)]
    assert trial.attrs["fold_values"] == finals
    assert trial.attrs["fold_objectives"] == {"rsum": finals, "r1": [1.0, 2.0]}
    assert trial.attrs["epochs_run"] == 4
    assert len(seen) == 2 and not seen[0] & seen[1]


def test_tune_folds_records_folds_and_each_trial_is_the_mean_of_its_folds(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    from vtrbench.runs.tune.status import read_cells

    study = tmp_path / "f.db"
    r = run_cli(*_args(synth_cache, study, tmp_path, "--folds", 2))
    assert r.code == 0, r.text
    assert "fold spread" in r.out
    (cell,) = read_cells(f"sqlite:///{study}")
    v = cell.identity["validation"]
    assert v["folds"] == 2 and v["seed"] == 0 and v["by"] == "video" and len(v["sizes"]) == 2
    assert "mean over 2 video-disjoint folds" in cell.identity["objective"]
    import optuna

    s = optuna.load_study(study_name="vtrbench:meanp+infonce", storage=f"sqlite:///{study}")
    done = [t for t in s.get_trials() if t.state.name == "COMPLETE"]
    assert done
    for t in done:
        folds = t.user_attrs["fold_values"]
        assert len(folds) == 2 and t.value == pytest.approx(sum(folds) / 2)
    record = cell.record(f"sqlite:///{study}")
    assert record["best_fold_values"] == cell.best["fold_values"]


def test_two_workers_validate_on_the_same_folds(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folds are a function of (train videos, K, seed): a worker of two sees what one worker does."""
    from vtrbench.runs.tune import trial as trial_mod

    seen: list[list[list[int]]] = []
    real = trial_mod.fold_parts

    def recording(train: Any, folds: int, seed: int) -> Any:
        parts = real(train, folds, seed)
        seen.append([sorted(val.video_rows.tolist()) for _, val in parts])
        return parts

    monkeypatch.setattr(trial_mod, "fold_parts", recording)
    for shard in ((), ("--shard", "1/2")):  # alone, then worker 2 of 2
        study = tmp_path / f"{len(seen)}.db"
        r = run_cli(*_args(synth_cache, study, tmp_path, "--folds", 3, *shard, trials=1))
        assert r.code == 0, r.text
    assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--folds", 1), "--folds must be an integer >= 2"),
        (("--folds", 0), "--folds must be an integer >= 2"),
        (("--folds", 10**6), "each fold must validate on at least 2"),
        (("--folds", 2, "--val-fraction", 0.25), "give --folds or --val-fraction, not both"),
        (("--folds", 2, "--val-split", "train"), "give --folds or --val-split, not both"),
        (("--val-fraction", 1e-9), "validates on 1 usable video(s)"),
        (("--objective", "map"), "Invalid value for '--objective'"),
    ],
)
def test_bad_folds_and_too_small_validation_are_refused_before_training(
    run_cli: Any,
    synth_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple,
    message: str,
) -> None:
    from vtrbench.runs import train as train_mod

    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("training started"))
    study = tmp_path / "x.db"
    r = run_cli(*_args(synth_cache, study, tmp_path, *extra))
    assert r.code != 0 and message in r.text, r.text
    assert "Traceback" not in r.text and not study.exists()


def test_a_small_validation_part_is_warned_about(synth_cache: Path, tmp_path: Path) -> None:
    from vtrbench.cache import FeatureCache
    from vtrbench.runs.tune.plan import TuneSpec, plan, sampler_notes

    with FeatureCache(synth_cache) as c:
        n_train = len(c.split_rows(str(c.attrs["default_train"]))[0])
    base = TuneSpec(
        cache_path=synth_cache, heads=("meanp",), losses=("infonce",), trials=2, max_epochs=1,
        storage=f"sqlite:///{tmp_path / 's.db'}", val_fraction=None, folds=2,
    )  # fmt: skip
    assert n_train // 2 <= 10  # the fixture's folds are small: the warning is due
    text = " ".join(t for kind, t in sampler_notes(plan(base)) if kind == "warning")
    assert "--folds 2 (smallest fold) validates on only" in text
    one = replace(base, folds=None, val_fraction=0.25)
    assert "--val-fraction 0.25" in " ".join(t for _, t in sampler_notes(plan(one)))


def test_validation_beside_test_in_the_report_notes() -> None:
    from vtrbench.runs.tune.folds import OBJECTIVES
    from vtrbench.runs.tune.valtest import val_test_notes, val_test_rows

    def result(cell: str, val: float, folds: list[float], rsum: float) -> dict[str, Any]:
        tuned = {"study": "s.db", "cell": cell, "best_value": val, "objective": OBJECTIVES["rsum"] + " ...",
                 "best_fold_values": folds}  # fmt: skip
        return {"tuned": tuned, "metrics": {"raw": {"RSum": rsum, "t2v": {"R@1": 1.0}, "v2t": {"R@1": 1.0}}}}

    results = [
        result("a+x", 100.0, [90.0, 110.0], 80.0),
        result("a+x", 100.0, [90.0, 110.0], 90.0),  # a second seed
        result("b+x", 120.0, [120.0, 120.0], 70.0),
        result("c+x", 140.0, [130.0, 150.0], 95.0),
    ]
    rows = val_test_rows(results)
    assert [(r.cell, r.test, r.seeds) for r in rows] == [("a+x", 85.0, 2), ("b+x", 70.0, 1), ("c+x", 95.0, 1)]
    assert rows[0].fold_std == pytest.approx(statistics.stdev([90.0, 110.0]))
    (note,) = val_test_notes(results)
    # validation ranks a < b < c, test b < a < c: d = (1, 1, 0) -> rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert "Spearman ρ = 0.50 over 3 cells" in note and "a+x 100.00 ±14.14 over 2 folds vs 85.00" in note


@pytest.mark.parametrize(
    ("values", "warned"), [((200.0, 200.0, 200.0), True), ((200.0, 199.5, 200.0), False)]
)
def test_status_warns_when_every_trial_ties(
    run_cli: Any, tmp_path: Path, values: tuple, warned: bool
) -> None:
    """Issue 28: one validation video scores every trial 200, and "best (#0)" is only the first trial."""
    import optuna

    from vtrbench.runs.tune.notes import sampler_text
    from vtrbench.runs.tune.storage import ATTR

    path = tmp_path / "s.db"
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="vtrbench:meanp+infonce")
    identity = {"cell": "meanp+infonce", "sampler": sampler_text(1), "max_epochs": 2,
                "space": {"epochs": {"low": 1, "high": 2}}, "validation": {"fraction": 0.1}, "pruner": "none",
                "objective": "o", "seed": 0}  # fmt: skip
    study.set_user_attr(ATTR, identity)
    study.set_user_attr("trials", len(values))
    dists = {"epochs": optuna.distributions.IntDistribution(1, 2)}
    for v in values:
        study.add_trial(optuna.trial.create_trial(params={"epochs": 1}, distributions=dists, value=v))
    r = run_cli("tune", "--status", path)
    assert r.code == 0, r.text
    assert ("the objective did not separate any trial" in r.out) is warned
    if warned:
        assert f"all {len(values)} complete trials scored 200.00" in r.out


def test_ablate_tuned_of_a_folded_study_shows_validation_beside_test(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    import json

    study, results = tmp_path / "s.db", tmp_path / "res"
    assert run_cli(*_args(synth_cache, study, tmp_path, "--folds", 2, "--objective", "r1")).code == 0
    common = ("--cache", synth_cache, "--results", results, "--device", "cpu", "--quiet", "--qb-bank", "8")
    r = run_cli("ablate", *common, "--tuned", study, "--seeds", "0,1")
    assert r.code == 0, r.text
    runs = [json.loads(p.read_text()) for p in sorted((results / "synthetic").glob("*.json"))]
    assert len(runs) == 2
    rec = runs[0]["tuned"]
    folds = rec["best_fold_values"]
    assert len(folds) == 2 and rec["best_value"] == pytest.approx(sum(folds) / 2)
    # the test value of the same objective (t2v R@1 + v2t R@1, raw), mean over the two seeds, here
    # (r1: on the fixture's folds of 4 videos RSum saturates at 450 for every trial)
    test = sum(float(x["metrics"]["raw"][d]["R@1"]) for x in runs for d in ("t2v", "v2t")) / 2
    r = run_cli("tune", "--status", study, "--results", results)
    assert r.code == 0, r.text
    row = next(line for line in r.out.splitlines() if "meanp+infonce" in line and "(2 folds)" in line)
    assert f"{rec['best_value']:.2f}" in row and f"{test:.2f}" in row and "±" in row
    assert "n/a (fewer than 3 cells" in r.out  # one cell: no rank correlation
    r = run_cli("report", results / "synthetic", "--format", "md")
    assert r.code == 0, r.text
    assert f"meanp+infonce {rec['best_value']:.2f} ±" in r.out and f"vs {test:.2f}" in r.out
    assert "validation: 2 video-disjoint folds of the train videos (seed 0)" in r.out


def test_an_r1_study_is_resumed_only_with_its_objective(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    """A study made with R@1's objective (every study before --objective) is not silently continued
    with RSum: the rerun is refused naming the objective, and resumes with --objective r1."""
    study = tmp_path / "s.db"
    base = _args(synth_cache, study, tmp_path, "--val-fraction", 0.25, trials=1)
    assert run_cli(*base, "--objective", "r1").code == 0
    r = run_cli(*base)
    assert r.code != 0 and "another objective" in r.text and "--objective it was made with" in r.text
    r = run_cli(*base, "--objective", "r1")
    assert r.code == 0 and "0 trial(s) run" in r.err, r.text
