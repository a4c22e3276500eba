"""The files behind ``sqlite:///FILE`` and ``journal:FILE`` study storages, checked before Optuna opens them.

Optuna turns any file it is handed into a study: a 0-byte file given to ``tune --status`` receives
its schema (112 KiB written by a read-only command), ``journal:/dev/null`` ends in ``os.fsync``'s
OSError, and a damaged SQLite file surfaces as "An exception is raised during the commit". Here each
of those is one line naming the file, and read-only commands get a read-only URL (SQLite opens the
file with ``mode=ro``, so not one byte or timestamp of it can change).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from vtrbench.errors import VtrbenchError

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database
SQLITE_DAMAGED = "this file is damaged (not a readable SQLite study)"
JOURNAL_DAMAGED = "this file is damaged (not a readable Optuna journal)"
# pseudo-file systems: their "regular" files are kernel interfaces, never a place for a study
PSEUDO_ROOTS = ("/proc", "/sys")
# words of SQLite's own messages for a file that is not (or no longer) a database
SQLITE_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "disk image")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL; None for other URLs, in-memory and URI-form SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///") :].split("?", 1)[0]
    if not rest or rest == ":memory:" or rest.startswith("file:"):
        return None
    return Path(rest)


def journal_path(url: str) -> Path | None:
    return Path(url[len("journal:") :]) if url.startswith("journal:") else None


def read_only_url(url: str) -> str:
    """``url`` opened read-only where the storage allows it (SQLite files: ``mode=ro``)."""
    path = sqlite_path(url)
    if path is None:
        return url
    return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"


def _refuse(shown: str, why: str) -> VtrbenchError:
    return VtrbenchError(f"cannot open the study storage {shown}: {why}")


def _check_place(path: Path, shown: str, *, read_only: bool) -> bool:
    """Refuse what cannot hold a study; True when the file exists (and is a regular file)."""
    resolved = Path(os.path.realpath(path))
    if any(resolved == Path(r) or Path(r) in resolved.parents for r in PSEUDO_ROOTS):
        raise _refuse(
            shown, f"{resolved} is on a kernel pseudo-file system ({resolved.parts[1]}), not a file"
        )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if read_only:
            raise _refuse(shown, "study file not found") from None
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise _refuse(shown, f"folder {parent} does not exist") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise _refuse(shown, f"folder {parent} is not writable") from None
        return False
    except OSError as e:
        raise _refuse(shown, f"cannot read it ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise _refuse(shown, "is a folder, not a study file")
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(shown, "not a regular file (a device, pipe or socket cannot hold a study)")
    if not os.access(path, os.R_OK):
        raise _refuse(shown, "not readable")
    if not read_only and not os.access(path, os.W_OK):
        raise _refuse(shown, "not writable")
    return True


def check_sqlite_file(path: Path, shown: str, *, read_only: bool) -> None:
    """A study's SQLite file: absent (a writing command creates it), or a whole SQLite database.

    Read-only commands refuse an absent or empty file (Optuna would write its schema into it)."""
    if not _check_place(path, shown, read_only=read_only):
        return
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if not head:
        if read_only:
            raise _refuse(shown, "an empty file, not a study")
        return  # a writing command may make a study in an empty file, as SQLite itself does
    if head != SQLITE_MAGIC:
        raise _refuse(shown, "not an SQLite study file")
    problem = _sqlite_check(path)
    if problem is not None:
        raise _refuse(shown, problem)


def _sqlite_check(path: Path) -> str | None:
    """SQLite's own ``quick_check`` (every page's structure), read-only; None when the file passes."""
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=120)  # another worker's write lock: wait for it
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        if any(w in str(e).lower() for w in SQLITE_DAMAGE_WORDS):
            return SQLITE_DAMAGED
        return f"cannot read it ({e})"
    return None if rows == [("ok",)] else SQLITE_DAMAGED


def check_journal_file(path: Path, shown: str, *, read_only: bool) -> None:
    """A journal file: absent (a writing command creates it) or a regular file; read-only commands
    refuse an absent one (Optuna would create it)."""
    _check_place(path, shown, read_only=read_only)


def check_storage_files(url: str, *, read_only: bool) -> None:
    """The file behind a SQLite or journal storage URL, before Optuna is handed it (others: nothing).
    Errors name the file as given (a device or a folder is only recognisable by its whole path)."""
    sqlite = sqlite_path(url)
    if sqlite is not None:
        check_sqlite_file(sqlite, str(sqlite), read_only=read_only)
    journal = journal_path(url)
    if journal is not None:
        check_journal_file(journal, url, read_only=read_only)


def damaged_text(url: str) -> str | None:
    """The "damaged" sentence of a file storage (None for database servers)."""
    if sqlite_path(url) is not None:
        return SQLITE_DAMAGED
    if journal_path(url) is not None:
        return JOURNAL_DAMAGED
    return None
