"""Deprecated: moved to :mod:`vtrbench.runs` (``vtrbench.runs.runner`` and its
siblings). These names stay importable from here for code written against earlier releases."""

from __future__ import annotations

from vtrbench.runs.checks import (  # noqa: F401
    check_csls_k,
    check_output_file,
    check_overlap,
    check_qb_k,
    resolve_head_options,
    split_overlap,
)
from vtrbench.runs.data import (  # noqa: F401
    held_out_videos,
    holdout,
    keep_videos,
)
from vtrbench.runs.runner import (  # noqa: F401
    checkpoint_paths,
    is_done,
    make_config,
    planned_path,
    preflight,
    run_eval,
    run_training,
)
from vtrbench.runs.spec import (  # noqa: F401
    LOSS_OPTION_RULES,
    LOSS_OPTIONS,
    Outcome,
    RunSpec,
    check_device,
    check_head_options,
    check_loss_options,
    resolved_precision,
    validate_spec,
)
