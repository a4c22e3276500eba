"""The checks of an evaluation's inputs: each a one-line :class:`~vtrbench.errors.VtrbenchError`,
before any score is computed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.eval.messages import bank_message
from vtrbench.eval.options import DEFAULT_POSTS
from vtrbench.eval.postprocess import BANK_POSTS
from vtrbench.metrics import as_tensor
from vtrbench.registry import unknown_name_message
from vtrbench.results import POSTPROCESSING


def check_embeddings(name: str, x: Any, dim: int | None, device: torch.device | None) -> torch.Tensor:
    """``x`` as a detached non-empty finite ``(N, E)`` float tensor; ``dim``: text_emb's ``E``."""
    t = as_tensor(x, device=device).detach()
    if t.ndim != 2 or t.shape[0] == 0 or not torch.is_floating_point(t):
        raise VtrbenchError(f"{name} must be a non-empty (N, E) float array, got {t.dtype} {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise VtrbenchError(f"{name} has embedding size {t.shape[1]}, text_emb has {dim}")
    if not bool(torch.isfinite(t).all()):
        raise VtrbenchError(f"{name} contains NaN or infinite values")
    return t


def check_state(name: str, state: Any) -> None:
    """A pairwise head's per-item states: a non-empty dict of finite tensors sharing dim 0."""
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise VtrbenchError(f"{name} must be a non-empty dict of tensors")
    n = {int(v.shape[0]) if v.ndim else -1 for v in state.values()}
    if len(n) != 1 or n == {0} or n == {-1}:
        raise VtrbenchError(f"{name} tensors must share a non-zero first dimension, got {sorted(n)}")
    for key, v in state.items():
        if torch.is_floating_point(v) and not bool(torch.isfinite(v).all()):
            raise VtrbenchError(f"{name}[{key!r}] contains NaN or infinite values")


def check_block(block: Any) -> tuple[int, int]:
    """A pairwise block shape ``(captions, videos)``: two integers >= 1."""
    if (
        not isinstance(block, tuple | list)
        or len(block) != 2
        or any(isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1 for b in block)
    ):
        raise VtrbenchError(f"block must be two integers >= 1 (captions, videos), got {block!r}")
    return (int(block[0]), int(block[1]))


def check_query_video(query_video: Any, n_q: int, n_v: int, device: torch.device) -> torch.Tensor:
    """Each caption's video row, as int64 on ``device``; every video needs a caption (a v2t query)."""
    qv = as_tensor(query_video, device=device).detach()
    if qv.ndim != 1 or qv.shape[0] != n_q or qv.dtype.is_floating_point or qv.dtype == torch.bool:
        raise VtrbenchError(
            f"query_video must be 1-D integer of length {n_q} (one per caption), got {tuple(qv.shape)}"
        )
    qv = qv.to(torch.int64)
    if int(qv.min()) < 0 or int(qv.max()) >= n_v:
        raise VtrbenchError(
            f"query_video holds video rows outside [0, {n_v}): {int(qv.min())}..{int(qv.max())}"
        )
    covered = torch.zeros(n_v, dtype=torch.bool, device=qv.device)
    covered[qv] = True
    if not bool(covered.all()):
        raise VtrbenchError(
            f"{int((~covered).sum())} of {n_v} test videos have no caption; v2t needs one per video "
            f"(first: row {int((~covered).nonzero()[0])})"
        )
    return qv


def check_postprocessing(postprocessing: Sequence[str] | None, have_bank: bool) -> list[str]:
    """The post-processings to compute, each once. ``None``: :data:`DEFAULT_POSTS`, where ``qbnorm``
    is left out without a bank (as always); a bank-based one asked by name without a bank is refused."""
    if postprocessing is None:
        return [p for p in DEFAULT_POSTS if p not in BANK_POSTS or have_bank]
    if isinstance(postprocessing, str):
        postprocessing = (postprocessing,)
    posts: list[str] = []
    for p in postprocessing:
        if p not in POSTPROCESSING:
            raise VtrbenchError(unknown_name_message("post-processing", str(p), list(POSTPROCESSING)))
        if p in BANK_POSTS and not have_bank:
            raise VtrbenchError(bank_message(str(p)))
        if p not in posts:
            posts.append(p)
    if not posts:
        raise VtrbenchError("nothing to evaluate: no post-processing was asked")
    return posts
