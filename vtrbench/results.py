"""The result file: one JSON per (run, seed). ``report`` reads nothing else.

The schema is documented key by key in results/README.md. Writes are atomic
(temporary file + rename), so a crash never leaves a half-written result that a
later ``report`` would read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError

SCHEMA = 1
POSTPROCESSING = ("raw", "dsl", "qbnorm")
TRANSDUCTIVE = {"raw": False, "dsl": True, "qbnorm": False}
DIRECTIONS = ("t2v", "v2t")
METRICS = ("R@1", "R@5", "R@10", "R@50", "MdR", "MnR")
HIGHER_IS_BETTER = {
    "R@1": True,
    "R@5": True,
    "R@10": True,
    "R@50": True,
    "MdR": False,
    "MnR": False,
    "RSum": True,
}


def run_id(dataset: str, head: str, loss: str, config_hash: str, seed: int) -> str:
    return f"{dataset}.{head}.{loss}.{config_hash[:8]}.s{seed}"


def result_path(results_dir: Path, dataset: str, rid: str) -> Path:
    return Path(results_dir) / dataset / f"{rid}.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text twin of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a result dict as JSON atomically (a crash never leaves a half-written file)."""
    if result.get("schema") != SCHEMA:
        raise ValueError("result dict must carry schema = results.SCHEMA")
    atomic_write_text(path, json.dumps(result, indent=1, sort_keys=False, allow_nan=False) + "\n")


def read_result(path: Path) -> dict[str, Any]:
    """Read and check one result file; a malformed file is a VtrbenchError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VtrbenchError(f"result file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise VtrbenchError(f"{path}: not a valid result JSON ({e})") from None
    if not isinstance(data, dict) or "run_id" not in data or "metrics" not in data:
        raise VtrbenchError(f"{path}: not a vtrbench result file (no run_id/metrics)")
    if data.get("schema") != SCHEMA:
        raise VtrbenchError(f"{path}: result schema {data.get('schema')!r}, this vtrbench reads {SCHEMA}")
    data["_path"] = str(path)
    return data


def discover(paths: Iterable[Path]) -> list[Path]:
    """Result files under the given files/folders (recursively), sorted, hidden temp files skipped."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(q for q in p.rglob("*.json") if not q.name.startswith("."))
        elif p.is_file():
            found.append(p)
        else:
            raise VtrbenchError(f"no such file or folder: {p}")
    return sorted(set(found))
