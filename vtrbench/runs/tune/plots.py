"""``vtrbench tune --plot DIR``: per cell, Optuna's optimisation history and hyperparameter importances
(its matplotlib renderers: files, no browser).

Importances (Optuna's fANOVA: a random forest fitted to the complete trials) are drawn only from at
least :data:`vtrbench.defaults.TUNE_MIN_IMPORTANCE_TRIALS` complete trials; from fewer the forest has
almost nothing to split and the ranking is noise, so the plot is left out and the reason returned.
Every figure's title says how many complete trials it shows and how many of them were random start-up
trials.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from vtrbench import defaults
from vtrbench._imports import try_import
from vtrbench.defaults import TUNE_MIN_IMPORTANCE_TRIALS
from vtrbench.errors import VtrbenchError
from vtrbench.runs.tune.notes import startup_in
from vtrbench.runs.tune.storage import ATTR, import_optuna, open_storage, vtrbench_studies


def plot_studies(storage: str, out: Path, *, heartbeat: int = defaults.TUNE_HEARTBEAT) -> list[Path]:
    """The figures of :func:`plot_cells` (the interface of earlier releases: files only)."""
    return plot_cells(storage, out, heartbeat=heartbeat)[0]


def plot_cells(
    storage: str,
    out: Path,
    *,
    heartbeat: int = defaults.TUNE_HEARTBEAT,
    min_importance: int = TUNE_MIN_IMPORTANCE_TRIALS,
) -> tuple[list[Path], list[str]]:
    """Write ``<cell>.history.png`` for every cell and ``<cell>.importance.png`` for the cells with at
    least ``min_importance`` complete trials; returns (files written, one line per plot left out)."""
    # fail before any work, with the install hint, when matplotlib is missing (the report's words)
    matplotlib = try_import("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = import_optuna()
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    db = open_storage(storage, heartbeat=heartbeat, read_only=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VtrbenchError(f"cannot write --plot {out}: {e.strerror}") from None
    written, skipped = [], []
    for name in vtrbench_studies(db):
        study = optuna.load_study(study_name=name, storage=db)
        cell = name.split(":", 1)[1]
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        identity = study.user_attrs.get(ATTR)
        startup = startup_in(str(identity.get("sampler", ""))) if isinstance(identity, dict) else None
        caption = f"{len(complete)} complete trials" + (
            f", the first {startup} random start-up" if startup else ""
        )
        plots = [("history", plot_optimization_history)]
        if len(complete) >= min_importance:
            plots.append(("importance", plot_param_importances))
        else:
            skipped.append(
                f"{cell}: no importance plot from {len(complete)} complete trial(s); at least "
                f"{min_importance} are needed for fANOVA importances that are not noise"
            )
        for kind, fn in plots:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib renderers experimental
                try:
                    ax = fn(study)
                except (ValueError, RuntimeError) as e:  # e.g. every trial scored the same
                    skipped.append(f"{cell}: no {kind} plot ({str(e).strip().splitlines()[0][:120]})")
                    continue
            loc = next((x for x in ("left", "center", "right") if ax.get_title(loc=x)), "center")
            ax.set_title(f"{cell}: {ax.get_title(loc=loc)} ({caption})", loc=loc)
            path = out / f"{cell}.{kind}.png"
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
    return written, skipped
