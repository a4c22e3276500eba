"""Chunked retrieval evaluation from embeddings, with inference post-processing.

The full caption x video similarity is never materialised: queries are scored
``chunk_size`` rows at a time against the whole gallery, each chunk is reduced to
per-query tie counts (:mod:`vtrbench.metrics`) and dropped, so memory is
O(chunk_size x gallery). The ranks are those of the dense computation: the only
full-matrix quantities the post-processings need are per-gallery-item normalisers,
which a first pass accumulates over all chunks.

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


def dsl_normalisers(
    text: torch.Tensor, video: torch.Tensor, *, logit_scale: float, tau: float, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over caption chunks giving both DSL softmax denominators (log space).

    Args:
        text: ``(Nq, E)`` caption embeddings; video: ``(Nv, E)`` video embeddings.

    Returns:
        ``(per_video, per_caption)``: ``(Nv,)`` logsumexp over all captions of
        ``logit_scale * s / tau`` (t2v) and ``(Nq,)`` logsumexp over all videos (v2t),
        float64 holding float32-rounded values.
    """
    per_video = torch.full((video.shape[0],), -torch.inf, dtype=torch.float64, device=video.device)
    per_caption = torch.empty(text.shape[0], dtype=torch.float64, device=text.device)
    for rows in _chunks(text.shape[0], chunk_size):
        z = (text[rows] @ video.T).to(torch.float64) * (logit_scale / tau)
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return _rounded(per_video), _rounded(per_caption)


def querybank_normalisers(
    bank: torch.Tensor, gallery: torch.Tensor, *, beta: float, chunk_size: int, k: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """QB-Norm statistics of a gallery from a bank of training queries.

    Args:
        bank: ``(B, E)`` training query embeddings; gallery: ``(M, E)`` test gallery.

    Returns:
        ``(lse, hubs)``: ``(M,)`` logsumexp over the bank of ``beta * s`` (float64
        holding float32-rounded values) and ``(M,)`` bool, True for items that are
        top-1 (ties included) for at least one bank query.
    """
    lse = torch.full((gallery.shape[0],), -torch.inf, dtype=torch.float64, device=gallery.device)
    hubs = torch.zeros(gallery.shape[0], dtype=torch.bool, device=gallery.device)
    for rows in _chunks(bank.shape[0], chunk_size):
        s = bank[rows] @ gallery.T
        kth = s.amax(1, keepdim=True) if k == 1 else s.topk(k, dim=1).values[:, -1:]
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
    queries: torch.Tensor,
    gallery: torch.Tensor,
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
    """Score ``(Nq, E)`` queries against the ``(M, E)`` gallery chunk by chunk; counts per post-processing.

    ``counter(scores, rows)`` turns the ``(n, M)`` scores of query rows ``rows`` into counts;
    ``progress(n)`` (optional) is told after each chunk how many query rows it ranked.
    """
    # Filled in place: keeping small per-chunk arrays alive between the large chunk blocks
    # fragments the heap, and glibc then grows the process by about one block per chunk.
    out = {p: np.empty((len(TieCounts._fields), queries.shape[0]), dtype=np.int64) for p in posts}
    for rows in _chunks(queries.shape[0], chunk_size):
        raw = queries[rows] @ gallery.T
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
        qb_k: QB-Norm hubs are the top-``qb_k`` gallery items of each bank query (official default 1).
        mdr: ``"standard"`` (np.median) or ``"clip4clip"`` (t2v MdR is the lower middle rank when the
            split has more captions than videos, as CLIP4Clip's multi-sentence path).
        v2t_protocol: ``"clip4clip"`` or ``"any-caption"`` (see :mod:`vtrbench.metrics`).
        chunk_size: query rows scored at once; peak memory is a few float64
            ``chunk_size x max(Nq, Nv)`` blocks.
        postprocessing: any of ``"raw"``, ``"dsl"``, ``"qbnorm"``.
        progress: optional ``progress(n)`` called as query rows are ranked (``Nq + Nv`` in all),
            for a progress bar on large galleries.

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
    qv = _check_query_video(query_video, text.shape[0], video.shape[0], text.device)
    protocol = check_v2t_protocol(v2t_protocol)
    if (bank_text is None) != (bank_video is None):
        raise VtrbenchError("qbnorm needs both bank_text (t2v) and bank_video (v2t), or neither")
    posts = _check_postprocessing(postprocessing, bank_text is not None)
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
                text, video, logit_scale=opts["logit_scale"], tau=opts["tau"], chunk_size=chunk_size
            )
            t2v_norm, v2t_norm = (
                GalleryNormalisers(dsl_lse=per_video),
                GalleryNormalisers(dsl_lse=per_caption),
            )
        if "qbnorm" in posts:
            t2v_bank = _check_embeddings("bank_text", bank_text, text.shape[1], text.device).to(text.dtype)
            v2t_bank = _check_embeddings("bank_video", bank_video, text.shape[1], text.device).to(text.dtype)
            t2v_norm = GalleryNormalisers(
                t2v_norm.dsl_lse,
                *querybank_normalisers(
                    t2v_bank, video, beta=opts["beta"], chunk_size=chunk_size, k=int(qb_k)
                ),
            )
            v2t_norm = GalleryNormalisers(
                v2t_norm.dsl_lse,
                *querybank_normalisers(v2t_bank, text, beta=opts["beta"], chunk_size=chunk_size, k=k),
            )

        def t2v_counter(scores: torch.Tensor, rows: slice) -> TieCounts:
            return gt_counts(scores, qv[rows])

        def v2t_counter(scores: torch.Tensor, rows: slice) -> TieCounts:
            videos = torch.arange(rows.start, rows.stop, device=scores.device)
            return v2t_counts(scores, videos, qv, protocol)

        t2v = rank_queries(text, video, t2v_counter, posts, t2v_norm, progress=progress, **opts)
        v2t = rank_queries(video, text, v2t_counter, posts, v2t_norm, progress=progress, **opts)

    metrics: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    # CLIP4Clip's multi-sentence path (several captions per video) takes torch.median for t2v only
    lower_t2v = mdr == "clip4clip" and text.shape[0] > video.shape[0]
    for p in posts:
        m_t2v, m_v2t = retrieval_metrics(t2v[p], lower_median=lower_t2v), retrieval_metrics(v2t[p])
        metrics[p] = {"t2v": m_t2v, "v2t": m_v2t, "RSum": rsum(m_t2v, m_v2t)}
        ranks[p] = {"t2v": expected_ranks(t2v[p]).tolist(), "v2t": expected_ranks(v2t[p]).tolist()}
    protocol_info = {
        "n_queries": text.shape[0],
        "n_gallery": video.shape[0],
        "v2t_multi_caption": protocol,
        "ties": TIE_POLICY,
        "dsl_inference_tau": float(dsl_tau),
        "mdr": mdr,
        "qbnorm": None
        if "qbnorm" not in posts
        else {
            "bank_size": {"t2v": int(len(bank_text)), "v2t": int(len(bank_video))},
            "beta": float(qb_beta),
            "k": int(qb_k),
        },
    }
    return {
        "metrics": metrics,
        "per_query_ranks": ranks,
        "protocol": protocol_info,
        "eval_s": time.perf_counter() - start,
    }
