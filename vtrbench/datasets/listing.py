"""Cached folder listings: one ``os.listdir`` per video folder instead of a stat per id and extension.

Family layer (datasets/): imports nothing from vtrbench.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_LISTINGS: dict[tuple[str, int, int], frozenset[str]] = {}


def forget_listings() -> None:
    """Drop the folder listings of :func:`video_path`; each dataset load starts afresh (a file
    added within the folder's timestamp granularity would not change the cache key)."""
    _LISTINGS.clear()


def names_in(root: Path) -> frozenset[str] | None:
    """The entry names of folder ``root`` (cached while its modification time is unchanged);
    None when it cannot be listed, so that each file is checked on its own."""
    try:
        st = os.stat(root)
        if not stat.S_ISDIR(st.st_mode):
            return frozenset()
        key = (os.fspath(root), st.st_ino, st.st_mtime_ns)
        names = _LISTINGS.get(key)
        if names is None:
            names = frozenset(os.listdir(root))
            if len(_LISTINGS) >= 256:  # LSMDC has one folder per movie
                _LISTINGS.clear()
            _LISTINGS[key] = names
        return names
    except OSError:
        return None
