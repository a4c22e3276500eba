"""The HDF5 feature cache: the contract between ``extract`` and ``train``.

The final layout is documented in features/README.md. This module is the only
place that writes or reads it with h5py.

Crash safety: extraction writes each finished chunk of videos or captions to its
own part file in ``<cache>.parts/`` (written under a temporary name, fsynced, then
renamed), so a ``kill -9`` loses at most the chunk in flight. When every part is
present, :func:`assemble` copies them into ``<cache>.tmp`` and renames that onto the
cache path. A file at the cache path is therefore always complete.

The backbone weights ``--init clip`` starts the temporal heads from (vtrbench/extract/backbone.py)
are one more part, ``backbone.h5``, copied into ``/backbone`` at assembly; when the manifest
promises them, assembly refuses to run without them.

The parts layout is also the unit of sharding: chunk ``k`` of ``n`` can be made by
any process, and assembly refuses to run while any part is missing (never silent
zeros).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from vtrbench import __version__
from vtrbench.errors import CacheError

if TYPE_CHECKING:
    import torch

SCHEMA = 1
STATUS_OK = 0
STATUS_FAILED = 1
STR = h5py.string_dtype(encoding="utf-8")

VIDEO_FIELDS = ("frames", "frame_mask", "frame_index", "status", "error", "patches")
TEXT_FIELDS = ("tokens", "token_ids", "token_mask", "eot", "noun_mask", "verb_mask")


def parts_dir(cache_path: Path) -> Path:
    return Path(str(cache_path) + ".parts")


def part_path(cache_path: Path, kind: str, chunk: int) -> Path:
    return parts_dir(cache_path) / f"{kind}-{chunk:05d}.h5"


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backbone_part_path(cache_path: Path) -> Path:
    """The part holding the backbone weights the heads start from (vtrbench/extract/backbone.py)."""
    return parts_dir(cache_path) / "backbone.h5"


def write_part(path: Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
    """Write one chunk's arrays (and optional attributes) atomically: temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        for name, arr in arrays.items():
            if arr.dtype.kind in "OU":
                f.create_dataset(name, data=np.asarray(arr, dtype=object), dtype=STR)
            else:
                f.create_dataset(name, data=arr)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f.attrs["complete"] = True
        f.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def part_is_valid(path: Path, expected_rows: int) -> bool:
    """A part counts as done only if it opens, is marked complete and has the right row count."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False):
                return False
            return all(f[k].shape[0] == expected_rows for k in f.keys())
    except (OSError, KeyError):
        return False


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
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))


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


def assemble(cache_path: Path, manifest: Manifest) -> None:
    """Copy all parts into the final cache file (atomically) and remove the parts."""
    missing = missing_parts(cache_path, manifest)
    if missing["videos"] or missing["texts"]:
        raise CacheError(
            f"cannot assemble {cache_path}: missing parts videos {missing['videos'][:5]} "
            f"texts {missing['texts'][:5]}"
        )
    want_backbone = bool(manifest.attrs.get("backbone_stored", False))
    if want_backbone and not backbone_part_is_valid(cache_path):
        raise CacheError(f"cannot assemble {cache_path}: the backbone weights part is missing")
    tmp = Path(str(cache_path) + ".tmp")
    with h5py.File(tmp, "w") as out:
        for key, value in manifest.attrs.items():
            # str subclasses (torch's TorchVersion) have no HDF5 conversion: store plain str
            out.attrs[key] = str(value) if isinstance(value, str) else value
        out.attrs["schema"] = SCHEMA
        out.attrs["config_json"] = json.dumps(manifest.config, sort_keys=True)
        out.attrs["config_hash"] = manifest.config_hash
        out.attrs["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        out.attrs["vtrbench_version"] = __version__
        vg = out.create_group("videos")
        vg.create_dataset("id", data=np.asarray(manifest.video_ids, dtype=object), dtype=STR)
        vg.create_dataset("path", data=np.asarray(manifest.video_paths, dtype=object), dtype=STR)
        if manifest.video_windows is not None:
            win = np.array(
                [[np.nan if x is None else float(x) for x in w] for w in manifest.video_windows],
                dtype=np.float64,
            ).reshape(len(manifest.video_ids), 2)
            vg.create_dataset("window_s", data=win)
        _copy_parts(cache_path, vg, "videos", manifest.chunks("videos"))
        tg = out.create_group("texts")
        tg.create_dataset("video", data=np.asarray(manifest.text_video, dtype=np.int32))
        tg.create_dataset("caption", data=np.asarray(manifest.captions, dtype=object), dtype=STR)
        _copy_parts(cache_path, tg, "texts", manifest.chunks("texts"))
        sg = out.create_group("splits")
        for name, split in manifest.splits.items():
            g = sg.create_group(name)
            g.create_dataset("video_rows", data=np.asarray(split["video_rows"], dtype=np.int32))
            g.create_dataset("text_rows", data=np.asarray(split["text_rows"], dtype=np.int32))
            g.attrs["note"] = split.get("note", "")
        if want_backbone:
            with h5py.File(backbone_part_path(cache_path), "r") as part:
                bg = out.create_group("backbone")
                for name in part.keys():
                    bg.create_dataset(name, data=part[name][:])
                for key, value in part.attrs.items():
                    if key != "complete":
                        bg.attrs[key] = value
        status = vg["status"][:]
        out.attrs["n_videos"] = len(manifest.video_ids)
        out.attrs["n_failed"] = int((status != STATUS_OK).sum())
        out.attrs["n_texts"] = len(manifest.captions)
        out.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, cache_path)
    fsync_dir(cache_path.parent)
    shutil.rmtree(parts_dir(cache_path), ignore_errors=True)


def _copy_parts(cache_path: Path, group: h5py.Group, kind: str, chunks: Sequence[tuple[int, int]]) -> None:
    total = chunks[-1][1] if chunks else 0
    for k, (start, end) in enumerate(chunks):
        with h5py.File(part_path(cache_path, kind, k), "r") as part:
            for name in part.keys():
                src = part[name]
                if name not in group:
                    chunk_rows = max(1, min(total, 256))
                    group.create_dataset(
                        name,
                        shape=(total, *src.shape[1:]),
                        dtype=src.dtype,
                        chunks=(chunk_rows, *src.shape[1:]) if src.ndim > 1 and total else None,
                    )
                group[name][start:end] = src[:]


# --------------------------------------------------------------------------- reading


READ_BLOCK_ROWS = 4096


def _read_blocks(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for sorted unique ``rows``, read as contiguous blocks.

    h5py turns a fancy index into one selection per row, which is several times slower
    than slicing (11 s vs 2.4 s for 98k of 100k rows of 32x64 fp16 here); reading each
    touched block of ``READ_BLOCK_ROWS`` rows as a slice and picking rows in numpy keeps
    memory bounded by one block and costs at most one block of extra reads per block.
    """
    out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
    blocks = rows // READ_BLOCK_ROWS
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    ends = np.r_[starts[1:], rows.size]
    for s, e in zip(starts, ends, strict=True):
        lo, hi = int(rows[s]), int(rows[e - 1]) + 1
        out[s:e] = ds[lo:hi][rows[s:e] - lo]
    return out


class FeatureCache:
    """Read access to a finished cache. Use as a context manager or call close()."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            hint = ""
            if parts_dir(self.path).is_dir():
                hint = (
                    " (an unfinished extraction is in progress or was interrupted: re-run `vtrbench extract`)"
                )
            raise CacheError(f"no feature cache at {self.path}{hint}")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as e:
            raise CacheError(f"{self.path} is not a readable HDF5 file ({e})") from None
        schema = self.file.attrs.get("schema")
        if schema != SCHEMA:
            self.file.close()
            raise CacheError(f"{self.path}: cache schema {schema!r}, this vtrbench reads schema {SCHEMA}")
        self.config: dict[str, Any] = json.loads(self.file.attrs["config_json"])
        self.config_hash: str = str(self.file.attrs["config_hash"])

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def attrs(self) -> dict[str, Any]:
        # arrays (e.g. image_mean) become lists; numpy scalars become Python values
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
            for k, v in self.file.attrs.items()
        }

    @property
    def splits(self) -> list[str]:
        return sorted(self.file["splits"].keys())

    def has(self, field: str) -> bool:
        return field in self.file["videos"] or field in self.file["texts"]

    def fingerprint(self) -> str:
        from vtrbench.config import config_hash

        return config_hash(
            {
                "config_hash": self.config_hash,
                "n_videos": int(self.file.attrs["n_videos"]),
                "n_texts": int(self.file.attrs["n_texts"]),
            }
        )

    def split_rows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.file["splits"]:
            from vtrbench.registry import unknown_name_message

            raise CacheError(unknown_name_message("split", split, self.splits) + f" in {self.path}")
        g = self.file["splits"][split]
        return g["video_rows"][:], g["text_rows"][:]

    def read_rows(self, group: str, field: str, rows: np.ndarray) -> np.ndarray:
        """Read ``rows`` (any order) of one dataset; h5py needs increasing indices, so sort and scatter."""
        ds = self.file[group][field]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, *ds.shape[1:]), dtype=ds.dtype)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        uniq, inverse = np.unique(sorted_rows, return_inverse=True)
        if uniq.size == ds.shape[0] and uniq[0] == 0:
            data = ds[:]
        else:
            data = _read_blocks(ds, uniq)
        out = np.empty((rows.size, *ds.shape[1:]), dtype=data.dtype)
        out[order] = data[inverse]
        return out

    def backbone_info(self) -> dict[str, Any]:
        """What the cache holds from the frozen backbone for ``--init clip``: ``stored`` (bool) and
        ``reason`` (why not), plus width, heads, layers, activation and context_length when stored."""
        if "backbone" in self.file:
            info = {
                k: (v.item() if hasattr(v, "item") else v) for k, v in self.file["backbone"].attrs.items()
            }
            return {**info, "stored": True}
        summary = str(self.file.attrs.get("backbone", ""))
        if summary.startswith("none: "):
            return {"stored": False, "reason": summary[len("none: ") :]}
        return {
            "stored": False,
            "reason": f"{self.path.name} was extracted before vtrbench stored CLIP's text layers "
            "(re-extract with --overwrite to store them)",
        }

    def backbone_weights(self) -> dict[str, torch.Tensor] | None:
        """The stored backbone tensors (torch float32, keys ``positional_embedding`` and
        ``resblocks.<i>.<open_clip block key>``), or None when the cache holds none."""
        if "backbone" not in self.file:
            return None
        import torch

        group = self.file["backbone"]
        return {name: torch.from_numpy(group[name][:]) for name in group.keys()}

    def file_hashes(self) -> list[str] | None:
        """sha256 (hex) of each video file's bytes, in /videos order ("" if unreadable); None for
        caches made before extraction stored it."""
        if "file_sha256" not in self.file["videos"]:
            return None
        return self.read_strings("videos", "file_sha256")

    def read_strings(self, group: str, field: str, rows: Iterable[int] | None = None) -> list[str]:
        values = self.file[group][field].asstr()[:]
        return [str(v) for v in values] if rows is None else [str(values[i]) for i in rows]
