"""Issue 19, class 1: a part file says what it holds, and assembly and resume check it.

A file name proves nothing: parts swapped, renamed or copied from another extraction used to be
assembled into the wrong rows without a word. Expected values here are independent of the
identity code: which rows a handmade part holds is encoded in its values (row * 100 + ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.extract.test_extract import assert_same_cache
from tests.families.test_refusals import _manifest, _text_arrays, _video_arrays, _write_parts
from vtrbench.cache import (
    PartMismatch,
    assemble,
    missing_parts,
    part_identity,
    part_path,
    parts_dir,
    write_part,
)
from vtrbench.errors import CacheError


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap.tmp")
    os.replace(a, tmp)
    os.replace(b, a)
    os.replace(tmp, b)


@pytest.mark.parametrize(
    "damage",
    ["swap video parts", "swap text parts", "rename video part", "video part as text part", "other ids",
     "other config", "other captions"],
)  # fmt: skip
def test_assembly_refuses_a_part_that_holds_other_rows(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "c.h5"
    m = _manifest(n_videos=6, n_texts=7)
    _write_parts(cache, m)
    victim = part_path(cache, "videos", 0)
    if damage == "swap video parts":
        _swap(part_path(cache, "videos", 0), part_path(cache, "videos", 2))
    elif damage == "swap text parts":
        victim = part_path(cache, "texts", 0)  # the first one checked
        _swap(victim, part_path(cache, "texts", 1))
    elif damage == "rename video part":  # chunk 1 lost, chunk 2 renamed into its place
        victim = part_path(cache, "videos", 1)
        os.replace(part_path(cache, "videos", 2), victim)
    elif damage == "video part as text part":
        victim = part_path(cache, "texts", 0)
        arrays = _text_arrays(0, 3)
        write_part(victim, arrays, part_identity(m, "videos", 1) | {"row_end": 3})
    else:
        other = _manifest(n_videos=6, n_texts=7)
        if damage == "other ids":
            other.video_ids = [f"w{i}" for i in range(6)]  # same config hash, other dataset rows
        elif damage == "other config":
            other.config_hash = "fedcba9876543210"
        else:
            victim = part_path(cache, "texts", 2)
            other.captions = [f"other {i}" for i in range(7)]
        kind = "texts" if damage == "other captions" else "videos"
        k = 2 if kind == "texts" else 0
        s, e = other.chunks(kind)[k]
        arrays = _text_arrays(s, e) if kind == "texts" else _video_arrays(s, e)
        write_part(victim, arrays, part_identity(other, kind, k))
    before = {p.name: p.read_bytes() for p in parts_dir(cache).iterdir()}
    with pytest.raises(PartMismatch) as info:
        assemble(cache, m)
    message = str(info.value)
    assert str(victim) in message and "\n" not in message, message
    assert not cache.exists()
    assert {p.name: p.read_bytes() for p in parts_dir(cache).iterdir()} == before  # nothing touched


def test_a_part_without_an_identity_record_is_made_again(tmp_path: Path) -> None:
    """Parts of an older vtrbench carry no identity: they count as missing (redone), never trusted."""
    cache = tmp_path / "c.h5"
    m = _manifest()
    _write_parts(cache, m)
    write_part(part_path(cache, "videos", 1), _video_arrays(2, 4))  # right rows, no record
    assert missing_parts(cache, m) == {"videos": [1], "texts": []}
    with pytest.raises(CacheError, match="missing"):
        assemble(cache, m)


def test_identity_does_not_reach_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "c.h5"
    m = _manifest()
    _write_parts(cache, m)
    assemble(cache, m)
    with h5py.File(cache, "r") as f:
        np.testing.assert_array_equal(f["videos/frames"][:], _video_arrays(0, 5)["frames"])
        assert "rows_sha256" not in f["videos/frames"].attrs and "chunk" not in f.attrs


def test_swapped_parts_of_a_finished_shard_set_are_refused(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """The reported case: shard 1/2's parts 1 and 3 swapped, then --assemble (and a resume)."""
    out = tmp_path / "swapped.h5"
    assert run_cli(*synth_extract_argv(out, "--shard", "1/2")).code == 0
    pdir = parts_dir(out)
    _swap(pdir / "videos-00001.h5", pdir / "videos-00003.h5")
    assert run_cli(*synth_extract_argv(out, "--shard", "0/2")).code == 2  # the last shard refuses too
    r = run_cli(*synth_extract_argv(out, "--assemble"))
    assert r.code == 2 and "videos-00001.h5" in r.err and "chunk 3" in r.err and "moved" in r.err, r.err
    assert "its name is videos-00003.h5" in r.err
    assert not out.exists()
    r = run_cli(*synth_extract_argv(out, "--shard", "1/2"))  # resume's validity check refuses as well
    assert r.code == 2 and "videos-0000" in r.err and "Traceback" not in r.err, r.err
    assert not (pdir / "videos-00000.h5").exists()  # shard 0/2 refused before doing any work
    _swap(pdir / "videos-00001.h5", pdir / "videos-00003.h5")  # put back: the last shard assembles
    r = run_cli(*synth_extract_argv(out, "--shard", "0/2"))
    assert r.code == 0 and out.is_file(), r.err
    assert_same_cache(out, synth_cache)
