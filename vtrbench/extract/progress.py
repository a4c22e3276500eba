"""What the video and caption loops share: the progress bar and the guard against NaN/inf features."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vtrbench.config import ExtractConfig
from vtrbench.errors import VtrbenchError


@contextmanager
def progress_bar(enabled: bool, console: Any) -> Iterator[Any]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def refuse_nonfinite(
    rows: np.ndarray, start: int, names: list[str] | None, what: str, config: ExtractConfig
) -> None:
    """Stop before a part with NaN/inf features is written (values checked at option time cannot
    rule out an overflow inside the encoder), naming the first video or caption."""
    if len(rows) == 0:
        return
    row = start + int(rows[0])
    first = names[row] if names is not None else str(row)
    more = f" and {len(rows) - 1} more of its chunk" if len(rows) > 1 else ""
    raise VtrbenchError(
        f"the encoder gave NaN/inf features for {what} {first}{more} (image mean "
        f"{tuple(config.image_mean)}, std {tuple(config.image_std)}, precision {config.precision}); "
        "nothing of that chunk was written, finished parts are kept"
    )
