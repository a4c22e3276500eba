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

Integrity: every numeric dataset carries HDF5's Fletcher32 checksum (verified by HDF5 on
every read), object headers are checksummed (file format 1.10), and each dataset gets a
``sha256`` attribute (of its dtype, shape and bytes) at assembly; the file's
``content_sha256`` combines them. Variable-length strings cannot take a filter, so their
digests are checked whenever a cache is opened. A cache is validated when opened
(attributes, shapes, row indices), so a damaged file stops with one line naming it.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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

VIDEO_FIELDS = ("frames", "frame_mask", "frame_index", "status", "error", "patches", "file_sha256")
TEXT_FIELDS = (
    "tokens", "token_ids", "token_mask", "eot", "noun_mask", "verb_mask", "verb_source", "noun_source",
)  # fmt: skip
# HDF5 1.10 file format: object headers and other metadata carry checksums, and HDF5 >= 1.10 reads it.
LIBVER = ("v110", "v110")
# Room kept beyond a write's own bytes (HDF5 metadata, the file system's own needs).
SPACE_MARGIN = 4 << 20


def disk_free(folder: Path) -> int:
    """Free bytes for an unprivileged writer in ``folder`` (a function of its own: tests fake a full disk)."""
    return shutil.disk_usage(folder).free


def check_free_space(folder: Path, need: int, what: str) -> None:
    """Stop with one line before writing ``need`` bytes into ``folder`` if they do not fit."""
    free = disk_free(folder)
    if free < need + SPACE_MARGIN:
        raise CacheError(
            f"not enough free space in {folder} to write {what}: needs about {_mb(need + SPACE_MARGIN)}, "
            f"{_mb(free)} free; finished parts are kept: free some space and run the same command again"
        )


def _first_line(e: BaseException) -> str:
    lines = str(e).splitlines()
    return lines[0] if lines else type(e).__name__


def _write_file(path: Path, tmp: Path, write: Callable[[], None]) -> None:
    """Run ``write()`` (which makes ``tmp`` and renames it to ``path``); any failure removes ``tmp``
    and is raised as one CacheError line.

    When a write fails (a full disk), HDF5 fails again in the destructor of every object still
    open, which Python prints as "Exception ignored" tracebacks. The first error is the one
    reported; the echoes are dropped while the failed objects are freed here (the file is
    discarded anyway). A plain function, not a context manager: the failed objects must be freed
    before the hook is restored, and a context manager's caller still holds the traceback then.
    """
    old_hook, old_stderr = sys.unraisablehook, sys.stderr
    captured = io.StringIO()
    # h5py prints a destructor's failure with traceback.print_exc: hold stderr until we know
    sys.unraisablehook, sys.stderr = (lambda unraisable: None), captured
    failure: CacheError | None = None
    try:
        try:
            write()
        except (OSError, RuntimeError) as e:
            failure = write_failed(path, e)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        gc.collect()  # the traceback is gone: free the failed HDF5 objects while echoes are dropped
    finally:
        sys.unraisablehook, sys.stderr = old_hook, old_stderr
        if failure is None and captured.getvalue():
            old_stderr.write(captured.getvalue())  # a success (or an interrupt): nothing to hide
    if failure is not None:
        tmp.unlink(missing_ok=True)
        raise failure


# HDF5 files up to this size are built in memory and written to disk with plain writes.
IN_MEMORY_BYTES = 512 << 20


@contextmanager
def _h5_in_memory(tmp: Path) -> Iterator[h5py.File]:
    """An HDF5 file built in memory, then written to ``tmp`` with plain writes and fsynced.

    HDF5 does not survive a write that fails for lack of space (it segfaulted in ``flush`` on a full
    tmpfs here, HDF5 2.0.0); a plain write fails cleanly with ENOSPC, and the caller reports it.
    """
    with h5py.File(tmp.name, "w", libver=LIBVER, driver="core", backing_store=False) as f:
        yield f
        f.flush()
        image = f.id.get_file_image()
    with open(tmp, "wb") as fh:
        fh.write(image)
        fh.flush()
        os.fsync(fh.fileno())


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def write_failed(path: Path, e: OSError | RuntimeError) -> CacheError:
    # HDF5 closing a file after a failed write raises its own error: the cause is in the chain
    chain: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__context__
    full = any(
        getattr(x, "errno", None) == errno.ENOSPC or "No space left" in str(x) or "errno = 28" in str(x)
        for x in chain
    )
    reason = "the disk is full" if full else (getattr(e, "strerror", None) or _first_line(e))
    return CacheError(
        f"cannot write {path}: {reason}; finished parts are kept: fix this and run the same command again"
    )


def _create(group: h5py.Group, name: str, data: np.ndarray | None = None, **kw: Any) -> h5py.Dataset:
    """Create a dataset with the Fletcher32 checksum wherever HDF5 allows it.

    Variable-length strings take no filter, and neither does a dataset with no rows; both are covered by
    the sha256 attributes written at assembly.
    """
    dtype = kw.get("dtype", data.dtype if data is not None else None)
    shape = kw.get("shape", data.shape if data is not None else None)
    vlen = h5py.check_string_dtype(np.dtype(dtype)) is not None and np.dtype(dtype).kind == "O"
    if not vlen and shape and shape[0] > 0:
        kw["fletcher32"] = True
    return group.create_dataset(name, data=data, **kw)


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
                    _create(f, name, data=np.asarray(arr, dtype=object), dtype=STR)
                else:
                    _create(f, name, data=arr)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            f.attrs["complete"] = True
        os.replace(tmp, path)

    _write_file(path, tmp, write)
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
    if want_backbone and not backbone_part_is_valid(cache_path):
        raise CacheError(f"cannot assemble {cache_path}: the backbone weights part is missing")
    tmp = Path(str(cache_path) + ".tmp")
    need = sum(f.stat().st_size for f in parts_dir(cache_path).glob("*.h5"))
    if reuse is not None:
        need += Path(reuse.filename).stat().st_size

    def write() -> None:
        check_free_space(cache_path.parent, need, cache_path.name)
        if need <= IN_MEMORY_BYTES:
            with _h5_in_memory(tmp) as out:
                _write_cache(out, cache_path, manifest, reuse)
        else:
            # too big for memory: written in place, after the free-space check above
            with h5py.File(tmp, "w", libver=LIBVER) as out:
                _write_cache(out, cache_path, manifest, reuse)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, cache_path)

    _write_file(cache_path, tmp, write)
    fsync_dir(cache_path.parent)


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
    _create(vg, "id", data=np.asarray(manifest.video_ids, dtype=object), dtype=STR)
    _create(vg, "path", data=np.asarray(manifest.video_paths, dtype=object), dtype=STR)
    if manifest.video_windows is not None:
        win = np.array(
            [[np.nan if x is None else float(x) for x in w] for w in manifest.video_windows],
            dtype=np.float64,
        ).reshape(len(manifest.video_ids), 2)
        _create(vg, "window_s", data=win)
    _copy_parts(cache_path, vg, "videos", manifest.chunks("videos"), reuse)
    tg = out.create_group("texts")
    _create(tg, "video", data=np.asarray(manifest.text_video, dtype=np.int32))
    _create(tg, "caption", data=np.asarray(manifest.captions, dtype=object), dtype=STR)
    _copy_parts(cache_path, tg, "texts", manifest.chunks("texts"), reuse)
    sg = out.create_group("splits")
    for name, split in manifest.splits.items():
        g = sg.create_group(name)
        _create(g, "video_rows", data=np.asarray(split["video_rows"], dtype=np.int32))
        _create(g, "text_rows", data=np.asarray(split["text_rows"], dtype=np.int32))
        g.attrs["note"] = split.get("note", "")
    if manifest.attrs.get("backbone_stored", False):
        with h5py.File(backbone_part_path(cache_path), "r") as part:
            bg = out.create_group("backbone")
            for name in part.keys():
                _create(bg, name, data=part[name][:])
            for key, value in part.attrs.items():
                if key != "complete":
                    bg.attrs[key] = value
    status = vg["status"][:]
    out.attrs["n_videos"] = len(manifest.video_ids)
    out.attrs["n_failed"] = int((status != STATUS_OK).sum())
    out.attrs["n_texts"] = len(manifest.captions)
    # Keep this last: it hashes every dataset written above (and any a later step adds must precede it).
    seal(out)
    out.flush()


def _chunk_sources(
    cache_path: Path, kind: str, chunks: Sequence[tuple[int, int]], reuse: h5py.File | None
) -> list[tuple[Path | None, int, int]]:
    """Where each chunk comes from: its part file, or (None) the rows of the reused cache."""
    out: list[tuple[Path | None, int, int]] = []
    for k, (start, end) in enumerate(chunks):
        part = part_path(cache_path, kind, k)
        use_part = reuse is None or part_is_valid(part, end - start)
        out.append((part if use_part else None, start, end))
    return out


def _copy_parts(
    cache_path: Path,
    group: h5py.Group,
    kind: str,
    chunks: Sequence[tuple[int, int]],
    reuse: h5py.File | None = None,
) -> None:
    total = chunks[-1][1] if chunks else 0
    fields = VIDEO_FIELDS if kind == "videos" else TEXT_FIELDS
    sources = _chunk_sources(cache_path, kind, chunks, reuse)
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
        _create(
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


# --------------------------------------------------------------------------- content hash

HASH_BLOCK_BYTES = 64 << 20


def dataset_digest(ds: h5py.Dataset) -> str:
    """sha256 of a dataset's dtype, shape and values (strings as length-prefixed UTF-8), read in blocks."""
    h = hashlib.sha256(f"{ds.dtype.str}|{ds.shape}|".encode())
    vlen = h5py.check_string_dtype(ds.dtype) is not None
    if ds.shape == () or ds.size == 0:
        if ds.shape == ():
            h.update(np.asarray(ds[()]).tobytes())
        return h.hexdigest()
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, HASH_BLOCK_BYTES // row_bytes)
    for s in range(0, ds.shape[0], step):
        block = ds[s : s + step]
        if vlen:
            for v in block.ravel():
                b = v if isinstance(v, bytes) else str(v).encode("utf-8")
                h.update(len(b).to_bytes(8, "little"))
                h.update(b)
        else:
            h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def combine_digests(digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(digests.items())).encode()).hexdigest()


def seal(f: h5py.File) -> str:
    """Store each dataset's digest as its ``sha256`` attribute and their combination as ``content_sha256``."""
    digests = {}
    for name, ds in _datasets(f):
        digests[name] = dataset_digest(ds)
        ds.attrs["sha256"] = digests[name]
    f.attrs["content_sha256"] = combine_digests(digests)
    return str(f.attrs["content_sha256"])


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


REQUIRED_ATTRS = ("config_json", "config_hash", "n_videos", "n_texts", "embed_dim", "max_frames", "max_words")
REQUIRED_VIDEOS = ("id", "path", "frames", "frame_mask", "frame_index", "status", "error")
REQUIRED_TEXTS = ("video", "caption", "tokens", "token_ids", "token_mask", "eot")


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so messages say ``2``, not ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value


class FeatureCache:
    """Read access to a finished cache. Use as a context manager or call close().

    Opening validates the file (schema, attributes, dataset shapes against each other, row
    indices, string digests) and raises :class:`CacheError` naming the file and what is wrong;
    reads turn HDF5 checksum failures and non-finite features into the same kind of error.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            hint = ""
            if self.path.is_dir():
                hint = " (that is a folder)"
            elif parts_dir(self.path).is_dir():
                hint = (
                    " (an unfinished extraction is in progress or was interrupted: re-run `vtrbench extract`)"
                )
            raise CacheError(f"no feature cache at {self.path}{hint}")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as e:
            raise CacheError(f"{self.path} is not a readable HDF5 file ({_first_line(e)})") from None
        try:
            self._validate()
        except CacheError:
            self.file.close()
            raise
        except (OSError, KeyError, ValueError, TypeError, RecursionError) as e:
            self.file.close()
            raise CacheError(
                f"{self.path} is a damaged feature cache "
                f"({type(e).__name__}: {_first_line(e)[:150]}); extract it again"
            ) from None

    def _damaged(self, what: str) -> CacheError:
        self.file.close()
        return CacheError(f"{self.path} is a damaged feature cache: {what}; extract it again")

    def _validate(self) -> None:
        f = self.file
        schema = _plain(f.attrs.get("schema"))
        if schema != SCHEMA:
            raise CacheError(
                f"{self.path}: cache schema {schema!r}, this vtrbench reads schema {SCHEMA}"
                if schema is not None
                else f"{self.path} is not a vtrbench feature cache (no schema attribute)"
            )
        missing = [k for k in REQUIRED_ATTRS if k not in f.attrs]
        if missing:
            raise self._damaged(f"attribute(s) {', '.join(missing)} missing")
        config = json.loads(str(_plain(f.attrs["config_json"])))
        if not isinstance(config, dict):
            raise self._damaged("config_json is not a JSON object")
        self.config: dict[str, Any] = config
        self.config_hash: str = str(_plain(f.attrs["config_hash"]))
        for group, names in (("videos", REQUIRED_VIDEOS), ("texts", REQUIRED_TEXTS), ("splits", ())):
            if not isinstance(f.get(group), h5py.Group):
                raise self._damaged(f"group /{group} missing")
            gone = [n for n in names if not isinstance(f[group].get(n), h5py.Dataset)]
            if gone:
                raise self._damaged(f"/{group}/{', '.join(gone)} missing")
        nv, nt = int(f.attrs["n_videos"]), int(f.attrs["n_texts"])
        dim, frames, words = int(f.attrs["embed_dim"]), int(f.attrs["max_frames"]), int(f.attrs["max_words"])
        expect = {
            "videos/frames": (nv, frames, dim),
            "videos/frame_mask": (nv, frames),
            "videos/frame_index": (nv, frames),
            "videos/id": (nv,),
            "videos/path": (nv,),
            "videos/status": (nv,),
            "videos/error": (nv,),
            "texts/tokens": (nt, words, dim),
            "texts/token_ids": (nt, words),
            "texts/token_mask": (nt, words),
            "texts/noun_mask": (nt, words),
            "texts/verb_mask": (nt, words),
            "texts/eot": (nt,),
            "texts/video": (nt,),
            "texts/caption": (nt,),
        }
        for name, shape in expect.items():
            if name in f and f[name].shape != shape:
                raise self._damaged(
                    f"/{name} has shape {f[name].shape}, expected {shape} "
                    "(n_videos, n_texts, max_frames, max_words, embed_dim attributes)"
                )
        if "videos/patches" in f:
            ps = f["videos/patches"].shape
            if len(ps) != 4 or ps[:2] != (nv, frames) or ps[3] != dim:
                raise self._damaged(f"/videos/patches has shape {ps}, expected ({nv}, {frames}, P, {dim})")
        for name in ("videos/frames", "texts/tokens", "videos/patches"):
            if name in f and f[name].dtype.kind != "f":
                raise self._damaged(f"/{name} has dtype {f[name].dtype}, expected floating point")
        self._check_rows("texts/video", f["texts/video"][:], nv)
        for split in f["splits"]:
            g = f["splits"][split]
            if not isinstance(g, h5py.Group) or "video_rows" not in g or "text_rows" not in g:
                raise self._damaged(f"split {split!r} lacks video_rows/text_rows")
            self._check_rows(f"splits/{split}/video_rows", g["video_rows"][:], nv)
            self._check_rows(f"splits/{split}/text_rows", g["text_rows"][:], nt)
        # Strings take no checksum filter: compare their digests (cheap next to the features).
        for name, ds in _datasets(f):
            if "sha256" in ds.attrs and h5py.check_string_dtype(ds.dtype) is not None:
                if dataset_digest(ds) != str(_plain(ds.attrs["sha256"])):
                    raise self._damaged(f"/{name} does not match its sha256 (flipped bytes)")

    def _check_rows(self, name: str, rows: np.ndarray, n: int) -> None:
        if rows.dtype.kind not in "iu":
            raise self._damaged(f"/{name} holds {rows.dtype} values, expected row numbers")
        bad = np.flatnonzero((rows < 0) | (rows >= n))
        if bad.size:
            raise self._damaged(
                f"/{name} holds row {int(rows[bad[0]])} at position {int(bad[0])} "
                f"({bad.size} out of range 0..{n - 1})"
            )

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

    @property
    def content_hash(self) -> str | None:
        """sha256 over every dataset's dtype, shape and bytes, stored at assembly; None for older caches."""
        value = self.file.attrs.get("content_sha256")
        return None if value is None else str(_plain(value))

    def verify(self) -> None:
        """Recompute every dataset's digest (reads the whole file) and compare with the stored ones."""
        digests = {}
        for name, ds in _datasets(self.file):
            digests[name] = self._guard(name, lambda ds=ds: dataset_digest(ds))
            stored = ds.attrs.get("sha256")
            if stored is not None and str(_plain(stored)) != digests[name]:
                raise CacheError(f"{self.path}: /{name} does not match its sha256 (the file is damaged)")
        if self.content_hash is not None and combine_digests(digests) != self.content_hash:
            raise CacheError(f"{self.path}: datasets do not match content_sha256 (the file is damaged)")

    def has(self, field: str) -> bool:
        return field in self.file["videos"] or field in self.file["texts"]

    def fingerprint(self) -> str:
        from vtrbench.config import config_hash

        parts: dict[str, Any] = {
            "config_hash": self.config_hash,
            "n_videos": int(self.file.attrs["n_videos"]),
            "n_texts": int(self.file.attrs["n_texts"]),
        }
        if self.content_hash is not None:
            # two caches with the same config but other bytes (damage, a retried video) differ
            parts["content_sha256"] = self.content_hash
        return config_hash(parts)

    def _guard(self, name: str, read: Any) -> Any:
        """Run ``read()``; an HDF5 read failure (Fletcher32 mismatch) becomes one line naming the dataset."""
        try:
            return read()
        except OSError as e:
            msg = _first_line(e)
            hint = "checksum mismatch: flipped bytes" if "filter" in msg or "checksum" in msg else msg
            raise CacheError(f"{self.path}: cannot read /{name} ({hint}); extract the cache again") from None

    def split_rows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.file["splits"]:
            from vtrbench.registry import unknown_name_message

            raise CacheError(unknown_name_message("split", split, self.splits) + f" in {self.path}")
        g = self.file["splits"][split]
        return self._guard(f"splits/{split}", lambda: (g["video_rows"][:], g["text_rows"][:]))

    def read_rows(self, group: str, field: str, rows: np.ndarray) -> np.ndarray:
        """Read ``rows`` (any order) of one dataset; h5py needs increasing indices, so sort and scatter.

        Floating-point features must be finite: NaN or inf (damage, or an encoder overflow) stops here
        with the cache rows named, instead of poisoning a training run.
        """
        ds = self.file[group][field]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, *ds.shape[1:]), dtype=ds.dtype)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        uniq, inverse = np.unique(sorted_rows, return_inverse=True)
        if uniq[0] < 0 or uniq[-1] >= ds.shape[0]:
            raise CacheError(f"{self.path}: row {int(uniq[-1])} of /{group}/{field} is out of range")
        if uniq.size == ds.shape[0] and uniq[0] == 0:
            data = self._guard(f"{group}/{field}", lambda: ds[:])
        else:
            data = self._guard(f"{group}/{field}", lambda: _read_blocks(ds, uniq))
        if data.dtype.kind == "f":
            finite = np.isfinite(data.reshape(len(uniq), -1)).all(axis=1)
            if not finite.all():
                bad = uniq[~finite]
                shown = ", ".join(str(int(r)) for r in bad[:5]) + (
                    f" (+{bad.size - 5} more)" if bad.size > 5 else ""
                )
                raise CacheError(
                    f"{self.path}: /{group}/{field} holds non-finite values (NaN/inf) in row(s) {shown}; "
                    "extract the cache again"
                )
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
        values = self._guard(f"{group}/{field}", lambda: self.file[group][field].asstr()[:])
        return [str(v) for v in values] if rows is None else [str(values[i]) for i in rows]

    def failed_videos(self) -> dict[str, str]:
        """Video id -> reason for every video marked failed."""
        status = self._guard("videos/status", lambda: self.file["videos"]["status"][:])
        bad = np.flatnonzero(status != STATUS_OK)
        if not bad.size:
            return {}
        ids = self.read_strings("videos", "id")
        errors = self.read_strings("videos", "error")
        return {ids[j]: errors[j] for j in bad}
