"""Small, strict readers for the public annotation file formats.

Every reader raises :class:`AnnotationError` naming the file and the line or key
that is wrong, so a user with a truncated download or the wrong file sees which
one instead of a ``KeyError`` from deep inside a loader.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from collections.abc import Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vtrbench.datasets.base import DatasetIndex, Split, TextEntry, VideoEntry
from vtrbench.errors import AnnotationError


def require_folder(name: str, annotations: Path | None) -> Path:
    """The annotation folder of dataset ``name``; an error when it is not given or not a folder."""
    if annotations is None:
        raise AnnotationError(f"{name}: no annotation folder given")
    folder = Path(annotations)
    if not folder.is_dir():
        raise AnnotationError(f"{name}: annotation folder {folder} does not exist or is not a folder")
    return folder


def read_text(path: Path) -> str:
    # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark.
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise AnnotationError(f"{path}: cannot be read ({e.strerror})") from None


def read_id_list(path: Path) -> list[str]:
    """Ids from a file with one id per line; surrounding whitespace and blank lines are dropped."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file; errors name the line."""
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise AnnotationError(
                f"{path}, line {line_no}: invalid JSON ({e.msg}, column {e.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise AnnotationError(f"{path}, line {line_no}: expected a JSON object")
        yield line_no, obj


def read_csv_columns(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header line, as ``(line number, {column: value})``.

    Every column in ``required`` must be in the header and non-empty in every row.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise AnnotationError(f"{path}: empty file (expected a header with {', '.join(required)})") from None
    except csv.Error as e:
        raise AnnotationError(f"{path}, line 1: {e}") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise AnnotationError(
            f"{path}, line 1: header {','.join(header)!r} lacks column(s) {', '.join(missing)}"
        )
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            line = reader.line_num
            if len(cells) != len(header):
                raise AnnotationError(
                    f"{path}, line {line}: {len(cells)} fields, the header has {len(header)}"
                )
            row = dict(zip(header, (c.strip() for c in cells), strict=True))
            for c in required:
                if not row[c]:
                    raise AnnotationError(f"{path}, line {line}: empty {c!r}")
            rows.append((line, row))
    except csv.Error as e:
        raise AnnotationError(f"{path}, line {reader.line_num}: {e}") from None
    return rows


def expect(condition: bool, path: Path, where: str, what: str) -> None:
    """Raise an :class:`AnnotationError` at ``path``/``where`` unless ``condition`` holds."""
    if not condition:
        raise AnnotationError(f"{path}: {where}: expected {what}")


class _NoGlobalsUnpickler(pickle.Unpickler):
    # Plain dicts, lists, tuples, strings and numbers are built by pickle opcodes
    # without looking up any global; everything else (classes, functions such as
    # os.system behind a REDUCE) goes through find_class, so refusing every
    # lookup here stops code execution before anything is called.
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refers to {module}.{name}; only plain dicts, lists, tuples and strings are accepted"
        )


def load_plain_pickle(path: Path) -> Any:
    """Unpickle ``path`` accepting only built-in containers and scalars (never runs code)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: refused or unreadable pickle: {e}") from None


def video_path(root: Path, stem: str, extensions: Sequence[str]) -> Path:
    """``root/stem<ext>`` for the first extension whose file exists, else with ``extensions[0]``.

    Only checks for existence: a missing video is the extractor's to report.
    """
    for ext in extensions:
        candidate = root / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return root / f"{stem}{extensions[0]}"


def unique(items: Iterable[str]) -> list[str]:
    """Items in first-seen order, without repeats."""
    return list(dict.fromkeys(items))


def pick_default(splits: Iterable[str], preferred: Sequence[str]) -> str | None:
    present = set(splits)
    return next((s for s in preferred if s in present), None)


class IndexBuilder:
    """Accumulates videos, captions and splits, sharing one video table across splits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.videos: dict[str, VideoEntry] = {}
        self.texts: list[TextEntry] = []
        self.splits: dict[str, Split] = {}
        self.warnings: list[str] = []
        self._text_of_key: dict[Hashable, int] = {}

    def add_split(
        self,
        split: str,
        captions: Sequence[tuple[str, str]],
        paths: dict[str, Path],
        note: str,
        keys: Sequence[Hashable] | None = None,
    ) -> None:
        """Add split ``split`` from (video id, caption) pairs; gallery order = first appearance.

        ``keys`` names each caption's source row: a caption whose key an earlier
        split already added is shared rather than stored twice (MSR-VTT's 7k
        captions are a subset of the 9k ones). Without keys every caption is new.
        """
        if keys is None:
            keys = [(split, i) for i in range(len(captions))]
        indices = []
        for key, (v, c) in zip(keys, captions, strict=True):
            if key not in self._text_of_key:
                self._text_of_key[key] = len(self.texts)
                self.texts.append(TextEntry(video=v, caption=c))
            indices.append(self._text_of_key[key])
        gallery = unique(v for v, _ in captions)
        for v in gallery:
            if v not in self.videos:
                self.videos[v] = VideoEntry(id=v, path=paths[v])
        self.splits[split] = Split(videos=tuple(gallery), texts=tuple(indices), note=note)

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.name}: {message}")

    def build(
        self,
        *,
        looked_for: Sequence[Path],
        train: Sequence[str],
        test: Sequence[str],
        max_words: int = 32,
        max_frames: int = 12,
        paragraph: bool = False,
        citation: str = "",
    ) -> DatasetIndex:
        """The index; ``train``/``test`` list the split names to use as defaults, best first."""
        if not self.splits:
            raise AnnotationError(
                f"{self.name}: no split could be built; looked for " + ", ".join(str(p) for p in looked_for)
            )
        default_test = pick_default(self.splits, test)
        if default_test is None:
            default_test = next(iter(self.splits))
            self.warn(f"no test split ({' or '.join(test)}); the default test split is {default_test!r}")
        return DatasetIndex(
            name=self.name,
            videos=list(self.videos.values()),
            texts=self.texts,
            splits=self.splits,
            default_train=pick_default(self.splits, train),
            default_test=default_test,
            max_words=max_words,
            max_frames=max_frames,
            paragraph=paragraph,
            citation=citation,
            warnings=self.warnings,
        )
