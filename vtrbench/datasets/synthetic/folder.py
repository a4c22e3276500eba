"""The output folder of the synthetic generator: its file names and the safe ways to change it.

``render_dataset`` resumes a folder that holds this very dataset, refuses one that holds
anything else, and replaces another synthetic dataset only as a whole; every file is
written under a temporary name and renamed, so a killed run never leaves half a file.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from vtrbench.datasets.synthetic.factors import GENERATOR
from vtrbench.datasets.synthetic.planning import VideoSpec
from vtrbench.errors import VtrbenchError

CAPTIONS_FILE = "captions.jsonl"
META_FILE = "meta.json"
VIDEO_DIR = "videos"
# Present while a render is in progress; holds the planned meta.json text.
MARKER_FILE = ".vtrbench-synth-in-progress"


def folder_state(out: Path, meta_text: str, specs: Sequence[VideoSpec]) -> str:
    """ "empty", "ours" (this very dataset, complete or interrupted: resume in place) or "other"."""
    if not out.exists():
        return "empty"
    if not out.is_dir():
        raise VtrbenchError(f"synthetic: {out} is a file, not a folder")
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot read {out} ({e.strerror})") from None
    if not entries:
        return "empty"
    planned = {f"{s.id}.mp4" for s in specs}
    if not {e for e in entries if ".tmp" not in e} <= {META_FILE, CAPTIONS_FILE, VIDEO_DIR, MARKER_FILE}:
        return "other"
    if (out / VIDEO_DIR).is_dir():
        # videos other than planned ones (a stale larger dataset) would make a mixed folder
        stale = [p for p in (out / VIDEO_DIR).iterdir() if p.name not in planned and ".tmp" not in p.name]
        if stale:
            return "other"
    for name in (MARKER_FILE, META_FILE):
        try:
            if (out / name).read_text(encoding="utf-8") == meta_text:
                return "ours"
        except (OSError, UnicodeDecodeError):
            continue
    return "other"


def is_synthetic(out: Path) -> bool:
    """Whether ``out`` holds only the files of a synthetic dataset (complete or interrupted)."""
    names = {p.name for p in out.iterdir() if ".tmp" not in p.name}
    if not names <= {META_FILE, CAPTIONS_FILE, VIDEO_DIR, MARKER_FILE}:
        return False
    for name in (META_FILE, MARKER_FILE):
        try:
            if json.loads((out / name).read_text(encoding="utf-8")).get("generator") == GENERATOR:
                return True
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
    return False


def describe(out: Path) -> str:
    """``"3 entries: a, b, c"``: what a refused folder holds, for the error message."""
    names = sorted(p.name for p in out.iterdir())
    return f"{len(names)} entries: " + ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def swap(new: Path, old: Path) -> None:
    """Exchange two folders in one step where Linux allows it (renameat2), else two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rename2 = libc.renameat2
    except (OSError, AttributeError):
        rename2 = None
    if rename2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if rename2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange) == 0:
            return
    aside = old.with_name(f".{old.name}.synth-old")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(old, aside)
    os.replace(new, old)
    os.replace(aside, new)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it to ``path``."""
    # The suffix stays last so that FFmpeg still recognises the container.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot write {path} ({e.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
