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

Padded tokens and frames are skipped: the weight MLPs and the adapters run on the valid rows
only (packed), and padded rows of a state hold 0. A block is one matrix product of the block's
valid tokens against its frames ((n_tokens, D + 1) x (D + 1, T·Bv), the frames ordered frame-major
so that both maxima reduce over outer dimensions) and two maxima: the best frame of each token
and video, and per caption the best token of each frame (a scatter-max over the caption's rows).
No loop over pairs and no mask of the block's size. Frame padding is folded into the product: an
extra coordinate, 1 on every token and pad_j on frame j (-PAD_BIAS on padding, 0 otherwise),
adds -PAD_BIAS to every similarity with a padded frame and exactly 0 to the others, so padding
never wins a max over valid entries. The backward (:class:`_BestMatches`) recomputes where each
maximum was attained from the saved similarities and the maxima, in two arithmetic passes,
and splits a tied maximum's gradient evenly among its entries, as ``amax``'s does: the same
gradients as the maxima of autograd, without its four full-size temporaries per maximum.

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
    video_inputs,
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


def _crop(state: Batch) -> Batch:
    """The state without trailing positions that no item of the block uses.

    Captions are padded to the cache's max_words (32 or 64) but most are far shorter; the
    block's cost is linear in the positions kept, and cropped positions are padding only.
    """
    keep = _used_width(state["mask"])
    if keep == state["mask"].shape[1]:
        return state
    return {k: v[:, :keep] if v.dim() > 1 else v for k, v in state.items()}


def _used_width(mask: torch.Tensor) -> int:
    """1 + the last position of a (B, N) mask that some item uses (1 when none does)."""
    used = mask.any(0).nonzero()
    return int(used.max()) + 1 if used.numel() else 1


def _valid_rows(mask: torch.Tensor) -> torch.Tensor:
    """Flat positions (in ``B * N``) of the valid entries of a (B, N) mask."""
    return mask.flatten().nonzero().squeeze(1)


def _unpack(values: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor, fill: float) -> torch.Tensor:
    """values (n_valid, ...) at the valid positions of ``mask`` (B, N), ``fill`` elsewhere: (B, N, ...)."""
    out = values.new_full((mask.numel(), *values.shape[1:]), fill)
    return out.index_copy(0, rows, values).view(*mask.shape, *values.shape[1:])


def _weights(logits: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over each item's valid rows of the valid rows' logits (n_valid, 1): (B, N), 0 on padding."""
    logits = logits.squeeze(-1)  # bfloat16 under autocast
    return _unpack(logits, rows, mask, torch.finfo(logits.dtype).min).softmax(-1) * mask


class _BestMatches(torch.autograd.Function):
    """Token x frame maxima of a block without keeping autograd's full-size temporaries.

    forward(tokens (M, D), frames (T·Bv, D) frame-major, frame pads (T·Bv,), caption of each
    token row (M,), Bq, T) → best frame per token and video (M, Bv), best token per caption,
    frame and video (Bq, T, Bv), the latter -PAD_BIAS for a caption without rows.

    backward: a maximum's gradient goes to the entries equal to it, split evenly among ties
    (what ``amax``'s backward does); the entries are found again from the saved similarities,
    as ``(sim - max).sign() + 1`` (1 where equal, 0 below), in float arithmetic that vectorises.
    Keeping argmax indices instead (``max`` with indices, then a scatter) was tried: on CPU ``max``
    with indices has no vectorised kernel and cost more than these passes, and it gives a tied
    maximum's whole gradient to one of its entries (identical frames tie), not half to each.
    """

    @staticmethod
    def forward(
        ctx: Any,
        tokens: torch.Tensor,
        frames: torch.Tensor,
        frame_pad: torch.Tensor,
        caption: torch.Tensor,
        n_captions: int,
        n_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t_ext = torch.cat([tokens, tokens.new_ones(tokens.shape[0], 1)], 1)
        f_ext = torch.cat([frames, frame_pad[:, None]], 1)
        sim = t_ext @ f_ext.t()  # (M, T·Bv)
        m, n = sim.shape
        best_frame = sim.view(m, n_frames, n // n_frames).amax(1)
        best_token = sim.new_full((n_captions, n), -PAD_BIAS)
        best_token.scatter_reduce_(0, caption[:, None].expand(m, n), sim, "amax")
        ctx.save_for_backward(tokens, frames, caption, sim, best_frame, best_token)
        ctx.n_frames = n_frames
        return best_frame, best_token.view(n_captions, n_frames, -1)

    @staticmethod
    def backward(ctx: Any, g_frame: torch.Tensor, g_token: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        tokens, frames, caption, sim, best_frame, best_token = ctx.saved_tensors
        m, n = sim.shape
        at_max = (sim.view(m, ctx.n_frames, -1) - best_frame[:, None]).sign_().add_(1)
        grad = at_max.mul_((g_frame / at_max.sum(1)).unsqueeze(1)).view(m, n)
        at_max = (sim - best_token.index_select(0, caption)).sign_().add_(1)
        # counts of 0/1 entries are exact in any order of addition (a GPU's atomic one included);
        # a caption without rows has no entry to count: clamp keeps its (unused) share finite
        count = torch.zeros_like(best_token).index_add_(0, caption, at_max).clamp_min_(1.0)
        grad.addcmul_(at_max, (g_token.reshape(-1, n) / count).index_select(0, caption))
        # in the product's dtype (bfloat16 under autocast, as autograd's own backward would);
        # autograd casts the gradients to the inputs' dtype
        grad_tokens = grad @ frames.to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_frames = grad.t() @ tokens.to(grad.dtype) if ctx.needs_input_grad[1] else None
        return grad_tokens, grad_frames, None, None, None, None


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
        """unit tokens (B, L, D) (0 on padding), token weights (B, L) (0 on padding), mask (B, L).

        The MLP and the adapter run on the valid tokens only (a caption fills about half of the
        cache's 32 positions): the same values at the valid positions as on the padded tensor."""
        unit, weight, rows, mask = self._text_rows(batch)
        return {"unit": _unpack(unit, rows, mask, 0.0), "weight": weight, "mask": mask}

    def _text_rows(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(unit valid tokens (n_valid, D), token weights (B, L), their flat positions, mask (B, L))."""
        mask = batch["token_mask"].bool()
        rows = _valid_rows(mask)
        tokens = batch["tokens"].flatten(0, 1).index_select(0, rows).to(self.log_logit_scale.dtype)
        return (
            adapt_unit(self.text_adapter, tokens),
            _weights(self.text_weight(tokens), rows, mask),
            rows,
            mask,
        )

    def video_state(self, batch: Batch) -> Batch:
        """unit frames (B, T, D) (0 on padding), frame weights (B, T) (0 on padding), mask (B, T);
        with agg=seqtransf the frames are the temporal transformer's outputs."""
        mask = batch["frame_mask"].bool()
        rows = _valid_rows(mask)
        if self.temporal is not None:
            self.check_clip_loaded()
            frames, _ = video_inputs(batch, self.log_logit_scale.dtype)
            frames = self.temporal(frames, mask).flatten(0, 1).index_select(0, rows)
        else:
            frames = batch["frames"].flatten(0, 1).index_select(0, rows).to(self.log_logit_scale.dtype)
        unit = _unpack(adapt_unit(self.video_adapter, frames), rows, mask, 0.0)
        return {"unit": unit, "weight": _weights(self.video_weight(frames), rows, mask), "mask": mask}

    def score(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bt, Bv) scores of whole batches (training's block): the same values as ``score_states`` of
        the two states, with the caption rows kept packed instead of unpacked and packed again."""
        unit, weight, rows, mask = self._text_rows(text)
        weights = weight.flatten().index_select(0, rows)
        width = _used_width(mask)  # the cropped layout of score_states: the same sums, the same bits
        rows = rows // mask.shape[1] * width + rows % mask.shape[1]
        return self._score_rows(unit, weights, rows, width, mask, self.video_state(video))

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) weighted token-wise interaction."""
        mask = text["mask"]
        text = _crop(text)
        rows = _valid_rows(text["mask"])
        tokens = text["unit"].flatten(0, 1).index_select(0, rows)
        weights = text["weight"].flatten().index_select(0, rows)
        return self._score_rows(tokens, weights, rows, text["mask"].shape[1], mask, video)

    def _score_rows(
        self,
        tokens: torch.Tensor,
        weights: torch.Tensor,
        rows: torch.Tensor,
        width: int,
        t_mask: torch.Tensor,
        video: Batch,
    ) -> torch.Tensor:
        """(Bq, Bv) scores of the captions' valid unit tokens (M, D) and their weights (M,), at flat
        positions ``rows`` of a (Bq, width) layout (``t_mask`` (Bq, L): the captions' token mask),
        against a video state."""
        # Items padded to the cache's width (before cropping): DRL's maxima see a 0 for them.
        t_padded, v_padded = ~t_mask.all(-1), ~video["mask"].all(-1)
        video = _crop(video)
        v_mask = video["mask"]
        nq, (nv, nt) = t_mask.shape[0], v_mask.shape
        frames = video["unit"].transpose(0, 1).reshape(nt * nv, -1)  # frame-major: (t, v) rows
        frame_pad = (~v_mask).t().reshape(-1).to(frames.dtype) * -PAD_BIAS
        best_frame, best_token = _BestMatches.apply(tokens, frames, frame_pad, rows // width, nq, nt)
        if self.padding == "drl":
            best_frame = torch.where(v_padded[None, :], best_frame.clamp_min(0.0), best_frame)
            best_token = torch.where(t_padded[:, None, None], best_token.clamp_min(0.0), best_token)
        # A caption without tokens or a video without frames contributes 0. The token sum runs over
        # the (Bq, width, Bv) layout, in order: no scattered float additions (atomic, so in no fixed
        # order, on a GPU).
        weighted = _unpack(best_frame * weights[:, None], rows, t_mask.new_ones(nq, width), 0.0)
        t2v = weighted.sum(1) * v_mask.any(-1)[None, :]
        v2t = (best_token * video["weight"].t()).sum(1) * t_mask.any(-1)[:, None]
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
