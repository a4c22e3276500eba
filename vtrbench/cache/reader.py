"""Reading a finished cache: validation on open, guarded reads, rows in any order."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from vtrbench.cache._io import SCHEMA, STATUS_OK, combine_digests, dataset_digest, datasets_of, first_line
from vtrbench.cache.parts import parts_dir
from vtrbench.config import config_hash
from vtrbench.errors import CacheError
from vtrbench.registry import unknown_name_message

if TYPE_CHECKING:
    import torch

READ_BLOCK_ROWS = 4096


def _block_bounds(rows: np.ndarray) -> np.ndarray:
    """Start indices into sorted unique ``rows`` of each ``READ_BLOCK_ROWS``-row block they touch,
    plus ``rows.size`` at the end.

    h5py turns a fancy index into one selection per row, which is several times slower
    than slicing (11 s vs 2.4 s for 98k of 100k rows of 32x64 fp16 here); reading each
    touched block as a slice and picking rows in numpy keeps the extra memory to one block
    and costs at most one block of extra reads per block.
    """
    blocks = rows // READ_BLOCK_ROWS
    starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
    return np.r_[starts, rows.size]


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
        # The Python API's entry point: a wrong type or an empty string is the caller's mistake, said
        # in one line like every other cache error (Path(5) would raise a bare TypeError, Path("")
        # would look for a cache at ".").
        if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
            raise CacheError(
                f"FeatureCache needs a file path (str or pathlib.Path), got {type(path).__name__}"
            )
        if not str(path).strip():
            raise CacheError("FeatureCache needs a file path, got an empty string")
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
            raise CacheError(f"{self.path} is not a readable HDF5 file ({first_line(e)})") from None
        try:
            self._validate()
        except CacheError:
            self.file.close()
            raise
        # RuntimeError: h5py's visititems on a damaged object header ("Object visitation failed")
        except (OSError, KeyError, ValueError, TypeError, RecursionError, RuntimeError) as e:
            self.file.close()
            raise CacheError(
                f"{self.path} is a damaged feature cache "
                f"({type(e).__name__}: {first_line(e)[:150]}); extract it again"
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
            "videos/thumbnail": (nv,),
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
        for name, ds in datasets_of(f):
            if name == "videos/thumbnail":
                continue  # ~10 KB a video: checked when read (thumbnails()), not on every open
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
        for name, ds in datasets_of(self.file):
            digests[name] = self._guard(name, lambda ds=ds: dataset_digest(ds))
            stored = ds.attrs.get("sha256")
            if stored is not None and str(_plain(stored)) != digests[name]:
                raise CacheError(f"{self.path}: /{name} does not match its sha256 (the file is damaged)")
        if self.content_hash is not None and combine_digests(digests) != self.content_hash:
            raise CacheError(f"{self.path}: datasets do not match content_sha256 (the file is damaged)")

    def has(self, field: str) -> bool:
        return field in self.file["videos"] or field in self.file["texts"]

    def fingerprint(self) -> str:
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
            msg = first_line(e)
            hint = "checksum mismatch: flipped bytes" if "filter" in msg or "checksum" in msg else msg
            raise CacheError(f"{self.path}: cannot read /{name} ({hint}); extract the cache again") from None

    def split_rows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.file["splits"]:
            raise CacheError(unknown_name_message("split", split, self.splits) + f" in {self.path}")
        g = self.file["splits"][split]
        return self._guard(f"splits/{split}", lambda: (g["video_rows"][:], g["text_rows"][:]))

    def read_rows(self, group: str, field: str, rows: np.ndarray) -> np.ndarray:
        """Read ``rows`` (any order, repeats allowed) of one dataset.

        The sorted unique rows are read block by block (``READ_BLOCK_ROWS`` rows at a time,
        contiguous slices where they can be) and scattered straight into the output, so the
        peak is the output plus one block: a split of 5.6 GiB no longer needs three copies of
        itself while loading. Floating-point features must be finite: each block is checked as
        it arrives and NaN or inf (damage, or an encoder overflow) stops here with the cache
        rows named, instead of poisoning a training run.
        """
        ds = self.file[group][field]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
        if rows.size == 0:
            return out
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        if sorted_rows[0] < 0 or sorted_rows[-1] >= ds.shape[0]:
            bad = sorted_rows[0] if sorted_rows[0] < 0 else sorted_rows[-1]
            raise CacheError(f"{self.path}: row {int(bad)} of /{group}/{field} is out of range")
        identity = bool((order == np.arange(rows.size)).all())
        uniq, inverse = np.unique(sorted_rows, return_inverse=True)
        identity = identity and uniq.size == rows.size
        name = f"{group}/{field}"
        floating = ds.dtype.kind == "f"
        bad_rows: list[np.ndarray] = []
        # blocks of unique rows; ``inverse`` is non-decreasing, so each block's output
        # positions are one contiguous run of ``order``
        bounds = _block_bounds(uniq)
        pos = np.searchsorted(inverse, bounds)
        for i in range(len(bounds) - 1):
            s, e = int(bounds[i]), int(bounds[i + 1])
            lo, hi = int(uniq[s]), int(uniq[e - 1]) + 1
            p0, p1 = int(pos[i]), int(pos[i + 1])
            if identity and hi - lo == e - s:
                # rows lo..hi land at out[s:e] unchanged: read into the output directly
                src, dst = np.s_[lo:hi], np.s_[s:e]
                self._guard(name, lambda src=src, dst=dst: ds.read_direct(out, src, dst))
                block = out[s:e]
            else:
                block = self._guard(name, lambda lo=lo, hi=hi: ds[lo:hi])
                if hi - lo != e - s:
                    block = block[uniq[s:e] - lo]
                if identity:
                    out[s:e] = block
                else:
                    out[order[p0:p1]] = block[inverse[p0:p1] - s]
            if floating:
                finite = np.isfinite(block.reshape(e - s, -1)).all(axis=1)
                if not finite.all():
                    bad_rows.append(uniq[s:e][~finite])
        if bad_rows:
            bad = np.concatenate(bad_rows)
            shown = ", ".join(str(int(r)) for r in bad[:5]) + (
                f" (+{bad.size - 5} more)" if bad.size > 5 else ""
            )
            raise CacheError(
                f"{self.path}: /{group}/{field} holds non-finite values (NaN/inf) in row(s) {shown}; "
                "extract the cache again"
            )
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
        import torch  # only here: reading a cache needs h5py alone (tests/ground/test_layers.py LAZY_CORE)

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

    def thumbnails(self, rows: Iterable[int] | None = None) -> list[str] | None:
        """Base64 JPEG strip per video (``""`` where none), or None for a cache without thumbnails."""
        if "thumbnail" not in self.file["videos"]:
            return None
        ds = self.file["videos"]["thumbnail"]
        stored = ds.attrs.get("sha256")
        if stored is not None and dataset_digest(ds) != str(_plain(stored)):
            raise CacheError(f"{self.path}: /videos/thumbnail does not match its sha256 (damaged file)")
        return self.read_strings("videos", "thumbnail", rows)

    def failed_videos(self) -> dict[str, str]:
        """Video id -> reason for every video marked failed."""
        status = self._guard("videos/status", lambda: self.file["videos"]["status"][:])
        bad = np.flatnonzero(status != STATUS_OK)
        if not bad.size:
            return {}
        ids = self.read_strings("videos", "id")
        errors = self.read_strings("videos", "error")
        return {ids[j]: errors[j] for j in bad}
