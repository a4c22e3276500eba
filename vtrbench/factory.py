"""Building heads and losses by name: the one way in for the command line, grids, tuning and the API.

Above the families (as timm's ``_factory.py`` sits above its registry): a family's ``base.py`` keeps
its registry and the ``Head``/loss interfaces and never imports this module; here a registered name
becomes an object, with its options checked against the head's schema first and, for plugins, one
dry run of the contract (:mod:`vtrbench.heads.contract`, :mod:`vtrbench.losses.contract`) before any
work starts.

Layer 3: imports the families and the ground below them.
"""

from __future__ import annotations

from typing import Any

from vtrbench.heads.base import HEADS, Head, validate_head_options
from vtrbench.heads.contract import check_head
from vtrbench.losses.base import LOSSES, LossFn
from vtrbench.losses.contract import check_loss

__all__ = ["create_head", "create_loss"]


def create_head(name: str, embed_dim: int, **options: Any) -> Head:
    """Build a registered head. ``options`` are the head's own keyword arguments, checked against
    its ``option_schema`` first (one-line errors naming the head and the option)."""
    HEADS.load_builtins()
    options = validate_head_options(name, options)
    head = HEADS.construct(name, embed_dim=embed_dim, **options)  # a plugin's failure: one line
    check_head(head, name, embed_dim)  # plugin heads only: one dry forward, before any work
    return head


def create_loss(name: str, **options: Any) -> LossFn:
    """Build a registered loss: a callable on the (B, B) logit matrix returning a scalar."""
    LOSSES.load_builtins()
    loss = LOSSES.construct(name, **options)  # a plugin's failure: one line
    check_loss(loss, name)  # plugin losses only: one dry call, before any work
    return loss
