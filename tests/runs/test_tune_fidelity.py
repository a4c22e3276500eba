"""``vtrbench tune --fidelity data,epochs``: rungs checked, nested video subsets, successive halving
against a hand-written rule, caption-epochs against the arithmetic, a resumed study with a dead
worker's trial equal to an uninterrupted one, and identities unchanged by spelled-out defaults.

Tuning runs here are tiny (meanp, <= 2 epochs, 4 trials on the 12-video fixture cache).
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from vtrbench.errors import VtrbenchError

SPACE = """
[train]
epochs = {low = 1, high = 2}
batch_size = {choices = [4, 8]}
"""


# ---------------------------------------------------------------- rungs (pure)


def test_rungs_parse_and_default_to_hyperbands_first_bracket() -> None:
    from vtrbench.runs.tune.fidelity import Rung, default_rungs, parse_rungs

    assert parse_rungs("0.25:3, 0.5:6,1:max", 10, 3) == [Rung(0.25, 3), Rung(0.5, 6), Rung(1.0, 10)]
    assert parse_rungs("0.5:max,1:10", 10, 3) == [Rung(0.5, 10), Rung(1.0, 10)]  # data-only rungs
    assert parse_rungs("1:2,1:max", 10, 3) == [Rung(1.0, 2), Rung(1.0, 10)]  # epochs-only rungs
    # 1/eta^2, 1/eta, 1 of the data; ceil(10/9) = 2, ceil(10/3) = 4, 10 epochs
    assert default_rungs(10, 3) == [Rung(1 / 9, 2), Rung(1 / 3, 4), Rung(1.0, 10)]
    assert parse_rungs(None, 10, 3) == default_rungs(10, 3)
    assert default_rungs(1, 4) == [Rung(1 / 16, 1), Rung(1 / 4, 1), Rung(1.0, 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0:1,1:max", "(0, 1]"),
        ("-0.5:1,1:max", "(0, 1]"),
        ("1.5:1,1:max", "(0, 1]"),
        ("nan:1,1:max", "(0, 1]"),
        ("inf:1,1:max", "(0, 1]"),
        ("x:1,1:max", "not a number"),
        ("0.5:0,1:max", "[1, --max-epochs 10]"),
        ("0.5:11,1:max", "[1, --max-epochs 10]"),
        ("0.5:two,1:max", "not an integer or 'max'"),
        ("0.5,1:max", "FRACTION:EPOCHS"),
        ("0.5:4,0.25:6,1:max", "must grow"),
        ("0.5:6,0.6:4,1:max", "must grow"),
        ("0.5:4,0.5:4,1:max", "must grow"),
        ("0.25:2,0.5:4", "must end at full fidelity"),
        ("1:max", "at least one cheaper rung"),
    ],
)
def test_bad_rungs_are_one_line(text: str, message: str) -> None:
    from vtrbench.runs.tune.fidelity import parse_rungs

    with pytest.raises(VtrbenchError, match=None) as e:
        parse_rungs(text, 10, 3)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_schedule_costing_a_full_trial_is_refused() -> None:
    from vtrbench.runs.tune.fidelity import check_schedule, expected_share, parse_rungs

    rungs = parse_rungs("0.5:4,1:max", 10, 2)
    # written out: rung 0 reached by every trial, rung 1 by 1/eta of them
    assert expected_share(rungs, 2, 10) == pytest.approx((0.5 * 4 + 1.0 * 10 / 2) / 10)
    check_schedule(rungs, 2, 10)  # 0.7: accepted
    costly = parse_rungs("0.9:9,1:max", 10, 2)  # (8.1 + 5) / 10 = 1.31
    with pytest.raises(VtrbenchError, match="exceeds the full-fidelity budget"):
        check_schedule(costly, 2, 10)


def test_subsets_are_nested_seeded_and_keep_whole_videos() -> None:
    from vtrbench.runs.data import SplitData
    from vtrbench.runs.tune.fidelity import subset

    n, per = 20, 3
    text_video = torch.arange(n).repeat_interleave(per)  # caption i belongs to video i // 3
    data = SplitData(
        "train",
        {"frames": torch.arange(n, dtype=torch.float32).view(n, 1, 1)},
        {"tokens": torch.arange(n * per).view(-1, 1)},
        text_video,
        torch.arange(100, 100 + n).numpy(),
        torch.arange(n * per).numpy(),
    )
    videos = {}
    for f in (0.1, 0.25, 0.5, 1.0):
        part = subset(data, f, seed=4)
        kept = [int(v) for v in part.video_rows]
        assert len(kept) == math.ceil(f * n)
        # every caption of a kept video and no other: captions are rows 3(v-100) .. 3(v-100)+2
        assert sorted(int(t) for t in part.text_rows) == sorted(
            3 * (v - 100) + k for v in kept for k in range(per)
        )
        videos[f] = set(kept)
    assert videos[0.1] < videos[0.25] < videos[0.5] < videos[1.0]
    assert {int(v) for v in subset(data, 0.5, seed=4).video_rows} == videos[0.5]  # fixed by the seed
    assert {int(v) for v in subset(data, 0.5, seed=5).video_rows} != videos[0.5]


class _Study:
    """Just what ``promoted`` reads: trials with a number, a state and user attrs."""

    def __init__(self, trials: list[tuple[int, str, dict[str, float]]]) -> None:
        self.trials = trials

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        names = {s.name for s in states}
        return [SimpleNamespace(number=n, state=s, user_attrs=a) for n, s, a in self.trials if s in names]


def test_promotion_is_successive_halving_over_finished_earlier_trials() -> None:
    pytest.importorskip("optuna")
    from vtrbench.runs.tune.fidelity import promoted

    earlier = [(0, "COMPLETE", {"rung_0": 5.0}), (1, "PRUNED", {"rung_0": 3.0}),
               (2, "PRUNED", {"rung_0": 8.0}), (3, "PRUNED", {"rung_0": 1.0})]  # fmt: skip
    study = _Study([*earlier, (4, "FAIL", {"rung_0": 100.0}), (9, "COMPLETE", {"rung_0": 50.0})])
    # trial 5 with eta 2: k = 5 values {8, 5, 3, 1, v}: the top 5 // 2 = 2 go on (the dead worker's
    # 100 and the later trial 9's 50 do not compete)
    assert promoted(study, 5, 0, 6.0, 2) and promoted(study, 5, 0, 5.0, 2)  # ties go on
    assert not promoted(study, 5, 0, 4.9, 2)
    # eta 3: 5 // 3 = 1: only the best so far
    assert promoted(study, 5, 0, 8.0, 3) and not promoted(study, 5, 0, 7.0, 3)
    # the first trial always goes on; rung 1 has no values yet
    assert promoted(_Study([]), 0, 0, -1.0, 3) and promoted(study, 5, 1, 0.0, 3)


# ---------------------------------------------------------------- tiny real studies


def _args(cache: Path, study: Path, space: Path, trials: int, *extra: Any) -> list[Any]:
    return [
        "tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", trials,
        "--max-epochs", 2, "--val-fraction", 0.25, "--study", study, "--space", space,
        "--device", "cpu", "--quiet", "--fidelity", "data,epochs", "--rungs", "0.5:1,1:max", "--eta", 2,
        *extra,
    ]  # fmt: skip


def _trials(study: Path) -> list[dict[str, Any]]:
    from vtrbench.runs.tune.storage import import_optuna

    optuna = import_optuna()
    url = f"sqlite:///{study}"
    (name,) = optuna.get_all_study_names(url)
    s = optuna.load_study(study_name=name, storage=url)
    return [
        {"state": t.state.name, "params": t.params, "value": t.value, "attrs": {
            k: v for k, v in t.user_attrs.items() if k not in ("worker", "seconds")}}
        for t in s.get_trials() if t.state.name in ("COMPLETE", "PRUNED")
    ]  # fmt: skip


def test_trials_climb_the_rungs_and_record_their_caption_epochs(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    from tests.conftest import SYNTH_CAPTIONS_PER_VIDEO
    from vtrbench.cache import FeatureCache

    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    study = tmp_path / "f.db"
    r = run_cli(*_args(synth_cache, study, space, 4))
    assert r.code == 0, r.err
    with FeatureCache(synth_cache) as cache:
        n = len(cache.split_rows(str(cache.attrs["default_train"]))[0])
    n_train = n - max(1, round(n * 0.25))  # the validation hold-out, written out
    captions = {
        0.5: math.ceil(0.5 * n_train) * SYNTH_CAPTIONS_PER_VIDEO,
        1.0: n_train * SYNTH_CAPTIONS_PER_VIDEO,
    }
    trials = _trials(study)
    assert len(trials) == 4 and trials[0]["state"] == "COMPLETE"  # the first trial always goes on
    for t in trials:
        e = t["params"]["epochs"]
        a = t["attrs"]
        if t["state"] == "PRUNED":
            assert a["rungs_run"] == 1 and a["caption_epochs"] == captions[0.5] * min(1, e)
        else:
            assert a["rungs_run"] == 2 and t["value"] == a["rung_1"]
            assert a["caption_epochs"] == captions[0.5] * min(1, e) + captions[1.0] * e
    r = run_cli("tune", "--status", study)
    total = sum(t["attrs"]["caption_epochs"] for t in trials)
    assert r.code == 0 and f"{total:,}" in r.out and "successive halving over rungs 0.5:1,1:2" in r.out


def test_a_dead_workers_trial_does_not_change_the_study(
    run_cli: Any, synth_cache: Path, tmp_path: Path
) -> None:
    """kill -9 mid-study leaves a failed trial with a rung value; the resumed study must be the
    uninterrupted one (same params, states, values and attrs of its finished trials)."""
    optuna = pytest.importorskip("optuna")
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    whole, cut = tmp_path / "whole.db", tmp_path / "cut.db"
    assert run_cli(*_args(synth_cache, whole, space, 4)).code == 0
    assert run_cli(*_args(synth_cache, cut, space, 2)).code == 0
    url = f"sqlite:///{cut}"
    (name,) = optuna.get_all_study_names(url)
    s = optuna.load_study(study_name=name, storage=url)
    # a trial whose worker died after an excellent first rung (it must not compete)
    dead = s.ask()
    s._storage.set_trial_user_attr(dead._trial_id, "rung_0", 1e9)
    s.tell(dead, state=optuna.trial.TrialState.FAIL)
    assert run_cli(*_args(synth_cache, cut, space, 4)).code == 0
    with sqlite3.connect(cut) as db:
        assert db.execute("SELECT COUNT(*) FROM trials WHERE state = 'FAIL'").fetchone()[0] == 1
    assert _trials(cut) == _trials(whole)


def test_spelled_out_defaults_keep_the_identity(synth_cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from vtrbench import defaults
    from vtrbench.runs.tune.plan import TuneSpec, plan

    def identity(**kw: Any) -> dict[str, Any]:
        spec = TuneSpec(cache_path=synth_cache, heads=("meanp",), losses=("infonce",), trials=3, max_epochs=9,
                        storage="sqlite:///x", val_fraction=0.25, **kw)  # fmt: skip
        return plan(spec).cells[0].identity

    today = identity()
    assert "fidelity" not in today and today["pruner"].startswith("MedianPruner")
    assert identity(pruner=defaults.TUNE_PRUNER, fidelity="epochs") == today
    assert identity(fidelity="none") == identity(pruner="none")
    multi = identity(fidelity="data,epochs")
    assert multi == identity(
        fidelity="epochs,data", eta=3, rungs="0.1111111111111111:1,0.3333333333333333:3,1:max"
    )
    assert multi["fidelity"]["rungs"] == [[1 / 9, 1], [1 / 3, 3], [1.0, 9]]
    assert multi["fidelity"]["expected_share"] == pytest.approx((1 / 9 + 1 / 3 * 3 / 3 + 9 / 9) / 9, abs=1e-6)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"fidelity": "data"}, "--fidelity must be one of"),
        ({"rungs": "0.5:1,1:max"}, "--rungs needs --fidelity data,epochs"),
        ({"eta": 3}, "--eta needs --fidelity data,epochs"),
        ({"fidelity": "none", "pruner": "median"}, "takes no --pruner median"),
        ({"fidelity": "data,epochs", "pruner": "median"}, "leave --pruner out"),
        ({"fidelity": "data,epochs", "eta": 1}, "--eta must be an integer >= 2"),
    ],
)
def test_option_conflicts_are_refused_before_training(
    synth_cache: Path, kw: dict[str, Any], message: str
) -> None:
    from vtrbench.runs.tune.plan import TuneSpec, plan

    spec = TuneSpec(cache_path=synth_cache, heads=("meanp",), losses=("infonce",), trials=3, max_epochs=9,
                    storage="sqlite:///x", val_fraction=0.25, **kw)  # fmt: skip
    with pytest.raises(VtrbenchError, match=message):
        plan(spec)
