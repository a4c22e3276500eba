"""wti with packed tokens and its own maxima backward (issue 29 item 4) against the code it replaced.

``Previous*`` below is a verbatim copy of wti's ``masked_softmax``, ``_crop``, ``text_state``,
``video_state`` and ``score_states`` before the change (git 796ce55, vtrbench/heads/wti.py), run on
the same head object. In float64, with ragged masks, captions and videos padded to the cache's
width, several captions per video (the video batch repeats videos, as in training), a caption
without tokens, a video without frames and exact ties (duplicated frames), the new code gives the
same scores and the same gradient for every parameter.
"""

from __future__ import annotations

import pytest
import torch

from vtrbench.factory import create_head, create_loss
from vtrbench.heads._layers import adapt_unit, text_inputs, video_inputs, zero_padding
from vtrbench.heads.wti import PAD_BIAS

D, L, T = 16, 9, 6

# ------------------------------------------------------------------ verbatim copy of the previous code


def previous_masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask``; exactly 0 on masked entries."""
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min).softmax(-1) * mask


def previous_crop(state):
    used = state["mask"].any(0).nonzero()
    keep = int(used.max()) + 1 if used.numel() else 1
    if keep == state["mask"].shape[1]:
        return state
    return {k: v[:, :keep] if v.dim() > 1 else v for k, v in state.items()}


def previous_text_state(self, batch):
    """unit tokens (B, L, D), token weights (B, L) (0 on padding), mask (B, L)."""
    tokens, mask, _ = text_inputs(batch, self.log_logit_scale.dtype)
    weights = previous_masked_softmax(self.text_weight(tokens).squeeze(-1), mask)
    return {"unit": adapt_unit(self.text_adapter, tokens), "weight": weights, "mask": mask}


def previous_video_state(self, batch):
    frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
    if self.temporal is not None:
        self.check_clip_loaded()
        frames = zero_padding(self.temporal(frames, mask), mask)
    weights = previous_masked_softmax(self.video_weight(frames).squeeze(-1), mask)
    return {"unit": adapt_unit(self.video_adapter, frames), "weight": weights, "mask": mask}


def previous_score_states(self, text, video):
    """(Bq, Bv) weighted token-wise interaction."""
    # Items padded to the cache's width (before cropping): DRL's maxima see a 0 for them.
    t_padded, v_padded = ~text["mask"].all(-1), ~video["mask"].all(-1)
    text, video = previous_crop(text), previous_crop(video)
    t_mask, v_mask = text["mask"], video["mask"]
    t_unit, v_unit = text["unit"], video["unit"]
    t_pad = (~t_mask).to(t_unit.dtype) * -PAD_BIAS
    v_pad = (~v_mask).to(v_unit.dtype) * -PAD_BIAS
    t_ext = torch.cat([t_unit, t_pad[..., None], torch.ones_like(t_pad)[..., None]], -1)
    v_ext = torch.cat([v_unit, torch.ones_like(v_pad)[..., None], v_pad[..., None]], -1)
    nq, nl = t_mask.shape
    nv, nt = v_mask.shape
    sim = (t_ext.reshape(nq * nl, -1) @ v_ext.reshape(nv * nt, -1).t()).view(nq, nl, nv, nt)
    best_frame = sim.amax(-1)  # (Bq, L, Bv)
    best_token = sim.amax(1)  # (Bq, Bv, T)
    if self.padding == "drl":
        best_frame = torch.where(v_padded[None, None, :], best_frame.clamp_min(0.0), best_frame)
        best_token = torch.where(t_padded[:, None, None], best_token.clamp_min(0.0), best_token)
    # Padded tokens / frames have weight exactly 0 (their maxima are finite, about -PAD_BIAS);
    # a caption without tokens or a video without frames contributes 0.
    t2v = torch.einsum("qlv,ql->qv", best_frame, text["weight"]) * v_mask.any(-1)[None, :]
    v2t = torch.einsum("qvt,vt->qv", best_token, video["weight"]) * t_mask.any(-1)[:, None]
    return 0.5 * (t2v + v2t)


def previous_score(head, text, video):
    return previous_score_states(head, previous_text_state(head, text), previous_video_state(head, video))


# ------------------------------------------------------------------ inputs


def ragged_batch(seed: int, *, ties: bool, wide: bool = True):
    """7 captions of 4 videos (the video batch repeats videos, one row per caption, as in training),
    prefix masks of every length, a caption without tokens and a video without frames; ``wide``:
    every item padded to the cache width (so cropping removes a column); ``ties``: a video whose
    frames 1 and 2 are the same feature (exact ties in the max over frames)."""
    g = torch.Generator().manual_seed(seed)
    n_tokens = torch.tensor([L, 3, 5, 1, 0, 7, 2]) - int(wide)
    n_frames = torch.tensor([T, 2, 0, 4]) - int(wide)
    n_frames = n_frames.clamp_min(0)
    n_tokens = n_tokens.clamp_min(0)
    token_mask = torch.arange(L)[None] < n_tokens[:, None]
    frame_mask = torch.arange(T)[None] < n_frames[:, None]
    tokens = torch.randn(7, L, D, generator=g, dtype=torch.float64) * token_mask[..., None]
    frames = torch.randn(4, T, D, generator=g, dtype=torch.float64) * frame_mask[..., None]
    if ties:
        frames[0, 2] = frames[0, 1]
    of_video = torch.tensor([0, 1, 0, 3, 2, 1, 0])
    text = {"tokens": tokens, "token_mask": token_mask, "eot": (n_tokens - 1).clamp_min(0)}
    video = {"frames": frames[of_video], "frame_mask": frame_mask[of_video]}
    return text, video


def perturbed(seed: int, **options) -> torch.nn.Module:
    head = create_head("wti", embed_dim=D, **options).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():  # away from the identity start: every parameter matters
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return head


def grads(head, scores: torch.Tensor, upstream: torch.Tensor) -> dict[str, torch.Tensor | None]:
    named = [(n, p) for n, p in head.named_parameters() if p.requires_grad]
    out = torch.autograd.grad((scores * upstream).sum(), [p for _, p in named], allow_unused=True)
    return {n: g for (n, _), g in zip(named, out, strict=True)}


OPTIONS = [
    {},
    {"padding": "drl"},
    {"mlp_layers": 1, "adapter": False},
    {"mlp_layers": 3},
    {"agg": "seqtransf", "layers": 1, "heads": 2},
]


def states_score(head, text, video):
    """The evaluation path: states, then a block (score() is training's whole-batch path)."""
    return head.score_states(head.text_state(text), head.video_state(video))


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("path", ["score", "states"])
def test_packed_wti_equals_the_previous_code_with_gradients(options, ties, wide, path):
    head = perturbed(5, **options).train()
    text, video = ragged_batch(6, ties=ties, wide=wide)
    new = head.score(text, video) if path == "score" else states_score(head, text, video)
    old = previous_score(head, text, video)
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(new.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    new_grads, old_grads = grads(head, new, upstream), grads(head, old, upstream)
    assert new_grads.keys() == old_grads.keys()
    checked = 0
    for name, g_old in old_grads.items():
        g_new = new_grads[name]
        if g_old is None:
            assert g_new is None or not g_new.any(), name
            continue
        torch.testing.assert_close(g_new, g_old, rtol=1e-10, atol=1e-12, msg=name)
        checked += bool(g_old.abs().max() > 1e-6)
    # the adapters, both weight MLPs and (agg=seqtransf) the transformer all receive a gradient
    assert checked >= (2 if options.get("adapter") is False else 4) + (4 if "agg" in options else 0)


def test_packed_wti_training_loss_and_its_gradients_equal_the_previous_code():
    """The training path (logit scale, Dual Softmax Loss, square in-batch block of 7 x 7)."""
    head = perturbed(8).train()
    text, video = ragged_batch(9, ties=True)
    loss_fn = create_loss("dsl")
    new = loss_fn(head.training_logits(text, video)[0])
    old = loss_fn(head.logit_scale() * previous_score(head, text, video))
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-12)
    params = [p for p in head.parameters() if p.requires_grad]
    for g_new, g_old in zip(torch.autograd.grad(new, params), torch.autograd.grad(old, params), strict=True):
        torch.testing.assert_close(g_new, g_old, rtol=1e-10, atol=1e-12)


def test_tied_maxima_split_the_gradient_as_amax_does():
    """Two equal frames tie in every max over frames: each gets half of the gradient (amax's rule),
    so the two frames' gradients are equal; giving all of it to one frame would make them differ."""
    head = perturbed(10, adapter=False).train()
    text, video = ragged_batch(11, ties=True)
    frames = video["frames"].clone().requires_grad_()
    scores = head.score(text, {**video, "frames": frames})
    (g,) = torch.autograd.grad(scores.sum(), [frames])
    rows = [
        i for i in range(frames.shape[0]) if torch.equal(frames[i, 1], frames[i, 2]) and frames[i, 1].any()
    ]
    assert rows  # the tie is in the batch
    for i in rows:
        torch.testing.assert_close(g[i, 1], g[i, 2], rtol=1e-12, atol=1e-14)
        assert g[i, 1].abs().max() > 1e-6


def test_padded_rows_of_a_state_are_zero_and_weightless():
    head = perturbed(12)
    text, video = ragged_batch(13, ties=False)
    with torch.no_grad():
        for state in (head.text_state(text), head.video_state(video)):
            pad = ~state["mask"]
            assert not state["unit"][pad].any() and not state["weight"][pad].any()
            valid = state["mask"].any(-1)
            torch.testing.assert_close(
                state["weight"].sum(-1)[valid], torch.ones(int(valid.sum()), dtype=torch.float64)
            )


def test_wti_trains_under_bfloat16_autocast():
    """Under autocast the block's product runs in bfloat16; the backward multiplies in the product's
    dtype and autograd casts the gradients back: no dtype error, gradients close to float32's."""
    head = create_head("wti", embed_dim=D)
    perturbed_state = perturbed(14).float().state_dict()
    head.load_state_dict(perturbed_state)
    text, video = ragged_batch(15, ties=False)
    text = {**text, "tokens": text["tokens"].float()}
    video = {**video, "frames": video["frames"].float()}
    params = [p for n, p in head.named_parameters() if n != "log_logit_scale"]  # score() has no scale
    ref = torch.autograd.grad(head.score(text, video).sum(), params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = head.score(text, video)
    low = torch.autograd.grad(scores.float().sum(), params)
    scale = max(float(b.abs().max()) for b in ref)
    for a, b in zip(low, ref, strict=True):  # bfloat16 keeps ~3 significant digits
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.02 * scale)


def test_whole_batch_score_is_bitwise_the_states_path():
    """Training's score() keeps the caption rows packed; evaluation unpacks them into states and packs
    them again: the same products on the same rows, so the same bits (float32, MSR-VTT-like ragged)."""
    torch.manual_seed(16)
    head = create_head("wti", embed_dim=64)
    g = torch.Generator().manual_seed(17)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    n, words, frames = 48, 32, 12
    eot = 7 + torch.arange(n) % 15
    token_mask = torch.arange(words)[None] <= eot[:, None]
    frame_mask = torch.arange(frames)[None] < torch.clamp(1 + torch.arange(n) % frames, min=10)[:, None]
    tokens = torch.randn(n, words, 64, generator=g) * token_mask[..., None]
    text = {"tokens": tokens, "token_mask": token_mask, "eot": eot}
    video = {
        "frames": torch.randn(n, frames, 64, generator=g) * frame_mask[..., None],
        "frame_mask": frame_mask,
    }
    with torch.no_grad():
        assert torch.equal(head.score(text, video), states_score(head, text, video))
