"""Reading the files users write by hand (grid files, ``tune --space`` files).

Ground layer: imports only :mod:`vtrbench.errors`. Every way a read can fail is one
:class:`~vtrbench.errors.VtrbenchError` line that names the file.
"""

from __future__ import annotations

import stat
import sys
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
