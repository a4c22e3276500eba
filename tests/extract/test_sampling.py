"""Frame sampling (METHODS.md section 2): which source frames CLIP4Clip's loop takes.

Pure numpy: these run without PyAV (tests/extract/test_decode.py decodes the sampled frames and needs it).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vtrbench.errors import VtrbenchError
from vtrbench.extract.decode import sample_frame_indices


def clip4clip_reference(
    n_frames: int, fps_native: float, rate: int, max_frames: int, sampling: str
) -> list[int]:
    """CLIP4Clip's RawVideoExtractorCV2 loop and slice_framepos, written out literally."""
    fps = int(fps_native)
    total_duration = (n_frames + fps - 1) // fps
    interval = fps // rate
    if interval == 0:
        interval = 1
    inds = list(range(0, fps, interval))[:rate]
    taken: list[int] = []
    ret = True
    for sec in range(total_duration + 1):
        if not ret:
            break
        for ind in inds:
            ret = sec * fps + ind < n_frames  # cap.read() fails past the last frame
            if not ret:
                break
            taken.append(sec * fps + ind)
    if len(taken) <= max_frames:
        return taken
    if sampling == "head":
        return taken[:max_frames]
    if sampling == "tail":
        return taken[-max_frames:]
    return [taken[int(p)] for p in np.linspace(0, len(taken) - 1, num=max_frames)]


@pytest.mark.parametrize(
    "n_frames, fps, rate, max_frames, sampling",
    [
        *itertools.product(
            [1, 20, 29, 30, 31, 330, 419, 1000],
            [25.0, 29.97, 30.0],
            [1, 2, 3],
            [12],
            ["uniform", "head", "tail"],
        ),
        (7200, 59.94, 1, 64, "uniform"),
    ],
)
def test_sampling_matches_clip4clip_loop(
    n_frames: int, fps: float, rate: int, max_frames: int, sampling: str
) -> None:
    got = sample_frame_indices(n_frames, fps, rate=rate, max_frames=max_frames, sampling=sampling)
    assert got.tolist() == clip4clip_reference(n_frames, fps, rate, max_frames, sampling)


def test_sampling_by_hand() -> None:
    # 30 fps x 330 frames: seconds 0..11, frame 330 does not exist -> 11 frames.
    assert sample_frame_indices(330, 30.0).tolist() == list(range(0, 301, 30))
    # 29.97 fps -> fps 29; ceil(419 / 29) = 15; 0, 29, ..., 406 are 15 frames; uniform 12 of 15 keeps
    # positions int(linspace(0, 14, 12)) = 0 1 2 3 5 6 7 8 10 11 12 14.
    assert sample_frame_indices(419, 29.97).tolist() == [
        0,
        29,
        58,
        87,
        145,
        174,
        203,
        232,
        290,
        319,
        348,
        406,
    ]
    assert sample_frame_indices(419, 29.97, sampling="head").tolist() == [29 * k for k in range(12)]
    assert sample_frame_indices(419, 29.97, sampling="tail").tolist() == [29 * k for k in range(3, 15)]
    # Rate 2 at 30 fps: offsets arange(0, 30, 15) = 0, 15.
    assert sample_frame_indices(100, 30.0, rate=2, max_frames=100).tolist() == [0, 15, 30, 45, 60, 75, 90]
    # Rate 4 at 29 fps: interval 7, offsets 0 7 14 21 (28 is cut by [:rate]).
    assert sample_frame_indices(40, 29.5, rate=4, max_frames=100).tolist() == [0, 7, 14, 21, 29, 36]
    # Shorter than one second: only frame 0.
    assert sample_frame_indices(20, 30.0).tolist() == [0]
    assert sample_frame_indices(1, 30.0).tolist() == [0]


def test_rate_above_fps_takes_every_frame() -> None:
    assert sample_frame_indices(7, 2.0, rate=5, max_frames=100).tolist() == list(range(7))


@pytest.mark.parametrize("fps", [None, 0.0, 0.5, float("nan"), float("inf"), -3.0])
def test_unknown_or_sub_1_fps_is_treated_as_1(fps: float | None) -> None:
    assert sample_frame_indices(5, fps, max_frames=100).tolist() == [0, 1, 2, 3, 4]
    assert sample_frame_indices(30, fps).tolist() == [int(p) for p in np.linspace(0, 29, 12)]


def test_no_frames_gives_empty() -> None:
    for n in (0, -1):
        got = sample_frame_indices(n, 30.0)
        assert got.shape == (0,) and got.dtype == np.int64


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(VtrbenchError, match="did you mean 'uniform'"):
        sample_frame_indices(100, 30.0, sampling="unifrom")
    with pytest.raises(VtrbenchError, match="rate"):
        sample_frame_indices(100, 30.0, rate=0)
    with pytest.raises(VtrbenchError, match="max_frames"):
        sample_frame_indices(100, 30.0, max_frames=0)
