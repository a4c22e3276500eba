"""``seqlstm`` (CLIP4Clip seqLSTM on frozen features).

video: valid frames → one-layer unidirectional LSTM (hidden = D) → + input frames →
unit per frame → masked mean → unit. text: as ``meanp`` (residual linear adapter on the
unit EOT feature).

CLIP4Clip packs each video to its first ``sum(mask)`` frames before the LSTM, which
assumes the valid frames come first. vtrbench moves the valid frames to the front
(stable, so their order is kept) and runs the LSTM over the padded sequence: an LSTM
is causal, so its outputs at the valid positions are those of the packed run, and the
padded positions are excluded from the mean. For prefix masks (what vtrbench caches
hold) this is CLIP4Clip's computation; for masks with holes it is the packed
computation of the valid frames, which CLIP4Clip would not give.
"""

from __future__ import annotations

import torch
from torch import nn

from vtrbench.heads._common import BasicEotHead
from vtrbench.heads._layers import mean_of_unit_frames, video_inputs
from vtrbench.heads.base import Batch, register_head


def valid_first(frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, T, D), mask (B, T) → the same frames with the valid ones first (order kept), new mask."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    frames = frames.gather(1, order.unsqueeze(-1).expand_as(frames))
    return frames, mask.gather(1, order)


@register_head("seqlstm")
class SeqLSTMHead(BasicEotHead):
    """Options (:data:`vtrbench.heads._common.ADAPTED_OPTIONS`): ``adapter`` (default True) switches
    the residual linear adapter of the text side; the logit scale."""

    head_name = "seqlstm"

    def build(self) -> None:
        # PyTorch's default LSTM initialisation, as in CLIP4Clip (its init_weights skips LSTMs).
        self.lstm = nn.LSTM(self.embed_dim, self.embed_dim, num_layers=1, batch_first=True)
        self.text_adapter = self.new_adapter()

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm masked mean of unit (LSTM output + frame)."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        frames, mask = valid_first(frames, mask)
        out, _ = self.lstm(frames)
        return mean_of_unit_frames(out + frames, mask)
