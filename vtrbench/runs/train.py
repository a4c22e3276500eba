"""Training a head on a feature cache (no open_clip, no PyAV).

``fit`` samples every (caption, video) pair of the train split each epoch and trains with the
METHODS.md section 10 recipe (AdamW, 10 % linear warm-up then cosine decay, gradient clipping).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vtrbench.cache import FeatureCache
from vtrbench.config import TrainConfig
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.factory import create_loss
from vtrbench.heads.base import Head
from vtrbench.heads.contract import check_logit_shape, head_who
from vtrbench.runs import scoring
from vtrbench.runs.compiled import check_compile, training_step
from vtrbench.runs.data import SplitData, resident_on, take, text_for


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def lr_lambda(total_steps: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(round(total_steps * warmup)))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def check_requirements(head: Head, cache: FeatureCache, head_name: str) -> None:
    missing = [f for f in sorted(head.requires) if not cache.has(f)]
    if missing:
        hint = ""
        if {"noun_mask", "verb_mask"} & set(missing):
            hint = " (re-extract with --tagger pattern|spacy, or use --streams learned|eot)"
        if "patches" in missing:
            hint = " (re-extract with `vtrbench extract --patch-tokens`)"
        raise CacheError(
            f"head {head_name!r} with these options needs {', '.join(missing)}, "
            f"which {cache.path} does not hold{hint}"
        )


def _history_entry(
    epoch: int, losses: list[float], seconds: float, pairs: int, head: Head, sched: Any
) -> dict[str, Any]:
    """One epoch of the result's ``history`` (results/README.md): its mean loss, time, throughput,
    the logit scale after it and the learning rate of its last step."""
    return {
        "epoch": epoch,
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "seconds": round(seconds, 4),
        "pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
        "logit_scale": round(float(head.logit_scale().item()), 4),
        # the schedule's factor at the epoch's last step: the scheduler has already moved one past it
        "lr": sched.base_lrs[0] * sched.lr_lambdas[0](sched.last_epoch - 1),
    }


def fit(
    head: Head,
    train: SplitData,
    config: TrainConfig,
    seed: int,
    *,
    device: str = "cpu",
    progress: Any = None,
    val: SplitData | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Train ``head`` in place; returns the per-epoch history. Raises VtrbenchError on a non-finite loss.

    ``on_epoch(entry)`` sees each epoch's history entry (with ``val`` when ``val`` is given); it may
    raise to stop training early (``vtrbench tune`` prunes a hopeless trial this way). ``progress``
    (:mod:`vtrbench.progress`) sees every step; ``clock`` times the epochs (tests pass a fake one).
    """
    dev = torch.device(device)
    gen = seed_everything(seed)
    head.to(dev).train()
    train = resident_on(text_for(head, train), dev)
    loss_fn = create_loss(config.loss, **config.loss_options)
    aux_weight = float(config.head_options.get("aux_weight", 0.0) or 0.0)
    params = [p for p in head.parameters() if p.requires_grad]
    # CLIP-style: no weight decay on gains, biases, embeddings and the logit scale.
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
    )
    n = train.n_texts
    bs = min(config.batch_size, n)
    steps_per_epoch = n // bs  # drop the last partial batch: a tiny batch is a different loss
    total = max(1, steps_per_epoch * config.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, config.warmup))
    # bf16 autocast is CUDA-only (config.precision, recorded in results; None: bf16 on CUDA, as before)
    bf16 = dev.type == "cuda" and config.precision in (None, "bf16")
    check_compile(config.compile, device)  # (run_training checked it before; direct callers here)
    who = head_who(config.head) if config.head else f"head {type(head).__name__}"

    def check_logits(logits: torch.Tensor) -> None:
        # a shape check per step costs nothing and names the head (the loss would only say
        # "expected a square (B, B) logit matrix"); with fixed shapes a compiled step checks it once
        check_logit_shape(logits, bs, bs, who)

    step = training_step(head, loss_fn, aux_weight, (dev.type, bf16), config.compile, check_logits)
    history: list[dict[str, Any]] = []
    task = progress.add_task("train", total=total, info="", unit="steps") if progress is not None else None
    for epoch in range(1, config.epochs + 1):
        t0 = clock()
        perm = torch.randperm(n, generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs].to(train.text_video.device)
            text = take(train.text, idx, dev)
            video = take(train.video, train.text_video.index_select(0, idx), dev)
            loss, _ = step(text, video)
            if not torch.isfinite(loss):
                raise VtrbenchError(
                    f"the loss became {loss.item()} at epoch {epoch}, step {s + 1}; training stopped and no "
                    "result was written (try a lower --lr or another --loss temperature)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            sched.step()
            head.clamp_logit_scale()
            losses.append(loss.item())
            if task is not None:
                rate = (s + 1) * bs / max(clock() - t0, 1e-9)  # pairs/s of this epoch so far
                info = f"epoch {epoch}/{config.epochs} loss {loss.item():.3f} {rate:.0f} pairs/s"
                progress.update(task, advance=1, info=info)
        entry = _history_entry(epoch, losses, clock() - t0, steps_per_epoch * bs, head, sched)
        if val is not None:
            m = scoring.evaluate_head(head, val, device=device, postprocessing=("raw",))["metrics"]["raw"]
            entry["val"] = {"t2v/R@1": m["t2v"]["R@1"], "v2t/R@1": m["v2t"]["R@1"], "RSum": m["RSum"]}
            head.train()
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    head.eval()
    return history
