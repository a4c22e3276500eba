"""``meanp`` (CLIP4Clip meanP on frozen features): zeroshot + residual linear adapters.

video = unit(A_v(unit(masked mean of unit frames)));  text = unit(A_t(unit(EOT))).

The video adapter sits after pooling. An affine map commutes with an average, so
adapting the pooled vector equals adapting every (unit) frame and then pooling,
at 1/T of the cost, and the adapter sees one input scale (a unit vector) for
every video whatever its number of valid frames.
"""

from __future__ import annotations

import torch

from vtrbench.heads._common import BasicEotHead
from vtrbench.heads._layers import adapt_unit, mean_of_unit_frames, video_inputs
from vtrbench.heads.base import Batch, register_head


@register_head("meanp")
class MeanPHead(BasicEotHead):
    """Options (:data:`vtrbench.heads._common.ADAPTED_OPTIONS`): ``adapter`` (default True) switches
    both residual linear adapters, text and video; the logit scale."""

    head_name = "meanp"

    def build(self) -> None:
        self.text_adapter = self.new_adapter()
        self.video_adapter = self.new_adapter()

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted mean of unit frames."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.video_adapter, mean_of_unit_frames(frames, mask))
