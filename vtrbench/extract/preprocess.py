"""Batched CLIP image preprocessing in torch (METHODS.md section 3), no PIL.

Reproduces open_clip's inference transform for OpenAI CLIP models, i.e.
torchvision ``Resize(S, BICUBIC)`` on a PIL image, ``CenterCrop(S)``, ``ToTensor``
and ``Normalize(CLIP_MEAN, CLIP_STD)``, on a whole batch of frames at once, on CPU
or CUDA.

PIL resizes in two separable passes, horizontal then vertical, and stores each
pass as uint8. ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``
uses the same kernel as PIL (a = -0.5, support widened when shrinking) but keeps
floats; a single float pass differs from PIL by up to ~12 grey levels on real
frames because PIL rounds in between. Doing the two passes separately, each
rounded and clamped to [0, 255], matches PIL to within 2 grey levels on a handful
of pixels (tests/test_preprocess.py measures and asserts this).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Frames converted to float at a time: bounds memory for long, high-resolution
# inputs (64 frames of 1080p in float32 would be 1.6 GB) without slowing small ones.
_CHUNK = 16


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(new_height, new_width)`` with the short side ``size``, as torchvision's ``Resize(size)``.

    The long side is ``int(size * long / short)`` (truncated, not rounded).
    """
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of torchvision's ``CenterCrop(size)``: ``int(round((dim - size) / 2))``.

    Python's ``round`` rounds halves to even, so an odd margin of 75 gives 38 and 73 gives 36.
    """
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def preprocess_frames(
    frames: torch.Tensor | np.ndarray,
    image_size: int,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    *,
    out_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Resize (short side, bicubic), center-crop and normalise a batch of RGB frames.

    frames: ``(N, H, W, 3)`` uint8 RGB, a tensor (any device) or an array.
    Returns ``(N, 3, image_size, image_size)`` normalised values, float32 unless
    ``out_dtype`` is given, on ``device`` (default: the device of ``frames``). Frames
    are moved to ``device`` as uint8, which is 4x less to transfer than floats.
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    device = torch.device(device) if device is not None else frames.device
    n, height, width, _ = frames.shape
    new_h, new_w = resized_size(height, width, image_size)
    top, left = center_crop_offsets(new_h, new_w, image_size)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    # (x / 255 - mean) / std folded into one multiply-add.
    scale, shift = 1.0 / (255.0 * std_t), -mean_t / std_t
    out = torch.empty((n, 3, image_size, image_size), dtype=out_dtype or torch.float32, device=device)
    for start in range(0, n, _CHUNK):
        x = frames[start : start + _CHUNK].to(device).permute(0, 3, 1, 2).float()
        # Horizontal pass first, then vertical, each stored as uint8 values: PIL's order.
        if new_w != width:
            x = _bicubic_to_uint8_range(x, (height, new_w))
        if new_h != height:
            x = _bicubic_to_uint8_range(x, (new_h, new_w))
        x = x[:, :, top : top + image_size, left : left + image_size]
        out[start : start + _CHUNK] = x * scale + shift
    return out


def _bicubic_to_uint8_range(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0.0, 255.0)
