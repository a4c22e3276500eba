"""Small, strict readers for the public annotation file formats.

Every reader raises :class:`AnnotationError` naming the file and the line or key
that is wrong, so a user with a truncated download or the wrong file sees which
one instead of a ``KeyError`` from deep inside a loader.

Captions and video ids are checked here, when the dataset is read, because they
end up as HDF5 strings and CLIP tokens: a NUL byte or a lone surrogate would
otherwise fail only when the cache is assembled, after every video was encoded.
Ids of the standard datasets must be plain file names, so that no annotation
file can make vtrbench open a path outside ``--video-root``.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import pickletools
import reprlib
import stat
from collections.abc import Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vtrbench.datasets.base import DatasetIndex, Split, TextEntry, VideoEntry
from vtrbench.datasets.listing import names_in
from vtrbench.datasets.strings import BAD_CHARS, BAD_ESCAPE, bad_char, check_text
from vtrbench.errors import AnnotationError

# Far above any public annotation file (ActivityNet's train.json is 4 MB); a bigger
# "annotation" is a wrong path (a video, a disk image) that would only fill memory.
MAX_ANNOTATION_BYTES = 512 * 1024**2

MAX_NAME_BYTES = 250
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def short(value: object) -> str:
    """A bounded repr for error messages (a mutated file may hold huge or deeply nested values)."""
    return _REPR.repr(value)


def require_folder(name: str, annotations: Path | None, files: Iterable[str] = ()) -> Path:
    """The annotation folder of dataset ``name``; an error when it is not given or not a folder.

    Each of ``files`` that exists in the folder must be a regular file: a folder or a
    device named like an annotation file is an error here rather than "not found" later.
    """
    if annotations is None:
        raise AnnotationError(f"{name}: no annotation folder given")
    folder = Path(annotations)
    if not folder.is_dir():
        raise AnnotationError(f"{name}: annotation folder {folder} does not exist or is not a folder")
    for filename in files:
        check_regular_file(folder / filename, missing_ok=True)
    return folder


def check_regular_file(path: Path, missing_ok: bool = False) -> None:
    """An error unless ``path`` is a readable regular file (symlinks followed) of sane size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if missing_ok and not path.is_symlink():
            return
        broken = " (a broken link)" if path.is_symlink() else ""
        raise AnnotationError(f"{path}: does not exist{broken}") from None
    except (OSError, ValueError) as e:
        raise AnnotationError(f"{path}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AnnotationError(f"{path}: is a folder, expected an annotation file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO would block forever and /dev/zero never ends.
        raise AnnotationError(f"{path}: not a regular file (a device, pipe or socket)")
    if st.st_size > MAX_ANNOTATION_BYTES:
        raise AnnotationError(
            f"{path}: {st.st_size / 1024**2:.0f} MiB, larger than any annotation file"
            f" (limit {MAX_ANNOTATION_BYTES // 1024**2} MiB); is it the right file?"
        )


def read_bytes(path: Path) -> bytes:
    check_regular_file(path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot be read ({e.strerror})") from None


def read_text(path: Path) -> str:
    data = read_bytes(path)
    # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _check_strings(obj: Any, path: Path, where: str) -> None:
    """Every string (values and keys) in a parsed JSON value must be storable; the error
    names the first bad one by its place (``[12]['description']``)."""
    stack = [(obj, "")]
    while stack:
        value, place = stack.pop()
        if isinstance(value, str):
            problem = bad_char(value)
            if problem is not None:
                at = ", ".join(x for x in (where, place or "top level") if x)
                raise AnnotationError(f"{path}, {at}: string {problem}")
        elif isinstance(value, dict):
            items = list(value.items())
            for k, _ in items:
                stack.append((k, f"{place} key {short(k)}".strip()))
            stack.extend((v, f"{place}[{short(k)}]") for k, v in reversed(items))
        elif isinstance(value, list):
            stack.extend((v, f"{place}[{i}]") for i, v in reversed(list(enumerate(value))))


def check_video_id(vid: str, path: Path | str, where: str, plain: bool = True) -> str:
    """``vid`` stripped; with ``plain`` it must be a plain file name (no folder part, not ``..``).

    Standard datasets name a video by its file name inside ``--video-root``; an id with a
    path separator (``../../etc/shadow``) would open a file outside it.
    """
    vid = check_text(vid, path, where, "video id")
    if "\n" in vid or "\r" in vid or "\t" in vid:
        raise AnnotationError(f"{path}: {where}: video id {short(vid)} contains a tab or line break")
    if plain and ("/" in vid or "\\" in vid or vid in (".", "..")):
        raise AnnotationError(
            f"{path}: {where}: video id {short(vid)} is not a plain file name; refusing a path that could"
            " reach outside --video-root"
        )
    # File systems refuse longer names (ENAMETOOLONG); the margin leaves room for the extension.
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in vid.split("/")):
        raise AnnotationError(
            f"{path}: {where}: video id {short(vid)} holds a file name longer than {MAX_NAME_BYTES} bytes"
        )
    return vid


def read_id_list(path: Path) -> list[str]:
    """Ids from a file with one id per line; surrounding whitespace and blank lines are dropped.

    Every id must be a plain file name (see :func:`check_video_id`).
    """
    ids = [
        check_video_id(line, path, f"line {line_no}")
        for line_no, line in enumerate(read_text(path).splitlines(), start=1)
        if line.strip()
    ]
    if not ids:
        raise AnnotationError(f"{path}: no video ids (empty file)")
    return ids


def _object_without_repeats(path: Path) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            seen: set[str] = set()
            repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            # json keeps the last value silently: a merged or hand-edited file would lose captions.
            raise AnnotationError(f"{path}: key {short(repeated)} appears twice in one object")
        return obj

    return hook


def _parse_json(text: str, path: Path, where: str) -> Any:
    data = _decode_json(text, path, where)
    if BAD_CHARS.search(text) or BAD_ESCAPE.search(text):
        _check_strings(data, path, where)
    return data


def _decode_json(text: str, path: Path, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object_without_repeats(path))
    except json.JSONDecodeError as e:
        if where:
            raise AnnotationError(f"{path}, {where}: invalid JSON ({e.msg}, column {e.colno})") from None
        raise AnnotationError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise AnnotationError(f"{path}{', ' + where if where else ''}: JSON nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise AnnotationError(f"{path}{', ' + where if where else ''}: invalid JSON ({e})") from None


def read_json(path: Path) -> Any:
    return _parse_json(read_text(path), path, "")


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON Lines file; errors name the line."""
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        obj = _parse_json(line, path, f"line {line_no}")
        if not isinstance(obj, dict):
            raise AnnotationError(f"{path}, line {line_no}: expected a JSON object")
        yield line_no, obj


def read_csv_columns(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header line, as ``(line number, {column: value})``.

    Every column in ``required`` must be in the header and non-empty in every row.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
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
    has_bad_chars = BAD_CHARS.search(text) is not None  # checked per cell only then: fast path
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
            for c, value in row.items() if has_bad_chars else ():
                problem = bad_char(value)
                if problem is not None:
                    raise AnnotationError(f"{path}, line {line}: column {c!r} {problem}")
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


# Opcodes that build plain containers, strings, bytes and numbers. Anything else
# (GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID) needs a global or runs code.
_PLAIN_OPCODES = frozenset(
    """PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG
    LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE
    BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE
    TUPLE1 TUPLE2 TUPLE3 EMPTY_DICT DICT SETITEM SETITEMS EMPTY_SET ADDITEMS FROZENSET GET BINGET
    LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE""".split()
)


def _scan_pickle(data: bytes) -> str | None:
    """Why ``data`` is not a plain pickle, or None. Checked before unpickling because a mutated
    memo index (PUT 4000000000) makes the C unpickler allocate and zero tens of GB."""
    strings: list[Any] = [None, None]  # the last two string arguments: STACK_GLOBAL's names
    try:
        for n, (op, arg, pos) in enumerate(pickletools.genops(data)):
            if op.name not in _PLAIN_OPCODES:
                if op.name in ("GLOBAL", "STACK_GLOBAL"):
                    module, name = str(arg).split(" ", 1) if op.name == "GLOBAL" else strings
                    where = f"{str(module)[:60]}.{str(name)[:60]}"
                    return f"refers to {where}; only plain dicts, lists, tuples and strings are accepted"
                return f"opcode {op.name} at byte {pos} (plain containers and strings only)"
            if isinstance(arg, str):
                strings = [strings[1], arg]
            # A pickler numbers memo entries 0, 1, 2... : an index beyond the opcodes read is damage.
            if op.name in ("PUT", "LONG_BINPUT") and not (isinstance(arg, int) and 0 <= arg <= n):
                return f"memo index {short(arg)} at byte {pos} is out of range"
    except Exception as e:  # noqa: BLE001 - genops raises ValueError, UnicodeDecodeError, ...
        return f"damaged or truncated ({type(e).__name__}: {str(e)[:120]})"
    return None


def load_plain_pickle(path: Path) -> Any:
    """Unpickle ``path`` accepting only built-in containers and scalars (never runs code)."""
    data = read_bytes(path)
    problem = _scan_pickle(data)
    if problem is not None:
        raise AnnotationError(f"{path}: refused or unreadable pickle: {problem}")
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except Exception as e:  # noqa: BLE001 - MemoryError, OverflowError, stack underflow: the file's damage
        reason = f"{type(e).__name__}: {short(str(e))}"
        raise AnnotationError(f"{path}: refused or unreadable pickle: {reason}") from None


def video_path(root: Path, stem: str, extensions: Sequence[str]) -> Path:
    """``root/stem<ext>`` for the first extension whose file exists, else with ``extensions[0]``.

    Only checks for existence: a missing video is the extractor's to report. ``stem`` must be
    a plain file name (the readers check that, naming the file; this is the last guard).
    """
    if "/" in stem or "\\" in stem or stem in (".", "..") or "\0" in stem:
        raise AnnotationError(
            f"video id {short(stem)} is not a plain file name; refusing a path outside {root}"
        )
    names = names_in(root)
    for ext in extensions:
        if names is not None and f"{stem}{ext}" not in names:
            continue  # one listing instead of a stat per id and extension (45k for ActivityNet)
        candidate = root / f"{stem}{ext}"
        try:
            if candidate.exists():
                return candidate
        except OSError:  # e.g. a video root that cannot be searched: the extractor reports the video
            continue
    return root / f"{stem}{extensions[0]}"


def unique(items: Iterable[str]) -> list[str]:
    """Items in first-seen order, without repeats."""
    return list(dict.fromkeys(items))


def pick_default(splits: Iterable[str], preferred: Sequence[str]) -> str | None:
    present = set(splits)
    return next((s for s in preferred if s in present), None)


class IndexBuilder:
    """Accumulates videos, captions and splits, sharing one video table across splits."""

    def __init__(self, name: str, source: Path | None = None) -> None:
        self.name = name
        self.source = source  # the one annotation file that names the splits (custom), for errors
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
        # Split names become HDF5 group names, where "/" nests and "." is the group itself.
        check_text(split, self.source or self.name, f"split {split!r}", "split name")
        if "/" in split or split in (".", ".."):
            where = self.source or self.name
            raise AnnotationError(f"{where}: split name {split!r} must not hold '/' or be '.' or '..'")
        if not captions:
            # An empty split would fail later (no gallery to rank) or train on nothing.
            self.warn(f"split {split!r} has no captions; not built")
            return
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
        alternative_splits: tuple[tuple[str, ...], ...] = (),
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
            alternative_splits=alternative_splits,
        )
