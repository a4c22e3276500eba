"""The plan of a ``vtrbench tune`` run: its spec, and everything checked before any training.

:func:`plan` checks the options, the splits (the test split is only named, to be refused as a source
of tuning data), the search spaces and each head's needs against the cache, and stamps every cell with
the identity its study records (cache, splits, space, sampler, pruner, ...).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrbench import defaults
from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.config import check_seed
from vtrbench.defaults import TUNE_STARTUP_MAX, TUNE_STARTUP_SHARE
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.heads.base import HEADS, list_heads
from vtrbench.losses.base import LOSSES, list_losses
from vtrbench.plugins import provenance_for
from vtrbench.registry import unknown_name_message
from vtrbench.runs.checks import split_overlap
from vtrbench.runs.compiled import check_compile
from vtrbench.runs.data import held_out_videos
from vtrbench.runs.train import check_requirements
from vtrbench.runs.tune import fidelity as fid
from vtrbench.runs.tune.folds import (
    check_fold_count,
    check_folds,
    check_objective,
    objective_text,
    validation_size_notes,
)
from vtrbench.runs.tune.notes import sampler_text, startup_in
from vtrbench.runs.tune.space import Param, cell_space, load_space_file, space_plain
from vtrbench.runs.tune.storage import cell_name, import_optuna

SCHEMA = 1
OBJECTIVE = objective_text("r1", None)  # earlier releases' only objective (kept for imports)
PRUNERS = ("median", "hyperband", "none")
# The start-up of earlier releases (kept for imports): now scaled to the budget, see startup_trials.
TPE_STARTUP = 5
VAL_SEED = 12345  # vtrbench.runs.data.holdout's fixed split seed


@dataclass(frozen=True)
class TuneSpec:
    cache_path: Path
    heads: tuple[str, ...]
    losses: tuple[str, ...]
    trials: int
    max_epochs: int
    storage: str  # URL (see storage_url)
    val_fraction: float | None = defaults.TUNE_VAL_FRACTION
    val_split: str | None = None
    space_file: Path | None = None
    seed: int = 0
    train_split: str | None = None
    test_split: str | None = None
    device: str = "cpu"
    # torch.compile of every trial's training step (a speed option here: not part of a cell's identity)
    compile: str = defaults.COMPILE
    pruner: str | None = None  # None: defaults.TUNE_PRUNER (--fidelity epochs), none (--fidelity none)
    overwrite: bool = False
    progress: bool = True
    heartbeat: int = defaults.TUNE_HEARTBEAT
    shard: Any = None  # vtrbench.shard.Shard: worker i of n starts at cell i (all workers share all cells)
    startup_trials: int | None = None  # TPE's random start-up trials; None: startup_trials(trials)
    folds: int | None = defaults.TUNE_FOLDS  # K video-disjoint folds instead of one hold-out
    objective: str = defaults.TUNE_OBJECTIVE  # runs/tune/folds.py OBJECTIVES
    fidelity: str = defaults.TUNE_FIDELITY  # "epochs", "data,epochs" or "none" (runs/tune/fidelity.py)
    rungs: str | None = None  # --rungs F:E,... (--fidelity data,epochs; None: fidelity.default_rungs)
    eta: int | None = None  # --eta (--fidelity data,epochs; None: defaults.TUNE_ETA)


@dataclass
class Cell:
    head: str
    loss: str
    space: dict[str, Param]
    identity: dict[str, Any]

    @property
    def name(self) -> str:
        return cell_name(self.head, self.loss)

    @property
    def startup(self) -> int:
        """TPE's random start-up trials, as the identity records them."""
        n = startup_in(str(self.identity.get("sampler", "")))
        return TPE_STARTUP if n is None else n

    def adopt_startup(self, n: int) -> None:
        """Use the start-up an existing study was made with (a resumed or extended study keeps it)."""
        self.identity["sampler"] = sampler_text(n)


def startup_trials(trials: int) -> int:
    """TPE's random start-up trials for a budget of ``trials`` per cell when none is given.

    A quarter of the budget, at least 1 and at most Optuna's default of 10: TPE needs a few
    finished trials to model the space, but a fixed 5 made every budget of 5 or less pure random
    search (issue 30); 20 trials keep the 5 of earlier releases.
    """
    return min(TUNE_STARTUP_MAX, max(1, trials // TUNE_STARTUP_SHARE))


def sampler_notes(plan_: Plan) -> list[tuple[str, str]]:
    """("warning" | "note", text) lines to print before tuning starts: how many trials are random."""
    t = plan_.spec.trials
    out = [("warning", text) for text in plan_.val_notes]
    for n in sorted({c.startup for c in plan_.cells}):
        cells = [c.identity["cell"] for c in plan_.cells if c.startup == n]
        which = "every cell" if len(cells) == len(plan_.cells) else ", ".join(cells)
        if t <= n:
            out.append(
                (
                    "warning",
                    f"with {t} trial(s) per cell and {n} random start-up trial(s), TPE never leaves random "
                    f"search ({which}): this is random search; give more --trials or fewer --startup-trials",
                )
            )
        else:
            out.append(
                (
                    "note",
                    f"sampler: {n} random start-up trial(s), then TPE for {t - n} of the {t} trials per cell "
                    f"({which})",
                )
            )
    return out


@dataclass
class Plan:
    spec: TuneSpec  # with its pruner, fidelity and eta resolved (resolve_fidelity)
    train_split: str
    test_split: str
    cells: list[Cell] = field(default_factory=list)
    val_notes: list[str] = field(default_factory=list)  # warnings: a validation part that is small
    rungs: list[fid.Rung] = field(default_factory=list)  # --fidelity data,epochs only


def _pruner_text(pruner: str, max_epochs: int, folds: int | None = None) -> str:
    # with folds the steps are fold * max_epochs + epoch, on the running mean over folds
    on = f"; steps fold x {max_epochs} + epoch, on the running mean over folds" if folds else ""
    if pruner == "median":
        return "MedianPruner(n_startup_trials=3, n_warmup_steps=2) on the per-epoch validation objective" + on
    if pruner == "hyperband":
        top = max_epochs * (folds or 1)
        return f"HyperbandPruner(min_resource=1, max_resource={top}, reduction_factor=3) on epochs" + on
    return "none"


def make_pruner(pruner: str, max_epochs: int) -> Any:
    """The Optuna pruner ``--pruner`` names (described in the study's identity by _pruner_text)."""
    optuna = import_optuna()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _resolve_splits(spec: TuneSpec, cache: Any) -> tuple[str, str]:
    """(train, test): the test split is only named, to be refused as a source of tuning data."""
    attrs = cache.attrs
    train = spec.train_split or str(attrs.get("default_train") or "")
    test = spec.test_split or str(attrs.get("default_test") or "")
    if not train:
        raise VtrbenchError(
            f"{cache.path} has no standard train split; pass --train-split "
            f"(splits: {', '.join(cache.splits)})"
        )
    cache.split_rows(train)
    if test:
        cache.split_rows(test)
    if train == test:
        raise VtrbenchError(
            f"--train-split {train!r} is the test split: tuning carves validation videos from a train "
            "split and never reads the test split; name another train split"
        )
    if spec.val_split is not None:
        cache.split_rows(spec.val_split)
        if spec.val_split == test:
            raise VtrbenchError(
                f"--val-split {spec.val_split!r} is the test split: tuning never reads it; use "
                "--val-fraction to carve validation videos from the train split, or name another split"
            )
        if spec.val_split == train:
            raise VtrbenchError(f"--val-split {spec.val_split!r} is the train split; name another split")
    if test:
        for name in (train, spec.val_split):
            shared = split_overlap(cache, name, test) if name else []
            if shared:
                raise VtrbenchError(
                    f"{len(shared)} video(s) of {name!r} are also in the test split {test!r} (e.g. "
                    f"{shared[0]}): tuning on them would read test data; use splits without them"
                )
    return train, test


def _usable(cache: Any, split: str) -> int:
    rows = cache.split_rows(split)[0]
    return int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())


def _validation(spec: TuneSpec, cache: Any, train: str) -> tuple[dict[str, Any], list[str]]:
    """The validation a study records, and warnings when a validation part is small (refused when
    below the minimum: runs/tune/folds.py validation_size_notes)."""
    if spec.val_split is not None:
        n = _usable(cache, spec.val_split)
        return {"split": spec.val_split}, validation_size_notes(n, f"--val-split {spec.val_split}")
    n_ok = _usable(cache, train)
    if spec.folds is not None:
        sizes = check_fold_count(spec.folds, n_ok)
        notes = validation_size_notes(min(sizes), f"--folds {spec.folds} (smallest fold)")
        return {"folds": spec.folds, "by": "video", "seed": spec.seed, "of": train, "sizes": sizes}, notes
    fraction = float(spec.val_fraction or 0)
    n_val = held_out_videos(n_ok, fraction)
    notes = validation_size_notes(n_val, f"--val-fraction {fraction:g} of {n_ok} train videos")
    return {"fraction": fraction, "by": "video", "seed": VAL_SEED, "of": train}, notes


def _check_options(spec: TuneSpec) -> None:
    """The spec's own options and names, before any file is opened."""
    check_seed(spec.seed)
    if spec.trials < 1:
        raise VtrbenchError(f"--trials must be at least 1, got {spec.trials}")
    n = spec.startup_trials
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise VtrbenchError(f"--startup-trials must be an integer >= 0, got {spec.startup_trials!r}")
    if spec.max_epochs < 1:
        raise VtrbenchError(f"--max-epochs must be at least 1, got {spec.max_epochs}")
    if spec.pruner is not None and spec.pruner not in PRUNERS:
        raise VtrbenchError(f"--pruner must be one of {', '.join(PRUNERS)}, got {spec.pruner!r}")
    check_objective(spec.objective)
    if check_folds(spec.folds) is not None and (spec.val_split is not None or spec.val_fraction):
        other = "--val-split" if spec.val_split is not None else "--val-fraction"
        raise VtrbenchError(f"give --folds or {other}, not both (the folds are the validation)")
    check_compile(spec.compile, spec.device)  # unavailable: one line before any study is touched
    if spec.val_split is not None and spec.val_fraction:
        raise VtrbenchError("give --val-fraction or --val-split, not both")
    if (
        spec.folds is None
        and spec.val_split is None
        and not (spec.val_fraction and 0 < spec.val_fraction < 1)
    ):
        raise VtrbenchError(f"--val-fraction must be in (0, 1), got {spec.val_fraction}")
    if not spec.heads or not spec.losses:
        raise VtrbenchError("give at least one head (--heads) and one loss (--losses)")
    heads = [h for h in list_heads() if h != "zeroshot"]
    for h in spec.heads:
        if h not in heads:
            raise VtrbenchError(unknown_name_message("head", h, heads))
    for loss in spec.losses:
        if loss not in list_losses():
            raise VtrbenchError(unknown_name_message("loss", loss, list_losses()))


def plan(spec: TuneSpec) -> Plan:
    """Check the whole run before any training: options, splits, spaces, storage, existing studies."""
    _check_options(spec)
    spec, rungs = fid.resolve(spec)  # pruner, fidelity and eta resolved; the rungs checked
    if rungs and spec.folds is not None:  # a rung trains one model on one validation part
        raise VtrbenchError("give --folds or --fidelity data,epochs, not both (rungs use one hold-out)")
    override = load_space_file(spec.space_file) if spec.space_file is not None else {}
    where = f"--space {spec.space_file}" if spec.space_file is not None else "search space"
    for kind, names in (("head", spec.heads), ("loss", spec.losses)):
        for name, params in override.get(kind, {}).items():
            _check_override_names(kind, name, params, where, names)
    with FeatureCache(spec.cache_path) as cache:
        train, test = _resolve_splits(spec, cache)
        embed_dim = int(cache.attrs["embed_dim"])
        fingerprint = cache.fingerprint()
        out = Plan(spec, train, test, rungs=rungs)
        for h in spec.heads:  # a cache the head cannot read at all (no patch tokens) is named first
            check_requirements(create_head(h, embed_dim=embed_dim), cache, h)
        validation, out.val_notes = _validation(spec, cache, train)
        grid = sorted(f"{h}+{loss}" for h in spec.heads for loss in spec.losses)
        startup = spec.startup_trials if spec.startup_trials is not None else startup_trials(spec.trials)
        for h in spec.heads:
            for loss in spec.losses:
                space = cell_space(
                    h, loss, max_epochs=spec.max_epochs, embed_dim=embed_dim, override=override, where=where
                )
                if not space:
                    raise VtrbenchError(f"{h}+{loss}: the search space is empty (nothing to tune)")
                identity = {
                    "schema": SCHEMA,
                    "cell": f"{h}+{loss}",
                    "grid": grid,
                    "cache": fingerprint,
                    "train_split": train,
                    "test_split": test,
                    "validation": validation,
                    "space": space_plain(space),
                    "max_epochs": spec.max_epochs,
                    "seed": spec.seed,
                    "sampler": sampler_text(startup),
                    "pruner": fid.pruner_text(rungs, int(spec.eta or 0))
                    if rungs
                    else _pruner_text(str(spec.pruner), spec.max_epochs, spec.folds),
                    "objective": objective_text(spec.objective, spec.folds),
                    "plugins": provenance_for(head=h, loss=loss),
                }
                if rungs:  # absent otherwise: studies of earlier releases keep their identity
                    identity["fidelity"] = fid.identity(rungs, int(spec.eta or 0), spec.seed, spec.max_epochs)
                out.cells.append(Cell(h, loss, space, json.loads(json.dumps(identity))))
    return out


def _check_override_names(
    kind: str, name: str, params: dict[str, Any], where: str, tuned: tuple[str, ...]
) -> None:
    """A [head.X]/[loss.X] table must be for a head/loss this run tunes (a table for another one would
    be silently unused), and each of its parameters an option of X (a typo must not go unsearched)."""
    known_names = [h for h in list_heads() if h != "zeroshot"] if kind == "head" else list_losses()
    if name not in known_names:
        raise VtrbenchError(f"{where}: [{kind}.{name}]: " + unknown_name_message(kind, name, known_names))
    if name not in tuned:
        flag = "--heads" if kind == "head" else "--losses"
        raise VtrbenchError(
            f"{where}: [{kind}.{name}]: {kind} {name} is not tuned in this run ({flag} "
            f"{','.join(tuned)}): its table would be ignored; remove it or add {name} to {flag}"
        )
    obj = (HEADS if kind == "head" else LOSSES).get(name)
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    known = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "embed_dim"]
    for key in params:
        if key not in known:
            raise VtrbenchError(f"{where}: [{kind}.{name}] " + unknown_name_message("parameter", key, known))
