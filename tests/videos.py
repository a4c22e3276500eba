"""Tiny helpers that write real test videos with PyAV from numpy frames.

``numbered_frames(n, h, w)`` makes frames whose index survives lossy H.264
compression: the frame is a 2 x 4 grid of flat grey blocks whose levels spell the
index in base 4 (8 digits, so up to 65,536 frames); ``read_frame_numbers`` reads
the indices back from decoded frames. ``write_video`` encodes frames at any
frame rate, including NTSC's 30000/1001.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# Grey levels 64 apart and away from 0/255, so that H.264's limited-range YUV and
# quantisation noise (a few levels on flat blocks) never move a block to a
# neighbouring digit.
_LEVELS = np.array([32, 96, 160, 224], dtype=np.uint8)
_ROWS, _COLS = 2, 4
_DIGITS = _ROWS * _COLS

# Lossless codecs store RGB directly; everything else gets the usual 4:2:0 layout.
_PIX_FMT = {"libx264rgb": "rgb24", "ffv1": "bgr0", "png": "rgb24"}


def numbered_frames(n: int, h: int, w: int) -> np.ndarray:
    """Frames ``(n, h, w, 3)`` uint8 where frame ``i`` encodes ``i`` in its block levels.

    Use ``h >= 32`` and ``w >= 64`` (blocks of at least 16 x 16 pixels) for lossy codecs.
    """
    if n > 4**_DIGITS:
        raise ValueError(f"numbered_frames encodes at most {4**_DIGITS} frames, got {n}")
    frames = np.full((n, h, w, 3), 128, dtype=np.uint8)
    bh, bw = h // _ROWS, w // _COLS
    for i in range(n):
        for d in range(_DIGITS):
            r, c = divmod(d, _COLS)
            frames[i, r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = _LEVELS[(i >> (2 * d)) & 3]
    return frames


def read_frame_numbers(frames: np.ndarray) -> np.ndarray:
    """Indices ``(n,)`` spelled by frames ``(n, h, w, 3)`` made with :func:`numbered_frames`."""
    frames = np.asarray(frames, dtype=np.float64)
    _, h, w, _ = frames.shape
    bh, bw = h // _ROWS, w // _COLS
    numbers = np.zeros(len(frames), dtype=np.int64)
    for d in range(_DIGITS):
        r, c = divmod(d, _COLS)
        # The block centre only: edges pick up ringing from the neighbouring block.
        block = frames[:, r * bh + bh // 4 : r * bh + 3 * bh // 4, c * bw + bw // 4 : c * bw + 3 * bw // 4]
        level = block.mean(axis=(1, 2, 3))
        digit = np.abs(level[:, None] - _LEVELS[None, :].astype(np.float64)).argmin(axis=1)
        numbers += digit.astype(np.int64) << (2 * d)
    return numbers


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float | Fraction,
    codec: str = "libx264",
    *,
    faststart: bool = False,
) -> Path:
    """Encode RGB frames ``(N, H, W, 3)`` uint8 into ``path`` at ``fps`` (exact if a Fraction).

    ``codec``: ``libx264`` (lossy, mp4), ``libx264rgb`` (lossless at crf 0), ``ffv1``
    (lossless, use a .mkv path), ``mpeg4``, ``libvpx-vp9`` (.webm). ``faststart`` puts the
    mp4 index first, so that a truncated copy still opens.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=container_options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = _PIX_FMT.get(codec, "yuv420p")
        if codec in ("libx264", "libx264rgb"):
            stream.options = {"crf": "0" if codec == "libx264rgb" else "18"}
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
