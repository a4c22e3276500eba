"""ActivityNet Captions as paragraph-to-video retrieval (CLIP4Clip's protocol).

Each video's query is its event sentences, stripped and joined with a single
space in annotation order. Ids listed in ``<split>_ids.json`` without captions
are skipped, which leaves 4917 paragraphs in ``val_1``. Video files are named
by the YouTube id, without the ``v_`` prefix the annotations use.

Frames are sampled from seconds ``0 .. ceil(duration)`` of each video, with the
duration from the annotation file, as CLIP4Clip's ActivityNet loader does (the
same as the whole video unless the file is longer than its annotated duration).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from vtrbench.datasets._formats import (
    IndexBuilder,
    check_video_id,
    expect,
    read_json,
    require_folder,
    unique,
    video_path,
)
from vtrbench.datasets.base import DatasetIndex, register_dataset

CITATION = "Krishna et al., Dense-Captioning Events in Videos, ICCV 2017"
SPLITS = {
    "train": ("train_ids.json", "train.json", "ActivityNet Captions train (Krishna et al. 2017), paragraphs"),
    "val_1": (
        "val_ids.json",
        "val_1.json",
        "ActivityNet Captions val_1 (Krishna et al. 2017), paragraph retrieval (Zhang et al. 2018)",
    ),
}
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm")


def read_ids(path: Path) -> list[str]:
    data = read_json(path)
    expect(isinstance(data, list), path, "top level", "a list of video ids")
    for i, v in enumerate(data):
        expect(isinstance(v, str), path, f"item {i}", "a string video id")
        # The file name is the id without "v_": that part must be a plain name too.
        check_video_id(v.removeprefix("v_"), path, f"item {i} ({v!r} without 'v_')")
    expect(bool(data), path, "top level", "at least one video id")
    return unique(data)


def read_paragraphs(path: Path) -> dict[str, str]:
    """video id -> its sentences joined by single spaces; videos without sentences are absent."""
    data = read_json(path)
    expect(isinstance(data, dict), path, "top level", "an object mapping video ids to annotations")
    paragraphs = {}
    for vid, ann in data.items():
        expect(
            isinstance(ann, dict) and "sentences" in ann, path, f"key {vid!r}", 'an object with "sentences"'
        )
        sentences = ann["sentences"]
        ok = isinstance(sentences, list) and all(isinstance(s, str) for s in sentences)
        expect(ok, path, f'key {vid!r}, "sentences"', "a list of strings")
        text = " ".join(s.strip() for s in sentences if s.strip())
        if text:
            paragraphs[vid] = text
    return paragraphs


def read_durations(path: Path) -> dict[str, float]:
    """video id -> annotated duration in seconds, for entries whose ``duration`` is a finite number >= 0."""
    data = read_json(path)
    out = {}
    if isinstance(data, dict):
        for vid, ann in data.items():
            d = ann.get("duration") if isinstance(ann, dict) else None
            if isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) and d >= 0:
                out[vid] = float(d)
    return out


@register_dataset("activitynet")
def load_activitynet(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    folder = require_folder("activitynet", annotations, [n for spec in SPLITS.values() for n in spec[:2]])
    root = Path(video_root) if video_root is not None else folder
    b = IndexBuilder("activitynet")
    durations: dict[str, float] = {}
    for split, (ids_name, captions_name, note) in SPLITS.items():
        missing_files = [n for n in (ids_name, captions_name) if not (folder / n).is_file()]
        if missing_files:
            b.warn(f"{' and '.join(missing_files)} not found; split {split!r} not built")
            continue
        ids = read_ids(folder / ids_name)
        paragraphs = read_paragraphs(folder / captions_name)
        durations.update(read_durations(folder / captions_name))
        kept = [v for v in ids if v in paragraphs]
        if len(kept) < len(ids):
            b.warn(
                f"{len(ids) - len(kept)} of {len(ids)} ids in {ids_name} have no captions in {captions_name};"
                f" skipped in split {split!r}"
            )
        paths = {v: video_path(root, v.removeprefix("v_"), VIDEO_EXTENSIONS) for v in kept}
        b.add_split(split, [(v, paragraphs[v]) for v in kept], paths, note)
    index = b.build(
        looked_for=[folder / n for spec in SPLITS.values() for n in spec[:2]],
        train=["train"],
        test=["val_1"],
        max_words=64,
        max_frames=64,
        paragraph=True,
        citation=CITATION,
    )
    # CLIP4Clip's ActivityNet loader: start 0, end int(ceil(duration)) of the annotation.
    index.videos = [
        replace(v, start_s=0, end_s=math.ceil(durations[v.id])) if v.id in durations else v
        for v in index.videos
    ]
    if durations:
        index.window_note = "ActivityNet: seconds 0..ceil(annotated duration) of each video, as CLIP4Clip"
    return index
