"""Deprecated: grids moved to :mod:`vtrbench.runs.grid`, ``ablate --tuned`` to :mod:`vtrbench.runs.tune.tuned`
and ``read_toml_file`` to :mod:`vtrbench.io`; this module re-exports their public names."""

from vtrbench.io import read_toml_file
from vtrbench.runs.grid import (
    ALL_HEADS,
    CAMOE_AXES,
    TEMPORAL_AXES,
    TEMPORAL_HEADS,
    TRAIN_KEYS,
    Grid,
    GridOutcome,
    load_grid,
    load_grid_plugins,
    run_grid,
    validate_grid,
)
from vtrbench.runs.tune.tuned import run_tuned, tuned_specs

__all__ = [
    "ALL_HEADS",
    "CAMOE_AXES",
    "TEMPORAL_AXES",
    "TEMPORAL_HEADS",
    "TRAIN_KEYS",
    "Grid",
    "GridOutcome",
    "load_grid",
    "load_grid_plugins",
    "read_toml_file",
    "run_grid",
    "run_tuned",
    "tuned_specs",
    "validate_grid",
]
