"""The options of one run (:class:`RunSpec`) and their one validation.

Every way of building a run (command line, grid file, tuning, Python) ends in a :class:`RunSpec`,
whose construction validates the options (:func:`vtrbench.config.validate_options`); what needs the
cache is checked by :func:`vtrbench.runs.runner.preflight` before any training starts. Defaults come
from :mod:`vtrbench.defaults`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtrbench import defaults
from vtrbench.config import RUN_OPTIONS, OptionRule, check_value, validate_options
from vtrbench.errors import VtrbenchError
from vtrbench.heads.base import list_heads, validate_head_options
from vtrbench.losses.base import LOSSES, list_losses
from vtrbench.registry import unknown_name_message

# RunSpec fields that are plain run options: exactly those vtrbench.config.RUN_OPTIONS validates
_CHECKED_FIELDS = tuple(RUN_OPTIONS)


LOSS_OPTIONS = {"dsl": ("temperature",), "triplet": ("margin", "reduction")}


# The ranges of those options (one rule each, as config.RUN_OPTIONS for run options).
LOSS_OPTION_RULES = {
    ("dsl", "temperature"): OptionRule("float", low=0, low_open=True),
    ("triplet", "margin"): OptionRule("float", low=0, low_open=True),
    ("triplet", "reduction"): OptionRule("choice", choices=("sum", "hardest")),
}


@dataclass(frozen=True)
class RunSpec:
    """The options of one run. Constructing one (also via ``dataclasses.replace``) validates them."""

    cache_path: Path
    head: str
    loss: str
    head_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    train_split: str | None = None
    test_split: str | None = None
    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    lr: float = defaults.LR
    weight_decay: float = defaults.WEIGHT_DECAY
    warmup: float = defaults.WARMUP
    val_fraction: float = defaults.VAL_FRACTION
    v2t_protocol: str = defaults.V2T_PROTOCOL
    dsl_tau: float = defaults.DSL_TAU
    qb_bank: int = defaults.QB_BANK
    qb_beta: float = defaults.QB_BETA
    qb_k: int = defaults.QB_K
    mdr: str = defaults.MDR
    post_options: dict[str, Any] = field(default_factory=dict)  # --post-option KEY=VALUE
    precision: str | None = None  # None: bf16 autocast on CUDA, fp32 elsewhere
    compile: str = defaults.COMPILE  # torch.compile mode of the training step (vtrbench.runs.compiled)
    allow_overlap: bool = False
    threads: int | None = None  # None: vtrbench.threads.set_threads chooses from the free cores
    device: str = "cpu"
    results_dir: Path = Path(defaults.RESULTS_DIR)
    overwrite: str = defaults.OVERWRITE
    progress: bool = True
    tuned: dict[str, Any] = field(default_factory=dict)  # vtrbench.tune's record of a tuned configuration
    # --tensorboard: event files of the per-epoch history (a view of it, not part of the config)
    tensorboard: Path | None = defaults.TENSORBOARD

    def __post_init__(self) -> None:
        validate_spec(self)


def validate_spec(spec: RunSpec, *, where: str | None = None) -> None:
    """The one validation of a run's options (ranges, types, names, head/loss options' shape)."""
    validate_options({k: getattr(spec, k) for k in _CHECKED_FIELDS}, where=where)
    _check_names(spec.head, spec.loss)
    if spec.tensorboard is not None and not isinstance(spec.tensorboard, (str, os.PathLike)):
        got = type(spec.tensorboard).__name__
        raise VtrbenchError(f"RunSpec.tensorboard must be None or a folder path (str or Path), got {got}")
    for name in ("cache_path", "results_dir"):
        if not isinstance(getattr(spec, name), (str, os.PathLike)):
            got = type(getattr(spec, name)).__name__
            raise VtrbenchError(f"RunSpec.{name} must be a path (str or Path), got {got}")
    if not isinstance(spec.progress, bool):
        raise VtrbenchError(f"RunSpec.progress must be true or false, got {spec.progress!r}")
    if not isinstance(spec.head_options, dict):
        raise VtrbenchError(f"head options must be a mapping, got {type(spec.head_options).__name__}")
    # the head's declared option schema (unknown key, type, range), before any cache is opened
    validate_head_options(spec.head, spec.head_options, where=where)
    check_head_options(spec.head_options)
    check_loss_options(spec.loss, spec.loss_options)
    check_device(spec.device, spec.precision)
    if not isinstance(spec.tuned, dict):
        raise VtrbenchError(f"tuned must be a mapping, got {type(spec.tuned).__name__}")


def check_head_options(options: Any, label: str = "head options") -> None:
    """A mapping of option names to values; NaN would train and then fail to serialise, and a
    negative loss weight inverts an objective."""
    if not isinstance(options, dict):
        raise VtrbenchError(f"{label} must be a mapping, got {type(options).__name__}")
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise VtrbenchError(f"{label}: option names must be non-empty strings, got {key!r}")
        if isinstance(value, float) and (not math.isfinite(value) or (key == "aux_weight" and value < 0)):
            raise VtrbenchError(f"--{key.replace('_', '-')} must be a finite number >= 0, got {value!r}")


def check_loss_options(loss: str, options: Any, label: str = "loss options") -> None:
    """The options a built-in loss takes (:data:`LOSS_OPTIONS`), each in range; a plugin loss's own
    options only need to be plain, finite values (its factory checks the rest)."""
    if not isinstance(options, dict):
        raise VtrbenchError(f"{label} must be a mapping, got {type(options).__name__}")
    builtin = LOSSES.origin(loss).get("kind") == "builtin"
    allowed = LOSS_OPTIONS.get(loss, ())
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise VtrbenchError(f"{label}: option names must be non-empty strings, got {key!r}")
        if builtin and key not in allowed:
            raise VtrbenchError(
                f"--{key} does not apply to --loss {loss}"
                + (f" (its options: {', '.join(allowed)})" if allowed else "")
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise VtrbenchError(f"--{key.replace('_', '-')} of --loss {loss} must be finite, got {value!r}")
        rule = LOSS_OPTION_RULES.get((loss, key)) if builtin else None
        if rule is not None:
            check_value(rule, value, f"--{key.replace('_', '-')}")


def check_device(device: Any, precision: Any = None, label: str = "--device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; bf16 autocast only on CUDA."""
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise VtrbenchError(f"{label} {device!r}: use cpu, cuda or cuda:N")
    if precision == "bf16" and not device.startswith("cuda"):
        raise VtrbenchError(f"--precision bf16 is bf16 autocast on CUDA; this run is on {device} (use fp32)")
    return device


def resolved_precision(spec: RunSpec) -> str:
    return spec.precision or ("bf16" if spec.device.startswith("cuda") else "fp32")


@dataclass
class Outcome:
    path: Path
    result: dict[str, Any] | None
    skipped: bool = False


def _check_names(head: Any, loss: Any) -> None:
    if not isinstance(head, str) or head not in list_heads():
        raise VtrbenchError(unknown_name_message("head", str(head), list_heads()))
    if not isinstance(loss, str) or loss not in list_losses():
        raise VtrbenchError(unknown_name_message("loss", str(loss), list_losses()))
    if head == "zeroshot":
        raise VtrbenchError("zeroshot has nothing to train: use `vtrbench eval --head zeroshot`")
