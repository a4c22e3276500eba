"""``seqtransf`` (CLIP4Clip seqTransf on frozen features).

video: frames + position embeddings → pre-LN transformer (QuickGELU, key padding
mask) → + input frames → unit per frame → masked mean → unit.
text: as ``meanp`` (residual linear adapter on the unit EOT feature).

CLIP4Clip initialises its temporal transformer from the first layers of CLIP's
text transformer; with cached features there are no backbone weights at hand,
so vtrbench uses CLIP's random initialisation scheme instead.
"""

from __future__ import annotations

from typing import Any

import torch

from vtrbench.heads._layers import (
    TemporalEncoder,
    adapt_unit,
    eot_feature,
    mean_of_unit_frames,
    option_names,
    positive_int,
    reject_unknown_options,
    resolve_heads,
    text_inputs,
    unit_adapter,
    video_inputs,
)
from vtrbench.heads.base import Batch, Head, register_head

DEFAULT_LAYERS = 4


@register_head("seqtransf")
class SeqTransfHead(Head):
    """Options: ``layers`` (4), ``heads`` (8, or the largest divisor of D below 8),
    ``max_frames`` (64), ``adapter`` (True, text side only)."""

    text_needs_tokens = False  # text = adapted EOT feature only

    def __init__(
        self,
        embed_dim: int,
        *,
        layers: int = DEFAULT_LAYERS,
        heads: int | None = None,
        max_frames: int = 64,
        adapter: bool = True,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("seqtransf", unknown, option_names(type(self)))
        super().__init__(embed_dim)
        self.layers = positive_int("seqtransf", "layers", layers)
        self.heads = resolve_heads("seqtransf", embed_dim, heads)
        self.max_frames = positive_int("seqtransf", "max_frames", max_frames)
        self.adapter = bool(adapter)
        self.temporal = TemporalEncoder(embed_dim, self.layers, self.heads, self.max_frames)
        self.text_adapter = unit_adapter(embed_dim, self.adapter)

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted EOT features."""
        tokens, _, eot = text_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.text_adapter, eot_feature(tokens, eot))

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm pooled temporal-transformer outputs."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return mean_of_unit_frames(self.temporal(frames, mask), mask)

    def describe(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "heads": self.heads,
            "max_frames": self.max_frames,
            "adapter": self.adapter,
        }

    def label(self) -> str:
        extras = [] if self.layers == DEFAULT_LAYERS else [f"layers={self.layers}"]
        if not self.adapter:
            extras.append("no-adapter")
        return f"seqtransf[{','.join(extras)}]" if extras else "seqtransf"
