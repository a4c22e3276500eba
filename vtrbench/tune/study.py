"""Deprecated: split into :mod:`vtrbench.runs.tune.storage`, ``plan``, ``status``, ``trial`` and ``study``;
this module re-exports their public names."""

from vtrbench.runs.tune.plan import (
    OBJECTIVE,
    PRUNERS,
    SCHEMA,
    TPE_STARTUP,
    VAL_SEED,
    Cell,
    Plan,
    TuneSpec,
    make_pruner,
    plan,
)
from vtrbench.runs.tune.status import Counts, TunedCell, counts, read_cells
from vtrbench.runs.tune.storage import (
    ATTR,
    INSTALL_HINT,
    STUDY_PREFIX,
    cell_name,
    import_optuna,
    open_storage,
    shown_storage,
    storage_url,
    vtrbench_studies,
)
from vtrbench.runs.tune.study import TuneOutcome, open_studies, run_tune
from vtrbench.runs.tune.trial import BudgetTaken, objective_value, train_trial, trial_seed

__all__ = [
    "ATTR",
    "INSTALL_HINT",
    "OBJECTIVE",
    "PRUNERS",
    "SCHEMA",
    "STUDY_PREFIX",
    "TPE_STARTUP",
    "VAL_SEED",
    "BudgetTaken",
    "Cell",
    "Counts",
    "Plan",
    "TuneOutcome",
    "TuneSpec",
    "TunedCell",
    "cell_name",
    "counts",
    "import_optuna",
    "make_pruner",
    "objective_value",
    "open_storage",
    "open_studies",
    "plan",
    "read_cells",
    "run_tune",
    "shown_storage",
    "storage_url",
    "train_trial",
    "trial_seed",
    "vtrbench_studies",
]
