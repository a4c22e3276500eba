"""The one record shape every dataset loader produces.

A loader reads a dataset's public annotation files and returns a
:class:`DatasetIndex`: the videos (id + file path), the captions (each tied to a
video id), and the splits (which videos and which captions each split holds).
Extraction encodes the union of all splits once; training and evaluation select
rows by split name.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vtrbench.datasets.listing import forget_listings
from vtrbench.datasets.strings import check_text
from vtrbench.errors import AnnotationError, VtrbenchError
from vtrbench.registry import Registry, name_problem


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
    # Groups of splits that are alternatives to one another and share videos by design
    # (MSR-VTT's 7k train split is a subset of its 9k one); any other pair of splits
    # sharing a video is reported as a possible train/test leak.
    alternative_splits: tuple[tuple[str, ...], ...] = ()
    window_note: str = ""  # how the per-video sampling windows were set, if any (cache attr "windows")

    def validate(self) -> None:
        """Every split refers to known videos and texts; every text to a known video; ids and
        captions can be stored (the readers check them too, naming the file and line)."""
        ids = {v.id for v in self.videos}
        if len(ids) != len(self.videos):
            raise AnnotationError(f"{self.name}: duplicate video ids")
        for v in self.videos:
            check_text(v.id, self.name, f"video {v.id!r}", "video id")
        for t in self.texts:
            check_text(t.caption, self.name, f"a caption of video {t.video!r}")
        for t in self.texts:
            if t.video not in ids:
                raise AnnotationError(f"{self.name}: caption refers to unknown video {t.video!r}")
        for name, split in self.splits.items():
            # Split names become HDF5 group names, where "/" nests and "." is the group itself.
            check_text(name, self.name, f"split {name!r}", "split name")
            if "/" in name or name in (".", ".."):
                raise AnnotationError(f"{self.name}: split name {name!r} must not hold '/' or be '.' or '..'")
            missing = [v for v in split.videos if v not in ids]
            if missing:
                raise AnnotationError(f"{self.name}: split {name!r} refers to unknown videos {missing[:3]}")
            in_split = set(split.videos)
            for i in split.texts:
                if not 0 <= i < len(self.texts) or self.texts[i].video not in in_split:
                    raise AnnotationError(f"{self.name}: split {name!r} has caption {i} outside its videos")

    def describe(self) -> dict[str, dict[str, int]]:
        return {name: {"videos": len(s.videos), "captions": len(s.texts)} for name, s in self.splits.items()}

    def splits_of(self, video: str) -> tuple[str, ...]:
        """The names of the splits whose gallery holds video id ``video``, in split order."""
        return tuple(name for name, s in self.splits.items() if video in s.videos)

    def shared_videos(self, a: str, b: str) -> list[str]:
        """Videos of split ``a`` that split ``b`` also holds, in ``a``'s gallery order.

        Two ids count as the same video when they are equal or name the same file
        (``clips/a.mp4`` and ``./clips/a.mp4`` in a custom dataset); video files are not read.
        """
        return self._shared(a, b, self._file_keys())

    def _file_keys(self) -> dict[str, str]:
        return {v.id: os.path.normpath(os.path.abspath(v.path)) for v in self.videos}

    def _shared(self, a: str, b: str, key: dict[str, str]) -> list[str]:
        in_b = {key.get(v, v) for v in self.splits[b].videos}
        return [v for v in self.splits[a].videos if key.get(v, v) in in_b]

    def split_overlaps(self) -> dict[tuple[str, str], list[str]]:
        """``(a, b) -> shared videos`` for every pair of splits that share videos and are not
        declared alternatives (:attr:`alternative_splits`): each is a possible train/test leak."""
        pairs = (itertools.combinations(group, 2) for group in self.alternative_splits)
        allowed = {frozenset(p) for p in itertools.chain.from_iterable(pairs)}
        key = self._file_keys()
        found = {}
        for a, b in itertools.combinations(self.splits, 2):
            if frozenset((a, b)) in allowed:
                continue
            shared = self._shared(a, b, key)
            if shared:
                found[(a, b)] = shared
        return found


# A loader takes (annotations, video_root) and returns the index. ``annotations``
# is a directory (or, for ``custom``, a file); ``video_root`` is where the video
# files live. Loaders must not touch the video files themselves.
Loader = Callable[[Path | None, Path | None], DatasetIndex]

# The built-in datasets, by module: imported on first use by the registry (kept lazy so that
# `vtrbench --help` stays fast; base.py never imports them).
BUILTIN_MODULES = tuple(
    f"vtrbench.datasets.{m}"
    for m in ("activitynet", "custom", "didemo", "lsmdc", "msrvtt", "msvd", "synthetic")
)
DATASETS: Registry[Loader] = Registry(
    "dataset", entry_point_group="vtrbench.datasets", builtin_modules=BUILTIN_MODULES
)


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader ``(annotations, video_root) -> DatasetIndex`` as ``name``."""
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    return DATASETS.available()  # built-ins, loaded plugins and installed entry points


def load_dataset(name: str, annotations: Path | None, video_root: Path | None) -> DatasetIndex:
    """Build the index of a registered dataset and check that it is self-consistent."""
    loader = DATASETS.get(name)
    forget_listings()
    origin = DATASETS.origin(name)
    if origin.get("kind") == "builtin":
        index = loader(annotations, video_root)
        index.validate()
    else:
        index = _plugin_index(name, origin, loader, annotations, video_root)
    for (a, b), shared in index.split_overlaps().items():
        index.warnings.append(
            f"{index.name}: {len(shared)} video(s) are in both split {a!r} and split {b!r}"
            f" (e.g. {shared[0]!r}); a model trained on one and tested on the other has seen the test videos"
        )
    return index


def _plugin_index(
    name: str, origin: dict, loader: Loader, annotations: Path | None, video_root: Path | None
) -> DatasetIndex:
    """Run a dataset plugin's loader as head and loss plugins are run: whatever goes wrong inside it
    (an exception, a return value that is not a :class:`DatasetIndex`, fields of the wrong type) is
    one line naming the plugin, never a traceback from the user's code."""
    who = f"plugin dataset {name!r} ({origin.get('source')})"
    try:
        index = loader(annotations, video_root)
    except VtrbenchError as e:
        raise VtrbenchError(f"{who}: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(f"{who} failed to load: {type(e).__name__}: {e}".rstrip()[:500]) from None
    if not isinstance(index, DatasetIndex):
        raise VtrbenchError(f"{who} returned {type(index).__name__}, not a vtrbench DatasetIndex")
    # the index's name becomes the cache's dataset name, a folder under --results and part of run ids
    problem = name_problem(index.name)
    if problem is not None:
        raise VtrbenchError(f"{who} returned a DatasetIndex whose name {index.name!r} {problem}"[:500])
    try:
        problem = _field_problem(index)
        if problem is not None:
            raise VtrbenchError(problem)
        index.validate()
        index.split_overlaps()  # reads every video path: a path of the wrong type fails here
    except VtrbenchError as e:
        raise VtrbenchError(f"{who}: {e}") from None
    except Exception as e:  # noqa: BLE001 - fields of the wrong type (videos=None, a caption as int)
        raise VtrbenchError(
            f"{who} returned a malformed DatasetIndex ({type(e).__name__}: {e})".rstrip()[:500]
        ) from None
    return index


def _field_problem(index: DatasetIndex) -> str | None:
    """Types and ranges a plugin's index must have that :meth:`DatasetIndex.validate` takes for granted."""
    if not isinstance(index.videos, list) or not all(isinstance(v, VideoEntry) for v in index.videos):
        return "DatasetIndex.videos must be a list of VideoEntry"
    if not isinstance(index.texts, list) or not all(isinstance(t, TextEntry) for t in index.texts):
        return "DatasetIndex.texts must be a list of TextEntry"
    if not isinstance(index.splits, dict) or not all(isinstance(x, Split) for x in index.splits.values()):
        return "DatasetIndex.splits must be a dict of name -> Split"
    for v in index.videos:
        if not isinstance(v.id, str) or not isinstance(v.path, (str, os.PathLike)):
            return f"video {v.id!r}: id must be a string and path a str or Path, got {type(v.path).__name__}"
    for t in index.texts:
        if not isinstance(t.caption, str) or not isinstance(t.video, str):
            return f"a caption of video {t.video!r} is not a string ({type(t.caption).__name__})"
    for key in ("max_words", "max_frames"):
        value = getattr(index, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"DatasetIndex.{key} must be an integer >= 1, got {value!r}"
    if index.default_test not in index.splits:
        return f"default_test {index.default_test!r} is not one of its splits {sorted(index.splits)}"
    if index.default_train is not None and index.default_train not in index.splits:
        return f"default_train {index.default_train!r} is not one of its splits {sorted(index.splits)}"
    return None
