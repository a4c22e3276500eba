"""``xpool`` (X-Pool, Gorti et al., CVPR 2022), pairwise, on frozen features.

For a caption t (EOT feature) and a video's frames f_1..f_T (X-Pool's "transformer"
pooling, ``modules/transformer.py`` of the authors' code)::

    t̂, f̂_j = LN1(t), LN1(f_j)                                     # one shared LayerNorm
    a_j    = softmax_j( (W_q t̂ + b_q) · (W_k f̂_j + b_k) / sqrt(d_h) )  # per head, valid frames only
    y      = LN2( W_o [Σ_j a_j (W_v f̂_j + b_v)]_heads + b_o )
    v_t    = LN3( y + W_l y + b_l )                                  # residual feed-forward
    s(t, v) = cos(t, v_t)

As in X-Pool, the projections start at the identity (weights eye, biases 0) and the
default is one attention head. vtrbench differences: frames are cached frozen CLIP
features, so a residual linear text adapter (identity at initialisation) on the
cosine side of the caption gives the text something to learn; padded frames are masked
out of the softmax (X-Pool always samples a fixed number of frames); no dropout.

Blocks are scored without any (caption, video, D) tensor. The attention weights a_k over a
video's K = H·T (head, frame) slots sum to one per head, and everything after them is affine
or a LayerNorm, so per pair only a few scalars are needed::

    p      = Σ_k a_k Ũ_k                  Ũ_k = W_o,h (W_v f̂_t + b_v) + b_o / H  (per video)
    LN2(p) = γ2 ⊙ (a·C) / σ2 + β2         C = Ũ centred over D; σ2² = aᵀ(C Cᵀ)a / D + ε
    z_c    = (a·E) / σ2 + e               E = centred (γ2 ⊙ C)(I + W_l)ᵀ; e = centred((I + W_l) β2 + b_l)
    LN3(z) = γ3 ⊙ z_c / σ3 + β3           σ3² = |z_c|² / D + ε (a quadratic form in a again)

so a pair needs the K x K Gram forms of each video (computed once in ``video_state``), its
attention logits (one (Bq, D) x (D, Bv·T) matrix product) and the caption against E
(one more of (Bq, D) x (D, Bv·K)). It is the same function, not an approximation (parity
with the authors' module in tests/families/test_heads_parity.py, and with the direct formula,
gradients included, in tests/eval/test_pairwise.py); training uses it too.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import ADAPTED_OPTIONS, AdaptedPairwiseHead, bracket_label, takes_scale_options
from vtrbench.heads._layers import adapt_unit, eot_input, positive_int, video_inputs
from vtrbench.heads.base import Batch, register_head

DEFAULT_HEADS = 1  # X-Pool's --num_mha_heads default


def _fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 at least (bf16/fp16 under autocast up-cast; float64 kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


#: added to the logits of padded frames: exp() underflows to exactly 0 next to any valid frame
_MASK_BIAS = -1.0e30


@register_head("xpool")
class XPoolHead(AdaptedPairwiseHead):
    """Options: ``heads`` (1, must divide D) and :data:`vtrbench.heads._common.ADAPTED_OPTIONS`
    (``adapter``: the residual linear text adapter)."""

    head_name = "xpool"
    search_space = {**AdaptedPairwiseHead.search_space, "heads": {"choices": [1, 2, 4, 8]}}

    text_needs_tokens = False  # the caption is its EOT feature
    eval_block = (256, 256)
    option_schema = {"heads": OptionRule("int", low=1), **ADAPTED_OPTIONS}

    @takes_scale_options()
    def __init__(
        self,
        embed_dim: int,
        *,
        heads: int = DEFAULT_HEADS,
        adapter: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(embed_dim, options, adapter)
        self.heads = positive_int("xpool", "heads", heads)
        if embed_dim % self.heads:
            raise VtrbenchError(f"xpool option heads={heads} does not divide the embedding width {embed_dim}")
        d = embed_dim
        self.layer_norm1 = nn.LayerNorm(d)
        self.layer_norm2 = nn.LayerNorm(d)
        self.layer_norm3 = nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.linear_proj = nn.Linear(d, d)
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.linear_proj):
            nn.init.eye_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.text_adapter = self.new_adapter()

    def text_state(self, batch: Batch) -> Batch:
        """query (B, H, d_h) and the unit caption used in the cosine (B, D)."""
        t = eot_input(batch, self.log_logit_scale.dtype)
        q = self.q_proj(self.layer_norm1(t)).unflatten(-1, (self.heads, -1))
        return {"query": q, "unit": adapt_unit(self.text_adapter, t)}

    def video_state(self, batch: Batch) -> Batch:
        """keys (B, T, H, d_h), mask (B, T), and per video the K = H·T slot terms that
        ``score_states`` combines with a pair's attention weights (see the module docstring):
        ``slot`` (B, K, D) = E, ``gram`` (B, K, 3K + 3) = [C Cᵀ | E Eᵀ | Eγ Eγᵀ | E·e | E·(γ3² e) |
        E·(γ3 β3)] with Eγ = E ⊙ γ3."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        f = self.layer_norm1(frames)
        k = self.k_proj(f).unflatten(-1, (self.heads, -1))
        v = self.v_proj(f).unflatten(-1, (self.heads, -1))
        w_o = self.out_proj.weight.unflatten(1, (self.heads, -1))  # (D, H, d_h)
        # The Gram forms feed variances by difference of squares: always fp32, never autocast's bf16.
        with torch.autocast(frames.device.type, enabled=False):
            v, w_o = _fp32(v), _fp32(w_o)
            # Ũ (B, H·T, D): each head's values after the output projection; the bias is shared out
            # over the heads (each head's weights sum to one, so Σ_k a_k b_o / H = b_o)
            u = torch.einsum("bthe,dhe->bhtd", v, w_o).flatten(1, 2) + self.out_proj.bias / self.heads
            c = u - u.mean(-1, keepdim=True)
            ln2, ln3 = self.layer_norm2, self.layer_norm3
            m = self.linear_proj.weight + torch.eye(self.embed_dim, dtype=c.dtype, device=c.device)
            e_slot = (c * ln2.weight) @ m.t()
            e_slot = e_slot - e_slot.mean(-1, keepdim=True)
            e_const = self._e_const()
            g3 = ln3.weight
            gram = torch.cat(
                [
                    c @ c.transpose(1, 2),
                    e_slot @ e_slot.transpose(1, 2),
                    (e_slot * g3) @ (e_slot * g3).transpose(1, 2),
                    torch.stack(
                        [e_slot @ e_const, e_slot @ (g3 * g3 * e_const), e_slot @ (g3 * ln3.bias)], dim=-1
                    ),
                ],
                dim=-1,
            )
        return {"key": k, "mask": mask, "slot": e_slot, "gram": gram}

    def _e_const(self) -> torch.Tensor:
        """e = centred((I + W_l) β2 + b_l): the part of LN3's input that no frame moves."""
        b2 = self.layer_norm2.bias
        e = b2 + self.linear_proj(b2)
        return e - e.mean()

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) cosine of each caption with its caption-conditioned pooled video."""
        a = self.attention(text, video)
        # Everything per pair after the two products is fp32 (or float64), never autocast's bf16:
        # the softmax as autocast would, and the variances, which come by difference of squares.
        with torch.autocast(a.device.type, enabled=False):
            return self._pairs(a, text, video)

    def attention(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv, K) attention weights of each caption over each video's K = H·T (head, frame)
        slots, fp32 at least; each head's weights sum to one over the video's valid frames."""
        q, k, mask = text["query"], video["key"], video["mask"]
        nq, nv, t = q.shape[0], k.shape[0], k.shape[1]
        h, dh = self.heads, q.shape[-1]
        # attention logits, one matrix product per head: (H, Bq, d_h) x (H, d_h, Bv·T)
        logits = torch.matmul(q.transpose(0, 1), k.permute(2, 3, 0, 1).reshape(h, dh, nv * t))
        with torch.autocast(q.device.type, enabled=False):
            logits = _fp32(logits).view(h, nq, nv, t).permute(1, 2, 0, 3)
            # softmax over frames by hand (torch's is slow for rows of 12): padded frames get a
            # large negative bias, so exp gives 0 there (a video without frames: uniform, as before)
            bias = (~mask).to(logits.dtype) * _MASK_BIAS
            z = torch.addcmul(bias[None, :, None, :], logits, logits.new_tensor(1.0 / math.sqrt(dh)))
            z = z - z.amax(-1, keepdim=True)
            a = z.exp()
            return (a / a.sum(-1, keepdim=True)).reshape(nq, nv, h * t)

    def _pairs(self, a: torch.Tensor, text: Batch, video: Batch) -> torch.Tensor:
        nq, nv, kk = a.shape
        unit = _fp32(text["unit"])
        ln2, ln3 = self.layer_norm2, self.layer_norm3
        d = float(self.embed_dim)
        e_const = self._e_const()
        g3 = ln3.weight
        # the caption against every slot of every video: (Bq, D) x (D, Bv·K)
        slot_dot = (unit * g3) @ _fp32(video["slot"]).reshape(nv * kk, -1).t()
        lin = (a * slot_dot.view(nq, nv, kk)).sum(-1)  # a · E(γ3 ⊙ u)
        # Gram forms: a (Bq, K) per video against (K, 3K + 3), one batched product
        ga = torch.bmm(a.transpose(0, 1), _fp32(video["gram"])).transpose(0, 1)  # (Bq, Bv, 3K + 3)
        quad = (ga[..., : 3 * kk].view(nq, nv, 3, kk) * a[:, :, None, :]).sum(-1)
        gc, ge, gg = quad.unbind(-1)
        he, hg, hb = ga[..., 3 * kk :].unbind(-1)
        inv2 = torch.rsqrt(gc / d + ln2.eps)  # 1 / σ2
        zz = ge * inv2 * inv2 + 2.0 * he * inv2 + e_const.dot(e_const)  # |z_c|²
        inv3 = torch.rsqrt(zz / d + ln3.eps)  # 1 / σ3
        u_o = (lin * inv2 + (unit * g3) @ e_const[:, None]) * inv3 + (unit @ ln3.bias)[:, None]
        g3e = g3 * e_const
        oo = (
            (gg * inv2 * inv2 + 2.0 * hg * inv2 + g3e.dot(g3e)) * inv3 * inv3
            + 2.0 * (hb * inv2 + g3e.dot(ln3.bias)) * inv3
            + ln3.bias.dot(ln3.bias)
        )
        # F.normalize's eps: |o| below 1e-12 divides by 1e-12
        return u_o / oo.clamp_min(0.0).sqrt().clamp_min(1e-12)

    def score_states_direct(self, text: Batch, frames: Batch) -> torch.Tensor:
        """The same scores by the literal formula on a (Bq, Bv, D) pooled tensor (tests only:
        checks ``score_states``' rewrite, values and gradients). ``frames`` is a video batch."""
        f = self.layer_norm1(video_inputs(frames, self.log_logit_scale.dtype)[0])
        mask = video_inputs(frames, self.log_logit_scale.dtype)[1]
        q = text["query"]
        k = self.k_proj(f).unflatten(-1, (self.heads, -1))
        v = self.v_proj(f).unflatten(-1, (self.heads, -1))
        logits = torch.einsum("qhe,vthe->qvht", q, k) / math.sqrt(q.shape[-1])
        weights = logits.masked_fill(~mask[None, :, None, :], torch.finfo(logits.dtype).min).softmax(-1)
        pooled = self.out_proj(torch.einsum("qvht,vthe->qvhe", weights, v).flatten(-2))
        y = self.layer_norm2(pooled)
        out = self.layer_norm3(y + self.linear_proj(y))
        return torch.einsum("qd,qvd->qv", text["unit"], F.normalize(out, dim=-1))

    def describe(self) -> dict[str, Any]:
        return {"heads": self.heads, "adapter": self.adapter, **self.scale_options()}

    def label(self) -> str:
        extras = [] if self.heads == DEFAULT_HEADS else [f"heads={self.heads}"]
        return bracket_label(self.head_name, extras + self.option_extras())
