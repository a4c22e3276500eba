"""``vtrbench ablate --tuned STUDY``: each tuned cell's best configuration, retrained and tested.

A study's best trials become grid cells: each is trained on the whole train split (validation videos
included) and evaluated on the test split the study recorded. The runs are ordinary runs with result
files, counted in a :class:`vtrbench.runs.grid.GridOutcome` (this module imports the grid's, never the
other way round).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from vtrbench.cache import FeatureCache
from vtrbench.config import check_seed
from vtrbench.errors import VtrbenchError
from vtrbench.progress import make_progress
from vtrbench.runs.grid import GridOutcome
from vtrbench.runs.runner import preflight, run_training
from vtrbench.runs.tune.space import split_params
from vtrbench.runs.tune.status import read_cells
from vtrbench.runs.tune.storage import shown_storage


def select_cells(
    cells: list[Any], heads: Sequence[str] | None, losses: Sequence[str] | None, shown: str
) -> list[Any]:
    """The study's cells whose head is one of ``heads`` and loss one of ``losses`` (None: all); a
    name that no cell has is refused with the study's cells listed (a cell cannot be run untuned)."""
    names = ", ".join(sorted(c.identity["cell"] for c in cells))
    for option, wanted, have in (
        ("--heads", heads, {c.head for c in cells}),
        ("--losses", losses, {c.loss for c in cells}),
    ):
        missing = [w for w in (wanted or ()) if w not in have]
        if missing:
            raise VtrbenchError(
                f"{option} {','.join(missing)}: not tuned in study {shown} (its cells: {names})"
            )
    kept = [c for c in cells if (heads is None or c.head in heads) and (losses is None or c.loss in losses)]
    if not kept:
        raise VtrbenchError(
            f"--heads {','.join(heads or ())} with --losses {','.join(losses or ())}: no such cell in "
            f"study {shown} (its cells: {names})"
        )
    return kept


def tuned_specs(
    storage: str,
    base: Any,
    cache: Any,
    *,
    heads: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
) -> list[tuple[str, Any]]:
    """(description, RunSpec) of each tuned cell's best configuration (the cells of ``heads`` x
    ``losses`` when given), trained on the whole train split (validation videos included) and
    evaluated on the test split the study recorded."""
    cells = read_cells(storage)
    if not cells:
        raise VtrbenchError(f"--tuned {shown_storage(storage)} holds no vtrbench study")
    cells = select_cells(cells, heads, losses, shown_storage(storage))
    fingerprint = cache.fingerprint()
    out = []
    for cell in cells:
        name = cell.identity["cell"]
        if cell.identity.get("cache") != fingerprint:
            raise VtrbenchError(
                f"--tuned {shown_storage(storage)}: cell {name} was tuned on another cache "
                f"({cell.identity.get('cache')}, not {fingerprint} of {cache.path})"
            )
        if cell.best is None:
            raise VtrbenchError(
                f"--tuned {shown_storage(storage)}: cell {name} has no complete trial yet "
                f"({cell.counts.finished} finished); run `vtrbench tune` to finish it"
            )
        recipe, head_opts, loss_opts = split_params(cell.best["params"])
        recipe.setdefault("epochs", int(cell.identity["max_epochs"]))
        spec = replace(
            base,
            head=cell.head,
            loss=cell.loss,
            head_options=head_opts,
            loss_options=loss_opts,
            train_split=cell.identity["train_split"],
            test_split=cell.identity["test_split"] or base.test_split,
            val_fraction=0.0,
            progress=False,
            tuned=cell.record(storage),
            **recipe,
        )
        out.append((f"{name} (tuned, {cell.counts.finished} trials)", spec))
    return out


def run_tuned(
    storage: str,
    base: Any,
    seeds: tuple[int, ...],
    *,
    console: Any = None,
    progress: bool = True,
    shard: Any = None,
    heads: Sequence[str] | None = None,
    losses: Sequence[str] | None = None,
) -> GridOutcome:
    """``vtrbench ablate --tuned STUDY``: each cell's best configuration x ``seeds`` on the test split
    (only the cells of ``heads`` x ``losses`` when given).

    Every run is checked first (as :func:`vtrbench.runs.grid.run_grid` does); finished runs are skipped."""
    outcome = GridOutcome()
    data: dict[str, Any] = {}
    with FeatureCache(base.cache_path) as cache:
        specs = tuned_specs(storage, base, cache, heads=heads, losses=losses)
        points = [(d, s, seed) for d, s in specs for seed in seeds]
        if shard is not None:
            points = shard.take(points)
        for desc, spec, seed in points:
            check_seed(seed, option="--seeds")
            try:
                preflight(spec, cache, [seed])
            except VtrbenchError as e:
                raise VtrbenchError(f"{desc}: {e}") from None
        bar = make_progress(console, enabled=progress)
        with bar:
            name = "tuned" + (f" shard {shard}" if shard is not None else "")
            task = bar.add_task(name, total=len(points), info="", unit="runs")
            for desc, spec, seed in points:
                bar.update(task, info=f"{desc} seed {seed}")
                try:
                    result = run_training(spec, seed, cache=cache, data=data, console=console, display=bar)
                    (outcome.skipped if result.skipped else outcome.ran).append(result.path)
                except VtrbenchError as e:
                    outcome.failed.append((f"{desc} seed {seed}", str(e)))
                    if console is not None:
                        console.print(f"[red]failed:[/] {desc} seed {seed}: {e}")
                bar.update(task, advance=1, info="")  # no run is running until the next one says so
    return outcome
