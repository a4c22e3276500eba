"""Part files of an extraction in progress (``<cache>.parts/``) and the manifest that describes them.

Each finished chunk of videos or captions is one part, written under a temporary name, fsynced
and renamed, so a ``kill -9`` loses at most the chunk in flight.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vtrbench.cache import _io
from vtrbench.cache._io import STATUS_OK, STR, _h5_in_memory, _write_file, check_free_space
from vtrbench.errors import CacheError


def parts_dir(cache_path: Path) -> Path:
    return Path(str(cache_path) + ".parts")


def part_path(cache_path: Path, kind: str, chunk: int) -> Path:
    return parts_dir(cache_path) / f"{kind}-{chunk:05d}.h5"


def backbone_part_path(cache_path: Path) -> Path:
    """The part holding the backbone weights the heads start from (vtrbench/extract/backbone.py)."""
    return parts_dir(cache_path) / "backbone.h5"


def write_part(path: Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
    """Write one chunk's arrays (and optional attributes marking its origin) atomically."""
    tmp = path.with_name(path.name + ".tmp")
    need = sum(
        sum(len(str(v).encode()) + 16 for v in a.ravel()) if a.dtype.kind in "OU" else a.nbytes
        for a in arrays.values()
    )

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_free_space(path.parent, need, path.name)
        with _h5_in_memory(tmp) as f:
            for name, arr in arrays.items():
                if arr.dtype.kind in "OU":
                    _io._create(f, name, data=np.asarray(arr, dtype=object), dtype=STR)
                else:
                    _io._create(f, name, data=arr)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            f.attrs["complete"] = True
        os.replace(tmp, path)

    _write_file(path, tmp, write)
    _io.fsync_dir(path.parent)


def part_is_valid(path: Path, expected_rows: int) -> bool:
    """A part counts as done only if it opens, is marked complete and has the right row count."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False):
                return False
            return all(f[k].shape[0] == expected_rows for k in f.keys())
    except (OSError, KeyError, ValueError):
        return False


def part_failures(path: Path) -> np.ndarray:
    """Rows of a video part whose status is not OK (a damaged part counts as all failed)."""
    try:
        with h5py.File(path, "r") as f:
            return np.flatnonzero(f["status"][:] != STATUS_OK)
    except (OSError, KeyError, ValueError):
        return np.zeros(0, dtype=np.int64)


@dataclass
class Manifest:
    """What the parts belong to; stored as parts/manifest.json and checked on resume."""

    config: dict[str, Any]
    config_hash: str
    video_ids: list[str]
    video_paths: list[str]
    captions: list[str]
    text_video: list[int]
    splits: dict[str, dict[str, list[int]]]  # name -> {"video_rows", "text_rows", "note"}
    video_chunk: int
    text_chunk: int
    attrs: dict[str, Any]
    # per video [start_s, end_s] sampling window (None = no bound); absent in older manifests
    video_windows: list[list[float | None]] | None = None

    def chunks(self, kind: str) -> list[tuple[int, int]]:
        n, size = (
            (len(self.video_ids), self.video_chunk)
            if kind == "videos"
            else (len(self.captions), self.text_chunk)
        )
        return [(s, min(s + size, n)) for s in range(0, n, size)]

    def save(self, path: Path) -> None:
        # a name per process: shards starting together each write the same manifest
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.__dict__))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, RecursionError) as e:
            raise CacheError(
                f"the manifest of an interrupted extraction, {path}, is unreadable "
                f"({type(e).__name__}); use --overwrite to discard it"
            ) from None


def backbone_part_is_valid(cache_path: Path) -> bool:
    path = backbone_part_path(cache_path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False)) and "positional_embedding" in f
    except OSError:
        return False


def missing_parts(cache_path: Path, manifest: Manifest) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for kind in ("videos", "texts"):
        out[kind] = [
            k
            for k, (s, e) in enumerate(manifest.chunks(kind))
            if not part_is_valid(part_path(cache_path, kind, k), e - s)
        ]
    return out
