"""LSMDC (Large Scale Movie Description Challenge 2016) for retrieval.

Each annotation file is tab-separated without a header: clip id, four
timestamps, sentence. Sentences contain quote characters, so lines are split on
tabs (at most five times) instead of being parsed as quoted CSV. Clips live in
one folder per movie: ``3086_UGLY_TRUTH_00.23.23.000-00.23.28.886.avi`` is in
``3086_UGLY_TRUTH/``.
"""

from __future__ import annotations

from pathlib import Path

from vtrbench.datasets._formats import (
    IndexBuilder,
    check_text,
    check_video_id,
    read_text,
    require_folder,
    video_path,
)
from vtrbench.datasets.base import DatasetIndex, register_dataset
from vtrbench.errors import AnnotationError

CITATION = "Rohrbach et al., Movie Description, IJCV 2017"
SPLITS = {
    "train": ("LSMDC16_annos_training.csv", "LSMDC 2016 training clips (Rohrbach et al. 2017)"),
    "val": ("LSMDC16_annos_val.csv", "LSMDC 2016 validation clips (Rohrbach et al. 2017)"),
    "test": (
        "LSMDC16_challenge_1000_publictect.csv",
        "LSMDC 2016 challenge public test, 1000 clips, one caption each (Rohrbach et al. 2017)",
    ),
}
VIDEO_EXTENSIONS = (".avi", ".mp4")
FIELDS = 6


def movie_folder(clip_id: str) -> str:
    """The movie a clip belongs to: the clip id without its final ``_<start>-<end>`` token."""
    movie, sep, _ = clip_id.rpartition("_")
    return movie if sep else ""


def read_annotations(path: Path) -> list[tuple[str, str]]:
    """(clip id, sentence) per non-blank line of an LSMDC annotation file."""
    rows = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t", FIELDS - 1)
        if len(fields) != FIELDS:
            raise AnnotationError(
                f"{path}, line {line_no}: {len(fields)} tab-separated field(s), expected {FIELDS}"
                " (clip id, 4 timestamps, sentence)"
            )
        clip = check_video_id(fields[0], path, f"line {line_no}")
        rows.append((clip, check_text(fields[-1], path, f"line {line_no}", "sentence")))
    if not rows:
        raise AnnotationError(f"{path}: no clips (empty file)")
    return rows


@register_dataset("lsmdc")
def load_lsmdc(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    folder = require_folder("lsmdc", annotations, [f for f, _ in SPLITS.values()])
    root = Path(video_root) if video_root is not None else folder
    b = IndexBuilder("lsmdc")
    for split, (filename, note) in SPLITS.items():
        path = folder / filename
        if not path.is_file():
            b.warn(f"{filename} not found; split {split!r} not built")
            continue
        rows = read_annotations(path)
        paths = {clip: video_path(root / movie_folder(clip), clip, VIDEO_EXTENSIONS) for clip, _ in rows}
        b.add_split(split, rows, paths, note)
    return b.build(
        looked_for=[folder / f for f, _ in SPLITS.values()],
        train=["train"],
        test=["test"],
        citation=CITATION,
    )
