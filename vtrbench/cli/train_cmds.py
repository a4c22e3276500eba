"""``vtrbench train``, ``eval`` and ``ablate``: heads on a cache -> result files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vtrbench import defaults
from vtrbench.cli._app import (
    RESULTS_ROOT,
    cli,
    make_console,
    out_console,
    parse_seeds,
    resolve_device,
    split_list,
)
from vtrbench.cli.options import (
    eval_protocol_options,
    head_options_for_grid,
    run_spec_from_options,
    shared_train_options,
    train_options,
)
from vtrbench.config import OVERWRITE_CHOICES, V2T_CHOICES
from vtrbench.errors import VtrbenchError


@cli.command()
@train_options
@click.option("--seed", "seeds", default="0", show_default=True, help="A seed or a comma list (0,1,2).")
@click.option(
    "--save-checkpoint",
    type=click.Path(path_type=Path),
    help="Save the trained head (per seed: {seed} in the name is replaced).",
)
def train(seeds: str, save_checkpoint: Path | None, **kw: Any) -> None:
    """Train one head on a cache split, evaluate it on the test split, write one result JSON per seed."""
    from vtrbench.cache import FeatureCache
    from vtrbench.config import check_seed
    from vtrbench.runs.runner import checkpoint_paths, preflight, run_training

    spec = run_spec_from_options(kw)
    seed_list = [check_seed(s) for s in parse_seeds(seeds)]
    ckpts = checkpoint_paths(save_checkpoint, seed_list)
    data: dict[str, Any] = {}  # the splits are read once for all seeds
    with FeatureCache(spec.cache_path) as cache:
        preflight(spec, cache, seed_list, ckpts)  # every seed's outputs, before the first one trains
        for seed in seed_list:
            outcome = run_training(
                spec, seed, checkpoint=ckpts[seed], console=make_console(), cache=cache, data=data
            )
            _print_outcome(outcome)


def _print_outcome(outcome: Any) -> None:
    out = out_console()
    if outcome.skipped:
        out.print(f"[yellow]skipped[/] {outcome.path} exists (use --overwrite always to replace it)")
        return
    r = outcome.result
    print_metrics(r, out)
    excluded = r["protocol"].get("excluded_failed_videos") or 0
    if excluded:
        out.print(
            f"[bold yellow]warning:[/] {excluded} test videos failed to decode and were left out with their "
            "captions: this is not the full test split (see `vtrbench inspect` on the cache).",
            soft_wrap=True,
        )
    if r["cache"].get("random_weights"):
        out.print(
            "[yellow]note:[/] the cache was made with RANDOM CLIP weights: these numbers are not "
            "comparable to papers.",
            soft_wrap=True,
        )
    # soft_wrap: a path is never broken at the console's width (80 columns in a log)
    out.print(f"result: {outcome.path}", soft_wrap=True, highlight=False, markup=False)


# the metric columns of train's and eval's table, and which stay longest in a narrow terminal
METRIC_KEYS = ("R@1", "R@5", "R@10", "MdR", "MnR")
TERMINAL_PRIORITY = (
    "t2v R@1", "v2t R@1", "RSum", "t2v R@5", "v2t R@5", "t2v R@10", "v2t R@10", "t2v MdR", "v2t MdR",
    "t2v MnR", "v2t MnR",
)  # fmt: skip


def print_metrics(r: dict[str, Any], out: Any) -> None:
    """The result's metrics, one row per post-processing, every name and number whole: fitted to a
    terminal (whole columns left out, named), a plain Markdown table in a pipe or a log."""
    from rich.markup import escape

    from vtrbench.report.terminal import Col, plain_table, print_fitted

    p = r["protocol"]
    title = f"{r['run_id']}  ({p['test_split']}: {p['n_queries']} queries, {p['n_gallery']} videos)"
    headers = ["post"] + [f"{d} {k}" for d in ("t2v", "v2t") for k in METRIC_KEYS] + ["RSum"]
    rows = [
        [post + (" (transductive)" if r["transductive"].get(post) else "")]
        + [f"{m[d][k]:.1f}" for d in ("t2v", "v2t") for k in METRIC_KEYS]
        + [f"{m['RSum']:.1f}"]
        for post, m in r["metrics"].items()
    ]
    cols = [Col(h, [row[j] for row in rows], name=j == 0) for j, h in enumerate(headers)]
    if not out.is_terminal:
        # no width to fit: a log or a pipe keeps every column, and nothing wraps a line
        out.file.write(f"{title}\n\n{plain_table(cols)}\n\n")
        out.file.flush()
        return
    left = print_fitted(out, title, cols, [headers.index(h) for h in TERMINAL_PRIORITY])
    if left:
        out.print(
            f"columns left out to fit {out.width} characters: {escape(', '.join(left))} (pipe the "
            "output for all of them; the result file holds every metric)",
            highlight=False,
        )


def _eval_protocol(f: Any) -> Any:
    for opt in reversed(eval_protocol_options()):
        f = opt(f)
    return f


@cli.command("eval")
@click.option("--cache", "cache_path", required=True, type=click.Path(path_type=Path))
@click.option("--head", help="zeroshot (untrained frozen CLIP mean pooling).")
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), help="A head saved by train --save-checkpoint."
)
@click.option("--test-split", help="Split to evaluate on [default: the dataset's standard test split].")
@click.option(
    "--train-split",
    help="Query bank source for qbnorm, is-bank, csls-bank, dsl-bank [default: the dataset's train split].",
)
@click.option(
    "--v2t-protocol", type=click.Choice(V2T_CHOICES), default=defaults.V2T_PROTOCOL, show_default=True
)
@click.option(
    "--dsl-tau", type=click.FloatRange(min=0, min_open=True), default=defaults.DSL_TAU, show_default=True
)
@click.option("--qb-bank", type=click.IntRange(min=1), default=defaults.QB_BANK, show_default=True)
@click.option(
    "--qb-beta", type=click.FloatRange(min=0, min_open=True), default=defaults.QB_BETA, show_default=True
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--results", "results_dir", type=click.Path(path_type=Path), default=RESULTS_ROOT, show_default=True
)
@click.option(
    "--overwrite", type=click.Choice(OVERWRITE_CHOICES), default=defaults.OVERWRITE, show_default=True
)
@_eval_protocol
def eval_cmd(cache_path: Path, head: str | None, checkpoint: Path | None, **kw: Any) -> None:
    """Evaluate a saved head checkpoint, or the untrained zeroshot head, on a cache split."""
    from vtrbench.runs.runner import run_eval

    if (head is None) == (checkpoint is None):
        raise VtrbenchError("give exactly one of --head zeroshot or --checkpoint FILE")
    if head is not None and head != "zeroshot":
        raise VtrbenchError(
            f"--head {head} must be trained first (`vtrbench train`); eval takes --head "
            "zeroshot or --checkpoint"
        )
    kw["device"] = resolve_device(kw["device"])
    outcome = run_eval(cache_path, checkpoint=checkpoint, console=make_console(), **kw)
    _print_outcome(outcome)


@cli.command()
@shared_train_options
@click.option("--heads", default="meanp,seqtransf,camoe", show_default=True, help="Comma list of heads.")
@click.option("--losses", default="infonce,dsl", show_default=True, help="Comma list of losses.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma list of seeds.")
@click.option(
    "--experts",
    "experts_groups",
    help="camoe expert sets, ';'-separated groups of comma lists, e.g. 'fusion;action,entity,fusion,scene'.",
)
@click.option("--streams", "streams_list", help="camoe text streams to compare, e.g. pos,learned,eot.")
@click.option("--gate", "gate_list", help="camoe gates to compare, e.g. single,uniform.")
@click.option("--aux-weight", "aux_list", help="camoe auxiliary loss weights to compare, e.g. 0,0.5.")
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(path_type=Path),
    help="A grid TOML (axes and [train] options); replaces the axis options above.",
)
@click.option(
    "--shard",
    "shard_option",
    metavar="I/N",
    help="Run only grid cells k with k mod N == I (Slurm arrays, machines); under torchrun the rank.",
)
@click.option(
    "--tuned",
    "tuned_study",
    metavar="STUDY",
    help="Run each cell's best configuration from `vtrbench tune` (SQLite file or storage URL) "
    "instead of a grid, once per --seeds (--heads/--losses: only those of its cells).",
)
@click.option("--loss", default="dsl", hidden=True)
@click.option("--head", default="meanp", hidden=True)
def ablate(
    heads: str,
    losses: str,
    seeds: str,
    experts_groups: str | None,
    streams_list: str | None,
    gate_list: str | None,
    aux_list: str | None,
    grid_file: Path | None,
    shard_option: str | None,
    tuned_study: str | None,
    **kw: Any,
) -> None:
    """Run a grid of heads x losses x CAMoE alignment settings x seeds on one cache (one result per run)."""
    from dataclasses import replace

    if tuned_study is not None:
        _ablate_tuned(tuned_study, seeds, shard_option, grid_file, kw, _given_cells(heads, losses))
        return

    from vtrbench.runs.grid import run_grid
    from vtrbench.shard import from_torchrun, refuse

    try:
        grid = _grid_from_options(
            heads, losses, seeds, experts_groups, streams_list, gate_list, aux_list, grid_file, kw
        )
    except VtrbenchError as e:
        if grid_file is not None:
            raise  # a file can differ between machines: each rank reports what it found
        # A grid from the options alone: every torchrun rank finds the same error, so rank 0 says it
        # once (the device and cache checks below can differ per rank and stay per rank).
        refuse(from_torchrun(), str(e))
    from vtrbench.shard import resolve

    shard, device = resolve(shard_option, resolve_device(kw["device"]))
    base = run_spec_from_options({**kw, "device": device})
    if grid_file is not None:
        try:
            base = replace(base, **grid.train)  # RunSpec validates the combination (e.g. bf16 on a CPU)
        except VtrbenchError as e:
            raise VtrbenchError(f"{grid_file}: {e}") from None
    err = make_console()
    n = len(grid.points())
    mine = f" (shard {shard}: {len(shard.take(grid.points()))} of them)" if shard is not None else ""
    err.print(f"ablation grid: {n} runs{mine} on {base.cache_path} -> {base.results_dir}")
    outcome = run_grid(grid, base, console=err, progress=not kw.get("quiet"), source=grid_file, shard=shard)
    _finish(err, outcome, "grid done", f"; grid saved as {outcome.grid_file}")


def _finish(err: Any, outcome: Any, done: str, tail: str = "") -> None:
    """The closing lines of ``ablate`` (runs ran / skipped / failed, each failure) and its exit code."""
    err.print(
        f"[green]{done}:[/] {len(outcome.ran)} ran, {len(outcome.skipped)} skipped (result exists), "
        f"{len(outcome.failed)} failed{tail}"
    )
    for desc, reason in outcome.failed:
        err.print(f"  [red]failed[/] {desc}: {reason}")
    if outcome.failed:
        raise SystemExit(1)


def _grid_from_options(
    heads: str,
    losses: str,
    seeds: str,
    experts_groups: str | None,
    streams_list: str | None,
    gate_list: str | None,
    aux_list: str | None,
    grid_file: Path | None,
    kw: dict[str, Any],
) -> Any:
    """The grid ``ablate`` runs: the grid file's, or the one its options describe (validated)."""
    from vtrbench.runs.grid import TRAIN_KEYS, Grid, load_grid, validate_grid

    head_option_pairs = tuple(kw.pop("head_option", ()) or ())
    if grid_file is not None:
        grid = load_grid(grid_file)
        if head_option_pairs:
            raise VtrbenchError(
                "--head-option and --grid: put the head options in the grid file's [head_options] table"
            )
    else:
        try:
            aux = tuple(float(a) for a in split_list(aux_list))
        except ValueError:
            raise VtrbenchError(f"--aux-weight takes numbers, got {aux_list!r}") from None
        grid = validate_grid(
            Grid(
                heads=split_list(heads),
                losses=split_list(losses),
                seeds=tuple(parse_seeds(seeds)),
                experts=tuple(
                    split_list(g.replace(" ", "")) for g in (experts_groups or "").split(";") if g.strip()
                ),
                streams=split_list(streams_list),
                gate=split_list(gate_list),
                aux_weight=aux,
                train={k: kw[k] for k in TRAIN_KEYS if kw.get(k) is not None},
                head_options=head_options_for_grid(split_list(heads), head_option_pairs),
            )
        )
    return grid


# What ``ablate --tuned`` can honour besides the study's cells: where and how the runs compute and
# are written, and how the test split is evaluated. Every other option (the recipe, head and loss
# options, splits, grid axes) is fixed by the tuned configuration and refused, not silently dropped;
# an option added to ablate later is refused too until it is listed here.
TUNED_HONOURS = frozenset(
    {
        "tuned_study", "cache_path", "seeds", "heads", "losses", "shard_option", "device", "precision",
        "compile", "threads", "results_dir", "overwrite", "tensorboard", "quiet", "plugin", "v2t_protocol",
        "dsl_tau", "qb_bank", "qb_beta", "qb_k", "mdr", "post_options", "allow_overlap",
        "grid_file",  # refused below with its own reason
    }
)  # fmt: skip


def _given_cells(heads: str, losses: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """``--heads``/``--losses`` as typed (None where left at their default: all the study's cells),
    after refusing every option the tuned configuration fixes, named as typed."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    for param in ctx.command.params:
        if param.name in TUNED_HONOURS or ctx.get_parameter_source(str(param.name)) not in typed:
            continue
        flag = max(param.opts, key=len)
        raise VtrbenchError(
            f"{flag} cannot be combined with --tuned: the study's best configuration fixes it (search "
            "it with `vtrbench tune --space`, or run `ablate` without --tuned)"
        )
    given = ctx.get_parameter_source
    return (
        tuple(split_list(heads)) if given("heads") in typed else None,
        tuple(split_list(losses)) if given("losses") in typed else None,
    )


def _ablate_tuned(
    study: str,
    seeds: str,
    shard_option: str | None,
    grid_file: Path | None,
    kw: Any,
    cells: tuple[tuple[str, ...] | None, tuple[str, ...] | None] = (None, None),
) -> None:
    from vtrbench.cli.tune_cmds import study_url
    from vtrbench.runs.tune.storage import import_optuna
    from vtrbench.runs.tune.tuned import run_tuned
    from vtrbench.shard import resolve

    if grid_file is not None:
        raise VtrbenchError("--tuned takes its cells from the study; it cannot be combined with --grid")
    import_optuna()
    shard, device = resolve(shard_option, resolve_device(kw["device"]))
    base = run_spec_from_options({**kw, "device": device})
    err = make_console()
    outcome = run_tuned(
        study_url(study),
        base,
        tuple(parse_seeds(seeds)),
        console=err,
        progress=not kw.get("quiet"),
        shard=shard,
        heads=cells[0],
        losses=cells[1],
    )
    _finish(err, outcome, "tuned runs done")
