"""The ``vtrbench`` command line: parse -> frozen config -> one library call -> rich output.

Heavy imports (torch, open_clip, PyAV) happen inside the commands, so that
``vtrbench --help`` answers at once. ``main(argv)`` takes an argument list so tests
drive the real entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from vtrbench import __version__
from vtrbench.errors import VtrbenchError

FEATURES_ROOT = Path("features")
RESULTS_ROOT = Path("results")


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _out() -> Any:
    from rich.console import Console

    return Console()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="vtrbench")
def cli() -> None:
    """Video-text retrieval benchmarks on cached frozen-CLIP features (CAMoE, DSL, CLIP4Clip heads).

    \b
    Workflow:
      vtrbench extract --dataset msrvtt --annotations DIR --video-root DIR --pretrained openai
      vtrbench train --cache features/msrvtt/....h5 --head camoe --loss dsl --seed 0
      vtrbench report results/msrvtt --format md
    Try it offline in minutes: vtrbench demo
    """


# ------------------------------------------------------------------ extract


def default_cache_path(
    dataset: str, model: str, pretrained: str, max_frames: int, fps: int, chash: str
) -> Path:
    tag = Path(pretrained).stem if ("/" in pretrained or "." in pretrained) else pretrained
    return FEATURES_ROOT / dataset / f"{dataset}_{model}_{tag}_{max_frames}f{fps}fps_{chash[:8]}.h5"


@cli.command()
@click.option("--dataset", required=True, help="Registered dataset name (see `vtrbench datasets list`).")
@click.option(
    "--annotations", type=click.Path(path_type=Path), help="Annotation folder (or file for custom)."
)
@click.option(
    "--video-root", type=click.Path(path_type=Path), help="Folder of video files [default: annotations]."
)
@click.option("--model", default="ViT-B-32", show_default=True, help="open_clip model name.")
@click.option(
    "--pretrained",
    default="openai",
    show_default=True,
    help="Pretrained tag, local checkpoint file, or 'none' (random weights: tests/demo only).",
)
@click.option(
    "--output", type=click.Path(path_type=Path), help="Cache file [default: features/<dataset>/...h5]."
)
@click.option(
    "--max-frames", type=click.IntRange(min=1), help="Frames per video [default: dataset's, 12 or 64]."
)
@click.option(
    "--fps", type=int, default=1, show_default=True, help="Frames sampled per second (CLIP4Clip rate)."
)
@click.option(
    "--sampling", type=click.Choice(["uniform", "head", "tail"]), default="uniform", show_default=True
)
@click.option(
    "--max-words",
    type=click.IntRange(min=3),
    help="Tokens per caption incl. SOT/EOT [default: 32; 64 paragraphs].",
)
@click.option("--patch-tokens", is_flag=True, help="Also store projected patch tokens (large).")
@click.option(
    "--tagger",
    type=click.Choice(["pattern", "spacy", "none"]),
    default="pattern",
    show_default=True,
    help="Part-of-speech tagger for the noun/verb masks.",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option(
    "--batch-size", type=click.IntRange(min=0), default=0, help="Frames per forward pass [default: auto]."
)
@click.option(
    "--workers",
    type=click.IntRange(min=-1),
    default=-1,
    help="Decode worker processes [default: auto; 0 = none].",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Videos per part file: the unit of resume after a crash.",
)
@click.option("--strict", is_flag=True, help="Exit non-zero if any video fails to decode.")
@click.option("--overwrite", is_flag=True, help="Replace an existing cache made with a different config.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def extract(
    dataset: str,
    annotations: Path | None,
    video_root: Path | None,
    model: str,
    pretrained: str,
    output: Path | None,
    max_frames: int | None,
    fps: int,
    sampling: str,
    max_words: int | None,
    patch_tokens: bool,
    tagger: str,
    device: str,
    batch_size: int,
    workers: int,
    chunk_size: int,
    strict: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Decode and encode every video and caption of a dataset once, into an HDF5 feature cache."""
    import warnings

    from vtrbench.config import ExtractConfig, config_hash
    from vtrbench.datasets import load_dataset
    from vtrbench.extract.pipeline import RunOptions, dataset_fingerprint, extract_features

    err = _console()
    if fps < 1:
        raise VtrbenchError("--fps must be >= 1")
    device = _resolve_device(device)
    index = load_dataset(dataset, annotations, video_root)
    for w in index.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    from vtrbench.extract.encode import load_clip_config

    image_size = load_clip_config(model)
    cfg = ExtractConfig(
        dataset=dataset,
        dataset_fingerprint=dataset_fingerprint(index),
        model=model,
        pretrained=pretrained,
        max_frames=max_frames or index.max_frames,
        fps=fps,
        sampling=sampling,
        image_size=image_size,
        max_words=max_words or index.max_words,
        patch_tokens=patch_tokens,
        tagger=tagger,
        precision="fp16" if device.startswith("cuda") else "fp32",
    )
    if pretrained in ("none", ""):
        err.print(
            f"[bold yellow]warning:[/] --pretrained none: {model} has RANDOM weights; these features are "
            "meaningless for real benchmarks (fine for tests and the synthetic demo)."
        )
    out = output or default_cache_path(dataset, model, pretrained, cfg.max_frames, fps, config_hash(cfg))
    opts = RunOptions(
        device=device,
        batch_size=batch_size,
        workers=workers,
        video_chunk=chunk_size,
        overwrite=overwrite,
        progress=not quiet,
    )
    err.print(
        f"extracting [bold]{dataset}[/] ({len(index.videos)} videos, {len(index.texts)} captions) "
        f"with {model}/{pretrained} on {device} -> {out}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = extract_features(index, cfg, out, opts, console=err)
    if summary.already_complete:
        err.print(f"[green]already complete:[/] {out} (same config {summary.config_hash[:8]}; nothing to do)")
    else:
        ok = summary.videos - len(summary.failed)
        err.print(
            f"[green]done[/] in {summary.seconds:.1f}s: {ok} videos ok ({summary.done_now} encoded now, "
            f"{summary.resumed} resumed from an earlier run), {len(summary.failed)} failed, "
            f"{summary.texts} captions -> {out}"
        )
        for reason, count in summary.failure_reasons().most_common():
            err.print(f"  failed ({count}): {reason}")
        shown = summary.failed if strict else dict(list(summary.failed.items())[:5])
        for vid, reason in shown.items():
            err.print(f"    {vid}: {reason}", highlight=False, markup=False)
        if len(shown) < len(summary.failed):
            err.print(f"    ... and {len(summary.failed) - len(shown)} more (vtrbench inspect {out})")
    if strict and summary.failed:
        names = ", ".join(summary.failed)
        err.print(
            f"[red]error:[/] --strict: {len(summary.failed)} video(s) failed ({names}); the cache was "
            f"written to {out} with them marked failed",
            highlight=False,
        )
        raise SystemExit(1)
    click.echo(str(out))


def _resolve_device(device: str) -> str:
    if device != "auto":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise VtrbenchError(f"--device {device}: CUDA is not available on this machine")
        elif device != "cpu":
            raise VtrbenchError(f"--device {device!r}: use cpu, cuda, cuda:N or auto")
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--videos", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, help="Frame width/height in pixels.")
@click.option("--seconds", type=int, help="Clip length in seconds.")
@click.option("--fps", "video_fps", type=int, help="Frame rate of the rendered videos (integer).")
@click.option("--captions-per-video", type=int)
@click.option("--quiet", is_flag=True)
def synth(
    out_dir: Path,
    videos: int,
    seed: int,
    size: int | None,
    seconds: int | None,
    video_fps: int | None,
    captions_per_video: int | None,
    quiet: bool,
) -> None:
    """Render the synthetic dataset (real mp4 files + captions with known roles) into OUT_DIR.

    The folder then serves as both --annotations and --video-root of `vtrbench extract --dataset synthetic`.
    """
    import dataclasses

    from vtrbench.synthetic import SynthConfig, render_dataset

    overrides = {"size": size, "seconds": seconds, "fps": video_fps, "captions_per_video": captions_per_video}
    known = {f.name for f in dataclasses.fields(SynthConfig)}
    cfg = SynthConfig(
        videos=videos, seed=seed, **{k: v for k, v in overrides.items() if v is not None and k in known}
    )
    from rich.progress import Progress

    with Progress(console=_console(), disable=quiet) as bar:
        task = bar.add_task("rendering", total=cfg.videos)
        path = render_dataset(cfg, out_dir, progress=lambda done, total: bar.update(task, completed=done))
    _console().print(f"[green]synthetic dataset:[/] {videos} videos in {path}")
    click.echo(str(path))


# ------------------------------------------------------------------ datasets / models / inspect


@cli.group()
def datasets() -> None:
    """List and describe the registered datasets."""


@datasets.command("list")
def datasets_list() -> None:
    from vtrbench.datasets import list_datasets

    for name in list_datasets():
        click.echo(name)


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
    _out().print(table)
    for w in index.warnings:
        _console().print(f"[yellow]warning:[/] {w}")


@cli.command()
def models() -> None:
    """List the open_clip model names (including vtrbench-tiny)."""
    from vtrbench.extract.encode import list_models

    for name in list_models():
        click.echo(name)


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
def inspect(path: Path) -> None:
    """Print what a cache (.h5) or result file (.json) holds and how it was made."""
    from rich.table import Table

    if path.suffix == ".json":
        import json

        from vtrbench.results import read_result

        r = read_result(path)
        r.pop("per_query_ranks", None)
        r.pop("_path", None)
        _out().print_json(json.dumps(r))
        return
    from vtrbench.cache import FeatureCache

    with FeatureCache(path) as cache:
        attrs = cache.attrs
        table = Table(title=f"{path}", show_header=False)
        for key in sorted(attrs):
            if key != "config_json":
                table.add_row(key, str(attrs[key]))
        _out().print(table)
        t = Table(title="datasets")
        for col in ("name", "shape", "dtype"):
            t.add_column(col)

        def visit(name: str, obj: Any) -> None:
            if hasattr(obj, "shape"):
                t.add_row(name, str(obj.shape), str(obj.dtype))

        cache.file.visititems(visit)
        _out().print(t)
        s = Table(title="splits")
        for col in ("split", "videos", "captions", "note"):
            s.add_column(col)
        for split in cache.splits:
            v, x = cache.split_rows(split)
            s.add_row(split, str(len(v)), str(len(x)), str(cache.file["splits"][split].attrs.get("note", "")))
        _out().print(s)
        if attrs.get("n_failed"):
            import numpy as np

            status = cache.file["videos"]["status"][:]
            ids = cache.read_strings("videos", "id")
            errs = cache.read_strings("videos", "error")
            for j in np.flatnonzero(status != 0)[:10]:
                _console().print(f"[yellow]failed:[/] {ids[j]}: {errs[j]}")


# ------------------------------------------------------------------ train / eval


def _parse_experts(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def head_options_from_cli(
    head: str,
    experts: str | None,
    streams: str | None,
    gate: str | None,
    aux_weight: float | None,
    no_adapter: bool,
) -> dict[str, Any]:
    """CAMoE alignment options are only accepted for camoe (a clear error otherwise)."""
    opts: dict[str, Any] = {}
    camoe_only = {"--experts": experts, "--streams": streams, "--gate": gate, "--aux-weight": aux_weight}
    given = [k for k, v in camoe_only.items() if v is not None]
    if head != "camoe" and given:
        raise VtrbenchError(f"{', '.join(given)} only apply to --head camoe (got --head {head})")
    if head == "camoe":
        if experts:
            opts["experts"] = sorted(_parse_experts(experts) or [])
        if streams:
            opts["streams"] = streams
        if gate:
            opts["gate"] = gate
        if aux_weight is not None:
            opts["aux_weight"] = aux_weight
    if no_adapter:
        opts["adapter"] = False
    return opts


def _loss_options(loss: str, temperature: float | None) -> dict[str, Any]:
    if temperature is None:
        return {}
    if loss != "dsl":
        raise VtrbenchError("--temperature only applies to --loss dsl")
    return {"temperature": temperature}


def run_spec_from_options(kw: dict[str, Any]) -> Any:
    """The shared train/ablate options -> a runner.RunSpec (head/loss options validated here)."""
    from vtrbench.runner import RunSpec

    head_opts = head_options_from_cli(
        kw["head"],
        kw.get("experts"),
        kw.get("streams"),
        kw.get("gate"),
        kw.get("aux_weight"),
        kw.get("no_adapter", False),
    )
    return RunSpec(
        cache_path=kw["cache_path"],
        head=kw["head"],
        loss=kw["loss"],
        head_options=head_opts,
        loss_options=_loss_options(kw["loss"], kw.get("temperature")),
        train_split=kw.get("train_split"),
        test_split=kw.get("test_split"),
        epochs=kw["epochs"],
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        weight_decay=kw["weight_decay"],
        val_fraction=kw["val_fraction"],
        v2t_protocol=kw["v2t_protocol"],
        dsl_tau=kw["dsl_tau"],
        qb_bank=kw["qb_bank"],
        qb_beta=kw["qb_beta"],
        device=_resolve_device(kw["device"]),
        results_dir=kw["results_dir"],
        overwrite=kw["overwrite"],
        progress=not kw.get("quiet", False),
    )


def _shared_train_options() -> list[Any]:
    return [
        click.option(
            "--cache",
            "cache_path",
            required=True,
            type=click.Path(path_type=Path),
            help="Feature cache made by `vtrbench extract`.",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(min=0, min_open=True),
            help="DSL training temperature [default: 1000, official].",
        ),
        click.option(
            "--no-adapter", is_flag=True, help="Switch off the residual linear text/video adapters."
        ),
        click.option("--train-split", help="[default: the dataset's standard train split]"),
        click.option("--test-split", help="[default: the dataset's standard test split]"),
        click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=0.2, show_default=True),
        click.option(
            "--val-fraction",
            type=click.FloatRange(min=0, max=1, max_open=True),
            default=0.0,
            show_default=True,
            help="Hold out this fraction of train videos for validation (never the test split).",
        ),
        click.option(
            "--v2t-protocol",
            type=click.Choice(["clip4clip", "any-caption"]),
            default="clip4clip",
            show_default=True,
            help="v2t with several captions per video.",
        ),
        click.option(
            "--dsl-tau",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="Inference DSL temperature on logit-scaled scores (transductive post-processing).",
        ),
        click.option(
            "--qb-bank",
            type=click.IntRange(min=1),
            default=5000,
            show_default=True,
            help="QB-Norm query bank size.",
        ),
        click.option(
            "--qb-beta", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True
        ),
        click.option("--device", default="auto", show_default=True),
        click.option(
            "--results",
            "results_dir",
            type=click.Path(path_type=Path),
            default=RESULTS_ROOT,
            show_default=True,
        ),
        click.option(
            "--overwrite",
            type=click.Choice(["never", "always"]),
            default="never",
            show_default=True,
            help="never: skip a run whose result file exists; always: replace it.",
        ),
        click.option("--quiet", is_flag=True),
    ]


def _apply(options: list[Any], f: Any) -> Any:
    for opt in reversed(options):
        f = opt(f)
    return f


def shared_train_options(f: Any) -> Any:
    return _apply(_shared_train_options(), f)


def train_options(f: Any) -> Any:
    return _apply(
        [
            click.option(
                "--head",
                default="camoe",
                show_default=True,
                help="meanp, seqtransf, camoe (zeroshot: use `vtrbench eval`).",
            ),
            click.option("--loss", default="dsl", show_default=True, help="infonce or dsl."),
            click.option("--experts", help="camoe: comma list of fusion,action,entity,scene [default: all]."),
            click.option("--streams", help="camoe: pos (noun/verb masks), learned, eot [default: pos]."),
            click.option("--gate", help="camoe: single or uniform [default: single]."),
            click.option(
                "--aux-weight",
                type=click.FloatRange(min=0),
                help="camoe: weight of per-expert auxiliary losses [default: 0].",
            ),
            *_shared_train_options(),
        ],
        f,
    )


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
    from vtrbench.runner import run_training

    spec = run_spec_from_options(kw)
    seed_list = _parse_seeds(seeds)
    data: dict[str, Any] = {}  # the splits are read once for all seeds
    with FeatureCache(spec.cache_path) as cache:
        for seed in seed_list:
            ckpt = None
            if save_checkpoint is not None:
                ckpt = Path(str(save_checkpoint).replace("{seed}", str(seed)))
                if "{seed}" not in str(save_checkpoint) and len(seed_list) > 1:
                    ckpt = save_checkpoint.with_name(
                        f"{save_checkpoint.stem}.s{seed}{save_checkpoint.suffix}"
                    )
            outcome = run_training(spec, seed, checkpoint=ckpt, console=_console(), cache=cache, data=data)
            _print_outcome(outcome)


def _parse_seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise VtrbenchError(f"--seed(s) must be integers separated by commas, got {value!r}") from None
    if not seeds:
        raise VtrbenchError("no seed given")
    return seeds


def _print_outcome(outcome: Any) -> None:
    out = _out()
    if outcome.skipped:
        out.print(f"[yellow]skipped[/] {outcome.path} exists (use --overwrite always to replace it)")
        return
    r = outcome.result
    from rich.table import Table

    table = Table(
        title=f"{r['run_id']}  ({r['protocol']['test_split']}: {r['protocol']['n_queries']} queries, "
        f"{r['protocol']['n_gallery']} videos)"
    )
    for col in (
        "post",
        "t2v R@1",
        "R@5",
        "R@10",
        "MdR",
        "MnR",
        "v2t R@1",
        "R@5",
        "R@10",
        "MdR",
        "MnR",
        "RSum",
    ):
        table.add_column(col, justify="right")
    for post, m in r["metrics"].items():
        name = post + (" (transductive)" if r["transductive"].get(post) else "")
        cells = [f"{m[d][k]:.1f}" for d in ("t2v", "v2t") for k in ("R@1", "R@5", "R@10", "MdR", "MnR")]
        table.add_row(name, *cells, f"{m['RSum']:.1f}")
    out.print(table)
    excluded = r["protocol"].get("excluded_failed_videos") or 0
    if excluded:
        out.print(
            f"[bold yellow]warning:[/] {excluded} test videos failed to decode and were left out with their "
            "captions: this is not the full test split (see `vtrbench inspect` on the cache)."
        )
    if r["cache"].get("random_weights"):
        out.print(
            "[yellow]note:[/] the cache was made with RANDOM CLIP weights: these numbers are not "
            "comparable to papers."
        )
    out.print(f"result: {outcome.path}")


@cli.command("eval")
@click.option("--cache", "cache_path", required=True, type=click.Path(path_type=Path))
@click.option("--head", help="zeroshot (untrained frozen CLIP mean pooling).")
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), help="A head saved by train --save-checkpoint."
)
@click.option("--test-split")
@click.option("--train-split", help="Query bank source for qbnorm [default: the dataset's train split].")
@click.option(
    "--v2t-protocol", type=click.Choice(["clip4clip", "any-caption"]), default="clip4clip", show_default=True
)
@click.option("--dsl-tau", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--qb-bank", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--qb-beta", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--results", "results_dir", type=click.Path(path_type=Path), default=RESULTS_ROOT, show_default=True
)
@click.option("--overwrite", type=click.Choice(["never", "always"]), default="never", show_default=True)
def eval_cmd(cache_path: Path, head: str | None, checkpoint: Path | None, **kw: Any) -> None:
    """Evaluate a saved head checkpoint, or the untrained zeroshot head, on a cache split."""
    from vtrbench.runner import run_eval

    if (head is None) == (checkpoint is None):
        raise VtrbenchError("give exactly one of --head zeroshot or --checkpoint FILE")
    if head is not None and head != "zeroshot":
        raise VtrbenchError(
            f"--head {head} must be trained first (`vtrbench train`); eval takes --head "
            "zeroshot or --checkpoint"
        )
    kw["device"] = _resolve_device(kw["device"])
    outcome = run_eval(cache_path, checkpoint=checkpoint, console=_console(), **kw)
    _print_outcome(outcome)


# ------------------------------------------------------------------ ablate / report / demo


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


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
    **kw: Any,
) -> None:
    """Run a grid of heads x losses x CAMoE alignment settings x seeds on one cache (one result per run)."""
    from dataclasses import replace

    from vtrbench.ablate import TRAIN_KEYS, Grid, load_grid, run_grid

    if grid_file is not None:
        grid = load_grid(grid_file)
    else:
        try:
            aux = tuple(float(a) for a in _split_list(aux_list))
        except ValueError:
            raise VtrbenchError(f"--aux-weight takes numbers, got {aux_list!r}") from None
        grid = Grid(
            heads=_split_list(heads),
            losses=_split_list(losses),
            seeds=tuple(_parse_seeds(seeds)),
            experts=tuple(
                _split_list(g.replace(" ", "")) for g in (experts_groups or "").split(";") if g.strip()
            ),
            streams=_split_list(streams_list),
            gate=_split_list(gate_list),
            aux_weight=aux,
            train={k: kw[k] for k in TRAIN_KEYS if kw.get(k) is not None},
        )
    from vtrbench.heads.base import list_heads
    from vtrbench.losses.base import list_losses
    from vtrbench.registry import unknown_name_message

    for h in grid.heads:
        if h not in list_heads() or h == "zeroshot":
            raise VtrbenchError(unknown_name_message("head", h, [x for x in list_heads() if x != "zeroshot"]))
    for loss in grid.losses:
        if loss not in list_losses():
            raise VtrbenchError(unknown_name_message("loss", loss, list_losses()))
    base = run_spec_from_options(kw)
    if grid_file is not None:
        base = replace(base, **grid.train)
    err = _console()
    n = len(grid.points())
    err.print(f"ablation grid: {n} runs on {base.cache_path} -> {base.results_dir}")
    outcome = run_grid(grid, base, console=err, progress=not kw.get("quiet"))
    err.print(
        f"[green]grid done:[/] {len(outcome.ran)} ran, {len(outcome.skipped)} skipped (result exists), "
        f"{len(outcome.failed)} failed; grid saved as {outcome.grid_file}"
    )
    for desc, reason in outcome.failed:
        err.print(f"  [red]failed[/] {desc}: {reason}")
    if outcome.failed:
        raise SystemExit(1)


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


# ------------------------------------------------------------------ entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line (no traceback) and return 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="vtrbench", standalone_mode=False)
    except VtrbenchError as e:
        _console().print(f"[bold red]error:[/] {e}", highlight=False)
        return 2
    except click.exceptions.Abort:
        _console().print("aborted")
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
