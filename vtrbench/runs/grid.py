"""``vtrbench ablate``: a grid of heads x losses x CAMoE alignment settings x seeds on one cache.

Each grid point is an ordinary run (vtrbench.runner) with its own result file, so a
grid can be interrupted and re-run: finished runs are skipped (``--overwrite never``).
The grid itself is saved as TOML next to the results it produced. ``ablate --tuned`` (each tuned
cell's best configuration) is :mod:`vtrbench.runs.tune.tuned`, which imports this module, never the
other way round.
"""

from __future__ import annotations

import itertools
import math
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vtrbench.cache import FeatureCache
from vtrbench.config import RUN_OPTIONS, check_seed, config_hash, validate_options
from vtrbench.errors import VtrbenchError
from vtrbench.heads._layers import INITS, choose_one, positive_int
from vtrbench.heads.base import list_heads, validate_head_options
from vtrbench.io import read_toml_file
from vtrbench.losses.base import list_losses
from vtrbench.plugins import load_plugin, provenance_for, replay_specs
from vtrbench.progress import make_progress
from vtrbench.registry import unknown_name_message
from vtrbench.results import atomic_write_text
from vtrbench.runs.checks import check_output_file
from vtrbench.runs.runner import preflight, run_training

CAMOE_AXES = ("experts", "streams", "gate", "aux_weight")
#: Key of Grid.head_options whose options apply to every head of the grid.
ALL_HEADS = "*"
# Axes of the heads with a temporal transformer (grid file section [temporal]).
TEMPORAL_AXES = ("init", "layers")
TEMPORAL_HEADS = ("seqtransf", "camoe")
# the [train] options of a grid file: every run option but --overwrite (a property of the command)
TRAIN_KEYS = tuple(k for k in RUN_OPTIONS if k != "overwrite")


@dataclass(frozen=True)
class Grid:
    heads: tuple[str, ...] = ("meanp", "seqtransf", "camoe")
    losses: tuple[str, ...] = ("infonce", "dsl")
    seeds: tuple[int, ...] = (0,)
    # CAMoE axes: each a list of values; the grid takes their product (camoe only).
    experts: tuple[tuple[str, ...], ...] = ()
    streams: tuple[str, ...] = ()
    gate: tuple[str, ...] = ()
    aux_weight: tuple[float, ...] = ()
    # seqtransf/camoe temporal transformer axes: start (clip | random) and depth.
    init: tuple[str, ...] = ()
    layers: tuple[int, ...] = ()
    train: dict[str, Any] = field(default_factory=dict)  # shared training options (TRAIN_KEYS)
    # Any head's options as axes: {head: {option: (value, ...)}}; ALL_HEADS ("*") = every head of
    # the grid (grid file: [head_options] for all heads, [head_options.HEAD] for one).
    head_options: dict[str, dict[str, tuple[Any, ...]]] = field(default_factory=dict)

    def points(self) -> list[tuple[str, str, dict[str, Any], int]]:
        """(head, loss, head_options, seed) for every run, seeds innermost."""
        camoe_axes = {
            "experts": [sorted(e) for e in self.experts] or [None],
            "streams": list(self.streams) or [None],
            "gate": list(self.gate) or [None],
            "aux_weight": list(self.aux_weight) or [None],
        }
        temporal_axes = {"init": list(self.init) or [None], "layers": list(self.layers) or [None]}
        out = []
        for head in self.heads:
            if head == "camoe":
                combos = [
                    {k: v for k, v in zip(camoe_axes, values, strict=True) if v is not None}
                    for values in itertools.product(*camoe_axes.values())
                ]
            else:
                combos = [{}]
            if head in TEMPORAL_HEADS:
                combos = [
                    {**c, **{k: v for k, v in zip(temporal_axes, values, strict=True) if v is not None}}
                    for c in combos
                    for values in itertools.product(*temporal_axes.values())
                ]
            axes = {**self.head_options.get(ALL_HEADS, {}), **self.head_options.get(head, {})}
            if axes:
                keys = sorted(axes)
                combos = [
                    {**c, **dict(zip(keys, values, strict=True))}
                    for c in combos
                    for values in itertools.product(*(axes[k] for k in keys))
                ]
            for loss in self.losses:
                for opts in combos:
                    for seed in self.seeds:
                        out.append((head, loss, opts, seed))
        return out

    def to_toml(self, plugins: list[dict[str, Any]] | None = None) -> str:
        """The grid as a grid file; ``plugins`` (origins of the plugin heads/losses it uses) become
        ``plugins = [...]`` (files by absolute path), so that replaying the saved file loads them."""
        lines = ["# vtrbench ablation grid (re-run with: vtrbench ablate --cache CACHE --grid THIS_FILE)"]
        for origin in plugins or []:
            sha = str(origin.get("sha256") or "?")[:16]
            name = origin.get("name") or origin.get("source")
            lines.append(f"# plugin {name} {origin.get('version') or ''} sha256 {sha} ({origin.get('kind')})")
        specs = replay_specs(plugins or [])
        if specs:
            lines.append(f"plugins = {_toml_list(specs)}")
        lines.append(f"heads = {_toml_list(self.heads)}")
        lines.append(f"losses = {_toml_list(self.losses)}")
        lines.append(f"seeds = {_toml_list(self.seeds)}")
        camoe = {
            "experts": self.experts,
            "streams": self.streams,
            "gate": self.gate,
            "aux_weight": self.aux_weight,
        }
        if any(camoe.values()):
            lines.append("")
            lines.append("[camoe]")
            for key, values in camoe.items():
                if values:
                    lines.append(f"{key} = {_toml_list(values)}")
        if self.init or self.layers:
            lines.append("")
            lines.append("[temporal]")
            if self.init:
                lines.append(f"init = {_toml_list(self.init)}")
            if self.layers:
                lines.append(f"layers = {_toml_list(self.layers)}")
        if self.head_options:
            common = self.head_options.get(ALL_HEADS, {})
            lines.append("")
            lines.append("[head_options]")
            for key in sorted(common):
                lines.append(f"{key} = {_toml_list(common[key])}")
            for head in sorted(h for h in self.head_options if h != ALL_HEADS):
                lines.append("")
                lines.append(f"[head_options.{head}]")
                for key in sorted(self.head_options[head]):
                    lines.append(f"{key} = {_toml_list(self.head_options[head][key])}")
        if self.train:
            lines.append("")
            lines.append("[train]")
            for key in sorted(self.train):
                lines.append(f"{key} = {_toml_value(self.train[key])}")
        return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return _toml_list(v)
    if isinstance(v, dict):  # an inline table: [train] post_options = {csls_k = 5}
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(values: Any) -> str:
    return "[" + ", ".join(_toml_value(v) for v in values) + "]"


def load_grid_plugins(path: Path, plugins: Any) -> None:
    """``plugins = ["my_head.py", "package.module"]``: files relative to the grid file's folder."""
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise VtrbenchError(f"{path}: plugins must be a list of file paths or module names")
    for spec in plugins:
        local = Path(path).parent / spec
        load_plugin(local if spec.endswith(".py") and not Path(spec).is_absolute() else spec)


def load_grid(path: Path) -> Grid:
    """Read a grid TOML; unknown keys are errors (a typo must not silently shrink a grid).

    Values go through the same validation as the command line's (:func:`validate_grid`); every
    error names the file.
    """
    path = Path(path)
    data = read_toml_file(path, name="grid file", at=str(path))
    known_top = {"heads", "losses", "seeds", "camoe", "temporal", "train", "plugins", "head_options"}
    unknown = set(data) - known_top
    if unknown:
        raise VtrbenchError(f"{path}: unknown key(s) {sorted(unknown)} (known: {sorted(known_top)})")
    load_grid_plugins(path, data.get("plugins", []))  # before the names are checked
    camoe = _table(data, "camoe", path)
    bad = set(camoe) - set(CAMOE_AXES)
    if bad:
        raise VtrbenchError(f"{path}: unknown camoe key(s) {sorted(bad)} (known: {', '.join(CAMOE_AXES)})")
    temporal = _table(data, "temporal", path)
    bad = set(temporal) - set(TEMPORAL_AXES)
    if bad:
        known = ", ".join(TEMPORAL_AXES)
        raise VtrbenchError(f"{path}: unknown temporal key(s) {sorted(bad)} (known: {known})")
    _check_temporal_axes(path, temporal)
    train = _table(data, "train", path)
    bad = set(train) - set(TRAIN_KEYS)
    if bad:
        raise VtrbenchError(f"{path}: unknown train key(s) {sorted(bad)} (known: {', '.join(TRAIN_KEYS)})")
    where = str(path)
    grid = Grid(
        heads=_str_list(data.get("heads", list(Grid.heads)), "heads", where),
        losses=_str_list(data.get("losses", list(Grid.losses)), "losses", where),
        seeds=tuple(_list(data.get("seeds", list(Grid.seeds)), "seeds", where)),
        experts=tuple(
            _str_list(e, "each camoe.experts entry", where, example='["action", "fusion"]')
            for e in _list(
                camoe.get("experts", []), "camoe.experts", where, allow_empty=True, example='[["fusion"]]'
            )
        ),
        streams=_str_list(camoe.get("streams", []), "camoe.streams", where, allow_empty=True),
        gate=_str_list(camoe.get("gate", []), "camoe.gate", where, allow_empty=True),
        aux_weight=tuple(_list(camoe.get("aux_weight", []), "camoe.aux_weight", where, allow_empty=True)),
        init=tuple(temporal.get("init", ())),
        layers=tuple(temporal.get("layers", ())),
        train=dict(train),
        head_options=_head_option_tables(_table(data, "head_options", path), where),
    )
    return validate_grid(grid, where=where)


def _head_option_tables(table: dict[str, Any], where: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """[head_options]: plain keys apply to every head, sub-tables ``[head_options.HEAD]`` to one head;
    a value is one value or a list of values (an axis of the grid). Checked in validate_grid."""
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out[key] = {k: _axis(v) for k, v in value.items()}
        else:
            out.setdefault(ALL_HEADS, {})[key] = _axis(value)
    return out


def _axis(value: Any) -> tuple[Any, ...]:
    # A list is an axis, each element one value; a names option (camoe experts) takes each element as
    # one value too: ["fusion", "action,fusion"] or [["fusion"], ["action", "fusion"]] is two settings.
    return tuple(value) if isinstance(value, list) else (value,)


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise VtrbenchError(f"{path}: {key} must be a table of options, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _list(
    value: Any, name: str, where: str, *, allow_empty: bool = False, example: str | None = None
) -> list[Any]:
    if not isinstance(value, list):
        example = example or {"heads": '["meanp"]', "losses": '["infonce"]', "seeds": "[0, 1]"}.get(
            name, "[...]"
        )
        raise VtrbenchError(f"{where}: {name} must be a list, e.g. {example}, got {_kind(value)}")
    if not value and not allow_empty:
        raise VtrbenchError(f"{where}: {name} is an empty list")
    return value


def _str_list(
    value: Any, name: str, where: str, *, allow_empty: bool = False, example: str | None = None
) -> tuple[str, ...]:
    items = _list(value, name, where, allow_empty=allow_empty, example=example)
    for v in items:
        if not isinstance(v, str) or not v.strip():
            raise VtrbenchError(f"{where}: {name} must hold names (strings), got {_kind(v)} {v!r}"[:300])
    return tuple(items)


def validate_grid(grid: Grid, *, where: str | None = None) -> Grid:
    """The grid's names, seeds, CAMoE axes and [train] options, checked as the command line checks them."""
    prefix = f"{where}: " if where else ""
    heads = [h for h in list_heads() if h != "zeroshot"]
    for h in grid.heads:
        if h not in heads:
            raise VtrbenchError(prefix + unknown_name_message("head", h, heads))
    for loss in grid.losses:
        if loss not in list_losses():
            raise VtrbenchError(prefix + unknown_name_message("loss", loss, list_losses()))
    seeds = tuple(check_seed(s, where=where, option="--seeds") for s in grid.seeds)
    aux = []
    for a in grid.aux_weight:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0:
            label = f"{where}: camoe.aux_weight" if where else "--aux-weight"
            raise VtrbenchError(f"{label} values must be finite numbers >= 0, got {a!r}")
        aux.append(float(a))
    train = validate_options(dict(grid.train), where=where, section="train.")
    head_options = _validate_head_options(grid, where)
    return replace(grid, seeds=seeds, aux_weight=tuple(aux), train=train, head_options=head_options)


def _validate_head_options(grid: Grid, where: str | None) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every [head_options] value through the head's own schema (vtrbench.config.check_head_options,
    as create_head and --head-option); an option the [camoe]/[temporal] axes also set is an error."""
    prefix = f"{where}: " if where else ""
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for target, options in grid.head_options.items():
        section = "[head_options]" if target == ALL_HEADS else f"[head_options.{target}]"
        if target != ALL_HEADS and target not in grid.heads:
            raise VtrbenchError(
                f"{prefix}{section}: {target!r} is not one of the grid's heads ({', '.join(grid.heads)})"
            )
        heads = grid.heads if target == ALL_HEADS else (target,)
        checked: dict[str, tuple[Any, ...]] = {}
        for key, values in options.items():
            if not values:
                raise VtrbenchError(f"{prefix}{section} {key} is an empty list")
            fixed = _axis_owner(grid, key)
            if fixed and any(h in fixed[1] for h in heads):
                raise VtrbenchError(f"{prefix}{section} {key} is also a [{fixed[0]}] axis: set it once")
            per_head = []
            for head in heads:
                try:
                    per_head.append(tuple(validate_head_options(head, {key: v})[key] for v in values))
                except VtrbenchError as e:
                    raise VtrbenchError(f"{prefix}{section} {e}") from None
            checked[key] = per_head[0]
        out[target] = checked
    return out


def _axis_owner(grid: Grid, key: str) -> tuple[str, tuple[str, ...]] | None:
    """(section, heads) when ``key`` is already an axis of the grid's [camoe] or [temporal] table."""
    if key in CAMOE_AXES and getattr(grid, key):
        return "camoe", ("camoe",)
    if key in TEMPORAL_AXES and getattr(grid, key):
        return "temporal", TEMPORAL_HEADS
    return None


def _check_temporal_axes(path: Path, temporal: dict[str, Any]) -> None:
    """[temporal] values through the heads' own option checks (the ones --init/--layers meet)."""
    for key in TEMPORAL_AXES:
        values = temporal.get(key, [])
        if not isinstance(values, list):
            raise VtrbenchError(f"{path}: [temporal] {key} must be a list, got {values!r}")
        for value in values:
            try:
                if key == "init":
                    choose_one("grid", "init", value, INITS)
                else:
                    positive_int("grid", "layers", value)
            except VtrbenchError as e:
                raise VtrbenchError(f"{path}: [temporal] {e}") from None


@dataclass
class GridOutcome:
    ran: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run description, reason)
    grid_file: Path | None = None


def run_grid(
    grid: Grid,
    base: Any,
    *,
    console: Any = None,
    progress: bool = True,
    source: Path | None = None,
    shard: Any = None,
) -> GridOutcome:
    """Run every grid point on the cache of ``base`` (a runner.RunSpec holding the shared options).

    Every point is planned and checked (head options against the cache, overlap, output places)
    before the first one trains; ``source`` (the grid file) is named in those errors. ``shard`` (a
    vtrbench.shard.Shard): run only the cells (config x seed, in ``grid.points()`` order) whose
    position k has k mod n == i; the others belong to other processes.
    """
    points = grid.points()
    if not points:
        raise VtrbenchError("the grid is empty")
    if shard is not None:
        points = shard.take(points)
    outcome = GridOutcome()
    data: dict[str, Any] = {}  # splits loaded once for the whole grid
    with FeatureCache(base.cache_path) as cache:
        dataset = str(cache.attrs.get("dataset"))
        grid_dir = Path(base.results_dir) / dataset
        outcome.grid_file = grid_dir / f"grid-{config_hash([grid.to_toml(), cache.config_hash])[:8]}.toml"
        check_output_file(outcome.grid_file, "grid file")
        specs = []
        for head, loss, opts, seed in points:
            try:
                spec = _point_spec(base, head, loss, opts)
                preflight(spec, cache, [seed])
            except VtrbenchError as e:
                prefix = f"{source}: " if source is not None else ""
                raise VtrbenchError(
                    f"{prefix}{head}/{loss}" + (f" {opts}" if opts else "") + f": {e}"
                ) from None
            specs.append(spec)
        bar = make_progress(console, enabled=progress)  # a bad progress setting: refused before any write
        grid_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(outcome.grid_file, f"# cache: {cache.path}\n" + grid.to_toml(_grid_plugins(grid)))
        with bar:
            name = "grid" + (f" shard {shard}" if shard is not None else "")
            task = bar.add_task(name, total=len(points), info="", unit="runs")
            for (head, loss, opts, seed), spec in zip(points, specs, strict=True):
                desc = f"{head}/{loss}" + (f" {opts}" if opts else "") + f" seed {seed}"
                bar.update(task, info=desc)
                try:
                    result = run_training(spec, seed, cache=cache, data=data, console=console, display=bar)
                    (outcome.skipped if result.skipped else outcome.ran).append(result.path)
                except VtrbenchError as e:
                    outcome.failed.append((desc, str(e)))
                    if console is not None:
                        console.print(f"[red]failed:[/] {desc}: {e}")
                except Exception as e:  # a crashing grid point must not lose the others
                    outcome.failed.append((desc, f"{type(e).__name__}: {e}"))
                    if console is not None:
                        console.print(f"[red]failed:[/] {desc}: {type(e).__name__}: {e}")
                        console.print(traceback.format_exc(limit=3), markup=False, highlight=False)
                bar.update(task, advance=1, info="")  # no run is running until the next one says so
    return outcome


def _grid_plugins(grid: Grid) -> list[dict[str, Any]]:
    """Origins of the plugin heads and losses the grid uses (built-ins have none), in grid order."""
    found: list[dict[str, Any]] = []
    for kind, names in (("head", grid.heads), ("loss", grid.losses)):
        for name in names:
            origin = provenance_for(**{kind: name}).get(kind)
            if origin is not None and origin not in found:
                found.append(origin)
    return found


def _point_spec(base: Any, head: str, loss: str, opts: dict[str, Any]) -> Any:
    return replace(
        base,
        head=head,
        loss=loss,
        head_options=dict(opts),
        progress=False,
        loss_options=dict(base.loss_options) if loss == base.loss else {},
    )
