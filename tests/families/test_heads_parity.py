"""Parity of the CLIP4Clip / X-Pool / DRL heads with their reference modules.

Each ``Ref*`` class below is an independent re-implementation of the forward pass of the
reference code (read from the public repositories; written here, not copied), in the
reference's own layout: CLIP4Clip's ``modules/modeling.py`` (``_loose_similarity`` with
``seqLSTM``; ``_cross_similarity``) and ``modules/module_cross.py`` (``CrossModel``: CLIP
residual attention blocks on ``nn.MultiheadAttention`` in LND layout with an additive
``-1e6`` mask, position embeddings, ``CrossPooler``), X-Pool's ``modules/transformer.py``
(``Transformer``, ``MultiHeadedAttention``) with ``modules/metrics.py``
(``sim_matrix_training``), and DRL's ``tvr/models/modeling.py`` (``wti_interaction``).
Random weights are copied from the reference into the vtrbench head and both score the same
random inputs; tolerance: float32, rtol 1e-5 / atol 1e-5 (1e-4 on logit-scaled values).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vtrbench.factory import create_head

B, T, L, D = 5, 6, 7, 32


def random_inputs(seed: int, *, full: bool = False, offset: float = 0.0):
    """Text tokens (B, L, D), EOT index, token mask; frames (B, T, D), frame mask (prefix masks)."""
    g = torch.Generator().manual_seed(seed)
    n_tokens = torch.full((B,), L) if full else torch.tensor([L, 3, 5, 2, 6])
    n_frames = torch.full((B,), T) if full else torch.tensor([T, 1, 4, 2, 5])
    common = torch.randn(D, generator=g) * offset  # a shared direction: makes every cosine positive
    tokens = torch.randn(B, L, D, generator=g) + common
    frames = torch.randn(B, T, D, generator=g) + common
    token_mask = torch.arange(L)[None] < n_tokens[:, None]
    frame_mask = torch.arange(T)[None] < n_frames[:, None]
    tokens = tokens * token_mask[..., None]
    frames = frames * frame_mask[..., None]
    return tokens, n_tokens - 1, token_mask, frames, frame_mask


def batches(tokens, eot, token_mask, frames, frame_mask):
    text = {"tokens": tokens, "token_mask": token_mask, "eot": eot}
    video = {"frames": frames, "frame_mask": frame_mask}
    return text, video


def perturb(module: nn.Module, seed: int, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# ------------------------------------------------------------------ CLIP4Clip seqLSTM


class RefSeqLSTM(nn.Module):
    """CLIP4Clip ``_loose_similarity`` with ``sim_header == "seqLSTM"`` (eval mode, one GPU)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lstm_visual = nn.LSTM(input_size=width, hidden_size=width, batch_first=True, num_layers=1)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))

    def forward(self, sequence_output, visual_output, video_mask):
        original = visual_output
        packed = pack_padded_sequence(
            visual_output, video_mask.sum(-1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm_visual(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)
        out = torch.cat((out, original[:, out.size(1) :, ...].contiguous()), dim=1)
        visual_output = out + original
        visual_output = visual_output / visual_output.norm(dim=-1, keepdim=True)
        m = video_mask.float().unsqueeze(-1)
        s = m.sum(1)
        s[s == 0.0] = 1.0
        visual_output = (visual_output * m).sum(1) / s
        visual_output = visual_output / visual_output.norm(dim=-1, keepdim=True)
        sequence_output = sequence_output.squeeze(1)
        sequence_output = sequence_output / sequence_output.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * sequence_output @ visual_output.t()


@pytest.mark.parametrize("adapter", [True, False])
def test_seqlstm_matches_clip4clip(adapter):
    tokens, eot, token_mask, frames, frame_mask = random_inputs(0)
    torch.manual_seed(1)
    ref = RefSeqLSTM(D).eval()
    head = create_head("seqlstm", embed_dim=D, adapter=adapter).eval()
    head.lstm.load_state_dict(ref.lstm_visual.state_dict())
    with torch.no_grad():
        # In CLIP4Clip a padded frame is CLIP's feature of a blank image, never exactly zero
        # (a zero one would normalise to NaN before the masked mean); any value will do.
        ref_frames = torch.where(frame_mask[..., None], frames, torch.ones_like(frames))
        want = ref(tokens[torch.arange(B), eot][:, None], ref_frames, frame_mask)
        got, _ = head.training_logits(*batches(tokens, eot, token_mask, frames, frame_mask))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ CLIP4Clip tightTransf


class RefQuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class RefLayerNorm(nn.Module):
    """CLIP4Clip's until_module.LayerNorm (TF style: epsilon inside the square root, 1e-12), which
    module_cross uses in the residual blocks and in CrossPooler."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + 1e-12)) + self.bias


class RefResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_head: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = RefLayerNorm(d_model)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(d_model, d_model * 4)),
                    ("gelu", RefQuickGELU()),
                    ("c_proj", nn.Linear(d_model * 4, d_model)),
                ]
            )
        )
        self.ln_2 = RefLayerNorm(d_model)
        self.n_head = n_head

    def forward(self, x, attn_mask):
        # As CLIP4Clip: the mask is tiled head-major, while nn.MultiheadAttention reads a
        # (N * heads) mask batch-major; the two agree for one head or identical masks.
        mask = attn_mask.repeat(self.n_head, 1, 1)
        x = x + self.attn(*(self.ln_1(x),) * 3, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class RefCrossModel(nn.Module):
    """module_cross.CrossModel + CLIP4Clip's similarity_dense, scored as in _cross_similarity."""

    def __init__(self, width: int, layers: int, heads: int, max_positions: int = 77) -> None:
        super().__init__()
        self.position_embeddings = nn.Embedding(max_positions, width)
        self.resblocks = nn.ModuleList(RefResidualAttentionBlock(width, heads) for _ in range(layers))
        self.ln_pool = RefLayerNorm(width)
        self.dense = nn.Linear(width, width)
        self.activation = RefQuickGELU()
        self.similarity_dense = nn.Linear(width, 1)

    def cross(self, concat_input, attention_mask):
        ext = (1.0 - attention_mask.float().unsqueeze(1)) * -1000000.0
        ext = ext.expand(-1, attention_mask.size(1), -1)
        pos = torch.arange(concat_input.size(1)).unsqueeze(0).expand(concat_input.size(0), -1)
        x = (concat_input + self.position_embeddings(pos)).permute(1, 0, 2)  # NLD -> LND
        for block in self.resblocks:
            x = block(x, ext)
        x = x.permute(1, 0, 2)
        pooled = self.activation(self.dense(self.ln_pool(x)[:, 0]))
        return pooled

    def forward(self, sequence_output, attention_mask, visual_output, video_mask):
        """Every text against every video: (B_text, B_visual) logits."""
        b_text, s_text, h = sequence_output.shape
        b_visual, s_visual, _ = visual_output.shape
        seq = sequence_output.unsqueeze(1).repeat(1, b_visual, 1, 1).view(-1, s_text, h)
        seq_mask = attention_mask.unsqueeze(1).repeat(1, b_visual, 1).view(-1, s_text)
        vis = visual_output.unsqueeze(0).repeat(b_text, 1, 1, 1).view(-1, s_visual, h)
        vis_mask = video_mask.unsqueeze(0).repeat(b_text, 1, 1).view(-1, s_visual)
        pooled = self.cross(torch.cat((seq, vis), dim=1), torch.cat((seq_mask, vis_mask), dim=1))
        return self.similarity_dense(pooled).squeeze(-1).view(b_text, b_visual)


def copy_cross_weights(ref: RefCrossModel, head, text_len: int) -> None:
    """``text_len``: the caption length the reference sees (its frames follow at that position)."""
    with torch.no_grad():
        pos = ref.position_embeddings.weight
        head.position[:text_len] = pos[:text_len]
        # vtrbench's frames start after the EOT (text="eot") or after a fixed 77-token slot
        start = 1 if head.text == "eot" else 77
        head.position[start : start + T] = pos[text_len : text_len + T]
        for rb, vb in zip(ref.resblocks, head.transformer.blocks, strict=True):
            vb.attn.qkv.weight.copy_(rb.attn.in_proj_weight)
            vb.attn.qkv.bias.copy_(rb.attn.in_proj_bias)
            vb.attn.out.load_state_dict(rb.attn.out_proj.state_dict())
            vb.ln_1.load_state_dict(rb.ln_1.state_dict())
            vb.ln_2.load_state_dict(rb.ln_2.state_dict())
            vb.mlp[0].load_state_dict(rb.mlp.c_fc.state_dict())
            vb.mlp[2].load_state_dict(rb.mlp.c_proj.state_dict())
        head.pool_norm.load_state_dict(ref.ln_pool.state_dict())
        head.pool_dense.load_state_dict(ref.dense.state_dict())
        head.score_head.load_state_dict(ref.similarity_dense.state_dict())


@pytest.mark.parametrize(
    ("text", "heads", "full"),
    [("eot", 1, False), ("tokens", 1, False), ("eot", 4, True), ("tokens", 4, True)],
)
def test_tighttransf_matches_clip4clip_cross_similarity(text, heads, full):
    tokens, eot, token_mask, frames, frame_mask = random_inputs(2, full=full)
    inputs = batches(tokens, eot, token_mask, frames, frame_mask)
    torch.manual_seed(3)
    ref = RefCrossModel(D, layers=2, heads=heads).eval()
    perturb(ref, 4)  # LayerNorms and biases off their defaults too
    head = create_head("tighttransf", embed_dim=D, text=text, layers=2, heads=heads).eval()
    copy_cross_weights(ref, head, 1 if text == "eot" else L)
    with torch.no_grad():
        if text == "eot":  # CLIP4Clip: the text side is the EOT feature alone, mask ones(B, 1)
            want = ref(tokens[torch.arange(B), eot][:, None], torch.ones(B, 1), frames, frame_mask)
        else:
            want = ref(tokens, token_mask, frames, frame_mask)
        got, _ = head.training_logits(*inputs)
        assert float(head.logit_scale()) == 1.0  # CLIP4Clip uses the score as the logit
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        untyped = create_head(
            "tighttransf", embed_dim=D, text=text, layers=2, heads=heads, types=False
        ).eval()
        copy_cross_weights(ref, untyped, 1 if text == "eot" else L)
        torch.testing.assert_close(untyped.training_logits(*inputs)[0], want, rtol=1e-5, atol=1e-5)
        # The type embeddings (vtrbench's addition, zero at initialisation) do change the score.
        head.type_embedding.normal_(std=0.5)
        assert (head.training_logits(*inputs)[0] - want).abs().max() > 1e-4


def test_clip4clip_mask_tiling_differs_with_several_heads_and_ragged_masks():
    """A finding, not a vtrbench choice: CLIP4Clip tiles its (N, S, S) mask head-major for a
    batch-major nn.MultiheadAttention, so with several heads and videos of different lengths
    a pair is attended with another pair's mask; vtrbench applies each pair's own mask."""
    tokens, eot, token_mask, frames, frame_mask = random_inputs(2)
    torch.manual_seed(3)
    ref = RefCrossModel(D, layers=1, heads=4).eval()
    head = create_head("tighttransf", embed_dim=D, layers=1, heads=4).eval()
    copy_cross_weights(ref, head, 1)
    with torch.no_grad():
        want = ref(tokens[torch.arange(B), eot][:, None], torch.ones(B, 1), frames, frame_mask)
        got = head.score(*batches(tokens, eot, token_mask, frames, frame_mask))
        # Per pair, with a batch of one pair, the tiling is right: vtrbench equals the reference.
        for i in range(B):
            for j in range(B):
                one = ref(
                    tokens[i, eot[i]][None, None], torch.ones(1, 1), frames[j : j + 1], frame_mask[j : j + 1]
                )
                torch.testing.assert_close(got[i, j], one[0, 0], rtol=1e-5, atol=1e-5)
    assert (got - want).abs().max() > 1e-4


# ------------------------------------------------------------------ X-Pool


class RefXPool(nn.Module):
    """X-Pool modules/transformer.Transformer (eval mode) + sim_matrix_training ('transformer')."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            nn.Linear(embed_dim, embed_dim) for _ in range(4)
        )
        self.linear_proj = nn.Linear(embed_dim, embed_dim)
        self.layer_norm1 = nn.LayerNorm(embed_dim)
        self.layer_norm2 = nn.LayerNorm(embed_dim)
        self.layer_norm3 = nn.LayerNorm(embed_dim)

    def attention(self, text_embeds, video_embeds):
        n_t = text_embeds.shape[0]
        q = self.q_proj(text_embeds).reshape(n_t, self.num_heads, self.head_dim).permute(1, 2, 0)
        n_v, n_f, _ = video_embeds.shape
        k = self.k_proj(video_embeds).reshape(n_v, n_f, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        v = self.v_proj(video_embeds).reshape(n_v, n_f, self.num_heads, self.head_dim).permute(0, 2, 3, 1)
        weights = F.softmax((k @ q) / math.sqrt(self.head_dim), dim=2)
        attention = (v @ weights).permute(0, 3, 1, 2).reshape(n_v, n_t, -1)
        return self.out_proj(attention)

    def pool(self, text_embeds, video_embeds):
        """(num_vids, num_texts, D)"""
        attn_out = self.layer_norm2(
            self.attention(self.layer_norm1(text_embeds), self.layer_norm1(video_embeds))
        )
        return self.layer_norm3(attn_out + self.linear_proj(attn_out))

    def forward(self, text_embeds, video_embeds):
        pooled = self.pool(text_embeds, video_embeds)
        text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        pooled = pooled / pooled.norm(dim=-1, keepdim=True)
        return torch.bmm(text_embeds.unsqueeze(1), pooled.permute(1, 2, 0)).squeeze(1)


@pytest.mark.parametrize("heads", [1, 4])
def test_xpool_matches_the_authors_transformer(heads):
    tokens, eot, token_mask, frames, frame_mask = random_inputs(5, full=True)
    torch.manual_seed(6)
    ref = RefXPool(D, heads).eval()
    perturb(ref, 7)
    head = create_head("xpool", embed_dim=D, heads=heads).eval()  # identity text adapter at init
    head.load_state_dict(ref.state_dict(), strict=False)
    missing = set(head.state_dict()) - set(ref.state_dict())
    assert all(k.startswith(("text_adapter", "log_logit_scale")) for k in missing), missing
    text = tokens[torch.arange(B), eot]
    with torch.no_grad():
        want = ref(text, frames)
        got = head.score(*batches(tokens, eot, token_mask, frames, frame_mask))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # Padded frames: X-Pool has no mask, so the reference sees each video's valid frames only.
        tokens, eot, token_mask, frames, frame_mask = random_inputs(8)
        got = head.score(*batches(tokens, eot, token_mask, frames, frame_mask))
        text = tokens[torch.arange(B), eot]
        for j in range(B):
            n = int(frame_mask[j].sum())
            torch.testing.assert_close(
                got[:, j], ref(text, frames[j : j + 1, :n])[:, 0], rtol=1e-5, atol=1e-5
            )


# ------------------------------------------------------------------ DRL weighted token-wise interaction


def ref_weight_fc(width: int, arch: int) -> nn.Sequential:
    if arch == 1:
        return nn.Sequential(nn.Linear(width, 1))
    if arch == 2:
        return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    return nn.Sequential(
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)
    )


class RefWTI(nn.Module):
    """DRL wti_interaction with interaction == 'wti' (eval mode)."""

    def __init__(self, width: int, arch: int) -> None:
        super().__init__()
        self.text_weight_fc = ref_weight_fc(width, arch)
        self.video_weight_fc = ref_weight_fc(width, arch)

    def forward(self, text_feat, video_feat, text_mask, video_mask):
        text_mask, video_mask = text_mask.float(), video_mask.float()
        text_weight = self.text_weight_fc(text_feat).squeeze(2)
        text_weight = text_weight.masked_fill((1 - text_mask).bool(), float("-inf")).softmax(-1)
        video_weight = self.video_weight_fc(video_feat).squeeze(2)
        video_weight = video_weight.masked_fill((1 - video_mask).bool(), float("-inf")).softmax(-1)
        text_feat = text_feat / text_feat.norm(dim=-1, keepdim=True)
        video_feat = video_feat / video_feat.norm(dim=-1, keepdim=True)
        logits = torch.einsum("atd,bvd->abtv", text_feat, video_feat)
        logits = torch.einsum("abtv,at->abtv", logits, text_mask)
        logits = torch.einsum("abtv,bv->abtv", logits, video_mask)
        t2v = torch.einsum("abt,at->ab", logits.max(dim=-1)[0], text_weight)
        v2t = torch.einsum("abv,bv->ab", logits.max(dim=-2)[0], video_weight)
        return (t2v + v2t) / 2.0


@pytest.mark.parametrize("arch", [1, 2, 3])
@pytest.mark.parametrize("full", [True, False])
def test_wti_matches_drl(arch, full):
    # DRL lets a padded token/frame enter each max as a 0; with every cosine positive (a shared
    # offset direction) that never wins, and the padded case tests the masks of both softmaxes.
    tokens, eot, token_mask, frames, frame_mask = random_inputs(
        9 + arch, full=full, offset=0.0 if full else 3.0
    )
    torch.manual_seed(arch)
    ref = RefWTI(D, arch).eval()
    perturb(ref, 10 + arch, scale=0.3)
    head = create_head("wti", embed_dim=D, mlp_layers=arch, adapter=False).eval()
    head.text_weight.load_state_dict(ref.text_weight_fc.state_dict())
    head.video_weight.load_state_dict(ref.video_weight_fc.state_dict())
    with torch.no_grad():
        # DRL normalises padded (zero) features to NaN and masks them afterwards; give them any value.
        ref_tokens = torch.where(token_mask[..., None], tokens, torch.ones_like(tokens))
        ref_frames = torch.where(frame_mask[..., None], frames, torch.ones_like(frames))
        want = ref(ref_tokens, ref_frames, token_mask, frame_mask)
        got = head.score(*batches(tokens, eot, token_mask, frames, frame_mask))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # The default (identity-initialised adapters) computes the same function before training.
        adapted = create_head("wti", embed_dim=D, mlp_layers=arch).eval()
        adapted.load_state_dict(head.state_dict(), strict=False)
        torch.testing.assert_close(
            adapted.score(*batches(tokens, eot, token_mask, frames, frame_mask)), want, rtol=1e-5, atol=1e-5
        )


# ------------------------------------------------------------------ fast block scoring = the literal formulas


@pytest.mark.parametrize("heads", [1, 4])
def test_xpool_rewritten_scores_equal_the_direct_formula_with_gradients(heads):
    """score_states (per-video Gram forms, no (Bq, Bv, D) tensor) is the same function as the
    literal pool -> LN -> residual -> LN -> cosine, in values and in every parameter's gradient,
    so training may use it; checked in float64 with perturbed (non-identity) parameters."""
    tokens, eot, token_mask, frames, frame_mask = random_inputs(21)
    frame_mask[3] = False  # a video without frames: uniform weights over its (zero) padding
    head = create_head("xpool", embed_dim=D, heads=heads).double()
    perturb(head, 22, scale=0.2)
    text, video = batches(tokens.double(), eot, token_mask, frames.double(), frame_mask)
    params = [p for p in head.parameters() if p.requires_grad]
    fast = head.score_states(head.text_state(text), head.video_state(video))
    direct = head.score_states_direct(head.text_state(text), video)
    torch.testing.assert_close(fast, direct, rtol=1e-10, atol=1e-10)
    weights = torch.randn(fast.shape, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    grads_fast = torch.autograd.grad((fast * weights).sum(), params, allow_unused=True)
    grads_direct = torch.autograd.grad((direct * weights).sum(), params, allow_unused=True)
    for (name, _), gf, gd in zip(head.named_parameters(), grads_fast, grads_direct, strict=True):
        if gd is None:
            assert gf is None or not gf.any(), name
            continue
        torch.testing.assert_close(gf, gd, rtol=1e-8, atol=1e-10, msg=name)


def _padded_wider(tokens, token_mask, frames, frame_mask):
    """The same items padded by one more position each (every item padded: cropping removes it)."""
    pad = lambda x: torch.cat([x, torch.zeros_like(x[:, :1])], 1)  # noqa: E731
    return pad(tokens), pad(token_mask), pad(frames), pad(frame_mask)


@pytest.mark.parametrize("wider", [False, True])
def test_wti_folded_padding_equals_explicit_masks(wider):
    # near-ties: duplicated frames and tokens give equal cosines in several maxima
    tokens, eot, token_mask, frames, frame_mask = random_inputs(31)
    frames[:, 1] = frames[:, 0]
    tokens[:, 2] = tokens[:, 1]
    frame_mask[4] = False  # a video without frames contributes 0
    if wider:
        tokens, token_mask, frames, frame_mask = _padded_wider(tokens, token_mask, frames, frame_mask)
    head = create_head("wti", embed_dim=D).eval()
    perturb(head, 32, scale=0.3)
    with torch.no_grad():
        t, v = (
            head.text_state({"tokens": tokens, "token_mask": token_mask, "eot": eot}),
            head.video_state({"frames": frames, "frame_mask": frame_mask}),
        )
        torch.testing.assert_close(head.score_states(t, v), head.score_states_masked(t, v), rtol=0, atol=1e-6)


@pytest.mark.parametrize("wider", [False, True])
def test_wti_drl_padding_reproduces_drl_wti_interaction(wider):
    """padding="drl": a padded token or frame enters the maxima as 0, exactly DRL's
    ``wti_interaction`` (similarities multiplied by the masks before the max). No shared offset:
    many cosines are negative, so the 0 wins often and the default differs."""
    tokens, eot, token_mask, frames, frame_mask = random_inputs(41)
    if wider:  # every item padded to the cache width; the block crops the common padding away
        tokens, token_mask, frames, frame_mask = _padded_wider(tokens, token_mask, frames, frame_mask)
    torch.manual_seed(2)
    ref = RefWTI(D, 2).eval()
    perturb(ref, 42, scale=0.3)
    head = create_head("wti", embed_dim=D, adapter=False, padding="drl").eval()
    head.text_weight.load_state_dict(ref.text_weight_fc.state_dict())
    head.video_weight.load_state_dict(ref.video_weight_fc.state_dict())
    masked = create_head("wti", embed_dim=D, adapter=False).eval()
    masked.load_state_dict(head.state_dict())
    with torch.no_grad():
        ref_tokens = torch.where(token_mask[..., None], tokens, torch.ones_like(tokens))
        ref_frames = torch.where(frame_mask[..., None], frames, torch.ones_like(frames))
        want = ref(ref_tokens, ref_frames, token_mask, frame_mask)
        text, video = batches(tokens, eot, token_mask, frames, frame_mask)
        torch.testing.assert_close(head.score(text, video), want, rtol=1e-5, atol=1e-5)
        assert (masked.score(text, video) - want).abs().max() > 1e-2  # the option matters here
    assert head.label() == "wti[no-adapter,padding=drl]" and head.describe()["padding"] == "drl"
    assert "padding" not in masked.describe()  # default runs keep their config hash
