"""Assembly: every part of a finished extraction copied into the final cache file, atomically."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from vtrbench import __version__
from vtrbench.cache import _io
from vtrbench.cache._io import (
    IN_MEMORY_BYTES,
    LIBVER,
    SCHEMA,
    STATUS_OK,
    STR,
    TEXT_FIELDS,
    VIDEO_FIELDS,
    check_free_space,
    h5_in_memory,
    write_file,
)
from vtrbench.cache.parts import (
    IDENTITY_KEYS,
    Manifest,
    backbone_part_is_valid,
    backbone_part_path,
    missing_parts,
    part_identity,
    part_is_valid,
    part_path,
    parts_dir,
)
from vtrbench.errors import CacheError


def assemble(cache_path: Path, manifest: Manifest, reuse: Path | None = None) -> None:
    """Copy all parts into the final cache file (atomically) and remove the parts.

    With ``reuse`` (a complete cache of the same config), every chunk without a part file is
    copied from that cache instead: ``--retry-failed`` redoes only the chunks that held failed
    videos. The file at ``cache_path`` is replaced only once the new one is complete.
    """
    reuse_file = h5py.File(reuse, "r") if reuse is not None else None
    try:
        _assemble(cache_path, manifest, reuse_file)
    finally:
        if reuse_file is not None:
            reuse_file.close()
    shutil.rmtree(parts_dir(cache_path), ignore_errors=True)


def _assemble(cache_path: Path, manifest: Manifest, reuse: h5py.File | None) -> None:
    missing = missing_parts(cache_path, manifest)
    if reuse is not None:
        missing = {"videos": [], "texts": []}
    if missing["videos"] or missing["texts"]:
        raise CacheError(
            f"cannot assemble {cache_path}: missing parts videos {missing['videos'][:5]} "
            f"texts {missing['texts'][:5]}"
        )
    want_backbone = bool(manifest.attrs.get("backbone_stored", False))
    if want_backbone and not backbone_part_is_valid(cache_path, manifest.config_hash):
        raise CacheError(
            f"cannot assemble {cache_path}: the backbone weights part {backbone_part_path(cache_path).name} "
            "is missing or belongs to another extraction; run the same `vtrbench extract` (shard 0 makes it)"
        )
    tmp = Path(str(cache_path) + ".tmp")
    need = sum(f.stat().st_size for f in parts_dir(cache_path).glob("*.h5"))
    if reuse is not None:
        need += Path(reuse.filename).stat().st_size

    def write() -> None:
        check_free_space(cache_path.parent, need, cache_path.name)
        if need <= IN_MEMORY_BYTES:
            with h5_in_memory(tmp) as out:
                _write_cache(out, cache_path, manifest, reuse)
        else:
            # too big for memory: written in place, after the free-space check above
            with h5py.File(tmp, "w", libver=LIBVER) as out:
                _write_cache(out, cache_path, manifest, reuse)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, cache_path)

    write_file(cache_path, tmp, write)
    _io.fsync_dir(cache_path.parent)


def _write_cache(out: h5py.File, cache_path: Path, manifest: Manifest, reuse: h5py.File | None) -> None:
    for key, value in manifest.attrs.items():
        # str subclasses (torch's TorchVersion) have no HDF5 conversion: store plain str
        out.attrs[key] = str(value) if isinstance(value, str) else value
    out.attrs["schema"] = SCHEMA
    out.attrs["config_json"] = json.dumps(manifest.config, sort_keys=True)
    out.attrs["config_hash"] = manifest.config_hash
    out.attrs["created_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out.attrs["vtrbench_version"] = __version__
    # the chunking decides which frames share an encoding batch: --retry-failed must reuse it
    out.attrs["video_chunk"] = manifest.video_chunk
    out.attrs["text_chunk"] = manifest.text_chunk
    vg = out.create_group("videos")
    _io.create_dataset(vg, "id", data=np.asarray(manifest.video_ids, dtype=object), dtype=STR)
    _io.create_dataset(vg, "path", data=np.asarray(manifest.video_paths, dtype=object), dtype=STR)
    if manifest.video_windows is not None:
        win = np.array(
            [[np.nan if x is None else float(x) for x in w] for w in manifest.video_windows],
            dtype=np.float64,
        ).reshape(len(manifest.video_ids), 2)
        _io.create_dataset(vg, "window_s", data=win)
    _copy_parts(cache_path, vg, "videos", manifest, reuse)
    tg = out.create_group("texts")
    _io.create_dataset(tg, "video", data=np.asarray(manifest.text_video, dtype=np.int32))
    _io.create_dataset(tg, "caption", data=np.asarray(manifest.captions, dtype=object), dtype=STR)
    _copy_parts(cache_path, tg, "texts", manifest, reuse)
    sg = out.create_group("splits")
    for name, split in manifest.splits.items():
        g = sg.create_group(name)
        _io.create_dataset(g, "video_rows", data=np.asarray(split["video_rows"], dtype=np.int32))
        _io.create_dataset(g, "text_rows", data=np.asarray(split["text_rows"], dtype=np.int32))
        g.attrs["note"] = split.get("note", "")
    if manifest.attrs.get("backbone_stored", False):
        with h5py.File(backbone_part_path(cache_path), "r") as part:
            bg = out.create_group("backbone")
            for name in part.keys():
                _io.create_dataset(bg, name, data=part[name][:])
            for key, value in part.attrs.items():
                if key != "complete" and key not in IDENTITY_KEYS:
                    bg.attrs[key] = value
    status = vg["status"][:]
    out.attrs["n_videos"] = len(manifest.video_ids)
    out.attrs["n_failed"] = int((status != STATUS_OK).sum())
    out.attrs["n_texts"] = len(manifest.captions)
    # Keep this last: it hashes every dataset written above (and any a later step adds must precede it).
    _io.seal(out)
    out.flush()


def _chunk_sources(
    cache_path: Path, kind: str, manifest: Manifest, reuse: h5py.File | None
) -> list[tuple[Path | None, int, int]]:
    """Where each chunk comes from: its part file, or (None) the rows of the reused cache."""
    out: list[tuple[Path | None, int, int]] = []
    for k, (start, end) in enumerate(manifest.chunks(kind)):
        part = part_path(cache_path, kind, k)
        use_part = reuse is None or part_is_valid(part, end - start, part_identity(manifest, kind, k))
        out.append((part if use_part else None, start, end))
    return out


def _copy_parts(
    cache_path: Path,
    group: h5py.Group,
    kind: str,
    manifest: Manifest,
    reuse: h5py.File | None = None,
) -> None:
    chunks = manifest.chunks(kind)
    total = chunks[-1][1] if chunks else 0
    fields = VIDEO_FIELDS if kind == "videos" else TEXT_FIELDS
    sources = _chunk_sources(cache_path, kind, manifest, reuse)
    # Shapes first: a part whose videos all failed has patch tokens of width 0; the widest wins.
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for part, _, _ in sources:
        if part is None:
            assert reuse is not None
            items = [(n, d.shape[1:], d.dtype) for n, d in reuse[kind].items() if n in fields]
        else:
            with h5py.File(part, "r") as f:
                items = [(n, f[n].shape[1:], f[n].dtype) for n in f.keys()]
        for name, shape, dtype in items:
            old = shapes.get(name)
            if old is None or int(np.prod(shape)) > int(np.prod(old[0])):
                shapes[name] = (tuple(shape), dtype)
    for name, (shape, dtype) in shapes.items():
        chunk_rows = max(1, min(total, 256 if shape else 65536))
        _io.create_dataset(
            group, name, shape=(total, *shape), dtype=dtype, chunks=(chunk_rows, *shape) if total else None
        )
    for part, start, end in sources:
        if part is None:
            assert reuse is not None
            for name in shapes:
                if name in reuse[kind] and reuse[kind][name].shape[1:] == shapes[name][0]:
                    group[name][start:end] = reuse[kind][name][start:end]
            continue
        with h5py.File(part, "r") as f:
            for name in f.keys():
                if f[name].shape[1:] == shapes[name][0]:
                    group[name][start:end] = f[name][:]
