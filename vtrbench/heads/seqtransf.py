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

from vtrbench.heads._common import ADAPTED_OPTIONS, ClipStart, EotTextHead, bracket_label, takes_scale_options
from vtrbench.heads._layers import (
    DEFAULT_ACTIVATION,
    DEFAULT_INIT,
    DEFAULT_MAX_FRAMES,
    load_clip_text_layers,
    mean_of_unit_frames,
    temporal_schema,
    video_inputs,
)
from vtrbench.heads.base import Batch, register_head

#: CLIP4Clip's seqTransf depth (``--cross_num_hidden_layers`` 4, text layers 0-3).
DEFAULT_LAYERS = 4


@register_head("seqtransf")
class SeqTransfHead(ClipStart, EotTextHead):
    """Options: ``layers`` (4, as CLIP4Clip), ``init`` ("random" here; "clip" copies CLIP's text
    layers, see :meth:`init_from`), ``heads`` (8, or the largest divisor of D below 8; with
    init="clip" the backbone's), ``max_frames`` (64), ``activation`` ("quick_gelu" or "gelu"; with
    init="clip" the backbone's) and :data:`vtrbench.heads._common.ADAPTED_OPTIONS` (``adapter``:
    the text side's)."""

    head_name = "seqtransf"
    default_layers = DEFAULT_LAYERS
    search_space = {**EotTextHead.search_space, "layers": {"low": 1, "high": 4}}
    option_schema = {**temporal_schema(), **ADAPTED_OPTIONS}

    @takes_scale_options()
    def __init__(
        self,
        embed_dim: int,
        *,
        layers: int = DEFAULT_LAYERS,
        init: str = DEFAULT_INIT,
        heads: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        adapter: bool = True,
        activation: str = DEFAULT_ACTIVATION,
        **options: Any,
    ) -> None:
        super().__init__(embed_dim, options, adapter)
        self.set_temporal_options(layers, init, heads, max_frames, activation)
        self.temporal = self.new_temporal_encoder()
        self.text_adapter = self.new_adapter()
        self.backbone_loaded = False

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """CLIP's text positions and layers into the temporal transformer (CLIP4Clip's start)."""
        load_clip_text_layers(self.temporal, weights)

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm pooled temporal-transformer outputs."""
        self.check_clip_loaded()
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
            **self.emcl_describe(),
        }

    def label(self) -> str:
        """e.g. ``seqtransf[layers=4,init=clip]``: depth and start are always stated."""
        extras = [f"layers={self.layers}", f"init={self.init}"]
        if self.activation != DEFAULT_ACTIVATION:
            extras.append(self.activation)
        return bracket_label(self.head_name, extras + self.option_extras())
