"""Reading the files users write by hand (grid files, ``tune --space`` files), and checking, before
any work, that an output can be written (:func:`check_output_path`, every command's ``--output``).

Ground layer: imports only :mod:`vtrbench.errors`. Every way a read or the check can fail is one
:class:`~vtrbench.errors.VtrbenchError` line that names the file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


# Grid and search-space files are a few hundred bytes; anything this large is a wrong path (a video,
# /dev/zero), and reading it whole would fill the memory of a shared machine before failing.
MAX_TOML_BYTES = 1024 * 1024


def read_toml_file(path: Path, *, name: str, at: str) -> dict[str, Any]:
    """A TOML file as a dict; every way it can fail is one VtrbenchError line (grid files and
    ``tune --space`` files). ``name``: what the file is ("grid file"); ``at``: how a problem
    inside it names the file. Only regular files of at most :data:`MAX_TOML_BYTES` are read."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not stat.S_ISREG(mode):
            raise VtrbenchError(f"{name} {path} is not a regular file (a device, pipe or socket)")
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
        if len(data) > MAX_TOML_BYTES:
            raise VtrbenchError(f"{at}: larger than {MAX_TOML_BYTES // 1024} KiB; not a {name}")
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise VtrbenchError(f"{name} not found: {path}") from None
    except IsADirectoryError:
        raise VtrbenchError(f"{name} {path} is a folder") from None
    except UnicodeDecodeError as e:
        raise VtrbenchError(f"{at}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise VtrbenchError(f"cannot read {name} {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise VtrbenchError(f"{at}: invalid TOML ({e})") from None
    except (RecursionError, MemoryError):
        raise VtrbenchError(f"{at}: invalid TOML (nested too deeply)") from None


def check_output_path(path: str | os.PathLike[str], option: str, *, inside: str | None = None) -> None:
    """Refuse an output that cannot be written, before any work, by writing there.

    ``inside``: ``path`` is a folder (made if needed) and the command writes the file ``inside`` in it
    (``browse --output DIR`` writes ``DIR/index.html``); otherwise ``path`` is the file itself.

    An empty path (an unset shell variable) is refused rather than read as the current folder.
    ``os.access`` is not enough: it is always true for root, also on /proc and /sys and read-only
    mounts. So the check creates what the write will create and removes it again: the file itself
    (opened for update without truncating when it exists, else created and deleted), a temporary
    file beside it (the atomic write's), and any missing parent folders (deleted afterwards).
    """
    if not str(path).strip():
        raise VtrbenchError(f"{option}: needs a path, got an empty one")
    if "\x00" in str(path):
        raise VtrbenchError(f"{option}: a path cannot hold a NUL byte")
    given = Path(path)
    if inside is not None:
        if given.exists() and not given.is_dir():
            raise VtrbenchError(f"{option} {given}: is a file, not a folder")
        target = given / inside
    else:
        target = given
    if target.is_dir():
        what = f"{target} is a folder in the place of the file it writes" if inside else "is a folder"
        raise VtrbenchError(f"{option} {given}: {what}; give {'another folder' if inside else 'a file name'}")
    if target.exists() and not target.is_file():
        # The write replaces the path with a new file: never a device, pipe or socket (/dev/null).
        raise VtrbenchError(f"{option} {given}: {target} is not a regular file; give another path")
    _probe_write(target, given, option)


def _probe_write(target: Path, given: Path, option: str) -> None:
    """Create ``target``'s missing folders, the file (or open it for update) and a temporary file beside
    it, then remove what was made; an OSError is one line naming ``option`` and ``given``."""
    parent = target.parent if str(target.parent) else Path(".")
    missing: list[Path] = []
    probe = parent
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        missing.append(probe)
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise VtrbenchError(f"{option} {given}: {probe} is a file, not a folder")
    try:
        for folder in reversed(missing):
            folder.mkdir()
        try:
            if target.exists():
                with open(target, "r+b"):
                    pass
            else:
                with open(target, "xb"):
                    pass
                target.unlink()
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
            os.close(fd)
            os.unlink(tmp)
        finally:
            for folder in missing:  # deepest first; only the folders this check made
                with contextlib.suppress(OSError):
                    folder.rmdir()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise VtrbenchError(f"{option} {given}: cannot write in {parent} ({reason})") from None


def printable(text: str, keep: str = "") -> str:
    """``text`` for a terminal: every non-printable character (ESC, BEL, NUL, CR, a zero-width or
    line-separator character...) written as its Python escape (``\\x1b``), so that a caption, label,
    query or path holding ``\\x1b[31m`` shows as text and never drives the terminal. ``keep``: the
    characters left as they are (``"\\n"`` for a multi-line table)."""
    return "".join(c if c.isprintable() or c in keep else ascii(c)[1:-1] for c in text)
