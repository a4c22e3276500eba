"""Multi-fidelity tuning (``tune --fidelity data,epochs``): cheap rungs first, successive halving.

A trial climbs **rungs** ``(fraction, epochs)``: at rung r it trains from scratch, with ``--seed``, on
the first ``fraction`` of the train videos (all their captions) in a seeded permutation, for
``min(epochs, the trial's epochs)`` epochs, and is scored on the same validation videos as ever. The
subsets are nested (rung r's videos are a subset of rung r+1's) and the same for every cell: the
permutation depends only on ``--seed`` and the train videos. The last rung is ``1:max``, the
full-fidelity training of the trial, so every complete trial's value is a full-fidelity value.

Promotion is asynchronous successive halving over trials: after rung r (not the last), a trial goes on
when its rung-r value is among the top ``max(1, k // eta)`` of the ``k`` rung-r values of the
*finished* trials numbered before it and itself (ties go on); otherwise it is pruned. Failed trials (a
killed worker's) do not compete, so a study resumed after ``kill -9`` decides as an uninterrupted one
(one worker; several workers see each other's trials in timing order). Each trial records its rung
values (``rung_R``) and the caption-epochs it trained (``caption_epochs``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.runs.data import keep_videos
from vtrbench.runs.tune.storage import import_optuna

AXES = {"none": "none", "epochs": "epochs", "data,epochs": "data,epochs", "epochs,data": "data,epochs"}
SUBSET_SALT = 7919  # the video permutation is seeded by --seed + this (unrelated to the holdout's)


@dataclass(frozen=True)
class Rung:
    fraction: float
    epochs: int


def fidelity_of(text: str) -> str:
    """``--fidelity`` normalised ("epochs,data" is "data,epochs"); an unknown axis is one line."""
    key = ",".join(part.strip() for part in str(text).split(","))
    if key not in AXES:
        raise VtrbenchError(
            f"--fidelity must be one of none, epochs, data,epochs (the axes a trial's cost grows along), "
            f"got {text!r}"
        )
    return AXES[key]


def default_rungs(max_epochs: int, eta: int) -> list[Rung]:
    """Hyperband's first bracket: fraction and epochs both ``1/eta`` of the next rung's."""
    n = defaults.TUNE_RUNG_COUNT
    return [
        Rung(1.0 / eta ** (n - 1 - r), max(1, math.ceil(max_epochs / eta ** (n - 1 - r)))) for r in range(n)
    ]


def parse_rungs(text: str | None, max_epochs: int, eta: int) -> list[Rung]:
    """``--rungs F:E,...`` (E an integer or ``max``), checked: fractions in (0, 1], epochs in
    [1, --max-epochs], each rung above the one before in fraction or epochs and below in neither,
    the last ``1:max``; None: :func:`default_rungs`."""
    if text is None:
        return default_rungs(max_epochs, eta)
    rungs = []
    for part in str(text).split(","):
        frac_text, sep, ep_text = part.strip().partition(":")
        if not sep:
            raise VtrbenchError(f"--rungs: {part.strip()!r} is not FRACTION:EPOCHS (e.g. 0.25:3,0.5:6,1:max)")
        try:
            fraction = float(frac_text)
        except ValueError:
            raise VtrbenchError(f"--rungs: fraction {frac_text!r} is not a number") from None
        if not (math.isfinite(fraction) and 0 < fraction <= 1):
            raise VtrbenchError(f"--rungs: a fraction of the train videos must be in (0, 1], got {frac_text}")
        if ep_text.strip() == "max":
            epochs = max_epochs
        else:
            try:
                epochs = int(ep_text)
            except ValueError:
                raise VtrbenchError(f"--rungs: epochs {ep_text!r} is not an integer or 'max'") from None
            if not 1 <= epochs <= max_epochs:
                raise VtrbenchError(
                    f"--rungs: epochs must be in [1, --max-epochs {max_epochs}], got {epochs}"
                )
        rungs.append(Rung(fraction, epochs))
    for a, b in zip(rungs, rungs[1:], strict=False):
        if b.fraction < a.fraction or b.epochs < a.epochs or b == a:
            raise VtrbenchError(
                f"--rungs must grow: {b.fraction:g}:{b.epochs} after {a.fraction:g}:{a.epochs} (each rung "
                "needs at least the data and epochs of the one before, and more of one)"
            )
    if rungs[-1] != Rung(1.0, max_epochs):
        raise VtrbenchError(
            f"--rungs must end at full fidelity, 1:max (got {rungs[-1].fraction:g}:{rungs[-1].epochs}), so "
            "that a complete trial's value is a full-fidelity value"
        )
    if len(rungs) < 2:
        raise VtrbenchError("--rungs needs at least one cheaper rung before 1:max")
    return rungs


def expected_share(rungs: list[Rung], eta: int, max_epochs: int) -> float:
    """A trial's expected caption-epochs as a share of a full-fidelity trial's at --max-epochs, when
    successive halving keeps 1/eta of the trials at each rung (rung r is reached by 1/eta^r)."""
    return sum(r.fraction * r.epochs / eta**i for i, r in enumerate(rungs)) / max_epochs


def check_schedule(rungs: list[Rung], eta: int, max_epochs: int) -> None:
    """A schedule that costs a full-fidelity trial or more in expectation saves nothing: refused."""
    share = expected_share(rungs, eta, max_epochs)
    if share >= 1:
        raise VtrbenchError(
            f"--rungs {rungs_text(rungs)} with --eta {eta} cost {share:.2f} x a full-fidelity trial's "
            "caption-epochs in expectation: the schedule exceeds the full-fidelity budget; use cheaper "
            "rungs or a larger --eta"
        )


def rungs_text(rungs: list[Rung]) -> str:
    return ",".join(f"{r.fraction:g}:{r.epochs}" for r in rungs)


def identity(rungs: list[Rung], eta: int, seed: int, max_epochs: int) -> dict[str, Any]:
    """What a study records of its fidelity (the same for every cell: equal budgets)."""
    return {
        "axes": "data,epochs",
        "rungs": [[r.fraction, r.epochs] for r in rungs],
        "eta": eta,
        "subset": f"train videos in a permutation seeded by --seed {seed} (+{SUBSET_SALT}), nested",
        "expected_share": round(expected_share(rungs, eta, max_epochs), 6),
    }


def pruner_text(rungs: list[Rung], eta: int) -> str:
    return (
        f"successive halving over rungs {rungs_text(rungs)} (fraction of train videos:epochs), eta={eta}: "
        "top max(1, k // eta) of the k finished trials' rung values go on, ties too"
    )


def rungs_of(record: dict[str, Any]) -> list[Rung]:
    return [Rung(float(f), int(e)) for f, e in record["rungs"]]


def subset(train: Any, fraction: float, seed: int) -> Any:
    """The first ``ceil(fraction * videos)`` train videos of a permutation seeded by ``seed``, with all
    their captions: nested across fractions, the same for every cell."""
    if fraction >= 1:
        return train
    g = torch.Generator().manual_seed(seed + SUBSET_SALT)
    perm = torch.randperm(train.n_videos, generator=g)
    keep = torch.zeros(train.n_videos, dtype=torch.bool)
    keep[perm[: max(1, math.ceil(fraction * train.n_videos))]] = True
    return keep_videos(train, keep)


def promoted(study: Any, number: int, rung: int, value: float, eta: int) -> bool:
    """Successive halving: is ``value`` among the top max(1, k // eta) of the rung's k values (the
    finished trials numbered before ``number``, and this one)?"""
    state = import_optuna().trial.TrialState
    key = f"rung_{rung}"
    values = [
        float(t.user_attrs[key])
        for t in study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED))
        if t.number < number and key in t.user_attrs
    ]
    values.append(float(value))
    keep = max(1, len(values) // eta)
    return float(value) >= sorted(values, reverse=True)[keep - 1]


@dataclass
class RungResult:
    value: float  # the validation objective after the rung's last epoch (0 when diverged)
    caption_epochs: int
    epochs_run: int
    diverged: str | None = None


def climb(
    trial: Any, rungs: list[Rung], eta: int, trial_epochs: int, train_rung: Callable[[Rung], RungResult]
) -> float:
    """Train ``trial`` rung by rung (``train_rung`` trains one), pruning it where successive halving
    says so; returns the last rung's objective. A diverged rung ends the trial with 0, as ever."""
    optuna = import_optuna()
    spent = 0
    for i, rung in enumerate(rungs):
        result = train_rung(Rung(rung.fraction, min(rung.epochs, trial_epochs)))
        spent += result.caption_epochs
        trial.set_user_attr("caption_epochs", spent)
        trial.set_user_attr("rungs_run", i + 1)
        trial.set_user_attr(f"rung_{i}", result.value)
        trial.set_user_attr("epochs_run", result.epochs_run)
        if result.diverged is not None:
            trial.set_user_attr("diverged", result.diverged)
            return 0.0
        if i == len(rungs) - 1:
            return result.value
        trial.report(result.value, i)
        if not promoted(trial.study, trial.number, i, result.value, eta):
            raise optuna.TrialPruned(f"pruned after rung {i} ({rung.fraction:g}:{rung.epochs})")
    raise AssertionError("unreachable: the last rung returns")


def resolve(spec: Any) -> tuple[Any, list[Rung]]:
    """``spec`` (a TuneSpec) with its fidelity normalised and its pruner and eta resolved, and the
    rungs of ``--fidelity data,epochs``. ``--fidelity none`` is ``--pruner none`` (same identity);
    ``--fidelity epochs`` is the tuning of earlier releases; --rungs and --eta belong to data,epochs."""
    mode = fidelity_of(spec.fidelity)
    if mode != "data,epochs":
        for option, value in (("--rungs", spec.rungs), ("--eta", spec.eta)):
            if value is not None:
                raise VtrbenchError(f"{option} needs --fidelity data,epochs (got --fidelity {mode})")
        if mode == "none":
            if spec.pruner not in (None, "none"):
                raise VtrbenchError(
                    f"--fidelity none trains every trial in full: it takes no --pruner {spec.pruner}"
                )
            return dataclasses.replace(spec, fidelity=mode, pruner="none"), []
        return dataclasses.replace(spec, fidelity=mode, pruner=spec.pruner or defaults.TUNE_PRUNER), []
    if spec.pruner is not None:
        raise VtrbenchError(
            f"--pruner {spec.pruner} stops trials per epoch; --fidelity data,epochs promotes them across "
            "its rungs by successive halving (--eta): leave --pruner out"
        )
    eta = defaults.TUNE_ETA if spec.eta is None else spec.eta
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise VtrbenchError(f"--eta must be an integer >= 2 (keep 1/eta of a rung's trials), got {eta!r}")
    rungs = parse_rungs(spec.rungs, spec.max_epochs, eta)
    check_schedule(rungs, eta, spec.max_epochs)
    return dataclasses.replace(spec, fidelity=mode, pruner="none", eta=eta), rungs
