"""``vtrbench tune`` (equal-budget search on validation data) and ``heads/losses describe NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vtrbench import defaults
from vtrbench.cli._app import cli, make_console, out_console, resolve_device, split_list
from vtrbench.cli.options import compile_option
from vtrbench.errors import VtrbenchError


@cli.command("tune")
@click.option("--cache", "cache_path", type=click.Path(path_type=Path), help="Feature cache.")
@click.option("--heads", default="meanp,seqtransf,camoe", show_default=True, help="Comma list of heads.")
@click.option("--losses", default="infonce,dsl", show_default=True, help="Comma list of losses.")
@click.option(
    "--trials", type=click.IntRange(min=1), default=20, show_default=True, help="Finished trials per cell."
)
@click.option(
    "--startup-trials",
    type=click.IntRange(min=0),
    help="TPE's random trials per cell before it models the space [default: a quarter of --trials, 1 to 10; "
    "a resumed study keeps its own].",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Epoch cap of every trial.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    help="Validation = this fraction of the train split's videos (by video, seeded) [default: 0.1].",
)
@click.option("--val-split", help="Validate on this named split instead (never the test split).")
@click.option(
    "--folds",
    type=int,
    default=defaults.TUNE_FOLDS,
    help="Validate on K >= 2 video-disjoint folds of the train split (fixed by --seed): each trial's "
    "objective is the mean of its K fold models [default: one --val-fraction hold-out].",
)
@click.option(
    "--objective",
    type=click.Choice(["rsum", "r1"]),
    default=defaults.TUNE_OBJECTIVE,
    show_default=True,
    help="Validation objective: RSum (R@1+5+10 both ways) or t2v R@1 + v2t R@1 (earlier releases).",
)
@click.option("--study", type=click.Path(path_type=Path), help="SQLite file holding one study per cell.")
@click.option(
    "--storage", help="Any Optuna storage URL (postgresql://, mysql://, sqlite:///) or journal:FILE."
)
@click.option(
    "--space", "space_file", type=click.Path(path_type=Path), help="TOML file overriding the spaces."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds the sampler and every trial's training."
)
@click.option("--train-split", help="[default: the dataset's standard train split]")
@click.option("--test-split", help="The split tuning must never read [default: the dataset's test split].")
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    help=f"Stops hopeless trials from their per-epoch validation score [default: {defaults.TUNE_PRUNER}; "
    "none with --fidelity none; --fidelity data,epochs promotes by successive halving instead].",
)
@click.option(
    "--fidelity",
    default=defaults.TUNE_FIDELITY,
    show_default=True,
    help="What a trial's cost grows along: epochs (the pruner sees every epoch), data,epochs (--rungs of "
    "train-video fraction x epochs, successive halving), none (every trial in full).",
)
@click.option(
    "--rungs",
    metavar="F:E,...",
    help="--fidelity data,epochs: rungs of (fraction of train videos : epochs or max), ending at 1:max, "
    "e.g. 0.25:3,0.5:6,1:max [default: 1/eta^2, 1/eta, 1 of the data and of --max-epochs].",
)
@click.option(
    "--eta",
    type=int,
    help=f"--fidelity data,epochs: keep the top 1/eta of a rung's trials [default: {defaults.TUNE_ETA}].",
)
@click.option("--device", default="auto", show_default=True)
@compile_option(tune=True)
@click.option("--shard", "shard_option", metavar="I/N", help="Worker I of N (all workers share all cells).")
@click.option("--overwrite", is_flag=True, help="Delete the storage's vtrbench studies and start again.")
@click.option(
    "--status", "status_of", metavar="STUDY", help="Show trials done/pruned/failed per cell, then exit."
)
@click.option(
    "--results",
    "results_dir",
    type=click.Path(path_type=Path),
    help="With --status: results of `ablate --tuned` to show each cell's validation beside its test value.",
)
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(path_type=Path),
    help="Write each cell's optimisation history and parameter importances (PNG) into this folder.",
)
@click.option("--heartbeat", type=click.IntRange(min=1), default=defaults.TUNE_HEARTBEAT, hidden=True)
@click.option("--quiet", is_flag=True)
def tune_cmd(
    cache_path: Path | None,
    heads: str,
    losses: str,
    trials: int,
    startup_trials: int | None,
    max_epochs: int,
    val_fraction: float | None,
    val_split: str | None,
    folds: int | None,
    objective: str,
    study: Path | None,
    storage: str | None,
    space_file: Path | None,
    seed: int,
    train_split: str | None,
    test_split: str | None,
    pruner: str | None,
    fidelity: str,
    rungs: str | None,
    eta: int | None,
    device: str,
    compile: str,
    shard_option: str | None,
    overwrite: bool,
    status_of: str | None,
    results_dir: Path | None,
    plot_dir: Path | None,
    heartbeat: int,
    quiet: bool,
) -> None:
    """Equal-budget hyperparameter search of every head x loss on validation videos (Optuna).

    \b
    vtrbench tune   --cache C.h5 --heads meanp,camoe --losses infonce,dsl --trials 40 \\
                    --max-epochs 30 --val-fraction 0.1 --study results/tune.db
    vtrbench ablate --cache C.h5 --tuned results/tune.db --seeds 0,1,2
    """
    from vtrbench.runs.tune.storage import import_optuna

    import_optuna()  # one line naming the extra when Optuna is missing
    if plot_dir is not None:
        from vtrbench.report.figures import require_matplotlib

        require_matplotlib()  # before any tuning
    if results_dir is not None and status_of is None:
        raise VtrbenchError("--results goes with --status STUDY (validation beside test of a tuned study)")
    if status_of is not None:
        show_status(status_of, heartbeat)
        if results_dir is not None:
            show_val_test(status_of, results_dir)
        _plots(study_url(status_of), plot_dir, heartbeat)
        return
    if cache_path is None:
        raise VtrbenchError("--cache is required (or --status STUDY)")
    from vtrbench.runs.tune.plan import TuneSpec
    from vtrbench.runs.tune.storage import storage_url
    from vtrbench.runs.tune.study import run_tune
    from vtrbench.shard import resolve

    shard, dev = resolve(shard_option, resolve_device(device))
    spec = TuneSpec(
        cache_path=cache_path,
        heads=split_list(heads),
        losses=split_list(losses),
        trials=trials,
        max_epochs=max_epochs,
        storage=storage_url(study, storage),
        val_fraction=None
        if (val_split is not None or folds is not None) and val_fraction is None
        else (val_fraction or defaults.TUNE_VAL_FRACTION),
        val_split=val_split,
        space_file=space_file,
        seed=seed,
        train_split=train_split,
        test_split=test_split,
        device=dev,
        compile=compile,
        pruner=pruner,
        fidelity=fidelity,
        rungs=rungs,
        eta=eta,
        overwrite=overwrite,
        progress=not quiet,
        heartbeat=heartbeat,
        shard=shard,
        startup_trials=startup_trials,
        folds=folds,
        objective=objective,
    )
    err = make_console()
    outcome = run_tune(spec, console=err)
    err.print(f"[green]tuning done:[/] {outcome.trials_run} trial(s) run by this worker")
    show_status(spec.storage, heartbeat, url=True)
    _plots(spec.storage, plot_dir, heartbeat)


def _plots(storage: str, plot_dir: Path | None, heartbeat: int) -> None:
    if plot_dir is None:
        return
    from vtrbench.runs.tune.plots import plot_cells

    files, skipped = plot_cells(storage, plot_dir, heartbeat=heartbeat)
    err = make_console()
    for line in skipped:
        err.print(f"[yellow]note:[/] {line}", highlight=False, soft_wrap=True)
    err.print(f"{len(files)} figure(s) written to {plot_dir}", highlight=False, soft_wrap=True)


def study_url(value: str) -> str:
    if value.startswith("journal:") or "://" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise VtrbenchError(f"study file not found: {path}")
    return f"sqlite:///{path.resolve()}"


def show_status(study: str, heartbeat: int = defaults.TUNE_HEARTBEAT, *, url: bool = False) -> None:
    from rich.table import Table

    from vtrbench.runs.tune.status import read_cells
    from vtrbench.runs.tune.storage import shown_storage

    storage = study if url else study_url(study)
    cells = read_cells(storage, heartbeat=heartbeat)
    if not cells:
        raise VtrbenchError(f"{shown_storage(storage)} holds no vtrbench study")
    from vtrbench.runs.tune.notes import random_only

    table = Table(title=f"study {shown_storage(storage)}")
    folded = any(c.best and c.best.get("fold_values") for c in cells)
    columns = ["cell", "finished", "pruned", "failed", "running", "caption-epochs", "best (trial)"]
    for col in columns + ["fold spread"] * folded:
        table.add_column(col, justify="left" if col in ("cell", "finished") else "right", no_wrap=True)
    edges, randoms, flat = [], [], []
    for c in cells:
        if len(c.values) > 1 and len(set(c.values)) == 1:
            flat.append(f"{c.identity['cell']}: all {len(c.values)} complete trials scored {c.values[0]:.2f}")
        n = max(c.trials_asked, 1)
        filled = min(8, round(8 * c.counts.finished / n))
        best = f"{c.best['value']:.2f} (#{c.best['number']})" if c.best else "-"
        record = c.record(storage) if c.best else {}
        edge = record.get("edge") or {}
        if random_only({**c.identity, "trials": c.trials_asked}):
            randoms.append(f"{c.identity['cell']}: {c.trials_asked} trials, {c.identity['sampler']}")
        if edge:
            best += " *"
            where = ", ".join(f"{k} on its {v} bound" for k, v in edge.items())
            edges.append(f"{c.identity['cell']}: {where}")
        table.add_row(
            c.identity["cell"],
            "█" * filled + "░" * (8 - filled) + f" {c.counts.finished}/{c.trials_asked}",
            str(c.counts.pruned),
            str(c.counts.failed),
            str(c.counts.running),
            f"{c.caption_epochs:,}",
            best,
            *((fold_spread_text(c.best),) * folded),
        )
    out = out_console()
    out.print(table)
    for line in edges:
        out.print(f"* best trial on the edge of its space (widen it with --space?): {line}", soft_wrap=True)
    for line in randoms:
        out.print(f"random search only (no trial after TPE's random start-up): {line}", soft_wrap=True)
    for text in sorted({c.identity["pruner"] for c in cells if "fidelity" in c.identity}):
        out.print(f"fidelity (every cell alike): {text}", soft_wrap=True, highlight=False)
    for line in flat:
        out.print(
            f"warning: the objective did not separate any trial ({line}): the best is only the first; "
            "validate on more videos (--val-fraction, --folds)",
            soft_wrap=True,
        )
    objectives = sorted({c.identity.get("objective", "") for c in cells})
    out.print(f"objective: {'; '.join(objectives)}", soft_wrap=True, highlight=False)


def fold_spread_text(best: dict[str, Any] | None) -> str:
    """±std (min-max) of the best trial's fold objectives; "-" without folds."""
    from vtrbench.runs.tune.folds import spread

    values = (best or {}).get("fold_values") or []
    if len(values) < 2:
        return "-"
    return f"±{spread(values):.2f} ({min(values):.1f}-{max(values):.1f})"


def show_val_test(study: str, results_dir: Path) -> None:
    """``tune --status STUDY --results DIR``: each tuned cell's validation objective beside the same
    objective on the test split (``ablate --tuned`` results), and the cells' rank correlation."""
    from rich.table import Table

    from vtrbench.report import load_results
    from vtrbench.runs.tune.storage import shown_storage
    from vtrbench.runs.tune.valtest import spearman, val_test_rows

    shown = shown_storage(study_url(study))
    rows = [r for r in val_test_rows(load_results([results_dir])) if r.study == shown]
    if not rows:
        raise VtrbenchError(
            f"--results {results_dir} holds no `ablate --tuned` result of {shown}; run "
            f"`vtrbench ablate --tuned {study}` first"
        )
    table = Table(title=f"validation vs test ({rows[0].objective}; test: raw, mean over seeds)")
    for col in ("cell", "validation", "fold spread", "test", "seeds"):
        table.add_column(col, justify="left" if col == "cell" else "right", no_wrap=True)
    for r in rows:
        fold = f"±{r.fold_std:.2f} ({r.folds} folds)" if r.fold_std is not None else "- (one hold-out)"
        table.add_row(r.cell, f"{r.validation:.2f}", fold, f"{r.test:.2f}", str(r.seeds))
    out = out_console()
    out.print(table)
    rho = spearman([r.validation for r in rows], [r.test for r in rows])
    text = f"{rho:.2f} over {len(rows)} cells" if rho is not None else "n/a (fewer than 3 cells, or a tie)"
    out.print(f"rank correlation of cells, validation vs test (Spearman): {text}", soft_wrap=True)


# ---------------------------------------------------------------- heads/losses describe NAME


def _describe_group(kind: str, command: str, listing: click.Command) -> click.Group:
    @click.group(command, invoke_without_command=True, help=listing.help)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        if ctx.invoked_subcommand is None:
            from vtrbench.cli.plugin_cmds import print_registry

            print_registry(kind)

    @group.command("describe")
    @click.argument("name")
    @click.option("--max-epochs", type=click.IntRange(min=1), default=30, show_default=True)
    def describe(name: str, max_epochs: int) -> None:
        """NAME's options (defaults, accepted values), where it comes from, and the search space
        `vtrbench tune` uses for it."""
        from vtrbench.runs.tune.space import describe_space

        lines = option_lines(kind, name)  # an unknown name fails here, with its did-you-mean
        for line in [*lines, *describe_space(kind, name, max_epochs=max_epochs)]:
            click.echo(line)

    return group


def option_lines(kind: str, name: str) -> list[str]:
    """``heads/losses describe NAME``: where it comes from, one line per option (default, what it
    accepts: from the head's ``option_schema``; a loss or a plugin head without a schema: its
    constructor's signature only), then its docstring, which describes the options in words."""
    import inspect as pyinspect
    import re
    import textwrap

    from vtrbench.cli.plugin_cmds import origin_text
    from vtrbench.registry import registry_of

    reg = registry_of(kind)
    obj = reg.get(name)
    schema = getattr(obj, "option_schema", None) or {}
    lines = [f"{kind} {name} ({origin_text(reg.origin(name))})"]
    try:
        params = pyinspect.signature(obj.__init__ if isinstance(obj, type) else obj).parameters.values()
    except (TypeError, ValueError):
        params = []
    options = [p for p in params if p.kind is p.KEYWORD_ONLY and p.name != "embed_dim"]
    if not options:
        lines.append("options: none")
    else:
        how = "--head-option KEY=VALUE" if kind == "head" else "train/ablate --KEY VALUE"
        lines.append(f"options ({how}; grid files' [{kind}_options]):")
        shown = {p.name: _default_text(p, schema.get(p.name)) for p in options}
        width = max(18, *(len(n) for n in shown))
        dwidth = max(8, *(len(d) for d in shown.values()))
        lines.append(f"  {'option':<{width}} {'default':<{dwidth}} accepts")
        for p in options:
            rule = schema.get(p.name)
            accepts = rule.describe() if rule is not None else ""
            lines.append(f"  {p.name:<{width}} {shown[p.name]:<{dwidth}} {accepts}".rstrip())
        if "init" in schema:
            lines.append(
                "  (init: `vtrbench train` uses clip when the cache stores CLIP's layers, else random)"
            )
    doc = pyinspect.getdoc(obj) or ""
    if doc:
        lines.append("")
        # reStructuredText markup (``x``, :meth:`y`) read as plain text
        plain = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")
        for para in plain.split("\n\n"):
            lines += textwrap.wrap(" ".join(para.split()), 100, initial_indent="  ", subsequent_indent="  ")
    return [*lines, ""]


def _default_text(param: Any, rule: Any) -> str:
    import inspect as pyinspect

    value = param.default
    if value is pyinspect.Parameter.empty:
        return "(required)"
    if value is None and rule is not None and rule.optional:
        return "auto"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def install(group: click.Group) -> None:
    """Turn ``heads``/``losses`` into groups that still list when called bare and add ``describe``;
    add ``--plugin`` to ``tune`` and to the describe commands."""
    from vtrbench.cli.plugin_cmds import plugin_option

    for kind, command in (("head", "heads"), ("loss", "losses")):
        listing = group.commands.get(command)
        if listing is None or isinstance(listing, click.Group):
            continue
        new = _describe_group(kind, command, listing)
        new.params[:0] = [p for p in listing.params if p.name == "plugin"] or [plugin_option()]
        new.commands["describe"].params.insert(0, plugin_option())
        group.commands[command] = new
    tune = group.commands["tune"]
    if not any(p.name == "plugin" for p in tune.params):
        tune.params.insert(0, plugin_option())
