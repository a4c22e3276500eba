"""``vtrbench report`` and ``vtrbench demo``: result files -> tables, and the offline end-to-end run."""

from __future__ import annotations

from pathlib import Path

import click

from vtrbench.cli._app import _console, _out, _parse_seeds, _split_list, cli


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "latex"]), default="md", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), help="Write to this file instead of the terminal.")
@click.option("--layout", type=click.Choice(["paper", "pivot"]), default="paper", show_default=True)
@click.option(
    "--metric", default="t2v/R@1", show_default=True, help="Pivot cell / baseline difference metric."
)
@click.option("--rows", default="label", show_default=True, help="Pivot rows field.")
@click.option("--cols", default="loss", show_default=True, help="Pivot columns field.")
@click.option(
    "--post", "posts", multiple=True, help="Post-processing blocks: raw, dsl, qbnorm [default: all]."
)
@click.option("--baseline", help="Row to difference against, with paired bootstrap 95% CIs.")
@click.option("--allow-mixed", is_flag=True, help="Allow different caches/splits/protocols in one table.")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--standalone", is_flag=True, help="LaTeX: a complete compilable document.")
@click.option("--plot", type=click.Path(path_type=Path), help="Also write a PNG figure (needs matplotlib).")
def report(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    layout: str,
    metric: str,
    rows: str,
    cols: str,
    posts: tuple[str, ...],
    baseline: str | None,
    allow_mixed: bool,
    n_boot: int,
    standalone: bool,
    plot: Path | None,
) -> None:
    """Result JSONs (files or folders) -> Markdown or LaTeX tables (mean ± std over seeds)."""
    from vtrbench import report as rep

    results = rep.load_results(paths)
    built = rep.build_report(
        results,
        layout=layout,
        metric=metric,
        rows=rows,
        cols=cols,
        posts=posts or ("raw", "dsl", "qbnorm"),
        baseline=baseline,
        allow_mixed=allow_mixed,
        n_boot=n_boot,
    )
    text = rep.render_markdown(built) if fmt == "md" else rep.render_latex(built, standalone=standalone)
    if output is not None:
        from vtrbench.results import atomic_write_text

        atomic_write_text(output, text)
        _console().print(f"wrote {output} ({len(results)} result files)")
    elif fmt == "md":
        from rich.markdown import Markdown

        _out().print(Markdown(text))
    else:
        click.echo(text)
    if plot is not None:
        rep.plot_report(results, plot, allow_mixed=allow_mixed)
        _console().print(f"wrote {plot}")


@cli.command()
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Folder for the synthetic videos, the cache, the results and the report.",
)
@click.option("--videos", type=click.IntRange(min=16), default=256, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--seeds", default="0,1", show_default=True)
@click.option("--heads", default="meanp,seqtransf,camoe", show_default=True)
@click.option("--losses", default="infonce,dsl", show_default=True)
@click.option("--quiet", is_flag=True)
def demo(output: Path, videos: int, epochs: int, seeds: str, heads: str, losses: str, quiet: bool) -> None:
    """The embedded default: synthetic videos -> extract -> ablate -> report, offline, on a CPU."""
    from vtrbench.demo import run_demo

    run_demo(
        output,
        videos=videos,
        epochs=epochs,
        seeds=tuple(_parse_seeds(seeds)),
        heads=_split_list(heads),
        losses=_split_list(losses),
        progress=not quiet,
        console=_console(),
        out=_out(),
    )
