"""What the video and caption loops share: the progress display and the guard against NaN/inf features."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from vtrbench.config import ExtractConfig
from vtrbench.errors import VtrbenchError
from vtrbench.progress import make_progress


@contextmanager
def progress_bar(enabled: bool, console: Any) -> Iterator[Any]:
    """Bars on a terminal (kept when done), plain lines in a log (:mod:`vtrbench.progress`); tasks
    carry ``info`` (the rates) and ``unit``."""
    progress = make_progress(console, enabled=enabled, stage="extract")
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
