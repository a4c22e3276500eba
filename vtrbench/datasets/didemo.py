"""DiDeMo as paragraph-to-video retrieval (CLIP4Clip's protocol).

A split holds the videos named in ``<split>_list.txt`` that have descriptions
in ``<split>_data.json``; each video gets one query: its descriptions, stripped
and joined with a single space in the order of the JSON file. Video ids are the
file names exactly as the files give them, including odd ones such as
``10052357@N03_7585070382_5762149bfc.`` (no extension).

Frames are sampled from seconds 0..31 of each video only, as CLIP4Clip's DiDeMo
loader does (``start 0, end 31``), not from the whole file.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from vtrbench.datasets._formats import IndexBuilder, expect, read_id_list, read_json, require_folder, unique
from vtrbench.datasets.base import DatasetIndex, register_dataset

WINDOW = (0, 31)  # seconds sampled per video: CLIP4Clip's dataloader_didemo_retrieval.py
CITATION = "Hendricks et al., Localizing Moments in Video with Natural Language, ICCV 2017"
SPLITS = {
    "train": ("train_list.txt", "train_data.json", "DiDeMo train split (Hendricks et al. 2017)"),
    "val": ("val_list.txt", "val_data.json", "DiDeMo val split (Hendricks et al. 2017), paragraph retrieval"),
    "test": (
        "test_list.txt",
        "test_data.json",
        "DiDeMo test split (Hendricks et al. 2017), paragraph retrieval as in CLIP4Clip",
    ),
}


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """video -> its non-empty descriptions, stripped, in file order."""
    data = read_json(path)
    expect(isinstance(data, list), path, "top level", "a list of moment annotations")
    by_video: dict[str, list[str]] = defaultdict(list)
    for i, item in enumerate(data):
        expect(isinstance(item, dict), path, f"item {i}", "an object")
        for key in ("video", "description"):
            expect(isinstance(item.get(key), str), path, f"item {i}, key {key!r}", "a string")
        text = item["description"].strip()
        if text:
            by_video[item["video"]].append(text)
    return by_video


@register_dataset("didemo")
def load_didemo(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    folder = require_folder("didemo", annotations, [n for spec in SPLITS.values() for n in spec[:2]])
    root = Path(video_root) if video_root is not None else folder
    b = IndexBuilder("didemo")
    for split, (list_name, data_name, note) in SPLITS.items():
        missing_files = [n for n in (list_name, data_name) if not (folder / n).is_file()]
        if missing_files:
            b.warn(f"{' and '.join(missing_files)} not found; split {split!r} not built")
            continue
        ids = unique(read_id_list(folder / list_name))
        descriptions = read_descriptions(folder / data_name)
        kept = [v for v in ids if v in descriptions]
        if len(kept) < len(ids):
            b.warn(
                f"{len(ids) - len(kept)} of {len(ids)} videos of {list_name} have no description in"
                f" {data_name}; left out of split {split!r}"
            )
        pairs = [(v, " ".join(descriptions[v])) for v in kept]
        b.add_split(split, pairs, {v: root / v for v in kept}, note)
    index = b.build(
        looked_for=[folder / n for spec in SPLITS.values() for n in spec[:2]],
        train=["train"],
        test=["test"],
        max_words=64,
        max_frames=64,
        paragraph=True,
        citation=CITATION,
    )
    # CLIP4Clip's DiDeMo loader samples seconds 0..31 of every video (start 0, end 31): the
    # annotators saw at most the first 30 s, longer videos were truncated for annotation.
    index.videos = [replace(v, start_s=WINDOW[0], end_s=WINDOW[1]) for v in index.videos]
    index.window_note = f"DiDeMo: seconds {WINDOW[0]}..{WINDOW[1]} of each video, as CLIP4Clip"
    return index
