"""Equal-budget hyperparameter search on validation data (Optuna), one study per (head, loss) cell.

What a trial does (:mod:`vtrbench.runs.tune.trial`): sample the cell's space, train on the train split
minus the validation videos (:func:`vtrbench.runs.data.holdout`, by video, seeded), score every epoch on the
validation videos and let the pruner stop a hopeless trial. The test split is never loaded: only its row
indices are read (:mod:`vtrbench.runs.tune.plan`), to refuse a validation or train split that is the test
split or shares its videos.

Budget and workers: every cell gets ``trials`` *finished* trials (complete + pruned). A worker starts
a trial only while finished + running < trials, and a trial that finds, once created, that the
trials numbered before it already fill the budget stops at once (recorded as failed, with the
reason): two workers on one study never overshoot. A worker that dies (``kill -9``) leaves a RUNNING
trial; it is marked failed when its worker is seen dead (:mod:`vtrbench.runs.tune.status`), and the next
worker's trial takes its place.

Determinism: the TPE sampler is re-seeded for every trial from (--seed, cell, number of finished
trials), and every trial trains with --seed, so a resumed study samples what an uninterrupted one
with the same seed would (one worker; several workers interleave in timing order).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from vtrbench.cache import FeatureCache
from vtrbench.errors import VtrbenchError
from vtrbench.progress import make_progress
from vtrbench.runs.tune.notes import startup_in
from vtrbench.runs.tune.plan import Plan, TuneSpec, make_pruner, plan, sampler_notes
from vtrbench.runs.tune.status import Counts, counts, fail_dead_workers
from vtrbench.runs.tune.storage import (
    ATTR,
    STUDY_PREFIX,
    import_optuna,
    open_storage,
    shown_storage,
    storage_errors,
    vtrbench_studies,
)
from vtrbench.runs.tune.trial import one_trial


def _differing(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return key
    return None


def open_studies(plan_: Plan, storage: Any) -> dict[str, Any]:
    """Create or load every cell's study; refuse one made with another cache/space/grid/... (naming
    the differing key) unless --overwrite, which deletes the storage's vtrbench studies first."""
    optuna = import_optuna()
    spec = plan_.spec
    existing = vtrbench_studies(storage)
    if spec.overwrite:
        for name in existing:
            optuna.delete_study(study_name=name, storage=storage)
        existing = []
    wanted = {c.name: c for c in plan_.cells}
    for name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        old = study.user_attrs.get(ATTR)
        if not isinstance(old, dict):
            continue  # created but not yet stamped by its worker
        # a cell of another grid differs in "grid" from every cell of this one
        new = wanted[name].identity if name in wanted else plan_.cells[0].identity
        key = _differing(old, new) if name in wanted else "grid"
        recorded = startup_in(str(old.get("sampler", "")))
        if key == "sampler" and spec.startup_trials is None and recorded is not None:
            # without --startup-trials a resumed or extended study keeps the start-up it was made with
            wanted[name].adopt_startup(recorded)
            key = _differing(old, wanted[name].identity)
        if key is not None:
            # studies made before --objective existed used R@1's (the default is now RSum)
            hint = "pass the --objective it was made with (r1 before --objective existed), " * (
                key == "objective"
            )
            raise VtrbenchError(
                f"the study {shown_storage(spec.storage)} ({name[len(STUDY_PREFIX) :]}) was made with "
                f"another {key} ({_short(old.get(key))} vs now {_short(new.get(key))}); {hint}use "
                "--overwrite to start it again, or another --study"
            )
    studies = {}
    for cell in plan_.cells:
        study = optuna.create_study(
            storage=storage,
            study_name=cell.name,
            direction="maximize",
            load_if_exists=True,
            pruner=make_pruner(spec.pruner, spec.max_epochs * (spec.folds or 1)),  # fold steps
        )
        if ATTR not in study.user_attrs:
            study.set_user_attr(ATTR, cell.identity)
        study.set_user_attr("trials", spec.trials)
        studies[cell.name] = study
    return studies


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- the run


@dataclass
class TuneOutcome:
    trials_run: int = 0
    counts: dict[str, Counts] = field(default_factory=dict)


def run_tune(spec: TuneSpec, *, console: Any = None) -> TuneOutcome:
    """Tune every cell of ``spec`` to ``spec.trials`` finished trials (see the module docstring).

    A storage that stops answering mid-study (a database server stopped or unreachable) is one line:
    finished trials are kept in the storage, and the same command resumes to exactly the budget."""
    try:
        return _run_tune(spec, console=console)
    except VtrbenchError:
        raise  # already one line (e.g. "cannot open the study storage …"), whatever its cause chain
    except Exception as e:
        # Optuna can also surface a storage that went away as an error of its own bookkeeping (an
        # UnboundLocalError in _run_trial while it handles the database error): look down the chain
        cause = _storage_cause(e, storage_errors())
        if cause is None:
            raise
        raise VtrbenchError(
            f"the study storage {shown_storage(spec.storage)} stopped answering ({type(cause).__name__}); "
            "finished trials are kept: run the same command again when it is back"
        ) from None


def _storage_cause(error: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``error`` or the first exception of its cause/context chain that is one of ``kinds``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _run_tune(spec: TuneSpec, *, console: Any = None) -> TuneOutcome:
    import_optuna()
    plan_ = plan(spec)  # every check before the storage is touched and before any training
    bar = make_progress(console, enabled=spec.progress)  # (a bad progress setting too)
    storage = open_storage(spec.storage, heartbeat=spec.heartbeat)
    studies = open_studies(plan_, storage)
    for kind, text in sampler_notes(plan_):  # after open_studies: a resumed study keeps its start-up
        if console is not None and (kind == "warning" or spec.progress):
            style = "bold yellow" if kind == "warning" else "dim"
            console.print(f"[{style}]{kind}:[/] {text}", highlight=False, soft_wrap=True)
    cells = list(plan_.cells)
    if spec.shard is not None and cells:
        k = spec.shard.index % len(cells)
        cells = cells[k:] + cells[:k]
    outcome = TuneOutcome()
    data: dict[bool, tuple[Any, Any]] = {}
    with FeatureCache(spec.cache_path) as cache, bar:
        # a resumed study starts at its finished trials (the rate and ETA count this run's only)
        tasks = {}
        for cell in cells:
            c = counts(studies[cell.name])
            tasks[cell.name] = bar.add_task(
                cell.name[len(STUDY_PREFIX) :],
                total=spec.trials,
                completed=min(c.finished, spec.trials),
                info=_info(studies[cell.name], c),
                unit="trials",
            )
        pending = list(cells)
        while pending:
            progressed = False
            for cell in list(pending):
                study = studies[cell.name]
                fail_dead_workers(study, 3 * spec.heartbeat)
                c = counts(study)
                bar.update(tasks[cell.name], completed=min(c.finished, spec.trials), info=_info(study, c))
                if c.finished >= spec.trials:
                    pending.remove(cell)
                    outcome.counts[cell.name] = c
                    continue
                if c.finished + c.running >= spec.trials:
                    continue  # other workers' trials may fill the budget; come back
                one_trial(plan_, cell, study, cache, data, c.finished, progress=bar)
                outcome.trials_run += 1
                progressed = True
            if pending and not progressed:
                time.sleep(min(2.0, max(0.2, spec.heartbeat / 5)))
    return outcome


def _info(study: Any, c: Counts) -> str:
    best = ""
    if c.complete:
        try:
            best = f" best {study.best_value:.2f}"
        except ValueError:
            pass
    return f"{c.pruned} pruned, {c.failed} failed, {c.running} running{best}"
