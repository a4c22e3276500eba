"""Retrieval evaluation from embeddings or a pairwise head, with inference post-processing.

Every (caption, video) pair is scored exactly once per evaluation: one pass of the scorer fills
the caption x video matrix (:class:`ScoreMatrix`), and t2v (its rows), v2t (its columns), DSL's
normalisers and every post-processing read it; each QB-Norm bank is scored against the gallery once.
The matrix is held in memory up to ``matrix_bytes`` (default :data:`MATRIX_BYTES` = 1 GiB, or
``$VTRBENCH_EVAL_MATRIX_BYTES`` for a whole process such as a CLI run: 10k x 10k
float32 is 400 MB); beyond that it is written to a temporary file (``tmp_dir`` or the system temp
folder; its free space is checked before scoring, and the file is removed at the end, also on error
or interrupt), in row bands cut into square tiles, so memory stays O(tile x gallery) with
tile = max(chunk_size, 128); where the disk has no room either, the scores are recomputed for each
pass (up to 4 passes). The result's ``score_matrix`` says which; the counts are identical in all
three (tests/test_evaluate_once.py). Queries are
ranked ``chunk_size`` rows at a time; each chunk is reduced to per-query tie counts and top-k
(:mod:`vtrbench.metrics`) and dropped.

Where the raw scores come from is a :class:`Scorer`: embeddings of a factorised head
(:func:`evaluate_embeddings`, one matmul per chunk) or the block scorer of a pairwise head
(:func:`evaluate_pairwise`: each chunk is scored in caption x video blocks, so the head's
memory is that of one block). Everything below sees only ``(chunk, gallery)`` raw scores.
The post-processings are a table (:data:`POSTPROCESSORS`): each is a ``prepare`` from the whole
matrix and the bank scores, and an ``apply`` to a chunk of query rows.

Post-processings, reported side by side (``results.TRANSDUCTIVE`` says which one
sees all test queries at once):

- ``raw``: the similarity ``s = text_emb @ video_emb.T`` (cosine when the caller
  passes L2-normalised embeddings).
- ``dsl`` (CAMoE inference, transductive): with ``S = logit_scale * s``,
  ``S' = S * softmax(S / tau, dim=0)`` over the FULL query x gallery matrix, i.e.
  each gallery item is normalised over all test queries. t2v uses S; v2t applies
  the same rule to ``S.T`` (for each caption, a softmax over the videos).
- ``qbnorm`` (Bogolin et al., CVPR 2022, dynamic inverted softmax, inductive): a
  bank of training queries is scored against the test gallery; hubs are the
  gallery items that are top-1 for at least one bank query. A test query whose
  raw top-1 is a hub gets ``exp(beta s_ij) / sum_b exp(beta bank_bj)``; other rows
  stay raw. t2v uses a bank of training captions over the test videos; v2t a bank
  of training videos over the test captions. Rows are ranked in log space
  (``beta s_ij - logsumexp_b``), which orders them exactly as the exponentials
  without overflow, and a row is either all normalised or all raw. Ties for a
  top-1 count every tied item: a tie can make several items hubs, and a query is
  normalised if any of its tied top items is a hub.
- ``is-bank``/``is-test`` (inverted softmax), ``csls-bank``/``csls-test`` (CSLS), ``dsl-bank`` (DSL's
  prior over the bank) and ``sinkhorn``: the hubness family of :mod:`vtrbench.postprocess` (its
  docstring gives each equation, its tie bound and where vtrbench extends a method). All bank-based
  statistics (qbnorm's too) come from one pass over each bank (:func:`postprocess.bank_statistics`).

For v2t with several captions per video, the ``clip4clip`` grouping (max over a
video's captions) is applied to the post-processed video x caption scores, and
``any-caption`` ranks the post-processed captions directly.

Post-processed scores are computed in float64; the normalisers are accumulated in
float64 and rounded to float32, which makes them independent of the summation
order (hence of ``chunk_size``) and equal for gallery items with equal values, so
exact ties survive post-processing.

Ties with a tolerance: the last bits of a raw score depend on how the work was cut (a pairwise
head's block shape, the rows of a matmul chunk: up to ~3 float32 ulps of the largest score), so
exact equality would make near-ties (reversed twins under an order-free head) tied or not
depending on ``eval_block``/``chunk_size``. Every raw score therefore carries the rounding bound
``delta = metrics.TIE_RTOL * max|s|`` (2^-20 of the largest |score| of the test matrix; the max is
exact and order-free), and each post-processing returns, next to its scores, the bound they carry
(``apply -> (scores, slack)``): ``delta`` for raw scores; ``w * L * delta * (1 + 2 |L s| / tau)`` for
DSL (``w`` the softmax weight, first order in the errors of ``L s`` and of the normaliser); ``2 beta
delta`` for QB-Norm-normalised rows. Two scores are tied when they differ by at most the sum of their
bounds (:func:`vtrbench.metrics.gt_counts`), and QB-Norm's hub test (a bank query's top-k) and a
query's top-1 test use the band of two raw scores, ``2 delta``. Counts are then identical for every
block and chunk size (tests/test_evaluate_ties.py); the result records the rule in
``protocol.ties`` and the numbers in ``protocol.tie_tolerance``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from vtrbench import postprocess as pp
from vtrbench.config import check_post_options
from vtrbench.errors import VtrbenchError
from vtrbench.metrics import (
    TIE_POLICY,
    TIE_RTOL,
    TIE_TOLERANCE_POLICY,
    TOPK,
    TieCounts,
    as_tensor,
    check_mdr,
    check_v2t_protocol,
    counts_to_json,
    expected_ranks,
    gt_counts,
    retrieval_metrics,
    rsum,
    topk_indices,
    v2t_counts,
)
from vtrbench.postprocess import BANK_POSTS
from vtrbench.registry import unknown_name_message
from vtrbench.results import POSTPROCESSING

Counter = Callable[[torch.Tensor, torch.Tensor, slice], TieCounts]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _rounded(lse: torch.Tensor) -> torch.Tensor:
    # float64 accumulation, then float32 rounding: see the module docstring.
    return lse.to(torch.float32).to(torch.float64)


class Scorer:
    """Raw similarity of query rows with the whole gallery, computed on demand, chunk by chunk.

    The factorised form (:class:`EmbeddingScorer`) is one matmul per chunk; a pairwise head
    (:class:`PairScorer`) scores the chunk in blocks. Everything downstream (normalisers,
    post-processing, tie counts) sees only ``rows(slice) -> (n, M)``.
    """

    n_queries: int
    n_gallery: int
    device: torch.device
    dtype: torch.dtype = torch.float32  # of the scores ``rows`` returns

    def rows(self, rows: slice) -> torch.Tensor:
        """``(n, M)`` raw scores of query rows ``rows`` with all ``M`` gallery items."""
        raise NotImplementedError

    def rows_into(self, rows: slice, out: torch.Tensor) -> torch.Tensor:
        """:meth:`rows` written into ``out`` (a contiguous ``(n, M)`` view of the score matrix)."""
        out.copy_(self.rows(rows))
        return out

    def columns(self, cols: slice) -> torch.Tensor:
        """``(n, Nq)`` raw scores of gallery items ``cols`` with every query (the transposed side).

        Only used when the score matrix can be neither held nor stored (:class:`ScoreMatrix`).
        """
        raise NotImplementedError


class EmbeddingScorer(Scorer):
    """``queries @ gallery.T``: the fast path of factorised heads."""

    def __init__(self, queries: torch.Tensor, gallery: torch.Tensor) -> None:
        self.queries, self.gallery = queries, gallery
        self.n_queries, self.n_gallery = queries.shape[0], gallery.shape[0]
        self.device = queries.device
        self.dtype = torch.promote_types(queries.dtype, gallery.dtype)

    def rows(self, rows: slice) -> torch.Tensor:
        return self.queries[rows] @ self.gallery.T

    def rows_into(self, rows: slice, out: torch.Tensor) -> torch.Tensor:
        if out.dtype != self.dtype or not out.is_contiguous():
            return out.copy_(self.queries[rows] @ self.gallery.T)
        # straight into the matrix: no chunk-sized temporary and copy
        return torch.matmul(self.queries[rows], self.gallery.T, out=out)

    def columns(self, cols: slice) -> torch.Tensor:
        return self.gallery[cols] @ self.queries.T


class PairScorer(Scorer):
    """Scores of a pairwise head, computed in ``(captions, videos)`` blocks of at most ``block``.

    ``score(text_state, video_state) -> (Bq, Bv)`` scores caption states against video
    states (see :class:`vtrbench.heads.base.PairwiseHead`). With ``queries="videos"`` the
    queries are the videos (v2t, or a bank of videos) and each row block is the transpose of
    a caption x video block. Only one block's intermediates are alive at a time, so the
    head's memory is O(block) for any gallery; the ``(n, M)`` row chunk it returns is the
    same as for factorised heads.
    """

    def __init__(
        self,
        score: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
        text_state: dict[str, torch.Tensor],
        video_state: dict[str, torch.Tensor],
        *,
        block: tuple[int, int],
        queries: str = "captions",
    ) -> None:
        self.score, self.text, self.video = score, text_state, video_state
        self.block = block
        self.transposed = queries == "videos"
        n_t, n_v = _state_len(text_state), _state_len(video_state)
        self.n_queries, self.n_gallery = (n_v, n_t) if self.transposed else (n_t, n_v)
        self.device = next(iter(text_state.values())).device

    def rows(self, rows: slice) -> torch.Tensor:
        return self._blocks(rows, self.transposed)

    def columns(self, cols: slice) -> torch.Tensor:
        return self._blocks(cols, not self.transposed)

    def _blocks(self, rows: slice, videos_first: bool) -> torch.Tensor:
        n = rows.stop - rows.start
        n_other = _state_len(self.text if videos_first else self.video)
        out = torch.empty(n, n_other, dtype=torch.float32, device=self.device)
        q_step, g_step = (self.block[1], self.block[0]) if videos_first else self.block
        for q in _chunks(n, q_step):
            q_rows = slice(rows.start + q.start, rows.start + q.stop)
            q_state = _slice(self.video if videos_first else self.text, q_rows)
            for g in _chunks(n_other, g_step):
                g_state = _slice(self.text if videos_first else self.video, g)
                if videos_first:
                    out[q, g] = self.score(g_state, q_state).T
                else:
                    out[q, g] = self.score(q_state, g_state)
        return out


def _state_len(state: dict[str, torch.Tensor]) -> int:
    return int(next(iter(state.values())).shape[0])


def _slice(state: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in state.items()}


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
            for rows in _chunks(self.n_rows, chunk_size):
                self._seen(scorer.rows_into(rows, self.data[rows]))
            return
        self.chunk = max(chunk_size, _MIN_TILE)
        if not self._open(tmp_dir, self.n_rows * self.n_cols * self._np_dtype.itemsize):
            # no room on disk either: score again for each pass (rows for DSL and t2v, columns for
            # v2t), the scale from a first pass; ties make the last bits of rows vs columns moot
            self.chunk, self._scorer = chunk_size, scorer
            for rows in _chunks(self.n_rows, chunk_size):
                self._seen(scorer.rows(rows))
            return
        try:
            for band in _chunks(self.n_rows, self.chunk):
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
        for cols in _chunks(self.n_cols, self.chunk):
            self._file.write(np.ascontiguousarray(a[:, cols]).tobytes())

    def _read_tile(self, band: slice, cols: slice) -> np.ndarray:
        tile = np.empty((band.stop - band.start, cols.stop - cols.start), dtype=self._np_dtype)
        self._file.seek(self._tile_offset(band, cols))
        self._file.readinto(memoryview(tile).cast("B"))
        return tile

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device, self.dtype)

    def row_chunks(self) -> list[slice]:
        return _chunks(self.n_rows, self.chunk)

    def col_chunks(self) -> list[slice]:
        return _chunks(self.n_cols, self.chunk)

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
            for part in _chunks(block.shape[0], 512):
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


def dsl_normalisers(
    matrix: ScoreMatrix, *, logit_scale: float, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both DSL softmax denominators (log space) from the caption x video matrix.

    Returns:
        ``(per_video, per_caption)``: ``(Nv,)`` logsumexp over all captions of
        ``logit_scale * s / tau`` (t2v) and ``(Nq,)`` logsumexp over all videos (v2t),
        float64 holding float32-rounded values.
    """
    per_video = torch.full((matrix.n_cols,), -torch.inf, dtype=torch.float64, device=matrix.device)
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        z = matrix.rows(rows).to(torch.float64) * (logit_scale / tau)
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return _rounded(per_video), _rounded(per_caption)


def querybank_normalisers(
    scorer: Scorer, *, beta: float, chunk_size: int, k: int = 1, delta: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """QB-Norm statistics of a gallery from a bank of training queries (one pass over the bank).

    Args:
        scorer: bank query (rows) x test gallery raw scores, ``B x M``.

    Returns:
        ``(lse, hubs)``: ``(M,)`` logsumexp over the bank of ``beta * s`` (float64
        holding float32-rounded values) and ``(M,)`` bool, True for items that are
        among the top ``k`` (ties at the k-th score included: within ``2 * delta`` of it, the
        rounding band of two scores) of at least one bank query (the official
        ``get_retrieved_videos(train_test, k)``, default 1).
    """
    lse = torch.full((scorer.n_gallery,), -torch.inf, dtype=torch.float64, device=scorer.device)
    hubs = torch.zeros(scorer.n_gallery, dtype=torch.bool, device=scorer.device)
    for rows in _chunks(scorer.n_queries, chunk_size):
        s = scorer.rows(rows)
        kth = s.amax(1, keepdim=True) if k == 1 else s.topk(min(k, s.shape[1]), dim=1).values[:, -1:]
        hubs |= (s >= kth - 2 * delta).any(0)
        torch.logaddexp(lse, torch.logsumexp(s.to(torch.float64).mul_(beta), dim=0), out=lse)
    return _rounded(lse), hubs


@dataclass(frozen=True)
class EvalOptions:
    logit_scale: float
    tau: float
    beta: float
    chunk_size: int
    qb_k: int
    delta: float = 0.0  # each raw score's rounding bound: TIE_RTOL * the matrix's largest |score|
    # the post-processings of vtrbench.postprocess (defaults: postprocess.POST_DEFAULTS)
    is_beta: float = 20.0
    csls_k: int = 10  # csls-test's k; csls-bank's is csls_k_bank (they differ only below 10 items)
    csls_k_bank: int = 10
    sinkhorn_iters: int = 5
    sinkhorn_eps: float = 0.05


# ---------------------------------------------------------------- the table of post-processings
#
# A post-processing is two functions: ``prepare(matrix, banks, opts) -> (t2v_state, v2t_state)``
# computes what it needs from the whole caption x video matrix (and the banks' scores, each scored
# once), and ``apply(raw, state, opts) -> scores`` turns one chunk of raw query rows into the scores
# that are ranked. Adding one = one entry in POSTPROCESSORS (plus its name in results.POSTPROCESSING
# and results.TRANSDUCTIVE).


def _prepare_none(matrix: ScoreMatrix, banks: Any, opts: EvalOptions) -> tuple[None, None]:
    return None, None


Scored = tuple[torch.Tensor, torch.Tensor]  # (scores, each score's rounding bound, broadcastable)


def _apply_raw(raw: torch.Tensor, state: Any, opts: EvalOptions) -> Scored:
    return raw, torch.full((raw.shape[0], 1), opts.delta, dtype=raw.dtype, device=raw.device)


def _prepare_dsl(matrix: ScoreMatrix, banks: Any, opts: EvalOptions) -> tuple[torch.Tensor, torch.Tensor]:
    return dsl_normalisers(matrix, logit_scale=opts.logit_scale, tau=opts.tau)


def _apply_dsl(raw: torch.Tensor, lse: torch.Tensor, opts: EvalOptions) -> Scored:
    # copy=True: float64 scores are otherwise the matrix itself, and in-place ops would change it
    z = raw.to(torch.float64, copy=True).mul_(opts.logit_scale)
    w = (z / opts.tau).sub_(lse).exp_()  # the softmax weight over the queries
    # first-order bound of z * w when z carries L*delta and lse up to L*delta/tau:
    # w*L*delta + |z*w|*(L*delta/tau + L*delta/tau)
    if opts.delta == 0:  # exact ties (an all-zero matrix, or tolerance switched off)
        return z.mul_(w), torch.zeros((raw.shape[0], 1), dtype=torch.float64, device=raw.device)
    v = z.mul_(w)
    # w*L*delta*(1 + 2|z|/tau) = L*delta*(w + 2|v|/tau), written into w: three passes, one buffer
    slack = w.add_(v.abs(), alpha=2 / opts.tau).mul_(opts.logit_scale * opts.delta)
    return v, slack


def _prepare_qbnorm(
    matrix: ScoreMatrix, banks: tuple[dict[str, Any], dict[str, Any]] | None, opts: EvalOptions
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    # banks: each direction's postprocess.bank_statistics (one pass over the bank for every post)
    assert banks is not None
    return (banks[0]["qb_lse"], banks[0]["qb_hubs"]), (banks[1]["qb_lse"], banks[1]["qb_hubs"])


def _apply_qbnorm(raw: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], opts: EvalOptions) -> Scored:
    bank_lse, hubs = state
    # the query's top-1 items: everything within the rounding band of two scores of the maximum
    top = raw >= raw.amax(1, keepdim=True) - 2 * opts.delta
    normalise = (top & hubs).any(1).nonzero().squeeze(1)
    slack = torch.full((raw.shape[0], 1), opts.delta, dtype=torch.float64, device=raw.device)
    if normalise.numel() == 0:
        return raw, slack.to(raw.dtype)
    s = raw.to(torch.float64, copy=True)  # never write into the score matrix
    s[normalise] = s[normalise].mul_(opts.beta).sub_(bank_lse)
    # beta*s carries beta*delta, the bank's logsumexp up to beta*delta
    slack[normalise] = 2 * opts.beta * opts.delta
    return s, slack


@dataclass(frozen=True)
class PostProcessor:
    prepare: Callable[[ScoreMatrix, Any, EvalOptions], tuple[Any, Any]]
    apply: Callable[[torch.Tensor, Any, EvalOptions], Scored]


POSTPROCESSORS: dict[str, PostProcessor] = {
    "raw": PostProcessor(_prepare_none, _apply_raw),
    "dsl": PostProcessor(_prepare_dsl, _apply_dsl),
    "qbnorm": PostProcessor(_prepare_qbnorm, _apply_qbnorm),
    "is-bank": PostProcessor(pp.prepare_bank("is_lse"), pp.apply_is),
    "is-test": PostProcessor(pp.prepare_is_test, pp.apply_is),
    "csls-bank": PostProcessor(pp.prepare_bank("csls_r"), pp.apply_csls),
    "csls-test": PostProcessor(pp.prepare_csls_test, pp.apply_csls),
    "dsl-bank": PostProcessor(pp.prepare_bank("dsl_lse"), _apply_dsl),
    "sinkhorn": PostProcessor(pp.prepare_sinkhorn, pp.apply_sinkhorn),
}


def postprocess(
    raw: torch.Tensor, post: str, state: Any, *, logit_scale: float, tau: float, beta: float
) -> torch.Tensor:
    """Scores of one chunk after post-processing ``post`` (rows = queries, columns = the whole gallery).

    Args:
        raw: ``(n, M)`` raw similarity of ``n`` queries with all ``M`` gallery items.
        state: what ``POSTPROCESSORS[post].prepare`` computed for this direction.

    Returns:
        ``(n, M)``: ``raw`` itself for ``"raw"``, float64 otherwise; only the order
        within a row is meaningful.
    """
    opts = EvalOptions(logit_scale=logit_scale, tau=tau, beta=beta, chunk_size=1, qb_k=1)
    return POSTPROCESSORS[post].apply(raw, state, opts)[0]


def rank_queries(
    chunks: Sequence[slice],
    read: Callable[[slice], torch.Tensor],
    n_queries: int,
    counter: Counter,
    posts: Sequence[str],
    states: dict[str, Any],
    opts: EvalOptions,
    *,
    topk: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, TieCounts], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Rank query chunks ``read(rows) -> (n, M)`` raw scores; counts, top-k indices and their scores
    (float64, as the post-processing computed them) per post-processing.

    ``counter(scores, slack, rows)`` turns the ``(n, M)`` scores of query rows ``rows`` and their
    rounding bounds into counts;
    ``progress(n)`` (optional) is told after each chunk how many query rows it ranked.
    """
    # Filled in place: keeping small per-chunk arrays alive between the large chunk blocks
    # fragments the heap, and glibc then grows the process by about one block per chunk.
    out = {p: np.empty((len(TieCounts._fields), n_queries), dtype=np.int64) for p in posts}
    top: dict[str, np.ndarray] = {}
    top_scores: dict[str, np.ndarray] = {}
    for rows in chunks:
        raw = read(rows)
        for p in posts:
            scores, slack = POSTPROCESSORS[p].apply(raw, states[p], opts)
            out[p][:, rows] = counter(scores, slack, rows)
            best = topk_indices(scores, topk)
            if p not in top:
                top[p] = np.empty((n_queries, best.shape[1]), dtype=np.int64)
                top_scores[p] = np.empty((n_queries, best.shape[1]), dtype=np.float64)
            top[p][rows] = best
            picked = scores.gather(1, torch.from_numpy(best).to(scores.device))
            top_scores[p][rows] = picked.double().cpu().numpy()
        if progress is not None:
            progress(rows.stop - rows.start)
    return {p: TieCounts(*counts) for p, counts in out.items()}, top, top_scores


def scores_to_json(scores: np.ndarray) -> list[list[float]]:
    """Top-k scores for a result file: 6 significant digits (float32 holds about 7), which keeps
    each row's order (rounding is monotone) and the files small; equal stored values are not
    necessarily ties under the tie tolerance (``protocol.tie_tolerance``), and vice versa."""
    return [[float(f"{v:.6g}") for v in row] for row in np.asarray(scores, dtype=np.float64).tolist()]


def _check_embeddings(name: str, x: Any, dim: int | None, device: torch.device | None) -> torch.Tensor:
    t = as_tensor(x, device=device).detach()
    if t.ndim != 2 or t.shape[0] == 0 or not torch.is_floating_point(t):
        raise VtrbenchError(f"{name} must be a non-empty (N, E) float array, got {t.dtype} {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise VtrbenchError(f"{name} has embedding size {t.shape[1]}, text_emb has {dim}")
    if not bool(torch.isfinite(t).all()):
        raise VtrbenchError(f"{name} contains NaN or infinite values")
    return t


def _check_query_video(query_video: Any, n_q: int, n_v: int, device: torch.device) -> torch.Tensor:
    qv = as_tensor(query_video, device=device).detach()
    if qv.ndim != 1 or qv.shape[0] != n_q or qv.dtype.is_floating_point or qv.dtype == torch.bool:
        raise VtrbenchError(
            f"query_video must be 1-D integer of length {n_q} (one per caption), got {tuple(qv.shape)}"
        )
    qv = qv.to(torch.int64)
    if int(qv.min()) < 0 or int(qv.max()) >= n_v:
        raise VtrbenchError(
            f"query_video holds video rows outside [0, {n_v}): {int(qv.min())}..{int(qv.max())}"
        )
    covered = torch.zeros(n_v, dtype=torch.bool, device=qv.device)
    covered[qv] = True
    if not bool(covered.all()):
        raise VtrbenchError(
            f"{int((~covered).sum())} of {n_v} test videos have no caption; v2t needs one per video "
            f"(first: row {int((~covered).nonzero()[0])})"
        )
    return qv


DEFAULT_POSTS = ("raw", "dsl", "qbnorm")  # evaluate_embeddings/evaluate_pairwise without postprocessing


def _check_postprocessing(postprocessing: Sequence[str] | None, have_bank: bool) -> list[str]:
    """The post-processings to compute, each once. ``None``: :data:`DEFAULT_POSTS`, where ``qbnorm``
    is left out without a bank (as always); a bank-based one asked by name without a bank is refused."""
    if postprocessing is None:
        return [p for p in DEFAULT_POSTS if p not in BANK_POSTS or have_bank]
    if isinstance(postprocessing, str):
        postprocessing = (postprocessing,)
    posts: list[str] = []
    for p in postprocessing:
        if p not in POSTPROCESSING:
            raise VtrbenchError(unknown_name_message("post-processing", str(p), list(POSTPROCESSING)))
        if p in BANK_POSTS and not have_bank:
            raise VtrbenchError(bank_message(str(p)))
        if p not in posts:
            posts.append(p)
    if not posts:
        raise VtrbenchError("nothing to evaluate: no post-processing was asked")
    return posts


def bank_message(post: str) -> str:
    """The one refusal of a bank-based post-processing without a bank of training queries."""
    return (
        f"{post} needs a bank of training queries and none was given: pass bank_text and bank_video "
        "(Python API) or a train split (--train-split, or a cache with a standard train split), "
        f"or leave {post} out"
    )


def evaluate_embeddings(
    text_emb: torch.Tensor | np.ndarray,
    video_emb: torch.Tensor | np.ndarray,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    bank_text: torch.Tensor | np.ndarray | None = None,
    bank_video: torch.Tensor | np.ndarray | None = None,
    dsl_tau: float = 1.0,
    qb_beta: float = 20.0,
    v2t_protocol: str = "clip4clip",
    chunk_size: int = 1024,
    postprocessing: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    qb_k: int = 1,
    mdr: str = "standard",
    matrix_bytes: int | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Text-to-video and video-to-text metrics of a test split, for each post-processing.

    Args:
        text_emb: ``(Nq, E)`` test caption embeddings (L2-normalised for cosine).
        video_emb: ``(Nv, E)`` test video embeddings on the same device; the
            similarity is ``text_emb @ video_emb.T``.
        query_video: ``(Nq,)`` int, the row of ``video_emb`` of each caption's
            video; every video needs at least one caption (it is a v2t query).
        logit_scale: the multiplier of the cosine (e.g. 100), not its log; used by ``dsl``.
        bank_text: ``(B, E)`` training caption embeddings, the t2v query bank for
            ``qbnorm`` (a fixed sample chosen by the caller, 5000 by default in the trainer).
        bank_video: ``(B', E)`` training video embeddings, the v2t query bank.
            ``qbnorm`` is skipped (absent from the result) when both banks are None.
        dsl_tau: DSL inference temperature on logit-scaled scores.
        qb_beta: QB-Norm inverse temperature on cosine scores.
        v2t_protocol: ``"clip4clip"`` or ``"any-caption"`` (see :mod:`vtrbench.metrics`).
        chunk_size: query rows scored at once; peak memory is a few float64
            ``chunk_size x max(Nq, Nv)`` blocks.
        postprocessing: any of ``results.POSTPROCESSING`` (``raw``, ``dsl``, ``qbnorm``, ``is-bank``,
            ``is-test``, ``csls-bank``, ``csls-test``, ``dsl-bank``, ``sinkhorn``: module docstring and
            :mod:`vtrbench.postprocess`); None: ``raw``, ``dsl`` and (with banks) ``qbnorm``. A
            bank-based one asked without banks is refused.
        post_options: parameters of the post-processings of :mod:`vtrbench.postprocess`
            (``is_beta``, ``csls_k``, ``sinkhorn_iters``, ``sinkhorn_eps``; defaults
            ``postprocess.POST_DEFAULTS``), checked by :func:`vtrbench.config.check_post_options`.
        progress: optional ``progress(n)`` called as query rows are ranked (``Nq + Nv`` in all),
            for a progress bar on large galleries.
        qb_k: QB-Norm hubs are the top-``qb_k`` gallery items of each bank query (official default 1).
        mdr: ``"standard"`` (np.median) or ``"clip4clip"`` (t2v MdR is the lower middle rank when the
            split has more captions than videos, as CLIP4Clip's multi-sentence path).
        matrix_bytes: the largest caption x video score matrix held in memory (None: 1 GiB, or
            ``$VTRBENCH_EVAL_MATRIX_BYTES``); a larger one goes to a temporary file in ``tmp_dir``
            (default: the system's temp folder).

    Returns:
        ``{"metrics": {post: {"t2v": {...}, "v2t": {...}, "RSum": float}},
        "per_query_ranks": {post: {"t2v": [Nq floats], "v2t": [Nv floats]}},
        "per_query": {post: {"t2v": counts, "v2t": counts}}, "topk": {post: {"t2v": [[int]],
        "v2t": [[int]]}}, "topk_scores": {post: {"t2v": [[float]], "v2t": [[float]]}},
        "protocol": {...}, "score_matrix": "memory" | "disk", "eval_s": float}``;
        metric dicts as :func:`vtrbench.metrics.retrieval_metrics`, ranks are expected ranks in
        query order (captions, then videos), ``counts`` the tie counts they come from
        (:func:`vtrbench.metrics.counts_to_json`), ``topk`` each query's best 10 gallery indices
        and ``topk_scores`` their scores under that post-processing (6 significant digits;
        results/README.md).
    """
    start = time.perf_counter()
    text = _check_embeddings("text_emb", text_emb, None, None)
    video = _check_embeddings("video_emb", video_emb, text.shape[1], text.device)
    if video.dtype != text.dtype:
        common = torch.promote_types(text.dtype, video.dtype)
        text, video = text.to(common), video.to(common)
    if (bank_text is None) != (bank_video is None):
        raise VtrbenchError("qbnorm needs both bank_text (t2v) and bank_video (v2t), or neither")
    banks = None
    if bank_text is not None and set(BANK_POSTS) & set(_check_postprocessing(postprocessing, True)):
        t2v_bank = _check_embeddings("bank_text", bank_text, text.shape[1], text.device).to(text.dtype)
        v2t_bank = _check_embeddings("bank_video", bank_video, text.shape[1], text.device).to(text.dtype)
        banks = (EmbeddingScorer(t2v_bank, video), EmbeddingScorer(v2t_bank, text))
    return evaluate_scorers(
        EmbeddingScorer(text, video),
        query_video,
        logit_scale=logit_scale,
        banks=banks,
        have_banks=bank_text is not None,
        dsl_tau=dsl_tau,
        qb_beta=qb_beta,
        v2t_protocol=v2t_protocol,
        chunk_size=chunk_size,
        postprocessing=postprocessing,
        progress=progress,
        start=start,
        qb_k=qb_k,
        mdr=mdr,
        matrix_bytes=matrix_bytes,
        tmp_dir=tmp_dir,
        post_options=post_options,
    )


def evaluate_pairwise(
    score: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
    text_state: dict[str, torch.Tensor],
    video_state: dict[str, torch.Tensor],
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    block: tuple[int, int],
    bank_text_state: dict[str, torch.Tensor] | None = None,
    bank_video_state: dict[str, torch.Tensor] | None = None,
    dsl_tau: float = 1.0,
    qb_beta: float = 20.0,
    v2t_protocol: str = "clip4clip",
    chunk_size: int = 1024,
    postprocessing: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    qb_k: int = 1,
    mdr: str = "standard",
    matrix_bytes: int | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_embeddings` for a pairwise head: same metrics, ties, protocols and post-processings.

    Args:
        score: ``score(text_state, video_state) -> (Bq, Bv)`` raw similarity of a block
            (a :class:`vtrbench.heads.base.PairwiseHead`'s ``score_states``).
        text_state, video_state: per-caption / per-video state tensors of the test split
            (items on dim 0), on the device where scoring runs.
        block: ``(captions, videos)`` per block; the head's memory is that of one block.
        bank_text_state, bank_video_state: states of the QB-Norm banks (training captions,
            scored against the test videos; training videos, against the test captions).

    The caption x video matrix is scored once, ``chunk_size`` caption rows at a time, each
    computed block by block, and held in memory or in a temporary file (``matrix_bytes``); every
    direction and post-processing reads it (module docstring).
    """
    start = time.perf_counter()
    for name, state in (("text_state", text_state), ("video_state", video_state)):
        _check_state(name, state)
    if (bank_text_state is None) != (bank_video_state is None):
        raise VtrbenchError("qbnorm needs both bank_text_state (t2v) and bank_video_state (v2t), or neither")
    if (
        not isinstance(block, tuple | list)
        or len(block) != 2
        or any(isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1 for b in block)
    ):
        raise VtrbenchError(f"block must be two integers >= 1 (captions, videos), got {block!r}")
    block = (int(block[0]), int(block[1]))
    banks = None
    if bank_text_state is not None and set(BANK_POSTS) & set(_check_postprocessing(postprocessing, True)):
        _check_state("bank_text_state", bank_text_state)
        _check_state("bank_video_state", bank_video_state)
        banks = (
            PairScorer(score, bank_text_state, video_state, block=block),
            PairScorer(score, text_state, bank_video_state, block=block, queries="videos"),
        )
    return evaluate_scorers(
        PairScorer(score, text_state, video_state, block=block),
        query_video,
        logit_scale=logit_scale,
        banks=banks,
        have_banks=bank_text_state is not None,
        dsl_tau=dsl_tau,
        qb_beta=qb_beta,
        v2t_protocol=v2t_protocol,
        chunk_size=chunk_size,
        postprocessing=postprocessing,
        progress=progress,
        start=start,
        qb_k=qb_k,
        mdr=mdr,
        matrix_bytes=matrix_bytes,
        tmp_dir=tmp_dir,
        post_options=post_options,
    )


_POST_PARAMS = {
    "is-bank": ("is_beta",),
    "is-test": ("is_beta",),
    "csls-bank": ("csls_k",),
    "csls-test": ("csls_k",),
    "dsl-bank": (),
    "sinkhorn": ("sinkhorn_iters", "sinkhorn_eps"),
}


def _post_params(post: str, opts: dict[str, Any], tau: float, logit_scale: float) -> dict[str, Any]:
    if post == "dsl-bank":
        return {"tau": float(tau), "logit_scale": float(logit_scale)}
    if post == "csls-bank":
        return {"csls_k": opts["csls_k_bank"]}
    return {key: opts[key] for key in _POST_PARAMS[post]}


def csls_k_message(k: int, post: str, limit: int) -> str:
    """The one refusal of a CSLS ``k`` beyond the neighbours it averages (the gallery or the bank)."""
    what = "the banks of training queries" if post == "csls-bank" else "the test gallery"
    return (
        f"csls_k {k} is larger than {what} ({limit}): {post} averages each item's k nearest "
        f"neighbours, so k must be <= {limit} (--post-option csls_k=K)"
    )


def _check_state(name: str, state: Any) -> None:
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise VtrbenchError(f"{name} must be a non-empty dict of tensors")
    n = {int(v.shape[0]) if v.ndim else -1 for v in state.values()}
    if len(n) != 1 or n == {0} or n == {-1}:
        raise VtrbenchError(f"{name} tensors must share a non-zero first dimension, got {sorted(n)}")
    for key, v in state.items():
        if torch.is_floating_point(v) and not bool(torch.isfinite(v).all()):
            raise VtrbenchError(f"{name}[{key!r}] contains NaN or infinite values")


def qb_k_message(k: int, n_videos: int, split: str | None = None) -> str:
    """The one refusal of a QB-Norm ``k`` larger than the test gallery (it would be clamped silently)."""
    where = f"test split {split!r}" if split else "the test gallery"
    return (
        f"qb_k {k} is larger than {where} ({n_videos} usable videos): QB-Norm's hubs are each bank "
        f"query's top-k test videos, so k must be <= {n_videos}"
    )


def evaluate_scorers(
    scores: Scorer,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    banks: tuple[Scorer, Scorer] | None,
    have_banks: bool,
    dsl_tau: float,
    qb_beta: float,
    v2t_protocol: str,
    chunk_size: int,
    postprocessing: Sequence[str] | None,
    progress: Callable[[int], None] | None,
    start: float,
    qb_k: int = 1,
    mdr: str = "standard",
    matrix_bytes: int | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The shared evaluation of both paths; ``scores`` scores captions (rows) x videos (gallery).

    Every (caption, video) pair is scored once, into a :class:`ScoreMatrix`; t2v reads its rows,
    v2t its columns, and every post-processing is computed from it. ``banks``: ``(bank captions x
    test videos, bank videos x test captions)`` scorers for qbnorm, each scored once.
    """
    n_q, n_v = scores.n_queries, scores.n_gallery
    qv = _check_query_video(query_video, n_q, n_v, scores.device)
    protocol = check_v2t_protocol(v2t_protocol)
    posts = _check_postprocessing(postprocessing, have_banks)
    check_mdr(mdr)
    if isinstance(qb_k, bool) or not isinstance(qb_k, int | np.integer) or qb_k < 1:
        raise VtrbenchError(f"qb_k must be an integer >= 1, got {qb_k!r}")
    k = int(qb_k)
    if "qbnorm" in posts and k > n_v:
        raise VtrbenchError(qb_k_message(k, n_v))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise VtrbenchError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if matrix_bytes is None:
        matrix_bytes = default_matrix_bytes()
    if isinstance(matrix_bytes, bool) or not isinstance(matrix_bytes, int | np.integer) or matrix_bytes < 0:
        raise VtrbenchError(f"matrix_bytes must be an integer >= 0, got {matrix_bytes!r}")
    if not (np.isfinite(logit_scale) and np.isfinite(dsl_tau) and dsl_tau > 0 and np.isfinite(qb_beta)):
        raise VtrbenchError(
            f"need finite logit_scale and qb_beta and dsl_tau > 0 (got {logit_scale}, {qb_beta}, {dsl_tau})"
        )
    post_opts = check_post_options(post_options or {}, complete=True)
    # csls-bank averages bank neighbours, csls-test test ones (each video's captions, each caption's
    # videos: at most n_v). A k asked for is refused beyond them; the default k (10) is lowered to
    # what a small gallery or bank has, for each of the two on its own (the result records the k used).
    k_bank = post_opts["csls_k"]
    limits = {"csls-test": n_v}
    if banks is not None:
        limits["csls-bank"] = min(b.n_queries for b in banks)
    for name, limit in limits.items():
        if name in posts and post_opts["csls_k"] > limit and "csls_k" in (post_options or {}):
            raise VtrbenchError(csls_k_message(post_opts["csls_k"], name, limit))
    if "csls-bank" in limits:
        k_bank = min(k_bank, limits["csls-bank"])
    post_opts["csls_k"] = min(post_opts["csls_k"], n_v)
    opts = EvalOptions(
        csls_k_bank=k_bank,
        logit_scale=float(logit_scale),
        tau=float(dsl_tau),
        beta=float(qb_beta),
        chunk_size=chunk_size,
        qb_k=k,
        **post_opts,
    )

    # progress: the scoring pass counts the captions (it is where the time goes for pairwise heads),
    # v2t's ranking the videos, so the total stays Nq + Nv
    with (
        torch.no_grad(),
        ScoreMatrix(
            scores, chunk_size=chunk_size, max_bytes=int(matrix_bytes), tmp_dir=tmp_dir, progress=progress
        ) as matrix,
    ):
        opts = replace(opts, delta=TIE_RTOL * matrix.scale)
        t2v_states: dict[str, Any] = {}
        v2t_states: dict[str, Any] = {}
        bank_posts = [p for p in posts if p in BANK_POSTS]
        # every bank-based statistic in one pass over each bank: each bank pair is scored once
        stats = (
            (pp.bank_statistics(banks[0], bank_posts, opts), pp.bank_statistics(banks[1], bank_posts, opts))
            if bank_posts and banks is not None
            else None
        )
        for p in posts:
            t2v_states[p], v2t_states[p] = POSTPROCESSORS[p].prepare(matrix, stats, opts)

        def t2v_counter(s: torch.Tensor, slack: torch.Tensor, rows: slice) -> TieCounts:
            return gt_counts(s, qv[rows], slack)

        def v2t_counter(s: torch.Tensor, slack: torch.Tensor, rows: slice) -> TieCounts:
            videos = torch.arange(rows.start, rows.stop, device=s.device)
            return v2t_counts(s, videos, qv, protocol, slack)

        rank = dict(posts=posts, opts=opts, topk=TOPK)
        t2v_counts, t2v_top, t2v_top_scores = rank_queries(
            matrix.row_chunks(), matrix.rows, n_q, t2v_counter, states=t2v_states, **rank
        )
        v2t_all, v2t_top, v2t_top_scores = rank_queries(
            matrix.col_chunks(), matrix.cols, n_v, v2t_counter, states=v2t_states, progress=progress, **rank
        )
        kind, scale = matrix.kind, matrix.scale

    metrics: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    per_query: dict[str, Any] = {}
    topk: dict[str, Any] = {}
    topk_scores: dict[str, Any] = {}
    # CLIP4Clip's multi-sentence path (several captions per video) takes torch.median for t2v only
    lower_t2v = mdr == "clip4clip" and n_q > n_v
    for p in posts:
        m_t2v = retrieval_metrics(t2v_counts[p], lower_median=lower_t2v)
        m_v2t = retrieval_metrics(v2t_all[p])
        metrics[p] = {"t2v": m_t2v, "v2t": m_v2t, "RSum": rsum(m_t2v, m_v2t)}
        ranks[p] = {"t2v": expected_ranks(t2v_counts[p]).tolist(), "v2t": expected_ranks(v2t_all[p]).tolist()}
        per_query[p] = {"t2v": counts_to_json(t2v_counts[p]), "v2t": counts_to_json(v2t_all[p])}
        topk[p] = {"t2v": t2v_top[p].tolist(), "v2t": v2t_top[p].tolist()}
        topk_scores[p] = {"t2v": scores_to_json(t2v_top_scores[p]), "v2t": scores_to_json(v2t_top_scores[p])}
    protocol_info = {
        "n_queries": n_q,
        "n_gallery": n_v,
        "v2t_multi_caption": protocol,
        "mdr": mdr,
        "ties": f"{TIE_POLICY}; {TIE_TOLERANCE_POLICY}",
        "tie_tolerance": {"relative": TIE_RTOL, "scale": scale, "raw_band": 2 * TIE_RTOL * scale},
        "dsl_inference_tau": float(dsl_tau),
        "qbnorm": None
        if "qbnorm" not in posts or banks is None
        else {
            "bank_size": {"t2v": int(banks[0].n_queries), "v2t": int(banks[1].n_queries)},
            "beta": float(qb_beta),
            "k": k,
        },
        # the parameters of the post-processings of vtrbench.postprocess that were computed, and the
        # bank sizes of the bank-based ones (the same banks as qbnorm)
        "post_options": {
            p: _post_params(p, post_opts | {"csls_k_bank": opts.csls_k_bank}, dsl_tau, logit_scale)
            for p in posts
            if p in _POST_PARAMS
        },
        "post_bank_size": None
        if banks is None or not set(posts) & set(BANK_POSTS)
        else {"t2v": int(banks[0].n_queries), "v2t": int(banks[1].n_queries)},
    }
    return {
        "metrics": metrics,
        "per_query_ranks": ranks,
        "per_query": per_query,
        "topk": topk,
        "topk_scores": topk_scores,
        "protocol": protocol_info,
        "score_matrix": kind,
        "eval_s": time.perf_counter() - start,
    }
