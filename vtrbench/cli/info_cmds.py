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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Result file: print the whole file as JSON (per-query ranks, top-k lists and history included).",
)
def inspect(path: Path, verify: bool, as_json: bool) -> None:
    """Print what a cache (.h5) or result file (.json) holds and how it was made.

    A result file gets a summary (run, system, seed, cache, protocol, metrics, provenance); --json prints
    all of it."""
    from rich.table import Table

    if path.suffix == ".json":
        import json

        from vtrbench.results import read_result

        r = read_result(path)
        r.pop("_path", None)
        if as_json:
            click.echo(json.dumps(r, indent=1))
        else:
            print_result_summary(path, r)
        return
    if as_json:
        raise VtrbenchError(f"--json is for result files (.json); {path.name} is read as a cache")
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


# ---------------------------------------------------------------- inspect RESULT.json


def _options_text(options: Any) -> str:
    if not isinstance(options, dict) or not options:
        return ""
    return " {" + ", ".join(f"{k}={v}" for k, v in options.items()) + "}"


def result_lines(path: Path, r: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) rows of a result file's summary: what ran, on what, how it was made."""
    config, cache, protocol = r.get("config") or {}, r.get("cache") or {}, r.get("protocol") or {}
    prov = r.get("provenance") or {}
    weights = f"{cache.get('model')}/{cache.get('pretrained')}"
    if cache.get("random_weights"):
        weights += " (RANDOM weights: not comparable to papers)"
    rows = [
        ("run id", f"{r.get('run_id')}  ({r.get('kind')}, {r.get('created_utc')})"),
        ("system", str(r.get("label"))),
        ("head", f"{r.get('head')}{_options_text(r.get('head_options'))}"),
        ("loss", f"{r.get('loss')}{_options_text(r.get('loss_options'))}"),
        ("seed", str(r.get("seed"))),
        ("cache", f"{cache.get('path')} (config hash {cache.get('config_hash')})"),
        ("CLIP", weights),
        (
            "protocol",
            f"train {protocol.get('train_split')} -> test {protocol.get('test_split')}: "
            f"{protocol.get('n_queries')} queries, {protocol.get('n_gallery')} videos; "
            f"v2t {protocol.get('v2t_multi_caption')}",
        ),
    ]
    excluded = protocol.get("excluded_failed_videos") or 0
    if excluded:
        rows.append(("left out", f"{excluded} test videos failed to decode (with their captions)"))
    if r.get("kind") == "train" or config.get("epochs"):
        recipe = ", ".join(
            f"{k} {config[k]}"
            for k in ("epochs", "batch_size", "lr", "weight_decay", "warmup")
            if k in config
        )
        rows.append(("recipe", recipe))
    tuned = r.get("tuned") or config.get("tuned")
    if isinstance(tuned, dict) and tuned:
        rows.append(
            ("tuned", f"study {tuned.get('study')}, cell {tuned.get('cell')}, {tuned.get('trials')} trials")
        )
    gate = (r.get("gate") or {}).get("mean_weight")
    if isinstance(gate, dict) and gate:
        rows.append(("gate (mean)", ", ".join(f"{e} {float(w):.3f}" for e, w in gate.items())))
    timing = r.get("timing") or {}
    if timing:
        rows.append(("timing", ", ".join(f"{k} {v}" for k, v in timing.items())))
    rows.append(
        (
            "provenance",
            f"vtrbench {prov.get('vtrbench')} (git {str(prov.get('git_sha'))[:12]}"
            + (", dirty" if prov.get("dirty") else "")
            + f"), torch {prov.get('torch')}, python {prov.get('python')}, device {prov.get('device')}",
        )
    )
    if prov.get("command"):
        rows.append(("command", str(prov["command"])))
    return rows


def print_result_summary(path: Path, r: dict[str, Any]) -> None:
    """``inspect RESULT.json``: a summary instead of the whole file (per-query ranks, top-k lists)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    out = out_console()
    info = Table(title=escape(str(path)), show_header=False, title_justify="left")
    info.add_column("field", style="bold")
    info.add_column("value", overflow="fold")
    for field, value in result_lines(path, r):
        info.add_row(field, escape(value))
    out.print(info)
    metrics = Table(title="metrics (%; * transductive: reads the whole test set)", box=box.SIMPLE_HEAD)
    for col in ("post", "t2v R@1/5/10", "MdR/MnR", "v2t R@1/5/10", "MdR/MnR", "RSum"):
        metrics.add_column(col, justify="left" if col == "post" else "right", no_wrap=True)
    for post, m in (r.get("metrics") or {}).items():
        name = post + ("*" if (r.get("transductive") or {}).get(post) else "")
        cells = []
        for d in ("t2v", "v2t"):
            cells.append("/".join(f"{float(m[d][k]):.1f}" for k in ("R@1", "R@5", "R@10")))
            cells.append(f"{float(m[d]['MdR']):g}/{float(m[d]['MnR']):.1f}")
        metrics.add_row(escape(name), *cells, f"{float(m['RSum']):.1f}")
    out.print(metrics)
    keys = ("per_query_ranks", "per_query", "topk", "topk_scores", "history", "per_query_gate")
    long = [k for k in keys if r.get(k)]
    make_console().print(
        f"[dim]not shown: {', '.join(long) or 'nothing'}; "
        f"`vtrbench inspect {escape(str(path))} --json` prints the whole file[/]",
        highlight=False,
        soft_wrap=True,
    )
