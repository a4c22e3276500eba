"""An example vtrbench plugin: attention pooling over frames with one learned query.

video = unit(sum_t softmax_t(q . W f_t / sqrt(D)) f_t) over valid frames; text = unit(EOT feature).
Load it with ``--plugin examples/attnpool/vtrbench_attnpool.py`` or install this folder
(``pip install examples/attnpool``: its pyproject.toml declares the entry point).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.api import Batch, Head, register_head

__version__ = "0.1.0"


@register_head("attnpool")
class AttentionPoolHead(Head):
    """One learned query attends over the frames; the text side is CLIP's sentence feature."""

    text_needs_tokens = False  # reads only the EOT feature: vtrbench keeps one row per caption

    def __init__(self, embed_dim: int, temperature: float = 1.0, **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"attnpool: unknown options {sorted(unknown)}")
        super().__init__(embed_dim)
        self.temperature = float(temperature)
        self.query = nn.Parameter(torch.zeros(embed_dim))  # zero query = mean pooling at the start
        self.key = nn.Linear(embed_dim, embed_dim, bias=False)

    def encode_text(self, batch: Batch) -> torch.Tensor:
        tokens = batch["tokens"].float()
        eot = batch["eot"].long().clamp(max=tokens.shape[1] - 1)
        return F.normalize(tokens[torch.arange(tokens.shape[0]), eot], dim=-1)

    def encode_video(self, batch: Batch) -> torch.Tensor:
        frames, mask = F.normalize(batch["frames"].float(), dim=-1), batch["frame_mask"].bool()
        scores = self.key(frames) @ self.query / (math.sqrt(self.embed_dim) * self.temperature)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1).nan_to_num(0.0)
        return F.normalize((weights.unsqueeze(-1) * frames).sum(1), dim=-1)

    def describe(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def label(self) -> str:
        return "attnpool" if self.temperature == 1.0 else f"attnpool[t={self.temperature:g}]"
