"""The ``synthetic`` dataset: the procedural videos behind ``vtrbench demo`` and the tests, and their loader.

The generator (METHODS.md section 9), bottom to top: :mod:`.factors` (shapes, colours,
scenes, action kinds and why videos come in order pairs), :mod:`.captions` (templates and
word roles), :mod:`.planning` (:class:`SynthConfig` and :func:`plan`), :mod:`.render`
(the pixels: timing and lighting), :mod:`.folder` (file names, safe writes) and
:mod:`.generate` (:func:`render_dataset`). This module re-exports their public names
(``vtrbench.synthetic`` is a deprecated alias of it) and registers the loader.

The loader reads a folder written by :func:`render_dataset`; the folder is both the
annotation folder and the video root: ``meta.json`` (generator version, options, per-video
factors and splits), ``captions.jsonl`` (captions with their known noun/verb roles) and
``videos/<id>.mp4``. Without an annotation folder the index is planned from the default
:class:`SynthConfig` with video paths under a placeholder folder that does not exist, so
that the dataset can be described before anything is rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtrbench.datasets._formats import (
    check_regular_file,
    check_video_id,
    read_json,
    read_jsonl_objects,
    short,
)
from vtrbench.datasets.base import DatasetIndex, Split, TextEntry, VideoEntry, register_dataset
from vtrbench.datasets.synthetic.captions import MAX_CAPTIONS_PER_VIDEO, Caption
from vtrbench.datasets.synthetic.factors import (
    COLOURS,
    GENERATOR,
    GENERATOR_VERSION,
    KINDS,
    SCENES,
    SHAPES,
    SPLITS,
    Entity,
)
from vtrbench.datasets.synthetic.folder import CAPTIONS_FILE, MARKER_FILE, META_FILE, VIDEO_DIR
from vtrbench.datasets.synthetic.generate import render_dataset
from vtrbench.datasets.synthetic.planning import SynthConfig, VideoSpec, plan
from vtrbench.datasets.synthetic.render import render_video
from vtrbench.errors import AnnotationError

# The generator's public names (also re-exported, deprecated, by vtrbench.synthetic).
__all__ = [
    "CAPTIONS_FILE",
    "COLOURS",
    "GENERATOR",
    "GENERATOR_VERSION",
    "KINDS",
    "MARKER_FILE",
    "MAX_CAPTIONS_PER_VIDEO",
    "META_FILE",
    "SCENES",
    "SHAPES",
    "SPLITS",
    "VIDEO_DIR",
    "Caption",
    "Entity",
    "SynthConfig",
    "VideoSpec",
    "load_synthetic",
    "plan",
    "render_dataset",
    "render_video",
]

NAME = "synthetic"
PLACEHOLDER_ROOT = Path("/nonexistent/vtrbench-synthetic-not-rendered")
CITATION = f"vtrbench procedural synthetic videos ({GENERATOR} v{GENERATOR_VERSION})"
ROLES = ("noun", "verb", "")


@register_dataset(NAME)
def load_synthetic(annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    """Index of a rendered synthetic folder, or of the default plan when ``annotations`` is None.

    Video files are ``<video_root>/videos/<id>.mp4`` (``video_root`` defaults to the
    annotation folder); a ``video_root`` without a ``videos`` sub-folder is taken to hold
    the files directly.
    """
    if annotations is None:
        config = SynthConfig()
        root = Path(video_root) if video_root is not None else PLACEHOLDER_ROOT
        specs = plan(config)
        videos = [(spec.id, spec.split) for spec in specs]
        texts = [(spec.id, c.text, c.roles, spec.split) for spec in specs for c in spec.captions]
        index = _index(videos, texts, root, f"default plan (seed {config.seed})")
        if video_root is None:
            index.warnings.append(
                f"synthetic: no folder given, so this is the default plan and {root} holds no videos; "
                "render them with `vtrbench demo` (or vtrbench.synthetic.render_dataset)"
            )
        return index
    folder = Path(annotations)
    if not folder.is_dir():
        raise AnnotationError(f"{NAME}: annotation folder {folder} does not exist or is not a folder")
    meta_path, captions_path = folder / META_FILE, folder / CAPTIONS_FILE
    for path in (meta_path, captions_path):
        check_regular_file(path, missing_ok=True)
        if not path.is_file():
            raise AnnotationError(
                f"{NAME}: {folder} is not a rendered synthetic dataset (no {path.name}; an interrupted "
                "render writes it last): render it with `vtrbench demo` or vtrbench.synthetic.render_dataset"
            )
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("generator") != GENERATOR:
        raise AnnotationError(f"{meta_path}: not written by {GENERATOR} (key 'generator')")
    if meta.get("version") != GENERATOR_VERSION:
        raise AnnotationError(
            f"{meta_path}: generator version {meta.get('version')!r}, this vtrbench reads version "
            f"{GENERATOR_VERSION}; render the dataset again"
        )
    videos = _read_videos(meta_path, meta)
    texts = _read_captions(captions_path, dict(videos))
    root = Path(video_root) if video_root is not None else folder
    return _index(videos, texts, root, f"seed {meta.get('seed')!r}, {meta_path}")


def _read_videos(path: Path, meta: dict[str, Any]) -> list[tuple[str, str]]:
    entries = meta.get("videos")
    if not isinstance(entries, list) or not entries:
        raise AnnotationError(f"{path}: key 'videos' must be a non-empty list")
    videos = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: videos[{i}] must be an object")
        vid, split = entry.get("id"), entry.get("split")
        if not isinstance(vid, str) or not vid:
            raise AnnotationError(f"{path}: videos[{i}]: key 'id' missing or not a string")
        vid = check_video_id(vid, path, f"videos[{i}]")
        if split not in SPLITS:
            raise AnnotationError(f"{path}: videos[{i}] ({vid}): key 'split' must be one of {SPLITS}")
        videos.append((vid, split))
    return videos


def _read_captions(path: Path, video_split: dict[str, str]) -> list[tuple[str, str, tuple[str, ...], str]]:
    texts = []
    for line_no, obj in read_jsonl_objects(path):
        vid, caption, roles, split = (obj.get(k) for k in ("video", "caption", "roles", "split"))
        if not isinstance(vid, str) or vid not in video_split:
            raise AnnotationError(
                f"{path}, line {line_no}: key 'video' {short(vid)} is not a video of meta.json"
            )
        if not isinstance(caption, str) or not caption.strip():
            raise AnnotationError(f"{path}, line {line_no}: key 'caption' missing or not a non-empty string")
        if (
            not isinstance(roles, list)
            or len(roles) != len(caption.split())
            or any(r not in ROLES for r in roles)
        ):
            raise AnnotationError(
                f"{path}, line {line_no}: key 'roles' must give 'noun', 'verb' or '' per word of the caption"
            )
        if split != video_split[vid]:
            raise AnnotationError(
                f"{path}, line {line_no}: split {split!r} differs from meta.json's {video_split[vid]!r}"
            )
        texts.append((vid, caption, tuple(roles), split))
    if not texts:
        raise AnnotationError(f"{path}: no captions (empty file)")
    return texts


def _index(
    videos: list[tuple[str, str]],
    texts: list[tuple[str, str, tuple[str, ...], str]],
    root: Path,
    source: str,
) -> DatasetIndex:
    video_dir = root / VIDEO_DIR if (root / VIDEO_DIR).is_dir() or not root.is_dir() else root
    splits = {
        name: Split(
            videos=tuple(v for v, s in videos if s == name),
            texts=tuple(i for i, t in enumerate(texts) if t[3] == name),
            note=f"{name} split of the synthetic generator ({source}); both videos of a direction pair "
            "are in the same split",
        )
        for name in SPLITS
    }
    return DatasetIndex(
        name=NAME,
        videos=[VideoEntry(id=v, path=video_dir / f"{v}.mp4") for v, _ in videos],
        texts=[TextEntry(video=v, caption=c, roles=r) for v, c, r, _ in texts],
        splits=splits,
        default_train="train",
        default_test="test",
        max_words=32,
        max_frames=12,
        citation=CITATION,
    )
