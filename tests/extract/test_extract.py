"""``vtrbench extract`` end to end, through the real entry point: cache contents, faults, resume.

The expected values are computed independently: frame numbers written out from the
sampling rule, token ids and noun/verb masks from ``tokenizer.encode`` per word and the
dataset's known roles, features from open_clip's own model calls.
"""

from __future__ import annotations

import json
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
torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tests.conftest import SYNTH_FPS, SYNTH_SECONDS, SYNTH_VIDEOS, TORCH_SEED  # noqa: E402
from tests.videos import numbered_frames, write_video  # noqa: E402
from vtrbench.cache import STATUS_FAILED, STATUS_OK, FeatureCache, part_is_valid, write_part  # noqa: E402
from vtrbench.errors import CacheError  # noqa: E402
from vtrbench.extract.decode import sample_frame_indices  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REAL_VIDEOS = REPO.parent / "shared" / "data" / "videos"
T = 12  # max_frames of the synthetic and custom datasets


# ----------------------------------------------------------------- helpers


def read_all(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every dataset of an HDF5 file (strings decoded) and every object's attrs, by name."""
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


def assert_same_cache(a: Path, b: Path) -> None:
    """Exact equality of every dataset (dtype, shape, values) and of all attrs but created_utc."""
    data_a, attrs_a = read_all(a)
    data_b, attrs_b = read_all(b)
    assert sorted(data_a) == sorted(data_b)
    for name in data_a:
        (dtype_a, va), (dtype_b, vb) = data_a[name], data_b[name]
        assert dtype_a == dtype_b, name
        np.testing.assert_array_equal(va, vb, err_msg=name, strict=True)
    for obj in (attrs_a, attrs_b):
        obj["/"].pop("created_utc")
    assert sorted(attrs_a) == sorted(attrs_b)
    for name in attrs_a:
        assert attrs_a[name].keys() == attrs_b[name].keys(), name
        for key in attrs_a[name]:
            np.testing.assert_array_equal(attrs_a[name][key], attrs_b[name][key], err_msg=f"{name}@{key}")


def _line_with(text: str, start: str, part: str) -> bool:
    """Whether a line of ``text`` starts with ``start`` (after indentation) and contains ``part``."""
    return any(line.strip().startswith(start) and part in line for line in text.splitlines())


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# ----------------------------------------------------------------- the synthetic cache


def test_cache_layout_and_provenance(synth_cache: Path) -> None:
    n_texts = SYNTH_VIDEOS * 3
    with FeatureCache(synth_cache) as cache:
        a = cache.attrs
        f = cache.file
        assert (a["model"], a["pretrained"], a["random_weights"]) == ("vtrbench-tiny", "none", True)
        assert (a["n_videos"], a["n_texts"], a["n_failed"]) == (SYNTH_VIDEOS, n_texts, 0)
        assert (a["max_frames"], a["max_words"], a["image_size"], a["embed_dim"]) == (T, 32, 64, 64)
        assert a["config_hash"] == cache.config_hash and len(a["config_hash"]) == 16
        assert cache.config["model"] == "vtrbench-tiny" and cache.config["max_words"] == 32
        assert f["videos/frames"].shape == (SYNTH_VIDEOS, T, 64) and f["videos/frames"].dtype == np.float16
        assert f["videos/frame_mask"][:].all()
        assert (f["videos/status"][:] == STATUS_OK).all()
        assert cache.read_strings("videos", "error") == [""] * SYNTH_VIDEOS
        assert f["texts/tokens"].shape == (n_texts, 32, 64) and f["texts/tokens"].dtype == np.float16
        assert f["texts/token_ids"].dtype == np.int32 and f["texts/eot"].dtype == np.int16
        assert "patches" not in f["videos"]


def test_frame_index_follows_the_sampling_rule(synth_cache: Path) -> None:
    # 12 s at 5 fps = 60 frames; one frame per second: 0, 5, ..., 55 (12 <= max_frames, all kept)
    expected = list(range(0, SYNTH_SECONDS * SYNTH_FPS, SYNTH_FPS))
    assert list(sample_frame_indices(SYNTH_SECONDS * SYNTH_FPS, float(SYNTH_FPS), max_frames=T)) == expected
    with FeatureCache(synth_cache) as cache:
        index = cache.file["videos/frame_index"][:]
    assert index.dtype == np.int32
    assert (index == np.array(expected)[None, :]).all()


def test_splits_and_rows_match_the_dataset(synth_cache: Path, synth_dir: Path) -> None:
    from vtrbench.datasets import load_dataset

    index = load_dataset("synthetic", synth_dir, None)
    with FeatureCache(synth_cache) as cache:
        ids = cache.read_strings("videos", "id")
        captions = cache.read_strings("texts", "caption")
        text_video = cache.file["texts/video"][:]
        assert ids == [v.id for v in index.videos]
        assert cache.read_strings("videos", "path") == [str(v.path) for v in index.videos]
        assert captions == [t.caption for t in index.texts]
        assert [ids[r] for r in text_video] == [t.video for t in index.texts]
        assert cache.splits == sorted(index.splits) == ["test", "train"]
        covered: set[int] = set()
        for name, split in index.splits.items():
            video_rows, text_rows = cache.split_rows(name)
            assert [ids[r] for r in video_rows] == list(split.videos)
            assert list(text_rows) == list(split.texts)
            assert set(text_video[text_rows]) <= set(video_rows)
            covered |= set(video_rows.tolist())
        assert covered == set(range(SYNTH_VIDEOS))
        assert (cache.attrs["default_train"], cache.attrs["default_test"]) == ("train", "test")
        with pytest.raises(CacheError, match="did you mean 'test'"):
            cache.split_rows("tset")


def test_token_ids_and_masks_follow_the_known_roles(
    synth_cache: Path, synth_dir: Path, tiny_clip: Any
) -> None:
    tokenizer = tiny_clip.tokenizer
    rows = [json.loads(line) for line in (synth_dir / "captions.jsonl").read_text().splitlines()]
    with FeatureCache(synth_cache) as cache:
        f = cache.file
        ids, eot = f["texts/token_ids"][:], f["texts/eot"][:]
        noun, verb, mask = f["texts/noun_mask"][:], f["texts/verb_mask"][:], f["texts/token_mask"][:]
    assert len(rows) == len(ids)
    n_verbs = 0
    for i, row in enumerate(rows):
        want_ids, want_noun, want_verb = [tokenizer.sot_token_id], [False], [False]
        for word, role in zip(row["caption"].split(), row["roles"], strict=True):
            pieces = tokenizer.encode(word)
            want_ids += pieces
            want_noun += [role == "noun"] * len(pieces)
            want_verb += [role == "verb"] * len(pieces)
        want_ids.append(tokenizer.eot_token_id)
        n = len(want_ids)
        assert n <= 32
        assert list(ids[i, :n]) == want_ids and not ids[i, n:].any()
        assert eot[i] == n - 1
        assert list(mask[i]) == [j < n for j in range(32)]
        assert list(noun[i, : n - 1]) == want_noun and not noun[i, n - 1 :].any()
        assert list(verb[i, : n - 1]) == want_verb and not verb[i, n - 1 :].any()
        n_verbs += sum(want_verb)
    assert n_verbs > 0


def test_cached_features_equal_direct_encoding(synth_cache: Path, synth_dir: Path, tiny_clip: Any) -> None:
    """The cache holds fp16 copies of open_clip's encode_image / per-token text features.

    Both sides build the same fixed-seed random weights (conftest). The pipeline encodes
    frames in batches of two videos, this test one video at a time: float32 results may
    differ in the last bits, hence the fp16-level tolerance.
    """
    from vtrbench.extract.decode import decode_video
    from vtrbench.extract.encode import encode_tokens, tokenize
    from vtrbench.extract.preprocess import preprocess_frames

    with FeatureCache(synth_cache) as cache:
        frames = cache.file["videos/frames"][:]
        tokens = cache.file["texts/tokens"][:]
        eot = cache.file["texts/eot"][:].astype(np.int64)
        captions = cache.read_strings("texts", "caption")
    for v in (0, SYNTH_VIDEOS - 1):
        video = decode_video(synth_dir / "videos" / f"syn{v:05d}.mp4", rate=1, max_frames=T)
        with torch.no_grad():
            want = tiny_clip.model.encode_image(preprocess_frames(video.frames, 64)).numpy()
        np.testing.assert_allclose(frames[v].astype(np.float32), want, rtol=2e-3, atol=2e-3)
    with torch.no_grad():
        want_eot = tiny_clip.model.encode_text(tiny_clip.tokenizer(captions)).numpy()
    got_eot = tokens[np.arange(len(captions)), eot].astype(np.float32)
    np.testing.assert_allclose(got_eot, want_eot, rtol=2e-3, atol=2e-3)
    tok = tokenize(tiny_clip, captions, 32, [None] * len(captions))
    per_token = encode_tokens(tiny_clip, torch.from_numpy(tok.token_ids), torch.from_numpy(eot)).numpy()
    np.testing.assert_allclose(
        tokens[:, : per_token.shape[1]].astype(np.float32), per_token, rtol=2e-3, atol=2e-3
    )
    assert not tokens[:, per_token.shape[1] :].any()


# ----------------------------------------------------------------- re-runs


def test_same_config_again_is_already_complete(
    run_cli: Callable[..., Any], synth_cache: Path, synth_extract_argv: Callable[..., list[str]]
) -> None:
    before = synth_cache.read_bytes()
    r = run_cli(*synth_extract_argv(synth_cache))
    assert r.code == 0, r.err
    assert "already complete" in r.err and str(synth_cache) in r.err
    assert synth_cache.read_bytes() == before


def test_other_config_is_refused_and_says_what_differs(
    run_cli: Callable[..., Any], synth_cache: Path, synth_extract_argv: Callable[..., list[str]]
) -> None:
    before = synth_cache.read_bytes()
    r = run_cli(*synth_extract_argv(synth_cache, "--max-words", "16", "--sampling", "head"))
    assert r.code == 2
    assert "different config" in r.err and "--overwrite" in r.err
    assert "max_words: 32 -> 16" in r.err and "sampling: 'uniform' -> 'head'" in r.err
    assert "Traceback" not in r.text
    assert synth_cache.read_bytes() == before


# ----------------------------------------------------------------- bad videos


@pytest.fixture(scope="module")
def faulty_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A custom CSV dataset: two good videos and five broken ones, each with a known reason."""
    root = tmp_path_factory.mktemp("faulty")
    write_video(root / "good_a.mp4", numbered_frames(40, 64, 64), 10)  # 4 s: frames 0, 10, 20, 30
    write_video(root / "good_b.mp4", numbered_frames(25, 64, 96), 5)  # 5 s: frames 0, 5, ..., 20
    (root / "empty.mp4").write_bytes(b"")
    whole = (root / "good_a.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: int(len(whole) * 0.3)])  # index (moov) is at the end
    (root / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    write_audio_only(root / "audio.mp4")
    reasons = {
        "missing.mp4": "missing file",
        "empty.mp4": "empty file",
        "truncated.mp4": "undecodable",
        "random.mp4": "undecodable",
        "audio.mp4": "no video stream",
    }
    good = {"good_a.mp4": [0, 10, 20, 30], "good_b.mp4": [0, 5, 10, 15, 20]}
    lines = ["video,caption,split"]
    for k, name in enumerate([*good, *reasons]):
        lines.append(f"{name},a clip named {name.split('.')[0]} is playing,{'train' if k % 2 else 'test'}")
    lines.append("good_a.mp4,another caption for the first good clip,test")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    return {"csv": root / "data.csv", "reasons": reasons, "good": good, "n_texts": len(lines) - 1}


def _custom_argv(csv: Path, output: Path, *extra: str) -> list[str]:
    return [
        "extract",
        "--dataset",
        "custom",
        "--annotations",
        str(csv),
        "--model",
        "vtrbench-tiny",
        "--pretrained",
        "none",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
        "--output",
        str(output),
        *extra,
    ]


@pytest.fixture(scope="module")
def faulty_run(
    run_cli: Callable[..., Any], faulty_dataset: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    """One plain extraction of the faulty dataset: (CliResult, cache path)."""
    out = tmp_path_factory.mktemp("faulty_run") / "faulty.h5"
    return run_cli(*_custom_argv(faulty_dataset["csv"], out)), out


@pytest.fixture(scope="module")
def strict_run(
    run_cli: Callable[..., Any], faulty_dataset: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    """The same with --strict."""
    out = tmp_path_factory.mktemp("strict_run") / "strict.h5"
    return run_cli(*_custom_argv(faulty_dataset["csv"], out, "--strict")), out


def test_broken_videos_are_recorded_and_the_run_goes_on(
    faulty_run: tuple[Any, Path], faulty_dataset: dict[str, Any]
) -> None:
    r, out = faulty_run
    assert r.code == 0, r.err
    assert "Traceback" not in r.text
    reasons, good = faulty_dataset["reasons"], faulty_dataset["good"]
    assert f"{len(good)} videos ok" in r.err and f"{len(reasons)} failed" in r.err
    for name, reason in reasons.items():
        assert _line_with(r.err, f"{name}: ", reason), name
    with FeatureCache(out) as cache:
        ids = cache.read_strings("videos", "id")
        errors = dict(zip(ids, cache.read_strings("videos", "error"), strict=True))
        f = cache.file
        status, mask, index = f["videos/status"][:], f["videos/frame_mask"][:], f["videos/frame_index"][:]
        frames = f["videos/frames"][:]
        assert cache.attrs["n_failed"] == len(reasons)
        assert len(cache.read_strings("texts", "caption")) == faulty_dataset["n_texts"]
    assert sorted(ids) == sorted([*good, *reasons])
    for row, vid in enumerate(ids):
        if vid in reasons:
            assert status[row] == STATUS_FAILED
            assert reasons[vid] in errors[vid], errors[vid]
            assert not mask[row].any() and (index[row] == -1).all() and not frames[row].any()
        else:
            want = good[vid]
            assert status[row] == STATUS_OK and errors[vid] == ""
            assert list(index[row]) == want + [-1] * (T - len(want))
            assert list(mask[row]) == [j < len(want) for j in range(T)]
            assert np.abs(frames[row, : len(want)]).sum(-1).min() > 0 and not frames[row, len(want) :].any()


def test_strict_exits_nonzero_and_names_the_failures(
    strict_run: tuple[Any, Path], faulty_dataset: dict[str, Any]
) -> None:
    r, out = strict_run
    assert r.code != 0
    assert "Traceback" not in r.text
    n = len(faulty_dataset["reasons"])
    assert f"--strict: {n} video(s) failed" in r.err
    with FeatureCache(out) as cache:  # the message says the cache was written, with them marked
        assert cache.attrs["n_failed"] == n


def test_strict_names_every_failed_video(
    strict_run: tuple[Any, Path], faulty_dataset: dict[str, Any]
) -> None:
    r, _ = strict_run
    assert r.code != 0
    for name in faulty_dataset["reasons"]:
        assert name in r.err


def test_summary_groups_failures_by_reason(faulty_run: tuple[Any, Path]) -> None:
    r, _ = faulty_run
    assert r.code == 0
    assert "failed (2): undecodable" in r.err  # truncated.mp4 and random.mp4
    assert "failed (1): missing file" in r.err


def test_overwrite_replaces_a_cache_made_with_another_config(
    run_cli: Callable[..., Any], faulty_dataset: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "c.h5"
    assert run_cli(*_custom_argv(faulty_dataset["csv"], out)).code == 0
    before = out.read_bytes()
    refused = run_cli(*_custom_argv(faulty_dataset["csv"], out, "--max-words", "16"))
    assert refused.code == 2 and "max_words: 32 -> 16" in refused.err
    assert out.read_bytes() == before
    r = run_cli(*_custom_argv(faulty_dataset["csv"], out, "--max-words", "16", "--overwrite"))
    assert r.code == 0, r.err
    with FeatureCache(out) as cache:
        assert cache.config["max_words"] == 16
        assert cache.file["texts/tokens"].shape[1] == 16
    assert not Path(str(out) + ".parts").exists() and not Path(str(out) + ".lock").exists()


def test_inspect_lists_failed_videos(
    run_cli: Callable[..., Any], faulty_run: tuple[Any, Path], faulty_dataset: dict[str, Any]
) -> None:
    r = run_cli("inspect", faulty_run[1])
    assert r.code == 0
    for name, reason in faulty_dataset["reasons"].items():
        assert _line_with(r.err, f"failed: {name}: ", reason), name


# ----------------------------------------------------------------- bad annotations


@pytest.mark.parametrize(
    "filename, content, where",
    [
        ("data.csv", "video,caption,split\na.mp4,a cat,test\nb.mp4,a dog\n", "line 3"),
        ("data.csv", "video,text\na.mp4,a cat\n", "line 1"),
        ("data.csv", "video,caption\na.mp4,\n", "line 2"),
        ("data.jsonl", '{"video": "a.mp4", "caption": "a cat"}\n{"video": "b.mp4", \n', "line 2"),
        ("data.jsonl", '{"video": "a.mp4"}\n', "line 1"),
    ],
)
def test_annotation_in_the_wrong_format_names_file_and_line(
    run_cli: Callable[..., Any], tmp_path: Path, filename: str, content: str, where: str
) -> None:
    path = tmp_path / filename
    path.write_text(content)
    r = run_cli(*_custom_argv(path, tmp_path / "c.h5"))
    assert r.code == 2
    assert f"{path}, {where}" in r.err
    assert "Traceback" not in r.text
    assert not (tmp_path / "c.h5").exists()


def test_broken_synthetic_captions_name_file_and_line(
    run_cli: Callable[..., Any], synth_dir: Path, synth_extract_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    copy = tmp_path / "synth"
    shutil.copytree(synth_dir, copy, ignore=shutil.ignore_patterns("videos"))
    lines = (copy / "captions.jsonl").read_text().splitlines()
    lines[4] = lines[4][:-5]  # a cut-off JSON object on line 5
    (copy / "captions.jsonl").write_text("\n".join(lines) + "\n")
    argv = synth_extract_argv(tmp_path / "c.h5")
    argv[argv.index(str(synth_dir))] = str(copy)
    r = run_cli(*argv)
    assert r.code == 2
    assert f"{copy / 'captions.jsonl'}, line 5: invalid JSON" in r.err
    assert "Traceback" not in r.text


# ----------------------------------------------------------------- parts and resume


def test_truncated_or_unfinished_part_files_are_invalid(tmp_path: Path) -> None:
    arrays = {"frames": np.ones((3, 2, 4), np.float16), "error": np.array(["", "x", ""], dtype=object)}
    path = tmp_path / "videos-00000.h5"
    write_part(path, arrays)
    assert part_is_valid(path, 3)
    assert not part_is_valid(path, 2)  # wrong row count
    assert not Path(str(path) + ".tmp").exists()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert not part_is_valid(path, 3)
    path.unlink()
    (tmp_path / "videos-00000.h5.tmp").write_bytes(whole)  # a write the kill interrupted before rename
    assert not part_is_valid(path, 3)
    with h5py.File(path, "w") as f:  # all rows there but never marked complete
        f.create_dataset("frames", data=arrays["frames"])
    assert not part_is_valid(path, 3)


# Runs the real entry point in a child process. The child seeds torch's global RNG with
# another value than the resuming process: --pretrained none weights must not depend on it
# (a resumed run has to encode with the killed run's model). ``pause``
# seconds after each part file only widen the window in which the test kills the process.
_CHILD = """
import sys, time
import torch
torch.manual_seed(int(sys.argv[1]))
pause = float(sys.argv[2])
if pause:
    from vtrbench.extract import pipeline, texts, videos
    write_part = pipeline.write_part
    def slow_write_part(path, arrays, *rest):
        write_part(path, arrays, *rest)
        time.sleep(pause)
    for module in (pipeline, videos, texts):  # each module that writes part files
        module.write_part = slow_write_part
from vtrbench.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _start_child(argv: list[str], pause: float, log: Path) -> subprocess.Popen[bytes]:
    """Start ``main(argv)`` in a new Python process (torch seeded), its output going to ``log``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env["COLUMNS"] = "1000"
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(TORCH_SEED + 17), str(pause), *argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
        )


@pytest.mark.slow
def test_kill9_then_resume_equals_an_uninterrupted_run(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "resumed.h5"
    parts = Path(str(out) + ".parts")
    argv = synth_extract_argv(out)
    child = _start_child(argv, pause=0.5, log=tmp_path / "run1.log")
    deadline = time.monotonic() + 120
    try:
        while not (parts / "videos-00001.h5").exists():
            assert child.poll() is None, (tmp_path / "run1.log").read_text()
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.02)
        assert not out.exists()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # Nothing at the cache path, and nothing that reads back as a cache.
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    with pytest.raises(CacheError, match="interrupted"):
        FeatureCache(out)
    r = run_cli("inspect", out)
    assert r.code == 2 and "interrupted" in r.err
    # The parts belong to this config: another one is refused, not mixed in.
    r = run_cli(*synth_extract_argv(out, "--max-words", "16"))
    assert r.code == 2 and "interrupted extraction" in r.err and "max_words: 32 -> 16" in r.err

    done = sorted(parts.glob("videos-*.h5"))
    assert 2 <= len(done) < SYNTH_VIDEOS // 2 and not list(parts.glob("texts-*.h5"))
    # Damage the evidence: truncate the newest finished part, and leave a stale .tmp for the last chunk.
    whole = done[-1].read_bytes()
    done[-1].write_bytes(whole[: len(whole) // 3])
    (parts / f"videos-{SYNTH_VIDEOS // 2 - 1:05d}.h5.tmp").write_bytes(whole[: len(whole) // 2])
    kept = 2 * (len(done) - 1)

    # The same command again, here in-process (another process than the killed one either way).
    torch.manual_seed(TORCH_SEED + 1)  # differs from the child's on purpose
    r = run_cli(*argv)
    assert r.code == 0, r.err
    assert f"({SYNTH_VIDEOS - kept} encoded now, {kept} resumed from an earlier run)" in r.err
    assert out.is_file() and not parts.exists()
    assert_same_cache(out, synth_cache)


@pytest.mark.slow
def test_worker_processes_give_the_same_cache(
    run_cli: Callable[..., Any],
    synth_cache: Path,
    synth_extract_argv: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "workers.h5"
    torch.manual_seed(TORCH_SEED + 2)  # the cache must not depend on the global RNG
    r = run_cli(*synth_extract_argv(out, "--workers", "2"))
    assert r.code == 0, r.err
    assert_same_cache(out, synth_cache)


# ----------------------------------------------------------------- real clips


def test_real_msrvtt_clips(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    clips = [REAL_VIDEOS / "video9770.mp4", REAL_VIDEOS / "video9771.mp4"]
    if not all(c.is_file() for c in clips):
        pytest.skip(f"real clips not found in {REAL_VIDEOS}")
    csv = tmp_path / "real.csv"
    csv.write_text("video,caption\n" + "".join(f"{c},a clip\n" for c in clips))
    out = tmp_path / "real.h5"
    r = run_cli(*_custom_argv(csv, out))
    assert r.code == 0, r.err
    # video9770: 330 frames at 30 fps -> seconds 0..10 -> 11 frames.
    # video9771: 419 frames at 29.97 fps -> int 29 -> 15 candidates 0, 29, ..., 406, more than 12:
    # keep positions linspace(0, 14, 12) as int = 0 1 2 3 5 6 7 8 10 11 12 14.
    want = {
        str(clips[0]): [30 * s for s in range(11)],
        str(clips[1]): [29 * p for p in (0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 14)],
    }
    assert list(sample_frame_indices(330, 30.0, max_frames=12)) == want[str(clips[0])]
    assert list(sample_frame_indices(419, 30000 / 1001, max_frames=12)) == want[str(clips[1])]
    with FeatureCache(out) as cache:
        ids = cache.read_strings("videos", "id")
        index = cache.file["videos/frame_index"][:]
        mask = cache.file["videos/frame_mask"][:]
        assert (cache.file["videos/status"][:] == STATUS_OK).all()
    for row, vid in enumerate(ids):
        n = len(want[vid])
        assert int(mask[row].sum()) == n
        assert list(index[row]) == want[vid] + [-1] * (T - n)
    assert sorted(int(m.sum()) for m in mask) == [11, 12]
