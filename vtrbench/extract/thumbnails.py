"""Thumbnail strips: a few of a video's sampled frames, small, as one JPEG per video.

Stored in the cache as ``/videos/thumbnail`` (one base64 string per video, "" when the video
failed to decode): base64 text is what an HTML page embeds as a ``data:`` URI, and as a string
dataset it is covered by the cache's sha256 digests like the ids and captions. Thumbnails are not
features: no head reads them, and ``vtrbench browse`` shows them (see features/README.md).
"""

from __future__ import annotations

import base64
import io

import numpy as np

THUMB_FRAMES = 4  # frames per strip, spread evenly over the sampled frames
THUMB_SIZE = 96  # longer side of each frame, px (smaller frames are not enlarged)
THUMB_QUALITY = 75  # JPEG quality
THUMB_NOTE = (
    f"{THUMB_FRAMES} sampled frames side by side, longer side <= {THUMB_SIZE} px, "
    f"JPEG q{THUMB_QUALITY}, base64"
)


def thumbnail_strip(frames: np.ndarray) -> str:
    """``(T, H, W, 3)`` uint8 RGB frames -> base64 JPEG of up to THUMB_FRAMES of them side by side."""
    from PIL import Image

    t = int(frames.shape[0])
    if t == 0:
        return ""
    picks = np.unique(np.linspace(0, t - 1, min(THUMB_FRAMES, t)).round().astype(int))
    h, w = int(frames.shape[1]), int(frames.shape[2])
    scale = min(1.0, THUMB_SIZE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    strip = Image.new("RGB", (size[0] * len(picks), size[1]))
    for j, i in enumerate(picks):
        img = Image.fromarray(np.ascontiguousarray(frames[i, :, :, :3]), "RGB")
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        strip.paste(img, (j * size[0], 0))
    buf = io.BytesIO()
    strip.save(buf, format="JPEG", quality=THUMB_QUALITY)
    return base64.b64encode(buf.getvalue()).decode("ascii")
