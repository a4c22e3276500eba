"""Part files of an extraction in progress (``<cache>.parts/``) and the manifest that describes them.

Each finished chunk of videos or captions is one part, written under a temporary name, fsynced
and renamed, so a ``kill -9`` loses at most the chunk in flight.

Each part also says what it holds (:func:`part_identity`: kind, chunk index, row range, a digest of
its video ids or captions, the config hash). A file name alone proves nothing: parts swapped,
renamed or copied in from another extraction would otherwise be assembled into the wrong rows.
Resume and assembly check every part against the manifest and refuse a part that holds other rows,
naming it (:class:`PartMismatch`); a part without that record (an older vtrbench) is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vtrbench.cache import _io
from vtrbench.cache._io import STATUS_OK, STR, check_free_space, h5_in_memory, write_file
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
        with h5_in_memory(tmp) as f:
            for name, arr in arrays.items():
                if arr.dtype.kind in "OU":
                    _io.create_dataset(f, name, data=np.asarray(arr, dtype=object), dtype=STR)
                else:
                    _io.create_dataset(f, name, data=arr)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            f.attrs["complete"] = True
        os.replace(tmp, path)

    write_file(path, tmp, write)
    _io.fsync_dir(path.parent)


class PartMismatch(CacheError):
    """A part file that holds other rows than its name says (moved, renamed or from another extraction)."""


# Attributes that identify a part; they stay in the part (assembly copies datasets, not these).
IDENTITY_KEYS = ("kind", "chunk", "row_start", "row_end", "rows_sha256", "config_hash")


def _rows_digest(manifest: Manifest, kind: str, start: int, end: int) -> str:
    """sha256 of what the rows are: video ids, or (caption, video row) pairs, length-prefixed."""
    h = hashlib.sha256(f"{kind}|{start}|{end}|".encode())
    if kind == "videos":
        items = [str(v) for v in manifest.video_ids[start:end]]
    else:
        pairs = zip(manifest.captions[start:end], manifest.text_video[start:end], strict=True)
        items = [f"{c}\0{v}" for c, v in pairs]
    for item in items:
        b = item.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def part_identity(manifest: Manifest, kind: str, chunk: int) -> dict[str, Any]:
    """The attributes a part of ``kind`` number ``chunk`` of this extraction must carry."""
    start, end = manifest.chunks(kind)[chunk]
    return {
        "kind": kind,
        "chunk": chunk,
        "row_start": start,
        "row_end": end,
        "rows_sha256": _rows_digest(manifest, kind, start, end),
        "config_hash": manifest.config_hash,
    }


def _describe(attrs: Any) -> str:
    kind, chunk = attrs.get("kind"), attrs.get("chunk")
    rows = f"rows {attrs.get('row_start')}-{int(attrs.get('row_end', 0)) - 1}"
    return f"{kind} chunk {chunk} ({rows})"


def part_is_valid(path: Path, expected_rows: int, identity: dict[str, Any] | None = None) -> bool:
    """A part counts as done only if it opens, is marked complete and has the right row count.

    With ``identity`` (:func:`part_identity`) it must also record exactly that identity; a part
    without an identity record counts as not done (it is made again), and one that records
    another identity raises :class:`PartMismatch` naming the file: such a file is not damaged
    but misplaced, and silently redoing or deleting it would hide how it got there.
    """
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False):
                return False
            rows_ok = all(f[k].shape[0] == expected_rows for k in f.keys())
            found = {k: f.attrs[k] for k in IDENTITY_KEYS if k in f.attrs}
    except (OSError, KeyError, ValueError):
        return False
    if identity is None or "rows_sha256" not in found:
        return rows_ok and identity is None
    found = {k: v.item() if isinstance(v, np.generic) else v for k, v in found.items()}
    found = {k: v.decode() if isinstance(v, bytes) else v for k, v in found.items()}
    if found == identity:
        return rows_ok  # the right part, damaged: made again
    if found.get("config_hash") != identity["config_hash"]:
        other, this = str(found.get("config_hash"))[:8], identity["config_hash"][:8]
        why = f"belongs to another extraction (config {other}, this one {this})"
    elif (found.get("kind"), found.get("chunk")) != (identity["kind"], identity["chunk"]):
        own = f"{found.get('kind')}-{int(found.get('chunk', 0)):05d}.h5"
        why = f"holds {_describe(found)}, not {_describe(identity)}: moved or renamed (its name is {own})"
    else:
        why = f"holds other {identity['kind']} than {_describe(identity)} of this extraction"
    raise PartMismatch(
        f"part {path} {why}; put it back under its own name or delete it (its chunk is then made again)"
    )


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
    def load(cls, path: Path, remedy: str = "use --overwrite to discard it") -> Manifest:
        """The manifest at ``path``; unreadable: one CacheError line ending with ``remedy``."""
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, RecursionError) as e:
            raise CacheError(
                f"the manifest of an interrupted extraction, {path}, is unreadable "
                f"({type(e).__name__}); {remedy}"
            ) from None


def backbone_part_is_valid(cache_path: Path, config_hash: str | None = None) -> bool:
    """The backbone part is there and complete (and, given ``config_hash``, of this extraction:
    the weights of another model planted here would otherwise be assembled as this one's)."""
    path = backbone_part_path(cache_path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            ok = bool(f.attrs.get("complete", False)) and "positional_embedding" in f
            found = f.attrs.get("config_hash")
    except OSError:
        return False
    if config_hash is None or not ok:
        return ok
    found = found.decode() if isinstance(found, bytes) else found
    return found == config_hash


def missing_parts(cache_path: Path, manifest: Manifest) -> dict[str, list[int]]:
    """Chunks of each kind without a finished part; raises PartMismatch for a misplaced part."""
    out: dict[str, list[int]] = {}
    for kind in ("videos", "texts"):
        out[kind] = [
            k
            for k, (s, e) in enumerate(manifest.chunks(kind))
            if not part_is_valid(part_path(cache_path, kind, k), e - s, part_identity(manifest, kind, k))
        ]
    return out
