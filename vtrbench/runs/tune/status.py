"""The state of ``vtrbench tune``'s studies: trial counts, trials of dead workers, best trials read back.

A worker that dies (``kill -9``) leaves a RUNNING trial; :func:`fail_dead_workers` marks it failed when
its worker is seen dead (same host, by pid) or its heartbeat is older than the grace period (RDB
storages), so that the next worker's trial takes its place. :func:`read_cells` reads every cell back
(``tune --status``, ``ablate --tuned``).
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.runs.tune.space import parse_param
from vtrbench.runs.tune.storage import (
    ATTR,
    import_optuna,
    open_storage,
    shown_storage,
    storage_errors,
    storage_failure,
    vtrbench_studies,
)


def worker_id() -> str:
    """``host:pid`` of this process, as a trial records its worker (read by fail_dead_workers)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_dead_workers(study: Any, grace: float) -> None:
    """RUNNING trials whose worker (same host) is gone are failed now; heartbeats cover other hosts.

    A trial killed between its creation and its first heartbeat has neither a heartbeat nor a
    worker record (set first thing in the trial): it is failed once it is ``grace`` seconds old."""
    optuna = import_optuna()
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


# ---------------------------------------------------------------- reading a study back


@dataclass
class TunedCell:
    head: str
    loss: str
    identity: dict[str, Any]
    counts: Counts
    trials_asked: int
    best: dict[str, Any] | None  # {"number", "value", "params", "fold_values"}; None when none completed
    caption_epochs: int = 0  # trained by its finished trials (trials of earlier releases: not recorded)
    values: tuple[float, ...] = ()  # every complete trial's objective (a saturated objective ties them)

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
            # only with --folds: a hold-out study's record (and its runs' identity) stays as it was
            **({"best_fold_values": best["fold_values"]} if best.get("fold_values") else {}),
        }


def read_cells(storage_url_: str, *, heartbeat: int = defaults.TUNE_HEARTBEAT) -> list[TunedCell]:
    """Every cell of a study with its counts and best complete trial (ties: the earliest), read
    without writing (a read-only storage; damage found while reading is one line)."""
    storage = open_storage(storage_url_, heartbeat=heartbeat, read_only=True)
    try:
        return _cells_of(storage)
    except VtrbenchError:
        raise
    except storage_errors() as e:
        raise storage_failure(storage_url_, e) from None


def _cells_of(storage: Any) -> list[TunedCell]:
    optuna = import_optuna()
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
            best["fold_values"] = top.user_attrs.get("fold_values")
        head, _, loss = identity["cell"].partition("+")
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        spent = sum(
            int(t.user_attrs.get("caption_epochs", 0))
            for t in study.get_trials(deepcopy=False, states=finished)
        )
        c = counts(study)
        values = tuple(float(t.value) for t in complete)
        out.append(
            TunedCell(head, loss, identity, c, int(study.user_attrs.get("trials", 0)), best, spent, values)
        )
    return out
