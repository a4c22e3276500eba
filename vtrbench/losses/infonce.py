"""``infonce``: CLIP4Clip's symmetric cross-entropy (CrossEn applied both ways).

L = ½ [ mean_i −log softmax(S, dim=1)[i, i] + mean_i −log softmax(Sᵀ, dim=1)[i, i] ]
for the (B, B) logit matrix S (rows texts, columns videos, diagonal positives).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vtrbench.errors import VtrbenchError
from vtrbench.losses.base import register_loss


def check_logits(logits: torch.Tensor) -> None:
    """The losses take a square (B, B) matrix whose diagonal holds the pairs."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected a square (B, B) logit matrix, got shape {tuple(logits.shape)}")


@register_loss("infonce")
class InfoNCELoss:
    """Symmetric InfoNCE; takes no options."""

    search_space: dict[str, dict[str, Any]] = {}  # no options

    def __init__(self, **unknown: Any) -> None:
        if unknown:
            raise VtrbenchError(f"loss 'infonce' takes no options; got {', '.join(sorted(unknown))}")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, B) logits → scalar loss."""
        check_logits(logits)
        targets = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))

    def __repr__(self) -> str:
        return "InfoNCELoss()"
