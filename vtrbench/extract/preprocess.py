"""Batched CLIP image preprocessing in torch (METHODS.md section 3), no PIL.

Reproduces open_clip's inference transform (``open_clip.image_transform(S,
is_train=False, ...)``) on a whole batch of frames at once, on CPU or CUDA, for
each of its resize modes and interpolations:

- ``shortest`` (OpenAI's): torchvision ``Resize(S)`` of the short side, ``CenterCrop(S)``;
- ``squash``: ``Resize((S, S))``, the aspect ratio is not kept (SigLIP, DFN, CLIPA, PE);
- ``longest``: the long side to S (``round``), then centred and padded with ``fill_color``;

with ``bicubic`` or ``bilinear`` interpolation, then ``ToTensor`` and ``Normalize(mean, std)``.
Which values a model needs is resolved in :mod:`vtrbench.extract.preprocess_cfg`.

PIL resizes in two separable passes, horizontal then vertical, and stores each
pass as uint8. ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``
uses the same kernel as PIL (a = -0.5, support widened when shrinking) but keeps
floats; a single float pass differs from PIL by up to ~12 grey levels on real
frames because PIL rounds in between. Doing the two passes separately, each
rounded and clamped to [0, 255], matches PIL to within 2 grey levels on a handful
of pixels (tests/extract/test_preprocess.py measures and asserts this).

The order of the two passes is Pillow's choice, and recent Pillow (measured: 13.0)
runs the vertical pass first for some geometries and the horizontal one for others,
by a rule it does not document; the wrong order costs ~0.2 grey levels on average
(1 level on ~15 % of pixels). So when both passes are needed, the order is learnt
once per (input size, output size, filter) from the installed Pillow on a random
probe image (:func:`vertical_first`); without Pillow, horizontal first (Pillow's
historic order).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INTERPOLATIONS = ("bicubic", "bilinear")
RESIZE_MODES = ("shortest", "longest", "squash")

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


def longest_resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(new_height, new_width)`` of open_clip's ``ResizeKeepRatio(size, longest=1)`` at inference.

    The scale is the larger of ``height / size`` and ``width / size``; each side is
    ``round(side / scale)`` (Python's round, halves to even).
    """
    ratio = max(height / size, width / size)
    return round(height / ratio), round(width / ratio)


def pad_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """``(top, left)`` padding of open_clip's ``center_crop_or_pad`` for an image no larger than ``size``."""
    return (size - height) // 2, (size - width) // 2


def preprocess_frames(
    frames: torch.Tensor | np.ndarray,
    image_size: int,
    mean: tuple[float, float, float] = CLIP_MEAN,
    std: tuple[float, float, float] = CLIP_STD,
    *,
    interpolation: str = "bicubic",
    resize_mode: str = "shortest",
    fill_color: int = 0,
    out_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Resize, crop or pad, and normalise a batch of RGB frames as open_clip's inference transform.

    frames: ``(N, H, W, 3)`` uint8 RGB, a tensor (any device) or an array.
    Returns ``(N, 3, image_size, image_size)`` normalised values, float32 unless
    ``out_dtype`` is given, on ``device`` (default: the device of ``frames``). Frames
    are moved to ``device`` as uint8, which is 4x less to transfer than floats.
    The defaults are OpenAI CLIP's (short side, bicubic, OpenAI mean/std).
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    device = torch.device(device) if device is not None else frames.device
    n, height, width, _ = frames.shape
    pad_top = pad_left = 0
    if resize_mode == "squash":
        new_h, new_w = image_size, image_size
        top = left = 0
    elif resize_mode == "longest":
        new_h, new_w = longest_resized_size(height, width, image_size)
        pad_top, pad_left = pad_offsets(new_h, new_w, image_size)
        top = left = 0
    else:
        new_h, new_w = resized_size(height, width, image_size)
        top, left = center_crop_offsets(new_h, new_w, image_size)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    # (x / 255 - mean) / std folded into one multiply-add.
    scale, shift = 1.0 / (255.0 * std_t), -mean_t / std_t
    out = torch.empty((n, 3, image_size, image_size), dtype=out_dtype or torch.float32, device=device)
    for start in range(0, n, _CHUNK):
        x = frames[start : start + _CHUNK].to(device).permute(0, 3, 1, 2).float()
        # Two separable passes, each stored as uint8 values, in the installed Pillow's order.
        x = _resize_like_pil(x, height, width, new_h, new_w, interpolation)
        if resize_mode == "longest" and (new_h, new_w) != (image_size, image_size):
            canvas = torch.full(
                (x.shape[0], 3, image_size, image_size), float(fill_color), dtype=x.dtype, device=x.device
            )
            canvas[:, :, pad_top : pad_top + new_h, pad_left : pad_left + new_w] = x
            x = canvas
        x = x[:, :, top : top + image_size, left : left + image_size]
        out[start : start + _CHUNK] = x * scale + shift
    return out


def _resize_like_pil(
    x: torch.Tensor, height: int, width: int, new_h: int, new_w: int, interpolation: str
) -> torch.Tensor:
    if new_w != width and new_h != height and vertical_first(height, width, new_h, new_w, interpolation):
        x = _resize_to_uint8_range(x, (new_h, width), interpolation)
        return _resize_to_uint8_range(x, (new_h, new_w), interpolation)
    if new_w != width:
        x = _resize_to_uint8_range(x, (height, new_w), interpolation)
    if new_h != height:
        x = _resize_to_uint8_range(x, (new_h, new_w), interpolation)
    return x


@lru_cache(maxsize=256)
def vertical_first(height: int, width: int, new_h: int, new_w: int, interpolation: str) -> bool:
    """Whether the installed Pillow resizes ``(height, width) -> (new_h, new_w)`` vertical pass first.

    Decided by resizing one seeded random RGB probe with Pillow and keeping the pass
    order whose result is closer; False (horizontal first) when Pillow is missing.
    """
    try:
        from PIL import Image
    except ImportError:
        return False
    probe = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pil_filter = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    ref = torch.from_numpy(np.array(Image.fromarray(probe).resize((new_w, new_h), pil_filter)))
    ref = ref.permute(2, 0, 1)[None].float()
    x = torch.from_numpy(probe).permute(2, 0, 1)[None].float()
    horizontal = _resize_to_uint8_range(
        _resize_to_uint8_range(x, (height, new_w), interpolation), (new_h, new_w), interpolation
    )
    vertical = _resize_to_uint8_range(
        _resize_to_uint8_range(x, (new_h, width), interpolation), (new_h, new_w), interpolation
    )
    return bool((vertical - ref).abs().sum() < (horizontal - ref).abs().sum())


def _resize_to_uint8_range(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    # antialias=True is torch's port of PIL's resampling (kernel support widened when shrinking).
    x = F.interpolate(x, size=size, mode=interpolation, antialias=True, align_corners=False)
    # PIL rounds halves up (adds 0.5 in fixed point, then truncates); torch.round would round to even.
    return x.add_(0.5).floor_().clamp_(0.0, 255.0)
