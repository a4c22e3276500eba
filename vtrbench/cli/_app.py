"""The ``vtrbench`` click group, shared consoles, output roots and the device option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vtrbench import __version__, defaults
from vtrbench.errors import VtrbenchError

FEATURES_ROOT = Path("features")
RESULTS_ROOT = Path(defaults.RESULTS_DIR)


def make_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def out_console() -> Any:
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


def resolve_device(device: str) -> str:
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


def parse_seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise VtrbenchError(f"--seed(s) must be integers separated by commas, got {value!r}") from None
    if not seeds:
        raise VtrbenchError("no seed given")
    return seeds


def split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
