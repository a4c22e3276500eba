"""FeatureCache row reads: any order, duplicates, across block boundaries, equal to numpy indexing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import vtrbench.cache as cache_mod
from vtrbench.cache.reader import _read_blocks


@pytest.mark.parametrize("block", [1, 3, 7, 1000])
def test_read_blocks_equals_fancy_indexing(tmp_path: Path, monkeypatch, block: int) -> None:
    monkeypatch.setattr(cache_mod.reader, "READ_BLOCK_ROWS", block)
    data = np.random.default_rng(0).standard_normal((50, 3, 2)).astype(np.float16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=(4, 3, 2))
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        for rows in (
            np.arange(50),
            np.array([0]),
            np.array([49]),
            np.sort(rng.choice(50, 17, replace=False)),
        ):
            np.testing.assert_array_equal(_read_blocks(f["x"], rows), data[rows])


def test_read_rows_keeps_order_and_duplicates(synth_cache: Path) -> None:
    with cache_mod.FeatureCache(synth_cache) as cache:
        n = cache.file["texts"]["tokens"].shape[0]
        everything = cache.file["texts"]["tokens"][:]
        rows = np.array([n - 1, 0, 3, 3, n // 2, 1])
        np.testing.assert_array_equal(cache.read_rows("texts", "tokens", rows), everything[rows])
        assert cache.read_rows("texts", "tokens", np.array([], dtype=int)).shape == (0, *everything.shape[1:])
