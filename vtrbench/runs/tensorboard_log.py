"""``--tensorboard DIR``: each training run's per-epoch history as TensorBoard scalars.

An optional extra (``pip install 'vtrbench[tensorboard]'``): torch's own writer
(``torch.utils.tensorboard.SummaryWriter``) needs the ``tensorboard`` package, imported here only
when a run asks for event files. Each run writes into ``DIR/<run_id>/`` (the result file's name), so
``tensorboard --logdir DIR`` lists runs by the same names as ``results/``, seeds side by side:

- ``train/loss``, ``train/lr``, ``train/logit_scale``, ``train/pairs_per_s`` at step = epoch;
- ``val/t2v_R@1``, ``val/v2t_R@1``, ``val/RSum`` and ``val/objective`` (t2v R@1 + v2t R@1, what
  ``vtrbench tune`` maximises) when the run holds out validation videos (``--val-fraction``).

The values are the history entries the result file records, written as each epoch ends (flushed, so
a running job can be watched). A rerun (``--overwrite always``) starts its writer with
``purge_step=1``: TensorBoard hides the earlier attempt's events instead of drawing both.
The event files are a view of the history, never part of a run's identity: config, config hash and
run id are the same with or without them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vtrbench._imports import try_import
from vtrbench.errors import VtrbenchError

INSTALL_HINT = "--tensorboard needs the tensorboard package: pip install 'vtrbench[tensorboard]'"
TRAIN_SCALARS = ("loss", "lr", "logit_scale", "pairs_per_s")


def _summary_writer_class() -> Any:
    # torch's writer refuses to import without the tensorboard package; ask for it by name first
    # so that a missing package is one line naming the extra
    try_import("tensorboard", hint=INSTALL_HINT)
    return try_import("torch.utils.tensorboard", hint=INSTALL_HINT).SummaryWriter


def check_log_folder(folder: Path) -> Path:
    """Refuse, before any training, a ``--tensorboard`` folder that cannot hold event files: the
    package missing, a file in its place or above it, a folder this process cannot write in (probed
    for real: permission bits say nothing for root or about read-only mounts). Creates the folder."""
    _summary_writer_class()
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise VtrbenchError(f"--tensorboard {folder} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".vtrbench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise VtrbenchError(f"--tensorboard {folder}: cannot write there ({why})") from None
    return folder


class EpochLog:
    """``fit``'s ``on_epoch`` callback writing each history entry as scalars; :meth:`close` it."""

    def __init__(self, folder: Path, run_id: str) -> None:
        writer_class = _summary_writer_class()
        self.path = Path(folder) / run_id
        try:
            if self.path.exists() and not self.path.is_dir():
                raise VtrbenchError(f"--tensorboard: {self.path} is a file, not a folder")
            self.writer = writer_class(log_dir=str(self.path), purge_step=1)
        except OSError as e:
            raise VtrbenchError(f"--tensorboard: cannot write {self.path} ({e.strerror or e})") from None

    def __call__(self, entry: dict[str, Any]) -> None:
        step = int(entry["epoch"])
        for name in TRAIN_SCALARS:
            if name in entry:
                self.writer.add_scalar(f"train/{name}", float(entry[name]), step)
        val = entry.get("val") or {}
        for name, value in val.items():
            # "/" is TensorBoard's group separator: t2v/R@1 would open a group of its own
            self.writer.add_scalar(f"val/{name.replace('/', '_')}", float(value), step)
        if "t2v/R@1" in val and "v2t/R@1" in val:
            self.writer.add_scalar("val/objective", float(val["t2v/R@1"]) + float(val["v2t/R@1"]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def epoch_log(folder: Path | None, run_id: str) -> EpochLog | None:
    """An :class:`EpochLog` for ``run_id`` under ``folder``, or None without ``--tensorboard``."""
    return None if folder is None else EpochLog(Path(folder), run_id)
