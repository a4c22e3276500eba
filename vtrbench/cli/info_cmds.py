"""``vtrbench datasets``, ``models`` and ``inspect``: what is registered and how a file was made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vtrbench.cli._app import cli, make_console, out_console
from vtrbench.errors import VtrbenchError


@cli.group()
def datasets() -> None:
    """List and describe the registered datasets."""


@datasets.command("list")
def datasets_list() -> None:
    from vtrbench.cli.plugin_cmds import print_registry

    print_registry("dataset")


@datasets.command("describe")
@click.argument("name")
@click.option("--annotations", type=click.Path(path_type=Path))
@click.option("--video-root", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def datasets_describe(name: str, annotations: Path | None, video_root: Path | None, as_json: bool) -> None:
    """Video and caption counts of each split of a dataset."""
    import json

    from vtrbench.datasets import load_dataset

    if annotations is None and name != "synthetic":
        raise VtrbenchError(f"`datasets describe {name}` needs --annotations DIR")
    index = load_dataset(name, annotations, video_root)
    info = {
        "dataset": name,
        "splits": index.describe(),
        "default_train": index.default_train,
        "default_test": index.default_test,
        "paragraph": index.paragraph,
        "max_words": index.max_words,
        "max_frames": index.max_frames,
        "warnings": index.warnings,
        "citation": index.citation,
    }
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    from rich.table import Table

    table = Table(title=f"{name}" + (f" — {index.citation}" if index.citation else ""))
    for col in ("split", "videos", "captions", "note"):
        table.add_column(col)
    for split, counts in info["splits"].items():
        table.add_row(split, str(counts["videos"]), str(counts["captions"]), index.splits[split].note)
    out_console().print(table)
    for w in index.warnings:
        make_console().print(f"[yellow]warning:[/] {w}")


@cli.command()
def models() -> None:
    """List the open_clip model names (including vtrbench-tiny)."""
    from vtrbench.extract.encode import list_models

    for name in list_models():
        click.echo(name)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True, help="Cache: also re-read every dataset and check its sha256.")
def inspect(path: Path, verify: bool) -> None:
    """Print what a cache (.h5) or result file (.json) holds and how it was made."""
    from rich.table import Table

    if path.suffix == ".json":
        import json

        from vtrbench.results import read_result

        r = read_result(path)
        for key in ("per_query_ranks", "per_query", "topk", "topk_scores", "_path"):  # long, unread
            r.pop(key, None)
        out_console().print_json(json.dumps(r))
        return
    from vtrbench.cache import FeatureCache

    with FeatureCache(path) as cache:
        if verify:
            cache.verify()
        attrs = cache.attrs
        table = Table(title=f"{path}", show_header=False)
        for key in sorted(attrs):
            if key != "config_json":
                table.add_row(key, str(attrs[key]))
        out_console().print(table)
        t = Table(title="datasets")
        for col in ("name", "shape", "dtype"):
            t.add_column(col)

        def visit(name: str, obj: Any) -> None:
            if hasattr(obj, "shape"):
                t.add_row(name, str(obj.shape), str(obj.dtype))

        cache.file.visititems(visit)
        out_console().print(t)
        s = Table(title="splits")
        for col in ("split", "videos", "captions", "note"):
            s.add_column(col)
        for split in cache.splits:
            v, x = cache.split_rows(split)
            s.add_row(split, str(len(v)), str(len(x)), str(cache.file["splits"][split].attrs.get("note", "")))
        out_console().print(s)
        _print_pos_coverage(cache)
        from rich.markup import escape

        failed = cache.failed_videos()
        for vid, reason in list(failed.items())[:10]:
            make_console().print(f"[yellow]failed:[/] {escape(vid)}: {escape(reason)}", highlight=False)
        if len(failed) > 10:
            make_console().print(f"[yellow]failed:[/] ... and {len(failed) - 10} more")
        if verify:
            make_console().print(
                f"[green]verified:[/] every dataset matches its sha256 ({cache.content_hash})"
            )


def _print_pos_coverage(cache: Any) -> None:
    """Per split, the share of captions whose CAMoE verb / noun stream is empty (it falls back to
    the whole sentence), and how the streams were found; computed from the masks, so old caches work."""
    from rich.table import Table

    texts = cache.file["texts"]
    if "verb_mask" not in texts:
        make_console().print("POS streams: none in this cache (--tagger none)")
        return
    verb = texts["verb_mask"][:].any(axis=1)
    noun = texts["noun_mask"][:].any(axis=1)
    vsrc = texts["verb_source"].asstr()[:] if "verb_source" in texts else None
    t = Table(title="POS streams (CAMoE): captions whose stream is empty fall back to the sentence")
    for col in ("split", "captions", "no verb", "no noun", "verb by caption rule"):
        t.add_column(col)

    def pct(k: int, n: int) -> str:
        return f"{100 * k / n:.1f} % ({k})" if n else "-"

    for split in cache.splits:
        _, rows = cache.split_rows(split)
        n = len(rows)
        rule = int((vsrc[rows] == "rule").sum()) if vsrc is not None and n else 0
        t.add_row(
            split,
            str(n),
            pct(int((~verb[rows]).sum()), n),
            pct(int((~noun[rows]).sum()), n),
            pct(rule, n) if vsrc is not None else "not recorded",
        )
    out_console().print(t)
