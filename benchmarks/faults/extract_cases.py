"""Faults of ``vtrbench extract`` and ``synth``: bad videos, bad options, unwritable and full outputs,
failed overwrites, and (``quick=False``) ``kill -9`` of extract, train and ablate at random and at
chosen moments, each followed by a resume that must equal an uninterrupted run.

Kills run the real entry point in a child process (``python -c`` with a small patch that stops at
the chosen moment and touches a marker file: no test hooks live in vtrbench itself); the resume
runs in-process, and its output is compared dataset by dataset (or result file by result file)
with the shared fixtures.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.faults.core import (
    TINY_MODEL,
    Case,
    CliRun,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    extract_argv,
    run_cli,
    synthetic_dataset,
    tiny_cache,
    tiny_results,
    train_argv,
)

REPO = Path(__file__).resolve().parents[2]
AREA = "extract"


# ------------------------------------------------------------------ comparison helpers


def read_h5(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every dataset (strings decoded) and every object's attributes of an HDF5 file."""
    import h5py

    data: dict[str, Any] = {}
    attrs: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        attrs["/"] = dict(f.attrs)

        def visit(name: str, obj: Any) -> None:
            attrs[name] = dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                value = obj.asstr()[()] if h5py.check_string_dtype(obj.dtype) else obj[()]
                data[name] = (str(obj.dtype), value)

        f.visititems(visit)
    return data, attrs


def cache_difference(a: Path, b: Path) -> str | None:
    """None when every dataset (dtype, shape, values) and attribute but created_utc are equal."""
    if not a.is_file() or not b.is_file():
        return f"missing cache: {a if not a.is_file() else b}"
    da, aa = read_h5(a)
    db, ab = read_h5(b)
    if sorted(da) != sorted(db):
        return f"datasets differ: {sorted(set(da) ^ set(db))}"
    for name in da:
        if da[name][0] != db[name][0] or np.shape(da[name][1]) != np.shape(db[name][1]):
            return f"/{name}: dtype or shape differs"
        floats = np.asarray(da[name][1]).dtype.kind == "f"  # NaN marks "no window": equal to itself
        if not np.array_equal(da[name][1], db[name][1], equal_nan=floats):
            return f"/{name}: values differ"
    for obj in (aa, ab):
        obj["/"].pop("created_utc", None)
    if sorted(aa) != sorted(ab):
        return "objects with attributes differ"
    for name in aa:
        if aa[name].keys() != ab[name].keys():
            return f"{name}: attribute names differ"
        for key in aa[name]:
            if not np.array_equal(np.asarray(aa[name][key]), np.asarray(ab[name][key])):
                return f"{name}@{key} differs"
    return None


def _result_view(path: Path) -> dict[str, Any]:
    """A result file without what legitimately changes between runs (time, provenance)."""
    r = json.loads(path.read_text())
    for key in ("created_utc", "timing", "provenance"):
        r.pop(key, None)
    for epoch in r.get("history") or []:
        for key in ("seconds", "pairs_per_s"):
            epoch.pop(key, None)
    return r


def results_difference(a: Path, b: Path) -> str | None:
    fa = {p.relative_to(a): p for p in a.rglob("*.json")}
    fb = {p.relative_to(b): p for p in b.rglob("*.json")}
    if sorted(fa) != sorted(fb):
        return f"result files differ: {sorted(map(str, set(fa) ^ set(fb)))[:4]}"
    for rel in fa:
        if _result_view(fa[rel]) != _result_view(fb[rel]):
            return f"{rel}: contents differ"
    return None


def _copy_cache(ctx: Context, tmp: Path, name: str = "cache.h5") -> Path:
    dst = tmp / name
    shutil.copyfile(tiny_cache(ctx), dst)
    return dst


def _data(ctx: Context) -> Path:
    return synthetic_dataset(ctx)


# ------------------------------------------------------------------ bad videos (custom datasets)


def _good_video(ctx: Context) -> Path:
    return sorted((_data(ctx) / "videos").glob("*.mp4"))[0]


def _custom_argv(csv: Path, out: Path, *extra: Any) -> list[Any]:
    return [
        "extract", "--dataset", "custom", "--annotations", csv, "--model", TINY_MODEL, "--pretrained", "none",
        "--device", "cpu", "--workers", "0", "--quiet", "--output", out, *extra,
    ]  # fmt: skip


def _bad_video_case(name: str, make: Callable[[Path, Context], Path], reason: str, strict: bool) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        good = tmp / "good.mp4"
        shutil.copyfile(_good_video(ctx), good)
        bad = make(tmp, ctx)
        csv = tmp / "data.csv"
        csv.write_text(f"video,caption\n{good},a good clip plays\n{bad},a bad clip plays\n")
        out = tmp / "out.h5"
        run = run_cli(_custom_argv(csv, out, *(["--strict"] if strict else [])))
        if strict:
            return expect_error(run, bad.name, "--strict")

        def check() -> str | None:
            from vtrbench.cache import FeatureCache

            if reason not in run.err:
                return f"the summary does not say {reason!r}: {run.err[-200:]}"
            if "1 videos ok (1 encoded now" not in run.err:
                return f"wrong counts in the summary: {run.err[-200:]}"
            with FeatureCache(out) as c:
                failed = c.failed_videos()
            if list(failed) != [str(bad)] or reason not in failed[str(bad)]:
                return f"the cache records {failed}"
            return None

        return expect_ok(run, check)

    # the strict variants repeat the same extraction: full run only
    return Case(AREA, f"bad-video-{name}{'-strict' if strict else ''}", run, quick=not strict)


def _write(content: bytes) -> Callable[[Path, Context], Path]:
    def make(tmp: Path, ctx: Context) -> Path:
        p = tmp / "bad.mp4"
        p.write_bytes(content)
        return p

    return make


def _truncated(fraction: float) -> Callable[[Path, Context], Path]:
    def make(tmp: Path, ctx: Context) -> Path:
        whole = _good_video(ctx).read_bytes()
        p = tmp / "bad.mp4"
        p.write_bytes(whole[: int(len(whole) * fraction)])
        return p

    return make


def _folder(tmp: Path, ctx: Context) -> Path:
    (tmp / "bad.mp4").mkdir()
    return tmp / "bad.mp4"


def _dev_zero(tmp: Path, ctx: Context) -> Path:
    (tmp / "bad.mp4").symlink_to("/dev/zero")
    return tmp / "bad.mp4"


def _broken_link(tmp: Path, ctx: Context) -> Path:
    (tmp / "bad.mp4").symlink_to(tmp / "gone.mp4")
    return tmp / "bad.mp4"


def _fifo(tmp: Path, ctx: Context) -> Path:
    os.mkfifo(tmp / "bad.mp4")
    return tmp / "bad.mp4"


def _missing(tmp: Path, ctx: Context) -> Path:
    return tmp / "bad.mp4"


def _under_a_file(tmp: Path, ctx: Context) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "bad.mp4"


def _audio_only(tmp: Path, ctx: Context) -> Path:
    import av

    p = tmp / "bad.mp4"
    with av.open(str(p), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return p


def _corrupt_middle(tmp: Path, ctx: Context) -> Path:
    data = bytearray(_good_video(ctx).read_bytes())
    rng = np.random.default_rng(3)
    for at in rng.integers(len(data) // 4, len(data), 200):
        data[int(at)] = int(rng.integers(0, 256))
    p = tmp / "bad.mp4"
    p.write_bytes(bytes(data))
    return p


BAD_VIDEOS: list[tuple[str, Callable[[Path, Context], Path], str]] = [
    ("missing", _missing, "missing file"),
    ("empty", _write(b""), "empty file"),
    (
        "random-bytes",
        _write(np.random.default_rng(0).integers(0, 256, 30_000, np.uint8).tobytes()),
        "undecodable",
    ),
    ("text", _write(b"this is not a video\n" * 100), "undecodable"),
    ("truncated-10", _truncated(0.1), "undecodable"),
    ("truncated-50", _truncated(0.5), "undecodable"),
    ("folder", _folder, "it is a folder"),
    ("dev-zero-link", _dev_zero, "character device"),
    ("broken-link", _broken_link, "broken symbolic link"),
    ("fifo", _fifo, "named pipe"),
    ("under-a-file", _under_a_file, "missing file"),
    ("audio-only", _audio_only, "no video stream"),
    ("png-header", _write(b"\x89PNG\r\n\x1a\n" + b"\0" * 2000), "undecodable"),
]


def _corrupt_middle_case() -> Case:
    """Random bytes inside the stream: either some frames still decode, or the video is marked failed."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        good = tmp / "good.mp4"
        shutil.copyfile(_good_video(ctx), good)
        bad = _corrupt_middle(tmp, ctx)
        csv = tmp / "data.csv"
        csv.write_text(f"video,caption\n{good},a good clip\n{bad},a damaged clip\n")
        out = tmp / "out.h5"
        run = run_cli(_custom_argv(csv, out))

        def check() -> str | None:
            from vtrbench.cache import FeatureCache

            with FeatureCache(out) as c:
                c.verify()
                status = c.read_rows("videos", "status", np.arange(2))
                if status[0] != 0:
                    return "the good video was marked failed"
            return None

        return expect_ok(run, check)

    return Case(AREA, "bad-video-corrupt-middle", run)


# ------------------------------------------------------------------ bad options


def _option_case(name: str, extra: list[Any], *mentions: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = [a for a in extract_argv(_data(ctx), tmp / "out.h5")]
        r = run_cli([*argv, *[a(tmp) if callable(a) else a for a in extra]])
        outcome = expect_error(r, *mentions)
        if outcome.kind == "clear_error" and (tmp / "out.h5.parts").exists():
            return Outcome("silently_wrong", "an invalid option left a .parts folder (work started)")
        if "weights_only" in r.text:
            return Outcome("silently_wrong", "torch's weights_only advice reached the user")
        return outcome

    return Case(AREA, f"option-{name}", run)


def _file(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        p = tmp / name
        p.write_bytes(content)
        return p

    return make


def _pickle_file(tmp: Path) -> Path:
    import pickle

    p = tmp / "evil.pt"
    p.write_bytes(pickle.dumps(os.getcwd))
    return p


def _state_dict_of_other_model(tmp: Path) -> Path:
    import torch

    p = tmp / "other.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, p)
    return p


def _zip_not_torch(tmp: Path) -> Path:
    import zipfile

    p = tmp / "weights.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")
    return p


def _folder_ckpt(tmp: Path) -> Path:
    (tmp / "ckpt.pt").mkdir()
    return tmp / "ckpt.pt"


OPTIONS: list[tuple[str, list[Any], tuple[str, ...]]] = [
    ("fps-0", ["--fps", "0"], ("--fps",)),
    ("fps-negative", ["--fps", "-3"], ("--fps",)),
    ("max-frames-0", ["--max-frames", "0"], ("--max-frames",)),
    ("max-words-2", ["--max-words", "2"], ("--max-words",)),
    ("model-unknown", ["--model", "ViT-B-99"], ("ViT-B-99",)),
    ("pretrained-unknown-tag", ["--model", "ViT-B-32", "--pretrained", "opena"], ("opena",)),
    ("pretrained-missing-file", ["--pretrained", "/nonexistent/w.pt"], ("/nonexistent/w.pt",)),
    ("pretrained-random-bytes", ["--pretrained", _file("w.pt", bytes(range(256)) * 40)], ("w.pt",)),
    ("pretrained-empty-file", ["--pretrained", _file("e.pt", b"")], ("e.pt",)),
    ("pretrained-text-file", ["--pretrained", _file("t.bin", b"hello\n" * 100)], ("t.bin",)),
    ("pretrained-pickle-global", ["--pretrained", _pickle_file], ("evil.pt",)),
    ("pretrained-zip-not-torch", ["--pretrained", _zip_not_torch], ("weights.pt",)),
    ("pretrained-other-state-dict", ["--pretrained", _state_dict_of_other_model], ("other.pt",)),
    ("pretrained-folder", ["--pretrained", _folder_ckpt], ("ckpt.pt",)),
    ("device-cuda-absent", ["--device", "cuda:0"], ("cuda",)),
    ("device-unknown", ["--device", "tpu"], ("tpu",)),
    ("batch-size-negative", ["--batch-size", "-1"], ("--batch-size",)),
    ("workers-below-minus-one", ["--workers", "-2"], ("--workers",)),
    ("chunk-size-0", ["--chunk-size", "0"], ("--chunk-size",)),
    ("overwrite-with-retry", ["--overwrite", "--retry-failed"], ("--retry-failed",)),
    ("sampling-unknown", ["--sampling", "middle"], ("middle",)),
    ("tagger-unknown", ["--tagger", "nltk"], ("nltk",)),
]


def _no_cuda(name: str) -> bool:
    try:
        import torch

        return not torch.cuda.is_available() or not name.startswith("device-cuda")
    except ImportError:
        return True


# ------------------------------------------------------------------ outputs


def _output_case(name: str, prepare: Callable[[Path], Path], mention: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = prepare(tmp)
        r = run_cli(extract_argv(_data(ctx), out))
        return expect_error(r, mention)

    return Case(AREA, f"output-{name}", run)


def _out_is_folder(tmp: Path) -> Path:
    (tmp / "out.h5").mkdir()
    return tmp / "out.h5"


def _out_under_file(tmp: Path) -> Path:
    (tmp / "f").write_text("x")
    return tmp / "f" / "out.h5"


def _out_deep_under_file(tmp: Path) -> Path:
    (tmp / "f").write_text("x")
    return tmp / "f" / "a" / "b" / "out.h5"


def _parts_is_file(tmp: Path) -> Path:
    (tmp / "out.h5.parts").write_text("x")
    return tmp / "out.h5"


def _tmp_is_folder(tmp: Path) -> Path:
    (tmp / "out.h5.tmp").mkdir()
    return tmp / "out.h5"


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return r.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _read_only_case() -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        ro = tmp / "ro"
        if not _mount(ro, "ro,size=1m"):
            ro.chmod(0o555)  # without root: permission bits (root would ignore them)
        try:
            return expect_error(run_cli(extract_argv(_data(ctx), ro / "out.h5")), str(ro))
        finally:
            _umount(ro)

    return Case(AREA, "output-read-only-folder", run)


def _full_tmpfs_case(size: str) -> Case:
    """A real small disk (tmpfs, as root): one clear line; after room is made, the resume is identical."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        disk = tmp / "disk"
        if not _mount(disk, f"size={size}"):
            return _failing_writer(tmp, ctx, "videos-00001.h5.tmp")
        try:
            out = disk / "out.h5"
            r = run_cli(extract_argv(_data(ctx), out))
            if r.code == 0:
                diff = cache_difference(out, tiny_cache(ctx))
                return Outcome("silently_wrong", diff) if diff else Outcome("handled", "it fitted")
            first = expect_error(r, "disk" if "disk is full" in r.err else "free space")
            if first.kind != "clear_error":
                return first
            parts = Path(str(out) + ".parts")
            moved = tmp / "moved"
            # make room: move what was made to a bigger place and resume there
            if parts.exists():
                shutil.copytree(parts, Path(str(moved / "out.h5") + ".parts"))
            moved.mkdir(exist_ok=True)
            r2 = run_cli(extract_argv(_data(ctx), moved / "out.h5"))
            return _resumed(r2, moved / "out.h5", tiny_cache(ctx), first.detail)
        finally:
            _umount(disk)

    return Case(AREA, f"full-disk-tmpfs-{size}", run, quick=False)


def _real_enospc_case(size: str) -> Case:
    """A real small tmpfs with the free-space check switched off (child process, so that a crash in
    HDF5 cannot take the suite down): the write itself fails; one line, no crash, identical resume."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        disk = tmp / "disk"
        if not _mount(disk, f"size={size}"):
            return _failing_writer(tmp, ctx, "videos-00001.h5.tmp")
        try:
            out = disk / "out.h5"
            child = _start(extract_argv(_data(ctx), out), "nocheck", tmp / "marker", tmp)
            code = child.wait()
            text = (tmp / "child.log").read_text(errors="replace")
            r = CliRun(code, "", text, text if (code < 0 or "Traceback (most recent" in text) else "")
            if code == 0:
                diff = cache_difference(out, tiny_cache(ctx))
                return Outcome("silently_wrong", diff) if diff else Outcome("handled", "it fitted")
            first = expect_error(r, "disk is full")
            if first.kind != "clear_error":
                return first
            if len([ln for ln in text.splitlines() if ln.strip()]) > 4:
                return Outcome("silently_wrong", f"more than one error line: {text[-300:]}")
            moved = tmp / "moved"
            parts = Path(str(out) + ".parts")
            if parts.exists():
                shutil.copytree(parts, Path(str(moved / "out.h5") + ".parts"))
            moved.mkdir(exist_ok=True)
            r2 = run_cli(extract_argv(_data(ctx), moved / "out.h5"))
            return _resumed(r2, moved / "out.h5", tiny_cache(ctx), first.detail)
        finally:
            _umount(disk)

    return Case(AREA, f"full-disk-real-enospc-{size}", run, quick=False)


def _resumed(run: CliRun, out: Path, reference: Path, detail: str = "") -> Outcome:
    outcome = expect_ok(run, lambda: cache_difference(out, reference))
    if outcome.kind == "handled":
        return Outcome("handled", detail or "resumed identically")
    return outcome


def _failing_writer(tmp: Path, ctx: Context, target: str, dataset: str = "frame_mask") -> Outcome:
    """ENOSPC halfway through one HDF5 file (a part or the assembled cache), then a resume."""
    import vtrbench.cache as cache_mod

    real = cache_mod._io.create_dataset

    def create(group: Any, name: str, *a: Any, **k: Any) -> Any:
        if group.file.filename.endswith(target) and name == dataset:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(group, name, *a, **k)

    out = tmp / "out.h5"
    cache_mod._io.create_dataset = create
    try:
        r = run_cli(extract_argv(_data(ctx), out))
    finally:
        cache_mod._io.create_dataset = real
    first = expect_error(r, "disk is full")
    if first.kind != "clear_error":
        return first
    leftovers = [p.name for p in tmp.rglob("*.tmp")]
    if leftovers:
        return Outcome("silently_wrong", f"temporary files left: {leftovers}")
    return _resumed(run_cli(extract_argv(_data(ctx), out)), out, tiny_cache(ctx), first.detail)


def _failing_writer_case(name: str, target: str, dataset: str = "frame_mask", quick: bool = False) -> Case:
    return Case(
        AREA, f"full-disk-writer-{name}", lambda tmp, ctx: _failing_writer(tmp, ctx, target, dataset), quick
    )


def _free_space_case(parts_before: int) -> Case:
    """The free-space check before a part: one line, finished parts stay valid, the resume is identical."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        import vtrbench.cache as cache_mod

        real = cache_mod._io.disk_free
        written = []

        def free(folder: Path) -> int:
            written.append(folder)
            return real(folder) if len(written) <= parts_before else 1024

        out = tmp / "out.h5"
        cache_mod._io.disk_free = free
        try:
            r = run_cli(extract_argv(_data(ctx), out))
        finally:
            cache_mod._io.disk_free = real
        first = expect_error(r, "free space")
        if first.kind != "clear_error":
            return first
        return _resumed(run_cli(extract_argv(_data(ctx), out)), out, tiny_cache(ctx), first.detail)

    return Case(AREA, f"full-disk-free-space-after-{parts_before}", run, quick=parts_before == 2)


# ------------------------------------------------------------------ overwrite, synth, reruns


def _overwrite_fails_case(name: str, extra: Callable[[Path], list[Any]], mention: str) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = _copy_cache(ctx, tmp)
        before = out.read_bytes()
        r = run_cli([*extract_argv(_data(ctx), out), "--overwrite", *extra(tmp)])
        if out.read_bytes() != before:
            return Outcome("lost", "the old cache changed or is gone after a failed --overwrite")
        return expect_error(r, mention)

    return Case(AREA, f"overwrite-fails-{name}", run)


def _overwrite_disk_full(tmp: Path, ctx: Context) -> Outcome:
    import vtrbench.cache as cache_mod

    out = _copy_cache(ctx, tmp)
    before = out.read_bytes()
    real = cache_mod._io.create_dataset

    def create(group: Any, name: str, *a: Any, **k: Any) -> Any:
        if group.file.filename.endswith("out.h5.tmp") or group.file.filename.endswith("cache.h5.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(group, name, *a, **k)

    cache_mod._io.create_dataset = create
    try:
        r = run_cli([*extract_argv(_data(ctx), out), "--overwrite", "--max-words", "16"])
    finally:
        cache_mod._io.create_dataset = real
    if out.read_bytes() != before:
        return Outcome("lost", "the old cache changed during a failed --overwrite")
    return expect_error(r, "disk is full")


def _overwrite_ok(tmp: Path, ctx: Context) -> Outcome:
    out = _copy_cache(ctx, tmp)
    r = run_cli([*extract_argv(_data(ctx), out), "--overwrite"])
    return expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))


def _overwrite_damaged(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "cache.h5"
    out.write_bytes(b"garbage" * 100)
    first = expect_error(run_cli(extract_argv(_data(ctx), out)), "--overwrite")
    if first.kind != "clear_error":
        return first
    r = run_cli([*extract_argv(_data(ctx), out), "--overwrite"])
    return expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))


def _synth_argv(out: Path, *extra: Any) -> list[Any]:
    return ["synth", out, "--size", 32, "--fps", 2, "--seconds", 2, "--quiet", *extra]


def _synth_other_dataset(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "ds"
    if run_cli(_synth_argv(out, "--videos", 8)).code != 0:
        return Outcome("traceback", "synth failed")
    before = {p.name: p.read_bytes() for p in (out / "videos").iterdir()}
    r = run_cli(_synth_argv(out, "--videos", 4, "--seed", 1))
    now = {p.name: p.read_bytes() for p in (out / "videos").iterdir()}
    if now != before:
        return Outcome("lost", "synth changed a dataset it refused to replace")
    return expect_error(r, "--overwrite")


def _synth_overwrite(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "ds"
    run_cli(_synth_argv(out, "--videos", 8))
    r = run_cli(_synth_argv(out, "--videos", 4, "--seed", 1, "--overwrite"))

    def check() -> str | None:
        names = sorted(p.name for p in (out / "videos").iterdir())
        meta = json.loads((out / "meta.json").read_text())
        if len(names) != 4 or meta["seed"] != 1:
            return f"mixed dataset after --overwrite: {len(names)} videos, seed {meta['seed']}"
        return None

    return expect_ok(r, check)


def _synth_user_folder(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    r = run_cli(_synth_argv(out, "--videos", 4, "--overwrite"))
    if not (out / "thesis.tex").is_file():
        return Outcome("lost", "synth --overwrite deleted a user's file")
    return expect_error(r, "not a synthetic dataset")


def _synth_into_file(tmp: Path, ctx: Context) -> Outcome:
    (tmp / "f").write_text("x")
    r = run_cli(_synth_argv(tmp / "f", "--videos", 4))
    if (tmp / "f").read_text() != "x":
        return Outcome("lost", "synth replaced a file")
    return expect_error(r, str(tmp / "f"))


def _synth_same_again(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "ds"
    run_cli(_synth_argv(out, "--videos", 4))
    before = {p.name: p.stat().st_ino for p in (out / "videos").iterdir()}
    r = run_cli(_synth_argv(out, "--videos", 4))

    def check() -> str | None:
        after = {p.name: p.stat().st_ino for p in (out / "videos").iterdir()}
        return None if after == before else "the same dataset was rendered again"

    return expect_ok(r, check)


def _strict_rerun(tmp: Path, ctx: Context) -> Outcome:
    good = tmp / "good.mp4"
    shutil.copyfile(_good_video(ctx), good)
    csv = tmp / "d.csv"
    csv.write_text(f"video,caption\n{good},a clip\n{tmp / 'late.mp4'},a late clip\n")
    out = tmp / "out.h5"
    run_cli(_custom_argv(csv, out))
    return expect_error(run_cli(_custom_argv(csv, out, "--strict")), "late.mp4")


def _retry_failed(tmp: Path, ctx: Context) -> Outcome:
    videos = sorted((_data(ctx) / "videos").glob("*.mp4"))[:5]
    late = tmp / "late.mp4"
    lines = [f"{v},clip {k}" for k, v in enumerate(videos)]
    lines.insert(2, f"{late},the late clip")
    csv = tmp / "d.csv"
    csv.write_text("video,caption\n" + "\n".join(lines) + "\n")
    out = tmp / "out.h5"
    run_cli(_custom_argv(csv, out, "--chunk-size", 2))
    shutil.copyfile(videos[0], late)
    r = run_cli(_custom_argv(csv, out, "--chunk-size", 2, "--retry-failed"))
    fresh = tmp / "fresh.h5"
    run_cli(_custom_argv(csv, fresh, "--chunk-size", 2))
    return expect_ok(r, lambda: cache_difference(out, fresh) or (None if "1 decode now" in r.err else r.err))


def _leftover_parts(tmp: Path, ctx: Context) -> Outcome:
    out = _copy_cache(ctx, tmp, "out.h5")
    parts = Path(str(out) + ".parts")
    parts.mkdir()
    (parts / "videos-00000.h5").write_bytes(b"stale")
    r = run_cli(extract_argv(_data(ctx), out))
    return expect_ok(r, lambda: "the .parts folder was left" if parts.exists() else None)


def _other_config_parts(tmp: Path, ctx: Context) -> Outcome:
    out = tmp / "out.h5"
    parts = Path(str(out) + ".parts")
    parts.mkdir()
    (parts / "manifest.json").write_text("{not json")
    first = expect_error(run_cli(extract_argv(_data(ctx), out)), "manifest")
    if first.kind != "clear_error":
        return first
    r = run_cli([*extract_argv(_data(ctx), out), "--overwrite"])
    return expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))


def _concurrent_lock(tmp: Path, ctx: Context) -> Outcome:
    import fcntl

    out = tmp / "out.h5"
    with open(str(out) + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run_cli(extract_argv(_data(ctx), out))
    return expect_error(r, "another `vtrbench extract`")


# ------------------------------------------------------------------ kills (quick=False)

_CHILD = r"""
import os, sys, time
point, marker = sys.argv[1], sys.argv[2]
def hold():
    open(marker, "w").close()
    time.sleep(600)
import vtrbench.cache as cache
from vtrbench.extract import pipeline, texts, videos
if point.startswith("part:"):
    k = int(point[5:])
    real_create = cache._io.create_dataset
    def _create(group, name, *a, **kw):
        ds = real_create(group, name, *a, **kw)
        if group.file.filename.endswith(f"-{k:05d}.h5.tmp") and name == "frame_mask":
            hold()
        return ds
    cache._io.create_dataset = _create
elif point == "after-part":
    real_fsync = cache._io.fsync_dir
    def fsync_dir(path):
        real_fsync(path)
        if str(path).endswith(".parts"):
            hold()
    cache._io.fsync_dir = fsync_dir
elif point == "captions":
    import vtrbench.extract.encode as enc
    def encode_tokens(*a, **kw):
        hold()
    enc.encode_tokens = encode_tokens
elif point == "assemble":
    def seal(f):
        hold()
    cache._io.seal = seal
elif point == "assemble-copy":
    real_copy = cache.assembly._copy_parts
    def _copy_parts(cache_path, group, kind, *a, **kw):
        if kind == "texts":
            hold()
        return real_copy(cache_path, group, kind, *a, **kw)
    cache.assembly._copy_parts = _copy_parts
elif point == "after-rename":
    real_fsync = cache._io.fsync_dir
    def fsync_dir(path):
        real_fsync(path)
        if not str(path).endswith(".parts"):
            hold()
    cache._io.fsync_dir = fsync_dir
elif point == "manifest":
    real_save = cache.Manifest.save
    def save(self, path):
        real_save(self, path)
        hold()
    cache.Manifest.save = save
elif point == "model":
    real_load = pipeline._load_clip
    def _load_clip(*a, **kw):
        hold()
    pipeline._load_clip = _load_clip
elif point == "nocheck":
    # no free-space check: the writes themselves meet ENOSPC (HDF5's own error path)
    cache._io.disk_free = lambda folder: 1 << 40
elif point.startswith("pause:"):
    # random kills: a short pause after each part widens the window the kill can land in
    pause = float(point[6:])
    real_write = pipeline.write_part
    def write_part(path, arrays, *rest):
        real_write(path, arrays, *rest)
        open(marker, "w").close()
        time.sleep(pause)
    for module in (pipeline, videos, texts):  # each module that writes part files
        module.write_part = write_part
from vtrbench.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _start(argv: list[Any], point: str, marker: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "1000", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, point, str(marker), *[str(a) for a in argv]],
        stdout=subprocess.DEVNULL,
        stderr=open(cwd / "child.log", "wb"),  # noqa: SIM115 - closed with the process
        cwd=cwd,
        env=env,
    )


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_at(argv: list[Any], point: str, tmp: Path, delay: float = 0.0, wait_for: Path | None = None) -> str:
    """Run ``argv`` in a child, kill -9 it at ``point`` (+ delay); '' when killed, else what happened."""
    marker = tmp / "marker"
    marker.unlink(missing_ok=True)
    child = _start(argv, point, marker, tmp)
    deadline = time.monotonic() + 600
    watch = wait_for or marker
    try:
        while not watch.exists():
            if child.poll() is not None:
                return f"the child ended (exit {child.returncode}) before the kill point {point}"
            if time.monotonic() > deadline:
                return "the kill point was never reached"
            time.sleep(0.01)
        if delay:
            time.sleep(delay)
        workers = _children(child.pid)
        if child.poll() is not None:
            return f"the child ended (exit {child.returncode}) before the kill"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    limit = time.monotonic() + 10
    while any(_alive(w) for w in workers):
        if time.monotonic() > limit:
            return f"worker processes outlived the killed parent: {sorted(w for w in workers if _alive(w))}"
        time.sleep(0.05)
    return ""


def _extract_kill_case(name: str, point: str, extra: tuple[Any, ...] = (), delay: float = 0.0) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        reference = tiny_cache(ctx)
        out = tmp / "out.h5"
        argv = [*extract_argv(_data(ctx), out), *extra]
        problem = _kill_at(argv, point, tmp, delay)
        if problem.startswith("worker"):
            return Outcome("silently_wrong", problem, kill=True)
        killed = not problem
        r = run_cli(argv)
        outcome = expect_ok(r, lambda: cache_difference(out, reference))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        if Path(str(out) + ".parts").exists() or Path(str(out) + ".tmp").exists():
            return Outcome(
                "silently_wrong", "leftovers after the resume", kill=killed, identical_resume=False
            )
        return Outcome("handled", problem or f"killed at {point}", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-extract-{name}", run, quick=False)


def _overwrite_kill_case(name: str, point: str, delay: float = 0.0) -> Case:
    """Kill an --overwrite with another config: the old cache stays intact; the resumed overwrite equals a
    fresh extraction of the new config."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        def fresh16(folder: Path) -> Path:
            out = folder / "fresh16.h5"
            r = run_cli([*extract_argv(_data(ctx), out), "--max-words", "16"])
            if r.code:
                raise RuntimeError(r.text[-300:])
            return out

        reference = ctx.once("fresh-max-words-16", fresh16)
        out = _copy_cache(ctx, tmp, "out.h5")
        before = out.read_bytes()
        argv = [*extract_argv(_data(ctx), out), "--overwrite", "--max-words", "16"]
        problem = _kill_at(argv, point, tmp, delay)
        killed = not problem
        if point != "after-rename" and out.read_bytes() != before:
            return Outcome("lost", "the old cache changed after a killed --overwrite", kill=killed)
        r = run_cli(argv)
        outcome = expect_ok(r, lambda: cache_difference(out, reference))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        return Outcome("handled", problem or f"killed at {point}", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-overwrite-{name}", run, quick=False)


def _random_kill_case(i: int) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        rng = random.Random(1000 + i)
        delay = rng.uniform(0.0, 1.2)
        workers = ("--workers", "2") if i % 4 == 3 else ()
        out = tmp / "out.h5"
        argv = [*extract_argv(_data(ctx), out), *workers]
        parts = Path(str(out) + ".parts")
        problem = _kill_at(argv, "pause:0.3", tmp, delay, wait_for=parts if i % 2 else None)
        if problem.startswith("worker"):
            return Outcome("silently_wrong", problem, kill=True)
        killed = not problem
        r = run_cli(argv)
        outcome = expect_ok(r, lambda: cache_difference(out, tiny_cache(ctx)))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        return Outcome("handled", problem or f"killed {delay:.2f}s in", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-extract-random-{i:02d}", run, quick=False)


def _timed_kill(argv: list[Any], tmp: Path, delay: float) -> str:
    child = _start(argv, "none", tmp / "marker", tmp)
    try:
        child.wait(timeout=delay)
        return f"the child ended (exit {child.returncode}) before the kill"
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        return ""


def _duration(ctx: Context, key: str, argv_for: Callable[[Path], list[Any]]) -> float:
    """Seconds an uninterrupted child run of this command takes here (measured once)."""

    def measure(folder: Path) -> float:
        t0 = time.monotonic()
        child = _start(argv_for(folder), "none", folder / "marker", folder)
        child.wait()
        return time.monotonic() - t0

    return ctx.once(f"duration-{key}", measure)


def _train_kill_case(i: int) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        cache = tiny_cache(ctx)
        reference = tiny_results(ctx)
        total = _duration(ctx, "train", lambda f: train_argv(cache, f / "res", "--seed", "0,1"))
        delay = random.Random(2000 + i).uniform(0.3, 0.95) * total
        results = tmp / "results"
        argv = train_argv(cache, results, "--seed", "0,1")
        problem = _timed_kill(argv, tmp, delay)
        killed = not problem
        r = run_cli(argv)
        outcome = expect_ok(r, lambda: results_difference(results, reference))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        return Outcome("handled", problem or f"killed {delay:.1f}s in", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-train-random-{i:02d}", run, quick=False)


def _ablate_argv(cache: Path, results: Path) -> list[Any]:
    return [
        "ablate", "--cache", cache, "--heads", "meanp", "--losses", "infonce,dsl", "--seeds", "0,1",
        "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--results", results, "--quiet",
    ]  # fmt: skip


def _ablate_kill_case(i: int) -> Case:
    def run(tmp: Path, ctx: Context) -> Outcome:
        cache = tiny_cache(ctx)

        def baseline(folder: Path) -> Path:
            r = run_cli(_ablate_argv(cache, folder / "results"))
            if r.code:
                raise RuntimeError(r.text[-300:])
            return folder / "results"

        reference = ctx.once("ablate-results", baseline)
        total = _duration(ctx, "ablate", lambda f: _ablate_argv(cache, f / "res"))
        delay = random.Random(3000 + i).uniform(0.3, 0.95) * total
        results = tmp / "results"
        argv = _ablate_argv(cache, results)
        problem = _timed_kill(argv, tmp, delay)
        killed = not problem
        r = run_cli(argv)
        outcome = expect_ok(r, lambda: results_difference(results, reference))
        if outcome.kind != "handled":
            return Outcome(outcome.kind, outcome.detail, kill=killed, identical_resume=False)
        return Outcome("handled", problem or f"killed {delay:.1f}s in", kill=killed, identical_resume=killed)

    return Case(AREA, f"kill-ablate-random-{i:02d}", run, quick=False)


# ------------------------------------------------------------------ the list


def cases() -> list[Case]:
    out: list[Case] = []
    for name, make, reason in BAD_VIDEOS:
        out.append(_bad_video_case(name, make, reason, strict=False))
    for name, make, reason in BAD_VIDEOS[:6]:
        out.append(_bad_video_case(name, make, reason, strict=True))
    out.append(_corrupt_middle_case())
    for name, extra, mentions in OPTIONS:
        if _no_cuda(name):
            out.append(_option_case(name, extra, *mentions))
    out += [
        _output_case("is-a-folder", _out_is_folder, "is a folder"),
        _output_case("parent-is-a-file", _out_under_file, "is a file"),
        _output_case("ancestor-is-a-file", _out_deep_under_file, "is a file"),
        _output_case("parts-is-a-file", _parts_is_file, ".parts"),
        _output_case("tmp-is-a-folder", _tmp_is_folder, ".tmp"),
        _read_only_case(),
        _full_tmpfs_case("96k"),
        _full_tmpfs_case("4200k"),
        _full_tmpfs_case("4300k"),
        _real_enospc_case("48k"),
        _real_enospc_case("96k"),
        _real_enospc_case("160k"),
        _real_enospc_case("240k"),
        _failing_writer_case("first-part", "videos-00000.h5.tmp"),
        _failing_writer_case("third-part", "videos-00002.h5.tmp", quick=True),
        _failing_writer_case("text-part", "texts-00000.h5.tmp", "token_ids"),
        _failing_writer_case("assembly", "out.h5.tmp", "frames", quick=True),
        _failing_writer_case("assembly-splits", "out.h5.tmp", "video_rows"),
        _free_space_case(0),
        _free_space_case(2),
        _free_space_case(4),
        _overwrite_fails_case(
            "bad-checkpoint", lambda t: ["--pretrained", _file("w.pt", b"\x80\x02garbage" * 99)(t)], "w.pt"
        ),
        _overwrite_fails_case("unknown-model", lambda t: ["--model", "ViT-Q"], "ViT-Q"),
        _overwrite_fails_case("bad-option", lambda t: ["--fps", "0"], "--fps"),
        Case(AREA, "overwrite-fails-disk-full", _overwrite_disk_full),
        Case(AREA, "overwrite-same-config", _overwrite_ok),
        Case(AREA, "overwrite-damaged-cache", _overwrite_damaged, quick=False),
        Case(AREA, "synth-other-dataset-refused", _synth_other_dataset),
        Case(AREA, "synth-overwrite-replaces-whole", _synth_overwrite),
        Case(AREA, "synth-overwrite-user-folder-refused", _synth_user_folder),
        Case(AREA, "synth-into-a-file", _synth_into_file),
        Case(AREA, "synth-same-again-is-a-no-op", _synth_same_again),
        Case(AREA, "strict-rerun-of-complete-cache", _strict_rerun),
        Case(AREA, "retry-failed-equals-fresh", _retry_failed, quick=False),
        Case(AREA, "leftover-parts-cleaned", _leftover_parts),
        Case(AREA, "damaged-manifest", _other_config_parts),
        Case(AREA, "lock-held-by-another", _concurrent_lock),
    ]
    chosen = [
        ("model-load", "model"),
        ("after-manifest", "manifest"),
        ("writing-part-0", "part:0"),
        ("writing-part-1", "part:1"),
        ("writing-part-3", "part:3"),
        ("after-a-part", "after-part"),
        ("encoding-captions", "captions"),
        ("assembling-copy", "assemble-copy"),
        ("assembling-seal", "assemble"),
        ("after-final-rename", "after-rename"),
    ]
    for name, point in chosen:
        out.append(_extract_kill_case(name, point))
    out.append(_extract_kill_case("writing-part-1-workers", "part:1", ("--workers", "2")))
    out.append(_extract_kill_case("captions-workers", "captions", ("--workers", "2")))
    for name, point in [("part-1", "part:1"), ("captions", "captions"), ("assembling", "assemble")]:
        out.append(_overwrite_kill_case(name, point))
    out.append(_overwrite_kill_case("after-rename", "after-rename"))
    out += [_random_kill_case(i) for i in range(24)]
    out += [_train_kill_case(i) for i in range(8)]
    out += [_ablate_kill_case(i) for i in range(6)]
    return out
