"""``vtrbench search`` (free text -> ranked videos) and ``vtrbench browse`` (results -> one HTML page)."""

from __future__ import annotations

from pathlib import Path

import click

from vtrbench.cli._app import _console, _out, _resolve_device, cli
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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {rank, video, score, ...}.")
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
    as_json: bool,
    queries_file: Path | None,
    split: str | None,
    clip_weights: str | None,
    device: str,
) -> None:
    """Rank the cache's videos for free-text QUERY (encoded with the cache's own CLIP).

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
        device=_resolve_device(device),
        clip_weights=clip_weights,
    )
    if as_json:
        click.echo(json.dumps([row for r in outcome.results for row in r.to_rows()], indent=1))
        return
    from rich.markup import escape
    from rich.table import Table

    out = _out()
    for r in outcome.results:
        where = f"{outcome.head}, gallery {outcome.gallery}: {outcome.n_gallery} videos"
        title = f"{escape(r.query)}  [dim]({escape(where)})[/]"
        table = Table(title=title, title_justify="left")
        for col in ("rank", "video", "score", "path"):
            table.add_column(col, justify="right" if col in ("rank", "score") else "left")
        for h in r.hits:
            table.add_row(str(h.rank), escape(h.video), f"{h.score:.4f}", escape(h.path))
        out.print(table)
        if r.gate is not None:
            out.print("gate: " + ", ".join(f"{e} {w:.3f}" for e, w in r.gate.items()), highlight=False)
        if r.truncated:
            _console().print(
                f"[yellow]note:[/] the query has {r.n_tokens} tokens; like the cache's captions only the "
                f"first {outcome.max_words} (SOT and EOT included) were read",
                highlight=False,
            )
