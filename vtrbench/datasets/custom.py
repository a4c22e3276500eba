"""A user's own dataset: one CSV or JSONL file of ``video, caption[, split]`` rows.

``video`` is a file path, absolute or relative to the video root (by default
the annotation file's folder); the path string as written is the video id. A
video may have several rows (several captions). Rows without a split go to the
split ``all``.

Optional ``start_s`` and ``end_s`` columns (seconds, numbers >= 0, ``end_s > start_s``;
either may be empty) restrict the frames sampled from that video to a time window,
with CLIP4Clip's rule: seconds ``int(start_s) .. int(end_s)`` inclusive, clipped to the
video. Every row of one video must give the same window.

Unlike the standard datasets, whose ids must be plain file names inside
``--video-root``, a custom file may name any path (``/data/clips/a.mp4``,
``../shared/b.mp4``) by design: the user wrote the file. A video listed in two
splits (by id, or two spellings of the same file) is reported as a warning by
``vtrbench datasets describe`` and ``extract``.

CSV::

    video,caption,split
    clips/cat.mp4,a cat jumps onto a table,test

JSONL::

    {"video": "clips/cat.mp4", "caption": "a cat jumps onto a table", "split": "test"}
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vtrbench.datasets._formats import (
    IndexBuilder,
    check_regular_file,
    check_video_id,
    read_csv_columns,
    read_jsonl_objects,
)
from vtrbench.datasets.base import DatasetIndex, register_dataset
from vtrbench.errors import AnnotationError

SUFFIXES = (".csv", ".jsonl")
UNSPLIT = "all"


def find_annotation_file(annotations: Path | None) -> Path:
    """The CSV/JSONL file itself, or the only such file in a folder."""
    if annotations is None:
        raise AnnotationError("custom: no annotation file given (a .csv or .jsonl of video,caption[,split])")
    path = Path(annotations)
    if path.is_dir() and path.suffix.lower() in SUFFIXES:
        raise AnnotationError(f"custom: {path} is a folder, expected a .csv or .jsonl annotation file")
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise AnnotationError(
                f"custom: {path} must hold exactly one .csv or .jsonl annotation file (found: {names})"
            )
        return found[0]
    if not path.exists() and not path.is_symlink():
        raise AnnotationError(f"custom: annotation file {path} does not exist")
    check_regular_file(path)  # a pipe would block, a device never end
    if path.suffix.lower() not in SUFFIXES:
        raise AnnotationError(f"custom: {path} is neither .csv nor .jsonl")
    return path


Window = tuple[float | None, float | None]


def _seconds(value: object, where: str, key: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {key} must be a number of seconds, got {value!r}") from None
    if not (out >= 0 and out != float("inf")):
        raise AnnotationError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    return out


def _window(start: object, end: object, where: str) -> Window:
    s, e = _seconds(start, where, "start_s"), _seconds(end, where, "end_s")
    if s is not None and e is not None and e <= s:
        raise AnnotationError(f"{where}: end_s ({e:g}) must be after start_s ({s:g})")
    return s, e


def _csv_windows(path: Path) -> list[Window]:
    rows = read_csv_columns(path, ["video", "caption"])
    return [_window(row.get("start_s"), row.get("end_s"), f"{path}, line {line}") for line, row in rows]


def _jsonl_windows(path: Path) -> list[Window]:
    return [
        _window(obj.get("start_s"), obj.get("end_s"), f"{path}, line {line_no}")
        for line_no, obj in read_jsonl_objects(path)
    ]


def _read_csv(path: Path) -> list[tuple[str, str, str]]:
    rows = read_csv_columns(path, ["video", "caption"])
    return [(row["video"], row["caption"], row.get("split", "")) for _, row in rows]


def _read_jsonl(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line_no, obj in read_jsonl_objects(path):
        for key in ("video", "caption"):
            value = obj.get(key)
            if not isinstance(value, str) or not value.strip():
                raise AnnotationError(
                    f"{path}, line {line_no}: key {key!r} missing or not a non-empty string"
                )
        split = obj.get("split")
        if split is not None and not isinstance(split, str):
            raise AnnotationError(f"{path}, line {line_no}: key 'split' must be a string")
        rows.append((obj["video"].strip(), obj["caption"].strip(), (split or "").strip()))
    return rows


@register_dataset("custom")
def load_custom(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    path = find_annotation_file(annotations)
    root = Path(video_root) if video_root is not None else path.parent
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    for video, *_ in rows:  # any path is allowed here, but it must be one a file system can open
        check_video_id(video, path, f"video {video[:40]!r}", plain=False)
    if not rows:
        raise AnnotationError(f"{path}: no video,caption rows")
    windows = _csv_windows(path) if path.suffix.lower() == ".csv" else _jsonl_windows(path)
    window_of: dict[str, Window] = {}
    for (video, _, _), window in zip(rows, windows, strict=True):
        if window_of.setdefault(video, window) != window:
            raise AnnotationError(
                f"{path}: video {video!r} has rows with different start_s/end_s "
                f"({window_of[video]} and {window}); one window per video"
            )
    b = IndexBuilder("custom", source=path)
    by_split: dict[str, list[tuple[str, str]]] = {}
    for video, caption, split in rows:
        by_split.setdefault(split or UNSPLIT, []).append((video, caption))
    # Path(video) is absolute when the user wrote an absolute path; joining keeps it as is.
    paths = {video: root / video for video, _, _ in rows}
    for split, pairs in by_split.items():
        b.add_split(split, pairs, paths, f"user-provided ({path.name})")
    index = b.build(
        looked_for=[path], train=["train"], test=["test", UNSPLIT], citation="user-provided dataset"
    )
    if any(w != (None, None) for w in window_of.values()):
        index.videos = [
            replace(v, start_s=window_of[v.id][0], end_s=window_of[v.id][1]) for v in index.videos
        ]
        index.window_note = f"custom: start_s/end_s columns of {path.name}"
    return index
