"""``vtrbench tune --plot DIR``: per cell, Optuna's optimisation history and hyperparameter importances
(its matplotlib renderers: files, no browser)."""

from __future__ import annotations

import warnings
from pathlib import Path

from vtrbench._imports import try_import
from vtrbench.errors import VtrbenchError
from vtrbench.runs.tune.storage import import_optuna, open_storage, vtrbench_studies


def plot_studies(storage: str, out: Path, *, heartbeat: int = 10) -> list[Path]:
    """Write ``<cell>.history.png`` and ``<cell>.importance.png`` for every cell; returns the files.
    A cell with fewer than two complete trials gets its history only (importances need a spread)."""
    # fail before any work, with the install hint, when matplotlib is missing (the report's words)
    matplotlib = try_import("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = import_optuna()
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    db = open_storage(storage, heartbeat=heartbeat)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtrbenchError(f"cannot write --plot {out}: {e.strerror}") from None
    written = []
    for name in vtrbench_studies(db):
        study = optuna.load_study(study_name=name, storage=db)
        cell = name.split(":", 1)[1]
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        plots = [("history", plot_optimization_history)]
        if len(complete) >= 2:
            plots.append(("importance", plot_param_importances))
        for kind, fn in plots:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib renderers experimental
                try:
                    ax = fn(study)
                except (ValueError, RuntimeError):  # e.g. every trial scored the same: no importances
                    continue
            loc = next((x for x in ("left", "center", "right") if ax.get_title(loc=x)), "center")
            ax.set_title(f"{cell}: {ax.get_title(loc=loc)}", loc=loc)
            path = out / f"{cell}.{kind}.png"
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
    return written
