"""MSVD (YouTube2Text) with the standard 1200 / 100 / 670 split.

Captions come from CLIP4Clip's ``raw-captions.pkl`` (id -> list of token lists),
read with an unpickler that resolves no globals, or from its JSON form
``captions_msvd.json`` (id -> list of strings). Every caption of a video is a
query (multi-caption evaluation).
"""

from __future__ import annotations

from pathlib import Path

from vtrbench.datasets._formats import (
    IndexBuilder,
    check_text,
    check_video_id,
    expect,
    load_plain_pickle,
    read_id_list,
    read_json,
    require_folder,
    short,
    unique,
    video_path,
)
from vtrbench.datasets.base import DatasetIndex, register_dataset

CITATION = "Chen & Dolan, Collecting Highly Parallel Data for Paraphrase Evaluation, ACL 2011"
PICKLE_FILE = "raw-captions.pkl"
JSON_FILE = "captions_msvd.json"
SPLITS = {
    "train": ("train_list.txt", "MSVD train split, 1200 videos (Venugopalan et al. 2015)"),
    "val": ("val_list.txt", "MSVD val split, 100 videos (Venugopalan et al. 2015)"),
    "test": ("test_list.txt", "MSVD test split, 670 videos, all captions (Venugopalan et al. 2015)"),
}
VIDEO_EXTENSIONS = (".avi", ".mp4")


def _read_captions(folder: Path) -> tuple[dict[str, list[str]], Path] | None:
    """id -> captions from the pickle (preferred: the original) or the JSON form; None when neither."""
    pickle_path, json_path = folder / PICKLE_FILE, folder / JSON_FILE
    if pickle_path.is_file():
        path, data, tokenised = pickle_path, load_plain_pickle(pickle_path), True
    elif json_path.is_file():
        path, data, tokenised = json_path, read_json(json_path), False
    else:
        return None
    expect(isinstance(data, dict), path, "top level", "a mapping of video id to captions")
    captions: dict[str, list[str]] = {}
    for vid, caps in data.items():
        expect(isinstance(vid, str), path, f"key {short(vid)}", "a string video id")
        vid = check_video_id(vid, path, f"key {short(vid)}")
        expect(isinstance(caps, list | tuple), path, f"key {vid!r}", "a list of captions")
        texts = []
        for i, cap in enumerate(caps):
            where = f"key {vid!r}, caption {i}"
            if tokenised:
                ok = isinstance(cap, list | tuple) and all(isinstance(t, str) for t in cap)
                expect(ok, path, where, "a list of string tokens")
                texts.append(check_text(" ".join(cap), path, where))
            else:
                expect(isinstance(cap, str), path, where, "a string")
                texts.append(check_text(cap, path, where))
        captions[vid] = texts
    return captions, path


@register_dataset("msvd")
def load_msvd(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    folder = require_folder("msvd", annotations, [PICKLE_FILE, JSON_FILE, *(f for f, _ in SPLITS.values())])
    root = Path(video_root) if video_root is not None else folder
    b = IndexBuilder("msvd")
    read = _read_captions(folder)
    if read is None:
        b.warn(f"neither {PICKLE_FILE} nor {JSON_FILE} found; no split can be built")
    else:
        captions, source = read
        for split, (filename, note) in SPLITS.items():
            ids_file = folder / filename
            if not ids_file.is_file():
                b.warn(f"{filename} not found; split {split!r} not built")
                continue
            ids = unique(read_id_list(ids_file))
            missing = [v for v in ids if not captions.get(v)]
            if missing:
                b.warn(
                    f"{len(missing)} of {len(ids)} videos of {filename} have no caption in {source.name}"
                    f" (e.g. {missing[0]!r}); left out of split {split!r}"
                )
            pairs = [(v, c) for v in ids for c in captions.get(v, [])]
            b.add_split(split, pairs, {v: video_path(root, v, VIDEO_EXTENSIONS) for v in ids}, note)
    return b.build(
        looked_for=[folder / PICKLE_FILE, folder / JSON_FILE, *(folder / f for f, _ in SPLITS.values())],
        train=["train"],
        test=["test"],
        citation=CITATION,
    )
