"""Validation for ``vtrbench tune``: K video-disjoint folds of the train split, the objective, and the
rule for a validation part too small to tell configurations apart.

**Folds** (``--folds K``): the usable train videos are shuffled by a generator seeded from ``--seed``
alone and dealt round-robin into K folds (sizes differ by at most one). Fold f validates a model
trained on the other K - 1 folds; a video and all its captions are in exactly one fold, so no caption
of a validation video is trained on. The folds depend only on (train videos, K, seed): not on workers,
shards or the order trials run in. A trial's objective is the mean of its K fold models' objectives;
the pruner sees the running mean (folds finished so far, and the current fold's epoch) at step
``fold * max_epochs + epoch``. This follows the class-disjoint k-fold of "A Metric Learning Reality
Check" (Musgrave et al. 2020, powerful-benchmarker), with videos in place of classes.

**Too small** (:func:`validation_size_notes`): fewer than ``TUNE_MIN_VAL_VIDEOS`` usable validation
videos is refused (with one video every metric is 100 for any model: the objective is a constant and
the "best" trial is the first); at most ``TUNE_FEW_VAL_VIDEOS`` gives a warning (R@10 is 100 for any
model, R@1 moves in steps of 100 / captions).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.runs.data import keep_videos
from vtrbench.runs.tune.objective import (  # noqa: F401 (re-exported: the fold code's callers)
    OBJECTIVES,
    check_objective,
    objective_of,
    objective_text,
    spread,
)


def check_folds(folds: Any) -> int | None:
    """``--folds``: None (one hold-out) or an integer >= 2."""
    if folds is None:
        return None
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise VtrbenchError(f"--folds must be an integer >= 2 (K video-disjoint folds), got {folds!r}")
    return folds


def fold_seed(seed: int) -> int:
    """The fold shuffle's seed: from --seed only (a string hash: not torch's global RNG)."""
    return int(hashlib.sha256(f"vtrbench-folds:{seed}".encode()).hexdigest()[:12], 16)


def fold_of(n_videos: int, folds: int, seed: int) -> torch.Tensor:
    """(n_videos,) long: the fold of each video (shuffled by ``seed``, dealt round-robin)."""
    g = torch.Generator().manual_seed(fold_seed(seed))
    perm = torch.randperm(n_videos, generator=g)
    out = torch.empty(n_videos, dtype=torch.long)
    out[perm] = torch.arange(n_videos) % folds
    return out


def fold_sizes(n_videos: int, folds: int) -> list[int]:
    """Validation videos of each fold (round-robin: the first n % K folds hold one more)."""
    return [n_videos // folds + (1 if f < n_videos % folds else 0) for f in range(folds)]


def fold_parts(train: Any, folds: int, seed: int) -> list[tuple[Any, Any]]:
    """(train minus fold f, fold f) for each fold f of split data ``train``."""
    which = fold_of(train.n_videos, folds, seed)
    return [(keep_videos(train, which != f), keep_videos(train, which == f)) for f in range(folds)]


def check_fold_count(folds: int, n_videos: int) -> list[int]:
    """The folds' sizes, refusing K folds that leave a fold below the minimum validation size."""
    # compared before any list of K sizes is built: --folds 10**12 must be a quick refusal
    most = n_videos // defaults.TUNE_MIN_VAL_VIDEOS
    if folds > most:
        raise VtrbenchError(
            f"--folds {folds} splits the {n_videos} usable train videos into folds of "
            f"{n_videos // folds} video(s); each fold must validate on at least "
            f"{defaults.TUNE_MIN_VAL_VIDEOS} "
            + (f"(use --folds {most} or fewer)" if most >= 2 else "(too few videos for folds)")
        )
    return fold_sizes(n_videos, folds)


def validation_size_notes(n_val: int, where: str) -> list[str]:
    """Warnings for a validation part of ``n_val`` usable videos; refuses one below the minimum."""
    if n_val < defaults.TUNE_MIN_VAL_VIDEOS:
        raise VtrbenchError(
            f"{where} validates on {n_val} usable video(s): with fewer than {defaults.TUNE_MIN_VAL_VIDEOS} "
            "every retrieval metric is 100 for any model, so every trial would tie at the ceiling; "
            "give a larger --val-fraction, fewer --folds or a larger --val-split"
        )
    if n_val <= defaults.TUNE_FEW_VAL_VIDEOS:
        return [
            f"{where} validates on only {n_val} video(s): R@10 is 100 for any model at "
            f"<= {defaults.TUNE_FEW_VAL_VIDEOS} videos and R@1 moves in steps of 100 / captions, so the "
            "objective hardly tells configurations apart; use more validation videos"
        ]
    return []


def pruner_step(fold: int, epoch: int, max_epochs: int) -> int:
    """The pruner's step for ``epoch`` of ``fold`` (steps of one fold never meet another's)."""
    return fold * max_epochs + epoch


def running_mean(done: Sequence[float], current: float) -> float:
    """The mean over finished folds and the current fold's latest value (what the pruner sees)."""
    return (math.fsum(done) + current) / (len(done) + 1)
