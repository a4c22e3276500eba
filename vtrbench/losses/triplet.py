"""``triplet``: the max-margin (hinge) ranking loss of VSE++ (Faghri et al., "VSE++: Improving
Visual-Semantic Embeddings with Hard Negatives", BMVC 2018), the loss of Collaborative Experts and MMT.

With s(t, v) the similarity of caption t and video v and α the margin, the paper's per-pair losses
for a positive pair (t, v) are (Section 3, the "sum of hinges" ℓ_SH and the "max of hinges" ℓ_MH):

    ℓ_SH(t, v) = Σ_{v' ≠ v} [α − s(t, v) + s(t, v')]₊ + Σ_{t' ≠ t} [α − s(t, v) + s(t', v)]₊
    ℓ_MH(t, v) = max_{v' ≠ v} [α − s(t, v) + s(t, v')]₊ + max_{t' ≠ t} [α − s(t, v) + s(t', v)]₊

with the negatives v', t' taken from the batch (rows of the (B, B) logit matrix are captions,
columns videos, the diagonal holds the positives; two captions of one video in a batch are
negatives of each other, as for infonce and dsl).

What vtrbench fixes, and why:

* s is the cosine: the loss receives ``logit_scale · cos`` and divides by :data:`SCALE` = 100, the
  heads' initial and maximal logit scale (heads/base.py), so ``margin`` is in cosine units as in
  the paper (α = 0.2). While a head's learned scale stays at 100 (it starts there and is clamped
  there), s is exactly the cosine.
* the batch loss is the mean over the B positive pairs (VSE++'s code sums them): the same gradient
  scale as infonce/dsl under the shared recipe (AdamW, gradient clipping at 1.0).

Options: ``margin`` α (default 0.2, VSE++'s value; a finite number > 0) and ``reduction``
``"sum"`` (SH, default: the form CE and MMT use) or ``"hardest"`` (MH, VSE++'s).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vtrbench.errors import VtrbenchError
from vtrbench.losses.base import register_loss
from vtrbench.losses.infonce import check_logits
from vtrbench.registry import unknown_name_message

DEFAULT_MARGIN = 0.2
REDUCTIONS = ("sum", "hardest")
SCALE = 100.0  # vtrbench.heads.base.LOGIT_SCALE_MAX: logits / SCALE is the cosine at the heads' scale


@register_loss("triplet")
class TripletLoss:
    """VSE++ max-margin ranking loss; options ``margin`` (0.2) and ``reduction`` (sum | hardest)."""

    def __init__(self, *, margin: float = DEFAULT_MARGIN, reduction: str = "sum", **unknown: Any) -> None:
        if unknown:
            name = sorted(unknown)[0]
            raise VtrbenchError(unknown_name_message("triplet option", name, ["margin", "reduction"]))
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not math.isfinite(margin)
            or margin <= 0
        ):
            # margin 0 is minimised by collapsing every score to one value; NaN would train on NaN
            raise VtrbenchError(f"triplet option margin must be a finite number > 0, got {margin!r}")
        if reduction not in REDUCTIONS:
            choices = ", ".join(REDUCTIONS)
            raise VtrbenchError(f"triplet option reduction must be one of {choices}, got {reduction!r}")
        self.margin = float(margin)
        self.reduction = reduction

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, B) logits → scalar loss."""
        check_logits(logits)
        s = logits / SCALE
        positive = s.diagonal()
        negative = torch.eye(s.shape[0], dtype=torch.bool, device=s.device).logical_not()
        # caption anchors: row i against the other videos; video anchors: column j against the other captions
        t2v = (self.margin - positive[:, None] + s).clamp(min=0) * negative
        v2t = (self.margin - positive[None, :] + s).clamp(min=0) * negative
        if self.reduction == "hardest":
            return (t2v.amax(dim=1) + v2t.amax(dim=0)).mean()
        return (t2v.sum(dim=1) + v2t.sum(dim=0)).mean()

    def __repr__(self) -> str:
        return f"TripletLoss(margin={self.margin:g}, reduction={self.reduction!r})"
