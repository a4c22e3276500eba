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

from typing import Any

import torch
from torch import nn

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


def valid_first(frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, T, D), mask (B, T) → the same frames with the valid ones first (order kept), new mask."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    frames = frames.gather(1, order.unsqueeze(-1).expand_as(frames))
    return frames, mask.gather(1, order)


@register_head("seqlstm")
class SeqLSTMHead(Head):
    """Options: ``adapter`` (True: residual linear adapter on the text side); ``logit_scale``
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
        reject_unknown_options("seqlstm", unknown, option_names(type(self)))
        super().__init__(embed_dim, logit_scale_init=logit_scale_init, logit_scale=logit_scale)
        self.adapter = bool(adapter)
        # PyTorch's default LSTM initialisation, as in CLIP4Clip (its init_weights skips LSTMs).
        self.lstm = nn.LSTM(embed_dim, embed_dim, num_layers=1, batch_first=True)
        self.text_adapter = unit_adapter(embed_dim, self.adapter)

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted EOT features."""
        tokens, _, eot = text_inputs(batch, self.log_logit_scale.dtype)
        return adapt_unit(self.text_adapter, eot_feature(tokens, eot))

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm masked mean of unit (LSTM output + frame)."""
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        frames, mask = valid_first(frames, mask)
        out, _ = self.lstm(frames)
        return mean_of_unit_frames(out + frames, mask)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, **self.scale_options()}

    def label(self) -> str:
        extras = ([] if self.adapter else ["no-adapter"]) + self.scale_label()
        return f"seqlstm[{','.join(extras)}]" if extras else "seqlstm"
