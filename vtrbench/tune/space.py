"""Deprecated: moved to :mod:`vtrbench.runs.tune.space`."""

from vtrbench.runs.tune.space import (
    MAX_EPOCHS,
    RECIPE_KEYS,
    Param,
    cell_space,
    describe_space,
    load_space_file,
    parse_param,
    space_plain,
    split_params,
)

__all__ = [
    "MAX_EPOCHS",
    "RECIPE_KEYS",
    "Param",
    "cell_space",
    "describe_space",
    "load_space_file",
    "parse_param",
    "space_plain",
    "split_params",
]
