"""``meanp`` (CLIP4Clip meanP on frozen features): zeroshot + residual linear adapters.

video = unit(A_v(unit(masked mean of unit frames)));  text = unit(A_t(unit(EOT))).

The video adapter sits after pooling. An affine map commutes with an average, so
adapting the pooled vector equals adapting every (unit) frame and then pooling,
at 1/T of the cost, and the adapter sees one input scale (a unit vector) for
every video whatever its number of valid frames.
"""

from __future__ import annotations

from typing import Any

import torch

from vtrbench.heads._layers import (
    BOOL_OPTION,
    adapt_unit,
    eot_feature,
    mean_of_unit_frames,
    option_names,
    reject_unknown_options,
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


@register_head("meanp")
class MeanPHead(Head):
    """Options: ``adapter`` (default True) switches both residual linear adapters; ``logit_scale``
    ("learned" | "fixed" at ``logit_scale_init``, default 100)."""

    search_space = {**Head.search_space, **LOGIT_SCALE_SPACE}  # the recipe and the logit scale

    text_needs_tokens = False  # text = adapted EOT feature only

    option_schema = {"adapter": BOOL_OPTION, **LOGIT_SCALE_OPTION}

    def __init__(
        self,
        embed_dim: int,
        *,
        adapter: bool = True,
        logit_scale: str = "learned",
        logit_scale_init: float = LOGIT_SCALE_INIT,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("meanp", unknown, option_names(type(self)))
        super().__init__(embed_dim, logit_scale_init=logit_scale_init, logit_scale=logit_scale)
        self.adapter = bool(adapter)
        self.text_adapter = unit_adapter(embed_dim, self.adapter)
        self.video_adapter = unit_adapter(embed_dim, self.adapter)

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted EOT features."""
        tokens, _, eot = text_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.text_adapter, eot_feature(tokens, eot))

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted mean of unit frames."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.video_adapter, mean_of_unit_frames(frames, mask))

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, **self.scale_options()}

    def label(self) -> str:
        extras = ([] if self.adapter else ["no-adapter"]) + self.scale_label()
        return f"meanp[{','.join(extras)}]" if extras else "meanp"
