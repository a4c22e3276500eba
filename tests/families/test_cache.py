"""FeatureCache row reads: any order, duplicates, across block boundaries, equal to numpy indexing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import vtrbench.cache as cache_mod
from vtrbench.cache.reader import FeatureCache
from vtrbench.errors import CacheError


def _bare_reader(path: Path) -> FeatureCache:
    """A FeatureCache over a plain HDF5 file (read_rows only needs ``file`` and ``path``)."""
    reader = FeatureCache.__new__(FeatureCache)
    reader.path = path
    reader.file = h5py.File(path, "r")
    return reader


@pytest.mark.parametrize("block", [1, 3, 7, 1000])
def test_read_rows_equals_fancy_indexing(tmp_path: Path, monkeypatch, block: int) -> None:
    monkeypatch.setattr(cache_mod.reader, "READ_BLOCK_ROWS", block)
    data = np.random.default_rng(0).standard_normal((50, 3, 2)).astype(np.float16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        g = f.create_group("g")
        g.create_dataset("x", data=data, chunks=(4, 3, 2))
        g.create_dataset("i", data=np.arange(50) * 7)
    rng = np.random.default_rng(1)
    reader = _bare_reader(tmp_path / "x.h5")
    try:
        for rows in (
            np.arange(50),
            np.arange(10, 30),
            np.array([0]),
            np.array([49]),
            np.sort(rng.choice(50, 17, replace=False)),
            rng.permutation(50),
            np.arange(50)[::-1],
            rng.integers(0, 50, 80),  # repeats, any order
            np.array([5, 5, 5, 0, 49, 0]),
        ):
            np.testing.assert_array_equal(reader.read_rows("g", "x", rows), data[rows])
            np.testing.assert_array_equal(reader.read_rows("g", "i", rows), np.arange(50)[rows] * 7)
    finally:
        reader.close()


@pytest.mark.parametrize("block", [4, 1000])
def test_read_rows_names_every_non_finite_row(tmp_path: Path, monkeypatch, block: int) -> None:
    # rows in several blocks (and the last one), read in a shuffled order with a repeat
    monkeypatch.setattr(cache_mod.reader, "READ_BLOCK_ROWS", block)
    data = np.ones((30, 2), dtype=np.float16)
    data[[2, 9, 29], 1] = [np.nan, np.inf, -np.inf]
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_group("g").create_dataset("x", data=data)
    reader = _bare_reader(tmp_path / "x.h5")
    try:
        with pytest.raises(CacheError, match=r"non-finite .* row\(s\) 2, 9, 29;"):
            reader.read_rows("g", "x", np.r_[np.arange(30)[::-1], 9])
        np.testing.assert_array_equal(reader.read_rows("g", "x", np.array([3, 0, 28])), data[[3, 0, 28]])
        with pytest.raises(CacheError, match="row 30 of /g/x is out of range"):
            reader.read_rows("g", "x", np.array([0, 30]))
    finally:
        reader.close()


@pytest.mark.parametrize("order", ["split", "shuffled"])
def test_read_rows_peak_memory_is_the_output_plus_one_block(tmp_path: Path, monkeypatch, order: str) -> None:
    """Loading a split must not hold the dataset several times over (it held 3 copies + a
    half-size isfinite mask): traced numpy allocations peak at the output plus a few blocks."""
    import tracemalloc

    block = 64
    monkeypatch.setattr(cache_mod.reader, "READ_BLOCK_ROWS", block)
    n, row_shape = 2048, (32, 64)  # 8 MiB of fp16, blocks of 256 KiB
    data = np.random.default_rng(0).standard_normal((n, *row_shape)).astype(np.float16)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_group("g").create_dataset("x", data=data, chunks=(16, *row_shape))
    del data
    rows = np.arange(n) if order == "split" else np.random.default_rng(1).permutation(n)
    reader = _bare_reader(tmp_path / "x.h5")
    try:
        tracemalloc.start()
        out = reader.read_rows("g", "x", rows)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        reader.close()
    block_bytes = block * out[0].nbytes
    index_bytes = 6 * rows.nbytes  # order, sorted rows, unique rows, inverse, ...
    assert peak <= out.nbytes + 3 * block_bytes + index_bytes, (peak / out.nbytes, block_bytes / out.nbytes)


def test_read_rows_keeps_order_and_duplicates(synth_cache: Path) -> None:
    with cache_mod.FeatureCache(synth_cache) as cache:
        n = cache.file["texts"]["tokens"].shape[0]
        everything = cache.file["texts"]["tokens"][:]
        rows = np.array([n - 1, 0, 3, 3, n // 2, 1])
        np.testing.assert_array_equal(cache.read_rows("texts", "tokens", rows), everything[rows])
        assert cache.read_rows("texts", "tokens", np.array([], dtype=int)).shape == (0, *everything.shape[1:])
