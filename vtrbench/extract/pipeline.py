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
import os
import shutil
import signal
import sys
import tempfile
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
    part_failures,
    part_identity,
    part_is_valid,
    part_path,
    parts_dir,
    write_failed,
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
    retry_failed: bool = False  # decode again the chunks that hold failed videos, reuse the rest
    progress: bool = True
    shard: Shard | None = None  # encode only the chunks k with k mod n == i (see vtrbench.shard)
    assemble_only: bool = False  # build the cache from the parts that shards wrote; encode nothing


@dataclass
class ExtractSummary:
    output: Path
    config_hash: str
    videos: int = 0
    texts: int = 0
    done_now: int = 0  # videos encoded by this run (failed ones not counted)
    resumed: int = 0  # videos found finished in parts (or the cache) of an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # video id -> reason
    retried: int = 0  # videos marked failed before that --retry-failed decoded again
    recovered: int = 0  # ... of which now decode
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
    """sha256 of a file's bytes, hex; "" when it cannot be read (the decode error says why).

    Only regular files are read: a link to /dev/zero never ends and a named pipe blocks forever.
    """
    import hashlib
    import stat

    h = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ""
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


# File descriptors of the locks this process holds: forked decode workers close their copies, so
# that a worker outliving its parent can never keep the cache locked.
_LOCK_FDS: set[int] = set()
_PARENT_PID = 0


# A lock held by another process is retried this long: a shard that releases its lock takes it
# exclusively for a moment to see whether it may remove the file (see _release).
LOCK_WAIT_S = 1.0


def _take(lock_path: Path, exclusive: bool, busy: str) -> int:
    """An fd holding an flock on ``lock_path`` (exclusive or shared); VtrbenchError ``busy`` if held."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            # O_CLOEXEC: a program exec'd from here does not inherit the lock either
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise VtrbenchError(f"cannot create the lock file {lock_path} ({e.strerror})") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise VtrbenchError(busy) from None
            time.sleep(0.05)
            continue
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _LOCK_FDS.add(fd)
            return fd
        # the previous holder removed the file between our open and flock: lock the new one
        os.close(fd)
        if time.monotonic() > deadline:
            raise VtrbenchError(busy)


def _release(fd: int, lock_path: Path, exclusive: bool) -> None:
    """Drop a lock; the file is removed only by a process that holds it alone: a shared holder that
    removed it while another shard still ran would let an unsharded run lock a fresh file beside it."""
    try:
        if not exclusive:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive = True
            except BlockingIOError:
                pass  # another shard still holds it: the last one out removes the file
        if exclusive:
            lock_path.unlink(missing_ok=True)
    finally:
        _LOCK_FDS.discard(fd)
        os.close(fd)


@contextmanager
def _lock(output: Path, shard: Shard | None = None) -> Iterator[None]:
    """Who may write ``output`` and its parts: shards (each its own chunks) side by side, or else one
    process alone (an unsharded run, an assembly).

    Every shard holds ``<cache>.lock`` shared plus its own ``<cache>.shardIofN.lock`` exclusively;
    an unsharded run or an assembly holds ``<cache>.lock`` exclusively. So an unsharded run started
    beside a running shard (it would delete or overwrite the shard's parts) is refused in one line,
    and so is a shard started beside it.
    """
    base = Path(str(output) + ".lock")
    if shard is None:
        busy = (
            f"another `vtrbench extract` (a shard, an assembly or an unsharded run) is writing {output} "
            f"(lock {base}); wait for it to finish"
        )
        fd = _take(base, True, busy)
        try:
            yield
        finally:
            _release(fd, base, True)
        return
    shard_lock = Path(f"{output}.shard{shard.index}of{shard.count}.lock")
    fd = _take(
        base,
        False,
        f"another `vtrbench extract` is writing {output} unsharded or assembling it (lock {base}); "
        "wait for it to finish",
    )
    try:
        own = _take(
            shard_lock,
            True,
            f"another `vtrbench extract` is writing shard {shard} of {output} (lock {shard_lock})",
        )
        try:
            yield
        finally:
            _release(own, shard_lock, True)
    finally:
        _release(fd, base, False)


def check_output(output: Path) -> None:
    """Refuse, before any work, an output that cannot be written: a folder, under a file, read-only."""
    if output.is_dir():
        raise VtrbenchError(f"--output {output} is a folder; give the path of a .h5 file")
    folder = output.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise VtrbenchError(f"--output {output}: {existing} is a file, not a folder")
    for path, want_dir in ((parts_dir(output), True), (Path(str(output) + ".tmp"), False)):
        if path.exists() and path.is_dir() != want_dir:
            kind = "a file" if want_dir else "a folder"
            raise VtrbenchError(f"--output {output}: {path} is in the way ({kind}); move it away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".vtrbench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise VtrbenchError(f"--output {output}: cannot write in {folder} ({e.strerror or e})") from None


def _clean_leftovers(output: Path, chash: str) -> None:
    """Remove what a run killed after its final rename left: the parts of this very cache, a stale .tmp."""
    Path(str(output) + ".tmp").unlink(missing_ok=True)
    pdir = parts_dir(output)
    if not pdir.is_dir():
        return
    manifest_path = pdir / "manifest.json"
    try:
        same = Manifest.load(manifest_path).config_hash == chash if manifest_path.exists() else True
    except CacheError:
        same = False
    if same:
        shutil.rmtree(pdir, ignore_errors=True)


def _remedy(shard: Shard | None, plain: str, sharded: str) -> str:
    """What to do instead: ``plain`` advice suggests --overwrite, which --shard/torchrun refuses."""
    if shard is None:
        return plain
    return sharded + (" (--overwrite works only unsharded)" if "--overwrite" in plain else "")


def _existing_cache(
    output: Path, chash: str, overwrite: bool, shard: Shard | None = None
) -> tuple[bool, dict[str, str], int]:
    """(same config, failed videos, its video chunk size) of a complete cache at ``output``."""
    try:
        with FeatureCache(output) as existing:
            same = existing.config_hash == chash
            failed = existing.failed_videos() if same else {}
            chunk = int(existing.attrs.get("video_chunk", 0) or 0)
    except CacheError as e:
        if overwrite:
            return False, {}, 0
        raise CacheError(
            f"{output} exists but is not a usable vtrbench cache ({e}); "
            + _remedy(shard, "use --overwrite", "move it away or choose another --output")
        ) from None
    return same, failed, chunk


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
    check_output(output)
    if opts.assemble_only:
        return assemble_shards(output, config, summary, t0)
    with _lock(output, shard):
        reuse: Path | None = None
        chunk_size = opts.video_chunk
        old_failed: dict[str, str] = {}
        if output.exists():
            same, old_failed, old_chunk = _existing_cache(output, chash, opts.overwrite, shard)
            if not same and not opts.overwrite:
                with FeatureCache(output) as existing:
                    old_config = existing.config
                raise CacheError(
                    f"{output} was made with a different config ({_diff(old_config, to_plain(config))}); "
                    + _remedy(
                        shard,
                        "use --overwrite to replace it or choose another --output",
                        "choose another --output, or move the old cache away and run every shard again",
                    )
                )
            if same and not opts.overwrite:
                if not (opts.retry_failed and old_failed):
                    _clean_leftovers(output, chash)
                    summary.failed = old_failed
                    summary.already_complete = True
                    return summary
                reuse = output
                chunk_size = old_chunk or opts.video_chunk
        pdir = parts_dir(output)
        manifest_path = pdir / "manifest.json"
        manifest: Manifest | None = None
        if manifest_path.exists():
            try:
                manifest = Manifest.load(
                    manifest_path,
                    _remedy(
                        shard, "use --overwrite to discard it", f"delete {pdir} and run every shard again"
                    ),
                )
            except CacheError:
                if not opts.overwrite:
                    raise
            if manifest is not None and manifest.config_hash != chash:
                if not opts.overwrite:
                    raise CacheError(
                        f"an interrupted extraction in {pdir} used a different config "
                        f"({_diff(manifest.config, to_plain(config))}); "
                        + _remedy(
                            shard,
                            "use --overwrite to discard it",
                            "run this shard with the options the other shards used, or delete "
                            f"{pdir} and run every shard again with the new ones",
                        )
                    )
                manifest = None
            if manifest is not None and reuse is not None and manifest.video_chunk != chunk_size:
                manifest = None  # parts of another chunking cannot be mixed with the cache's rows
        if manifest is None and pdir.exists() and shard is None:
            # parts of another config (discarded by --overwrite) or without a manifest: nothing to resume.
            # Not for a shard: another shard starting at the same moment may be writing the manifest.
            shutil.rmtree(pdir)
        clip = None
        if manifest is None:
            clip = _load_clip(config, opts.device)
            manifest = _make_manifest(index, config, chash, clip, opts, chunk_size, preprocess_source)
            try:
                pdir.mkdir(parents=True, exist_ok=True)
                manifest.save(manifest_path)
            except OSError as e:
                raise write_failed(manifest_path, e) from None
        ranges = manifest.chunks("videos")
        if reuse is not None:
            todo = {"videos": _chunks_to_retry(output, manifest, old_failed), "texts": []}
        else:
            todo = missing_parts(output, manifest)
            if opts.retry_failed:
                done = set(todo["videos"])
                todo["videos"] = sorted(
                    done
                    | {
                        k
                        for k in range(len(ranges))
                        if k not in done and part_failures(part_path(output, "videos", k)).size
                    }
                )
        owned = set(range(len(ranges)))
        if shard is not None:
            todo = {kind: [k for k in ks if shard.owns(k)] for kind, ks in todo.items()}
            owned = {k for k in owned if shard.owns(k)}
            record_shard_count(pdir, shard)
        redone = set(todo["videos"])
        if todo["videos"] or todo["texts"]:
            if clip is None:
                clip = _load_clip(config, opts.device)
            _run_videos(clip, manifest, config, output, todo["videos"], opts, summary, console)
            _run_texts(clip, manifest, index, config, output, todo["texts"], opts, console)
        owns_backbone = shard is None or shard.index == 0  # one process writes the backbone part
        if (
            owns_backbone
            and manifest.attrs.get("backbone_stored")
            and not backbone_part_is_valid(output, manifest.config_hash)
        ):
            clip = clip or _load_clip(config, opts.device)
            _write_backbone(clip, output, manifest.config_hash)
        if shard is None:
            manifest.attrs.update(_pos_coverage(output, manifest, reuse))
            assemble(output, manifest, reuse=reuse)
            _count(output, manifest, redone, old_failed if reuse is not None else None, summary)
    if shard is not None:
        _after_shard(output, manifest, shard, summary, owned, redone)
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
    """Refuse assembly naming each missing part and the shard that would make it, or the first part
    that holds other rows than its name says (see vtrbench.cache.parts.part_identity)."""
    pdir = parts_dir(output)
    missing = missing_parts(output, manifest)  # raises PartMismatch naming a misplaced part
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


def _assemble_now(output: Path, manifest: Manifest, summary: ExtractSummary) -> None:
    check_parts(output, manifest)
    manifest.attrs.update(_pos_coverage(output, manifest))
    assemble(output, manifest)
    with FeatureCache(output) as cache:
        summary.failed = cache.failed_videos()
    summary.assembled = True


def _shard_counts(output: Path, manifest: Manifest, owned: set[int], redone: set[int]) -> tuple[int, int]:
    """(ok videos encoded now, ok videos found in earlier parts) among this shard's chunks."""
    now = earlier = 0
    for k, (start, end) in enumerate(manifest.chunks("videos")):
        if k in owned:
            ok = (end - start) - int(part_failures(part_path(output, "videos", k)).size)
            if k in redone:
                now += ok
            else:
                earlier += ok
    return now, earlier


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
        manifest = Manifest.load(manifest_path, f"delete {parts_dir(output)} and run every shard again")
        if manifest.config_hash != chash:
            raise CacheError(
                f"the parts in {parts_dir(output)} were made with a different config "
                f"({_diff(manifest.config, to_plain(config))}); use the shards' exact options"
            )
        _assemble_now(output, manifest, summary)
    summary.seconds = time.perf_counter() - t0
    return summary


def _after_shard(
    output: Path, manifest: Manifest, shard: Shard, summary: ExtractSummary, owned: set[int], redone: set[int]
) -> None:
    from vtrbench import shard as sharding

    summary.done_now, summary.resumed = _shard_counts(output, manifest, owned, redone)
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


def _chunks_to_retry(output: Path, manifest: Manifest, failed: dict[str, str]) -> list[int]:
    """Video chunks of the cache that hold a failed video (and have no fully decoded part yet)."""
    row = {v: i for i, v in enumerate(manifest.video_ids)}
    ranges = manifest.chunks("videos")
    chunks = sorted({row[v] // manifest.video_chunk for v in failed if v in row})
    todo = []
    for k in chunks:
        part = part_path(output, "videos", k)
        valid = part_is_valid(part, ranges[k][1] - ranges[k][0], part_identity(manifest, "videos", k))
        if not valid or part_failures(part).size:
            todo.append(k)
    return todo


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


def _write_backbone(clip: Any, output: Path, chash: str) -> None:
    """The text-tower weights ``--init clip`` starts the temporal heads from (one part file)."""
    from vtrbench.extract.backbone import text_tower_init

    export = text_tower_init(clip.model, clip.embed_dim)
    # the config hash identifies the part (not copied into the cache: see assembly)
    write_part(backbone_part_path(output), export.arrays, {**export.attrs, "config_hash": chash})


def _make_manifest(
    index: DatasetIndex,
    config: ExtractConfig,
    chash: str,
    clip: Any,
    opts: RunOptions,
    video_chunk: int | None = None,
    preprocess_source: str | None = None,
) -> Manifest:
    import open_clip

    from vtrbench.extract.backbone import text_tower_init
    from vtrbench.extract.thumbnails import THUMB_NOTE

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

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str, str, str]:
        """(position, pixels, frame numbers, error, sha256 of the file bytes, thumbnail strip)."""
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
            thumb = ""
            if not c.no_thumbnails:
                from vtrbench.extract.thumbnails import thumbnail_strip

                thumb = thumbnail_strip(video.frames[: c.max_frames])
            return i, pixels, np.asarray(video.frame_index, dtype=np.int32), "", sha, thumb
        except DecodeError as e:
            # the path is already in /videos/path; the stored error is the reason alone
            return i, None, None, e.reason, sha, ""
        except Exception as e:  # a broken file must not stop the run; the reason is kept
            return i, None, None, f"unexpected error: {type(e).__name__}: {e}", sha, ""


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    for fd in list(_LOCK_FDS):
        # the parent keeps the lock; a forked worker's copy would keep it after the parent died
        try:
            os.close(fd)
        except OSError:
            pass
    _LOCK_FDS.clear()
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (even by kill -9); elsewhere, rely on torch."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if _PARENT_PID and os.getppid() != _PARENT_PID:
        os._exit(1)  # the parent died before the request took effect


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
    global _PARENT_PID
    _PARENT_PID = os.getpid()
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
            chunk.keep_thumbnails = not config.no_thumbnails
            for j in range(n):
                _, pix, fidx, err, sha, thumb = next(items)
                chunk.sha256[j] = sha
                chunk.thumbnail[j] = thumb
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
            _refuse_nonfinite(chunk.nonfinite_rows(), start, manifest.video_ids, "video", config)
            write_part(
                part_path(output, "videos", k),
                chunk.arrays(config.patch_tokens),
                part_identity(manifest, "videos", k),
            )
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
        self.thumbnail = np.array([""] * n, dtype=object)  # base64 JPEG strip, "" if none
        self.keep_thumbnails = False  # set from the config: a part holds /thumbnail unless --no-thumbnails
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

    def nonfinite_rows(self) -> np.ndarray:
        """Rows whose stored (float16) features hold NaN or inf: an overflow in the encoder."""
        bad = ~np.isfinite(self.frames).all(axis=(1, 2))
        if self.patches is not None:
            bad |= ~np.isfinite(self.patches).reshape(self.n, -1).all(axis=1)
        return np.flatnonzero(bad)

    def arrays(self, patch_tokens: bool) -> dict[str, np.ndarray]:
        out = {
            "frames": self.frames,
            "frame_mask": self.mask,
            "frame_index": self.findex,
            "status": self.status,
            "error": self.errors,
            "file_sha256": self.sha256,
        }
        if self.keep_thumbnails:
            out["thumbnail"] = self.thumbnail
        if patch_tokens:
            # every video of the chunk failed: keep the layout with zero patches
            out["patches"] = (
                self.patches
                if self.patches is not None
                else np.zeros((self.n, self.T, 0, self.D), dtype=np.float16)
            )
        return out


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
            bad = np.flatnonzero(~np.isfinite(feats).reshape(len(feats), -1).all(axis=1))
            _refuse_nonfinite(bad, start, None, "caption row", config)
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
            write_part(part_path(output, "texts", k), arrays, part_identity(manifest, "texts", k))


def _refuse_nonfinite(
    rows: np.ndarray, start: int, names: list[str] | None, what: str, config: ExtractConfig
) -> None:
    """Stop before a part with NaN/inf features is written (values checked at option time cannot
    rule out an overflow inside the encoder), naming the first video or caption."""
    if len(rows) == 0:
        return
    row = start + int(rows[0])
    first = names[row] if names is not None else str(row)
    more = f" and {len(rows) - 1} more of its chunk" if len(rows) > 1 else ""
    raise VtrbenchError(
        f"the encoder gave NaN/inf features for {what} {first}{more} (image mean "
        f"{tuple(config.image_mean)}, std {tuple(config.image_std)}, precision {config.precision}); "
        "nothing of that chunk was written, finished parts are kept"
    )


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


def _pos_coverage(output: Path, manifest: Manifest, reuse: Path | None = None) -> dict[str, Any]:
    """Cache attributes: the share of captions whose verb / noun stream is empty (falls back to the
    sentence), and the share found by caption rules; empty when the cache has no masks. With
    ``reuse`` (--retry-failed: captions are not re-encoded) they are the reused cache's."""
    import h5py

    if reuse is not None:
        with FeatureCache(reuse) as cache:
            return {k: v for k, v in cache.attrs.items() if k.startswith("pos_")}

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
