"""Batched tensor preprocessing against open_clip's own PIL preprocess (METHODS.md section 3).

``open_clip.image_transform(S, is_train=False)`` is the transform that
``open_clip.create_model_and_transforms('ViT-B-32', pretrained=None)`` returns for
S = 224 (checked: same Resize(224, bicubic), CenterCrop, Normalize with the OpenAI
mean/std); it is used here because building the model costs ~3 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vtrbench.extract.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    center_crop_offsets,
    preprocess_frames,
    resized_size,
)

# ../shared/data next to the repository, else the machine's copy (worktrees live elsewhere).
REAL_VIDEOS = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[3] / "shared" / "data" / "videos",
            Path("/work/shared/data/videos"),
        )
        if p.is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "videos",
)

# Tolerance against open_clip's PIL path, in normalised units (one grey level is
# 1 / 255 / std, i.e. 0.0142 to 0.0150). Measured by running _compare_with_open_clip
# on the frame sets below at 224 and 64: max abs 0.030 (2 grey levels, on a few
# pixels; real MSR-VTT frames and upscaled noise at 224), 0.0150 elsewhere; mean abs
# 5e-7 to 1.5e-5. A single float bicubic pass without PIL's intermediate uint8
# rounding measured max 0.70 / mean 6e-3 and fails both bounds.
MAX_ABS_TOL = 0.06  # 4 grey levels
MEAN_ABS_TOL = 2e-4


def _smooth_frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Natural-looking frames: smooth colour waves plus mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = np.zeros((h, w, 3))
        for c in range(3):
            fy, fx = rng.uniform(0.5, 6, 2) / np.array([h, w])
            phase = rng.uniform(0, 2 * np.pi)
            img[..., c] = 128 + 90 * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        img += rng.normal(0, 12, img.shape)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # These are small tensors: one thread is faster than two contended ones.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synthetic_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "smooth 240x320": _smooth_frames(3, 240, 320, seed=1),
        "smooth portrait 300x170": _smooth_frames(3, 300, 170, seed=2),
        "noise 181x263": rng.integers(0, 256, (3, 181, 263, 3), dtype=np.uint8),
        "noise upscaled 50x70": rng.integers(0, 256, (3, 50, 70, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    paths = sorted(REAL_VIDEOS.glob("*.mp4")) if REAL_VIDEOS.is_dir() else []
    if not paths:
        pytest.skip(f"no videos in {REAL_VIDEOS}")
    pytest.importorskip("av")
    from vtrbench.extract.decode import decode_video

    return np.concatenate([decode_video(p).frames for p in paths])


def _compare_with_open_clip(name: str, frames: np.ndarray, image_size: int) -> tuple[float, float]:
    open_clip = pytest.importorskip("open_clip")
    from PIL import Image

    transform = open_clip.image_transform(image_size, is_train=False)
    ref = torch.stack([transform(Image.fromarray(f)) for f in frames])
    ours = preprocess_frames(frames, image_size)
    assert ours.shape == ref.shape == (len(frames), 3, image_size, image_size)
    diff = (ours - ref).abs()
    max_abs, mean_abs = diff.max().item(), diff.mean().item()
    measured = f"{name} at {image_size}: max abs {max_abs:.4f}, mean abs {mean_abs:.2e}"
    assert max_abs < MAX_ABS_TOL, measured
    assert mean_abs < MEAN_ABS_TOL, measured
    return max_abs, mean_abs


@pytest.mark.parametrize("image_size", [224, 64])
def test_matches_open_clip_on_synthetic_frames(
    synthetic_sets: dict[str, np.ndarray], image_size: int
) -> None:
    for name, frames in synthetic_sets.items():
        _compare_with_open_clip(name, frames, image_size)


@pytest.mark.parametrize("image_size", [224, 64])
def test_matches_open_clip_on_real_frames(real_frames: np.ndarray, image_size: int) -> None:
    assert real_frames.shape == (23, 240, 320, 3)  # 11 + 12 sampled frames of the two clips
    _compare_with_open_clip("real MSR-VTT frames", real_frames, image_size)


@pytest.mark.parametrize(
    "h, w",
    [(240, 320), (300, 170), (224, 224), (100, 100), (64, 1000), (1000, 64), (481, 640), (31, 37)],
)
def test_shape_and_geometry_match_torchvision(h: int, w: int) -> None:
    from PIL import Image
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    size = 64
    # torchvision's Resize decides the long side: read it off a resized PIL image.
    resized = Resize(size, interpolation=InterpolationMode.BICUBIC)(Image.new("RGB", (w, h)))
    assert resized_size(h, w, size) == (resized.height, resized.width)
    # CenterCrop's offsets: crop an image whose pixels hold their own (row, column).
    nh, nw = resized.height, resized.width
    coords = np.zeros((nh, nw, 3), dtype=np.uint8)
    coords[..., 0] = np.arange(nh)[:, None] % 256
    coords[..., 1] = np.arange(nw)[None, :] % 256
    crop = np.asarray(CenterCrop(size)(Image.fromarray(coords)))
    top, left = center_crop_offsets(nh, nw, size)
    assert (top % 256, left % 256) == (crop[0, 0, 0], crop[0, 0, 1])

    frames = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    out = preprocess_frames(frames, size)
    assert out.shape == (2, 3, size, size) and out.dtype == torch.float32


def test_normalisation_of_flat_frames() -> None:
    levels = [0, 37, 128, 255]
    frames = np.stack([np.full((50, 80, 3), v, dtype=np.uint8) for v in levels])
    out = preprocess_frames(frames, 32)
    for i, v in enumerate(levels):
        for c in range(3):
            expected = (v / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]
            torch.testing.assert_close(out[i, c], torch.full((32, 32), expected), atol=1e-5, rtol=0)


def test_custom_mean_std_and_dtype_and_inputs() -> None:
    frames = np.random.default_rng(3).integers(0, 256, (5, 90, 120, 3), dtype=np.uint8)
    base = preprocess_frames(frames, 48)
    # Numpy and tensor inputs, and a non-contiguous view, give the same result.
    torch.testing.assert_close(preprocess_frames(torch.from_numpy(frames), 48), base, atol=0, rtol=0)
    flipped = frames[:, :, ::-1]
    torch.testing.assert_close(
        preprocess_frames(flipped, 48), preprocess_frames(np.ascontiguousarray(flipped), 48), atol=0, rtol=0
    )
    half = preprocess_frames(frames, 48, out_dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), base, atol=4e-3, rtol=0)
    plain = preprocess_frames(frames, 48, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert 0.0 <= plain.min() and plain.max() <= 1.0
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close((plain - mean) / std, base, atol=1e-5, rtol=0)


def test_chunked_batches_equal_one_by_one() -> None:
    # More frames than one internal chunk: every frame must come out as if processed alone.
    frames = np.random.default_rng(4).integers(0, 256, (37, 40, 60, 3), dtype=np.uint8)
    batch = preprocess_frames(frames, 32)
    single = torch.cat([preprocess_frames(frames[i : i + 1], 32) for i in range(len(frames))])
    torch.testing.assert_close(batch, single, atol=0, rtol=0)


def test_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(np.zeros((2, 8, 8, 3), dtype=np.float32), 8)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        preprocess_frames(np.zeros((2, 3, 8, 8), dtype=np.uint8), 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    frames = _smooth_frames(6, 240, 320, seed=5)
    cpu = preprocess_frames(frames, 224)
    gpu = preprocess_frames(torch.from_numpy(frames).cuda(), 224)
    assert gpu.is_cuda
    moved = preprocess_frames(frames, 224, device="cuda", out_dtype=torch.float16)
    assert moved.is_cuda and moved.dtype == torch.float16
    diff = (gpu.cpu() - cpu).abs()
    assert diff.max() < MAX_ABS_TOL and diff.mean() < MEAN_ABS_TOL
