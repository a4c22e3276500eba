"""What an earlier run left at the output, and what this run does about it.

A complete cache (same config: nothing to do; another config: refused unless --overwrite), the
parts of an interrupted run (resumed when their manifest matches this config), and the chunks
still to encode.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrbench.cache import (
    FeatureCache,
    Manifest,
    missing_parts,
    part_failures,
    part_identity,
    part_is_valid,
    part_path,
    parts_dir,
)
from vtrbench.config import ExtractConfig, to_plain
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.extract.options import RunOptions
from vtrbench.io import check_output_path
from vtrbench.shard import Shard


def check_output(output: Path) -> None:
    """Refuse, before any work, an output that cannot be written (:func:`vtrbench.io.check_output_path`:
    a folder, under a file, read-only, /proc), or whose shard parts or temporary file are in the way."""
    check_output_path(output, "--output")
    for path, want_dir in ((parts_dir(output), True), (Path(str(output) + ".tmp"), False)):
        if path.exists() and path.is_dir() != want_dir:
            kind = "a file" if want_dir else "a folder"
            raise VtrbenchError(f"--output {output}: {path} is in the way ({kind}); move it away")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtrbenchError(
            f"--output {output}: cannot write in {output.parent} ({e.strerror or e})"
        ) from None


def clean_leftovers(output: Path, chash: str) -> None:
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


def remedy(shard: Shard | None, plain: str, sharded: str) -> str:
    """What to do instead: ``plain`` advice suggests --overwrite, which --shard/torchrun refuses."""
    if shard is None:
        return plain
    return sharded + (" (--overwrite works only unsharded)" if "--overwrite" in plain else "")


def existing_cache(
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
            + remedy(shard, "use --overwrite", "move it away or choose another --output")
        ) from None
    return same, failed, chunk


@dataclass
class Previous:
    """What a complete cache already at the output means for this run."""

    video_chunk: int  # videos per part: the old cache's when its rows are reused
    failed: dict[str, str] = field(default_factory=dict)  # the old cache's failed videos
    complete: bool = False  # same config, nothing to retry: nothing to do
    reuse: Path | None = None  # --retry-failed: the cache whose finished rows are kept


def previous_cache(output: Path, config: ExtractConfig, chash: str, opts: RunOptions) -> Previous:
    """Look at the cache already at ``output``: refuse one of another config (unless
    ``opts.overwrite``), say whether it is complete, or reuse it for ``opts.retry_failed``."""
    shard = opts.shard
    previous = Previous(video_chunk=opts.video_chunk)
    if not output.exists():
        return previous
    same, previous.failed, old_chunk = existing_cache(output, chash, opts.overwrite, shard)
    if not same and not opts.overwrite:
        with FeatureCache(output) as existing:
            old_config = existing.config
        raise CacheError(
            f"{output} was made with a different config ({config_diff(old_config, to_plain(config))}); "
            + remedy(
                shard,
                "use --overwrite to replace it or choose another --output",
                "choose another --output, or move the old cache away and run every shard again",
            )
        )
    if same and not opts.overwrite:
        if not (opts.retry_failed and previous.failed):
            previous.complete = True
            return previous
        previous.reuse = output
        previous.video_chunk = old_chunk or opts.video_chunk
    return previous


def resumable_manifest(
    output: Path, config: ExtractConfig, chash: str, opts: RunOptions, previous: Previous
) -> Manifest | None:
    """The manifest of an interrupted run's parts that this run continues, or None.

    Parts of another config are refused (discarded with ``opts.overwrite``); an unsharded run
    removes parts it cannot resume.
    """
    shard = opts.shard
    pdir = parts_dir(output)
    manifest_path = pdir / "manifest.json"
    manifest: Manifest | None = None
    if manifest_path.exists():
        try:
            manifest = Manifest.load(
                manifest_path,
                remedy(shard, "use --overwrite to discard it", f"delete {pdir} and run every shard again"),
            )
        except CacheError:
            if not opts.overwrite:
                raise
        if manifest is not None and manifest.config_hash != chash:
            if not opts.overwrite:
                raise CacheError(
                    f"an interrupted extraction in {pdir} used a different config "
                    f"({config_diff(manifest.config, to_plain(config))}); "
                    + remedy(
                        shard,
                        "use --overwrite to discard it",
                        "run this shard with the options the other shards used, or delete "
                        f"{pdir} and run every shard again with the new ones",
                    )
                )
            manifest = None
        if (
            manifest is not None
            and previous.reuse is not None
            and manifest.video_chunk != previous.video_chunk
        ):
            manifest = None  # parts of another chunking cannot be mixed with the cache's rows
    if manifest is None and pdir.exists() and shard is None:
        # parts of another config (discarded by --overwrite) or without a manifest: nothing to resume.
        # Not for a shard: another shard starting at the same moment may be writing the manifest.
        shutil.rmtree(pdir)
    return manifest


def chunks_to_do(
    output: Path, manifest: Manifest, opts: RunOptions, previous: Previous
) -> dict[str, list[int]]:
    """The video and caption chunks to encode (all shards'): missing parts, and with
    ``opts.retry_failed`` the chunks that hold failed videos."""
    ranges = manifest.chunks("videos")
    if previous.reuse is not None:
        return {"videos": chunks_to_retry(output, manifest, previous.failed), "texts": []}
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
    return todo


def chunks_to_retry(output: Path, manifest: Manifest, failed: dict[str, str]) -> list[int]:
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


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first options that differ, ``key: old -> new`` (for a refusal that names them)."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4]) or "same options"
