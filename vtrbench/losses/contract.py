"""The contract a loss keeps: one dry call on a (4 x 4) logit matrix before any work.

Family layer (losses/): imports only losses.base and the ground below it.
"""

from __future__ import annotations

from typing import Any

import torch

from vtrbench.errors import VtrbenchError
from vtrbench.losses.base import LOSSES


def check_loss(loss_fn: Any, name: str) -> None:
    """One dry call of a loss that is not built in: a finite scalar with a gradient."""
    origin = LOSSES.origin(name)
    if origin.get("kind") == "builtin":
        return
    who = f"plugin loss {name!r} ({origin.get('source')})"
    logits = (torch.randn(4, 4, generator=torch.Generator().manual_seed(0)) * 10).requires_grad_(True)
    try:
        value = loss_fn(logits)
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(f"{who} failed on a dry (4 x 4) logit matrix: {type(e).__name__}: {e}") from None
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        raise VtrbenchError(f"{who} must return a scalar tensor, got {getattr(value, 'shape', type(value))}")
    if not torch.isfinite(value):
        raise VtrbenchError(f"{who} returned {value.item()} on a dry (4 x 4) logit matrix")
    if not value.requires_grad:
        raise VtrbenchError(f"{who} returned a value without a gradient (detached from the logits)")
