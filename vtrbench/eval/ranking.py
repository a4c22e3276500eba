"""The evaluation core: score once, post-process, rank with ties, and the result's numbers.

:func:`evaluate_scorers` scores every (caption, video) pair once into a
:class:`~vtrbench.eval.matrix.ScoreMatrix`; t2v reads its rows, v2t its columns, and every
post-processing (:mod:`vtrbench.eval.postprocess`) is computed from it. Queries are ranked
``chunk_size`` rows at a time (:func:`rank_queries`); each chunk is reduced to per-query tie counts
and top-k (:mod:`vtrbench.metrics`) and dropped.

Ties with a tolerance: the last bits of a raw score depend on how the work was cut (a pairwise
head's block shape, the rows of a matmul chunk: up to ~3 float32 ulps of the largest score), so
exact equality would make near-ties (reversed twins under an order-free head) tied or not
depending on ``eval_block``/``chunk_size``. Every raw score therefore carries the rounding bound
``delta = metrics.TIE_RTOL * max|s|`` (2^-20 of the largest |score| of the test matrix; the max is
exact and order-free), and each post-processing returns, next to its scores, the bound they carry
(``apply -> (scores, slack)``; :mod:`vtrbench.eval.postprocess` gives each bound). Two scores are
tied when they differ by at most the sum of their bounds (:func:`vtrbench.metrics.gt_counts`), and
QB-Norm's hub test (a bank query's top-k) and a query's top-1 test use the band of two raw scores,
``2 delta``. Counts are then identical for every block and chunk size
(tests/eval/test_evaluate_ties.py); the result records the rule in ``protocol.ties`` and the numbers in
``protocol.tie_tolerance``.

``TIE_RTOL`` and ``ScoreMatrix`` are looked up in this module when an evaluation runs (tests switch
the tolerance off, or forbid scoring, by patching them here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from vtrbench import defaults
from vtrbench.config import POST_SCALES, check_post_options
from vtrbench.errors import VtrbenchError
from vtrbench.eval.checks import check_postprocessing, check_query_video
from vtrbench.eval.matrix import ScoreMatrix, default_matrix_bytes
from vtrbench.eval.messages import csls_k_message, qb_k_message
from vtrbench.eval.options import EvalOptions, PostParams
from vtrbench.eval.postprocess import (
    BANK_POSTS,
    EMBEDDING_POSTS,
    EMBEDDING_POSTS_MESSAGE,
    POSTPROCESSORS,
    bank_statistics,
)
from vtrbench.eval.scoring import Scorer
from vtrbench.metrics import (
    TIE_POLICY,
    TIE_RTOL,
    TIE_TOLERANCE_POLICY,
    TOPK,
    TieCounts,
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

Counter = Callable[[torch.Tensor, torch.Tensor, slice], TieCounts]
# per post-processing: (counts, top-k indices, their scores), one entry per post
Ranked = tuple[dict[str, TieCounts], dict[str, np.ndarray], dict[str, np.ndarray]]

# The parameters each hubness post-processing records in the result's protocol.post_options.
_POST_PARAMS = {
    "is-bank": ("is_beta",),
    "is-test": ("is_beta",),
    "csls-bank": ("csls_k",),
    "csls-test": ("csls_k",),
    "dsl-bank": (),
    "sinkhorn": ("sinkhorn_iters", "sinkhorn_eps", "sinkhorn_tol"),
}


def rank_queries(
    chunks: Sequence[slice],
    read: Callable[[slice], torch.Tensor],
    n_queries: int,
    counter: Counter,
    posts: Sequence[str],
    states: dict[str, Any],
    opts: PostParams,
    *,
    topk: int,
    progress: Callable[[int], None] | None = None,
) -> Ranked:
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


def evaluate_scorers(
    scores: Scorer,
    query_video: torch.Tensor | np.ndarray,
    options: EvalOptions | None = None,
    *,
    banks: tuple[Scorer, Scorer] | None = None,
    have_banks: bool | None = None,
    progress: Callable[[int], None] | None = None,
    start: float | None = None,
    **keywords: Any,
) -> dict[str, Any]:
    """The shared evaluation of both paths; ``scores`` scores captions (rows) x videos (gallery).

    Every (caption, video) pair is scored once, into a :class:`ScoreMatrix`; t2v reads its rows,
    v2t its columns, and every post-processing is computed from it.

    Args:
        options: every evaluation option (:class:`EvalOptions`).
        banks: ``(bank captions x test videos, bank videos x test captions)`` scorers for the
            bank-based post-processings, each scored once; None where none of them is computed.
        have_banks: whether the caller has banks (None: ``banks is not None``); decides whether
            ``qbnorm`` is among the default post-processings.
        progress: optional ``progress(n)`` as caption rows are scored and video rows ranked.
        start: when the evaluation began (``time.perf_counter()``; None: now), for ``eval_s``.
        keywords: :class:`EvalOptions` fields, the keyword form (``logit_scale=``, ``qb_beta=`` ...);
            each overrides ``options``.

    Returns:
        The result dict of :func:`vtrbench.eval.evaluate_embeddings`.
    """
    start = time.perf_counter() if start is None else start
    if options is None:
        options = EvalOptions(**keywords)
    elif keywords:
        options = replace(options, **keywords)
    have_banks = banks is not None if have_banks is None else have_banks
    n_q, n_v = scores.n_queries, scores.n_gallery
    qv = check_query_video(query_video, n_q, n_v, scores.device)
    protocol, posts, params, matrix_bytes = _checked(options, n_v, banks, have_banks)

    # progress: the scoring pass counts the captions (it is where the time goes for pairwise heads),
    # v2t's ranking the videos, so the total stays Nq + Nv
    with (
        torch.no_grad(),
        ScoreMatrix(
            scores,
            chunk_size=params.chunk_size,
            max_bytes=matrix_bytes,
            tmp_dir=options.tmp_dir,
            progress=progress,
        ) as matrix,
    ):
        params = _with_bounds(params, matrix)
        check_post_scales(params, posts, matrix.scale)
        t2v, v2t, ran = _rank_both(matrix, qv, protocol, posts, params, banks, progress)
        kind, scale = matrix.kind, matrix.scale
    # CLIP4Clip's multi-sentence path (several captions per video) takes torch.median for t2v only
    lower_t2v = options.mdr == "clip4clip" and n_q > n_v
    return {
        **_per_post(posts, t2v, v2t, lower_t2v),
        "protocol": _protocol(n_q, n_v, protocol, options.mdr, scale, posts, params, banks, ran),
        "score_matrix": kind,
        "eval_s": time.perf_counter() - start,
    }


def _with_bounds(params: PostParams, matrix: ScoreMatrix) -> PostParams:
    """``params`` with the raw scores' rounding bound ``delta`` and the same bound in the precision the
    scores were computed in (``delta_in``: float32's 8 ulps become float64's for a float64 matrix)."""
    delta = TIE_RTOL * matrix.scale
    ratio = torch.finfo(matrix.dtype).eps / torch.finfo(torch.float32).eps
    return replace(params, delta=delta, delta_in=delta * ratio)


def _checked(
    options: EvalOptions, n_v: int, banks: tuple[Scorer, Scorer] | None, have_banks: bool
) -> tuple[str, list[str], PostParams, int]:
    """The options checked in their fixed order (the first refusal is always the same one):
    ``(v2t protocol, post-processings, PostParams, matrix_bytes)``."""
    protocol = check_v2t_protocol(options.v2t_protocol)
    posts = check_postprocessing(options.postprocessing, have_banks)
    if set(posts) & set(EMBEDDING_POSTS):  # evaluate_embeddings takes them out before it gets here
        raise VtrbenchError(EMBEDDING_POSTS_MESSAGE)
    check_mdr(options.mdr)
    qb_k = options.qb_k
    if isinstance(qb_k, bool) or not isinstance(qb_k, int | np.integer) or qb_k < 1:
        raise VtrbenchError(f"qb_k must be an integer >= 1, got {qb_k!r}")
    k = int(qb_k)
    if "qbnorm" in posts and k > n_v:
        raise VtrbenchError(qb_k_message(k, n_v))
    chunk_size = options.chunk_size
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise VtrbenchError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    matrix_bytes = default_matrix_bytes() if options.matrix_bytes is None else options.matrix_bytes
    if isinstance(matrix_bytes, bool) or not isinstance(matrix_bytes, int | np.integer) or matrix_bytes < 0:
        raise VtrbenchError(f"matrix_bytes must be an integer >= 0, got {matrix_bytes!r}")
    logit_scale, dsl_tau, qb_beta = options.logit_scale, options.dsl_tau, options.qb_beta
    if not (np.isfinite(logit_scale) and np.isfinite(dsl_tau) and dsl_tau > 0 and np.isfinite(qb_beta)):
        raise VtrbenchError(
            f"need finite logit_scale and qb_beta and dsl_tau > 0 (got {logit_scale}, {qb_beta}, {dsl_tau})"
        )
    params = PostParams(
        logit_scale=float(logit_scale),
        dsl_tau=float(dsl_tau),
        qb_beta=float(qb_beta),
        chunk_size=int(chunk_size),
        qb_k=k,
        **_post_options(options.post_options, posts, n_v, banks),
    )
    return protocol, posts, params, int(matrix_bytes)


def check_post_scales(params: PostParams, posts: list[str], scale: float) -> None:
    """Refuse, naming the option, a score-scaling parameter (``config.POST_SCALES``) whose factor times
    the test matrix's largest |score| ``scale`` passes ``defaults.POST_SCALE_MAX`` x 1e31: beyond it
    the float32-rounded normalisers (and Sinkhorn's exponents, twice the size) can overflow, and the
    run would end in non-finite top-k scores. Cosine scores (<= 1) never reach it within the
    option's own bound; only a head with unbounded raw scores can."""
    limit = defaults.POST_SCALE_MAX * 1e31
    for post in posts:
        for key in _POST_PARAMS.get(post, ()):
            factor = POST_SCALES[key](getattr(params, key)) if key in POST_SCALES else None
            if factor is not None and factor * scale > limit:
                raise VtrbenchError(
                    f"--post-option {key}={getattr(params, key):g} scales the largest |score| "
                    f"{scale:.3g} beyond {limit:.3g}, where {post}'s float32 normalisers overflow: "
                    f"use a {'smaller' if key != 'sinkhorn_eps' else 'larger'} {key}"
                )


def _post_options(
    asked: dict[str, Any] | None, posts: list[str], n_v: int, banks: tuple[Scorer, Scorer] | None
) -> dict[str, Any]:
    """The hubness parameters, completed with their defaults, with each CSLS k resolved."""
    post_opts = check_post_options(asked or {}, complete=True)
    # csls-bank averages bank neighbours, csls-test test ones (each video's captions, each caption's
    # videos: at most n_v). A k asked for is refused beyond them; the default k (10) is lowered to
    # what a small gallery or bank has, for each of the two on its own (the result records the k used).
    k_bank = post_opts["csls_k"]
    limits = {"csls-test": n_v}
    if banks is not None:
        limits["csls-bank"] = min(b.n_queries for b in banks)
    for name, limit in limits.items():
        if name in posts and post_opts["csls_k"] > limit and "csls_k" in (asked or {}):
            raise VtrbenchError(csls_k_message(post_opts["csls_k"], name, limit))
    if "csls-bank" in limits:
        k_bank = min(k_bank, limits["csls-bank"])
    post_opts["csls_k"] = min(post_opts["csls_k"], n_v)
    return {**post_opts, "csls_k_bank": k_bank}


def _rank_both(
    matrix: ScoreMatrix,
    qv: torch.Tensor,
    protocol: str,
    posts: list[str],
    params: PostParams,
    banks: tuple[Scorer, Scorer] | None,
    progress: Callable[[int], None] | None,
) -> tuple[Ranked, Ranked, dict[str, Any]]:
    """t2v (the matrix's rows) and v2t (its columns), after every post-processing's ``prepare``, and
    what a post-processing decided while it ran (Sinkhorn's iterations, when it stops early)."""
    t2v_states: dict[str, Any] = {}
    v2t_states: dict[str, Any] = {}
    bank_posts = [p for p in posts if p in BANK_POSTS]
    # every bank-based statistic in one pass over each bank: each bank pair is scored once
    stats = (
        (bank_statistics(banks[0], bank_posts, params), bank_statistics(banks[1], bank_posts, params))
        if bank_posts and banks is not None
        else None
    )
    for p in posts:
        t2v_states[p], v2t_states[p] = POSTPROCESSORS[p].prepare(matrix, stats, params)

    def t2v_counter(s: torch.Tensor, slack: torch.Tensor, rows: slice) -> TieCounts:
        return gt_counts(s, qv[rows], slack)

    def v2t_counter(s: torch.Tensor, slack: torch.Tensor, rows: slice) -> TieCounts:
        videos = torch.arange(rows.start, rows.stop, device=s.device)
        return v2t_counts(s, videos, qv, protocol, slack)

    t2v = rank_queries(
        matrix.row_chunks(), matrix.rows, matrix.n_rows, t2v_counter, posts, t2v_states, params, topk=TOPK
    )
    v2t = rank_queries(
        matrix.col_chunks(),
        matrix.cols,
        matrix.n_cols,
        v2t_counter,
        posts,
        v2t_states,
        params,
        topk=TOPK,
        progress=progress,
    )
    ran = {"sinkhorn": {"iterations_run": t2v_states["sinkhorn"].iterations}} if "sinkhorn" in posts else {}
    return t2v, v2t, ran


def _per_post(posts: list[str], t2v: Ranked, v2t: Ranked, lower_t2v: bool) -> dict[str, Any]:
    """The result's metrics, expected ranks, tie counts and top-k of each post-processing."""
    metrics: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    per_query: dict[str, Any] = {}
    topk: dict[str, Any] = {}
    topk_scores: dict[str, Any] = {}
    (t2v_counts, t2v_top, t2v_top_scores), (v2t_all, v2t_top, v2t_top_scores) = t2v, v2t
    for p in posts:
        m_t2v = retrieval_metrics(t2v_counts[p], lower_median=lower_t2v)
        m_v2t = retrieval_metrics(v2t_all[p])
        metrics[p] = {"t2v": m_t2v, "v2t": m_v2t, "RSum": rsum(m_t2v, m_v2t)}
        ranks[p] = {"t2v": expected_ranks(t2v_counts[p]).tolist(), "v2t": expected_ranks(v2t_all[p]).tolist()}
        per_query[p] = {"t2v": counts_to_json(t2v_counts[p]), "v2t": counts_to_json(v2t_all[p])}
        topk[p] = {"t2v": t2v_top[p].tolist(), "v2t": v2t_top[p].tolist()}
        topk_scores[p] = {"t2v": scores_to_json(t2v_top_scores[p]), "v2t": scores_to_json(v2t_top_scores[p])}
    return {
        "metrics": metrics,
        "per_query_ranks": ranks,
        "per_query": per_query,
        "topk": topk,
        "topk_scores": topk_scores,
    }


def _post_record(post: str, params: PostParams, ran: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``post`` was computed with, as the result records them (and ``ran[post]``)."""
    if post == "sinkhorn":
        return {**{key: getattr(params, key) for key in _POST_PARAMS[post]}, **ran.get(post, {})}
    if post == "dsl-bank":
        return {"tau": params.dsl_tau, "logit_scale": params.logit_scale}
    if post == "csls-bank":
        return {"csls_k": params.csls_k_bank}
    return {key: getattr(params, key) for key in _POST_PARAMS[post]}


def _protocol(
    n_q: int,
    n_v: int,
    protocol: str,
    mdr: str,
    scale: float,
    posts: list[str],
    params: PostParams,
    banks: tuple[Scorer, Scorer] | None,
    ran: dict[str, Any],
) -> dict[str, Any]:
    """The result's ``protocol``: how the numbers were made (sizes, protocols, ties, parameters)."""
    bank_sizes = None if banks is None else {"t2v": int(banks[0].n_queries), "v2t": int(banks[1].n_queries)}
    return {
        "n_queries": n_q,
        "n_gallery": n_v,
        "v2t_multi_caption": protocol,
        "mdr": mdr,
        "ties": f"{TIE_POLICY}; {TIE_TOLERANCE_POLICY}",
        "tie_tolerance": {"relative": TIE_RTOL, "scale": scale, "raw_band": 2 * TIE_RTOL * scale},
        "dsl_inference_tau": params.dsl_tau,
        "qbnorm": None
        if "qbnorm" not in posts or bank_sizes is None
        else {"bank_size": dict(bank_sizes), "beta": params.qb_beta, "k": params.qb_k},
        # the parameters of the hubness post-processings that were computed, and the bank sizes of
        # the bank-based ones (the same banks as qbnorm)
        "post_options": {p: _post_record(p, params, ran) for p in posts if p in _POST_PARAMS},
        "post_bank_size": None if bank_sizes is None or not set(posts) & set(BANK_POSTS) else bank_sizes,
    }
