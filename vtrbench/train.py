"""Deprecated: moved to :mod:`vtrbench.runs` (``vtrbench.runs.train`` and its
siblings). These names stay importable from here for code written against earlier releases."""

from __future__ import annotations

from vtrbench.runs.data import (  # noqa: F401
    TEXT_KEYS,
    VIDEO_KEYS,
    SplitData,
    load_split,
    resident_on,
    take,
    text_for,
)
from vtrbench.runs.record import (  # noqa: F401
    build_result,
    cache_info,
    head_label,
    load_checkpoint,
    provenance,
    save_checkpoint,
    tuned_suffix,
)
from vtrbench.runs.scoring import (  # noqa: F401
    embed,
    evaluate_head,
    gate_statistics,
    states,
)
from vtrbench.runs.train import (  # noqa: F401
    check_requirements,
    fit,
    lr_lambda,
    seed_everything,
)
