"""Refusals that had never run in a test, and where an extract without ``--output`` writes.

- ``read_result`` on a file that is not a usable result: one VtrbenchError that names the file
  (the exact wording is results.py's business, the type and the file name are the contract);
- cache assembly with a part missing, truncated or unfinished: a CacheError naming the cache,
  no file at the cache path, and the finished parts kept for the resume (nothing deleted);
- assembly itself, against the parts written by hand: every row lands where the manifest says;
- ``vtrbench extract`` without ``--output``: the cache lands at
  ``features/<dataset>/<dataset>_<model>_<pretrained>_<T>f<fps>fps_<hash8>.h5`` under the
  working directory (README.md, features/README.md).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from vtrbench.cache import (
    STATUS_FAILED,
    STATUS_OK,
    FeatureCache,
    Manifest,
    assemble,
    part_identity,
    part_path,
    parts_dir,
    write_part,
)
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.results import read_result

RESULT_FIXTURE = next((Path(__file__).parents[1] / "fixtures" / "results").rglob("*.json"))


# ------------------------------------------------------------------ read_result


def _refused(path: Path) -> str:
    with pytest.raises(VtrbenchError) as info:
        read_result(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_fixture_result_is_readable(tmp_path: Path) -> None:
    # the damaged copies below differ from this readable file only by the damage
    path = tmp_path / "ok.json"
    shutil.copy(RESULT_FIXTURE, path)
    assert read_result(path)["run_id"]


@pytest.mark.parametrize("schema", [0, 2, "1", None])
def test_read_result_refuses_another_schema(tmp_path: Path, schema: Any) -> None:
    data = json.loads(RESULT_FIXTURE.read_text())
    data["schema"] = schema
    path = tmp_path / "other_schema.json"
    path.write_text(json.dumps(data))
    _refused(path)


def test_read_result_refuses_a_file_without_schema(tmp_path: Path) -> None:
    data = json.loads(RESULT_FIXTURE.read_text())
    del data["schema"]
    path = tmp_path / "no_schema.json"
    path.write_text(json.dumps(data))
    _refused(path)


@pytest.mark.parametrize("key", ["run_id", "metrics"])
def test_read_result_refuses_a_file_without_run_id_or_metrics(tmp_path: Path, key: str) -> None:
    data = json.loads(RESULT_FIXTURE.read_text())
    del data[key]
    path = tmp_path / f"no_{key}.json"
    path.write_text(json.dumps(data))
    _refused(path)


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"run_id": "x", "metrics": {', "not json at all", "[1, 2, 3]", '"a string"', "null"],
    ids=["empty", "brace", "truncated", "words", "list", "string", "null"],
)
def test_read_result_refuses_corrupt_or_non_object_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text(text)
    _refused(path)


def test_read_result_refuses_a_truncated_real_result(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    full = RESULT_FIXTURE.read_text()
    path.write_text(full[: len(full) // 2])
    _refused(path)


def test_read_result_names_a_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.json")


# ------------------------------------------------------------------ cache assembly


def _manifest(n_videos: int = 5, n_texts: int = 7, video_chunk: int = 2, text_chunk: int = 3) -> Manifest:
    return Manifest(
        config={"model": "m", "max_frames": 3},
        config_hash="0123456789abcdef",
        video_ids=[f"v{i}" for i in range(n_videos)],
        video_paths=[f"/videos/v{i}.mp4" for i in range(n_videos)],
        captions=[f"caption {i}" for i in range(n_texts)],
        text_video=[i % n_videos for i in range(n_texts)],
        splits={
            "train": {"video_rows": [0, 1, 2], "text_rows": [0, 1, 2, 5, 6], "note": "first three"},
            "test": {"video_rows": [3, 4], "text_rows": [3, 4], "note": "last two"},
        },
        video_chunk=video_chunk,
        text_chunk=text_chunk,
        attrs={"dataset": "handmade", "embed_dim": 4, "max_frames": 3, "max_words": 2},
    )


def _video_arrays(start: int, end: int) -> dict[str, np.ndarray]:
    rows = np.arange(start, end)
    return {
        # every value says which row it belongs to, so a misplaced chunk shows
        "frames": (rows[:, None, None] * 100 + np.arange(12).reshape(1, 3, 4)).astype(np.float16),
        "frame_mask": np.ones((len(rows), 3), dtype=bool),
        "frame_index": np.tile(np.arange(3, dtype=np.int32), (len(rows), 1)),
        "status": np.where(rows == 3, STATUS_FAILED, STATUS_OK).astype(np.int8),
        "error": np.array(["bad file" if r == 3 else "" for r in rows], dtype=object),
    }


def _text_arrays(start: int, end: int) -> dict[str, np.ndarray]:
    rows = np.arange(start, end)
    return {
        "tokens": (rows[:, None, None] * 10 + np.arange(8).reshape(1, 2, 4)).astype(np.float16),
        "token_ids": (rows[:, None] * 2 + np.arange(2)).astype(np.int32),
        "token_mask": np.ones((len(rows), 2), dtype=bool),
        "eot": (rows % 2).astype(np.int16),
    }


def _write_parts(cache: Path, manifest: Manifest, skip: set[tuple[str, int]] = frozenset()) -> None:
    for kind, arrays in (("videos", _video_arrays), ("texts", _text_arrays)):
        for k, (s, e) in enumerate(manifest.chunks(kind)):
            if (kind, k) not in skip:
                write_part(part_path(cache, kind, k), arrays(s, e), part_identity(manifest, kind, k))


def test_manifest_chunks_cover_every_row_once() -> None:
    m = _manifest(n_videos=5, n_texts=7, video_chunk=2, text_chunk=3)
    assert m.chunks("videos") == [(0, 2), (2, 4), (4, 5)]
    assert m.chunks("texts") == [(0, 3), (3, 6), (6, 7)]
    assert _manifest(n_videos=4, video_chunk=2).chunks("videos") == [(0, 2), (2, 4)]


def test_assemble_copies_every_part_into_place(tmp_path: Path) -> None:
    cache = tmp_path / "c.h5"
    m = _manifest()
    _write_parts(cache, m)
    assemble(cache, m)
    assert not parts_dir(cache).exists() and not Path(str(cache) + ".tmp").exists()
    with h5py.File(cache, "r") as f:
        np.testing.assert_array_equal(f["videos/frames"][:], _video_arrays(0, 5)["frames"])
        np.testing.assert_array_equal(f["videos/status"][:], _video_arrays(0, 5)["status"])
        assert [x.decode() for x in f["videos/error"][:]] == ["", "", "", "bad file", ""]
        assert [x.decode() for x in f["videos/id"][:]] == m.video_ids
        assert [x.decode() for x in f["videos/path"][:]] == m.video_paths
        np.testing.assert_array_equal(f["texts/tokens"][:], _text_arrays(0, 7)["tokens"])
        np.testing.assert_array_equal(f["texts/eot"][:], _text_arrays(0, 7)["eot"])
        np.testing.assert_array_equal(f["texts/video"][:], m.text_video)
        assert [x.decode() for x in f["texts/caption"][:]] == m.captions
        for name, split in m.splits.items():
            np.testing.assert_array_equal(f[f"splits/{name}/video_rows"][:], split["video_rows"])
            np.testing.assert_array_equal(f[f"splits/{name}/text_rows"][:], split["text_rows"])
            assert f[f"splits/{name}"].attrs["note"] == split["note"]
        attrs = dict(f.attrs)
    assert attrs["n_videos"] == 5 and attrs["n_texts"] == 7 and attrs["n_failed"] == 1
    assert attrs["dataset"] == "handmade" and attrs["embed_dim"] == 4
    assert attrs["config_hash"] == m.config_hash and json.loads(attrs["config_json"]) == m.config
    with FeatureCache(cache) as fc:  # the reader accepts what assembly wrote
        video_rows, text_rows = fc.split_rows("test")
        assert video_rows.tolist() == [3, 4] and text_rows.tolist() == [3, 4]
        np.testing.assert_array_equal(
            fc.read_rows("texts", "tokens", np.array([6, 0])), _text_arrays(0, 7)["tokens"][[6, 0]]
        )


@pytest.mark.parametrize(
    "damage",
    [
        "missing video part",
        "missing text part",
        "wrong row count",
        "not marked complete",
        "no complete flag",
        "not hdf5",
    ],
)
def test_assemble_refuses_while_a_part_is_missing(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "c.h5"
    m = _manifest()
    if damage == "missing video part":
        _write_parts(cache, m, skip={("videos", 1)})
    elif damage == "missing text part":
        _write_parts(cache, m, skip={("texts", 2)})
    else:
        _write_parts(cache, m)
        victim = part_path(cache, "videos", 2)
        if damage == "wrong row count":
            write_part(victim, _video_arrays(0, 2))  # chunk 2 holds one row, not two
        elif damage == "not marked complete":
            with h5py.File(victim, "a") as f:
                f.attrs["complete"] = False
        elif damage == "no complete flag":  # a writer that died before marking it (or a foreign file)
            with h5py.File(victim, "a") as f:
                del f.attrs["complete"]
        else:
            victim.write_bytes(b"\x00garbage" * 10)
    before = sorted(p.name for p in parts_dir(cache).iterdir())
    with pytest.raises(CacheError) as info:
        assemble(cache, m)
    message = str(info.value)
    assert str(cache) in message and "missing" in message and "\n" not in message
    assert not cache.exists() and not Path(str(cache) + ".tmp").exists()
    assert sorted(p.name for p in parts_dir(cache).iterdir()) == before  # nothing deleted


def test_assemble_names_the_missing_parts(tmp_path: Path) -> None:
    cache = tmp_path / "c.h5"
    m = _manifest()
    _write_parts(cache, m, skip={("videos", 0), ("videos", 2), ("texts", 1)})
    with pytest.raises(CacheError, match=r"videos \[0, 2\] texts \[1\]"):
        assemble(cache, m)


# ------------------------------------------------------------------ default cache path


def test_extract_without_output_writes_under_features(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[..., Any],
    synth_extract_argv: Callable[..., list[str]],
    synth_cache: Path,
) -> None:
    argv = synth_extract_argv(tmp_path / "unused.h5")
    argv = argv[: argv.index("--output")]  # the same command, without --output
    monkeypatch.chdir(tmp_path)
    result = run_cli(*argv)
    assert result.code == 0, result.text
    made = sorted((tmp_path / "features").rglob("*.h5"))
    assert len(made) == 1, made
    with FeatureCache(synth_cache) as reference:  # same command with --output: same config
        chash = reference.config_hash
        max_frames = json.loads(reference.attrs["config_json"])["max_frames"]
        fps = json.loads(reference.attrs["config_json"])["fps"]
    expected = f"features/synthetic/synthetic_vtrbench-tiny_none_{max_frames}f{fps}fps_{chash[:8]}.h5"
    assert made[0].relative_to(tmp_path).as_posix() == expected
    assert not (tmp_path / "unused.h5").exists()


def test_default_cache_path_uses_the_checkpoint_stem() -> None:
    from vtrbench.cli import default_cache_path

    got = default_cache_path("msrvtt", "ViT-B-32", "/ckpts/clip-ft.pt", 12, 1, "abcdef0123456789")
    assert got.as_posix() == "features/msrvtt/msrvtt_ViT-B-32_clip-ft_12f1fps_abcdef01.h5"
    got = default_cache_path("msvd", "ViT-B-16", "openai", 64, 2, "0011223344556677")
    assert got.as_posix() == "features/msvd/msvd_ViT-B-16_openai_64f2fps_00112233.h5"
