"""The decode side of extraction: one job per video (decode, sample, preprocess, hash, thumbnail),
run by DataLoader worker processes, and the automatic worker and batch counts."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import stat
import sys
from pathlib import Path

import numpy as np
import torch

from vtrbench.config import ExtractConfig
from vtrbench.extract.decode import DecodeError, decode_video
from vtrbench.extract.locks import close_inherited_locks
from vtrbench.extract.preprocess import preprocess_frames
from vtrbench.extract.thumbnails import thumbnail_strip

# The pid of the process that started the decode workers (see die_with_parent).
_parent_pid = 0


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, hex; "" when it cannot be read (the decode error says why).

    Only regular files are read: a link to /dev/zero never ends and a named pipe blocks forever.
    """
    h = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return ""
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def auto_workers() -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # One core stays with the encoder; decoding is cheap per frame, so a few workers suffice.
    return max(1, min(8, n - 1))


def auto_batch_size(device: str, image_size: int) -> int:
    if device.startswith("cuda"):
        return 512 if image_size <= 224 else 128
    return 64


class DecodeJobs(torch.utils.data.Dataset):
    """One item per video: decoded, sampled and preprocessed frames, or the reason it failed."""

    def __init__(
        self,
        paths: list[str],
        config: ExtractConfig,
        out_dtype: torch.dtype,
        windows: list[list[float | None]] | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.out_dtype = out_dtype
        self.windows = windows or [[None, None]] * len(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, np.ndarray | None, str, str, str]:
        """(position, pixels, frame numbers, error, sha256 of the file bytes, thumbnail strip)."""
        c = self.config
        # Hashed here, in the worker, so train/test overlap can later be checked by content.
        sha = file_sha256(self.paths[i])
        start_s, end_s = self.windows[i]
        try:
            video = decode_video(
                self.paths[i],
                rate=c.fps,
                max_frames=c.max_frames,
                sampling=c.sampling,
                start_s=start_s,
                end_s=end_s,
            )
            pixels = preprocess_frames(
                video.frames,
                c.image_size,
                tuple(c.image_mean),
                tuple(c.image_std),
                interpolation=c.interpolation,
                resize_mode=c.resize_mode,
                out_dtype=self.out_dtype,
            )
            thumb = ""
            if not c.no_thumbnails:
                thumb = thumbnail_strip(video.frames[: c.max_frames])
            return i, pixels, np.asarray(video.frame_index, dtype=np.int32), "", sha, thumb
        except DecodeError as e:
            # the path is already in /videos/path; the stored error is the reason alone
            return i, None, None, e.reason, sha, ""
        except Exception as e:  # a broken file must not stop the run; the reason is kept
            return i, None, None, f"unexpected error: {type(e).__name__}: {e}", sha, ""


def remember_parent() -> None:
    """Record this process as the parent of the decode workers it is about to start."""
    global _parent_pid
    _parent_pid = os.getpid()


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: one thread, no inherited locks, dies with its parent."""
    torch.set_num_threads(1)
    close_inherited_locks()
    die_with_parent()


def die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies (even by kill -9); elsewhere, rely on torch."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if _parent_pid and os.getppid() != _parent_pid:
        os._exit(1)  # the parent died before the request took effect
