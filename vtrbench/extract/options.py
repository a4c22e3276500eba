"""How an extraction runs (``RunOptions``) and what it did (``ExtractSummary``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
    """What an extraction did: counts, failures, timing (the CLI prints it)."""

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
