"""``vtrbench extract``: dataset + frozen CLIP -> HDF5 feature cache, resumable.

Work is split into chunks of videos and of captions. Worker processes decode and
preprocess videos (PyAV + batched tensor ops) while the main process encodes
batches of frames; each finished chunk is written as a part file atomically (see
vtrbench.cache). Encoding batches never cross a chunk boundary, so a resumed run
produces bit-for-bit the same features as an uninterrupted one.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench.cache import (
    STATUS_FAILED,
    STATUS_OK,
    FeatureCache,
    Manifest,
    assemble,
    backbone_part_is_valid,
    backbone_part_path,
    missing_parts,
    part_path,
    parts_dir,
    write_part,
)
from vtrbench.config import ExtractConfig, config_hash, to_plain
from vtrbench.datasets.base import DatasetIndex
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.shard import Shard


@dataclass(frozen=True)
class RunOptions:
    """How to run an extraction (speed only; values do not depend on these)."""

    device: str = "cpu"
    batch_size: int = 0  # frames per forward pass; 0 = automatic
    text_batch_size: int = 256
    workers: int = -1  # decode processes; -1 = automatic, 0 = decode in the main process
    video_chunk: int = 64  # videos per part file (the unit of resume and sharding)
    text_chunk: int = 4096
    overwrite: bool = False
    progress: bool = True
    shard: Shard | None = None  # encode only the chunks k with k mod n == i (see vtrbench.shard)
    assemble_only: bool = False  # build the cache from the parts that shards wrote; encode nothing


@dataclass
class ExtractSummary:
    output: Path
    config_hash: str
    videos: int = 0
    texts: int = 0
    done_now: int = 0  # videos encoded by this run
    resumed: int = 0  # videos found finished in parts from an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # video id -> reason
    already_complete: bool = False
    seconds: float = 0.0
    frames: int = 0
    shard: str | None = None  # "i/n" when this process was one shard
    assembled: bool = True  # False: a shard finished its parts, other shards' parts are still missing
    missing_parts: int = 0

    def failure_reasons(self) -> Counter[str]:
        return Counter(r.split(":")[0] for r in self.failed.values())


def dataset_fingerprint(index: DatasetIndex) -> str:
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


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hex; "" when it cannot be read (the decode error says why)."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def auto_workers() -> int:
    import os

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # One core stays with the encoder; decoding is cheap per frame, so a few workers suffice.
    return max(1, min(8, n - 1))


def auto_batch_size(device: str, image_size: int) -> int:
    if device.startswith("cuda"):
        return 512 if image_size <= 224 else 128
    return 64


@contextmanager
def _lock(output: Path, shard: Shard | None = None) -> Iterator[None]:
    # Shards write disjoint parts, so each holds its own lock; assembly holds the cache's.
    suffix = f".shard{shard.index}of{shard.count}.lock" if shard is not None else ".lock"
    lock_path = Path(str(output) + suffix)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = f"shard {shard} of " if shard is not None else ""
            raise VtrbenchError(
                f"another `vtrbench extract` is writing {who}{output} (lock {lock_path})"
            ) from None
        try:
            yield
        finally:
            # only the holder removes the lock file, whether the run succeeded or failed
            lock_path.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    cache); by default it is worked out from the config's model and weights.
    """
    from vtrbench.extract.preprocess_cfg import check_preprocessing

    output = Path(output)
    check_preprocessing(config)
    chash = config_hash(config)
    summary = ExtractSummary(
        output=output, config_hash=chash, videos=len(index.videos), texts=len(index.texts)
    )
    t0 = time.perf_counter()
    shard = opts.shard
    summary.shard = str(shard) if shard is not None else None
    if opts.assemble_only:
        return assemble_shards(output, config, summary, t0)
    with _lock(output, shard):
        if output.exists():
            if opts.overwrite:
                output.unlink()
            else:
                try:
                    with FeatureCache(output) as existing:
                        same = existing.config_hash == chash
                        old_config = existing.config
                except CacheError:
                    raise CacheError(
                        f"{output} exists but is not a vtrbench cache; use --overwrite"
                    ) from None
                if not same:
                    raise CacheError(
                        f"{output} was made with a different config ({_diff(old_config, to_plain(config))}); "
                        "use --overwrite to replace it or choose another --output"
                    )
                summary.already_complete = True
                return summary
        pdir = parts_dir(output)
        manifest_path = pdir / "manifest.json"
        if pdir.exists() and opts.overwrite:
            shutil.rmtree(pdir)
        if manifest_path.exists():
            manifest = Manifest.load(manifest_path)
            if manifest.config_hash != chash:
                raise CacheError(
                    f"an interrupted extraction in {pdir} used a different config "
                    f"({_diff(manifest.config, to_plain(config))}); use --overwrite to discard it"
                )
            clip = None
        else:
            clip = _load_clip(config, opts.device)
            manifest = _make_manifest(index, config, chash, clip, opts, preprocess_source)
            pdir.mkdir(parents=True, exist_ok=True)
            manifest.save(manifest_path)
        todo = missing_parts(output, manifest)
        owned = range(len(manifest.chunks("videos")))
        if shard is not None:
            todo = {kind: [k for k in ks if shard.owns(k)] for kind, ks in todo.items()}
            owned = [k for k in owned if shard.owns(k)]
            record_shard_count(pdir, shard)
        pending = set(todo["videos"])
        summary.resumed = sum(
            e - s for k, (s, e) in enumerate(manifest.chunks("videos")) if k in owned and k not in pending
        )
        if todo["videos"] or todo["texts"]:
            if clip is None:
                clip = _load_clip(config, opts.device)
            _run_videos(clip, manifest, config, output, todo["videos"], opts, summary, console)
            _run_texts(clip, manifest, index, config, output, todo["texts"], opts, console)
        owns_backbone = shard is None or shard.index == 0  # one process writes the backbone part
        if owns_backbone and manifest.attrs.get("backbone_stored") and not backbone_part_is_valid(output):
            clip = clip or _load_clip(config, opts.device)
            _write_backbone(clip, output)
        if shard is None:
            _collect_failures(output, manifest, summary)
            manifest.attrs.update(_pos_coverage(output, manifest))
            assemble(output, manifest)
    if shard is not None:
        _after_shard(output, manifest, shard, summary)
    summary.seconds = time.perf_counter() - t0
    return summary


# ------------------------------------------------------------------ shards


def record_shard_count(pdir: Path, shard: Shard) -> None:
    """Remember n, so that assembly can name the shard that owns a missing part."""
    from vtrbench.results import atomic_write_text

    atomic_write_text(pdir / "shards.json", json.dumps({"count": shard.count}))


def _owner_hint(pdir: Path, kind: str, k: int) -> str:
    try:
        count = int(json.loads((pdir / "shards.json").read_text())["count"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" (shard {k % count}/{count})"


def check_parts(output: Path, manifest: Manifest) -> None:
    """Refuse assembly naming each missing or foreign part and the shard that would make it."""
    import h5py

    pdir = parts_dir(output)
    missing = missing_parts(output, manifest)
    problems = [
        f"{part_path(output, kind, k).name}{_owner_hint(pdir, kind, k)}"
        for kind in missing
        for k in missing[kind]
    ]
    if problems:
        shown = ", ".join(problems[:6]) + (f" and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CacheError(
            f"cannot assemble {output}: {len(problems)} part(s) missing: {shown}; run the same "
            "`vtrbench extract` with the --shard i/n named (or without --shard) to make them, then --assemble"
        )
    for kind in ("videos", "texts"):
        for k in range(len(manifest.chunks(kind))):
            path = part_path(output, kind, k)
            with h5py.File(path, "r") as f:
                part_hash = f.attrs.get("config_hash")
            if part_hash is not None and str(part_hash) != manifest.config_hash:
                raise CacheError(
                    f"cannot assemble {output}: {path.name} belongs to another extraction (config "
                    f"{str(part_hash)[:8]}, this one {manifest.config_hash[:8]}); delete it and rerun its "
                    "shard"
                )


def _assemble_now(output: Path, manifest: Manifest, summary: ExtractSummary) -> None:
    check_parts(output, manifest)
    _collect_failures(output, manifest, summary)
    manifest.attrs.update(_pos_coverage(output, manifest))
    assemble(output, manifest)
    summary.assembled = True


def assemble_shards(
    output: Path, config: ExtractConfig, summary: ExtractSummary, t0: float
) -> ExtractSummary:
    """``--assemble``: build the cache once every shard has written its parts."""
    chash = summary.config_hash
    with _lock(output):
        if output.exists():
            with FeatureCache(output) as existing:
                if existing.config_hash != chash:
                    raise CacheError(f"{output} exists and was made with a different config")
            summary.already_complete = True
            return summary
        manifest_path = parts_dir(output) / "manifest.json"
        if not manifest_path.exists():
            raise CacheError(
                f"no extraction parts for {output}: run `vtrbench extract ... --shard i/n` for every "
                "shard first"
            )
        manifest = Manifest.load(manifest_path)
        if manifest.config_hash != chash:
            raise CacheError(
                f"the parts in {parts_dir(output)} were made with a different config "
                f"({_diff(manifest.config, to_plain(config))}); use the shards' exact options"
            )
        _assemble_now(output, manifest, summary)
    summary.seconds = time.perf_counter() - t0
    return summary


def _after_shard(output: Path, manifest: Manifest, shard: Shard, summary: ExtractSummary) -> None:
    from vtrbench import shard as sharding

    if shard.torchrun:
        # Every rank has written its parts; rank 0 assembles, and its summary counts all ranks.
        sharding.barrier(shard)
        counts = torch.tensor([summary.done_now, summary.resumed, summary.frames], dtype=torch.long)
        torch.distributed.all_reduce(counts)
        summary.done_now, summary.resumed, summary.frames = (int(x) for x in counts)
        if shard.index == 0:
            with _lock(output):
                if not output.exists():
                    _assemble_now(output, manifest, summary)
        else:
            summary.assembled = False
        sharding.barrier(shard)  # no rank exits (and tears the group down) before the cache exists
        sharding.finish(shard)
        return
    missing = missing_parts(output, manifest)
    summary.missing_parts = len(missing["videos"]) + len(missing["texts"])
    summary.assembled = False
    if summary.missing_parts == 0:
        # The last shard to finish assembles (a job array needs no extra step); if another one
        # is assembling right now, it will finish the job.
        try:
            with _lock(output):
                if not output.exists():
                    _assemble_now(output, manifest, summary)
        except VtrbenchError as e:
            if "another `vtrbench extract`" not in str(e):
                raise


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4]) or "same options"


def _load_clip(config: ExtractConfig, device: str) -> Any:
    from vtrbench.extract.encode import load_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI prints its own warning for random weights
        clip = load_clip(config.model, config.pretrained, device=device)
    if clip.image_size != config.image_size:
        raise VtrbenchError(
            f"--model {config.model} takes {clip.image_size}px images, the config asks {config.image_size}"
        )
    return clip


def _write_backbone(clip: Any, output: Path) -> None:
    """The text-tower weights ``--init clip`` starts the temporal heads from (one part file)."""
    from vtrbench.extract.backbone import text_tower_init

    export = text_tower_init(clip.model, clip.embed_dim)
    write_part(backbone_part_path(output), export.arrays, export.attrs)


def _make_manifest(
    index: DatasetIndex,
    config: ExtractConfig,
    chash: str,
    clip: Any,
    opts: RunOptions,
    preprocess_source: str | None = None,
) -> Manifest:
    import open_clip

    from vtrbench.extract.backbone import text_tower_init

    backbone = text_tower_init(clip.model, clip.embed_dim)
    from vtrbench.extract.preprocess_cfg import preprocessing_attrs

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
        video_chunk=max(1, opts.video_chunk),
        text_chunk=max(1, opts.text_chunk),
        attrs=attrs,
        video_windows=windows,
    )


# ------------------------------------------------------------------ videos


class _DecodeJobs(torch.utils.data.Dataset):
    """One item per video: decoded, sampled and preprocessed frames, or the reason it failed."""

    def __init__(
        self,
        paths: list[str],
        config: ExtractConfig,
        out_dtype: torch.dtype,
        windows: list[list[float | None]] | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.out_dtype = out_dtype
        self.windows = windows or [[None, None]] * len(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str, str]:
        """(position, pixels, frame numbers, error, sha256 of the file bytes)."""
        from vtrbench.extract.decode import DecodeError, decode_video
        from vtrbench.extract.preprocess import preprocess_frames

        c = self.config
        # Hashed here, in the worker, so train/test overlap can later be checked by content.
        sha = file_sha256(self.paths[i])
        start_s, end_s = self.windows[i]
        try:
            video = decode_video(
                self.paths[i],
                rate=c.fps,
                max_frames=c.max_frames,
                sampling=c.sampling,
                start_s=start_s,
                end_s=end_s,
            )
            pixels = preprocess_frames(
                video.frames,
                c.image_size,
                tuple(c.image_mean),
                tuple(c.image_std),
                interpolation=c.interpolation,
                resize_mode=c.resize_mode,
                out_dtype=self.out_dtype,
            )
            return i, pixels, np.asarray(video.frame_index, dtype=np.int32), "", sha
        except DecodeError as e:
            # the path is already in /videos/path; the stored error is the reason alone
            return i, None, None, e.reason, sha
        except Exception as e:  # a broken file must not stop the run; the reason is kept
            return i, None, None, f"unexpected error: {type(e).__name__}: {e}", sha


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _run_videos(
    clip: Any,
    manifest: Manifest,
    config: ExtractConfig,
    output: Path,
    chunks: list[int],
    opts: RunOptions,
    summary: ExtractSummary,
    console: Any,
) -> None:
    if not chunks:
        return
    from vtrbench.extract.encode import encode_frames

    device = torch.device(opts.device)
    cuda = device.type == "cuda"
    ranges = manifest.chunks("videos")
    order = [i for k in chunks for i in range(*ranges[k])]
    workers = auto_workers() if opts.workers < 0 else opts.workers
    batch = opts.batch_size or auto_batch_size(opts.device, config.image_size)
    all_windows = manifest.video_windows or [[None, None]] * len(manifest.video_paths)
    jobs = _DecodeJobs(
        [manifest.video_paths[i] for i in order],
        config,
        torch.float16 if cuda else torch.float32,
        [all_windows[i] for i in order],
    )
    loader = torch.utils.data.DataLoader(
        jobs,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=cuda,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    T, D = config.max_frames, clip.embed_dim
    items = iter(loader)
    with _progress(opts.progress, console) as progress:
        task = progress.add_task("videos", total=len(order), rate="")
        t0, frames_done = time.perf_counter(), 0
        for k in chunks:
            start, end = ranges[k]
            n = end - start
            chunk = _ChunkArrays(n, T, D)
            for j in range(n):
                _, pix, fidx, err, sha = next(items)
                chunk.sha256[j] = sha
                if err or pix is None or pix.shape[0] == 0:
                    chunk.status[j] = STATUS_FAILED
                    chunk.errors[j] = err or "no frames decoded"
                else:
                    t = min(pix.shape[0], T)
                    chunk.mask[j, :t] = True
                    chunk.findex[j, :t] = fidx[:t]
                    chunk.add(j, pix[:t], device)
                    frames_done += t
                if chunk.pending_frames >= batch:
                    chunk.flush(clip, device, config.patch_tokens, encode_frames)
                elapsed = max(time.perf_counter() - t0, 1e-9)
                progress.update(
                    task,
                    advance=1,
                    rate=f"{progress.tasks[task].completed / elapsed:.1f} videos/s, "
                    f"{frames_done / elapsed:.0f} frames/s",
                )
            chunk.flush(clip, device, config.patch_tokens, encode_frames)
            write_part(
                part_path(output, "videos", k),
                chunk.arrays(config.patch_tokens),
                {"config_hash": manifest.config_hash},
            )
            summary.done_now += n
        summary.frames = frames_done


class _ChunkArrays:
    """The arrays of one video part, filled as frames are encoded (batches never cross chunks)."""

    def __init__(self, n: int, frames_per_video: int, dim: int) -> None:
        self.n, self.T, self.D = n, frames_per_video, dim
        self.frames = np.zeros((n, frames_per_video, dim), dtype=np.float16)
        self.mask = np.zeros((n, frames_per_video), dtype=bool)
        self.findex = np.full((n, frames_per_video), -1, dtype=np.int32)
        self.status = np.full(n, STATUS_OK, dtype=np.int8)
        self.errors = np.array([""] * n, dtype=object)
        self.sha256 = np.array([""] * n, dtype=object)
        self.patches: np.ndarray | None = None
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.pending_frames = 0

    def add(self, j: int, pixels: torch.Tensor, device: torch.device) -> None:
        """Queue video ``j``'s (t, 3, S, S) frames for the next batch.

        On CUDA the frames (pinned by the DataLoader) are copied to the GPU right away and
        asynchronously, so the copy overlaps the wait for the next video; concatenating
        pinned tensors on the host would give pageable memory and a synchronous copy.
        """
        self.pending.append((j, pixels.to(device, non_blocking=True)))
        self.pending_frames += pixels.shape[0]

    def flush(self, clip: Any, device: torch.device, patch_tokens: bool, encode_frames: Any) -> None:
        if not self.pending:
            return
        pix = torch.cat([p for _, p in self.pending]).to(device, non_blocking=True)
        emb, tok = encode_frames(clip, pix, patch_tokens=patch_tokens)
        emb_np = emb.cpu().numpy().astype(np.float16)
        tok_np = tok.cpu().numpy().astype(np.float16) if tok is not None else None
        if tok_np is not None and self.patches is None:
            self.patches = np.zeros((self.n, self.T, *tok_np.shape[1:]), dtype=np.float16)
        at = 0
        for j, p in self.pending:
            t = p.shape[0]
            self.frames[j, :t] = emb_np[at : at + t]
            if tok_np is not None and self.patches is not None:
                self.patches[j, :t] = tok_np[at : at + t]
            at += t
        self.pending, self.pending_frames = [], 0

    def arrays(self, patch_tokens: bool) -> dict[str, np.ndarray]:
        out = {
            "frames": self.frames,
            "frame_mask": self.mask,
            "frame_index": self.findex,
            "status": self.status,
            "error": self.errors,
            "file_sha256": self.sha256,
        }
        if patch_tokens:
            # every video of the chunk failed: keep the layout with zero patches
            out["patches"] = (
                self.patches
                if self.patches is not None
                else np.zeros((self.n, self.T, 0, self.D), dtype=np.float16)
            )
        return out


def _collect_failures(output: Path, manifest: Manifest, summary: ExtractSummary) -> None:
    import h5py

    for k, (start, _) in enumerate(manifest.chunks("videos")):
        with h5py.File(part_path(output, "videos", k), "r") as f:
            status = f["status"][:]
            if (status != STATUS_OK).any():
                errors = f["error"].asstr()[:]
                for j in np.flatnonzero(status != STATUS_OK):
                    summary.failed[manifest.video_ids[start + j]] = str(errors[j])


# ------------------------------------------------------------------ texts


def _run_texts(
    clip: Any,
    manifest: Manifest,
    index: DatasetIndex,
    config: ExtractConfig,
    output: Path,
    chunks: list[int],
    opts: RunOptions,
    console: Any,
) -> None:
    if not chunks:
        return
    from vtrbench.extract.encode import encode_tokens, tokenize
    from vtrbench.extract.tagging import make_tagger

    tagger = make_tagger(config.tagger)
    device = torch.device(opts.device)
    ranges = manifest.chunks("texts")
    L, D = config.max_words, clip.embed_dim
    with _progress(opts.progress, console) as progress:
        task = progress.add_task("captions", total=sum(ranges[k][1] - ranges[k][0] for k in chunks), rate="")
        t0 = time.perf_counter()
        for k in chunks:
            start, end = ranges[k]
            entries = index.texts[start:end]
            roles = []
            for t in entries:
                if t.roles is not None:
                    roles.append(list(zip(t.caption.split(), t.roles, strict=False)))
                else:
                    roles.append(tagger(t.caption) if tagger else None)
            tok = tokenize(clip, [t.caption for t in entries], L, roles)
            feats = np.zeros((end - start, L, D), dtype=np.float16)
            for s in range(0, end - start, opts.text_batch_size):
                e = min(s + opts.text_batch_size, end - start)
                ids = torch.from_numpy(tok.token_ids[s:e]).to(device)
                eot = torch.from_numpy(tok.eot[s:e].astype(np.int64)).to(device)
                out = encode_tokens(clip, ids, eot).cpu().numpy().astype(np.float16)
                feats[s:e, : out.shape[1]] = out
                elapsed = max(time.perf_counter() - t0, 1e-9)
                progress.update(
                    task, advance=e - s, rate=f"{progress.tasks[task].completed / elapsed:.0f} captions/s"
                )
            arrays = {
                "tokens": feats,
                "token_ids": tok.token_ids,
                "token_mask": tok.token_mask,
                "eot": tok.eot,
            }
            if tagger is not None or any(r is not None for r in roles):
                arrays["noun_mask"] = tok.noun_mask
                arrays["verb_mask"] = tok.verb_mask
                arrays["verb_source"] = _stream_sources(roles, entries, tok.verb_mask, "verb")
                arrays["noun_source"] = _stream_sources(roles, entries, tok.noun_mask, "noun")
            write_part(part_path(output, "texts", k), arrays, {"config_hash": manifest.config_hash})


def _stream_sources(roles: list[Any], entries: list[Any], mask: np.ndarray, kind: str) -> np.ndarray:
    """Per caption how its verb (noun) stream was found: tagged / rule / known / sentence.

    "sentence" whenever no token is marked (also when the only marked word fell past
    ``max_words``): the head then uses the whole sentence for that stream.
    """
    out = np.array(["sentence"] * len(entries), dtype=object)
    for i, (r, t) in enumerate(zip(roles, entries, strict=True)):
        if mask[i].any():
            out[i] = "known" if t.roles is not None else getattr(r, f"{kind}_source", "tagged")
    return out


def _pos_coverage(output: Path, manifest: Manifest) -> dict[str, Any]:
    """Cache attributes: the share of captions whose verb / noun stream is empty (falls back to the
    sentence), and the share found by caption rules; empty when the cache has no masks."""
    import h5py

    n = no_verb = no_noun = by_rule = 0
    for k, _ in enumerate(manifest.chunks("texts")):
        with h5py.File(part_path(output, "texts", k), "r") as f:
            if "verb_mask" not in f:
                return {}
            verb, noun = f["verb_mask"][:], f["noun_mask"][:]
            n += len(verb)
            no_verb += int((~verb.any(axis=1)).sum())
            no_noun += int((~noun.any(axis=1)).sum())
            if "verb_source" in f:
                by_rule += int((f["verb_source"].asstr()[:] == "rule").sum())
    if n == 0:
        return {}
    return {
        "pos_no_verb_share": no_verb / n,
        "pos_no_noun_share": no_noun / n,
        "pos_verb_by_rule_share": by_rule / n,
        "pos_coverage": (
            f"no verb {100 * no_verb / n:.1f} % ({no_verb} of {n}), no noun {100 * no_noun / n:.1f} % "
            f"({no_noun}); verb found by caption rules {100 * by_rule / n:.1f} %"
        ),
    }


@contextmanager
def _progress(enabled: bool, console: Any) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress
