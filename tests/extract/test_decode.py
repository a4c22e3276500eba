"""PyAV decoding of the sampled frames (the sampling itself, numpy only: tests/extract/test_sampling.py)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from tests.videos import numbered_frames, read_frame_numbers, write_video  # noqa: E402
from vtrbench.errors import VtrbenchError  # noqa: E402
from vtrbench.extract.decode import DecodeError, decode_video, probe_video, sample_frame_indices  # noqa: E402

REAL_VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
NTSC = Fraction(30000, 1001)


def test_decode_video_names_a_misspelt_sampling() -> None:
    with pytest.raises(VtrbenchError, match="did you mean 'head'"):
        decode_video("/nonexistent.mp4", sampling="haed")


# ---------------------------------------------------------------- synthetic videos

H, W = 64, 128


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "30fps_330": write_video(d / "a.mp4", numbered_frames(330, H, W), 30),
        "ntsc_419": write_video(d / "b.mp4", numbered_frames(419, H, W), NTSC),
        # MKV stores no frame count: the packet count is used.
        "25fps_100_mkv": write_video(d / "c.mkv", numbered_frames(100, H, W), 25, codec="ffv1"),
        "short_20": write_video(d / "d.mp4", numbered_frames(20, H, W), 30),
        "5fps_100": write_video(d / "e.mp4", numbered_frames(100, H, W), 5),
        "faststart_300": write_video(d / "f.mp4", numbered_frames(300, H, W), 30, faststart=True),
    }


@pytest.mark.parametrize(
    "name, n_frames, fps, kwargs, expected",
    [
        ("30fps_330", 330, 30.0, {}, list(range(0, 301, 30))),
        ("ntsc_419", 419, 30000 / 1001, {}, [0, 29, 58, 87, 145, 174, 203, 232, 290, 319, 348, 406]),
        ("25fps_100_mkv", 100, 25.0, {}, [0, 25, 50, 75]),
        ("short_20", 20, 30.0, {}, [0]),
        # 20 s at 5 fps: 20 candidates 0, 5, ..., 95; uniform keeps positions int(linspace(0, 19, 12)).
        ("5fps_100", 100, 5.0, {}, [5 * p for p in (0, 1, 3, 5, 6, 8, 10, 12, 13, 15, 17, 19)]),
        ("5fps_100", 100, 5.0, {"sampling": "head"}, list(range(0, 60, 5))),
        ("5fps_100", 100, 5.0, {"sampling": "tail"}, list(range(40, 100, 5))),
        # Rate 2 at 30 fps: 0, 15, 30, ..., 315 (22 frames); uniform 12 of 22.
        ("30fps_330", 330, 30.0, {"rate": 2}, [15 * p for p in (0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21)]),
    ],
)
def test_decoded_frames_are_the_sampled_source_frames(
    videos: dict[str, Path], name: str, n_frames: int, fps: float, kwargs: dict, expected: list[int]
) -> None:
    video = decode_video(videos[name], **kwargs)
    assert video.frame_index.tolist() == expected
    assert video.frames.shape == (len(expected), H, W, 3) and video.frames.dtype == np.uint8
    assert read_frame_numbers(video.frames).tolist() == expected
    assert video.n_frames == n_frames
    assert math.isclose(video.fps, fps, rel_tol=1e-9)
    assert probe_video(videos[name]) == (n_frames, pytest.approx(fps, rel=1e-9))


def _count_decodable(path: Path) -> int:
    import av

    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.FFmpegError:
            pass
    return count


def test_truncated_file_uses_the_frames_that_decode(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["faststart_300"].read_bytes()
    mdat = data.index(b"mdat") - 4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: mdat + (len(data) - mdat) * 3 // 10])
    assert probe_video(cut)[0] == 300  # the index still promises every frame
    video = decode_video(cut)
    assert 1 <= video.n_frames < 300
    assert video.n_frames == _count_decodable(cut)
    assert video.frame_index.tolist() == sample_frame_indices(video.n_frames, 30.0).tolist()
    assert read_frame_numbers(video.frames).tolist() == video.frame_index.tolist()


# ---------------------------------------------------------------- real MSR-VTT clips


def _real(name: str) -> Path:
    path = REAL_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def test_real_clip_30fps() -> None:
    video = decode_video(_real("video9770.mp4"))
    assert (video.n_frames, video.fps) == (330, 30.0)
    assert video.frame_index.tolist() == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300]
    assert video.frames.shape == (11, 240, 320, 3)
    # Real content, not blank frames, and consecutive samples differ.
    assert video.frames.std() > 10
    assert all(np.any(a != b) for a, b in itertools.pairwise(video.frames))


def test_real_clip_ntsc_with_non_square_pixels() -> None:
    video = decode_video(_real("video9771.mp4"))
    assert video.n_frames == 419 and math.isclose(video.fps, 30000 / 1001)
    # int(29.97) = 29; ceil(419 / 29) = 15 seconds -> 0, 29, ..., 406 (15 frames); 12 uniform of 15.
    assert video.frame_index.tolist() == [0, 29, 58, 87, 145, 174, 203, 232, 290, 319, 348, 406]
    # Coded 320x240 although the container displays 427x240: the coded size is kept, as in OpenCV.
    assert video.frames.shape == (12, 240, 320, 3)


# ---------------------------------------------------------------- failures


def _reason(path: Path) -> str:
    with pytest.raises(DecodeError) as info:
        decode_video(path)
    assert isinstance(info.value, VtrbenchError)
    assert str(path) in str(info.value)
    return info.value.reason


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert _reason(tmp_path / "nope.mp4") == "missing file"
    assert _reason(tmp_path) == "not a file: it is a folder"  # said as what it is, not "missing"
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert _reason(tmp_path / "empty.mp4") == "empty file"


def test_random_bytes_are_undecodable(tmp_path: Path) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    assert _reason(path).startswith("undecodable: ")


def test_truncated_real_clip_without_index_is_undecodable(tmp_path: Path) -> None:
    # MSR-VTT files keep the mp4 index (moov) at the end: the first 30 % cannot be opened.
    data = _real("video9770.mp4").read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) * 3 // 10])
    assert _reason(path).startswith("undecodable: ")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert _reason(path) == "no video stream"


def test_video_stream_without_frames(videos: dict[str, Path], tmp_path: Path) -> None:
    # An MKV cut just after the start of its first cluster: a valid header, a video stream, no frames.
    data = videos["25fps_100_mkv"].read_bytes()
    cluster = data.index(bytes.fromhex("1F43B675"))
    path = tmp_path / "headers_only.mkv"
    path.write_bytes(data[: cluster + 4])
    assert _reason(path) == "no frames decoded"
