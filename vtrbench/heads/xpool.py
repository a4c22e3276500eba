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

Blocks are computed without forming one (caption, video, frame, D) tensor: the value
path is linear, so W_o is applied to each video's per-head values once
(``U = W_o,h (W_v f̂ + b_v)``) and a pair only needs its attention-weighted sum of U.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._layers import (
    BOOL_OPTION,
    adapt_unit,
    eot_feature,
    option_names,
    positive_int,
    reject_unknown_options,
    text_inputs,
    unit_adapter,
    video_inputs,
)
from vtrbench.heads.base import LOGIT_SCALE_OPTION, Batch, PairwiseHead, register_head

DEFAULT_HEADS = 1  # X-Pool's --num_mha_heads default


@register_head("xpool")
class XPoolHead(PairwiseHead):
    """Options: ``heads`` (1, must divide D), ``adapter`` (True: residual linear text adapter),
    ``logit_scale`` ("learned" | "fixed" at 100)."""

    search_space = {**PairwiseHead.search_space, "heads": {"choices": [1, 2, 4, 8]}}

    text_needs_tokens = False  # the caption is its EOT feature
    eval_block = (256, 256)
    option_schema = {"heads": OptionRule("int", low=1), "adapter": BOOL_OPTION, **LOGIT_SCALE_OPTION}

    def __init__(
        self,
        embed_dim: int,
        *,
        heads: int = DEFAULT_HEADS,
        adapter: bool = True,
        logit_scale: str = "learned",
        **unknown: Any,
    ) -> None:
        reject_unknown_options("xpool", unknown, option_names(type(self)))
        super().__init__(embed_dim, logit_scale=logit_scale)
        self.heads = positive_int("xpool", "heads", heads)
        if embed_dim % self.heads:
            raise VtrbenchError(f"xpool option heads={heads} does not divide the embedding width {embed_dim}")
        self.adapter = bool(adapter)
        d = embed_dim
        self.layer_norm1 = nn.LayerNorm(d)
        self.layer_norm2 = nn.LayerNorm(d)
        self.layer_norm3 = nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.linear_proj = nn.Linear(d, d)
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.linear_proj):
            nn.init.eye_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.text_adapter = unit_adapter(d, self.adapter)

    def text_state(self, batch: Batch) -> Batch:
        """query (B, H, d_h) and the unit caption used in the cosine (B, D)."""
        tokens, _, eot = text_inputs(batch, self.log_logit_scale.dtype)
        t = eot_feature(tokens, eot)
        q = self.q_proj(self.layer_norm1(t)).unflatten(-1, (self.heads, -1))
        return {"query": q, "unit": adapt_unit(self.text_adapter, t)}

    def video_state(self, batch: Batch) -> Batch:
        """keys (B, T, H, d_h), values after the output projection per head (B, H, T, D), mask (B, T)."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        f = self.layer_norm1(frames)
        k = self.k_proj(f).unflatten(-1, (self.heads, -1))
        v = self.v_proj(f).unflatten(-1, (self.heads, -1))
        w_o = self.out_proj.weight.unflatten(1, (self.heads, -1))  # (D, H, d_h)
        return {"key": k, "value": torch.einsum("bthe,dhe->bhtd", v, w_o), "mask": mask}

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) cosine of each caption with its caption-conditioned pooled video."""
        q, k = text["query"], video["key"]
        logits = torch.einsum("qhe,vthe->qvht", q, k) / math.sqrt(q.shape[-1])
        valid = video["mask"][None, :, None, :]
        weights = logits.masked_fill(~valid, torch.finfo(logits.dtype).min).softmax(-1)
        pooled = torch.einsum("qvht,vhtd->qvd", weights, video["value"]) + self.out_proj.bias
        y = self.layer_norm2(pooled)
        out = self.layer_norm3(y + self.linear_proj(y))
        return torch.einsum("qd,qvd->qv", text["unit"], F.normalize(out, dim=-1))

    def describe(self) -> dict[str, Any]:
        return {"heads": self.heads, "adapter": self.adapter, **self.scale_options()}

    def label(self) -> str:
        extras = [] if self.heads == DEFAULT_HEADS else [f"heads={self.heads}"]
        if not self.adapter:
            extras.append("no-adapter")
        extras += self.scale_label()
        return f"xpool[{','.join(extras)}]" if extras else "xpool"
