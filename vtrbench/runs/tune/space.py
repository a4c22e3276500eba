"""Search spaces of ``vtrbench tune``: declared next to each head and loss, overridable in a TOML file.

A head class's ``search_space`` holds the training recipe's keys (declared once on ``Head``) and its
own options; a loss class's holds its options. One cell (head, loss) gets one flat space whose
parameter names say where a value goes::

    lr, weight_decay, epochs, warmup, batch_size   -> the training recipe (RunSpec / TrainConfig)
    head.<option>                                   -> create_head(**options)
    loss.<option>                                   -> create_loss(**options)

Each parameter is ``{"low": a, "high": b[, "log": true]}`` (integers when both bounds are integers)
or ``{"choices": [...]}``; ``"max_epochs"`` as a bound stands for ``--max-epochs``. A ``--space`` file
replaces parameters (or adds options the class did not declare)::

    [train]                 # every cell
    lr = {low = 1e-4, high = 1e-1, log = true}
    [head.camoe]
    layers = {choices = [1, 2]}
    [loss.dsl]
    temperature = {low = 10.0, high = 1000.0, log = true}

Everything here is checked before any training: unknown parameters, bounds the recipe or the head
refuses, and ranges that cannot be sampled are one-line errors naming the parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtrbench.config import check_option
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head, create_loss
from vtrbench.heads.base import HEADS, Head
from vtrbench.io import read_toml_file
from vtrbench.losses.base import LOSSES

#: Recipe parameters a space may hold, i.e. the RunSpec fields a trial sets.
RECIPE_KEYS = ("lr", "weight_decay", "epochs", "warmup", "batch_size")
MAX_EPOCHS = "max_epochs"


@dataclass(frozen=True)
class Param:
    """One searched parameter: a range (``kind`` "float" or "int", maybe log) or a list of choices."""

    name: str  # "lr", "head.layers", "loss.temperature"
    kind: str  # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def target(self) -> str:
        """ "train", "head" or "loss"."""
        return self.name.split(".", 1)[0] if "." in self.name else "train"

    @property
    def option(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else self.name

    def plain(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, **({"log": True} if self.log else {})}

    def text(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return (
            f"[{self.low:g}, {self.high:g}]"
            + (" log" if self.log else "")
            + (" int" if self.kind == "int" else "")
        )

    def on_edge(self, value: Any) -> str | None:
        """ "lower"/"upper" when ``value`` sits on a bound of the range (within 2 % of its width, on
        the log scale for log ranges) or is the first/last of numeric choices; else None."""
        if self.kind == "choice":
            numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.choices)
            if not numeric or len(self.choices) < 3:
                return None
            ordered = sorted(self.choices)
            return "lower" if value == ordered[0] else "upper" if value == ordered[-1] else None
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return "lower" if value <= self.low else "upper" if value >= self.high else None
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        tol = 0.02 * (hi - lo)
        return "lower" if v - lo <= tol else "upper" if hi - v <= tol else None


def _bad(where: str, name: str, message: str) -> VtrbenchError:
    return VtrbenchError(f"{where}: search space parameter {name!r}: {message}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_param(name: str, spec: Any, *, where: str, max_epochs: int) -> Param:
    """A declared parameter (class attribute or TOML table) -> :class:`Param`; refuses what cannot
    be sampled."""
    if not isinstance(spec, dict):
        raise _bad(where, name, f"expected {{low = .., high = ..}} or {{choices = [..]}}, got {spec!r}")
    keys = set(spec)
    if "choices" in keys:
        if keys - {"choices"}:
            raise _bad(
                where, name, f"choices cannot be combined with {', '.join(sorted(keys - {'choices'}))}"
            )
        choices = spec["choices"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise _bad(where, name, "choices must be a non-empty list")
        for c in choices:
            if not (isinstance(c, (str, bool)) or _number(c)):
                raise _bad(where, name, f"choices must be numbers, strings or booleans, got {c!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise _bad(where, name, "a choice is listed twice")
        return Param(name, "choice", choices=tuple(choices))
    unknown = keys - {"low", "high", "log"}
    if unknown or not {"low", "high"} <= keys:
        raise _bad(
            where, name, f"expected keys low, high (and log) or choices, got {', '.join(sorted(keys))}"
        )
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    low = max_epochs if low == MAX_EPOCHS else low
    high = max_epochs if high == MAX_EPOCHS else high
    if not _number(low) or not _number(high):
        raise _bad(where, name, f"low and high must be finite numbers, got {low!r} and {high!r}")
    if not isinstance(log, bool):
        raise _bad(where, name, f"log must be true or false, got {log!r}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if low > high or (kind == "float" and low == high):
        raise _bad(where, name, f"empty range: low {low} is not below high {high}")
    if log and low <= 0:
        raise _bad(where, name, f"a log range needs low > 0, got {low}")
    if kind == "float":
        low, high = float(low), float(high)
    return Param(name, kind, low=low, high=high, log=log)


def _declared(kind: str, name: str) -> dict[str, Any]:
    registry = HEADS if kind == "head" else LOSSES
    obj = registry.get(name)
    space = getattr(obj, "search_space", None)
    if space is None and kind == "head":  # a plugin factory function: the recipe only
        space = Head.search_space
    return dict(space or {})


def load_space_file(path: Path) -> dict[str, Any]:
    """Read a ``--space`` TOML file: ``[train]``, ``[head.NAME]``, ``[loss.NAME]`` tables."""
    path = Path(path)
    data = read_toml_file(path, name="--space file", at=f"--space {path}")
    unknown = set(data) - {"train", "head", "loss"}
    if unknown:
        raise VtrbenchError(
            f"--space {path}: unknown table(s) {sorted(unknown)} (known: train, head.NAME, loss.NAME)"
        )
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise VtrbenchError(f"--space {path}: [train] must be a table")
    bad = set(train) - set(RECIPE_KEYS)
    if bad:
        raise VtrbenchError(
            f"--space {path}: unknown parameter {sorted(bad)[0]!r} in [train] "
            f"(known: {', '.join(RECIPE_KEYS)})"
        )
    for kind in ("head", "loss"):
        section = data.get(kind, {})
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise VtrbenchError(f"--space {path}: use [{kind}.NAME] tables of parameters")
    return data


def cell_space(
    head: str,
    loss: str,
    *,
    max_epochs: int,
    embed_dim: int,
    override: dict[str, Any] | None = None,
    where: str = "search space",
) -> dict[str, Param]:
    """The flat space of one (head, loss) cell, every bound checked by the code that will receive it."""
    override = override or {}
    head_decl = _declared("head", head)
    loss_decl = _declared("loss", loss)
    raw: dict[str, Any] = {}
    for key, spec in head_decl.items():
        raw[key if key in RECIPE_KEYS else f"head.{key}"] = spec
    for key, spec in loss_decl.items():
        raw[f"loss.{key}"] = spec
    raw.update(override.get("train", {}))
    raw.update({f"head.{k}": v for k, v in override.get("head", {}).get(head, {}).items()})
    raw.update({f"loss.{k}": v for k, v in override.get("loss", {}).get(loss, {}).items()})
    space = {name: parse_param(name, spec, where=where, max_epochs=max_epochs) for name, spec in raw.items()}
    # every value the sampler can reach must be one the run accepts: check the bounds and choices
    for p in space.values():
        values = list(p.choices) if p.kind == "choice" else [p.low, p.high]
        for v in values:
            if p.target == "train":
                try:
                    check_option(p.option, v)
                except VtrbenchError as e:
                    raise _bad(where, p.name, str(e)) from None
                if p.option == "epochs" and v > max_epochs:
                    raise _bad(where, p.name, f"{v} epochs exceed --max-epochs {max_epochs}")
            elif p.target == "head":
                _check_head_value(head, p, v, embed_dim, where)
            else:
                _check_loss_value(loss, p, v, where)
    return space


def _check_head_value(head: str, p: Param, value: Any, embed_dim: int, where: str) -> None:
    try:
        create_head(head, embed_dim=embed_dim, **{p.option: value})
    except (VtrbenchError, TypeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _bad(where, p.name, f"head {head!r} refuses {p.option}={value!r} ({first})") from None


def _check_loss_value(loss: str, p: Param, value: Any, where: str) -> None:
    try:
        create_loss(loss, **{p.option: value})
    except (VtrbenchError, TypeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _bad(where, p.name, f"loss {loss!r} refuses {p.option}={value!r} ({first})") from None


def space_plain(space: dict[str, Param]) -> dict[str, Any]:
    return {name: p.plain() for name, p in sorted(space.items())}


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A trial's flat parameters -> (recipe, head options, loss options)."""
    recipe: dict[str, Any] = {}
    head: dict[str, Any] = {}
    loss: dict[str, Any] = {}
    for name, value in params.items():
        if name.startswith("head."):
            head[name[5:]] = value
        elif name.startswith("loss."):
            loss[name[5:]] = value
        else:
            recipe[name] = value
    return recipe, head, loss


def describe_space(kind: str, name: str, *, max_epochs: int = 30) -> list[str]:
    """Lines for ``vtrbench heads describe NAME`` / ``losses describe NAME``."""
    decl = _declared(kind, name)
    if not decl:
        return [f"{kind} {name}: no search space (nothing to tune)"]
    lines = [f"search space of {kind} {name} (vtrbench tune; epochs up to --max-epochs, here {max_epochs}):"]
    shown = {key: key if (kind == "head" and key in RECIPE_KEYS) else f"{kind}.{key}" for key in decl}
    width = max(18, *(len(s) for s in shown.values()))  # one column whatever the longest name
    for key, spec in decl.items():
        p = parse_param(shown[key], spec, where=f"{kind} {name}", max_epochs=max_epochs)
        lines.append(f"  {shown[key]:<{width}} {p.text()}")
    return lines
