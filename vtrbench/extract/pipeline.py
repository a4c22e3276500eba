"""``vtrbench extract``: dataset + frozen CLIP -> HDF5 feature cache, resumable.

Work is split into chunks of videos and of captions. Worker processes decode and
preprocess videos (PyAV + batched tensor ops) while the main process encodes
batches of frames; each finished chunk is written as a part file atomically (see
vtrbench.cache). Encoding batches never cross a chunk boundary, so a resumed run
produces bit-for-bit the same features as an uninterrupted one.

This module is the orchestrator (:func:`extract_features`) and the public entry: its steps live in
``locks`` (who may write), ``resume`` (what an earlier run left), ``manifest`` (rows, chunks and
attributes), ``workers`` and ``videos`` (the video loop), ``texts`` (the caption loop) and
``shards`` (--shard and assembly); the names other code imports from here are re-exported.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.cache import (
    STATUS_OK,
    FeatureCache,
    Manifest,
    assemble,
    backbone_part_is_valid,
    backbone_part_path,
    parts_dir,
    write_failed,
    write_part,
)
from vtrbench.config import ExtractConfig, config_hash
from vtrbench.datasets.base import DatasetIndex
from vtrbench.errors import VtrbenchError
from vtrbench.extract import encode
from vtrbench.extract.backbone import text_tower_init
from vtrbench.extract.locks import LOCK_WAIT_S, output_lock
from vtrbench.extract.manifest import dataset_fingerprint, make_manifest, video_windows
from vtrbench.extract.options import ExtractSummary, RunOptions
from vtrbench.extract.preprocess_cfg import check_preprocessing
from vtrbench.extract.resume import (
    Previous,
    check_output,
    chunks_to_do,
    clean_leftovers,
    previous_cache,
    resumable_manifest,
)
from vtrbench.extract.shards import after_shard, assemble_shards, check_parts, own_share, record_shard_count
from vtrbench.extract.texts import pos_coverage, run_texts
from vtrbench.extract.videos import run_videos
from vtrbench.extract.workers import auto_batch_size, auto_workers, file_sha256
from vtrbench.progress import progress_every, stage

__all__ = [
    "LOCK_WAIT_S",
    "ExtractSummary",
    "RunOptions",
    "assemble_shards",
    "auto_batch_size",
    "auto_workers",
    "check_output",
    "check_parts",
    "dataset_fingerprint",
    "extract_features",
    "file_sha256",
    "record_shard_count",
    "video_windows",
]


def extract_features(
    index: DatasetIndex,
    config: ExtractConfig,
    output: Path,
    opts: RunOptions,
    console: Any = None,
    preprocess_source: str | None = None,
) -> ExtractSummary:
    """Encode every video and caption of ``index`` into the cache at ``output``.

    ``preprocess_source`` says how the config's preprocessing was chosen (recorded in the
    cache); by default it is worked out from the config's model and weights. An existing cache
    is never removed before its replacement is complete: ``overwrite`` and ``retry_failed``
    build the new file beside it and rename it into place. With ``opts.shard`` only that shard's
    chunks are made (see vtrbench.shard); ``opts.assemble_only`` builds the cache from the parts.
    """
    output = Path(output)
    check_preprocessing(config)
    progress_every()  # a bad VTRBENCH_PROGRESS_EVERY is refused before any file is touched
    chash = config_hash(config)
    summary = ExtractSummary(
        output=output, config_hash=chash, videos=len(index.videos), texts=len(index.texts)
    )
    t0 = time.perf_counter()
    shard = opts.shard
    summary.shard = str(shard) if shard is not None else None
    check_output(output)
    if opts.assemble_only:
        return assemble_shards(output, config, summary, t0)
    with output_lock(output, shard):
        previous = previous_cache(output, config, chash, opts)
        if previous.complete:
            clean_leftovers(output, chash)
            summary.failed = previous.failed
            summary.already_complete = True
            return summary
        clip = None
        manifest = resumable_manifest(output, config, chash, opts, previous)
        if manifest is None:
            clip = _load_clip(config, opts, console)
            manifest = _start_manifest(index, config, output, chash, clip, opts, previous, preprocess_source)
        todo, owned = own_share(output, manifest, chunks_to_do(output, manifest, opts, previous), shard)
        redone = set(todo["videos"])
        _encode_missing(clip, manifest, index, config, output, todo, opts, summary, console)
        if shard is None:
            manifest.attrs.update(pos_coverage(output, manifest, previous.reuse))
            assemble(output, manifest, reuse=previous.reuse)
            retried = previous.failed if previous.reuse is not None else None
            _count(output, manifest, redone, retried, summary)
    if shard is not None:
        after_shard(output, manifest, shard, summary, owned, redone)
    summary.seconds = time.perf_counter() - t0
    return summary


def _start_manifest(
    index: DatasetIndex,
    config: ExtractConfig,
    output: Path,
    chash: str,
    clip: Any,
    opts: RunOptions,
    previous: Previous,
    preprocess_source: str | None,
) -> Manifest:
    """The manifest of a new extraction, saved in the parts folder before any part is written."""
    manifest = make_manifest(index, config, chash, clip, opts, previous.video_chunk, preprocess_source)
    manifest_path = parts_dir(output) / "manifest.json"
    try:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest.save(manifest_path)
    except OSError as e:
        raise write_failed(manifest_path, e) from None
    return manifest


def _encode_missing(
    clip: Any,
    manifest: Manifest,
    index: DatasetIndex,
    config: ExtractConfig,
    output: Path,
    todo: dict[str, list[int]],
    opts: RunOptions,
    summary: ExtractSummary,
    console: Any,
) -> None:
    """Encode the chunks in ``todo`` and write the backbone part if it is due; the model is loaded
    only when there is work for it (``clip`` is None until then)."""
    if todo["videos"] or todo["texts"]:
        if clip is None:
            clip = _load_clip(config, opts, console)
        run_videos(clip, manifest, config, output, todo["videos"], opts, summary, console)
        run_texts(clip, manifest, index, config, output, todo["texts"], opts, console)
    shard = opts.shard
    owns_backbone = shard is None or shard.index == 0  # one process writes the backbone part
    if (
        owns_backbone
        and manifest.attrs.get("backbone_stored")
        and not backbone_part_is_valid(output, manifest.config_hash)
    ):
        clip = clip or _load_clip(config, opts, console)
        _write_backbone(clip, output, manifest.config_hash)


def _count(
    output: Path,
    manifest: Manifest,
    redone: set[int],
    retried: dict[str, str] | None,
    summary: ExtractSummary,
) -> None:
    """Fill the summary from the finished cache: failures, and ok videos encoded now vs earlier."""
    with FeatureCache(output) as cache:
        summary.failed = cache.failed_videos()
        status = cache.read_rows("videos", "status", np.arange(len(manifest.video_ids)))
    ok = status == STATUS_OK
    now = np.zeros(len(ok), dtype=bool)
    for k, (start, end) in enumerate(manifest.chunks("videos")):
        if k in redone:
            now[start:end] = True
    summary.done_now = int((ok & now).sum())
    summary.resumed = int((ok & ~now).sum())
    if retried is not None:
        summary.retried = len(retried)
        summary.recovered = sum(1 for v in retried if v not in summary.failed)


def _load_clip(config: ExtractConfig, opts: RunOptions, console: Any = None) -> Any:
    # a large model loads (or downloads) for minutes: a log says so instead of staying silent
    said = f"[extract] loading {config.model} ({config.pretrained}) on {opts.device}"
    with stage(console, said, enabled=opts.progress), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI prints its own warning for random weights
        clip = encode.load_clip(config.model, config.pretrained, device=opts.device)
    if clip.image_size != config.image_size:
        raise VtrbenchError(
            f"--model {config.model} takes {clip.image_size}px images, the config asks {config.image_size}"
        )
    return clip


def _write_backbone(clip: Any, output: Path, chash: str) -> None:
    """The text-tower weights ``--init clip`` starts the temporal heads from (one part file)."""
    export = text_tower_init(clip.model, clip.embed_dim)
    # the config hash identifies the part (not copied into the cache: see assembly)
    write_part(backbone_part_path(output), export.arrays, {**export.attrs, "config_hash": chash})
