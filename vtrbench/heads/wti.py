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

``agg`` is DRL's ``--agg_module``: ``none`` (DRL's ``None``, the default) reads the frame
features as they are; ``seqtransf`` first runs them through a temporal transformer (frame
position embeddings, pre-LN transformer with a key padding mask, plus the input frames: the
body of CLIP4Clip's seqTransf, DRL's ``agg_video_feat``), which is the configuration DRL
reports for WTI (scripts/msrvtt.sh: ``--agg_module seqTransf --interaction wti --wti_arch 2``,
4 layers). Both the weight MLP and the cosine side then read the aggregated frames, as in DRL.
With ``agg=seqtransf`` the options ``layers`` (4), ``init`` (clip | random: as seqtransf, DRL
copies CLIP's text positions and layers 0-3), ``heads``, ``max_frames`` and ``activation`` apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import AdaptedPairwiseHead, ClipStart, bracket_label, takes_scale_options
from vtrbench.heads._layers import (
    BOOL_OPTION,
    DEFAULT_ACTIVATION,
    DEFAULT_INIT,
    DEFAULT_MAX_FRAMES,
    TemporalEncoder,
    adapt_unit,
    choose_one,
    init_small_normal,
    load_clip_text_layers,
    temporal_schema,
    text_inputs,
    video_inputs,
    zero_padding,
)
from vtrbench.heads.base import LOGIT_SCALE_OPTION, Batch, register_head

DEFAULT_MLP_LAYERS = 2
#: DRL's --agg_module values vtrbench offers (DRL's seqLSTM and meanP aggregators are not offered).
AGGREGATORS = ("none", "seqtransf")
#: Depth of the ``agg=seqtransf`` temporal transformer: DRL's cross_config.num_hidden_layers.
DEFAULT_AGG_LAYERS = 4
#: Options that only exist with ``agg=seqtransf``.
AGG_OPTIONS = ("layers", "init", "heads", "max_frames", "activation")
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
    init_small_normal(*(m for m in mlp if isinstance(m, nn.Linear)))
    return mlp


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to ``mask``; exactly 0 on masked entries."""
    return logits.masked_fill(~mask, torch.finfo(logits.dtype).min).softmax(-1) * mask


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
class WTIHead(ClipStart, AdaptedPairwiseHead):
    """Options: ``mlp_layers`` (2; 1-3 as DRL's wti_arch), ``adapter`` (True: residual linear
    adapters on the unit tokens and frames), ``padding`` ("masked": maxima over valid entries;
    "drl": DRL's, a padded position enters a max as 0), ``agg`` ("none" | "seqtransf": DRL's
    agg_module) and, with agg="seqtransf", ``layers`` (4), ``init`` ("random" here; "clip" as
    seqtransf), ``heads``, ``max_frames`` (64), ``activation``; the logit scale (see
    :data:`vtrbench.heads._common.ADAPTED_OPTIONS`)."""

    head_name = "wti"
    default_layers = DEFAULT_AGG_LAYERS
    search_space = {**AdaptedPairwiseHead.search_space, "mlp_layers": {"low": 1, "high": 3}}

    eval_block = (128, 128)
    option_schema = {
        "mlp_layers": OptionRule("int", low=1, high=3),
        "adapter": BOOL_OPTION,
        "agg": OptionRule("choice", choices=AGGREGATORS),
        "padding": OptionRule("choice", choices=PADDINGS),
        **temporal_schema(),
        **LOGIT_SCALE_OPTION,
    }

    @takes_scale_options(before="padding")
    def __init__(
        self,
        embed_dim: int,
        *,
        mlp_layers: int = DEFAULT_MLP_LAYERS,
        adapter: bool = True,
        agg: str = "none",
        layers: int | None = None,
        init: str | None = None,
        heads: int | None = None,
        max_frames: int | None = None,
        activation: str | None = None,
        padding: str = "masked",
        **options: Any,
    ) -> None:
        super().__init__(embed_dim, options, adapter)
        if mlp_layers not in (1, 2, 3) or isinstance(mlp_layers, bool):
            raise VtrbenchError(f"wti option mlp_layers must be 1, 2 or 3 (DRL wti_arch), got {mlp_layers!r}")
        self.mlp_layers = int(mlp_layers)
        self.agg = choose_one("wti", "agg", agg, AGGREGATORS)
        given = dict(zip(AGG_OPTIONS, (layers, init, heads, max_frames, activation), strict=True))
        if self.agg == "none" and any(v is not None for v in given.values()):
            named = ", ".join(k for k, v in given.items() if v is not None)
            raise VtrbenchError(f"wti option(s) {named} only apply with agg=seqtransf (got agg=none)")
        self.temporal: TemporalEncoder | None = None
        self.backbone_loaded = False
        if self.agg == "seqtransf":
            self.set_temporal_options(
                DEFAULT_AGG_LAYERS if layers is None else layers,
                DEFAULT_INIT if init is None else init,
                heads,
                DEFAULT_MAX_FRAMES if max_frames is None else max_frames,
                DEFAULT_ACTIVATION if activation is None else activation,
            )
            self.temporal = self.new_temporal_encoder()
        self.padding = choose_one("wti", "padding", padding, PADDINGS)
        self.text_weight = weight_mlp(embed_dim, self.mlp_layers)
        self.video_weight = weight_mlp(embed_dim, self.mlp_layers)
        self.text_adapter = self.new_adapter()
        self.video_adapter = self.new_adapter()

    @classmethod
    def has_transformer(cls, options: Mapping[str, Any]) -> bool:
        """Whether ``agg=seqtransf``: without it there is no transformer to start, nothing to decide."""
        return options.get("agg", "none") == "seqtransf"

    def init_from(self, weights: Mapping[str, torch.Tensor], backbone: Mapping[str, Any]) -> None:
        """Start the agg=seqtransf transformer from CLIP's text tower (init="clip"), as DRL does."""
        if self.temporal is None:
            raise VtrbenchError("wti init=clip applies to agg=seqtransf only")
        super().init_from(weights, backbone)

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """CLIP's text positions and layers into the agg=seqtransf transformer."""
        if self.temporal is not None:  # always, after init_from's check
            load_clip_text_layers(self.temporal, weights)

    def text_state(self, batch: Batch) -> Batch:
        """unit tokens (B, L, D), token weights (B, L) (0 on padding), mask (B, L)."""
        tokens, mask, _ = text_inputs(batch, self.log_logit_scale.dtype)
        weights = masked_softmax(self.text_weight(tokens).squeeze(-1), mask)
        return {"unit": adapt_unit(self.text_adapter, tokens), "weight": weights, "mask": mask}

    def video_state(self, batch: Batch) -> Batch:
        """unit frames (B, T, D), frame weights (B, T) (0 on padding), mask (B, T); with
        agg=seqtransf the frames are the temporal transformer's outputs (padding zeroed again)."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        if self.temporal is not None:
            self.check_clip_loaded()
            frames = zero_padding(self.temporal(frames, mask), mask)
        weights = masked_softmax(self.video_weight(frames).squeeze(-1), mask)
        return {"unit": adapt_unit(self.video_adapter, frames), "weight": weights, "mask": mask}

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
        if self.temporal is not None:  # agg=none is left out: run ids of earlier wti runs stay the same
            out.update(
                agg=self.agg,
                layers=self.layers,
                init=self.init,
                heads=self.heads,
                max_frames=self.max_frames,
                activation=self.activation,
            )
        if self.padding != "masked":
            # only when not the default: runs from before the option keep their config hash
            out["padding"] = self.padding
        return {**out, **self.scale_options()}

    def label(self) -> str:
        """e.g. ``wti``, ``wti[agg=seqtransf,layers=4,init=clip]`` (DRL's reported configuration)."""
        extras = [] if self.mlp_layers == DEFAULT_MLP_LAYERS else [f"mlp={self.mlp_layers}"]
        if self.temporal is not None:
            extras += [f"agg={self.agg}", f"layers={self.layers}", f"init={self.init}"]
            if self.activation != DEFAULT_ACTIVATION:
                extras.append(self.activation)
        if not self.adapter:
            extras.append("no-adapter")
        if self.padding != "masked":
            extras.append(f"padding={self.padding}")
        return bracket_label(self.head_name, extras + self.scale_label())
