"""Chunked retrieval evaluation from embeddings, with inference post-processing.

The full caption x video similarity is never materialised: queries are scored
``chunk_size`` rows at a time against the whole gallery, each chunk is reduced to
per-query tie counts (:mod:`vtrbench.metrics`) and dropped, so memory is
O(chunk_size x gallery). The ranks are those of the dense computation: the only
full-matrix quantities the post-processings need are per-gallery-item normalisers,
which a first pass accumulates over all chunks.

Where the raw scores come from is a :class:`Scorer`: embeddings of a factorised head
(:func:`evaluate_embeddings`, one matmul per chunk) or the block scorer of a pairwise head
(:func:`evaluate_pairwise`: each chunk is scored in caption x video blocks, so the head's
memory is that of one block). Everything below sees only ``(chunk, gallery)`` raw scores.

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

For v2t with several captions per video, the ``clip4clip`` grouping (max over a
video's captions) is applied to the post-processed video x caption scores, and
``any-caption`` ranks the post-processed captions directly.

Post-processed scores are computed in float64; the normalisers are accumulated in
float64 and rounded to float32, which makes them independent of the summation
order (hence of ``chunk_size``) and equal for gallery items with equal values, so
exact ties survive post-processing. Left to rounding: a matmul of one chunk may
differ from the same rows of a bigger one in the last bit, which can only move a
rank where two scores agree to ~1e-7.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.metrics import (
    TIE_POLICY,
    TieCounts,
    as_tensor,
    check_mdr,
    check_v2t_protocol,
    expected_ranks,
    gt_counts,
    retrieval_metrics,
    rsum,
    v2t_counts,
)
from vtrbench.registry import unknown_name_message
from vtrbench.results import POSTPROCESSING

Counter = Callable[[torch.Tensor, slice], TieCounts]


@dataclass(frozen=True)
class GalleryNormalisers:
    """Per-gallery-item quantities of one direction, each ``(M,)`` for an M-item gallery."""

    dsl_lse: torch.Tensor | None = None  # logsumexp over all test queries of S / tau
    bank_lse: torch.Tensor | None = None  # logsumexp over the bank of beta * s
    hubs: torch.Tensor | None = None  # bool: top-1 for some bank query


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

    def rows(self, rows: slice) -> torch.Tensor:
        """``(n, M)`` raw scores of query rows ``rows`` with all ``M`` gallery items."""
        raise NotImplementedError


class EmbeddingScorer(Scorer):
    """``queries @ gallery.T``: the fast path of factorised heads."""

    def __init__(self, queries: torch.Tensor, gallery: torch.Tensor) -> None:
        self.queries, self.gallery = queries, gallery
        self.n_queries, self.n_gallery = queries.shape[0], gallery.shape[0]
        self.device = queries.device

    def rows(self, rows: slice) -> torch.Tensor:
        return self.queries[rows] @ self.gallery.T


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
        n = rows.stop - rows.start
        out = torch.empty(n, self.n_gallery, dtype=torch.float32, device=self.device)
        q_step, g_step = (self.block[1], self.block[0]) if self.transposed else self.block
        for q in _chunks(n, q_step):
            q_rows = slice(rows.start + q.start, rows.start + q.stop)
            q_state = _slice(self.video if self.transposed else self.text, q_rows)
            for g in _chunks(self.n_gallery, g_step):
                g_state = _slice(self.text if self.transposed else self.video, g)
                if self.transposed:
                    out[q, g] = self.score(g_state, q_state).T
                else:
                    out[q, g] = self.score(q_state, g_state)
        return out


def _state_len(state: dict[str, torch.Tensor]) -> int:
    return int(next(iter(state.values())).shape[0])


def _slice(state: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in state.items()}


def dsl_normalisers(
    scorer: Scorer, *, logit_scale: float, tau: float, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over caption chunks giving both DSL softmax denominators (log space).

    Args:
        scorer: caption (query) x video (gallery) raw scores, ``Nq x Nv``.

    Returns:
        ``(per_video, per_caption)``: ``(Nv,)`` logsumexp over all captions of
        ``logit_scale * s / tau`` (t2v) and ``(Nq,)`` logsumexp over all videos (v2t),
        float64 holding float32-rounded values.
    """
    per_video = torch.full((scorer.n_gallery,), -torch.inf, dtype=torch.float64, device=scorer.device)
    per_caption = torch.empty(scorer.n_queries, dtype=torch.float64, device=scorer.device)
    for rows in _chunks(scorer.n_queries, chunk_size):
        z = scorer.rows(rows).to(torch.float64) * (logit_scale / tau)
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return _rounded(per_video), _rounded(per_caption)


def querybank_normalisers(
    scorer: Scorer, *, beta: float, chunk_size: int, k: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """QB-Norm statistics of a gallery from a bank of training queries.

    Args:
        scorer: bank query (rows) x test gallery raw scores, ``B x M``.

    Returns:
        ``(lse, hubs)``: ``(M,)`` logsumexp over the bank of ``beta * s`` (float64
        holding float32-rounded values) and ``(M,)`` bool, True for items that are
        among the top ``k`` (ties at the k-th score included) of at least one bank query
        (the official ``get_retrieved_videos(train_test, k)``, default 1).
    """
    lse = torch.full((scorer.n_gallery,), -torch.inf, dtype=torch.float64, device=scorer.device)
    hubs = torch.zeros(scorer.n_gallery, dtype=torch.bool, device=scorer.device)
    for rows in _chunks(scorer.n_queries, chunk_size):
        s = scorer.rows(rows)
        kth = s.amax(1, keepdim=True) if k == 1 else s.topk(min(k, s.shape[1]), dim=1).values[:, -1:]
        hubs |= (s >= kth).any(0)
        torch.logaddexp(lse, torch.logsumexp(s.to(torch.float64).mul_(beta), dim=0), out=lse)
    return _rounded(lse), hubs


def postprocess(
    raw: torch.Tensor, post: str, norm: GalleryNormalisers, *, logit_scale: float, tau: float, beta: float
) -> torch.Tensor:
    """Scores of one chunk after post-processing ``post`` (rows = queries, columns = the whole gallery).

    Args:
        raw: ``(n, M)`` raw similarity of ``n`` queries with all ``M`` gallery items.
        norm: the gallery's normalisers from the first pass.

    Returns:
        ``(n, M)``: ``raw`` itself for ``"raw"``, float64 otherwise; only the order
        within a row is meaningful.
    """
    if post == "raw":
        return raw
    if post == "dsl":
        z = raw.to(torch.float64).mul_(logit_scale)
        # in place: two float64 blocks per chunk instead of four
        return (z / tau).sub_(norm.dsl_lse).exp_().mul_(z)
    if post == "qbnorm":
        top = raw == raw.amax(1, keepdim=True)
        normalise = (top & norm.hubs).any(1).nonzero().squeeze(1)
        if normalise.numel() == 0:
            return raw
        s = raw.to(torch.float64)
        s[normalise] = s[normalise].mul_(beta).sub_(norm.bank_lse)
        return s
    raise AssertionError(post)


def rank_queries(
    scorer: Scorer,
    counter: Counter,
    posts: Sequence[str],
    norm: GalleryNormalisers,
    *,
    logit_scale: float,
    tau: float,
    beta: float,
    chunk_size: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, TieCounts]:
    """Score the queries of ``scorer`` against its gallery chunk by chunk; counts per post-processing.

    ``counter(scores, rows)`` turns the ``(n, M)`` scores of query rows ``rows`` into counts;
    ``progress(n)`` (optional) is told after each chunk how many query rows it ranked.
    """
    # Filled in place: keeping small per-chunk arrays alive between the large chunk blocks
    # fragments the heap, and glibc then grows the process by about one block per chunk.
    out = {p: np.empty((len(TieCounts._fields), scorer.n_queries), dtype=np.int64) for p in posts}
    for rows in _chunks(scorer.n_queries, chunk_size):
        raw = scorer.rows(rows)
        for p in posts:
            scores = postprocess(raw, p, norm, logit_scale=logit_scale, tau=tau, beta=beta)
            out[p][:, rows] = counter(scores, rows)
        if progress is not None:
            progress(rows.stop - rows.start)
    return {p: TieCounts(*counts) for p, counts in out.items()}


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


def _check_postprocessing(postprocessing: Sequence[str], have_bank: bool) -> list[str]:
    if isinstance(postprocessing, str):
        postprocessing = (postprocessing,)
    posts: list[str] = []
    for p in postprocessing:
        if p not in POSTPROCESSING:
            raise VtrbenchError(unknown_name_message("post-processing", str(p), list(POSTPROCESSING)))
        if p not in posts and (p != "qbnorm" or have_bank):
            posts.append(p)
    if not posts:
        raise VtrbenchError(
            "nothing to evaluate: qbnorm was the only post-processing asked and no bank was given"
        )
    return posts


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
    postprocessing: Sequence[str] = ("raw", "dsl", "qbnorm"),
    progress: Callable[[int], None] | None = None,
    qb_k: int = 1,
    mdr: str = "standard",
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
        postprocessing: any of ``"raw"``, ``"dsl"``, ``"qbnorm"``.
        progress: optional ``progress(n)`` called as query rows are ranked (``Nq + Nv`` in all),
            for a progress bar on large galleries.
        qb_k: QB-Norm hubs are the top-``qb_k`` gallery items of each bank query (official default 1).
        mdr: ``"standard"`` (np.median) or ``"clip4clip"`` (t2v MdR is the lower middle rank when the
            split has more captions than videos, as CLIP4Clip's multi-sentence path).

    Returns:
        ``{"metrics": {post: {"t2v": {...}, "v2t": {...}, "RSum": float}},
        "per_query_ranks": {post: {"t2v": [Nq floats], "v2t": [Nv floats]}},
        "protocol": {...}, "eval_s": float}``; metric dicts as
        :func:`vtrbench.metrics.retrieval_metrics`, ranks are expected ranks in
        query order (captions, then videos).
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
    if bank_text is not None and "qbnorm" in _check_postprocessing(postprocessing, True):
        t2v_bank = _check_embeddings("bank_text", bank_text, text.shape[1], text.device).to(text.dtype)
        v2t_bank = _check_embeddings("bank_video", bank_video, text.shape[1], text.device).to(text.dtype)
        banks = (EmbeddingScorer(t2v_bank, video), EmbeddingScorer(v2t_bank, text))
    return evaluate_scorers(
        EmbeddingScorer(text, video),
        EmbeddingScorer(video, text),
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
    postprocessing: Sequence[str] = ("raw", "dsl", "qbnorm"),
    progress: Callable[[int], None] | None = None,
    qb_k: int = 1,
    mdr: str = "standard",
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

    Each post-processing reads the scores in query chunks of ``chunk_size`` rows, each
    computed block by block; the scores are recomputed for each pass (DSL normalisers,
    t2v, v2t) rather than stored, so nothing of size ``Nq x Nv`` is ever held.
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
    if bank_text_state is not None and "qbnorm" in _check_postprocessing(postprocessing, True):
        _check_state("bank_text_state", bank_text_state)
        _check_state("bank_video_state", bank_video_state)
        banks = (
            PairScorer(score, bank_text_state, video_state, block=block),
            PairScorer(score, text_state, bank_video_state, block=block, queries="videos"),
        )
    return evaluate_scorers(
        PairScorer(score, text_state, video_state, block=block),
        PairScorer(score, text_state, video_state, block=block, queries="videos"),
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


def evaluate_scorers(
    t2v: Scorer,
    v2t: Scorer,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    banks: tuple[Scorer, Scorer] | None,
    have_banks: bool,
    dsl_tau: float,
    qb_beta: float,
    v2t_protocol: str,
    chunk_size: int,
    postprocessing: Sequence[str],
    progress: Callable[[int], None] | None,
    start: float,
    qb_k: int = 1,
    mdr: str = "standard",
) -> dict[str, Any]:
    """The shared evaluation of both paths; ``t2v`` scores captions x videos, ``v2t`` videos x captions.

    ``banks``: ``(bank captions x test videos, bank videos x test captions)`` scorers for qbnorm.
    """
    n_q, n_v = t2v.n_queries, t2v.n_gallery
    qv = _check_query_video(query_video, n_q, n_v, t2v.device)
    protocol = check_v2t_protocol(v2t_protocol)
    posts = _check_postprocessing(postprocessing, have_banks)
    check_mdr(mdr)
    if isinstance(qb_k, bool) or not isinstance(qb_k, int | np.integer) or qb_k < 1:
        raise VtrbenchError(f"qb_k must be an integer >= 1, got {qb_k!r}")
    k = int(qb_k)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise VtrbenchError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    if not (np.isfinite(logit_scale) and np.isfinite(dsl_tau) and dsl_tau > 0 and np.isfinite(qb_beta)):
        raise VtrbenchError(
            f"need finite logit_scale and qb_beta and dsl_tau > 0 (got {logit_scale}, {qb_beta}, {dsl_tau})"
        )
    opts = dict(
        logit_scale=float(logit_scale), tau=float(dsl_tau), beta=float(qb_beta), chunk_size=chunk_size
    )

    t2v_norm, v2t_norm = GalleryNormalisers(), GalleryNormalisers()
    with torch.no_grad():
        if "dsl" in posts:
            per_video, per_caption = dsl_normalisers(
                t2v, logit_scale=opts["logit_scale"], tau=opts["tau"], chunk_size=chunk_size
            )
            t2v_norm, v2t_norm = (
                GalleryNormalisers(dsl_lse=per_video),
                GalleryNormalisers(dsl_lse=per_caption),
            )
        if "qbnorm" in posts:
            assert banks is not None
            t2v_norm = GalleryNormalisers(
                t2v_norm.dsl_lse,
                *querybank_normalisers(banks[0], beta=opts["beta"], chunk_size=chunk_size, k=k),
            )
            v2t_norm = GalleryNormalisers(
                v2t_norm.dsl_lse,
                *querybank_normalisers(banks[1], beta=opts["beta"], chunk_size=chunk_size, k=k),
            )

        def t2v_counter(scores: torch.Tensor, rows: slice) -> TieCounts:
            return gt_counts(scores, qv[rows])

        def v2t_counter(scores: torch.Tensor, rows: slice) -> TieCounts:
            videos = torch.arange(rows.start, rows.stop, device=scores.device)
            return v2t_counts(scores, videos, qv, protocol)

        t2v_counts = rank_queries(t2v, t2v_counter, posts, t2v_norm, progress=progress, **opts)
        v2t_all = rank_queries(v2t, v2t_counter, posts, v2t_norm, progress=progress, **opts)

    metrics: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    # CLIP4Clip's multi-sentence path (several captions per video) takes torch.median for t2v only
    lower_t2v = mdr == "clip4clip" and n_q > n_v
    for p in posts:
        m_t2v = retrieval_metrics(t2v_counts[p], lower_median=lower_t2v)
        m_v2t = retrieval_metrics(v2t_all[p])
        metrics[p] = {"t2v": m_t2v, "v2t": m_v2t, "RSum": rsum(m_t2v, m_v2t)}
        ranks[p] = {"t2v": expected_ranks(t2v_counts[p]).tolist(), "v2t": expected_ranks(v2t_all[p]).tolist()}
    protocol_info = {
        "n_queries": n_q,
        "n_gallery": n_v,
        "v2t_multi_caption": protocol,
        "mdr": mdr,
        "ties": TIE_POLICY,
        "dsl_inference_tau": float(dsl_tau),
        "qbnorm": None
        if "qbnorm" not in posts or banks is None
        else {
            "bank_size": {"t2v": int(banks[0].n_queries), "v2t": int(banks[1].n_queries)},
            "beta": float(qb_beta),
            "k": k,
        },
    }
    return {
        "metrics": metrics,
        "per_query_ranks": ranks,
        "protocol": protocol_info,
        "eval_s": time.perf_counter() - start,
    }
