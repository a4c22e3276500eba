"""Issue 9, extraction and cache side: nothing lost, nothing silently wrong, one-line errors.

Expected values are independent of vtrbench's code: byte comparisons of files, sha256 computed
here with hashlib over h5py reads, HDF5's own filter flags, the kernel's process table.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("av")
h5py = pytest.importorskip("h5py")
pytest.importorskip("open_clip")

import vtrbench.cache as cache_mod  # noqa: E402
from tests.extract.test_extract import assert_same_cache  # noqa: E402
from tests.videos import numbered_frames, write_video  # noqa: E402
from vtrbench.cache import FeatureCache  # noqa: E402
from vtrbench.errors import CacheError  # noqa: E402
from vtrbench.extract.decode import DecodeError, decode_video  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _argv(csv: Path, output: Path, *extra: str) -> list[str]:
    return [
        "extract", "--dataset", "custom", "--annotations", str(csv), "--model", "vtrbench-tiny",
        "--pretrained", "none", "--device", "cpu", "--workers", "0", "--chunk-size", "2", "--quiet",
        "--output", str(output), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A custom dataset of 5 short videos, one of them ('late.mp4') not there yet, and its cache."""
    root = tmp_path_factory.mktemp("small")
    for k in range(4):
        write_video(root / f"v{k}.mp4", numbered_frames(6 + k, 32, 64), 2)
    write_video(root / "late.src.mp4", numbered_frames(8, 32, 64), 2)  # added as late.mp4 later
    csv = root / "data.csv"
    names = ["v0.mp4", "v1.mp4", "late.mp4", "v2.mp4", "v3.mp4"]
    csv.write_text("video,caption\n" + "".join(f"{n},clip {n[:-4]} plays\n" for n in names))
    from tests.conftest import invoke_cli

    cache = root / "base.h5"
    r = invoke_cli(*_argv(csv, cache))
    assert r.code == 0, r.err
    return {"root": root, "csv": csv, "cache": cache}


def _copy(src: Path, dst_dir: Path, name: str = "c.h5") -> Path:
    dst = dst_dir / name
    shutil.copyfile(src, dst)
    return dst


def _one_line_error(r: Any) -> str:
    assert r.code == 2, r.text
    assert "Traceback" not in r.text
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:"), r.err
    return lines[-1]


# ----------------------------------------------------------------- data loss


def test_failed_overwrite_keeps_the_old_cache(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path
) -> None:
    out = _copy(small["cache"], tmp_path)
    before = out.read_bytes()
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x80\x04not a checkpoint at all" * 50)
    r = run_cli(*_argv(small["csv"], out, "--overwrite", "--pretrained", str(bad), "--max-words", "16"))
    line = _one_line_error(r)
    assert "weights_only" not in r.text and "UnpicklingError" in line and str(bad) in line
    assert out.read_bytes() == before


def test_interrupted_overwrite_keeps_the_old_cache_then_completes(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vtrbench.extract.pipeline as pipeline

    out = _copy(small["cache"], tmp_path)
    before = out.read_bytes()
    real = pipeline.run_texts

    def dies(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt  # stands for a kill while captions are encoded

    monkeypatch.setattr(pipeline, "run_texts", dies)
    assert run_cli(*_argv(small["csv"], out, "--overwrite", "--max-words", "16")).code == 130
    assert out.read_bytes() == before
    monkeypatch.setattr(pipeline, "run_texts", real)
    r = run_cli(*_argv(small["csv"], out, "--overwrite", "--max-words", "16"))
    assert r.code == 0, r.err
    with FeatureCache(out) as c:
        assert c.config["max_words"] == 16
    fresh = tmp_path / "fresh.h5"
    assert run_cli(*_argv(small["csv"], fresh, "--max-words", "16")).code == 0
    assert_same_cache(out, fresh)


def test_synth_refuses_a_folder_holding_another_dataset(run_cli: Callable, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    common = ["--size", "32", "--fps", "2", "--seconds", "2", "--quiet"]
    assert run_cli("synth", out, "--videos", "6", *common).code == 0
    videos = sorted(p.name for p in (out / "videos").iterdir())
    r = run_cli("synth", out, "--videos", "4", "--seed", "1", *common)
    assert "--overwrite" in _one_line_error(r)
    assert sorted(p.name for p in (out / "videos").iterdir()) == videos
    r = run_cli("synth", out, "--videos", "4", "--seed", "1", "--overwrite", *common)
    assert r.code == 0, r.err
    assert len(list((out / "videos").iterdir())) == 4  # no stale videos of the larger dataset
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    r = run_cli("synth", tmp_path / "mine", "--videos", "4", "--overwrite", *common)
    assert "not a synthetic dataset" in _one_line_error(r)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ----------------------------------------------------------------- integrity


def _digest(ds: Any) -> str:
    """sha256 of dtype, shape and bytes, written independently of vtrbench.cache."""
    h = hashlib.sha256(f"{ds.dtype.str}|{ds.shape}|".encode())
    if h5py.check_string_dtype(ds.dtype) is not None:
        for v in ds[()].ravel():
            b = v if isinstance(v, bytes) else v.encode()
            h.update(len(b).to_bytes(8, "little") + b)
    else:
        h.update(np.ascontiguousarray(ds[()]).tobytes())
    return h.hexdigest()


def test_every_dataset_is_checksummed_and_hashed(small: dict[str, Any]) -> None:
    names: dict[str, str] = {}
    with h5py.File(small["cache"], "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                names[name] = _digest(obj)
                is_vlen = h5py.check_string_dtype(obj.dtype) is not None
                assert obj.fletcher32 or is_vlen or obj.size == 0, name
                assert obj.attrs["sha256"] == names[name], name

        f.visititems(visit)
        combined = hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(names.items())).encode())
        assert f.attrs["content_sha256"] == combined.hexdigest()
    with FeatureCache(small["cache"]) as c:
        assert c.content_hash == combined.hexdigest()
        c.verify()


def _chunk_offset(path: Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.chunks is None:
            return ds.id.get_offset()
        return ds.id.get_chunk_info(0).byte_offset


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def test_flipped_feature_bytes_stop_with_the_dataset_named(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path
) -> None:
    out = _copy(small["cache"], tmp_path)
    _flip(out, _chunk_offset(out, "videos/frames") + 5)
    with FeatureCache(out) as c, pytest.raises(CacheError, match="/videos/frames.*checksum"):
        c.read_rows("videos", "frames", np.arange(5))
    line = _one_line_error(run_cli("inspect", "--verify", out))
    assert str(out) in line and "/videos/frames" in line


def test_flipped_caption_bytes_are_found_when_opened(small: dict[str, Any], tmp_path: Path) -> None:
    out = _copy(small["cache"], tmp_path)
    data = bytearray(out.read_bytes())
    at = data.find(b"clip v2 plays")
    assert at > 0
    data[at + 5] ^= 0x01  # "v2" -> "w2": still valid UTF-8, and no HDF5 checksum covers it
    out.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="caption does not match its sha256"):
        FeatureCache(out)


def test_non_finite_features_are_refused_naming_the_rows(small: dict[str, Any], tmp_path: Path) -> None:
    out = _copy(small["cache"], tmp_path)
    with h5py.File(out, "r+") as f:
        frames = f["videos/frames"]
        row = frames[3]
        row[0, 0] = np.nan
        frames[3] = row
    with FeatureCache(out) as c, pytest.raises(CacheError, match=r"non-finite.*row\(s\) 3;"):
        c.read_rows("videos", "frames", np.array([4, 3, 0]))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.attrs.__delitem__("embed_dim"), "embed_dim missing"),
        (lambda f: f.attrs.__setitem__("schema", np.int64(2)), "cache schema 2,"),
        (lambda f: f["texts/video"].__setitem__(0, 99), "/texts/video holds row 99"),
        (lambda f: f["splits/all/text_rows"].__setitem__(1, -3), "text_rows holds row -3"),
        (lambda f: f.attrs.__setitem__("embed_dim", 32), "/videos/frames has shape"),
        (lambda f: f.__delitem__("texts/eot"), "/texts/eot missing"),
        (lambda f: f.__delitem__("splits"), "group /splits missing"),
        (lambda f: f.attrs.__setitem__("config_json", "{not json"), "damaged feature cache"),
    ],
)
def test_damaged_caches_are_refused_when_opened(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path, damage: Callable, message: str
) -> None:
    out = _copy(small["cache"], tmp_path)
    with h5py.File(out, "r+") as f:
        damage(f)
    with pytest.raises(CacheError, match=message.replace("(", r"\(")):
        FeatureCache(out)
    line = _one_line_error(run_cli("inspect", out))
    assert str(out) in line and "np.int64" not in line


# ----------------------------------------------------------------- strict, retry


def test_strict_fails_on_a_rerun_and_retry_failed_equals_a_fresh_run(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path
) -> None:
    out = _copy(small["cache"], tmp_path)
    r = run_cli(*_argv(small["csv"], out, "--strict"))
    assert r.code == 1 and "already complete" in r.err and "late.mp4" in r.err
    with FeatureCache(out) as c:
        assert list(c.failed_videos()) == ["late.mp4"]
        old_fingerprint = c.fingerprint()
    # the summary of the first run counted only the 4 decoded videos as encoded
    late = small["root"] / "late.mp4"
    shutil.copyfile(small["root"] / "late.src.mp4", late)
    try:
        r = run_cli(*_argv(small["csv"], out, "--retry-failed"))
        assert r.code == 0, r.err
        # chunk size 2: late.mp4 is in chunk 1 (rows 2, 3), the only chunk decoded again
        assert "(2 encoded now, 3 resumed from an earlier run), 0 failed" in r.err
        assert "retried 1 failed video(s): 1 decode now" in r.err
        fresh = tmp_path / "fresh.h5"
        assert run_cli(*_argv(small["csv"], fresh)).code == 0
    finally:
        late.unlink()
    assert_same_cache(out, fresh)
    with FeatureCache(out) as c:
        assert not c.failed_videos() and c.fingerprint() != old_fingerprint


def test_summary_does_not_count_failed_videos_as_encoded(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path
) -> None:
    r = run_cli(*_argv(small["csv"], tmp_path / "x.h5"))
    assert r.code == 0
    assert "4 videos ok (4 encoded now, 0 resumed from an earlier run), 1 failed" in r.err


# ----------------------------------------------------------------- outputs


@pytest.mark.parametrize("where", ["folder", "under-a-file", "parts-is-a-file"])
def test_unwritable_outputs_are_refused_before_any_work(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import vtrbench.extract.pipeline as pipeline

    def no_work(*a: Any, **k: Any) -> None:
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(pipeline, "_load_clip", no_work)
    if where == "folder":
        out = tmp_path / "out.h5"
        out.mkdir()
    elif where == "under-a-file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub" / "out.h5"
    else:
        out = tmp_path / "out.h5"
        Path(str(out) + ".parts").write_text("x")
    line = _one_line_error(run_cli(*_argv(small["csv"], out)))
    assert "--output" in line and str(out) in line


def test_read_only_folder_is_refused_before_any_work(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        # root ignores permission bits: a read-only tmpfs is the real thing
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs")
    else:
        ro.chmod(0o555)
    try:
        line = _one_line_error(run_cli(*_argv(small["csv"], ro / "out.h5")))
        assert "cannot write in" in line and str(ro) in line
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)])
        else:
            ro.chmod(0o755)


def test_full_disk_stops_with_one_line_and_resumes_identically(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "full.h5"
    parts = Path(str(out) + ".parts")
    writes = []
    real_create = cache_mod._io.create_dataset

    def failing_create(group: Any, name: str, *a: Any, **k: Any) -> Any:
        # the third part file hits ENOSPC halfway through, as a full disk does
        if group.file.filename.endswith("videos-00002.h5.tmp") and name == "frame_index":
            raise OSError(errno.ENOSPC, "No space left on device")
        writes.append(name)
        return real_create(group, name, *a, **k)

    monkeypatch.setattr(cache_mod._io, "create_dataset", failing_create)
    line = _one_line_error(run_cli(*_argv(small["csv"], out)))
    assert "disk is full" in line and "videos-00002.h5" in line
    assert sorted(p.name for p in parts.glob("*.h5*")) == ["videos-00000.h5", "videos-00001.h5"]
    assert all(cache_mod.part_is_valid(p, 2) for p in parts.glob("videos-*.h5"))
    monkeypatch.setattr(cache_mod._io, "create_dataset", real_create)
    # the free-space check, before a part is written
    monkeypatch.setattr(cache_mod._io, "disk_free", lambda folder: 1 << 20)
    line = _one_line_error(run_cli(*_argv(small["csv"], out)))
    assert "not enough free space" in line and "videos-00002.h5" in line
    monkeypatch.undo()
    r = run_cli(*_argv(small["csv"], out))
    assert r.code == 0 and "(1 encoded now, 3 resumed" in r.err, r.err
    assert_same_cache(out, small["cache"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_real_full_tmpfs_is_one_line(small: dict[str, Any], run_cli: Callable, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount tmpfs")
    try:
        line = _one_line_error(run_cli(*_argv(small["csv"], disk / "out.h5")))
        assert "free space" in line or "disk is full" in line
        assert not list(disk.glob("**/*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)])


def test_parts_left_after_the_final_rename_are_cleaned(
    small: dict[str, Any], run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x.h5"
    real = cache_mod.assembly.shutil.rmtree

    def killed_before_cleanup(path: Any, *a: Any, **k: Any) -> None:
        if not str(path).endswith(".parts"):
            real(path, *a, **k)

    monkeypatch.setattr(cache_mod.assembly.shutil, "rmtree", killed_before_cleanup)
    assert run_cli(*_argv(small["csv"], out)).code == 0
    monkeypatch.undo()
    assert Path(str(out) + ".parts").is_dir()
    r = run_cli(*_argv(small["csv"], out))
    assert r.code == 0 and "already complete" in r.err
    assert not Path(str(out) + ".parts").exists()


# ----------------------------------------------------------------- messages


def test_bad_video_paths_are_named_for_what_they_are(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").mkdir()
    (tmp_path / "zero.mp4").symlink_to("/dev/zero")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    os.mkfifo(tmp_path / "pipe.mp4")
    want = {
        "x.mp4": "not a file: it is a folder",
        "zero.mp4": "not a regular file: a character device /dev/zero",
        "gone.mp4": "broken symbolic link",
        "pipe.mp4": "not a regular file: a named pipe",
        "none.mp4": "missing file",
    }
    for name, reason in want.items():
        with pytest.raises(DecodeError) as info:
            decode_video(tmp_path / name)
        assert info.value.reason.startswith(reason), (name, info.value.reason)


# ----------------------------------------------------------------- processes


_CHILD = """
import sys, time
from vtrbench.extract import pipeline, texts, videos
write_part = pipeline.write_part
def slow(path, arrays, *rest):
    write_part(path, arrays, *rest)
    time.sleep(30)
for module in (pipeline, videos, texts):  # each module that writes part files
    module.write_part = slow
from vtrbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_decode_workers_die_with_a_killed_extract_and_free_the_lock(
    small: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "k.h5"
    argv = [a if a != "0" else "2" for a in _argv(small["csv"], out)]  # --workers 2
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (Path(str(out) + ".parts") / "videos-00000.h5").exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = _children(child.pid)
        assert len(workers) >= 2
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() and "Z" not in _state(w) for w in workers):
        assert time.monotonic() < deadline, f"decode workers outlived their parent: {workers}"
        time.sleep(0.05)
    # nobody holds the lock: a lock taken right away succeeds
    import fcntl

    with open(str(out) + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"
