"""What identifies an extraction before any video is decoded: the dataset's fingerprint and the
manifest (rows, chunks, and the attributes the cache will carry)."""

from __future__ import annotations

from typing import Any

import torch

from vtrbench.cache import Manifest
from vtrbench.config import ExtractConfig, config_hash, to_plain
from vtrbench.datasets.base import DatasetIndex
from vtrbench.extract.backbone import text_tower_init
from vtrbench.extract.options import RunOptions
from vtrbench.extract.preprocess_cfg import preprocessing_attrs
from vtrbench.extract.thumbnails import THUMB_NOTE


def dataset_fingerprint(index: DatasetIndex) -> str:
    """Hash of the dataset's videos, captions and splits (and time windows): part of the config."""
    content: dict[str, Any] = {
        "videos": [v.id for v in index.videos],
        "texts": [(t.video, t.caption) for t in index.texts],
        "splits": {k: [list(s.videos), list(s.texts)] for k, s in index.splits.items()},
    }
    windows = video_windows(index)
    # Only when some video has a window, so datasets without windows keep their fingerprint.
    if any(w != [None, None] for w in windows):
        content["windows"] = windows
    return config_hash(content)


def video_windows(index: DatasetIndex) -> list[list[float | None]]:
    """Per video ``[start_s, end_s]`` of the sampled time window (None = the video's start/end)."""
    return [[getattr(v, "start_s", None), getattr(v, "end_s", None)] for v in index.videos]


def make_manifest(
    index: DatasetIndex,
    config: ExtractConfig,
    chash: str,
    clip: Any,
    opts: RunOptions,
    video_chunk: int | None = None,
    preprocess_source: str | None = None,
) -> Manifest:
    """The manifest of a new extraction: every row, every chunk, and the cache attributes."""
    import open_clip

    backbone = text_tower_init(clip.model, clip.embed_dim)
    row = {v.id: i for i, v in enumerate(index.videos)}
    splits = {
        name: {"video_rows": [row[v] for v in s.videos], "text_rows": list(s.texts), "note": s.note}
        for name, s in index.splits.items()
    }
    attrs = {
        "dataset": index.name,
        "model": config.model,
        "pretrained": config.pretrained,
        "weights_source": clip.weights_source,
        "random_weights": clip.random_weights,
        "quick_gelu": clip.quick_gelu,
        "embed_dim": clip.embed_dim,
        "image_size": config.image_size,
        "max_frames": config.max_frames,
        "fps": config.fps,
        "sampling": config.sampling,
        "max_words": config.max_words,
        "tagger": config.tagger,
        "patch_tokens": config.patch_tokens,
        "precision": config.precision,
        **({} if config.no_thumbnails else {"thumbnails": THUMB_NOTE}),
        "default_train": index.default_train or "",
        "default_test": index.default_test,
        "paragraph": index.paragraph,
        "open_clip_version": open_clip.__version__,
        "torch_version": torch.__version__,
        "dtype": "float16",
        "backbone": backbone.summary(),
        "backbone_stored": backbone.stored,
        **preprocessing_attrs(config, preprocess_source),
    }
    windows = video_windows(index)
    if any(w != [None, None] for w in windows):
        attrs["windows"] = getattr(index, "window_note", "") or "per-video windows (see /videos/window_s)"
    return Manifest(
        config=to_plain(config),
        config_hash=chash,
        video_ids=[v.id for v in index.videos],
        video_paths=[str(v.path) for v in index.videos],
        captions=[t.caption for t in index.texts],
        text_video=[row[t.video] for t in index.texts],
        splits=splits,
        video_chunk=max(1, opts.video_chunk if video_chunk is None else video_chunk),
        text_chunk=max(1, opts.text_chunk),
        attrs=attrs,
        video_windows=windows,
    )
