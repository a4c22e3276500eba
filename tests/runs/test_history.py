"""The per-epoch ``history`` of a result (issue 30): what each entry holds, that it is a view of the run
and not part of its identity, and ``--tensorboard DIR`` writing the same values as TensorBoard scalars.

- ``lr`` is the learning rate of the epoch's last optimiser step, checked against the rate the
  optimiser really used (recorded by wrapping AdamW.step) and against METHODS.md's schedule written out;
- ``val`` is there exactly when the run holds out validation videos;
- training with ``--tensorboard`` gives the same run id, config hash, metrics and history as without
  (the event files are a view), and the event files hold the history's values per epoch (read back with
  TensorBoard's own reader; skipped where the ``tensorboard`` extra is not installed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vtrbench import defaults
from vtrbench.config import TrainConfig
from vtrbench.factory import create_head
from vtrbench.runs.data import SplitData
from vtrbench.runs.train import fit

DIM = 16


def _split(n_videos: int, captions: int, seed: int = 0) -> SplitData:
    g = torch.Generator().manual_seed(seed)
    n = n_videos * captions
    eot = torch.randint(2, 6, (n,), generator=g)
    mask = torch.arange(6)[None, :] <= eot[:, None]
    text = {"tokens": torch.randn(n, 6, DIM, generator=g).half(), "token_mask": mask, "eot": eot}
    video = {
        "frames": torch.randn(n_videos, 4, DIM, generator=g).half(),
        "frame_mask": torch.ones(n_videos, 4, dtype=torch.bool),
    }
    return SplitData("train", video, text, torch.arange(n) % n_videos, np.arange(n_videos), np.arange(n))


def _schedule(step: int, total: int, warmup: float = 0.1) -> float:
    """METHODS.md section 10: linear warm-up over 10 % of the steps (at least one), then cosine to 0."""
    warm = max(1, round(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return (1.0 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm)))) / 2.0


def test_history_lr_is_the_rate_of_each_epochs_last_step(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[float] = []
    real = torch.optim.AdamW

    class Recording(real):  # type: ignore[misc, valid-type]
        def step(self, closure: Any = None) -> Any:
            used.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    # 42 pairs, batch 8: 5 steps per epoch, 4 epochs = 20 steps (2 of warm-up)
    history = fit(
        create_head("meanp", embed_dim=DIM),
        _split(14, 3),
        TrainConfig(cache_hash="x", head="meanp", loss="infonce", epochs=4, batch_size=8, lr=3e-3),
        seed=0,
    )
    assert len(used) == 20
    assert [h["lr"] for h in history] == [used[4], used[9], used[14], used[19]]
    assert [h["lr"] for h in history] == pytest.approx([3e-3 * _schedule(s, 20) for s in (4, 9, 14, 19)])
    # step 4 of 20, 2 of warm-up: (4 - 2) / 18 of the way down the cosine
    assert history[0]["lr"] == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 18)))
    assert all("val" not in h for h in history)  # no validation split, no validation entry


def test_history_has_val_exactly_with_a_validation_split() -> None:
    cfg = TrainConfig(cache_hash="x", head="meanp", loss="infonce", epochs=2, batch_size=8, lr=1e-3)
    history = fit(create_head("meanp", embed_dim=DIM), _split(8, 2), cfg, seed=0, val=_split(6, 2, seed=3))
    assert [sorted(h["val"]) for h in history] == [["RSum", "t2v/R@1", "v2t/R@1"]] * 2
    assert [sorted(h) for h in history] == [
        ["epoch", "logit_scale", "loss", "lr", "pairs_per_s", "seconds", "val"]
    ] * 2


def test_the_tensorboard_default_is_the_one_place() -> None:
    from vtrbench.cli import cli
    from vtrbench.runs.spec import RunSpec

    assert RunSpec(cache_path=Path("c.h5"), head="meanp", loss="dsl").tensorboard is defaults.TENSORBOARD
    for command in ("train", "ablate"):
        (param,) = [p for p in cli.commands[command].params if p.name == "tensorboard"]
        assert param.default is defaults.TENSORBOARD


def _train(run_cli: Any, cache: Path, results: Path, *extra: Any) -> dict[str, Any]:
    res = run_cli(
        "train", "--cache", cache, "--head", "meanp", "--loss", "infonce", "--epochs", "3",
        "--batch-size", "8", "--lr", "1e-3", "--val-fraction", "0.25", "--results", results,
        "--device", "cpu", "--quiet", *extra,
    )  # fmt: skip
    assert res.code == 0, res.text
    (path,) = results.rglob("*.json")
    return json.loads(path.read_text())


def test_tensorboard_event_files_hold_the_history_and_change_no_result(
    synth_cache: Path, run_cli: Any, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    plain = _train(run_cli, synth_cache, tmp_path / "plain")
    logged = _train(run_cli, synth_cache, tmp_path / "logged", "--tensorboard", tmp_path / "tb" / "new")
    # the same run: identity, numbers and history (timings aside) do not depend on the event files
    for key in ("run_id", "config_hash", "config", "metrics", "per_query"):
        assert logged[key] == plain[key], key
    untimed = [[{k: v for k, v in h.items() if k not in ("seconds", "pairs_per_s")} for h in r["history"]]
               for r in (plain, logged)]  # fmt: skip
    assert untimed[0] == untimed[1]
    assert all("lr" in h and "val" in h for h in logged["history"])

    (run_dir,) = (tmp_path / "tb" / "new").iterdir()
    assert run_dir.name == logged["run_id"]
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/logit_scale", "val/t2v_R@1", "val/objective"} <= tags

    def series(tag: str) -> list[tuple[int, float]]:
        return [(e.step, e.value) for e in events.Scalars(tag)]

    h = logged["history"]
    assert series("train/loss") == [(e["epoch"], pytest.approx(e["loss"], rel=1e-6)) for e in h]
    assert series("train/lr") == [(e["epoch"], pytest.approx(e["lr"], rel=1e-6)) for e in h]
    want = [(e["epoch"], pytest.approx(e["val"]["t2v/R@1"] + e["val"]["v2t/R@1"], rel=1e-6)) for e in h]
    assert series("val/objective") == want


def test_a_rerun_hides_the_earlier_events(synth_cache: Path, run_cli: Any, tmp_path: Path) -> None:
    """``--overwrite always`` into the same folder: TensorBoard shows one curve per run, not two."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    _train(run_cli, synth_cache, tmp_path / "r", "--tensorboard", tb)
    result = _train(run_cli, synth_cache, tmp_path / "r", "--tensorboard", tb, "--overwrite", "always")
    (run_dir,) = tb.iterdir()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # nothing deleted
    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(
        [e["loss"] for e in result["history"]], rel=1e-6
    )


def test_tensorboard_refusals_come_before_training(synth_cache: Path, run_cli: Any, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    (tmp_path / "file").write_text("x")
    bad = ((tmp_path / "file", "is a file, not a folder"), (tmp_path / "file" / "sub", "cannot write"))
    for target, says in bad:
        res = run_cli(
            "train", "--cache", synth_cache, "--head", "meanp", "--loss", "infonce", "--epochs", "1",
            "--results", tmp_path / "res", "--device", "cpu", "--quiet", "--tensorboard", target,
        )  # fmt: skip
        assert res.code == 2 and says in res.text and str(target) in res.text, res.text
        assert not (tmp_path / "res").exists()  # refused before any result


def test_without_the_package_tensorboard_is_one_line(
    synth_cache: Path, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    res = run_cli(
        "train", "--cache", synth_cache, "--head", "meanp", "--loss", "infonce", "--epochs", "1",
        "--results", tmp_path / "res", "--device", "cpu", "--quiet", "--tensorboard", tmp_path / "tb",
    )  # fmt: skip
    assert res.code == 2 and "pip install 'vtrbench[tensorboard]'" in res.text, res.text
    assert len(res.text.strip().splitlines()) == 1 and not (tmp_path / "res").exists()
