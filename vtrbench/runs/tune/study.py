"""Equal-budget hyperparameter search on validation data (Optuna), one study per (head, loss) cell.

What a trial does: sample the cell's space, train on the train split minus the validation videos
(:func:`vtrbench.runner.holdout`, by video, seeded), score every epoch on the validation videos and
let the pruner stop a hopeless trial. The **objective** is validation text-to-video R@1 +
video-to-text R@1 (raw similarity, no post-processing) after the trial's last epoch; a trial whose
loss diverges scores 0. The test split is never loaded: only its row indices are read, to refuse a
validation or train split that is the test split or shares its videos.

Budget and workers: every cell gets ``trials`` *finished* trials (complete + pruned). A worker starts
a trial only while finished + running < trials, and a trial that finds, once created, that the
trials numbered before it already fill the budget stops at once (recorded as failed, with the
reason): two workers on one study never overshoot. A worker that dies (``kill -9``) leaves a RUNNING
trial; it is marked failed when its worker is seen dead (same host, by pid) or its heartbeat is older
than the grace period (RDB storages), and the next worker's trial takes its place.

Determinism: the TPE sampler is re-seeded for every trial from (--seed, cell, number of finished
trials), and every trial trains with --seed, so a resumed study samples what an uninterrupted one
with the same seed would (one worker; several workers interleave in timing order).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError
from vtrbench.tune.space import Param, cell_space, load_space_file, parse_param, space_plain, split_params

STUDY_PREFIX = "vtrbench:"
ATTR = "vtrbench"  # the study's identity (user attribute)
SCHEMA = 1
OBJECTIVE = (
    "validation t2v R@1 + v2t R@1 (raw similarity) after the trial's last epoch; a diverged trial scores 0"
)
PRUNERS = ("median", "hyperband", "none")
TPE_STARTUP = 5  # random trials before TPE models the space
VAL_SEED = 12345  # vtrbench.runner.holdout's fixed split seed
INSTALL_HINT = "vtrbench tune needs Optuna: pip install 'vtrbench[tune]'"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise VtrbenchError(INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ---------------------------------------------------------------- storage


def storage_url(study: Path | None, storage: str | None) -> str:
    """``--study PATH`` (SQLite file) or ``--storage URL`` (any Optuna RDB URL, or journal:FILE)."""
    if (study is None) == (storage is None):
        raise VtrbenchError("give exactly one of --study PATH.db or --storage URL")
    if study is not None:
        from vtrbench.runner import check_output_file

        check_output_file(Path(study), "study")
        Path(study).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(study).resolve()}"
    assert storage is not None
    if not (storage.startswith("journal:") or "://" in storage):
        raise VtrbenchError(
            f"--storage {storage!r}: expected an Optuna storage URL (sqlite:///FILE, postgresql://..., "
            "mysql://...) or journal:FILE"
        )
    return storage


def shown_storage(url: str) -> str:
    """The storage as recorded in results: a file's name, or the URL without its password."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).name
    if url.startswith("journal:"):
        return "journal:" + Path(url[len("journal:") :]).name
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def open_storage(url: str, *, heartbeat: int = 10) -> Any:
    """An Optuna storage; an unreachable one is a one-line error (before any training)."""
    optuna = import_optuna()
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:") :])
            if not path.parent.is_dir():
                raise OSError(f"folder {path.parent} does not exist")
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # several workers write one SQLite file: wait for its lock instead of failing at once
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
        import warnings

        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeats are "experimental" in Optuna since 2.9
                    storage = optuna.storages.RDBStorage(
                        url, heartbeat_interval=heartbeat, grace_period=3 * heartbeat, **kwargs
                    )
                break
            except Exception as e:  # noqa: BLE001
                # two workers creating a new database's tables at once: one loses the race, retries
                racing = any(w in str(e) for w in ("UNIQUE constraint", "already exists", "locked"))
                if not racing or attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
        optuna.study.get_all_study_names(storage)  # a real round trip: the URL answers
        return storage
    except VtrbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - drivers raise anything; the user needs one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise VtrbenchError(f"cannot open the study storage {shown_storage(url)}: {first}") from None


def cell_name(head: str, loss: str) -> str:
    return f"{STUDY_PREFIX}{head}+{loss}"


def vtrbench_studies(storage: Any) -> list[str]:
    optuna = import_optuna()
    return sorted(n for n in optuna.study.get_all_study_names(storage) if n.startswith(STUDY_PREFIX))


# ---------------------------------------------------------------- the plan (everything checked first)


@dataclass(frozen=True)
class TuneSpec:
    cache_path: Path
    heads: tuple[str, ...]
    losses: tuple[str, ...]
    trials: int
    max_epochs: int
    storage: str  # URL (see storage_url)
    val_fraction: float | None = 0.1
    val_split: str | None = None
    space_file: Path | None = None
    seed: int = 0
    train_split: str | None = None
    test_split: str | None = None
    device: str = "cpu"
    pruner: str = "median"
    overwrite: bool = False
    progress: bool = True
    heartbeat: int = 10
    shard: Any = None  # vtrbench.shard.Shard: worker i of n starts at cell i (all workers share all cells)


@dataclass
class Cell:
    head: str
    loss: str
    space: dict[str, Param]
    identity: dict[str, Any]

    @property
    def name(self) -> str:
        return cell_name(self.head, self.loss)


@dataclass
class Plan:
    spec: TuneSpec
    train_split: str
    test_split: str
    cells: list[Cell] = field(default_factory=list)


def _pruner_text(pruner: str, max_epochs: int) -> str:
    if pruner == "median":
        return "MedianPruner(n_startup_trials=3, n_warmup_steps=2) on the per-epoch validation objective"
    if pruner == "hyperband":
        return f"HyperbandPruner(min_resource=1, max_resource={max_epochs}, reduction_factor=3) on epochs"
    return "none"


def make_pruner(pruner: str, max_epochs: int) -> Any:
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
        from vtrbench.runner import split_overlap

        for name in (train, spec.val_split):
            shared = split_overlap(cache, name, test) if name else []
            if shared:
                raise VtrbenchError(
                    f"{len(shared)} video(s) of {name!r} are also in the test split {test!r} (e.g. "
                    f"{shared[0]}): tuning on them would read test data; use splits without them"
                )
    return train, test


def plan(spec: TuneSpec) -> Plan:
    """Check the whole run before any training: options, splits, spaces, storage, existing studies."""
    from vtrbench.cache import STATUS_OK, FeatureCache
    from vtrbench.config import check_seed
    from vtrbench.heads.base import list_heads
    from vtrbench.losses.base import list_losses
    from vtrbench.plugins import provenance_for
    from vtrbench.registry import unknown_name_message

    check_seed(spec.seed)
    if spec.trials < 1:
        raise VtrbenchError(f"--trials must be at least 1, got {spec.trials}")
    if spec.max_epochs < 1:
        raise VtrbenchError(f"--max-epochs must be at least 1, got {spec.max_epochs}")
    if spec.pruner not in PRUNERS:
        raise VtrbenchError(f"--pruner must be one of {', '.join(PRUNERS)}, got {spec.pruner!r}")
    if spec.val_split is not None and spec.val_fraction:
        raise VtrbenchError("give --val-fraction or --val-split, not both")
    if spec.val_split is None and not (spec.val_fraction and 0 < spec.val_fraction < 1):
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
    override = load_space_file(spec.space_file) if spec.space_file is not None else {}
    where = f"--space {spec.space_file}" if spec.space_file is not None else "search space"
    for kind, names in (("head", spec.heads), ("loss", spec.losses)):
        for name, params in override.get(kind, {}).items():
            if name in names:
                _check_override_names(kind, name, params, where)
    with FeatureCache(spec.cache_path) as cache:
        train, test = _resolve_splits(spec, cache)
        embed_dim = int(cache.attrs["embed_dim"])
        fingerprint = cache.fingerprint()
        if spec.val_split is None:
            from vtrbench.runner import held_out_videos

            rows = cache.split_rows(train)[0]
            n_ok = int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())
            held_out_videos(n_ok, float(spec.val_fraction or 0))
        from vtrbench.heads.base import create_head
        from vtrbench.train import check_requirements

        out = Plan(spec, train, test)
        grid = sorted(f"{h}+{loss}" for h in spec.heads for loss in spec.losses)
        validation = (
            {"split": spec.val_split}
            if spec.val_split is not None
            else {"fraction": float(spec.val_fraction or 0), "by": "video", "seed": VAL_SEED, "of": train}
        )
        for h in spec.heads:
            check_requirements(create_head(h, embed_dim=embed_dim), cache, h)
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
                    "sampler": f"TPESampler(n_startup_trials={TPE_STARTUP}), re-seeded per trial from "
                    "(seed, cell, finished trials)",
                    "pruner": _pruner_text(spec.pruner, spec.max_epochs),
                    "objective": OBJECTIVE,
                    "plugins": provenance_for(head=h, loss=loss),
                }
                out.cells.append(Cell(h, loss, space, json.loads(json.dumps(identity))))
    return out


def _check_override_names(kind: str, name: str, params: dict[str, Any], where: str) -> None:
    """A [head.X]/[loss.X] parameter must be an option of X (a typo must not go unsearched)."""
    import inspect

    from vtrbench.heads.base import HEADS
    from vtrbench.losses.base import LOSSES

    obj = (HEADS if kind == "head" else LOSSES).get(name)
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    known = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "embed_dim"]
    for key in params:
        if key not in known:
            from vtrbench.registry import unknown_name_message

            raise VtrbenchError(f"{where}: [{kind}.{name}] " + unknown_name_message("parameter", key, known))


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
        if key is not None:
            raise VtrbenchError(
                f"the study {shown_storage(spec.storage)} ({name[len(STUDY_PREFIX) :]}) was made with "
                f"another {key} ({_short(old.get(key))} vs now {_short(new.get(key))}); use --overwrite "
                "to start it again, or another --study"
            )
    studies = {}
    for cell in plan_.cells:
        study = optuna.create_study(
            storage=storage,
            study_name=cell.name,
            direction="maximize",
            load_if_exists=True,
            pruner=make_pruner(spec.pruner, spec.max_epochs),
        )
        if ATTR not in study.user_attrs:
            study.set_user_attr(ATTR, cell.identity)
        study.set_user_attr("trials", spec.trials)
        studies[cell.name] = study
    return studies


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- counting, stale trials


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_dead_workers(study: Any, grace: float) -> None:
    """RUNNING trials whose worker (same host) is gone are failed now; heartbeats cover other hosts.

    A trial killed between its creation and its first heartbeat has neither a heartbeat nor a
    worker record (set first thing in the trial): it is failed once it is ``grace`` seconds old."""
    from datetime import datetime

    optuna = import_optuna()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        whost, _, pid = worker.rpartition(":")
        if not worker:
            age = (datetime.now() - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if age <= grace:
                continue
            worker = "unknown (killed before its first heartbeat)"
        elif whost != host or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "failed_because", f"worker {worker} died")
            study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another worker got there first
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def counts(study: Any, *, before: int | None = None) -> Counts:
    """Trial states of a study (only trials numbered below ``before`` when given)."""
    optuna = import_optuna()
    s = optuna.trial.TrialState
    c = Counts()
    for t in study.get_trials(deepcopy=False):
        if before is not None and t.number >= before:
            continue
        if t.state == s.COMPLETE:
            c.complete += 1
        elif t.state == s.PRUNED:
            c.pruned += 1
        elif t.state == s.FAIL:
            c.failed += 1
        elif t.state in (s.RUNNING, s.WAITING):
            c.running += 1
    return c


class BudgetTaken(Exception):
    """Raised inside a trial that finds the budget filled by trials numbered before it."""


def trial_seed(seed: int, cell: str, k: int) -> int:
    return int(hashlib.sha256(f"{seed}:{cell}:{k}".encode()).hexdigest()[:8], 16)


# ---------------------------------------------------------------- the run


@dataclass
class TuneOutcome:
    trials_run: int = 0
    counts: dict[str, Counts] = field(default_factory=dict)


def run_tune(spec: TuneSpec, *, console: Any = None) -> TuneOutcome:
    """Tune every cell of ``spec`` to ``spec.trials`` finished trials (see the module docstring)."""
    import_optuna()
    from vtrbench.cache import FeatureCache

    plan_ = plan(spec)  # every check before the storage is touched and before any training
    storage = open_storage(spec.storage, heartbeat=spec.heartbeat)
    studies = open_studies(plan_, storage)
    cells = list(plan_.cells)
    if spec.shard is not None and cells:
        k = spec.shard.index % len(cells)
        cells = cells[k:] + cells[:k]
    outcome = TuneOutcome()
    data: dict[bool, tuple[Any, Any]] = {}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not spec.progress,
    )
    with FeatureCache(spec.cache_path) as cache, bar:
        tasks = {c.name: bar.add_task(c.name[len(STUDY_PREFIX) :], total=spec.trials, info="") for c in cells}
        pending = list(cells)
        while pending:
            progressed = False
            for cell in list(pending):
                study = studies[cell.name]
                _fail_dead_workers(study, 3 * spec.heartbeat)
                c = counts(study)
                bar.update(tasks[cell.name], completed=min(c.finished, spec.trials), info=_info(study, c))
                if c.finished >= spec.trials:
                    pending.remove(cell)
                    outcome.counts[cell.name] = c
                    continue
                if c.finished + c.running >= spec.trials:
                    continue  # other workers' trials may fill the budget; come back
                _one_trial(plan_, cell, study, cache, data, c.finished)
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


def _load(plan_: Plan, cache: Any, data: dict[bool, tuple[Any, Any]], patches: bool) -> tuple[Any, Any]:
    """(train minus validation, validation): only train (and --val-split) rows are ever read."""
    if patches not in data:
        from vtrbench.runner import holdout
        from vtrbench.train import load_split

        spec = plan_.spec
        train = load_split(cache, plan_.train_split, patches=patches)
        if spec.val_split is not None:
            val = load_split(cache, spec.val_split, patches=patches)
            train = _without_videos(cache, train, val)
        else:
            train, val = holdout(train, float(spec.val_fraction or 0))
        data[patches] = (train, val)
    return data[patches]


def _without_videos(cache: Any, train: Any, val: Any) -> Any:
    """``train`` minus any video (by id) that is also in ``val``: validation stays disjoint."""
    import torch

    ids = cache.read_strings("videos", "id")
    val_ids = {ids[int(r)] for r in val.video_rows}
    keep = torch.tensor([ids[int(r)] not in val_ids for r in train.video_rows], dtype=torch.bool)
    if bool(keep.all()):
        return train
    if not bool(keep.any()):
        raise VtrbenchError("every train video is also in --val-split: nothing left to train on")
    from vtrbench.runner import keep_videos

    return keep_videos(train, keep)


def objective_value(val: dict[str, float]) -> float:
    return float(val["t2v/R@1"]) + float(val["v2t/R@1"])


def _one_trial(plan_: Plan, cell: Cell, study: Any, cache: Any, data: dict, finished: int) -> None:
    optuna = import_optuna()
    spec = plan_.spec
    # the sampler is a function of (seed, cell, finished trials): a resumed study samples as an
    # uninterrupted one would
    study.sampler = optuna.samplers.TPESampler(
        seed=trial_seed(spec.seed, cell.name, finished), n_startup_trials=TPE_STARTUP
    )

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", _worker_id())
        earlier = counts(study, before=trial.number)
        if earlier.finished + earlier.running >= spec.trials:
            trial.set_user_attr("failed_because", "the budget was filled by other workers' trials")
            raise BudgetTaken()
        params = {name: _suggest(trial, p) for name, p in cell.space.items()}
        return train_trial(plan_, cell, params, cache, data, trial)

    study.optimize(objective, n_trials=1, catch=(BudgetTaken,))


def _suggest(trial: Any, p: Param) -> Any:
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]


def train_trial(plan_: Plan, cell: Cell, params: dict[str, Any], cache: Any, data: dict, trial: Any) -> float:
    """Train one sampled configuration on train-minus-validation; returns the objective."""
    import dataclasses

    optuna = import_optuna()
    from vtrbench.config import TrainConfig
    from vtrbench.heads.base import create_head
    from vtrbench.runner import RunSpec, resolve_head_options, resolved_precision
    from vtrbench.train import fit, seed_everything

    spec = plan_.spec
    recipe, head_opts, loss_opts = split_params(params)
    recipe.setdefault("epochs", spec.max_epochs)  # a plugin space without epochs trains the cap
    run = RunSpec(
        cache_path=spec.cache_path,
        head=cell.head,
        loss=cell.loss,
        head_options=head_opts,
        loss_options=loss_opts,
        device=spec.device,
        progress=False,
        **recipe,
    )
    options, _ = resolve_head_options(run, cache)
    embed_dim = int(cache.attrs["embed_dim"])
    seed_everything(spec.seed)
    head = create_head(cell.head, embed_dim=embed_dim, **options)
    if getattr(head, "init", None) == "clip":
        head.init_from(cache.backbone_weights() or {}, cache.backbone_info())
    train, val = _load(plan_, cache, data, "patches" in head.requires)
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
        **{k: v for k, v in dataclasses.asdict(run).items() if k in recipe},
    )
    t0 = time.perf_counter()
    epochs_run = 0

    def on_epoch(entry: dict[str, Any]) -> None:
        nonlocal epochs_run
        epochs_run = int(entry["epoch"])
        trial.report(objective_value(entry["val"]), epochs_run)
        if trial.should_prune():
            trial.set_user_attr("epochs_run", epochs_run)
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
            raise optuna.TrialPruned(f"pruned after epoch {epochs_run}")

    try:
        history = fit(head, train, config, spec.seed, device=spec.device, val=val, on_epoch=on_epoch)
    except VtrbenchError as e:  # the loss diverged: a real outcome of this configuration, not a crash
        trial.set_user_attr("diverged", str(e))
        trial.set_user_attr("epochs_run", epochs_run)
        return 0.0
    trial.set_user_attr("epochs_run", epochs_run)
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
    return objective_value(history[-1]["val"])


# ---------------------------------------------------------------- reading a study back


@dataclass
class TunedCell:
    head: str
    loss: str
    identity: dict[str, Any]
    counts: Counts
    trials_asked: int
    best: dict[str, Any] | None  # {"number", "value", "params"}; None when no trial completed

    def record(self, storage: str) -> dict[str, Any]:
        """What a tuned result carries (TrainConfig.tuned): budget, space, sampler, pruner, study."""
        space = {
            n: parse_param(n, p, where="study", max_epochs=int(self.identity["max_epochs"]))
            for n, p in self.identity["space"].items()
        }
        best = self.best or {}
        edge = {}
        for name, value in (best.get("params") or {}).items():
            side = space[name].on_edge(value) if name in space else None
            if side:
                edge[name] = side
        return {
            "study": shown_storage(storage),
            "cell": self.identity["cell"],
            "trials": self.counts.finished,
            "trials_asked": self.trials_asked,
            "complete": self.counts.complete,
            "pruned": self.counts.pruned,
            "failed": self.counts.failed,
            "max_epochs": self.identity["max_epochs"],
            "validation": self.identity["validation"],
            "space": self.identity["space"],
            "sampler": self.identity["sampler"],
            "pruner": self.identity["pruner"],
            "objective": self.identity["objective"],
            "seed": self.identity["seed"],
            "best_trial": best.get("number"),
            "best_value": best.get("value"),
            "best_params": best.get("params"),
            "edge": edge,
        }


def read_cells(storage_url_: str, *, heartbeat: int = 10) -> list[TunedCell]:
    """Every cell of a study with its counts and best complete trial (ties: the earliest)."""
    optuna = import_optuna()
    storage = open_storage(storage_url_, heartbeat=heartbeat)
    names = vtrbench_studies(storage)
    out = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        identity = study.user_attrs.get(ATTR)
        if not isinstance(identity, dict):
            continue
        complete = [
            t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
        ]
        best = None
        if complete:
            top = max(complete, key=lambda t: (t.value, -t.number))
            best = {"number": top.number, "value": top.value, "params": dict(top.params)}
        head, _, loss = identity["cell"].partition("+")
        out.append(
            TunedCell(head, loss, identity, counts(study), int(study.user_attrs.get("trials", 0)), best)
        )
    return out
