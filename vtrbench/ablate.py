"""``vtrbench ablate``: a grid of heads x losses x CAMoE alignment settings x seeds on one cache.

Each grid point is an ordinary run (vtrbench.runner) with its own result file, so a
grid can be interrupted and re-run: finished runs are skipped (``--overwrite never``).
The grid itself is saved as TOML next to the results it produced.
"""

from __future__ import annotations

import itertools
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vtrbench.config import config_hash
from vtrbench.errors import VtrbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CAMOE_AXES = ("experts", "streams", "gate", "aux_weight")
# Axes of the heads with a temporal transformer (grid file section [temporal]).
TEMPORAL_AXES = ("init", "layers")
TEMPORAL_HEADS = ("seqtransf", "camoe")
TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "val_fraction",
    "v2t_protocol",
    "dsl_tau",
    "qb_bank",
    "qb_beta",
    "train_split",
    "test_split",
)


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
            for loss in self.losses:
                for opts in combos:
                    for seed in self.seeds:
                        out.append((head, loss, opts, seed))
        return out

    def to_toml(self) -> str:
        lines = ["# vtrbench ablation grid (re-run with: vtrbench ablate --cache CACHE --grid THIS_FILE)"]
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
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(values: Any) -> str:
    return "[" + ", ".join(_toml_value(v) for v in values) + "]"


def load_grid_plugins(path: Path, plugins: Any) -> None:
    """``plugins = ["my_head.py", "package.module"]``: files relative to the grid file's folder."""
    from vtrbench.plugins import load_plugin

    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise VtrbenchError(f"{path}: plugins must be a list of file paths or module names")
    for spec in plugins:
        local = Path(path).parent / spec
        load_plugin(local if spec.endswith(".py") and not Path(spec).is_absolute() else spec)


def load_grid(path: Path) -> Grid:
    """Read a grid TOML; unknown keys are errors (a typo must not silently shrink a grid)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VtrbenchError(f"grid file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise VtrbenchError(f"{path}: invalid TOML ({e})") from None
    known_top = {"heads", "losses", "seeds", "camoe", "temporal", "train", "plugins"}
    unknown = set(data) - known_top
    if unknown:
        raise VtrbenchError(f"{path}: unknown key(s) {sorted(unknown)} (known: {sorted(known_top)})")
    load_grid_plugins(path, data.get("plugins", []))
    camoe = data.get("camoe", {})
    bad = set(camoe) - set(CAMOE_AXES)
    if bad:
        raise VtrbenchError(f"{path}: unknown [camoe] key(s) {sorted(bad)} (known: {list(CAMOE_AXES)})")
    temporal = data.get("temporal", {})
    bad = set(temporal) - set(TEMPORAL_AXES)
    if bad:
        raise VtrbenchError(f"{path}: unknown [temporal] key(s) {sorted(bad)} (known: {list(TEMPORAL_AXES)})")
    _check_temporal_axes(path, temporal)
    train = data.get("train", {})
    bad = set(train) - set(TRAIN_KEYS)
    if bad:
        raise VtrbenchError(f"{path}: unknown [train] key(s) {sorted(bad)} (known: {list(TRAIN_KEYS)})")
    try:
        return Grid(
            heads=tuple(data.get("heads", Grid.heads)),
            losses=tuple(data.get("losses", Grid.losses)),
            seeds=tuple(int(s) for s in data.get("seeds", Grid.seeds)),
            experts=tuple(tuple(e) for e in camoe.get("experts", ())),
            streams=tuple(camoe.get("streams", ())),
            gate=tuple(camoe.get("gate", ())),
            aux_weight=tuple(float(a) for a in camoe.get("aux_weight", ())),
            init=tuple(temporal.get("init", ())),
            layers=tuple(temporal.get("layers", ())),
            train=dict(train),
        )
    except (TypeError, ValueError) as e:
        raise VtrbenchError(f"{path}: {e}") from None


def _check_temporal_axes(path: Path, temporal: dict[str, Any]) -> None:
    """[temporal] values through the heads' own option checks (the ones --init/--layers meet)."""
    from vtrbench.heads._layers import INITS, choose_one, positive_int

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
    grid: Grid, base: Any, *, console: Any = None, progress: bool = True, shard: Any = None
) -> GridOutcome:
    """Run every grid point on the cache of ``base`` (a runner.RunSpec holding the shared options).

    ``shard`` (a vtrbench.shard.Shard): run only the cells (config x seed, in ``grid.points()``
    order) whose position k has k mod n == i; the others belong to other processes.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vtrbench.cache import FeatureCache
    from vtrbench.runner import run_training

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
        grid_dir.mkdir(parents=True, exist_ok=True)
        outcome.grid_file = grid_dir / f"grid-{config_hash([grid.to_toml(), cache.config_hash])[:8]}.toml"
        from vtrbench.results import atomic_write_text

        atomic_write_text(outcome.grid_file, f"# cache: {cache.path}\n" + grid.to_toml())
        bar = Progress(
            TextColumn("[bold]grid" + (f" shard {shard}" if shard is not None else "")),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[run]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        )
        with bar:
            task = bar.add_task("grid", total=len(points), run="")
            for head, loss, opts, seed in points:
                desc = f"{head}/{loss}" + (f" {opts}" if opts else "") + f" seed {seed}"
                bar.update(task, run=desc)
                spec = replace(
                    base,
                    head=head,
                    loss=loss,
                    head_options=dict(opts),
                    progress=False,
                    loss_options=dict(base.loss_options) if loss == base.loss else {},
                )
                try:
                    result = run_training(spec, seed, cache=cache, data=data, console=console)
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
                bar.advance(task)
    return outcome
