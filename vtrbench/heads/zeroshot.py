"""``zeroshot``: frozen CLIP mean pooling, nothing to train.

video = unit(masked mean of unit frame embeddings); text = unit(EOT token feature).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vtrbench.heads._layers import (
    eot_input,
    mean_of_unit_frames,
    option_names,
    reject_unknown_options,
    video_inputs,
)
from vtrbench.heads.base import Batch, Head, register_head


@register_head("zeroshot")
class ZeroShotHead(Head):
    """No parameters besides the base logit scale, which does not change any ranking."""

    text_needs_tokens = False  # text = adapted EOT feature only

    trainable = False
    option_schema = {}  # no options (and no logit_scale: nothing is trained)
    search_space: dict[str, dict[str, Any]] = {}  # nothing to train, nothing to tune

    def __init__(self, embed_dim: int, **unknown: Any) -> None:
        reject_unknown_options("zeroshot", unknown, option_names(type(self)))
        super().__init__(embed_dim)

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm EOT features."""
        return F.normalize(eot_input(batch, self.log_logit_scale.dtype), dim=-1)

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm mean of unit-norm valid frames."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return mean_of_unit_frames(frames, mask)

    def describe(self) -> dict[str, Any]:
        return {}

    def label(self) -> str:
        return "zeroshot"
