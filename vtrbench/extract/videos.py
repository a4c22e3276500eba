"""The video loop of extraction: decoded frames from the workers, encoded in batches that never
cross a chunk, each chunk written as one part file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench.cache import STATUS_FAILED, STATUS_OK, Manifest, part_identity, part_path, write_part
from vtrbench.config import ExtractConfig

# called through the module, so that a test or benchmark that replaces encode.encode_frames reaches it
from vtrbench.extract import encode
from vtrbench.extract.options import ExtractSummary, RunOptions
from vtrbench.extract.progress import progress_bar, refuse_nonfinite
from vtrbench.extract.workers import DecodeJobs, auto_batch_size, auto_workers, remember_parent, worker_init


def run_videos(
    clip: Any,
    manifest: Manifest,
    config: ExtractConfig,
    output: Path,
    chunks: list[int],
    opts: RunOptions,
    summary: ExtractSummary,
    console: Any,
) -> None:
    """Decode (in worker processes) and encode the videos of ``chunks``; one part file per chunk."""
    if not chunks:
        return
    encode_frames = encode.encode_frames
    device = torch.device(opts.device)
    cuda = device.type == "cuda"
    ranges = manifest.chunks("videos")
    order = [i for k in chunks for i in range(*ranges[k])]
    workers = auto_workers() if opts.workers < 0 else opts.workers
    batch = opts.batch_size or auto_batch_size(opts.device, config.image_size)
    all_windows = manifest.video_windows or [[None, None]] * len(manifest.video_paths)
    jobs = DecodeJobs(
        [manifest.video_paths[i] for i in order],
        config,
        torch.float16 if cuda else torch.float32,
        [all_windows[i] for i in order],
    )
    remember_parent()
    loader = torch.utils.data.DataLoader(
        jobs,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=cuda,
        worker_init_fn=worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    T, D = config.max_frames, clip.embed_dim
    with progress_bar(opts.progress, console) as progress:
        task = progress.add_task("videos", total=len(order), info="", unit="videos")
        items = iter(loader)  # starts the decoding workers: after the first line, which says what starts
        t0, frames_done = time.perf_counter(), 0
        for k in chunks:
            start, end = ranges[k]
            n = end - start
            chunk = ChunkArrays(n, T, D)
            chunk.keep_thumbnails = not config.no_thumbnails
            for j in range(n):
                _, pix, fidx, err, sha, thumb = next(items)
                chunk.sha256[j] = sha
                chunk.thumbnail[j] = thumb
                if err or pix is None or pix.shape[0] == 0:
                    chunk.status[j] = STATUS_FAILED
                    chunk.errors[j] = err or "no frames decoded"
                else:
                    t = min(pix.shape[0], T)
                    chunk.mask[j, :t] = True
                    chunk.findex[j, :t] = fidx[:t]
                    chunk.add(j, pix[:t], device)
                    frames_done += t
                if chunk.pending_frames >= batch:
                    chunk.flush(clip, device, config.patch_tokens, encode_frames)
                elapsed = max(time.perf_counter() - t0, 1e-9)
                progress.update(
                    task,
                    advance=1,
                    info=f"{frames_done / elapsed:.0f} frames/s",
                )
            chunk.flush(clip, device, config.patch_tokens, encode_frames)
            refuse_nonfinite(chunk.nonfinite_rows(), start, manifest.video_ids, "video", config)
            write_part(
                part_path(output, "videos", k),
                chunk.arrays(config.patch_tokens),
                part_identity(manifest, "videos", k),
            )
        summary.frames = frames_done


class ChunkArrays:
    """The arrays of one video part, filled as frames are encoded (batches never cross chunks)."""

    def __init__(self, n: int, frames_per_video: int, dim: int) -> None:
        self.n, self.T, self.D = n, frames_per_video, dim
        self.frames = np.zeros((n, frames_per_video, dim), dtype=np.float16)
        self.mask = np.zeros((n, frames_per_video), dtype=bool)
        self.findex = np.full((n, frames_per_video), -1, dtype=np.int32)
        self.status = np.full(n, STATUS_OK, dtype=np.int8)
        self.errors = np.array([""] * n, dtype=object)
        self.sha256 = np.array([""] * n, dtype=object)
        self.thumbnail = np.array([""] * n, dtype=object)  # base64 JPEG strip, "" if none
        self.keep_thumbnails = False  # set from the config: a part holds /thumbnail unless --no-thumbnails
        self.patches: np.ndarray | None = None
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.pending_frames = 0

    def add(self, j: int, pixels: torch.Tensor, device: torch.device) -> None:
        """Queue video ``j``'s (t, 3, S, S) frames for the next batch.

        On CUDA the frames (pinned by the DataLoader) are copied to the GPU right away and
        asynchronously, so the copy overlaps the wait for the next video; concatenating
        pinned tensors on the host would give pageable memory and a synchronous copy.
        """
        self.pending.append((j, pixels.to(device, non_blocking=True)))
        self.pending_frames += pixels.shape[0]

    def flush(self, clip: Any, device: torch.device, patch_tokens: bool, encode_frames: Any) -> None:
        if not self.pending:
            return
        pix = torch.cat([p for _, p in self.pending]).to(device, non_blocking=True)
        emb, tok = encode_frames(clip, pix, patch_tokens=patch_tokens)
        emb_np = emb.cpu().numpy().astype(np.float16)
        tok_np = tok.cpu().numpy().astype(np.float16) if tok is not None else None
        if tok_np is not None and self.patches is None:
            self.patches = np.zeros((self.n, self.T, *tok_np.shape[1:]), dtype=np.float16)
        at = 0
        for j, p in self.pending:
            t = p.shape[0]
            self.frames[j, :t] = emb_np[at : at + t]
            if tok_np is not None and self.patches is not None:
                self.patches[j, :t] = tok_np[at : at + t]
            at += t
        self.pending, self.pending_frames = [], 0

    def nonfinite_rows(self) -> np.ndarray:
        """Rows whose stored (float16) features hold NaN or inf: an overflow in the encoder."""
        bad = ~np.isfinite(self.frames).all(axis=(1, 2))
        if self.patches is not None:
            bad |= ~np.isfinite(self.patches).reshape(self.n, -1).all(axis=1)
        return np.flatnonzero(bad)

    def arrays(self, patch_tokens: bool) -> dict[str, np.ndarray]:
        out = {
            "frames": self.frames,
            "frame_mask": self.mask,
            "frame_index": self.findex,
            "status": self.status,
            "error": self.errors,
            "file_sha256": self.sha256,
        }
        if self.keep_thumbnails:
            out["thumbnail"] = self.thumbnail
        if patch_tokens:
            # every video of the chunk failed: keep the layout with zero patches
            out["patches"] = (
                self.patches
                if self.patches is not None
                else np.zeros((self.n, self.T, 0, self.D), dtype=np.float16)
            )
        return out
