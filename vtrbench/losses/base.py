"""The loss interface: a callable on the (B, B) logit matrix of a batch.

Rows are texts, columns videos, and the diagonal holds the matching pairs (two
captions of the same video in one batch are both negatives, as in CLIP4Clip).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vtrbench.registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]
LossFactory = Callable[..., LossFn]
LOSSES: Registry[LossFactory] = Registry("loss")


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    return LOSSES.register(name)


def list_losses() -> list[str]:
    _import_builtin()
    return LOSSES.names()


def create_loss(name: str, **options: Any) -> LossFn:
    _import_builtin()
    return LOSSES.get(name)(**options)


def _import_builtin() -> None:
    from vtrbench.losses import dsl, infonce  # noqa: F401
