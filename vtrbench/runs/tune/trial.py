"""One trial of ``vtrbench tune``: sample a cell's space, train on train-minus-validation, score it.

The **objective** is validation text-to-video R@1 + video-to-text R@1 (raw similarity, no
post-processing) after the trial's last epoch; every epoch is reported to the pruner, and a trial
whose loss diverges scores 0. Only train (and ``--val-split``) rows are ever read.

The TPE sampler is re-seeded for every trial from (--seed, cell, number of finished trials), and every
trial trains with --seed, so a resumed study samples what an uninterrupted one with the same seed would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import torch

from vtrbench.config import TrainConfig
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.progress import scoped

# the module, not its functions: tests replace vtrbench.runs.train.fit to prove no training starts
from vtrbench.runs import train as train_mod
from vtrbench.runs.checks import resolve_head_options
from vtrbench.runs.data import holdout, keep_videos, load_split
from vtrbench.runs.spec import RunSpec, resolved_precision
from vtrbench.runs.tune import fidelity as fid
from vtrbench.runs.tune.folds import OBJECTIVES, fold_parts, objective_of, pruner_step, running_mean, spread
from vtrbench.runs.tune.plan import Cell, Plan
from vtrbench.runs.tune.space import Param, split_params
from vtrbench.runs.tune.status import counts, worker_id
from vtrbench.runs.tune.storage import import_optuna


class BudgetTaken(Exception):
    """Raised inside a trial that finds the budget filled by trials numbered before it."""


def trial_seed(seed: int, cell: str, k: int) -> int:
    """The sampler's seed for a cell's trial after ``k`` finished ones."""
    return int(hashlib.sha256(f"{seed}:{cell}:{k}".encode()).hexdigest()[:8], 16)


def objective_value(val: dict[str, float], objective: str = "r1") -> float:
    """The objective (``--objective``) from an epoch's validation metrics."""
    return objective_of(val, objective)


def _load(plan_: Plan, cache: Any, data: dict[bool, list[tuple[Any, Any]]], patches: bool) -> list:
    """[(train minus validation, validation)], one per fold (one without --folds): only train (and
    --val-split) rows are ever read."""
    if patches not in data:
        spec = plan_.spec
        train = load_split(cache, plan_.train_split, patches=patches)
        if spec.val_split is not None:
            val = load_split(cache, spec.val_split, patches=patches)
            data[patches] = [(_without_videos(cache, train, val), val)]
        elif spec.folds is not None:
            data[patches] = fold_parts(train, spec.folds, spec.seed)
        else:
            data[patches] = [holdout(train, float(spec.val_fraction or 0))]
    return data[patches]


def _without_videos(cache: Any, train: Any, val: Any) -> Any:
    """``train`` minus any video (by id) that is also in ``val``: validation stays disjoint."""
    ids = cache.read_strings("videos", "id")
    val_ids = {ids[int(r)] for r in val.video_rows}
    keep = torch.tensor([ids[int(r)] not in val_ids for r in train.video_rows], dtype=torch.bool)
    if bool(keep.all()):
        return train
    if not bool(keep.any()):
        raise VtrbenchError("every train video is also in --val-split: nothing left to train on")
    return keep_videos(train, keep)


def one_trial(
    plan_: Plan, cell: Cell, study: Any, cache: Any, data: dict, finished: int, progress: Any = None
) -> None:
    """Run one trial of ``cell``'s study (or stop it at once when the budget is already filled).

    ``progress``: the tuning's display (:mod:`vtrbench.progress`); the trial's training steps show on
    it while it runs (in a log: a line every few seconds, none of its own at the start and end)."""
    optuna = import_optuna()
    spec = plan_.spec
    # the sampler is a function of (seed, cell, finished trials): a resumed study samples as an
    # uninterrupted one would
    study.sampler = optuna.samplers.TPESampler(
        seed=trial_seed(spec.seed, cell.name, finished), n_startup_trials=cell.startup
    )

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", worker_id())
        earlier = counts(study, before=trial.number)
        if earlier.finished + earlier.running >= spec.trials:
            trial.set_user_attr("failed_because", "the budget was filled by other workers' trials")
            raise BudgetTaken()
        params = {name: _suggest(trial, p) for name, p in cell.space.items()}
        if progress is None:
            return train_trial(plan_, cell, params, cache, data, trial)
        label = f"{cell.head}/{cell.loss} trial {trial.number}"
        with scoped(progress, label, ends=False) as view:
            return train_trial(plan_, cell, params, cache, data, trial, progress=view)

    study.optimize(objective, n_trials=1, catch=(BudgetTaken,))


def _suggest(trial: Any, p: Param) -> Any:
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]


def train_trial(
    plan_: Plan, cell: Cell, params: dict[str, Any], cache: Any, data: dict, trial: Any, progress: Any = None
) -> float:
    """Train one sampled configuration on train-minus-validation (each fold's with --folds: the
    objective is then the mean over the fold models); returns the objective (``progress``:
    a display its training steps are shown on). With --fidelity data,epochs the trial climbs the
    rungs (:mod:`vtrbench.runs.tune.fidelity`); each trial records the caption-epochs it trained."""
    if plan_.rungs:
        return _train_rungs(plan_, cell, params, cache, data, trial, progress)
    spec = plan_.spec
    t0 = time.perf_counter()
    done: list[float] = []
    every: dict[str, list[float]] = {}
    epochs_run = caption_epochs = 0
    for fold in range(spec.folds or 1):  # --folds K: K fold models, each from --seed
        head, train, val, config = _prepared(plan_, cell, params, cache, data, fold=fold)
        last, epochs = _fit_fold(
            plan_, head, (train, val), config, trial, done, (t0, epochs_run, caption_epochs), progress
        )
        epochs_run += epochs
        caption_epochs += train.n_texts * epochs
        trial.set_user_attr("epochs_run", epochs_run)
        if last is None:  # the loss diverged: a real outcome of this configuration, not a crash
            return 0.0
        done.append(objective_value(last, spec.objective))
        for name in OBJECTIVES:  # both objectives of each fold model: their noise can be compared
            every.setdefault(name, []).append(objective_value(last, name))
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
    if spec.folds is not None:
        trial.set_user_attr("fold_values", done)
        trial.set_user_attr("fold_std", spread(done))
        trial.set_user_attr("fold_objectives", every)
    return running_mean(done[:-1], done[-1])


def _fit_fold(
    plan_: Plan,
    head: Any,
    part: tuple[Any, Any],
    config: Any,
    trial: Any,
    done: list[float],
    started: tuple[float, int, int],
    progress: Any,
) -> tuple[dict[str, float] | None, int]:
    """Train one fold's model: (its last validation metrics, or None when the loss diverged; epochs
    trained). Each epoch reports the running mean over folds to the pruner (folds.py pruner_step)."""
    optuna = import_optuna()
    spec = plan_.spec
    fold = len(done)
    train, val = part
    # the trial's start, and the epochs and caption-epochs its earlier folds trained
    t0, epochs_before, captions_before = started
    epochs_run = 0

    def on_epoch(entry: dict[str, Any]) -> None:
        nonlocal epochs_run
        epochs_run = int(entry["epoch"])
        trial.set_user_attr("caption_epochs", captions_before + train.n_texts * epochs_run)
        value = running_mean(done, objective_value(entry["val"], spec.objective))
        trial.report(value, pruner_step(fold, epochs_run, spec.max_epochs))
        if trial.should_prune():
            trial.set_user_attr("epochs_run", epochs_before + epochs_run)
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
            raise optuna.TrialPruned(
                f"pruned after epoch {epochs_run}" + (f" of fold {fold}" if fold else "")
            )

    try:
        history = train_mod.fit(
            head, train, config, spec.seed, device=spec.device, val=val, on_epoch=on_epoch, progress=progress
        )
    except VtrbenchError as e:
        trial.set_user_attr("diverged", str(e))
        return None, epochs_run
    return dict(history[-1]["val"]), epochs_run


def _train_rungs(
    plan_: Plan, cell: Cell, params: dict[str, Any], cache: Any, data: dict, trial: Any, progress: Any
) -> float:
    """--fidelity data,epochs: each rung trains afresh (--seed) on its nested video subset."""
    spec = plan_.spec
    trial_epochs = int(split_params(params)[0].get("epochs", spec.max_epochs))

    def train_rung(rung: fid.Rung) -> fid.RungResult:
        head, train, val, config = _prepared(plan_, cell, params, cache, data, epochs=rung.epochs)
        part = fid.subset(train, rung.fraction, spec.seed)
        epochs_run = 0

        def on_epoch(entry: dict[str, Any]) -> None:
            nonlocal epochs_run
            epochs_run = int(entry["epoch"])

        try:
            history = train_mod.fit(
                head,
                part,
                config,
                spec.seed,
                device=spec.device,
                val=val,
                on_epoch=on_epoch,
                progress=progress,
            )
        except VtrbenchError as e:  # diverged: scores 0, as a full-fidelity trial would
            return fid.RungResult(0.0, part.n_texts * epochs_run, epochs_run, str(e))
        value = objective_value(history[-1]["val"], spec.objective)
        return fid.RungResult(value, part.n_texts * epochs_run, epochs_run)

    t0 = time.perf_counter()
    try:
        return fid.climb(trial, plan_.rungs, int(spec.eta or 0), trial_epochs, train_rung)
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))


def _prepared(
    plan_: Plan,
    cell: Cell,
    params: dict[str, Any],
    cache: Any,
    data: dict,
    epochs: int | None = None,
    fold: int = 0,
) -> tuple[Any, Any, Any, TrainConfig]:
    """(head seeded with --seed, train minus validation, validation, config) of one configuration;
    ``epochs`` replaces the sampled epochs (a rung's); ``fold``: which fold's parts (--folds)."""
    spec = plan_.spec
    recipe, head_opts, loss_opts = split_params(params)
    recipe.setdefault("epochs", spec.max_epochs)  # a plugin space without epochs trains the cap
    if epochs is not None:
        recipe["epochs"] = epochs
    run = RunSpec(
        cache_path=spec.cache_path,
        head=cell.head,
        loss=cell.loss,
        head_options=head_opts,
        loss_options=loss_opts,
        device=spec.device,
        compile=spec.compile,
        progress=False,
        **recipe,
    )
    options, _ = resolve_head_options(run, cache)
    embed_dim = int(cache.attrs["embed_dim"])
    train_mod.seed_everything(spec.seed)
    head = create_head(cell.head, embed_dim=embed_dim, **options)
    if getattr(head, "init", None) == "clip":
        head.init_from(cache.backbone_weights() or {}, cache.backbone_info())
    train, val = _load(plan_, cache, data, "patches" in head.requires)[fold]
    loss_options = dict(loss_opts)
    if cell.loss == "dsl":
        loss_options.setdefault("temperature", 1000.0)
    config = TrainConfig(
        cache_hash=cache.config_hash,
        head=cell.head,
        loss=cell.loss,
        head_options=dict(head.describe()),
        loss_options=loss_options,
        train_split=plan_.train_split,
        test_split="",  # never evaluated here
        precision=resolved_precision(run),
        compile=run.compile,
        **{k: v for k, v in dataclasses.asdict(run).items() if k in recipe},
    )
    return head, train, val, config
