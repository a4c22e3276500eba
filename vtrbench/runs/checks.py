"""Checks before the work starts: splits, output places, train/test overlap, k of QB-Norm and CSLS,
EMCL's post options on a pairwise head.

Each refuses in one line, before any training, what would otherwise fail (or silently mislead)
after it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.config import TrainConfig
from vtrbench.errors import VtrbenchError
from vtrbench.eval import csls_k_message, qb_k_message
from vtrbench.heads.base import HEADS, Head, list_heads
from vtrbench.registry import unknown_name_message
from vtrbench.runs.spec import RunSpec


def resolve_splits(cache: FeatureCache, train: str | None, test: str | None) -> tuple[str, str]:
    attrs = cache.attrs
    train = train or str(attrs.get("default_train") or "")
    test = test or str(attrs.get("default_test") or "")
    if not train:
        raise VtrbenchError(
            f"{cache.path} has no standard train split; pass --train-split (splits: "
            f"{', '.join(cache.splits)})"
        )
    for s in (train, test):
        cache.split_rows(s)  # raises a clear error for an unknown split
    if train == test:
        raise VtrbenchError(
            f"train and test split are both {train!r}: vtrbench does not select or train on the test split"
        )
    return train, test


def resolve_head_options(spec: RunSpec, cache: FeatureCache) -> tuple[dict[str, Any], str | None]:
    """The head options with what depends on the cache decided (a head class may define
    ``resolve_options``: seqtransf/camoe pick ``init`` from the cache's backbone weights), and a
    note for the user or None."""
    if spec.head not in list_heads():
        raise VtrbenchError(unknown_name_message("head", spec.head, list_heads()))
    resolve = getattr(HEADS.get(spec.head), "resolve_options", None)
    if resolve is None:
        return dict(spec.head_options), None
    return resolve(spec.head_options, cache.backbone_info(), int(cache.attrs["embed_dim"]))


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output that cannot be written: a folder in the file's place,
    a parent that is a file, or a folder this process cannot create files in (probed for real,
    since permission bits say nothing for root and nothing about read-only mounts)."""
    path = Path(path)
    if path.is_dir():
        raise VtrbenchError(f"cannot write {what} {path}: it is a folder")
    probe = path.parent
    while not probe.exists():
        if probe.is_symlink():
            raise VtrbenchError(f"cannot write {what} {path}: {probe} is a broken symbolic link")
        if probe == probe.parent:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise VtrbenchError(f"cannot write {what} {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vtrbench-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise VtrbenchError(
            f"cannot write {what} {path}: folder {probe} is not writable ({e.strerror})"
        ) from None


def _video_keys(cache: FeatureCache, rows: Any) -> dict[int, tuple[str, str | None]]:
    """cache row -> (video id, file sha256 or None)."""
    ids = cache.read_strings("videos", "id")
    hashes = getattr(cache, "file_hashes", None)  # per-video file sha256, when the cache stores them

    def file_hash(row: int) -> str | None:
        if hashes is None:
            return None
        try:
            h = hashes.get(ids[row]) if isinstance(hashes, dict) else hashes[row]
        except (IndexError, KeyError, TypeError):
            return None
        h = h.decode() if isinstance(h, bytes) else h
        return str(h) if h else None

    return {int(r): (ids[int(r)], file_hash(int(r))) for r in rows}


def split_overlap(cache: FeatureCache, train: str, test: str) -> list[str]:
    """Test videos that are also train videos: the same id, or (when the cache stores per-video file
    hashes) the same file content under another name."""
    train_rows = cache.split_rows(train)[0]
    test_rows = cache.split_rows(test)[0]
    keys = _video_keys(cache, [*train_rows, *test_rows])
    train_ids = {keys[int(r)][0] for r in train_rows}
    train_hashes = {keys[int(r)][1]: keys[int(r)][0] for r in train_rows if keys[int(r)][1]}
    found: list[str] = []
    for r in test_rows:
        vid, h = keys[int(r)]
        if vid in train_ids:
            found.append(vid)
        elif h is not None and h in train_hashes:
            found.append(f"{vid} (same file as train video {train_hashes[h]})")
    return sorted(set(found))


def check_overlap(cache: FeatureCache, train: str | None, test: str, allow: bool) -> int:
    """Refuse a train/test overlap (leakage) unless ``allow``; returns the number of shared videos."""
    if not train or train == test:
        return 0
    shared = split_overlap(cache, train, test)
    if shared and not allow:
        first = ", ".join(shared[:5]) + (", ..." if len(shared) > 5 else "")
        raise VtrbenchError(
            f"{len(shared)} video(s) of test split {test!r} are also in train split {train!r} of "
            f"{cache.path}: {first} (leakage; pass --allow-overlap to run anyway, it is recorded)"
        )
    return len(shared)


def check_qb_k(cache: FeatureCache, test_split: str, qb_k: int) -> None:
    """Refuse a QB-Norm k the test gallery cannot give, before any work (evaluate refuses it too)."""
    rows = cache.split_rows(test_split)[0]
    n_ok = int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())
    if qb_k > n_ok:
        raise VtrbenchError(qb_k_message(qb_k, n_ok, test_split))


def check_csls_k(cache: FeatureCache, test_split: str, train_split: str | None, config: TrainConfig) -> None:
    """Refuse a CSLS k beyond the test gallery or the bank, before any work (evaluate refuses it too)."""
    if "csls_k" not in config.post_options:  # the default is lowered to a small gallery, not refused
        return
    k = int(config.post_options["csls_k"])

    def usable(split: str) -> int:
        rows = cache.split_rows(split)[0]
        return int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())

    n_test = usable(test_split)
    if k > n_test:
        raise VtrbenchError(csls_k_message(k, "csls-test", n_test))
    if train_split and train_split != test_split:  # a bank: its videos, at most qb_bank of them
        n_bank = min(config.qb_bank, usable(train_split))
        if k > n_bank:
            raise VtrbenchError(csls_k_message(k, "csls-bank", n_bank))


def check_emcl_post(head: Head, name: str, config: TrainConfig) -> None:
    """Refuse ``--post-option emcl_*`` for a pairwise head, before any work: the ``emcl``
    post-processing transforms embeddings, which a pairwise head does not have (its runs leave emcl
    out of the post-processings they compute)."""
    given = sorted(k for k in config.post_options if k.startswith("emcl_"))
    if head.pairwise and given:
        raise VtrbenchError(
            f"--post-option {given[0]}: post-processing emcl transforms a factorised head's embeddings; "
            f"head {name!r} is pairwise (it scores caption-video pairs jointly)"
        )
