"""``vtrbench search`` (free text -> ranked videos) and ``vtrbench browse`` (results -> one HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from vtrbench import defaults
from vtrbench.cli._app import cli, make_console, out_console, resolve_device
from vtrbench.cli.options import output_option
from vtrbench.errors import VtrbenchError


@cli.command()
@click.argument("query", nargs=-1)
@click.option("--cache", "cache_path", required=True, type=click.Path(path_type=Path), help="Feature cache.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Head saved by `train --save-checkpoint` on this cache [default: zeroshot].",
)
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Videos per query.")
@click.option(
    "--captions",
    "n_captions",
    type=click.IntRange(min=0),
    default=defaults.SEARCH_CAPTIONS,
    show_default=True,
    help="Cached captions shown under each video (0: none; --json lists all of them).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {rank, video, score, path, captions, ...}."
)
@click.option(
    "--queries", "queries_file", type=click.Path(path_type=Path), help="File with one query per line."
)
@click.option("--split", help="Gallery = this split's videos [default: every video of the cache].")
@click.option(
    "--clip-weights",
    metavar="PATH|TAG",
    help="CLIP weights to encode queries with, when the cache's recorded checkpoint file moved.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, or auto.")
def search(
    query: tuple[str, ...],
    cache_path: Path,
    checkpoint: Path | None,
    k: int,
    n_captions: int,
    as_json: bool,
    queries_file: Path | None,
    split: str | None,
    clip_weights: str | None,
    device: str,
) -> None:
    """Rank the cache's videos for free-text QUERY (encoded with the cache's own CLIP).

    Each video is shown with its captions from the cache, so that a hit can be judged. The first
    search with a CLIP keeps its text tower in ~/.cache/vtrbench (VTRBENCH_CACHE_DIR; =off keeps
    nothing) so that later searches start without importing open_clip.

    \b
    vtrbench search --cache C.h5 "a man is slicing tomatoes in a kitchen"
    vtrbench search --cache C.h5 --checkpoint ckpt/camoe.pt "a dog catches a frisbee" -k 5 --json
    """
    import json

    from vtrbench.search import read_queries
    from vtrbench.search import search as run_search

    queries = [" ".join(query)] if query else []
    if queries_file is not None:
        if query:
            raise VtrbenchError("give either a QUERY or --queries FILE, not both")
        queries = read_queries(queries_file)
    outcome = run_search(
        cache_path,
        queries,
        checkpoint=checkpoint,
        k=k,
        split=split,
        device=resolve_device(device),
        clip_weights=clip_weights,
    )
    err = make_console()
    if outcome.random_weights:
        err.print(
            "[bold yellow]warning:[/] the cache was made with RANDOM CLIP weights (--pretrained none): these "
            "rankings say nothing about real retrieval (tests and the synthetic demo only)",
            highlight=False,
            soft_wrap=True,
        )
    if outcome.note:
        err.print(f"[dim]note: {escape(outcome.note)}[/]", highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps([row for r in outcome.results for row in r.to_rows()], indent=1))
        return
    print_hits(outcome, n_captions)


def shown(text: str) -> str:
    """``text`` for the terminal: rich markup escaped, control characters written as escapes (a
    caption or path holding ``\\x1b[31m`` must not recolour the terminal)."""
    from vtrbench.io import printable

    return escape(printable(text))


def print_hits(outcome: Any, n_captions: int) -> None:
    """One block per query: rank, score, video and its full path on one line (never cut: lines are
    printed as they are, however narrow the terminal or when piped), then the video's captions."""
    out = out_console()

    def say(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True)

    where = f"{outcome.head}, gallery {outcome.gallery}: {outcome.n_gallery} videos"
    for r in outcome.results:
        say(f"[bold]{shown(r.query)}[/]  [dim]({shown(where)})[/]")
        width = max(5, *(len(h.video) for h in r.hits))
        say(f"[dim]{'rank':>4}  {'score':>7}  {'video':<{width}}  path[/]")
        for h in r.hits:
            say(f"{h.rank:>4}  {h.score:>7.4f}  {shown(h.video):<{width}}  {shown(h.path)}")
            first = h.captions[:n_captions]
            for caption in first:
                say(f"{'':>15}[green]“{shown(caption)}”[/]")
            if n_captions and len(h.captions) > len(first):
                say(f"{'':>15}[dim](+{len(h.captions) - len(first)} more of {len(h.captions)} captions)[/]")
        if r.gate is not None:
            say("gate: " + ", ".join(f"{e} {w:.3f}" for e, w in r.gate.items()))
        if r.truncated:
            make_console().print(
                f"[yellow]note:[/] the query has {r.n_tokens} tokens; like the cache's captions only the "
                f"first {outcome.max_words} (SOT and EOT included) were read",
                highlight=False,
                soft_wrap=True,
            )


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--cache", "cache_path", required=True, type=click.Path(path_type=Path), help="The results' cache."
)
@click.option(
    "--output",
    required=True,
    type=str,
    callback=output_option,
    help="Folder for index.html (made if needed).",
)
@click.option("--a", "sys_a", metavar="SYSTEM", help="First system of the drill-down [default: best RSum].")
@click.option("--b", "sys_b", metavar="SYSTEM", help="Second system [default: the baseline].")
@click.option("--baseline", metavar="SYSTEM", help="Baseline of the table's Δ [default: meanp + infonce].")
@click.option(
    "--post",
    type=click.Choice(["raw", "dsl", "qbnorm"]),
    default="raw",
    show_default=True,
    help="Post-processing of the drill-down's ranks.",
)
def browse(
    results: tuple[Path, ...],
    cache_path: Path,
    output: Path,
    sys_a: str | None,
    sys_b: str | None,
    baseline: str | None,
    post: str,
) -> None:
    """Write one self-contained HTML page (OUTPUT/index.html) to explore RESULTS: the ablation table,
    the queries where one system beats another, top-5 lists with thumbnails, CAMoE gates."""
    from vtrbench.browse import build_site

    summary = build_site(list(results), cache_path, output, a=sys_a, b=sys_b, baseline=baseline, post=post)
    missing = []
    if not summary.has_topk:
        missing.append("no top-k lists (result files of schema 1)")
    if not summary.has_thumbnails:
        missing.append("no thumbnails (cache extracted without them)")
    make_console().print(
        f"wrote {shown(str(summary.page))} ({summary.bytes / 2**20:.1f} MB; {summary.systems} systems, "
        f"{summary.queries} queries; drill-down {shown(summary.drill)})"
        + (f"; {', '.join(missing)}" if missing else ""),
        highlight=False,
        soft_wrap=True,
    )
