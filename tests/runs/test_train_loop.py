"""The training loop itself (vtrbench.runs.train.fit, lr_lambda) against the recipe, not against its own code.

What a change to ``fit`` could silently move, and what each test pins down:

- optimiser steps per epoch: CLIP4Clip's train loaders use ``DataLoader(..., drop_last=True)``
  (``dataloaders/data_dataloaders.py``), so an epoch is ``N // B`` full batches of distinct pairs;
  keeping the partial last batch must fail;
- the learning rate at every step: METHODS.md section 10 / README ("linear warm-up over 10 % of
  the steps, then cosine decay" to 0), written out below independently of ``lr_lambda``;
- the optimiser: AdamW with the recipe's betas / eps, weight decay only on matrices (CLIP-style),
  gradient clipping to the configured norm, logit scale clamped to <= 100 after every step;
- ``aux_weight > 0``: the loss is main + w * mean_k(per-expert loss), and it changes training;
- ``--val-fraction``: the validation videos (and all their captions) are disjoint from the
  videos ``fit`` trains on, and together they are the whole train split.

Everything runs on small hand-made in-memory splits (no cache, no CLI) except the val-fraction
test, which goes through the real CLI on the session's synthetic cache.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vtrbench.runs.train as train_mod
from vtrbench.config import TrainConfig
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.runs.data import SplitData
from vtrbench.runs.train import fit, lr_lambda

DIM = 16
FRAMES = 4
LENGTH = 6


def make_split(n_videos: int, captions_per_video: int, *, seed: int = 0) -> SplitData:
    """Random features; caption i belongs to video i % n_videos."""
    g = torch.Generator().manual_seed(seed)
    n_texts = n_videos * captions_per_video
    eot = torch.randint(2, LENGTH, (n_texts,), generator=g)
    mask = torch.arange(LENGTH)[None, :] <= eot[:, None]
    text = {
        "tokens": torch.randn(n_texts, LENGTH, DIM, generator=g).half(),
        "token_mask": mask,
        "eot": eot,
        "noun_mask": mask & (torch.arange(LENGTH)[None, :] % 2 == 1),
        "verb_mask": mask & (torch.arange(LENGTH)[None, :] % 2 == 0) & (torch.arange(LENGTH)[None, :] > 0),
    }
    video = {
        "frames": torch.randn(n_videos, FRAMES, DIM, generator=g).half(),
        "frame_mask": torch.ones(n_videos, FRAMES, dtype=torch.bool),
    }
    text_video = torch.arange(n_texts) % n_videos
    return SplitData("train", video, text, text_video, np.arange(n_videos), np.arange(n_texts))


def config(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(cache_hash="x", head="meanp", loss="infonce", epochs=3, batch_size=8, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


class Recording:
    """What fit did: per optimiser step the learning rate of each group and the gradient norm
    the step saw (after clipping), and per step the text rows of the batch."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.grad_norms: list[float] = []
        self.optimisers: list[torch.optim.Optimizer] = []
        self.text_batches: list[list[int]] = []
        self.video_batches: list[list[int]] = []


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Recording:
    rec = Recording()
    real_adamw = torch.optim.AdamW

    class RecordingAdamW(real_adamw):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            rec.optimisers.append(self)

        def step(self, closure: Any = None) -> Any:
            rec.lrs.append([g["lr"] for g in self.param_groups])
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            rec.grad_norms.append(float(torch.linalg.vector_norm(torch.stack([gr.norm() for gr in grads]))))
            return super().step(closure)

    real_take = train_mod.take

    def recording_take(data: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device) -> Any:
        (rec.text_batches if "token_mask" in data else rec.video_batches).append(idx.tolist())
        return real_take(data, idx, device)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(train_mod, "take", recording_take)
    return rec


def recipe_lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """METHODS.md section 10: linear warm-up over 10 % of the steps (rounded to a whole step, at
    least one), reaching the peak on the last warm-up step, then a half cosine from the peak down
    to 0 at step ``total`` (one past the last step taken)."""
    warm = max(1, round(total * warmup_fraction))
    if step < warm:
        return (step + 1) / warm
    t = min(1.0, (step - warm) / (total - warm))
    return (1.0 + math.cos(math.pi * t)) / 2.0


# ------------------------------------------------------------------ steps per epoch


@pytest.mark.parametrize(
    ("n_videos", "captions", "batch", "epochs"),
    [(14, 3, 8, 4), (10, 1, 4, 2), (5, 3, 5, 1), (7, 2, 16, 2)],
)
def test_an_epoch_is_the_full_batches_of_one_permutation(
    recording: Recording, n_videos: int, captions: int, batch: int, epochs: int
) -> None:
    data = make_split(n_videos, captions)
    n = data.n_texts
    torch.manual_seed(0)
    head = create_head("meanp", embed_dim=DIM)
    history = fit(head, data, config(epochs=epochs, batch_size=batch), seed=0)
    # drop_last=True as in CLIP4Clip's train loaders; a batch larger than the split is one full-split batch
    b = min(batch, n)
    per_epoch = n // b
    assert len(recording.lrs) == per_epoch * epochs
    assert [len(x) for x in recording.text_batches] == [b] * (per_epoch * epochs)
    for e in range(epochs):
        seen = [i for x in recording.text_batches[e * per_epoch : (e + 1) * per_epoch] for i in x]
        assert len(set(seen)) == len(seen) == per_epoch * b  # each pair at most once per epoch
        assert set(seen) <= set(range(n))
    # each batch pairs its captions with their own videos
    for texts, videos in zip(recording.text_batches, recording.video_batches, strict=True):
        assert videos == [t % n_videos for t in texts]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))


def test_epochs_draw_different_permutations_from_the_seed(recording: Recording) -> None:
    data = make_split(12, 2)
    head = create_head("meanp", embed_dim=DIM)
    fit(head, data, config(epochs=2, batch_size=6), seed=3)
    first = [i for x in recording.text_batches[:4] for i in x]
    second = [i for x in recording.text_batches[4:] for i in x]
    assert sorted(first) == sorted(second) == list(range(24)) and first != second
    # the order comes from the run's seed: the same seed repeats it, another seed does not
    runs = {}
    for seed in (3, 3, 4):
        recording.text_batches.clear()
        fit(create_head("meanp", embed_dim=DIM), data, config(epochs=1, batch_size=6), seed=seed)
        runs.setdefault(seed, []).append([i for x in recording.text_batches for i in x])
    assert runs[3][0] == runs[3][1] == first and runs[4][0] != first


# ------------------------------------------------------------------ learning-rate schedule


@pytest.mark.parametrize(
    ("total", "warmup"),
    [(20, 0.1), (100, 0.1), (23, 0.1), (27, 0.1), (3, 0.1), (2, 0.1), (1, 0.1), (40, 0.25), (9, 0.5)],
)
def test_lr_lambda_is_linear_warmup_then_cosine_to_zero(total: int, warmup: float) -> None:
    f = lr_lambda(total, warmup)
    for step in range(total):  # the steps fit takes
        assert f(step) == pytest.approx(recipe_lr_factor(step, total, warmup), abs=1e-12), step
    warm = max(1, round(total * warmup))
    assert f(warm - 1) == pytest.approx(1.0)  # the peak is reached at the end of the warm-up
    if total > warm:
        assert f(total) == pytest.approx(0.0, abs=1e-12)  # cosine down to 0 ...
        assert f(total + 5) == pytest.approx(0.0, abs=1e-12)  # ... and no further (no second cycle)
    if total > warm + 1:
        # strictly decreasing after the warm-up: a constant (or linear) decay is not a cosine
        values = [f(s) for s in range(warm, total + 1)]
        assert all(a > b for a, b in zip(values, values[1:], strict=False))
        mid = warm + (total - warm) / 2
        if mid == int(mid):
            assert f(int(mid)) == pytest.approx(0.5)


def test_fit_uses_the_recipe_lr_at_every_step(recording: Recording) -> None:
    # 14 videos x 3 captions = 42 pairs, batch 8: 5 steps per epoch, 4 epochs -> 20 steps, 2 of warm-up.
    data = make_split(14, 3)
    head = create_head("meanp", embed_dim=DIM)
    lr = 3e-3
    fit(head, data, config(epochs=4, batch_size=8, lr=lr), seed=0)
    expected = [lr * recipe_lr_factor(s, 20, 0.1) for s in range(20)]
    for group in range(2):  # both parameter groups follow the schedule
        got = [step_lrs[group] for step_lrs in recording.lrs]
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)
    # spot values written out: 1.5e-3, 3e-3 (peak), then cos decay, last step > 0
    assert recording.lrs[0][0] == pytest.approx(1.5e-3)
    assert recording.lrs[1][0] == pytest.approx(3e-3) and recording.lrs[2][0] == pytest.approx(3e-3)
    assert recording.lrs[11][0] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 9 / 18)))
    assert 0 < recording.lrs[19][0] < 1e-4


# ------------------------------------------------------------------ optimiser, clipping, logit scale


def test_optimiser_is_adamw_with_the_recipe_settings(recording: Recording) -> None:
    data = make_split(8, 2)
    head = create_head("seqtransf", embed_dim=DIM)
    cfg = config(epochs=1, batch_size=8, weight_decay=0.2, betas=(0.9, 0.98), eps=1e-6)
    fit(head, data, cfg, seed=0)
    (opt,) = recording.optimisers
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    for group in opt.param_groups:
        assert tuple(group["betas"]) == (0.9, 0.98) and group["eps"] == 1e-6
    # CLIP-style: decay every weight matrix, never gains, biases or the logit scale
    names = {id(p): n for n, p in head.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in head.named_parameters() if p.ndim >= 2}
    assert {names[id(p)] for p in no_decay["params"]} == {n for n, p in head.named_parameters() if p.ndim < 2}
    assert "log_logit_scale" in {names[id(p)] for p in no_decay["params"]}


def test_gradients_are_clipped_to_the_configured_norm(recording: Recording) -> None:
    data = make_split(8, 2)
    head = create_head("meanp", embed_dim=DIM)
    fit(head, data, config(epochs=2, batch_size=8, grad_clip=1e-3), seed=0)
    assert len(recording.grad_norms) == 4
    assert all(g <= 1e-3 * (1 + 1e-4) for g in recording.grad_norms)
    assert max(recording.grad_norms) > 0.9e-3  # clipped to the bound, not to something smaller

    recording.grad_norms.clear()
    head = create_head("meanp", embed_dim=DIM)
    fit(head, data, config(epochs=2, batch_size=8, grad_clip=0.0), seed=0)
    assert max(recording.grad_norms) > 1e-2  # the same run without clipping has larger gradients


def test_logit_scale_is_clamped_after_every_step() -> None:
    data = make_split(8, 2)
    # Near-identical videos, each caption's EOT feature equal to its video's frames: retrieval is
    # right but the softmax is flat, so a sharper one lowers the loss and the first steps push the
    # scale above its initial 100 (unclamped it reaches ~121 and ~140 after epochs 1 and 2).
    g = torch.Generator().manual_seed(5)
    data.video["frames"][:] = (
        torch.randn(1, 1, DIM, generator=g) + 0.05 * torch.randn(8, 1, DIM, generator=g)
    ).half()
    rows = torch.arange(data.n_texts)
    data.text["tokens"][rows, data.text["eot"]] = data.video["frames"][data.text_video, 0]
    head = create_head("meanp", embed_dim=DIM)
    history = fit(head, data, config(epochs=2, batch_size=8, lr=0.1, grad_clip=0.0), seed=0)
    assert float(head.logit_scale().detach()) <= 100.0 * (1 + 1e-6)
    assert [h["logit_scale"] for h in history] == [100.0, 100.0]


def test_history_reports_the_mean_loss_of_each_epoch() -> None:
    data = make_split(6, 2)  # 12 pairs, batch 12: one step per epoch, lr 0 keeps the head fixed
    torch.manual_seed(0)
    head = create_head("meanp", embed_dim=DIM)
    before = copy.deepcopy(head).eval()
    history = fit(head, data, config(epochs=2, batch_size=12, lr=0.0), seed=0)
    text = train_mod.take(train_mod.text_for(before, data).text, torch.arange(12), torch.device("cpu"))
    video = train_mod.take(data.video, data.text_video, torch.device("cpu"))
    with torch.no_grad():
        logits = before.logit_scale() * before.encode_text(text) @ before.encode_video(video).t()
    expected = float(symmetric_infonce(logits))
    assert [h["loss"] for h in history] == pytest.approx([expected, expected], rel=1e-5)
    assert all(h["pairs_per_s"] > 0 and h["seconds"] >= 0 for h in history)


def test_a_non_finite_loss_stops_training_with_a_user_error() -> None:
    data = make_split(6, 2)
    data.video["frames"][0, 0, 0] = float("nan")
    head = create_head("meanp", embed_dim=DIM)
    with pytest.raises(VtrbenchError, match=r"epoch 1, step 1"):
        fit(head, data, config(epochs=1, batch_size=12), seed=0)


# ------------------------------------------------------------------ auxiliary per-expert losses


def symmetric_infonce(logits: torch.Tensor) -> torch.Tensor:
    """METHODS.md section 7, written out: ½ [mean_i −log softmax(S)[i,i] + mean_i −log softmax(Sᵀ)[i,i]]."""
    rows = -torch.diagonal(logits.log_softmax(dim=1)).mean()
    cols = -torch.diagonal(logits.t().log_softmax(dim=1)).mean()
    return (rows + cols) / 2


@pytest.mark.parametrize("aux_weight", [0.5, 2.0])
def test_aux_weight_adds_the_mean_per_expert_loss(aux_weight: float) -> None:
    data = make_split(8, 1)  # 8 pairs, batch 8: the first step's loss is the whole-split loss
    torch.manual_seed(1)
    head = create_head("camoe", embed_dim=DIM, aux_weight=aux_weight, layers=1)
    before = copy.deepcopy(head).eval()
    cfg = config(head="camoe", epochs=1, batch_size=8, lr=0.0, head_options={"aux_weight": aux_weight})
    history = fit(head, data, cfg, seed=0)
    text = train_mod.take(data.text, torch.arange(8), torch.device("cpu"))
    video = train_mod.take(data.video, data.text_video, torch.device("cpu"))
    with torch.no_grad():
        streams, gates = before.text_parts(text)  # (B, K, D) unit, (B, K)
        videos = before.video_parts(video)  # (B, K, D) unit
        scale = before.logit_scale()
        main = scale * torch.einsum("ik,ikd,jkd->ij", gates, streams, videos)
        per_expert = [symmetric_infonce(scale * streams[:, k] @ videos[:, k].t()) for k in range(4)]
    main_loss = float(symmetric_infonce(main))
    expected = main_loss + aux_weight * float(torch.stack(per_expert).mean())
    assert history[0]["loss"] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - main_loss) > 1e-3  # the auxiliary term is not negligible here

    # the weight is the run config's: without it there, the head's per-expert logits are not used
    head = copy.deepcopy(before).train()
    plain = fit(head, data, config(head="camoe", epochs=1, batch_size=8, lr=0.0), seed=0)
    assert plain[0]["loss"] == pytest.approx(main_loss, rel=1e-5)


def test_aux_weight_changes_what_is_learned() -> None:
    data = make_split(8, 2)
    trained = {}
    for w in (0.0, 1.0):
        torch.manual_seed(1)
        head = create_head("camoe", embed_dim=DIM, aux_weight=1.0, layers=1)
        cfg = config(head="camoe", epochs=2, batch_size=8, head_options={"aux_weight": w})
        fit(head, data, cfg, seed=0)
        trained[w] = {k: v.clone() for k, v in head.state_dict().items()}
    diff = max(float((trained[0.0][k] - trained[1.0][k]).abs().max()) for k in trained[0.0])
    assert diff > 1e-5


# ------------------------------------------------------------------ --val-fraction


def test_val_fraction_holds_out_whole_videos_with_their_captions(
    synth_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Any
) -> None:
    from vtrbench.cache import FeatureCache

    seen: list[tuple[SplitData, SplitData | None]] = []
    real_fit = train_mod.fit

    def spy(head: Any, train: SplitData, cfg: TrainConfig, seed: int, **kw: Any) -> Any:
        seen.append((train, kw.get("val")))
        return real_fit(head, train, cfg, seed, **kw)

    monkeypatch.setattr(train_mod, "fit", spy)
    argv = ["train", "--cache", synth_cache, "--results", tmp_path, "--head", "meanp", "--loss", "infonce"]
    result = run_cli(*argv, "--epochs", "1", "--batch-size", "4", "--val-fraction", "0.25", "--quiet")
    assert result.code == 0, result.text
    ((train, val),) = seen
    assert val is not None
    with FeatureCache(synth_cache) as cache:
        video_rows, text_rows = cache.split_rows("train")
        owner = cache.read_rows("texts", "video", np.arange(cache.file["texts"]["video"].shape[0]))
    train_v, val_v = set(train.video_rows.tolist()), set(val.video_rows.tolist())
    assert train_v and val_v and not train_v & val_v
    assert train_v | val_v == set(video_rows.tolist())
    assert len(val_v) == max(1, round(0.25 * len(video_rows)))
    # every caption goes with its video: none of a validation video's captions is trained on
    assert {int(owner[r]) for r in train.text_rows} <= train_v
    assert {int(owner[r]) for r in val.text_rows} <= val_v
    assert sorted([*train.text_rows.tolist(), *val.text_rows.tolist()]) == sorted(text_rows.tolist())
    # inside each part, text_video points at the caption's own video row
    for part in (train, val):
        for i, r in enumerate(part.text_rows):
            assert part.video_rows[int(part.text_video[i])] == owner[r]
        # and the tensors are the rows they claim to be
        with FeatureCache(synth_cache) as cache:
            frames = cache.read_rows("videos", "frames", np.sort(part.video_rows))
        order = np.argsort(part.video_rows)
        np.testing.assert_array_equal(part.video["frames"].numpy()[order], frames)


class FakeProgress:
    """The two progress calls fit makes (rich.Progress's and vtrbench.progress's)."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.units: list[str] = []
        self.advanced = 0
        self.epoch_rates: list[float] = []

    def add_task(self, name: str, total: int, info: str, unit: str) -> int:
        self.totals.append(total)
        self.units.append(unit)
        return 0

    def update(self, task: int, advance: int, info: str) -> None:
        assert task == 0 and "loss" in info and "pairs/s" in info
        self.advanced += advance
        rate = float(info.split()[-2])  # "... loss 4.123 1234 pairs/s"
        if self.advanced % 5 == 0:  # the last step of an epoch (5 steps each below)
            self.epoch_rates.append(rate)


def test_progress_counts_every_optimiser_step(recording: Recording) -> None:
    # No wall time: fit's clock is a fake in which the k-th optimiser step takes k / 10 seconds, so
    # every rate and duration below is known exactly whatever the machine's load.
    def clock() -> float:
        steps = len(recording.lrs)
        return steps * (steps + 1) / 20

    data = make_split(14, 3)  # 42 pairs, batch 8: 5 steps per epoch
    bar = FakeProgress()
    head = create_head("meanp", embed_dim=DIM)
    history = fit(head, data, config(epochs=3, batch_size=8), seed=0, progress=bar, clock=clock)
    assert bar.totals == [15] and bar.units == ["steps"] and bar.advanced == 15 == len(recording.lrs)
    # epoch e spans steps 5e+1 .. 5e+5: ((5e+1) + ... + (5e+5)) / 10 = 2.5e + 1.5 seconds
    seconds = [1.5, 4.0, 6.5]
    assert [h["seconds"] for h in history] == seconds
    # pairs/s x seconds = the pairs of the epoch (what the runner adds up), to the recorded rounding
    assert [h["pairs_per_s"] for h in history] == [round(40 / s, 1) for s in seconds]
    # the bar's pairs/s after an epoch's last step is the epoch's rate: the same pairs over the same time
    assert bar.epoch_rates == [round(40 / s) for s in seconds]


def test_validation_entry_is_the_raw_metrics_of_the_head_after_each_epoch() -> None:
    from vtrbench.runs.scoring import evaluate_head

    data, val = make_split(8, 2), make_split(6, 2, seed=7)
    torch.manual_seed(0)
    head = create_head("meanp", embed_dim=DIM)
    before = copy.deepcopy(head)
    # lr 0 (AdamW's decoupled weight decay is lr * wd, so 0 too): the head after each epoch is `before`
    history = fit(head, data, config(epochs=2, batch_size=8, lr=0.0), seed=0, val=val)
    m = evaluate_head(before, val, postprocessing=("raw",))["metrics"]["raw"]
    expected = {"t2v/R@1": m["t2v"]["R@1"], "v2t/R@1": m["v2t"]["R@1"], "RSum": m["RSum"]}
    assert [h["val"] for h in history] == [expected, expected]
    assert not head.training  # fit leaves the head in eval mode
    assert "val" not in fit(create_head("meanp", embed_dim=DIM), data, config(epochs=1), seed=0)[0]
