"""``vtrbench extract`` and ``vtrbench synth``: the commands that make videos and caches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vtrbench.cli._app import FEATURES_ROOT, cli, make_console, resolve_device
from vtrbench.cli.options import output_option
from vtrbench.errors import VtrbenchError

if TYPE_CHECKING:  # annotations only: the commands import torch-backed modules when they run
    from vtrbench.config import ExtractConfig
    from vtrbench.extract.options import ExtractSummary, RunOptions
    from vtrbench.extract.preprocess_cfg import Preprocessing
    from vtrbench.shard import Shard


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
    "--output", type=str, callback=output_option, help="Cache file [default: features/<dataset>/...h5]."
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
    "--no-thumbnails",
    is_flag=True,
    help="Do not store a small JPEG strip of each video's frames (used by `vtrbench browse`).",
)
@click.option(
    "--tagger",
    type=click.Choice(["pattern", "spacy", "none"]),
    default="pattern",
    show_default=True,
    help="Part-of-speech tagger for the noun/verb masks.",
)
@click.option(
    "--preprocess-like",
    metavar="TAG",
    help="Use the image preprocessing of this pretrained tag of --model (for a checkpoint file).",
)
@click.option("--image-mean", metavar="M[,M,M]", help="Normalisation mean [default: the model's].")
@click.option("--image-std", metavar="S[,S,S]", help="Normalisation std [default: the model's].")
@click.option(
    "--interpolation",
    type=click.Choice(["bicubic", "bilinear"]),
    help="Resize filter [default: the model's].",
)
@click.option(
    "--resize-mode",
    type=click.Choice(["shortest", "longest", "squash"]),
    help="shortest: short side + center crop; squash: to a square; longest: pad [default: the model's].",
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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing cache (kept until the new one is complete) or discard interrupted parts.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Decode again the videos marked failed (their chunks only); the rest of the cache is reused.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--shard",
    metavar="I/N",
    help="Encode only chunks k with k mod N == I (Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); "
    "the last shard to finish assembles. Under torchrun the rank is the shard.",
)
@click.option(
    "--assemble",
    "assemble_only",
    is_flag=True,
    help="Build the cache from the shards' parts; encode nothing.",
)
def extract(**options: Any) -> None:
    """Decode and encode every video and caption of a dataset once, into an HDF5 feature cache."""
    _run_extract(ExtractOptions(**options))


@dataclass(frozen=True)
class ExtractOptions:
    """The parsed options of ``vtrbench extract``, one field per click option (same names)."""

    dataset: str
    annotations: Path | None
    video_root: Path | None
    model: str
    pretrained: str
    output: Path | None
    max_frames: int | None
    fps: int
    sampling: str
    max_words: int | None
    patch_tokens: bool
    no_thumbnails: bool
    tagger: str
    preprocess_like: str | None
    image_mean: str | None
    image_std: str | None
    interpolation: str | None
    resize_mode: str | None
    device: str
    batch_size: int
    workers: int
    chunk_size: int
    strict: bool
    overwrite: bool
    retry_failed: bool
    quiet: bool
    shard: str | None
    assemble_only: bool


def _run_extract(o: ExtractOptions) -> None:
    """Check the options, read the dataset, build the config, extract, and report."""
    import warnings

    from vtrbench.config import config_hash
    from vtrbench.extract.pipeline import extract_features

    err = make_console()
    _check_flags(o)
    shard_of, device = _shard_and_device(o)
    pre, index = _preprocessing_and_dataset(o, shard_of)
    for w in index.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    if pre.warning:
        err.print(f"[bold yellow]warning:[/] {pre.warning}", highlight=False)
    cfg = _extract_config(o, index, pre, device)
    if o.pretrained in ("none", ""):
        err.print(
            f"[bold yellow]warning:[/] --pretrained none: {o.model} has RANDOM weights; these features are "
            "meaningless for real benchmarks (fine for tests and the synthetic demo)."
        )
    out = o.output or default_cache_path(
        o.dataset, o.model, o.pretrained, cfg.max_frames, o.fps, config_hash(cfg)
    )
    opts = _run_options(o, device, shard_of)
    _announce(err, o, index, device, shard_of, out, pre)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = extract_features(index, cfg, out, opts, console=err, preprocess_source=pre.source)
    if not _report_outcome(err, summary, shard_of, out):
        return  # a shard whose cache another process assembles: no cache path to print yet
    _report_failures(err, summary, o.strict, out)
    click.echo(str(out))


def _check_flags(o: ExtractOptions) -> None:
    """Refuse option values and combinations that no dataset or model could make valid."""
    if o.fps < 1:
        raise VtrbenchError("--fps must be >= 1")
    if o.overwrite and o.retry_failed:
        raise VtrbenchError(
            "--overwrite and --retry-failed exclude each other (overwrite redoes every video)"
        )


def _shard_and_device(o: ExtractOptions) -> tuple[Shard | None, str]:
    """(this process's shard, its device); flags that only work unsharded are refused for a shard."""
    from vtrbench.shard import refuse, resolve

    device = resolve_device(o.device)
    shard_of, device = resolve(o.shard, device)
    if shard_of is not None and (o.overwrite or o.assemble_only or o.retry_failed):
        flag = "--overwrite" if o.overwrite else "--assemble" if o.assemble_only else "--retry-failed"
        refuse(shard_of, f"{flag} cannot be combined with --shard/torchrun (run it once, unsharded)")
    return shard_of, device


def _preprocessing_and_dataset(o: ExtractOptions, shard_of: Shard | None) -> tuple[Preprocessing, Any]:
    """The image preprocessing (checked before the dataset is read: a large one takes a while to
    index) and the dataset's index."""
    from vtrbench.datasets import load_dataset
    from vtrbench.extract.preprocess_cfg import parse_triple, resolve_preprocessing
    from vtrbench.shard import refuse

    try:
        pre = resolve_preprocessing(
            o.model,
            o.pretrained,
            like=o.preprocess_like,
            mean=parse_triple(o.image_mean, "--image-mean"),
            std=parse_triple(o.image_std, "--image-std"),
            interpolation=o.interpolation,
            resize_mode=o.resize_mode,
        )
        index = load_dataset(o.dataset, o.annotations, o.video_root)
    except VtrbenchError as e:
        refuse(shard_of, str(e))  # every torchrun rank finds the same: rank 0 says it once
    return pre, index


def _extract_config(o: ExtractOptions, index: Any, pre: Preprocessing, device: str) -> ExtractConfig:
    """The extraction config: the options, the dataset's defaults, and the resolved preprocessing."""
    from vtrbench.config import ExtractConfig
    from vtrbench.extract.pipeline import dataset_fingerprint

    return ExtractConfig(
        dataset=o.dataset,
        dataset_fingerprint=dataset_fingerprint(index),
        model=o.model,
        pretrained=o.pretrained,
        max_frames=o.max_frames or index.max_frames,
        fps=o.fps,
        sampling=o.sampling,
        image_size=pre.size,
        max_words=o.max_words or index.max_words,
        patch_tokens=o.patch_tokens,
        no_thumbnails=o.no_thumbnails,
        tagger=o.tagger,
        precision="fp16" if device.startswith("cuda") else "fp32",
        image_mean=pre.mean,
        image_std=pre.std,
        interpolation=pre.interpolation,
        resize_mode=pre.resize_mode,
    )


def _run_options(o: ExtractOptions, device: str, shard_of: Shard | None) -> RunOptions:
    from vtrbench.extract.pipeline import RunOptions

    return RunOptions(
        device=device,
        batch_size=o.batch_size,
        workers=o.workers,
        video_chunk=o.chunk_size,
        overwrite=o.overwrite,
        retry_failed=o.retry_failed,
        progress=not o.quiet,
        shard=shard_of,
        assemble_only=o.assemble_only,
    )


def _announce(
    err: Any,
    o: ExtractOptions,
    index: Any,
    device: str,
    shard_of: Shard | None,
    out: Path,
    pre: Preprocessing,
) -> None:
    """The lines printed before the work starts: what, with which model, where, preprocessing."""
    from rich.markup import escape

    what = "assembling" if o.assemble_only else "extracting"
    err.print(
        f"{what} [bold]{o.dataset}[/] ({len(index.videos)} videos, {len(index.texts)} captions) "
        f"with {escape(o.model)}/{escape(o.pretrained)} on {device}"
        + (f" as shard {shard_of}" if shard_of else "")
        + f" -> {escape(str(out))}"
    )
    err.print(f"preprocessing: {pre.describe()}", highlight=False)


def _report_outcome(err: Any, summary: ExtractSummary, shard_of: Shard | None, out: Path) -> bool:
    """Print what the run did; False for a shard that left the assembly to another process."""
    from rich.markup import escape

    if summary.already_complete:
        err.print(
            f"[green]already complete:[/] {escape(str(out))} "
            f"(same config {summary.config_hash[:8]}; nothing to do)"
        )
        if summary.failed:
            err.print(
                f"  {len(summary.failed)} video(s) are marked failed; `--retry-failed` decodes them again",
                highlight=False,
            )
    elif not summary.assembled:
        waiting = (
            f"{summary.missing_parts} part(s) of other shards still missing; the last shard to finish "
            f"assembles (or run the same command with --assemble instead of --shard)"
            if summary.missing_parts
            else "rank 0 assembles the cache"
            if shard_of is not None and shard_of.torchrun
            else "another process holds the cache's lock and assembles it (if no cache appears, run the same "
            "command with --assemble instead of --shard)"
        )
        err.print(
            f"[green]shard {summary.shard} done[/] in {summary.seconds:.1f}s: {summary.done_now} videos "
            f"encoded now, {summary.resumed} resumed; {waiting}"
        )
        return False
    else:
        ok = summary.videos - len(summary.failed)
        err.print(
            f"[green]done[/] in {summary.seconds:.1f}s: {ok} videos ok ({summary.done_now} encoded now, "
            f"{summary.resumed} resumed from an earlier run), {len(summary.failed)} failed, "
            f"{summary.texts} captions -> {escape(str(out))}"
        )
        if summary.retried:
            err.print(f"  retried {summary.retried} failed video(s): {summary.recovered} decode now")
    return True


def _report_failures(err: Any, summary: ExtractSummary, strict: bool, out: Path) -> None:
    """Failure reasons and the failed videos (all with --strict, which then exits 1)."""
    from rich.markup import escape

    for reason, count in summary.failure_reasons().most_common():
        err.print(f"  failed ({count}): {reason}", highlight=False, markup=False)
    shown = summary.failed if strict else dict(list(summary.failed.items())[:5])
    for vid, reason in shown.items():
        err.print(f"    {vid}: {reason}", highlight=False, markup=False)
    if len(shown) < len(summary.failed):
        err.print(
            f"    ... and {len(summary.failed) - len(shown)} more (vtrbench inspect {escape(str(out))})"
        )
    if strict and summary.failed:
        names = ", ".join(summary.failed)
        err.print(
            f"[red]error:[/] --strict: {len(summary.failed)} video(s) failed ({escape(names)}); the cache "
            f"{'at' if summary.already_complete else 'was written to'} {escape(str(out))} "
            "holds them marked failed (`--retry-failed` decodes them again)",
            highlight=False,
        )
        raise SystemExit(1)


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--videos", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=int, help="Frame width/height in pixels.")
@click.option("--seconds", type=int, help="Clip length in seconds.")
@click.option("--fps", "video_fps", type=int, help="Frame rate of the rendered videos (integer).")
@click.option("--captions-per-video", type=int)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a synthetic dataset already in OUT_DIR (the new one is swapped in when complete).",
)
@click.option("--quiet", is_flag=True)
def synth(
    out_dir: Path,
    videos: int,
    seed: int,
    size: int | None,
    seconds: int | None,
    video_fps: int | None,
    captions_per_video: int | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Render the synthetic dataset (real mp4 files + captions with known roles) into OUT_DIR.

    The folder then serves as both --annotations and --video-root of `vtrbench extract --dataset synthetic`.
    """
    import dataclasses

    from vtrbench.datasets.synthetic import SynthConfig, render_dataset

    overrides = {"size": size, "seconds": seconds, "fps": video_fps, "captions_per_video": captions_per_video}
    known = {f.name for f in dataclasses.fields(SynthConfig)}
    cfg = SynthConfig(
        videos=videos, seed=seed, **{k: v for k, v in overrides.items() if v is not None and k in known}
    )
    from rich.progress import Progress

    with Progress(console=make_console(), disable=quiet) as bar:
        task = bar.add_task("rendering", total=cfg.videos)
        path = render_dataset(
            cfg, out_dir, progress=lambda done, total: bar.update(task, completed=done), overwrite=overwrite
        )
    make_console().print(f"[green]synthetic dataset:[/] {videos} videos in {path}")
    click.echo(str(path))
