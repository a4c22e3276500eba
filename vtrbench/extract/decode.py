"""Video decoding with CLIP4Clip-compatible frame sampling (METHODS.md section 2).

CLIP4Clip reads videos with OpenCV and picks frames by time:
``fps = int(container_fps)``, one frame at ``sec * fps`` for each second (or ``r``
frames per second), then keeps at most ``max_frames`` of them. vtrbench decodes
with PyAV and selects exactly the same frame numbers. Frame number ``i`` is the
``i``-th frame the decoder outputs, which is what OpenCV's ``CAP_PROP_POS_FRAMES``
counts.

Frames are decoded sequentially and only the wanted ones are converted to RGB;
decoding stops after the last wanted frame. Measured on the two MSR-VTT clips in
``shared/data/videos`` (320x240 H.264, 11 s and 14 s, 11 and 12 frames kept, 2 CPU
cores, median of 7): sequential 100 ms and 110 ms per clip, one seek per wanted frame
310 ms and 380 ms. The clips have keyframes only at frames 0 and 250 (0 and 197), so
every seek re-decodes most of a GOP. Seeked frames were bit-identical to sequential
ones, but seeking also needs a frame-number-to-timestamp mapping that is exact only
for constant-frame-rate streams. FFmpeg frame threading (``thread_type="AUTO"``) gave
no gain on these small clips on 2 cores (100 vs 107 ms), so PyAV's default is kept.

PyAV is imported inside the functions: this module belongs to feature extraction only.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.registry import unknown_name_message

SAMPLINGS = ("uniform", "head", "tail")


class DecodeError(VtrbenchError):
    """A video file cannot be decoded. ``reason`` is a short phrase (see :func:`decode_video`)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")


@dataclass(frozen=True)
class DecodedVideo:
    """Sampled frames of one video.

    frames: ``(T, H, W, 3)`` uint8 RGB at the coded size (pixel aspect ratio ignored, as OpenCV does).
    frame_index: ``(T,)`` int64, the source frame number of each row, increasing.
    fps: the container frame rate as a float (before CLIP4Clip's truncation to int); 0.0 if unknown.
    n_frames: the number of frames the sampling was computed from (see :func:`decode_video`).
    """

    frames: np.ndarray
    frame_index: np.ndarray
    fps: float
    n_frames: int


def sample_frame_indices(
    n_frames: int,
    fps_native: float | None,
    *,
    rate: int = 1,
    max_frames: int = 12,
    sampling: str = "uniform",
    start_s: float | None = None,
    end_s: float | None = None,
) -> np.ndarray:
    """Frame numbers ``(T,)`` int64 that CLIP4Clip's ``RawVideoExtractorCV2`` would keep.

    ``fps = int(fps_native)``; for ``sec = 0 .. ceil(n_frames / fps)`` take frames
    ``sec * fps + offset`` with ``offset`` in ``arange(0, fps, max(fps // rate, 1))[:rate]``,
    stopping at the first frame number that does not exist. CLIP4Clip computes the
    interval as ``fps // rate`` (0 becomes 1) and asserts ``rate <= fps``; here a
    rate above ``fps`` simply takes every frame. If more than ``max_frames`` were taken,
    keep ``max_frames`` of them: positions ``linspace(0, n - 1, max_frames).astype(int)``
    ("uniform", CLIP4Clip's ``slice_framepos=2``), the first ("head", 0) or the last
    ("tail", 1).

    A frame rate that is unknown (None, NaN, 0) or below 1 fps is treated as 1 fps,
    i.e. every frame is a candidate; CLIP4Clip would divide by zero there.
    ``n_frames <= 0`` gives an empty array.

    A window (``start_s``/``end_s``, seconds; CLIP4Clip's ``start_time``/``end_time``)
    restricts the seconds to ``int(start) .. min(int(end), ceil(n_frames / fps))``,
    both ends included, as CLIP4Clip's dataloaders do (DiDeMo: 0..31; ActivityNet:
    0..ceil(duration)): negative ends become 0, swapped ends are swapped back, equal
    ends get ``end + 1``. A window that starts after the video gives an empty array.
    A missing ``end_s`` means the end of the video.
    """
    if sampling not in SAMPLINGS:
        raise VtrbenchError(unknown_name_message("frame sampling", sampling, list(SAMPLINGS)))
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise VtrbenchError(f"frame rate (frames per second to sample) must be an integer >= 1, got {rate!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise VtrbenchError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    fps = 1
    if fps_native is not None and math.isfinite(fps_native) and fps_native >= 1:
        fps = int(fps_native)
    n_sec = -(-n_frames // fps)
    first_sec, last_sec = window_seconds(start_s, end_s, n_sec)
    offsets = np.arange(0, fps, max(fps // rate, 1), dtype=np.int64)[:rate]
    seconds = np.arange(first_sec, last_sec + 1, dtype=np.int64)
    candidates = (seconds[:, None] * fps + offsets[None, :]).ravel()
    # Candidates increase strictly (offsets < fps), so "stop at the first frame that
    # does not exist" is the same as dropping every candidate >= n_frames.
    taken = candidates[candidates < n_frames]
    if len(taken) <= max_frames:
        return taken
    if sampling == "head":
        return taken[:max_frames]
    if sampling == "tail":
        return taken[-max_frames:]
    return taken[np.linspace(0, len(taken) - 1, max_frames, dtype=int)]


def window_seconds(start_s: float | None, end_s: float | None, n_sec: int) -> tuple[int, int]:
    """First and last second (both included) that CLIP4Clip samples; see :func:`sample_frame_indices`."""
    if start_s is None and end_s is None:
        return 0, n_sec
    start = max(int(start_s or 0), 0)
    end = max(int(end_s), 0) if end_s is not None else n_sec
    if start > end:
        start, end = end, start
    elif start == end:
        end += 1
    return start, min(end, n_sec)


def probe_video(path: str | Path) -> tuple[int, float]:
    """``(n_frames, fps)`` of the first video stream, from the container (no decoding).

    ``n_frames`` is the container's frame count, or the number of video packets when
    the container does not store one (WebM, MKV). ``fps`` is FFmpeg's guessed frame
    rate (what OpenCV 4 reports), 0.0 if unknown.
    """
    import av

    path = _check_file(path)
    with _open(path, av) as container:
        stream = _video_stream(path, container)
        return _frame_count(container, stream), _stream_fps(stream)


def decode_video(
    path: str | Path,
    *,
    rate: int = 1,
    max_frames: int = 12,
    sampling: str = "uniform",
    start_s: float | None = None,
    end_s: float | None = None,
) -> DecodedVideo:
    """Decode the frames that :func:`sample_frame_indices` selects (within the window, if any).

    The frame count comes from the container (or counted packets, see :func:`probe_video`).
    If the decoder runs out of frames before the last wanted one (a truncated or
    damaged file, or a container that overstates its count), the number of frames
    actually decoded becomes ``n_frames``, the selection is recomputed from it and the
    video is decoded once more; so a truncated file yields whatever frames decode.
    A count that is too low is trusted, as OpenCV trusts it (frames past it are never
    candidates).

    Raises :class:`DecodeError` with reason "missing file", "broken symbolic link",
    "not a file: it is a folder", "not a regular file: a <kind>", "empty file", "unreadable",
    "no video stream", "undecodable: <FFmpeg message>" or "no frames decoded".
    """
    import av

    # Validate the options before touching the file, so a typo is reported as such.
    sample_frame_indices(1, 1.0, rate=rate, max_frames=max_frames, sampling=sampling)
    path = _check_file(path)
    with _open(path, av) as container:
        stream = _video_stream(path, container)
        fps = _stream_fps(stream)
        n_frames = _frame_count(container, stream)
    window = {"start_s": start_s, "end_s": end_s}
    opts = {"rate": rate, "max_frames": max_frames, "sampling": sampling, **window}
    wanted = sample_frame_indices(n_frames, fps, **opts)
    frames, n_decoded, error = _decode_frames(path, wanted, av)
    if len(frames) < len(wanted) or len(wanted) == 0:
        if n_decoded == 0:
            raise DecodeError(path, f"undecodable: {error}" if error else "no frames decoded")
        n_frames = n_decoded
        wanted = sample_frame_indices(n_frames, fps, **opts)
        if len(wanted) == 0:
            raise DecodeError(
                path, f"window {start_s}..{end_s} s starts after the end of the video ({n_frames} frames)"
            )
        frames, n_decoded, error = _decode_frames(path, wanted, av)
        if len(frames) < len(wanted):
            raise DecodeError(path, f"undecodable: {error}" if error else "no frames decoded")
    return DecodedVideo(frames=np.stack(frames), frame_index=wanted, fps=fps, n_frames=n_frames)


def _check_file(path: str | Path) -> Path:
    """A regular, non-empty file; otherwise say what the path is (never open a device or a pipe)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DecodeError(path, f"broken symbolic link (to {os.readlink(path)})") from None
        raise DecodeError(path, "missing file") from None
    except NotADirectoryError:
        raise DecodeError(path, "missing file (a parent of it is a file)") from None
    except OSError as e:
        raise DecodeError(path, f"unreadable: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError(path, "not a file: it is a folder")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "character device"
            if stat.S_ISCHR(st.st_mode)
            else "block device"
            if stat.S_ISBLK(st.st_mode)
            else "named pipe"
            if stat.S_ISFIFO(st.st_mode)
            else "socket"
            if stat.S_ISSOCK(st.st_mode)
            else "special file"
        )
        target = f" {os.path.realpath(path)}" if path.is_symlink() else ""
        raise DecodeError(path, f"not a regular file: a {kind}{target}")
    if st.st_size == 0:
        raise DecodeError(path, "empty file")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "unreadable: permission denied")
    return path


def _open(path: Path, av: ModuleType) -> Any:
    try:
        # The timeout stops reads that block, e.g. on a stalled network mount.
        return av.open(str(path), mode="r", timeout=30.0)
    except av.error.FFmpegError as exc:
        raise DecodeError(path, f"undecodable: {_ffmpeg_message(exc)}") from None


def _video_stream(path: Path, container: Any) -> Any:
    if not container.streams.video:
        raise DecodeError(path, "no video stream")
    return container.streams.video[0]


def _stream_fps(stream: Any) -> float:
    # OpenCV 4 reports av_guess_frame_rate (PyAV's guessed_rate); fall back to the
    # average and the base ("r_frame_rate") rate as older OpenCV versions did.
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return 0.0


def _frame_count(container: Any, stream: Any) -> int:
    if stream.frames > 0:
        return int(stream.frames)
    # No stored count (WebM/MKV): one packet per frame, counted without decoding.
    # An overcount is caught later, when the decoder runs out of frames.
    import av

    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size > 0:
                count += 1
    except av.error.FFmpegError:
        pass  # a damaged tail just ends the count
    return count


def _decode_frames(path: Path, wanted: np.ndarray, av: ModuleType) -> tuple[list[np.ndarray], int, str]:
    """Decode sequentially; returns (RGB frames for ``wanted``, frames decoded, FFmpeg error or "")."""
    frames: list[np.ndarray] = []
    n_decoded = 0
    error = ""
    with _open(path, av) as container:
        stream = _video_stream(path, container)
        if len(wanted) == 0:
            # Only the count is needed: decode everything without converting to RGB.
            last = None
        else:
            last = int(wanted[-1])
        position = 0
        try:
            for frame in container.decode(stream):
                if position < len(wanted) and n_decoded == wanted[position]:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    position += 1
                n_decoded += 1
                if last is not None and n_decoded > last:
                    break
        except av.error.FFmpegError as exc:
            error = _ffmpeg_message(exc)
    return frames, n_decoded, error


def _ffmpeg_message(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)
