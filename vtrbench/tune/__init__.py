"""Deprecated: ``vtrbench tune`` moved to :mod:`vtrbench.runs.tune`; these names are re-exported.

The names resolve on first use (PEP 562), not when this package is imported: ``vtrbench.tune.notes``
(imported by the report) must not load torch and the training code through this ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import Any

# re-exported name -> its module under vtrbench.runs.tune
_MOVED = {
    "TuneSpec": "plan",
    "cell_space": "space",
    "describe_space": "space",
    "load_space_file": "space",
    "read_cells": "status",
    "run_tune": "study",
    "storage_url": "storage",
}

__all__ = sorted(_MOVED)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"vtrbench.runs.tune.{_MOVED[name]}"), name)
