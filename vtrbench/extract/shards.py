"""Extraction split across processes (``--shard i/n``, torchrun): each shard's share of the
chunks, and the assembly of the cache once every shard has written its parts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from vtrbench import shard as sharding
from vtrbench.cache import (
    FeatureCache,
    Manifest,
    assemble,
    missing_parts,
    part_failures,
    part_path,
    parts_dir,
)
from vtrbench.config import ExtractConfig, to_plain
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.extract.locks import output_lock
from vtrbench.extract.options import ExtractSummary
from vtrbench.extract.resume import config_diff
from vtrbench.extract.texts import pos_coverage
from vtrbench.results import atomic_write_text
from vtrbench.shard import Shard


def own_share(
    output: Path, manifest: Manifest, todo: dict[str, list[int]], shard: Shard | None
) -> tuple[dict[str, list[int]], set[int]]:
    """(the chunks this process encodes, the video chunks it owns): every one unsharded; a shard's
    share otherwise, with the shard count recorded for assembly."""
    owned = set(range(len(manifest.chunks("videos"))))
    if shard is None:
        return todo, owned
    todo = {kind: [k for k in ks if shard.owns(k)] for kind, ks in todo.items()}
    owned = {k for k in owned if shard.owns(k)}
    record_shard_count(parts_dir(output), shard)
    return todo, owned


def record_shard_count(pdir: Path, shard: Shard) -> None:
    """Remember n, so that assembly can name the shard that owns a missing part."""
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


def assemble_now(output: Path, manifest: Manifest, summary: ExtractSummary) -> None:
    """Build the cache from every part (all present), and record its failed videos."""
    check_parts(output, manifest)
    manifest.attrs.update(pos_coverage(output, manifest))
    assemble(output, manifest)
    with FeatureCache(output) as cache:
        summary.failed = cache.failed_videos()
    summary.assembled = True


def shard_counts(output: Path, manifest: Manifest, owned: set[int], redone: set[int]) -> tuple[int, int]:
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
    with output_lock(output):
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
                f"({config_diff(manifest.config, to_plain(config))}); use the shards' exact options"
            )
        assemble_now(output, manifest, summary)
    summary.seconds = time.perf_counter() - t0
    return summary


def after_shard(
    output: Path, manifest: Manifest, shard: Shard, summary: ExtractSummary, owned: set[int], redone: set[int]
) -> None:
    """A shard's closing step: count its videos; the last one to finish (rank 0 under torchrun)
    assembles the cache."""
    summary.done_now, summary.resumed = shard_counts(output, manifest, owned, redone)
    if shard.torchrun:
        # Every rank has written its parts; rank 0 assembles, and its summary counts all ranks.
        sharding.barrier(shard)
        counts = torch.tensor([summary.done_now, summary.resumed, summary.frames], dtype=torch.long)
        torch.distributed.all_reduce(counts)
        summary.done_now, summary.resumed, summary.frames = (int(x) for x in counts)
        if shard.index == 0:
            with output_lock(output):
                if not output.exists():
                    assemble_now(output, manifest, summary)
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
            with output_lock(output):
                if not output.exists():
                    assemble_now(output, manifest, summary)
        except VtrbenchError as e:
            if "another `vtrbench extract`" not in str(e):
                raise
