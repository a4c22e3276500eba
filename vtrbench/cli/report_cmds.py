"""``vtrbench report`` and ``vtrbench demo``: result files -> tables, and the offline end-to-end run."""

from __future__ import annotations

import os
from pathlib import Path

import click

from vtrbench import defaults
from vtrbench.cli._app import cli, make_console, out_console, parse_seeds, split_list
from vtrbench.cli.options import output_option
from vtrbench.defaults import REPORT_NOTES, REPORT_NOTES_STYLES, REPORT_SPLIT, REPORT_SPLITS
from vtrbench.errors import VtrbenchError
from vtrbench.io import check_output_path
from vtrbench.results import REPORT_POSTS

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def escape(text: str) -> str:
    """Rich markup escaped: a path or label holding [brackets] must print as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _columns(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    cols = tuple(v.strip() for v in value.split(",") if v.strip())
    if not cols:
        raise VtrbenchError("--columns: name at least one column, e.g. t2v/R@1,v2t/R@1,RSum")
    return cols


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "latex", "csv", "json"]),
    default="md",
    show_default=True,
    help="md or latex tables, or the same numbers at full precision for scripts (csv, json).",
)
@click.option(
    "--output", type=str, callback=output_option, help="Write to this file instead of the terminal."
)
@click.option("--layout", type=click.Choice(["paper", "pivot"]), default="paper", show_default=True)
@click.option(
    "--metric", default="t2v/R@1", show_default=True, help="Pivot cell / baseline difference metric."
)
@click.option("--rows", default="label", show_default=True, help="Pivot rows field.")
@click.option("--cols", default="loss", show_default=True, help="Pivot columns field.")
@click.option(
    "--columns",
    help="Paper layout: metric columns, comma-separated "
    "[default: t2v/R@1,t2v/R@5,t2v/R@10,t2v/MdR,v2t/R@1,v2t/R@5,v2t/R@10,v2t/MdR,RSum].",
)
@click.option(
    "--post",
    "posts",
    multiple=True,
    help="Post-processing blocks, repeatable: raw, dsl, qbnorm, is-bank, is-test, csls-bank, csls-test, "
    "dsl-bank, sinkhorn [default: raw, dsl, qbnorm; the loss x inference section reads them all].",
)
@click.option("--baseline", help="Row to difference against; marks (†) cells whose 95% CI excludes 0.")
@click.option(
    "--bootstrap",
    type=click.Choice(["seeds+queries", "queries"]),
    default="seeds+queries",
    show_default=True,
    help="What the baseline intervals resample: seeds and queries (hierarchical), or queries only.",
)
@click.option(
    "--correction",
    type=click.Choice(["auto", "holm", "bonferroni", "none"]),
    default="auto",
    show_default=True,
    help="Multiple comparisons for the † marks: Holm over every tested cell (auto: when more than 3 "
    "cells are tested), Bonferroni, or none (each cell at 5 %).",
)
@click.option(
    "--decomposition-target",
    metavar="LOSS:POST",
    help="The cell the loss x inference section tests against (reference loss, raw) [default: "
    f"{':'.join(defaults.DECOMPOSITION_TARGET)}, the DSL-trained, DSL-inferred cell; where the results "
    "have none, the best mean, labelled as chosen after looking].",
)
@click.option("--allow-mixed", is_flag=True, help="Allow different caches/splits/protocols in one table.")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--labels",
    type=click.Choice(["short", "full"]),
    default="short",
    show_default=True,
    help="Row names: short (CAMoE, meanP + the options that differ) or the full result labels.",
)
@click.option("--rename", multiple=True, help="old=new: show a label, loss or head under another name.")
@click.option(
    "--rename-file",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Names to show: a JSON object {old: new} or one old=new per line.",
)
@click.option("--caption", help="LaTeX \\caption.")
@click.option("--label", "tex_label", help="LaTeX \\label.")
@click.option("--wide", is_flag=True, help="LaTeX: table* (across both columns of a two-column paper).")
@click.option("--standalone", is_flag=True, help="LaTeX: a complete compilable document.")
@click.option(
    "--notes",
    "notes_style",
    type=click.Choice(REPORT_NOTES_STYLES),
    default=REPORT_NOTES,
    show_default=True,
    help="md/latex: the notes beside the table: full; short (marks, †, cells, tuned rows, warnings; "
    "provenance and protocol details go to --notes-file); none (the tables alone).",
)
@click.option(
    "--notes-file",
    type=str,
    callback=output_option,
    help="md/latex: also write every note in full to this file (LaTeX: paragraphs to \\input).",
)
@click.option(
    "--split",
    type=click.Choice(REPORT_SPLITS),
    default=REPORT_SPLIT,
    show_default=True,
    help="LaTeX: a table taller than a page as several floats with the header repeated (auto), one "
    "float per post-processing block (blocks), or one float whatever its height (none).",
)
@click.option(
    "--plot",
    type=str,
    callback=output_option,
    help="Also write a figure; .png, .pdf or .svg by the extension (needs matplotlib).",
)
def report(
    paths: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    layout: str,
    metric: str,
    rows: str,
    cols: str,
    columns: str | None,
    posts: tuple[str, ...],
    baseline: str | None,
    bootstrap: str,
    correction: str,
    decomposition_target: str | None,
    allow_mixed: bool,
    n_boot: int,
    labels: str,
    rename: tuple[str, ...],
    rename_file: tuple[Path, ...],
    caption: str | None,
    tex_label: str | None,
    wide: bool,
    standalone: bool,
    notes_style: str,
    notes_file: Path | None,
    split: str,
    plot: Path | None,
) -> None:
    """Result JSONs (files or folders) -> Markdown or LaTeX tables (mean ± std over seeds)."""
    from vtrbench import report as rep
    from vtrbench.report.labels import read_renames

    check_paper_options(fmt, notes_style, notes_file, split, output, plot)
    if output is not None:
        check_output_path(output, "--output")
    if notes_file is not None:
        check_output_path(notes_file, "--notes-file")
    if plot is not None:
        if plot.suffix.lower() not in PLOT_SUFFIXES:
            raise VtrbenchError(f"--plot {plot}: use a .png, .pdf or .svg file name")
        check_output_path(plot, "--plot")
        rep.require_matplotlib()
    renames = read_renames(rename, rename_file)
    if fmt == "latex":
        # What the user typed is checked before any work; names from result files when rendering.
        from vtrbench.report.text import latex_escape

        latex_escape(caption or "", "--caption")
        for old, new in renames.items():
            latex_escape(new, f"--rename {old}=")
    results = rep.load_results(paths)
    built = rep.build_report(
        results,
        layout=layout,
        metric=metric,
        rows=rows,
        cols=cols,
        posts=posts or REPORT_POSTS,
        baseline=baseline,
        allow_mixed=allow_mixed,
        n_boot=n_boot,
        columns=_columns(columns),
        bootstrap=bootstrap,
        correction=correction,
        decomposition_target=decomposition_target,
        labels=labels,
        rename=renames,
        caption=caption,
        tex_label=tex_label,
    )
    if fmt == "md":
        text = rep.render_markdown(built, notes=notes_style)
    elif fmt == "latex":
        text = rep.render_latex(built, standalone=standalone, wide=wide, notes=notes_style, split=split)
    else:
        from vtrbench.report.data import render_csv, render_json

        text = render_csv(built) if fmt == "csv" else render_json(built)
    if output is not None:
        from vtrbench.results import atomic_write_text

        atomic_write_text(output, text)
        make_console().print(f"wrote {escape(str(output))} ({len(results)} result files)", highlight=False)
    else:
        show_report(built, text, fmt, notes_style)
    if notes_file is not None:
        write_notes(built, fmt, notes_file)
    if notes_style == "none":
        # The table alone: its warnings must still reach the reader (also when they are in a file).
        for w in built.warnings:
            make_console().print(f"warning: {escape(w)}", highlight=False)
    if plot is not None:
        for path in rep.plot_all(results, plot, allow_mixed=allow_mixed):
            make_console().print(f"wrote {escape(str(path))}", highlight=False)


def show_report(built: object, text: str, fmt: str, notes: str = REPORT_NOTES) -> None:
    """A terminal gets tables fitted to its width; a pipe or file gets the plain Markdown/LaTeX text."""
    out = out_console()
    if fmt == "md" and out.is_terminal:
        from vtrbench.report.terminal import print_report

        print_report(built, out, notes=notes)  # type: ignore[arg-type]
    elif out.is_terminal:
        # a label holding BEL or ESC is data: shown escaped, never sent to the terminal as it is
        from vtrbench.io import printable

        click.echo(printable(text, keep="\n\t"), nl=False)
    else:
        click.echo(text, nl=False)


def check_paper_options(
    fmt: str, notes: str, notes_file: Path | None, split: str, output: Path | None, plot: Path | None
) -> None:
    """Refuse, before any work, the paper options that cannot do what they say with this format."""
    if fmt in ("csv", "json"):
        if notes != REPORT_NOTES:
            raise VtrbenchError(f"--notes {notes}: only for --format md or latex ({fmt} holds every note)")
        if notes_file is not None:
            raise VtrbenchError(f"--notes-file: only for --format md or latex ({fmt} holds every note)")
    if split != REPORT_SPLIT and fmt != "latex":
        raise VtrbenchError(f"--split {split}: only for --format latex (it cuts LaTeX floats)")
    if notes_file is not None:
        for other, option in ((output, "--output"), (plot, "--plot")):
            if other is not None and Path(os.path.abspath(other)) == Path(os.path.abspath(notes_file)):
                raise VtrbenchError(
                    f"--notes-file {notes_file}: the same file as {option}; give another name"
                )


def write_notes(built: object, fmt: str, path: Path) -> None:
    """Every note of the report in full, LaTeX or Markdown as the table (``--notes-file``)."""
    from vtrbench.report.latex import render_latex_notes
    from vtrbench.report.markdown import render_markdown_notes
    from vtrbench.results import atomic_write_text

    render = render_latex_notes if fmt == "latex" else render_markdown_notes
    atomic_write_text(path, render(built))  # type: ignore[arg-type]
    make_console().print(f"wrote {escape(str(path))} (the notes in full)", highlight=False)


@cli.command()
@click.option(
    "--output",
    type=str,
    callback=output_option,
    default="demo",
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
        seeds=tuple(parse_seeds(seeds)),
        heads=split_list(heads),
        losses=split_list(losses),
        progress=not quiet,
        console=make_console(),
        out=out_console(),
    )
