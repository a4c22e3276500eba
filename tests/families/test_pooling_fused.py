"""The fused frame pooling of issue 29 item 4 (meanp, and every head that pools unit frames) against
the code it replaced.

``previous_*`` is a verbatim copy of ``_layers.masked_mean`` / ``mean_of_unit_frames`` /
``zero_padding`` before the change (git 796ce55). In float64 the new pooling is the same function,
values and gradients; in float32 it differs in the last bits only (a reassociated sum), measured here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vtrbench.factory import create_head
from vtrbench.heads._layers import mean_of_unit_frames, video_inputs, zero_padding

B, T, D = 9, 7, 24


def previous_masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), mask (B, N) → (B, D); a row with no valid entry gives 0."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def previous_mean_of_unit_frames(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frames (B, T, D), mask (B, T) → (B, D): unit-norm masked mean of unit-norm frames."""
    return F.normalize(previous_masked_mean(F.normalize(frames, dim=-1), mask), dim=-1)


def previous_zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) with mask (B, N) bool → x with every masked-out entry set to 0."""
    return x.masked_fill(~mask.reshape(*mask.shape, *([1] * (x.dim() - mask.dim()))), 0.0)


def ragged(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames with every count of valid frames 0..T (a video without frames included), padding zeroed."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None] < (torch.arange(B) % (T + 1))[:, None]
    frames = torch.randn(B, T, D, generator=g, dtype=dtype) * 3.0 + 0.5
    return frames * mask[..., None], mask


def test_pooling_equals_the_previous_code_in_float64_with_gradients():
    frames, mask = ragged(torch.float64)
    frames.requires_grad_()
    new, old = mean_of_unit_frames(frames, mask), previous_mean_of_unit_frames(frames, mask)
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-14)
    assert not new[0].any() and not old[0].any()  # the video without frames pools to 0 in both
    w = torch.randn(new.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (g_new,) = torch.autograd.grad((new * w).sum(), frames)
    (g_old,) = torch.autograd.grad((old * w).sum(), frames)
    torch.testing.assert_close(g_new, g_old, rtol=1e-10, atol=1e-14)


def test_pooling_in_float32_differs_in_the_last_bits_only():
    """The reassociated sum moves float32 results by a few ulps of a unit vector's entries."""
    frames, mask = ragged(torch.float32, seed=2)
    diff = (mean_of_unit_frames(frames, mask) - previous_mean_of_unit_frames(frames, mask)).abs().max()
    assert float(diff) < 1e-6


def test_pooling_stays_in_the_frames_dtype_under_autocast():
    """Autocast would run the batched product in bfloat16; the pooling keeps the frames' dtype, as the
    elementwise code did: under CPU bfloat16 autocast the result is bitwise the float32 one."""
    frames, mask = ragged(torch.float32, seed=3)
    plain = mean_of_unit_frames(frames, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = mean_of_unit_frames(frames, mask)
    assert under.dtype == torch.float32 and torch.equal(under, plain)


def test_pooling_runs_on_a_device_without_autocast():
    frames, mask = ragged(torch.float32)
    out = mean_of_unit_frames(frames.to("meta"), mask.to("meta"))
    assert out.shape == (B, D) and out.device.type == "meta"


def test_zero_padding_is_bitwise_the_previous_code_even_on_nan_garbage():
    frames, mask = ragged(torch.float32, seed=4)
    garbage = torch.where(mask[..., None], frames, torch.full_like(frames, float("nan")))
    garbage[~mask] = garbage[~mask].nan_to_num(nan=float("nan"), posinf=1e30)  # NaN and finite garbage
    garbage[1, -1, 0] = float("inf")
    assert torch.equal(zero_padding(garbage, mask), previous_zero_padding(garbage, mask))


@pytest.mark.parametrize("name", ["meanp", "zeroshot", "seqlstm", "seqtransf", "camoe"])
def test_heads_that_pool_frames_equal_the_previous_pooling_in_float64(name, monkeypatch):
    """Each head's video embedding and its parameters' gradients, with today's pooling and with the
    previous one patched in (float64, perturbed parameters)."""
    import vtrbench.heads.camoe as camoe_mod
    import vtrbench.heads.meanp as meanp_mod
    import vtrbench.heads.seqlstm as seqlstm_mod
    import vtrbench.heads.seqtransf as seqtransf_mod
    import vtrbench.heads.zeroshot as zeroshot_mod

    modules = {
        "meanp": meanp_mod,
        "zeroshot": zeroshot_mod,
        "seqlstm": seqlstm_mod,
        "seqtransf": seqtransf_mod,
        "camoe": camoe_mod,
    }
    torch.manual_seed(5)
    head = create_head(name, embed_dim=D).double()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    frames, mask = ragged(torch.float64, seed=7)
    video = {"frames": frames, "frame_mask": mask}
    params = [p for p in head.parameters() if p.requires_grad and p is not head.log_logit_scale]
    new = head.encode_video(video)
    monkeypatch.setattr(modules[name], "mean_of_unit_frames", previous_mean_of_unit_frames)
    old = head.encode_video(video)
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-14)
    if params:
        w = torch.randn(new.shape, generator=g, dtype=torch.float64)
        g_new = torch.autograd.grad((new * w).sum(), params, allow_unused=True)
        g_old = torch.autograd.grad((old * w).sum(), params, allow_unused=True)
        used = [(a, b) for a, b in zip(g_new, g_old, strict=True) if b is not None]
        assert used and all(a is not None for a, _ in used)  # the video side's parameters
        for a, b in used:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_video_inputs_zero_padding_keeps_the_dtype_cast():
    frames, mask = ragged(torch.float32)
    out, m = video_inputs({"frames": frames.half(), "frame_mask": mask.to(torch.uint8)}, torch.float32)
    assert out.dtype == torch.float32 and m.dtype == torch.bool
    assert torch.equal(out, previous_zero_padding(frames.half().float(), mask))
