"""``vtrbench tune``: spaces, the test split never read, exact budgets across resumes, kills and two
workers, one-line refusals before any training, ``ablate --tuned`` and the report's tuned rows.

Tuning runs here are tiny (meanp, <= 2 epochs, 2-4 trials on the 12-video fixture cache).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
# one cell, epochs <= 2 and small batches: a trial takes a fraction of a second
SMALL_SPACE = """
[train]
epochs = {low = 1, high = 2}
batch_size = {choices = [4, 8]}
"""


def _space(tmp_path: Path, text: str = SMALL_SPACE) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def _tune_args(cache: Path, study: Path, space: Path, *extra: Any, trials: int = 2) -> list[Any]:
    return [
        "tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", trials,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", study, "--space", space,
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def _states(study: Path) -> dict[str, int]:
    with sqlite3.connect(study) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall()
    return {str(state): int(n) for state, n in rows}


def _has_trials(study: Path) -> bool:
    try:
        with sqlite3.connect(study) as db:
            return bool(db.execute("SELECT 1 FROM trials").fetchall())
    except sqlite3.Error:
        return False


def _finished(study: Path) -> int:
    s = _states(study)
    return s.get("COMPLETE", 0) + s.get("PRUNED", 0)


def _best(study: Path) -> dict[str, Any]:
    from vtrbench.runs.tune.status import read_cells

    (cell,) = read_cells(f"sqlite:///{study}")
    assert cell.best is not None
    return cell.best


# ---------------------------------------------------------------- spaces (no optuna needed)


def test_every_registered_head_and_loss_has_a_sampleable_space() -> None:
    from vtrbench.heads.base import list_heads
    from vtrbench.losses.base import list_losses
    from vtrbench.runs.tune.space import cell_space

    # heads x one loss and one head x losses: every bound is checked by building the head or loss
    cells = [(h, "infonce") for h in list_heads() if h != "zeroshot"] + [
        ("meanp", loss) for loss in list_losses()
    ]
    for head, loss in cells:
        space = cell_space(head, loss, max_epochs=7, embed_dim=64)
        assert {"lr", "weight_decay", "epochs", "warmup", "batch_size"} <= set(space)
        assert space["epochs"].high == 7 and space["lr"].log
    assert "loss.temperature" in cell_space("meanp", "dsl", max_epochs=3, embed_dim=64)
    assert "head.heads" in cell_space("xpool", "infonce", max_epochs=3, embed_dim=64)


def test_edge_of_space_flags() -> None:
    from vtrbench.runs.tune.space import parse_param

    lr = parse_param("lr", {"low": 1e-5, "high": 1e-1, "log": True}, where="t", max_epochs=5)
    assert lr.on_edge(1e-1) == "upper" and lr.on_edge(1.05e-5) == "lower" and lr.on_edge(1e-3) is None
    ep = parse_param("epochs", {"low": 1, "high": "max_epochs"}, where="t", max_epochs=5)
    assert (ep.kind, ep.high, ep.on_edge(5), ep.on_edge(3)) == ("int", 5, "upper", None)
    bs = parse_param("batch_size", {"choices": [16, 64, 256]}, where="t", max_epochs=5)
    assert bs.on_edge(256) == "upper" and bs.on_edge(64) is None


def test_heads_and_losses_describe_their_space(run_cli: Any) -> None:
    r = run_cli("heads", "describe", "camoe", "--max-epochs", "12")
    assert r.code == 0 and "head.layers" in r.out and "[1, 12] int" in r.out and "lr" in r.out
    r = run_cli("losses", "describe", "dsl")
    assert r.code == 0 and "loss.temperature" in r.out and "log" in r.out
    r = run_cli("heads")  # still lists
    assert r.code == 0 and "camoe" in r.out.split()


def test_without_optuna_one_line_names_the_extra(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    r = run_cli("tune", "--cache", synth_cache, "--study", tmp_path / "s.db")
    assert r.code == 2 and "pip install 'vtrbench[tune]'" in r.err and len(r.err.strip().splitlines()) == 1


# ---------------------------------------------------------------- refusals before any training


@pytest.fixture
def no_training(monkeypatch) -> None:
    import vtrbench.runs.train

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("training started although the run should have been refused")

    monkeypatch.setattr(vtrbench.runs.train, "fit", refuse)


@pytest.mark.parametrize(
    "space, extra, expected",
    [
        ("[train\nlr = 1", (), "invalid TOML"),
        ("[train]\nlearning_rate = {low = 1e-4, high = 1e-2}", (), "unknown parameter 'learning_rate'"),
        ("[head.meanp]\nadaptr = {choices = [true, false]}", (), "unknown parameter 'adaptr'"),
        ("[train]\nlr = {low = 1e-2, high = 1e-4}", (), "empty range"),
        ("[train]\nlr = {low = 0.0, high = 1e-2, log = true}", (), "log range needs low > 0"),
        ("[train]\nbatch_size = {choices = [1, 8]}", (), "'batch_size'"),
        ("[train]\nepochs = {low = 1, high = 9}", (), "exceed --max-epochs"),
        ("", ("--heads", "xpool", "--losses", "infonce"), None),  # valid: control for the next one
    ],
)
def test_bad_spaces_are_one_line_errors_before_training(
    run_cli: Any,
    synth_cache: Path,
    tmp_path: Path,
    no_training: None,
    space: str,
    extra: tuple,
    expected: str | None,
) -> None:
    if expected is None:
        from vtrbench.runs.tune.space import cell_space

        with pytest.raises(Exception, match="refuses heads=3"):
            cell_space(
                "xpool",
                "infonce",
                max_epochs=2,
                embed_dim=64,
                override={"head": {"xpool": {"heads": {"choices": [1, 3]}}}},
            )
        return
    pytest.importorskip("optuna")
    study = tmp_path / "s.db"
    r = run_cli(*_tune_args(synth_cache, study, _space(tmp_path, space), *extra))
    assert r.code == 2, r.text
    assert expected in r.err and r.err.startswith("error:") and len(r.err.strip().splitlines()) == 1, r.err
    assert not study.exists()  # refused before the storage was opened


def test_unreachable_storage_and_test_split_sources_are_refused(
    run_cli: Any, synth_cache: Path, tmp_path: Path, no_training: None
) -> None:
    pytest.importorskip("optuna")
    space = _space(tmp_path)
    base = _tune_args(synth_cache, tmp_path / "s.db", space)
    i = base.index("--study")
    for storage, words in (
        (f"sqlite:///{tmp_path}/no/such/folder/s.db", "cannot open the study storage"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open the study storage"),
    ):
        r = run_cli(*base[:i], "--storage", storage, *base[i + 2 :])
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, r.err
    for extra, words in (
        (("--train-split", "test"), "is the test split"),
        (("--val-split", "test", "--val-fraction", "0.25"), "not both"),
    ):
        r = run_cli(*base, *extra)
        assert r.code == 2 and words in r.err, r.err
    args = [a for a in base if a not in ("--val-fraction", 0.25)]
    r = run_cli(*args, "--val-split", "test")
    assert r.code == 2 and "is the test split" in r.err and "never reads it" in r.err, r.err


# ---------------------------------------------------------------- the test split is never read


def test_tuning_never_reads_the_test_split(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch
) -> None:
    pytest.importorskip("optuna")
    import h5py

    from vtrbench.cache import FeatureCache, reader

    cache = tmp_path / "poisoned.h5"
    shutil.copy(synth_cache, cache)
    with h5py.File(cache, "r+") as f:
        test_videos = np.sort(f["splits/test/video_rows"][:])
        test_texts = np.sort(f["splits/test/text_rows"][:])
        for name in ("frames",):
            data = f["videos"][name][:]
            data[test_videos] = np.nan
            f["videos"][name][...] = data
        data = f["texts/tokens"][:]
        data[test_texts] = np.nan
        f["texts/tokens"][...] = data
    # control: the poison is effective: anything that reads the test split fails on it
    r = run_cli("train", "--cache", cache, "--head", "meanp", "--loss", "infonce", "--epochs", "1",
                "--results", tmp_path / "res", "--device", "cpu", "--quiet")  # fmt: skip
    assert r.code != 0 and "non-finite" in r.text

    touched: list[tuple[str, str, set[int]]] = []
    original = FeatureCache.read_rows

    def counting(self: Any, group: str, field: str, rows: Any) -> Any:
        touched.append((group, field, {int(x) for x in np.asarray(rows).ravel()}))
        return original(self, group, field, rows)

    monkeypatch.setattr(reader.FeatureCache, "read_rows", counting)
    study = tmp_path / "s.db"
    r = run_cli(*_tune_args(cache, study, _space(tmp_path), trials=2))
    assert r.code == 0, r.text
    assert _finished(study) == 2
    assert touched, "the access counter saw no reads"
    for group, field, rows in touched:
        bad = rows & set(map(int, test_videos if group == "videos" else test_texts))
        assert not bad, f"tuning read test rows {sorted(bad)[:5]} of /{group}/{field}"


# ---------------------------------------------------------------- budgets, resumes, identity


def test_rerun_continues_to_exactly_n_and_refuses_another_space(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    study, space = tmp_path / "s.db", _space(tmp_path)
    assert run_cli(*_tune_args(synth_cache, study, space, trials=2)).code == 0
    assert _finished(study) == 2
    r = run_cli(*_tune_args(synth_cache, study, space, trials=3))
    assert r.code == 0 and _finished(study) == 3 and "1 trial(s) run" in r.err
    r = run_cli(*_tune_args(synth_cache, study, space, trials=3))
    assert r.code == 0 and _finished(study) == 3 and "0 trial(s) run" in r.err
    r = run_cli("tune", "--status", study)
    assert r.code == 0 and "meanp+infonce" in r.out and "3/3" in r.out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        r = run_cli("tune", "--status", study, "--plot", tmp_path / "plots")
        assert r.code == 0 and (tmp_path / "plots" / "meanp+infonce.history.png").stat().st_size > 0, r.text

    other = _space(tmp_path, SMALL_SPACE + "warmup = {low = 0.0, high = 0.5}\n")
    r = run_cli(*_tune_args(synth_cache, study, other, trials=3))
    assert r.code == 2 and "another space" in r.err and "--overwrite" in r.err, r.err
    r = run_cli(*_tune_args(synth_cache, study, space, "--seed", "1", trials=3))
    assert r.code == 2 and "another seed" in r.err, r.err
    r = run_cli(*_tune_args(synth_cache, study, other, "--overwrite", trials=1))
    assert r.code == 0 and _finished(study) == 1


def _worker(cache: Path, study: Path, space: Path, trials: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [str(a) for a in _tune_args(cache, study, space, "--heartbeat", "1", trials=trials)]
    return subprocess.Popen(
        [sys.executable, "-m", "vtrbench", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_two_workers_on_one_study_finish_exactly_n(run_cli: Any, synth_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    study, space = tmp_path / "s.db", _space(tmp_path)
    # worker 1 in a child process, worker 2 in this one, at the same time on one SQLite file
    child = _worker(synth_cache, study, space, 6)
    deadline = time.time() + 120
    while child.poll() is None and time.time() < deadline and not (study.exists() and _has_trials(study)):
        time.sleep(0.05)  # the child has started trials: from here on the two overlap
    r = run_cli(*_tune_args(synth_cache, study, space, "--heartbeat", "1", trials=6))
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err.decode()
    assert r.code == 0, r.text
    assert _finished(study) == 6
    ran = [int(re.search(r"(\d+) trial\(s\) run", text).group(1)) for text in (err.decode(), r.err)]
    assert sum(ran) >= 6 and min(ran) >= 1, ran  # both workers trained; extra = budget races
    states = _states(study)
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}  # a budget race is recorded as a failed trial


def test_kill_9_mid_trial_then_rerun_gives_n_and_the_uninterrupted_best(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    space = _space(tmp_path, SMALL_SPACE.replace("choices = [4, 8]", "choices = [2, 4]"))
    killed = tmp_path / "killed.db"
    w = _worker(synth_cache, killed, space, 3)
    deadline = time.time() + 120
    caught = False
    while time.time() < deadline and w.poll() is None:
        if killed.exists():
            try:
                with sqlite3.connect(killed) as db:
                    running = db.execute(
                        "SELECT number FROM trials WHERE state = 'RUNNING' AND number >= 1"
                    ).fetchall()
            except sqlite3.Error:
                running = []
            if running:
                os.kill(w.pid, signal.SIGKILL)
                caught = True
                break
        time.sleep(0.02)
    w.wait(timeout=30)
    if not caught:
        pytest.skip("the worker finished before a trial could be caught running (machine too fast)")
    assert _states(killed).get("RUNNING") == 1
    r = run_cli(*_tune_args(synth_cache, killed, space, "--heartbeat", "1", trials=3))
    assert r.code == 0, r.text
    states = _states(killed)
    assert _finished(killed) == 3 and states.get("FAIL") == 1 and "RUNNING" not in states

    clean = tmp_path / "clean.db"
    assert run_cli(*_tune_args(synth_cache, clean, space, trials=3)).code == 0
    a, b = _best(killed), _best(clean)
    assert a["params"] == b["params"] and a["value"] == b["value"]


# ---------------------------------------------------------------- small budgets: said, scaled, plotted


def test_startup_trials_scale_with_the_budget() -> None:
    from vtrbench import defaults
    from vtrbench.runs.tune.plan import startup_trials

    got = {t: startup_trials(t) for t in (1, 2, 4, 7, 8, 20, 39, 40, 41, 1000)}
    assert got == {1: 1, 2: 1, 4: 1, 7: 1, 8: 2, 20: 5, 39: 9, 40: 10, 41: 10, 1000: 10}
    assert startup_trials(20) == 5  # the fixed value of earlier releases at the default budget
    assert max(got.values()) == defaults.TUNE_STARTUP_MAX


def _spec(cache: Path, study: Path, space: Path, trials: int, startup: int | None = None) -> Any:
    from vtrbench.runs.tune.plan import TuneSpec
    from vtrbench.runs.tune.storage import storage_url

    return TuneSpec(cache_path=cache, heads=("meanp",), losses=("infonce",), trials=trials, max_epochs=2,
                    storage=storage_url(study, None), val_fraction=0.25, space_file=space, device="cpu",
                    progress=True, startup_trials=startup)  # fmt: skip


class _Stop(Exception):
    pass


def _said_before_the_first_trial(spec: Any, monkeypatch) -> str:
    """What run_tune prints before it starts the first trial (which is stopped, untrained)."""
    import io

    from rich.console import Console

    import vtrbench.runs.tune.study as study_mod

    def stop(*args: Any, **kwargs: Any) -> None:
        raise _Stop()

    monkeypatch.setattr(study_mod, "one_trial", stop)
    text = io.StringIO()
    with pytest.raises(_Stop):
        study_mod.run_tune(spec, console=Console(file=text, width=1000))
    return text.getvalue()


def test_a_budget_within_the_startup_trials_is_called_random_search_before_training(
    synth_cache: Path, tmp_path: Path, monkeypatch, no_training: None
) -> None:
    pytest.importorskip("optuna")
    space = _space(tmp_path)
    said = _said_before_the_first_trial(_spec(synth_cache, tmp_path / "a.db", space, 4, 5), monkeypatch)
    assert (
        "warning: with 4 trial(s) per cell and 5 random start-up trial(s), TPE never leaves random search"
        in said
    )
    said = _said_before_the_first_trial(_spec(synth_cache, tmp_path / "b.db", space, 4), monkeypatch)
    assert "note: sampler: 1 random start-up trial(s), then TPE for 3 of the 4 trials per cell" in said
    # (the fixture's 2 validation videos draw their own warning, issue 28: not the sampler's)
    assert "never leaves random search" not in said


def test_the_cli_warns_and_the_sampler_gets_the_startup(
    run_cli: Any, synth_cache: Path, tmp_path: Path, monkeypatch
) -> None:
    """One real (tiny) trial: the warning reaches the terminal under --quiet, and the TPE sampler is
    built with the start-up the identity records."""
    optuna = pytest.importorskip("optuna")
    made: list[int] = []
    original = optuna.samplers.TPESampler

    def recording(*args: Any, **kwargs: Any) -> Any:
        if "seed" in kwargs:  # vtrbench's per-trial sampler (a study's default one has no seed)
            made.append(kwargs.get("n_startup_trials"))
        return original(*args, **kwargs)

    monkeypatch.setattr(optuna.samplers, "TPESampler", recording)
    study = tmp_path / "s.db"
    r = run_cli(*_tune_args(synth_cache, study, _space(tmp_path), "--startup-trials", "3", trials=1))
    assert r.code == 0, r.text
    assert "warning: with 1 trial(s) per cell and 3 random start-up trial(s)" in r.err
    assert made == [3] and _finished(study) == 1
    r = run_cli(*_tune_args(synth_cache, tmp_path / "t.db", _space(tmp_path), "--startup-trials", "-1"))
    assert r.code == 2 and "--startup-trials" in r.err and "Traceback" not in r.text


def test_a_resumed_study_keeps_its_startup_unless_told_otherwise(
    synth_cache: Path, tmp_path: Path, no_training: None
) -> None:
    pytest.importorskip("optuna")
    from vtrbench.errors import VtrbenchError
    from vtrbench.runs.tune.plan import plan
    from vtrbench.runs.tune.storage import open_storage
    from vtrbench.runs.tune.study import open_studies

    study, space = tmp_path / "s.db", _space(tmp_path)
    first = plan(_spec(synth_cache, study, space, 2, startup=5))
    storage = open_storage(first.spec.storage)
    open_studies(first, storage)  # created and stamped; no trial needed
    extended = plan(_spec(synth_cache, study, space, 40))  # alone, 40 trials would get 10
    assert extended.cells[0].startup == 10
    open_studies(extended, storage)
    assert extended.cells[0].startup == 5 and "n_startup_trials=5" in extended.cells[0].identity["sampler"]
    with pytest.raises(VtrbenchError, match="another sampler"):
        open_studies(plan(_spec(synth_cache, study, space, 40, startup=10)), storage)


def _fake_study(path: Path, complete: int, startup: int, asked: int) -> str:
    """A vtrbench study with ``complete`` finished trials of made-up values (nothing trained)."""
    import optuna

    from vtrbench.runs.tune.notes import sampler_text
    from vtrbench.runs.tune.storage import ATTR

    url = f"sqlite:///{path}"
    study = optuna.create_study(storage=url, study_name="vtrbench:meanp+infonce", direction="maximize")
    identity = {"cell": "meanp+infonce", "sampler": sampler_text(startup), "max_epochs": 2,
                "space": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}, "epochs": {"low": 1, "high": 2}},
                "validation": {"fraction": 0.25}, "pruner": "none", "objective": "o", "seed": 0}  # fmt: skip
    study.set_user_attr(ATTR, identity)
    study.set_user_attr("trials", asked)
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "epochs": optuna.distributions.IntDistribution(1, 2)}  # fmt: skip
    rng = np.random.default_rng(0)
    for i in range(complete):
        params = {"lr": float(10 ** rng.uniform(-4, -1)), "epochs": int(1 + i % 2)}
        value = 10 * params["lr"] + rng.normal(0, 0.01)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    return url


def test_importance_plots_need_enough_complete_trials_and_say_how_many(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from vtrbench import defaults
    from vtrbench.runs.tune.plots import plot_cells

    titles: list[str] = []
    original = Figure.savefig

    def keep_title(fig: Any, *args: Any, **kwargs: Any) -> Any:
        titles.extend(
            t for ax in fig.axes for t in (ax.get_title(loc=x) for x in ("left", "center", "right")) if t
        )
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_title)
    few = defaults.TUNE_MIN_IMPORTANCE_TRIALS - 1
    files, skipped = plot_cells(_fake_study(tmp_path / "few.db", few, 2, few), tmp_path / "few")
    assert [f.name for f in files] == ["meanp+infonce.history.png"]
    need = defaults.TUNE_MIN_IMPORTANCE_TRIALS
    assert skipped == [f"meanp+infonce: no importance plot from {few} complete trial(s); at least {need} "
                       "are needed for fANOVA importances that are not noise"]  # fmt: skip
    assert titles and f"({few} complete trials, the first 2 random start-up)" in titles[-1]
    enough = defaults.TUNE_MIN_IMPORTANCE_TRIALS
    files, skipped = plot_cells(_fake_study(tmp_path / "ok.db", enough, 3, enough), tmp_path / "ok")
    assert sorted(f.name for f in files) == ["meanp+infonce.history.png", "meanp+infonce.importance.png"]
    assert skipped == [] and f"({enough} complete trials, the first 3 random start-up)" in titles[-1]


def test_status_and_report_flag_a_random_search_cell(run_cli: Any, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from vtrbench.runs.tune.notes import sampler_text, tuned_notes

    study = tmp_path / "s.db"
    _fake_study(study, 4, 5, 4)
    r = run_cli("tune", "--status", study)
    assert r.code == 0, r.text
    assert "random search only (no trial after TPE's random start-up): meanp+infonce: 4 trials" in r.out
    record = {"cell": "meanp+infonce", "study": "s.db", "trials": 4, "sampler": sampler_text(5)}
    assert any(n.startswith("random search only: meanp+infonce") for n in tuned_notes([{"tuned": record}]))
    record["trials"] = 6
    assert not any("random search only" in n for n in tuned_notes([{"tuned": record}]))


# ---------------------------------------------------------------- ablate --tuned and the report


def test_ablate_tuned_runs_best_configs_on_test_and_report_labels_them(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    study, results = tmp_path / "s.db", tmp_path / "res"
    assert run_cli(*_tune_args(synth_cache, study, _space(tmp_path), trials=2)).code == 0
    common = ("--cache", synth_cache, "--results", results, "--device", "cpu", "--quiet", "--qb-bank", "8")
    r = run_cli("ablate", *common, "--tuned", study, "--seeds", "0")
    assert r.code == 0, r.text
    r = run_cli("ablate", *common, "--heads", "meanp", "--losses", "infonce", "--seeds", "0", "--epochs", "1")
    assert r.code == 0, r.text
    files = sorted((results / "synthetic").glob("*.json"))
    tuned = [json.loads(p.read_text()) for p in files if "tuned" in json.loads(p.read_text())]
    assert len(files) == 2 and len(tuned) == 1
    t = tuned[0]
    best = _best(study)
    # the tuned head option (the initial logit scale) is part of the head's label, like any option
    scale0 = best["params"]["head.logit_scale_init"]
    assert t["label"] == f"meanp[logit_scale_init={scale0:g}] (tuned, 2 trials)"
    assert t["config"]["head_options"]["logit_scale_init"] == best["params"]["head.logit_scale_init"]
    assert t["config"]["lr"] == best["params"]["lr"] and t["config"]["epochs"] == best["params"]["epochs"]
    assert t["config"]["val_fraction"] == 0.0 and t["protocol"]["test_split"] == "test"
    rec = t["tuned"]
    assert rec["trials"] == 2 and rec["max_epochs"] == 2 and rec["study"] == "s.db"
    assert {"space", "sampler", "pruner", "objective", "validation", "edge"} <= set(rec)
    r = run_cli("report", results / "synthetic", "--format", "md")
    assert r.code == 0, r.text
    assert "meanP (tuned, 2 trials)" in r.out and "| meanP " in r.out
    assert "tuned rows (vtrbench tune, study s.db): 2 finished trials per cell" in r.out
    # a rerun skips what exists
    r = run_cli("ablate", *common, "--tuned", study, "--seeds", "0")
    assert r.code == 0 and "1 skipped" in r.err


def test_untuned_configs_keep_their_hash() -> None:
    """``tuned`` is left out of the canonical config while empty, and the default warm-up is the one
    TrainConfig always had: run ids of default-recipe runs do not move."""
    from vtrbench.config import TrainConfig, canonical_json

    plain = json.loads(canonical_json(TrainConfig(cache_hash="c", head="meanp", loss="dsl")))
    assert "tuned" not in plain and plain["warmup"] == 0.1
    from vtrbench.runs.spec import RunSpec

    assert RunSpec(cache_path=Path("x.h5"), head="meanp", loss="dsl").warmup == 0.1


def test_a_storage_error_behind_optunas_own_error_is_recognised() -> None:
    # a database server stopping mid-trial reached the user as Optuna's UnboundLocalError raised
    # while it handled the storage error (seen in tests/runs/test_tune_postgres.py): the chain is read
    optuna = pytest.importorskip("optuna")
    from vtrbench.runs.tune.storage import storage_errors
    from vtrbench.runs.tune.study import _storage_cause

    try:
        try:
            raise optuna.exceptions.StorageInternalError("server gone")
        except optuna.exceptions.StorageInternalError:
            raise UnboundLocalError("updated_state")  # noqa: B904 - Optuna's own, chained implicitly
    except UnboundLocalError as e:
        assert isinstance(_storage_cause(e, storage_errors()), optuna.exceptions.StorageInternalError)
    assert _storage_cause(ValueError("unrelated"), storage_errors()) is None
