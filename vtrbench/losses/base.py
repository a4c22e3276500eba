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
LOSSES: Registry[LossFactory] = Registry("loss", entry_point_group="vtrbench.losses")


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator: register a loss factory (``**options -> loss(logits)``) under ``name``."""
    return LOSSES.register(name)


def list_losses() -> list[str]:
    """Names of the built-in, plugin and installed (entry point) losses."""
    _import_builtin()
    return LOSSES.available()  # built-ins, loaded plugins and installed entry points


def create_loss(name: str, **options: Any) -> LossFn:
    """Build a registered loss: a callable on the (B, B) logit matrix returning a scalar."""
    _import_builtin()
    from vtrbench.plugins import check_loss, construct

    loss = construct(LOSSES, name, **options)  # a plugin's failure: one line

    check_loss(loss, name)  # plugin losses only: one dry call, before any work
    return loss


def _import_builtin() -> None:
    from vtrbench.losses import dsl, infonce, triplet  # noqa: F401


LOSSES.builtins(_import_builtin)
