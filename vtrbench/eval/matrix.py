"""The caption x video score matrix of one evaluation (:class:`ScoreMatrix`): every pair scored once.

One pass of the caption scorer fills it, and t2v (its rows), v2t (its columns), DSL's normalisers
and every post-processing read it; each QB-Norm bank is scored against the gallery once (by the
banks' own pass, :func:`vtrbench.eval.postprocess.bank_statistics`). The matrix is held in memory up
to ``matrix_bytes`` (default :data:`MATRIX_BYTES` = 1 GiB, or ``$VTRBENCH_EVAL_MATRIX_BYTES`` for a
whole process such as a CLI run: 10k x 10k float32 is 400 MB); beyond that it is written to a
temporary file (``tmp_dir`` or the system temp folder; its free space is checked before scoring, and
the file is removed at the end, also on error or interrupt), in row bands cut into square tiles, so
memory stays O(tile x gallery) with tile = max(chunk_size, 128); where the disk has no room either,
the scores are recomputed for each pass (up to 4 passes). The result's ``score_matrix`` says which;
the counts are identical in all three (tests/eval/test_evaluate_once.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.eval.blocks import chunks
from vtrbench.eval.scoring import Scorer

# Default limit for holding the caption x video score matrix in memory (bytes); beyond it the
# matrix is streamed to a temporary file. 10k x 10k float32 is 400 MB.
MATRIX_BYTES = 1 << 30
# Overrides the default for a whole process (e.g. a CLI run): bytes, or with a K/M/G suffix.
MATRIX_BYTES_ENV = "VTRBENCH_EVAL_MATRIX_BYTES"


def default_matrix_bytes() -> int:
    """The in-memory limit when none is passed: ``$VTRBENCH_EVAL_MATRIX_BYTES`` or :data:`MATRIX_BYTES`."""
    text = os.environ.get(MATRIX_BYTES_ENV, "").strip()
    if not text:
        return MATRIX_BYTES
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
    number = text[:-1] if scale > 1 else text
    if not number.isdigit():
        raise VtrbenchError(
            f"{MATRIX_BYTES_ENV}={text!r}: give a number of bytes, optionally with K, M or G (e.g. 2G)"
        )
    return int(number) * scale


# Row band / column tile of the on-disk matrix: at least this many rows, so that small chunk sizes
# (pairwise heads use one block side) do not turn into millions of tiny reads.
_MIN_TILE = 128


class ScoreMatrix:
    """The caption x video raw scores of one evaluation, each pair scored exactly once.

    Built by one pass of the caption scorer over ``chunk_size``-row chunks. Held as one tensor on
    the scorer's device when it takes at most ``max_bytes``; otherwise written to a temporary file
    in ``tmp_dir`` (default: the system's temp folder) as row bands cut into square tiles, so that
    a band of rows (t2v) and a band of columns (v2t) are each a few contiguous reads, and memory
    stays O(tile x gallery). The file is removed by :meth:`close` (also on error: use ``with``).
    Reads go through ``readinto`` rather than ``np.memmap`` so that the pages stay in the page
    cache and are not charged to the process's resident memory. When the temporary folder has no
    room for the file either, nothing is refused: the scores are computed again for each pass
    (a first pass for the tie scale, DSL's normalisers, t2v by rows, v2t by columns), as
    before score-once; ``kind`` says which of the three happened.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        chunk_size: int,
        max_bytes: int = MATRIX_BYTES,
        tmp_dir: str | os.PathLike[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.n_rows, self.n_cols, self.device = scorer.n_queries, scorer.n_gallery, scorer.device
        self._progress = progress
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._file: Any = None
        self._scorer: Scorer | None = None
        self.data: torch.Tensor | None = None
        self.dtype = scorer.dtype
        # lossless on disk: float64 stays float64, every narrower float fits float32 exactly
        self._np_dtype = np.dtype(np.float64 if self.dtype == torch.float64 else np.float32)
        self.scale = 0.0  # the largest |score|: the tie tolerance's scale (metrics.TIE_RTOL)
        if self.n_rows * self.n_cols * self.dtype.itemsize <= max_bytes:
            try:
                self.data = torch.empty(self.n_rows, self.n_cols, dtype=self.dtype, device=self.device)
            except (MemoryError, RuntimeError):  # under the limit but not available (e.g. GPU memory)
                self.data = None
        if self.data is not None:
            self.chunk = chunk_size
            for rows in chunks(self.n_rows, chunk_size):
                self._seen(scorer.rows_into(rows, self.data[rows]))
            return
        self.chunk = max(chunk_size, _MIN_TILE)
        if not self._open(tmp_dir, self.n_rows * self.n_cols * self._np_dtype.itemsize):
            # no room on disk either: score again for each pass (rows for DSL and t2v, columns for
            # v2t), the scale from a first pass; ties make the last bits of rows vs columns moot
            self.chunk, self._scorer = chunk_size, scorer
            for rows in chunks(self.n_rows, chunk_size):
                self._seen(scorer.rows(rows))
            return
        try:
            for band in chunks(self.n_rows, self.chunk):
                self._write_band(band, self._seen(scorer.rows(band)))
        except BaseException:
            self.close()
            raise

    def _seen(self, raw: torch.Tensor) -> torch.Tensor:
        if self._progress is not None:
            self._progress(raw.shape[0])
        # a max is exact and order-free, so the scale does not depend on the chunks
        low, high = torch.aminmax(raw)
        self.scale = max(self.scale, float(high), -float(low))
        return raw

    def _open(self, tmp_dir: str | os.PathLike[str] | None, need: int) -> bool:
        """Create the temporary file; False (nothing left behind) when the disk has no room for it."""
        try:
            self._dir = tempfile.TemporaryDirectory(prefix="vtrbench-scores-", dir=tmp_dir)
        except OSError as e:
            raise VtrbenchError(
                f"cannot create a temporary folder for the score matrix in {tmp_dir or tempfile.gettempdir()}"
                f" ({e.strerror or e}); set TMPDIR or tmp_dir to a writable folder"
            ) from None
        if shutil.disk_usage(self._dir.name).free < need + (256 << 20):
            self.close()
            return False
        self._file = open(os.path.join(self._dir.name, "scores.bin"), "w+b")  # noqa: SIM115 - closed in close()
        return True

    def _tile_offset(self, band: slice, cols: slice) -> int:
        h = band.stop - band.start
        return (band.start * self.n_cols + h * cols.start) * self._np_dtype.itemsize

    def _write_band(self, band: slice, raw: torch.Tensor) -> None:
        a = raw.detach().to("cpu", torch.float64 if self._np_dtype == np.float64 else torch.float32).numpy()
        self._file.seek(self._tile_offset(band, slice(0, 0)))
        for cols in chunks(self.n_cols, self.chunk):
            self._file.write(np.ascontiguousarray(a[:, cols]).tobytes())

    def _read_tile(self, band: slice, cols: slice) -> np.ndarray:
        tile = np.empty((band.stop - band.start, cols.stop - cols.start), dtype=self._np_dtype)
        self._file.seek(self._tile_offset(band, cols))
        self._file.readinto(memoryview(tile).cast("B"))
        return tile

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device, self.dtype)

    def row_chunks(self) -> list[slice]:
        return chunks(self.n_rows, self.chunk)

    def col_chunks(self) -> list[slice]:
        return chunks(self.n_cols, self.chunk)

    def rows(self, rows: slice) -> torch.Tensor:
        """``(n, Nv)`` raw scores of captions ``rows`` (a slice of :meth:`row_chunks` on disk)."""
        if self.data is not None:
            return self.data[rows]
        if self._scorer is not None:
            return self._scorer.rows(rows)
        out = np.empty((rows.stop - rows.start, self.n_cols), dtype=self._np_dtype)
        for cols in self.col_chunks():
            out[:, cols] = self._read_tile(rows, cols)
        return self._to_device(out)

    def cols(self, cols: slice) -> torch.Tensor:
        """``(n, Nq)`` raw scores of videos ``cols`` with every caption (v2t orientation)."""
        if self.data is not None:
            # a contiguous copy (n x Nq) so that every post-processing runs on dense rows, transposed
            # 512 caption rows at a time: ~3x faster than one strided copy of the whole column block
            block = self.data[:, cols]
            out = torch.empty(block.shape[1], block.shape[0], dtype=block.dtype, device=block.device)
            for part in chunks(block.shape[0], 512):
                out[:, part] = block[part].T
            return out
        if self._scorer is not None:
            return self._scorer.columns(cols)
        out = np.empty((cols.stop - cols.start, self.n_rows), dtype=self._np_dtype)
        for band in self.row_chunks():
            out[:, band] = self._read_tile(band, cols).T
        return self._to_device(out)

    @property
    def kind(self) -> str:
        """Where the scores live: ``memory``, ``disk`` (a temporary file) or ``recomputed`` per pass."""
        if self.data is not None:
            return "memory"
        return "recomputed" if self._scorer is not None else "disk"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self.data = None

    def __enter__(self) -> ScoreMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
