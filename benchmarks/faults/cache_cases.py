"""Damaged feature caches: flipped bytes in every dataset and at random places, truncations, missing
groups, datasets and attributes, out-of-range rows, non-finite features, wrong widths and schemas.

Each case copies the shared tiny cache, damages the copy, and opens it the way a user would
(``inspect --verify``, ``train``). A clear error must name the file; a run that succeeds must give
exactly the intact cache's data (the damage fell where nothing is stored), or it is silently wrong.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    tiny_cache,
    train_argv,
)
from benchmarks.faults.extract_cases import cache_difference

AREA = "cache"


def _copy(ctx: Context, tmp: Path) -> Path:
    dst = tmp / "damaged.h5"
    shutil.copyfile(tiny_cache(ctx), dst)
    return dst


def _datasets(path: Path) -> list[str]:
    import h5py

    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def _data_offset(path: Path, name: str) -> tuple[int, int]:
    """(byte offset, size) of the first stored chunk (or the contiguous data) of a dataset."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.chunks is None:
            return ds.id.get_offset() or 0, ds.id.get_storage_size()
        info = ds.id.get_chunk_info(0)
        return info.byte_offset, info.size


def _flip_bytes(path: Path, offsets: list[int]) -> None:
    with open(path, "r+b") as fh:
        for at in offsets:
            fh.seek(at)
            b = fh.read(1)
            if not b:
                continue
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x5A]))


def _opened(damaged: Path, ctx: Context, run_train: bool = False) -> Outcome:
    """inspect --verify (and optionally train): a clear error naming the file, or exactly the intact data."""
    r = run_cli(["inspect", "--verify", damaged])
    if r.code == 0 and not r.traceback:
        diff = cache_difference(damaged, tiny_cache(ctx))
        # a success is right only if every dataset still equals the intact cache's
        if diff and not diff.startswith(("objects with", "/@", "@")):
            return Outcome("silently_wrong", f"inspect --verify passed on a damaged cache: {diff}")
        if not run_train:
            return Outcome("handled", "the damage touched no stored value")
    else:
        outcome = expect_error(r, damaged.name)
        if outcome.kind != "clear_error" or not run_train:
            return outcome
    results = damaged.parent / "results"
    return expect_error(run_cli(train_argv(damaged, results, "--epochs", 1)), damaged.name)


def _flip_dataset_case(name: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        damaged = _copy(ctx, tmp)
        offset, size = _data_offset(damaged, name)
        if not offset or not size:
            return Outcome("handled", "no stored bytes to flip")
        _flip_bytes(damaged, [offset + size // 2])
        return _opened(damaged, ctx)

    return Case(AREA, f"flip-{name.replace('/', '-')}", run)


def _random_flip_case(i: int) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        damaged = _copy(ctx, tmp)
        size = damaged.stat().st_size
        rng = np.random.default_rng(100 + i)
        _flip_bytes(damaged, [int(x) for x in rng.integers(0, size, 1 + i % 3)])
        return _opened(damaged, ctx)

    return Case(AREA, f"flip-random-{i:02d}", run)


def _truncate_case(fraction: float) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        damaged = _copy(ctx, tmp)
        data = damaged.read_bytes()
        damaged.write_bytes(data[: int(len(data) * fraction)])
        return _opened(damaged, ctx, run_train=True)

    return Case(AREA, f"truncated-{int(fraction * 1000):03d}permille", run)


def _h5_case(name: str, damage: Callable[[Any], None], run_train: bool = False) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        import h5py

        damaged = _copy(ctx, tmp)
        with h5py.File(damaged, "r+") as f:
            damage(f)
        return _opened(damaged, ctx, run_train)

    return Case(AREA, name, run)


def _del_attr(key: str) -> Callable[[Any], None]:
    return lambda f: f.attrs.__delitem__(key)


def _set_attr(key: str, value: Any) -> Callable[[Any], None]:
    return lambda f: f.attrs.__setitem__(key, value)


def _del(name: str) -> Callable[[Any], None]:
    return lambda f: f.__delitem__(name)


def _set_row(name: str, index: int, value: Any) -> Callable[[Any], None]:
    def damage(f: Any) -> None:
        data = f[name][()]
        data[index] = value
        f[name][...] = data

    return damage


def _replace(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any], None]:
    def damage(f: Any) -> None:
        data = make(f[name][()])
        del f[name]
        f.create_dataset(name, data=data)

    return damage


def _non_finite_case(name: str, field: str, row: int, value: float) -> Case:
    """NaN/inf written through HDF5 (checksums stay valid): train must stop naming the rows."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        import h5py

        damaged = _copy(ctx, tmp)
        with h5py.File(damaged, "r+") as f:
            data = f[field][()]
            data[row].flat[0] = value
            f[field][...] = data
        r = run_cli(train_argv(damaged, tmp / "results", "--epochs", 1))
        return expect_error(r, damaged.name, "non-finite", f"{row}")

    return Case(AREA, name, run)


def _not_a_cache(name: str, make: Callable[[Path], Path]) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        path = make(tmp)
        return expect_error(run_cli(["inspect", path]), path.name)

    return Case(AREA, name, run)


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def _folder(tmp: Path) -> Path:
    (tmp / "dir.h5").mkdir()
    return tmp / "dir.h5"


def _foreign_h5(tmp: Path) -> Path:
    import h5py

    with h5py.File(tmp / "foreign.h5", "w") as f:
        f.create_dataset("x", data=np.arange(4))
    return tmp / "foreign.h5"


def _fingerprint_case(tmp: Path, ctx: Context) -> Outcome:
    """Same config, other bytes: the fingerprint (recorded in results) must differ."""
    import h5py

    from vtrbench.cache import FeatureCache, seal

    damaged = _copy(ctx, tmp)
    with h5py.File(damaged, "r+") as f:
        frames = f["videos/frames"][()]
        frames[0, 0, 0] += 1
        f["videos/frames"][...] = frames
        seal(f)  # a well-formed cache whose content differs (as a re-extraction on other files would)
    with FeatureCache(damaged) as a, FeatureCache(tiny_cache(ctx)) as b:
        if a.config_hash != b.config_hash:
            return Outcome("silently_wrong", "the config hash changed")
        if a.fingerprint() == b.fingerprint():
            return Outcome("silently_wrong", "two caches with different features share a fingerprint")
    return Outcome("handled", "fingerprints differ")


def _train_ok_case(tmp: Path, ctx: Context) -> Outcome:
    """The intact cache trains, and its result records the content-based fingerprint."""
    import json

    from vtrbench.cache import FeatureCache

    r = run_cli(train_argv(tiny_cache(ctx), tmp / "results", "--epochs", 1))

    def check() -> str | None:
        files = list((tmp / "results").rglob("*.json"))
        with FeatureCache(tiny_cache(ctx)) as c:
            want = c.fingerprint()
        got = json.loads(files[0].read_text())["cache"]["fingerprint"]
        return None if got == want else f"result fingerprint {got} != cache {want}"

    return expect_ok(r, check)


def cases() -> list[Case]:
    out: list[Case] = []
    # Every dataset of a cache, listed from a fresh cache's layout (the names are fixed by the schema).
    for name in DATASETS:
        out.append(_flip_dataset_case(name))
    out += [_random_flip_case(i) for i in range(16)]
    out += [_truncate_case(f) for f in (0.001, 0.1, 0.5, 0.9, 0.999)]
    for key in (
        "schema",
        "config_json",
        "config_hash",
        "n_videos",
        "n_texts",
        "embed_dim",
        "max_frames",
        "max_words",
    ):
        out.append(_h5_case(f"missing-attr-{key}", _del_attr(key), run_train=key == "embed_dim"))
    for name in ("videos", "texts", "splits", "splits/train"):
        out.append(_h5_case(f"missing-group-{name.replace('/', '-')}", _del(name)))
    for name in (
        "videos/frames", "videos/frame_mask", "videos/status", "videos/id", "videos/error",
        "texts/tokens", "texts/token_ids", "texts/eot", "texts/caption", "texts/video",
        "splits/test/video_rows", "splits/train/text_rows",
    ):  # fmt: skip
        out.append(_h5_case(f"missing-dataset-{name.replace('/', '-')}", _del(name)))
    out += [
        _h5_case("rows-text-video-too-big", _set_row("texts/video", 0, 10_000), run_train=True),
        _h5_case("rows-text-video-negative", _set_row("texts/video", 3, -1)),
        _h5_case("rows-split-video-too-big", _set_row("splits/test/video_rows", 0, 999)),
        _h5_case("rows-split-text-negative", _set_row("splits/train/text_rows", 1, -7), run_train=True),
        _h5_case("rows-float-indices", _replace("splits/test/video_rows", lambda a: a.astype(np.float32))),
        _h5_case("width-embed-dim-attr", _set_attr("embed_dim", 32), run_train=True),
        _h5_case("width-max-frames-attr", _set_attr("max_frames", 3)),
        _h5_case("width-max-words-attr", _set_attr("max_words", 77)),
        _h5_case("width-n-videos-attr", _set_attr("n_videos", 3)),
        _h5_case("width-n-texts-attr", _set_attr("n_texts", 999)),
        _h5_case("width-frames-narrower", _replace("videos/frames", lambda a: a[..., :32])),
        _h5_case("width-tokens-narrower", _replace("texts/tokens", lambda a: a[..., :16])),
        _h5_case("width-frames-fewer-rows", _replace("videos/frames", lambda a: a[:-1])),
        _h5_case("width-token-ids-shorter", _replace("texts/token_ids", lambda a: a[:, :8])),
        _h5_case("dtype-frames-int", _replace("videos/frames", lambda a: a.astype(np.int32))),
        _h5_case("schema-2", _set_attr("schema", np.int64(2))),
        _h5_case("schema-string", _set_attr("schema", "1")),
        _h5_case("schema-0", _set_attr("schema", 0)),
        _h5_case("config-json-not-json", _set_attr("config_json", "{oops")),
        _h5_case("config-json-a-list", _set_attr("config_json", "[1, 2]")),
        _h5_case("config-json-deep", _set_attr("config_json", "[" * 100_000 + "]" * 100_000)),
        _h5_case("string-flipped-caption", _set_row("texts/caption", 0, "a different caption")),
        _h5_case("string-flipped-id", _set_row("videos/id", 1, "someone-else")),
        _non_finite_case("nan-frames", "videos/frames", 2, float("nan")),
        _non_finite_case("inf-frames", "videos/frames", 5, float("inf")),
        _non_finite_case("nan-tokens", "texts/tokens", 4, float("nan")),
        _non_finite_case("neg-inf-tokens", "texts/tokens", 7, float("-inf")),
        _not_a_cache("not-hdf5-random", _write("random.h5", bytes(range(256)) * 64)),
        _not_a_cache("not-hdf5-empty", _write("empty.h5", b"")),
        _not_a_cache("not-hdf5-json", _write("results.h5", b'{"a": 1}')),
        _not_a_cache("a-folder", _folder),
        _not_a_cache("foreign-hdf5", _foreign_h5),
        Case(AREA, "fingerprint-depends-on-content", _fingerprint_case),
        Case(AREA, "intact-cache-trains-with-fingerprint", _train_ok_case),
    ]
    return out


# The datasets a tiny cache holds (schema 1, synthetic dataset with known roles, no patch tokens).
DATASETS = (
    "splits/test/text_rows", "splits/test/video_rows", "splits/train/text_rows", "splits/train/video_rows",
    "texts/caption", "texts/eot", "texts/noun_mask", "texts/token_ids", "texts/token_mask", "texts/tokens",
    "texts/verb_mask", "texts/video", "videos/error", "videos/frame_index", "videos/frame_mask",
    "videos/frames", "videos/id", "videos/path", "videos/status",
)  # fmt: skip
