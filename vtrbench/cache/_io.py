"""Shared low-level pieces of the cache: constants, crash-safe HDF5 writing, free-space checks, digests."""

from __future__ import annotations

import errno
import gc
import hashlib
import io
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vtrbench.errors import CacheError

SCHEMA = 1
STATUS_OK = 0
STATUS_FAILED = 1
STR = h5py.string_dtype(encoding="utf-8")

VIDEO_FIELDS = (
    "frames", "frame_mask", "frame_index", "status", "error", "patches", "file_sha256", "thumbnail",
)  # fmt: skip
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


def first_line(e: BaseException) -> str:
    lines = str(e).splitlines()
    return lines[0] if lines else type(e).__name__


def write_file(path: Path, tmp: Path, write: Callable[[], None]) -> None:
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
def h5_in_memory(tmp: Path) -> Iterator[h5py.File]:
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
    reason = "the disk is full" if full else (getattr(e, "strerror", None) or first_line(e))
    return CacheError(
        f"cannot write {path}: {reason}; finished parts are kept: fix this and run the same command again"
    )


def create_dataset(group: h5py.Group, name: str, data: np.ndarray | None = None, **kw: Any) -> h5py.Dataset:
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


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def datasets_of(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def combine_digests(digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(digests.items())).encode()).hexdigest()


def seal(f: h5py.File) -> str:
    """Store each dataset's digest as its ``sha256`` attribute and their combination as ``content_sha256``."""
    digests = {}
    for name, ds in datasets_of(f):
        digests[name] = dataset_digest(ds)
        ds.attrs["sha256"] = digests[name]
    f.attrs["content_sha256"] = combine_digests(digests)
    return str(f.attrs["content_sha256"])


# --------------------------------------------------------------------------- reading
