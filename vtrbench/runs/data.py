"""A split of a feature cache in memory, and the parts carved from it (validation hold-outs).

``load_split`` reads a split's tensors once (fp16 at rest, cast per batch); :func:`holdout` splits
the train videos into train and validation parts with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.heads.base import Batch, Head

VIDEO_KEYS = ("frames", "frame_mask", "patches")


TEXT_KEYS = ("tokens", "token_mask", "eot", "noun_mask", "verb_mask")


@dataclass
class SplitData:
    """One split in memory. Text i belongs to gallery video ``text_video[i]``."""

    name: str
    video: dict[str, torch.Tensor]
    text: dict[str, torch.Tensor]
    text_video: torch.Tensor  # (Nt,) long, row in the split's video tensors
    video_rows: np.ndarray  # rows in the cache (for provenance)
    text_rows: np.ndarray
    excluded_videos: int = 0  # failed to decode: dropped with their captions

    @property
    def n_videos(self) -> int:
        return int(self.video["frames"].shape[0])

    @property
    def n_texts(self) -> int:
        return int(self.text["tokens"].shape[0])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.video.values(), *self.text.values()])


def load_split(cache: FeatureCache, split: str, *, patches: bool = False) -> SplitData:
    """Read a split into CPU tensors; videos that failed to decode are dropped with their captions."""
    video_rows, text_rows = cache.split_rows(split)
    status = cache.read_rows("videos", "status", video_rows)
    ok = status == STATUS_OK
    video_rows_ok = video_rows[ok]
    local = {int(r): i for i, r in enumerate(video_rows_ok)}
    text_video_rows = cache.read_rows("texts", "video", text_rows)
    keep = np.array([int(r) in local for r in text_video_rows], dtype=bool)
    text_rows_ok = text_rows[keep]
    if len(video_rows_ok) == 0 or len(text_rows_ok) == 0:
        raise CacheError(f"split {split!r} of {cache.path} has no usable videos/captions")
    video = {}
    for key in VIDEO_KEYS:
        if key == "patches" and not patches:
            continue
        if key in cache.file["videos"]:
            video[key] = torch.from_numpy(cache.read_rows("videos", key, video_rows_ok))
    text = {}
    for key in TEXT_KEYS:
        if key in cache.file["texts"]:
            arr = cache.read_rows("texts", key, text_rows_ok)
            text[key] = torch.from_numpy(arr.astype(np.int64) if key == "eot" else arr)
    tv = torch.tensor([local[int(r)] for r in text_video_rows[keep]], dtype=torch.long)
    return SplitData(split, video, text, tv, video_rows_ok, text_rows_ok, int((~ok).sum()))


def take(data: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device) -> Batch:
    """Index a batch and cast fp16 storage to fp32 on the way (tensors stay fp16 at rest)."""
    out = {}
    for k, v in data.items():
        b = v.index_select(0, idx).to(device, non_blocking=True)
        out[k] = b.float() if b.dtype == torch.float16 else b
    return out


def resident_on(data: SplitData, device: torch.device, fraction: float = 0.5) -> SplitData:
    """``data`` with its tensors (still fp16) moved to a GPU ``device`` when they take at most
    ``fraction`` of its free memory; otherwise (or on CPU) ``data`` itself.

    Batches are then gathered on the GPU: no host-side gather and no copy from pageable
    memory per step. Gathering and casting are exact, so the batches are the same.
    """
    if device.type != "cuda":
        return data
    # Memory this process's allocator holds but does not use is free for the split too.
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if data.nbytes() > fraction * (torch.cuda.mem_get_info(device)[0] + cached):
        return data
    return replace(
        data,
        video={k: v.to(device) for k, v in data.video.items()},
        text={k: v.to(device) for k, v in data.text.items()},
        text_video=data.text_video.to(device),
    )


def text_for(head: Head, data: SplitData) -> SplitData:
    """``data`` reduced to what the head's text side reads.

    Heads that use only the EOT feature (``text_needs_tokens = False``) get an (N, 1, D)
    table of EOT rows with ``eot = 0``: the same feature at 1/L of the memory traffic per
    batch (the input path of meanp is otherwise dominated by gathering unused tokens).
    """
    if head.text_needs_tokens:
        return data
    n = data.n_texts
    eot = data.text["eot"]
    rows = data.text["tokens"][torch.arange(n, device=eot.device), eot]
    text = {
        "tokens": rows[:, None, :],
        "token_mask": torch.ones(n, 1, dtype=torch.bool, device=eot.device),
        "eot": torch.zeros(n, dtype=torch.long, device=eot.device),
    }
    return replace(data, text=text)


def held_out_videos(n_videos: int, fraction: float) -> int:
    """How many of ``n_videos`` train videos ``--val-fraction`` holds out (at least one, never all)."""
    n_val = max(1, int(round(n_videos * fraction)))
    if n_val >= n_videos:
        raise VtrbenchError(
            f"--val-fraction {fraction} holds out {n_val} of the {n_videos} usable train videos and leaves "
            "none to train on; use a smaller fraction"
        )
    return n_val


def holdout(train: Any, fraction: float) -> tuple[Any, Any]:
    """Split train videos (seeded, not by the run seed) into train and validation parts."""
    if not 0 < fraction < 1:
        raise VtrbenchError(f"--val-fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(12345)
    perm = torch.randperm(train.n_videos, generator=g)
    n_val = held_out_videos(train.n_videos, fraction)
    is_val = torch.zeros(train.n_videos, dtype=torch.bool)
    is_val[perm[:n_val]] = True
    return keep_videos(train, ~is_val), keep_videos(train, is_val)


def keep_videos(train: Any, keep: torch.Tensor) -> Any:
    """The part of split data ``train`` holding the videos where ``keep`` (bool, one per video) is
    true and exactly their captions, rows renumbered (validation hold-outs are carved this way)."""
    vids = torch.nonzero(keep).flatten()
    remap = torch.full((train.n_videos,), -1, dtype=torch.long)
    remap[vids] = torch.arange(len(vids))
    texts = torch.nonzero(keep[train.text_video]).flatten()
    return SplitData(
        train.name,
        {k: v.index_select(0, vids) for k, v in train.video.items()},
        {k: v.index_select(0, texts) for k, v in train.text.items()},
        remap[train.text_video[texts]],
        train.video_rows[vids.numpy()],
        train.text_rows[texts.numpy()],
    )
