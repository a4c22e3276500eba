"""MSR-VTT with the CLIP4Clip split files.

Train splits take every caption of their videos from ``MSRVTT_data.json`` (20
per video); the 1k-A test split takes its one caption per video from the test
CSV, as CLIP4Clip and the papers it compares with do. A video of the 1k-A split
therefore never contributes its JSON captions.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from vtrbench.datasets._formats import (
    IndexBuilder,
    check_text,
    check_video_id,
    expect,
    read_csv_columns,
    read_json,
    require_folder,
    video_path,
)
from vtrbench.datasets.base import DatasetIndex, register_dataset
from vtrbench.errors import AnnotationError

CITATION = "Xu et al., MSR-VTT: A Large Video Description Dataset for Bridging Video and Language, CVPR 2016"
CAPTIONS_FILE = "MSRVTT_data.json"
TEST_FILE = "MSRVTT_JSFUSION_test.csv"
# split name -> (id list file, where the split comes from)
TRAIN_SPLITS = {
    "9k": (
        "MSRVTT_train.9k.csv",
        "9k train split: all 10k videos minus 1k-A (Miech et al. 2019), 20 captions per video",
    ),
    "7k": (
        "MSRVTT_train.7k.csv",
        "7k train split: official train + val videos (Xu et al. 2016), 20 captions per video",
    ),
}
TEST_NOTE = "JSFusion 1k-A test split (Yu et al. 2018), one caption per video"
VIDEO_EXTENSIONS = (".mp4", ".webm")


def _json_captions(path: Path) -> dict[str, list[tuple[int, str]]]:
    """video id -> [(position in "sentences", caption)], in file order."""
    data = read_json(path)
    expect(isinstance(data, dict) and "sentences" in data, path, "top level", 'an object with "sentences"')
    sentences = data["sentences"]
    expect(isinstance(sentences, list), path, '"sentences"', "a list")
    by_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, s in enumerate(sentences):
        where = f"sentences[{i}]"
        expect(isinstance(s, dict), path, where, "an object")
        for key in ("video_id", "caption"):
            expect(isinstance(s.get(key), str), path, f"{where}.{key}", "a string")
        vid = check_video_id(s["video_id"], path, f"{where}.video_id")
        by_video[vid].append((i, check_text(s["caption"], path, f"{where}.caption")))
    return by_video


@register_dataset("msrvtt")
def load_msrvtt(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    files = [CAPTIONS_FILE, TEST_FILE, *(f for f, _ in TRAIN_SPLITS.values())]
    folder = require_folder("msrvtt", annotations, files)
    root = Path(video_root) if video_root is not None else folder
    b = IndexBuilder("msrvtt")

    found: dict[str, Path] = {}  # 7k repeats 9k's videos: look each file up once

    def paths(ids: list[str]) -> dict[str, Path]:
        for v in ids:
            if v not in found:
                found[v] = video_path(root, v, VIDEO_EXTENSIONS)
        return found

    captions_file = folder / CAPTIONS_FILE
    train_splits = list(TRAIN_SPLITS.items())
    json_captions: dict[str, list[tuple[int, str]]] = {}
    if captions_file.is_file():
        json_captions = _json_captions(captions_file)
    else:
        train_splits = []
        b.warn(f"{CAPTIONS_FILE} not found; the train splits are not built (only 1k-A can be)")
    for split, (filename, note) in train_splits:
        ids_file = folder / filename
        if not ids_file.is_file():
            b.warn(f"{filename} not found; split {split!r} not built")
            continue
        rows = read_csv_columns(ids_file, ["video_id"])
        if not rows:
            raise AnnotationError(f"{ids_file}: no video ids after the header")
        ids = list(dict.fromkeys(check_video_id(row["video_id"], ids_file, f"line {n}") for n, row in rows))
        uncaptioned = [v for v in ids if v not in json_captions]
        if uncaptioned:
            b.warn(
                f"{len(uncaptioned)} of {len(ids)} videos of {filename} have no caption in {CAPTIONS_FILE}"
                f" (e.g. {uncaptioned[0]!r}); left out of split {split!r}"
            )
        pairs = [(v, i, c) for v in ids for i, c in json_captions.get(v, [])]
        b.add_split(
            split,
            [(v, c) for v, _, c in pairs],
            paths(ids),
            note,
            keys=[("json", i) for _, i, _ in pairs],
        )

    test_file = folder / TEST_FILE
    if test_file.is_file():
        captions = [
            (
                check_video_id(row["video_id"], test_file, f"line {n}"),
                check_text(row["sentence"], test_file, f"line {n}, 'sentence'"),
            )
            for n, row in read_csv_columns(test_file, ["video_id", "sentence"])
        ]
        if not captions:
            raise AnnotationError(f"{test_file}: no captions after the header")
        b.add_split("1k-A", captions, paths([v for v, _ in captions]), TEST_NOTE)
    else:
        b.warn(f"{TEST_FILE} not found; test split '1k-A' not built")

    return b.build(
        looked_for=[folder / CAPTIONS_FILE, *(folder / f for f, _ in TRAIN_SPLITS.values()), test_file],
        train=["9k", "7k"],
        test=["1k-A"],
        citation=CITATION,
        alternative_splits=(("9k", "7k"),),
    )
