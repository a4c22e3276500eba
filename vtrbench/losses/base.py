"""The loss interface: a callable on the (B, B) logit matrix of a batch.

Rows are texts, columns videos, and the diagonal holds the matching pairs (two
captions of the same video in one batch are both negatives, as in CLIP4Clip).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from vtrbench.registry import Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]
LossFactory = Callable[..., LossFn]
# The built-in losses, by module: imported on first use by the registry (base.py never imports them).
BUILTIN_MODULES = ("vtrbench.losses.dsl", "vtrbench.losses.infonce", "vtrbench.losses.triplet")
LOSSES: Registry[LossFactory] = Registry(
    "loss", entry_point_group="vtrbench.losses", builtin_modules=BUILTIN_MODULES
)


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator: register a loss factory (``**options -> loss(logits)``) under ``name``."""
    return LOSSES.register(name)


def list_losses() -> list[str]:
    """Names of the built-in, plugin and installed (entry point) losses."""
    return LOSSES.available()  # built-ins, loaded plugins and installed entry points


def __getattr__(name: str) -> Any:
    # Deprecated re-export: create_loss moved to vtrbench.factory (above the families).
    if name == "create_loss":
        from vtrbench.factory import create_loss

        warnings.warn(
            "vtrbench.losses.base.create_loss moved to vtrbench.factory.create_loss",
            DeprecationWarning,
            stacklevel=2,
        )
        return create_loss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
