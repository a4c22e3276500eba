"""``vtrbench tune``: equal-budget hyperparameter search of heads x losses on validation data.

Optuna is an optional extra (``pip install 'vtrbench[tune]'``); nothing here imports it until a
study is opened. See :mod:`vtrbench.tune.study` (the run) and :mod:`vtrbench.tune.space` (spaces).
"""

from vtrbench.tune.space import cell_space, describe_space, load_space_file
from vtrbench.tune.study import TuneSpec, read_cells, run_tune, storage_url

__all__ = [
    "TuneSpec",
    "cell_space",
    "describe_space",
    "load_space_file",
    "read_cells",
    "run_tune",
    "storage_url",
]
