"""``wti`` (weighted token-wise interaction, DRL: Wang et al., 2022), pairwise, on frozen features.

For a caption with token features x_1..x_L (valid tokens, SOT and EOT included) and a
video with frame features f_1..f_T (valid frames)::

    w_i = softmax_i(MLP_t(x_i)),  u_j = softmax_j(MLP_v(f_j))      # over valid tokens / frames
    s_ij = cos(x_i, f_j)
    s(t, v) = ½ (Σ_i w_i max_j s_ij + Σ_j u_j max_i s_ij)

MLP = Linear(D, D) → ReLU → Linear(D, 1) (DRL's ``wti_arch`` 2; ``mlp_layers`` 1 or 3 are
its other two), initialised like DRL (weights N(0, 0.02), biases 0). vtrbench
differences: features are frozen, so optional residual linear adapters (identity at
initialisation) on the unit tokens and frames give the cosine side something to learn
(the weight MLPs read the raw features, as in DRL). Padding: DRL multiplies the
similarity matrix by the masks before the max, so a padded frame or token enters a max as
a 0; vtrbench takes the max over valid entries only by default (``padding="masked"``; the two
agree whenever a row has a valid similarity >= 0), and ``padding="drl"`` reproduces DRL
exactly (a 0 enters the maxima of an item padded to the cache's width).

A block is one matrix product ((Bq·L, D + 2) x (D + 2, Bv·T)) and two maxima: no loop over
pairs and no mask of the block's size. The padding is folded into the product: two extra
coordinates, [pad_i, 1] on token i and [1, pad_j] on frame j with pad = -PAD_BIAS on padding
and 0 otherwise, add -PAD_BIAS to every similarity with a padded side and exactly 0 to the
others, so padding never wins a max over valid entries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.errors import VtrbenchError
from vtrbench.heads._layers import (
    choose_one,
    option_names,
    reject_unknown_options,
    text_inputs,
    unit_adapter,
    video_inputs,
)
from vtrbench.heads.base import Batch, PairwiseHead, register_head

DEFAULT_MLP_LAYERS = 2
PADDINGS = ("masked", "drl")
#: added to similarities with a padded side; cosines are in [-1, 1], so padding never wins a max
PAD_BIAS = 1.0e4


def weight_mlp(dim: int, layers: int) -> nn.Sequential:
    """DRL's weight branch: ``layers - 1`` (Linear(D, D), ReLU) pairs, then Linear(D, 1)."""
    parts: list[nn.Module] = []
    for _ in range(layers - 1):
        parts += [nn.Linear(dim, dim), nn.ReLU()]
    parts.append(nn.Linear(dim, 1))
    mlp = nn.Sequential(*parts)
    for m in mlp:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return mlp


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask``; exactly 0 on masked entries."""
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min).softmax(-1) * mask


def unit_adapted(adapter: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(..., D) → unit(adapter(unit(x))), per row."""
    return F.normalize(adapter(F.normalize(x, dim=-1)), dim=-1)


def _crop(state: Batch) -> Batch:
    """The state without trailing positions that no item of the block uses.

    Captions are padded to the cache's max_words (32 or 64) but most are far shorter; the
    block's cost is linear in the positions kept, and cropped positions are padding only.
    """
    used = state["mask"].any(0).nonzero()
    keep = int(used.max()) + 1 if used.numel() else 1
    if keep == state["mask"].shape[1]:
        return state
    return {k: v[:, :keep] if v.dim() > 1 else v for k, v in state.items()}


@register_head("wti")
class WTIHead(PairwiseHead):
    """Options: ``mlp_layers`` (2; 1-3 as DRL's wti_arch), ``adapter`` (True: residual linear
    adapters on the unit tokens and frames), ``padding`` ("masked": maxima over valid entries;
    "drl": DRL's, a padded position enters a max as 0)."""

    eval_block = (128, 128)

    def __init__(
        self,
        embed_dim: int,
        *,
        mlp_layers: int = DEFAULT_MLP_LAYERS,
        adapter: bool = True,
        padding: str = "masked",
        **unknown: Any,
    ) -> None:
        reject_unknown_options("wti", unknown, option_names(type(self)))
        super().__init__(embed_dim)
        if mlp_layers not in (1, 2, 3) or isinstance(mlp_layers, bool):
            raise VtrbenchError(f"wti option mlp_layers must be 1, 2 or 3 (DRL wti_arch), got {mlp_layers!r}")
        self.mlp_layers = int(mlp_layers)
        self.adapter = bool(adapter)
        self.padding = choose_one("wti", "padding", padding, PADDINGS)
        self.text_weight = weight_mlp(embed_dim, self.mlp_layers)
        self.video_weight = weight_mlp(embed_dim, self.mlp_layers)
        self.text_adapter = unit_adapter(embed_dim, self.adapter)
        self.video_adapter = unit_adapter(embed_dim, self.adapter)

    def text_state(self, batch: Batch) -> Batch:
        """unit tokens (B, L, D), token weights (B, L) (0 on padding), mask (B, L)."""
        tokens, mask, _ = text_inputs(batch, self.log_logit_scale.dtype)
        weights = masked_softmax(self.text_weight(tokens).squeeze(-1), mask)
        return {"unit": unit_adapted(self.text_adapter, tokens), "weight": weights, "mask": mask}

    def video_state(self, batch: Batch) -> Batch:
        """unit frames (B, T, D), frame weights (B, T) (0 on padding), mask (B, T)."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        weights = masked_softmax(self.video_weight(frames).squeeze(-1), mask)
        return {"unit": unit_adapted(self.video_adapter, frames), "weight": weights, "mask": mask}

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) weighted token-wise interaction."""
        # Items padded to the cache's width (before cropping): DRL's maxima see a 0 for them.
        t_padded, v_padded = ~text["mask"].all(-1), ~video["mask"].all(-1)
        text, video = _crop(text), _crop(video)
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

    def score_states_masked(self, text: Batch, video: Batch) -> torch.Tensor:
        """The default scores by explicit full-size masks (tests only: checks the folded padding)."""
        text, video = _crop(text), _crop(video)
        sim = torch.einsum("qld,vtd->qvlt", text["unit"], video["unit"])
        t_mask, v_mask = text["mask"], video["mask"]
        valid = t_mask[:, None, :, None] & v_mask[None, :, None, :]
        sim.masked_fill_(~valid, torch.finfo(sim.dtype).min)
        best_frame = sim.amax(-1).masked_fill(~v_mask.any(-1)[None, :, None] | ~t_mask[:, None, :], 0.0)
        best_token = sim.amax(-2).masked_fill(~t_mask.any(-1)[:, None, None] | ~v_mask[None, :, :], 0.0)
        t2v = torch.einsum("qvl,ql->qv", best_frame, text["weight"])
        v2t = torch.einsum("qvt,vt->qv", best_token, video["weight"])
        return 0.5 * (t2v + v2t)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mlp_layers": self.mlp_layers, "adapter": self.adapter}
        if self.padding != "masked":
            # only when not the default: runs from before the option keep their config hash
            out["padding"] = self.padding
        return out

    def label(self) -> str:
        extras = [] if self.mlp_layers == DEFAULT_MLP_LAYERS else [f"mlp={self.mlp_layers}"]
        if not self.adapter:
            extras.append("no-adapter")
        if self.padding != "masked":
            extras.append(f"padding={self.padding}")
        return f"wti[{','.join(extras)}]" if extras else "wti"
