"""``dsl``: the Dual Softmax Loss, with the semantics of the official CAMoE ``DSL.py``.

For one direction, with S the (B, B) logit matrix (rows queries, columns targets):

    S' = S ⊙ softmax(S / τ, dim=0) · B          # prior: how strongly column j claims row i
    loss = mean_i −log softmax(S', dim=1)[i, i]

applied to S (text→video) and Sᵀ (video→text) and averaged. S is the
logit-scaled similarity (≈ 100 · cos once the scale is trained), which is why the
official τ is as large as 1000: the prior softmax(S / τ) stays gentle during
training. The prior is not detached, as in the official code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from vtrbench.errors import VtrbenchError
from vtrbench.losses.base import register_loss
from vtrbench.losses.infonce import check_logits
from vtrbench.registry import unknown_name_message

DEFAULT_TEMPERATURE = 1000.0


def _one_direction(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, B) → (B,) per-row losses."""
    prior = F.softmax(logits / temperature, dim=0) * logits.shape[0]
    return -F.log_softmax(logits * prior, dim=1).diagonal()


@register_loss("dsl")
class DualSoftmaxLoss:
    """Options: ``temperature`` τ of the prior softmax (default 1000, the official value)."""

    #: ``vtrbench tune``: the prior's temperature τ, log-uniform around the official 1000.
    search_space: dict[str, dict[str, Any]] = {"temperature": {"low": 1.0, "high": 10000.0, "log": True}}

    def __init__(self, *, temperature: float = DEFAULT_TEMPERATURE, **unknown: Any) -> None:
        if unknown:
            name = sorted(unknown)[0]
            raise VtrbenchError(unknown_name_message("dsl option", name, ["temperature"]))
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature)  # NaN passes "<= 0" and would train on NaN
            or temperature <= 0
        ):
            raise VtrbenchError(f"dsl option temperature must be a number > 0, finite, got {temperature!r}")
        self.temperature = float(temperature)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, B) logits → scalar loss."""
        check_logits(logits)
        t2v = _one_direction(logits, self.temperature)
        v2t = _one_direction(logits.t(), self.temperature)
        return 0.5 * (t2v.mean() + v2t.mean())

    def __repr__(self) -> str:
        return f"DualSoftmaxLoss(temperature={self.temperature:g})"
