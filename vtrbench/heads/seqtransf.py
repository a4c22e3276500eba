"""``seqtransf`` (CLIP4Clip seqTransf on frozen features).

video: frames + position embeddings → pre-LN transformer (key padding mask) → + input
frames → unit per frame → masked mean → unit.
text: as ``meanp`` (residual linear adapter on the unit EOT feature).

``init="clip"`` starts where CLIP4Clip starts: the frame position embeddings are CLIP's text
positional embedding and transformer layer i is CLIP's text layer i (its activation too),
copied from the backbone weights the cache stores at extraction (vtrbench/extract/backbone.py).
``init="random"`` uses CLIP's random initialisation scheme. ``vtrbench train`` picks ``clip``
when the cache holds fitting weights and ``random`` otherwise (with a note); the choice is part
of the result's config and label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from vtrbench.errors import VtrbenchError
from vtrbench.heads._layers import (
    ACTIVATIONS,
    BOOL_OPTION,
    DEFAULT_MAX_FRAMES,
    INITS,
    TemporalEncoder,
    adapt_unit,
    backbone_misfit,
    choose_one,
    eot_feature,
    load_clip_text_layers,
    mean_of_unit_frames,
    option_names,
    positive_int,
    reject_unknown_options,
    resolve_heads,
    resolve_init,
    temporal_schema,
    text_inputs,
    unit_adapter,
    video_inputs,
)
from vtrbench.heads.base import (
    LOGIT_SCALE_INIT,
    LOGIT_SCALE_OPTION,
    LOGIT_SCALE_SPACE,
    Batch,
    Head,
    register_head,
)

#: CLIP4Clip's seqTransf depth (``--cross_num_hidden_layers`` 4, text layers 0-3).
DEFAULT_LAYERS = 4


@register_head("seqtransf")
class SeqTransfHead(Head):
    """Options: ``layers`` (4, as CLIP4Clip), ``init`` ("random" here; "clip" copies CLIP's text
    layers, see :meth:`init_from`), ``heads`` (8, or the largest divisor of D below 8; with
    init="clip" the backbone's), ``max_frames`` (64), ``adapter`` (True, text side only),
    ``activation`` ("quick_gelu" or "gelu"; with init="clip" the backbone's), ``logit_scale``
    ("learned" | "fixed" at ``logit_scale_init``, default 100)."""

    search_space = {**Head.search_space, **LOGIT_SCALE_SPACE, "layers": {"low": 1, "high": 4}}

    text_needs_tokens = False  # text = adapted EOT feature only
    option_schema = {**temporal_schema(), "adapter": BOOL_OPTION, **LOGIT_SCALE_OPTION}

    def __init__(
        self,
        embed_dim: int,
        *,
        layers: int = DEFAULT_LAYERS,
        init: str = "random",
        heads: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        adapter: bool = True,
        activation: str = "quick_gelu",
        logit_scale: str = "learned",
        logit_scale_init: float = LOGIT_SCALE_INIT,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("seqtransf", unknown, option_names(type(self)))
        super().__init__(embed_dim, logit_scale_init=logit_scale_init, logit_scale=logit_scale)
        self.layers = positive_int("seqtransf", "layers", layers)
        self.init = choose_one("seqtransf", "init", init, INITS)
        self.heads = resolve_heads("seqtransf", embed_dim, heads)
        self.max_frames = positive_int("seqtransf", "max_frames", max_frames)
        self.adapter = bool(adapter)
        self.activation = choose_one("seqtransf", "activation", activation, ACTIVATIONS)
        self.temporal = TemporalEncoder(embed_dim, self.layers, self.heads, self.max_frames, self.activation)
        self.text_adapter = unit_adapter(embed_dim, self.adapter)
        self.backbone_loaded = False

    @classmethod
    def resolve_options(
        cls, options: Mapping[str, Any], backbone: Mapping[str, Any], embed_dim: int
    ) -> tuple[dict[str, Any], str | None]:
        """Options with ``init`` decided from the cache's backbone info (see _layers.resolve_init)."""
        return resolve_init("seqtransf", options, backbone, embed_dim, default_layers=DEFAULT_LAYERS)

    def init_from(self, weights: Mapping[str, torch.Tensor], backbone: Mapping[str, Any]) -> None:
        """Start the temporal transformer from CLIP's text tower (init="clip"), as CLIP4Clip does."""
        misfit = backbone_misfit(
            backbone, width=self.embed_dim, layers=self.layers, heads=self.heads, max_frames=self.max_frames
        )
        if misfit is None and backbone.get("activation") != self.activation:
            misfit = f"CLIP's text layers use {backbone.get('activation')}, the head {self.activation}"
        if misfit is not None:
            raise VtrbenchError(f"seqtransf init=clip: {misfit}")
        load_clip_text_layers(self.temporal, weights)
        self.backbone_loaded = True

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted EOT features."""
        tokens, _, eot = text_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.text_adapter, eot_feature(tokens, eot))

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm pooled temporal-transformer outputs."""
        if self.training and self.init == "clip" and not self.backbone_loaded:
            raise VtrbenchError(
                "seqtransf init=clip: training started before init_from() loaded CLIP's layers"
            )
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return mean_of_unit_frames(self.temporal(frames, mask), mask)

    def describe(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "init": self.init,
            "heads": self.heads,
            "max_frames": self.max_frames,
            "adapter": self.adapter,
            "activation": self.activation,
            **self.scale_options(),
        }

    def label(self) -> str:
        """e.g. ``seqtransf[layers=4,init=clip]``: depth and start are always stated."""
        extras = [f"layers={self.layers}", f"init={self.init}"]
        if self.activation != "quick_gelu":
            extras.append(self.activation)
        if not self.adapter:
            extras.append("no-adapter")
        extras += self.scale_label()
        return f"seqtransf[{','.join(extras)}]"
