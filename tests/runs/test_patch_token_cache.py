"""A cache extracted with ``--patch-tokens`` next to the same extraction without them.

benchmarks/tune.py runs every cell on the patch-token demo cache when one head needs patch tokens
(ucofia), on the claim that the patch tokens are stored *beside* unchanged features: every other
dataset of the cache holds the same bits. And a grid mixing heads with and without patch tokens on
such a cache trains every head: the split a plain head loaded first (without the patch tokens) is
not handed to the head that needs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest


@pytest.fixture(scope="module")
def patch_cache(
    tmp_path_factory: pytest.TempPathFactory, synth_extract_argv: Callable[..., list[str]]
) -> Path:
    from vtrbench.cli import main

    path = tmp_path_factory.mktemp("patch_cache") / "synthetic_tiny_patches.h5"
    code = main(synth_extract_argv(path, "--patch-tokens"))
    assert code == 0 and path.is_file(), "vtrbench extract --patch-tokens of the synthetic fixture failed"
    return path


def _datasets(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


def test_patch_tokens_leave_every_other_dataset_bit_identical(synth_cache: Path, patch_cache: Path) -> None:
    plain, with_patches = _datasets(synth_cache), _datasets(patch_cache)
    assert set(with_patches) - set(plain) == {"videos/patches"}
    assert set(plain) <= set(with_patches)
    for name, value in plain.items():
        other = with_patches[name]
        assert value.dtype == other.dtype and value.shape == other.shape, name
        if value.dtype.kind == "O":
            assert list(value) == list(other), name
        else:  # bitwise: the raw bytes (NaN windows compare equal to themselves this way)
            assert value.tobytes() == other.tobytes(), name
    assert "videos/frames" in plain and "texts/tokens" in plain


def test_a_grid_trains_a_patch_token_head_after_a_plain_one(
    patch_cache: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    results = tmp_path / "results"
    res = run_cli(
        "ablate", "--cache", str(patch_cache), "--heads", "meanp,ucofia", "--losses", "infonce",
        "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet",
        "--results", str(results),
    )  # fmt: skip
    assert res.code == 0, res.text
    runs = {r["head"]: r for r in (json.loads(p.read_text()) for p in results.rglob("*.s0.json"))}
    assert sorted(runs) == ["meanp", "ucofia"]
    assert np.isfinite(runs["ucofia"]["metrics"]["raw"]["t2v"]["R@1"])
