"""The one record shape every dataset loader produces.

A loader reads a dataset's public annotation files and returns a
:class:`DatasetIndex`: the videos (id + file path), the captions (each tied to a
video id), and the splits (which videos and which captions each split holds).
Extraction encodes the union of all splits once; training and evaluation select
rows by split name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vtrbench.errors import AnnotationError
from vtrbench.registry import Registry


@dataclass(frozen=True)
class VideoEntry:
    id: str
    path: Path  # may not exist: extraction records a missing file as a failed video
    # Seconds of the video that frames are sampled from (CLIP4Clip's start_time/end_time,
    # see vtrbench.extract.decode.sample_frame_indices); None = the video's start / end.
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class TextEntry:
    video: str  # VideoEntry.id
    caption: str
    # Optional known part-of-speech roles, one per whitespace-separated word of the
    # caption ("noun", "verb" or ""), e.g. from the synthetic generator. When absent
    # the extractor runs a tagger.
    roles: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Split:
    videos: tuple[str, ...]  # video ids, in gallery order
    texts: tuple[int, ...]  # indices into DatasetIndex.texts (the queries)
    note: str = ""  # where the split comes from, as papers name it


@dataclass
class DatasetIndex:
    name: str
    videos: list[VideoEntry]
    texts: list[TextEntry]
    splits: dict[str, Split]
    default_train: str | None
    default_test: str
    max_words: int = 32  # CLIP4Clip default; 64 for paragraph datasets
    max_frames: int = 12  # CLIP4Clip default; 64 for paragraph datasets
    paragraph: bool = False
    citation: str = ""
    warnings: list[str] = field(default_factory=list)
    window_note: str = ""  # how the per-video sampling windows were set, if any (cache attr "windows")

    def validate(self) -> None:
        """Every split refers to known videos and texts; every text to a known video."""
        ids = {v.id for v in self.videos}
        if len(ids) != len(self.videos):
            raise AnnotationError(f"{self.name}: duplicate video ids")
        for t in self.texts:
            if t.video not in ids:
                raise AnnotationError(f"{self.name}: caption refers to unknown video {t.video!r}")
        for name, split in self.splits.items():
            missing = [v for v in split.videos if v not in ids]
            if missing:
                raise AnnotationError(f"{self.name}: split {name!r} refers to unknown videos {missing[:3]}")
            in_split = set(split.videos)
            for i in split.texts:
                if not 0 <= i < len(self.texts) or self.texts[i].video not in in_split:
                    raise AnnotationError(f"{self.name}: split {name!r} has caption {i} outside its videos")

    def describe(self) -> dict[str, dict[str, int]]:
        return {name: {"videos": len(s.videos), "captions": len(s.texts)} for name, s in self.splits.items()}


# A loader takes (annotations, video_root) and returns the index. ``annotations``
# is a directory (or, for ``custom``, a file); ``video_root`` is where the video
# files live. Loaders must not touch the video files themselves.
Loader = Callable[[Path | None, Path | None], DatasetIndex]

DATASETS: Registry[Loader] = Registry("dataset")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    _import_builtin()
    return DATASETS.names()


def load_dataset(name: str, annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    """Build the index of a registered dataset and check that it is self-consistent."""
    _import_builtin()
    loader = DATASETS.get(name)
    index = loader(annotations, video_root)
    index.validate()
    return index


def _import_builtin() -> None:
    # Importing the modules registers them; kept lazy so `vtrbench --help` stays fast.
    from vtrbench.datasets import (  # noqa: F401
        activitynet,
        custom,
        didemo,
        lsmdc,
        msrvtt,
        msvd,
        synthetic,
    )
