"""The two ways into an evaluation: embeddings of a factorised head (:func:`evaluate_embeddings`) and
the block scorer of a pairwise head (:func:`evaluate_pairwise`). Each checks its data, builds its
scorers and one :class:`EvalOptions`, and hands them to :func:`vtrbench.eval.ranking.evaluate_scorers`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from vtrbench import defaults
from vtrbench.config import check_post_options
from vtrbench.errors import VtrbenchError
from vtrbench.eval.checks import check_block, check_embeddings, check_postprocessing, check_state
from vtrbench.eval.emcl import emcl_embeddings, merge_results
from vtrbench.eval.options import CHUNK_SIZE, EvalOptions
from vtrbench.eval.postprocess import BANK_POSTS, EMBEDDING_POSTS
from vtrbench.eval.ranking import evaluate_scorers
from vtrbench.eval.scoring import EmbeddingScorer, PairScorer


def evaluate_embeddings(
    text_emb: torch.Tensor | np.ndarray,
    video_emb: torch.Tensor | np.ndarray,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    bank_text: torch.Tensor | np.ndarray | None = None,
    bank_video: torch.Tensor | np.ndarray | None = None,
    dsl_tau: float = defaults.DSL_TAU,
    qb_beta: float = defaults.QB_BETA,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    chunk_size: int = CHUNK_SIZE,
    postprocessing: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    qb_k: int = defaults.QB_K,
    mdr: str = defaults.MDR,
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
            :mod:`vtrbench.eval.postprocess`; ``emcl``: :mod:`vtrbench.eval.emcl`, scored from the
            EM-projected embeddings); None: ``raw``, ``dsl`` and (with banks) ``qbnorm``. A
            bank-based one asked without banks is refused.
        post_options: parameters of the post-processings of :mod:`vtrbench.eval.postprocess`
            (``is_beta``, ``csls_k``, ``sinkhorn_iters``, ``sinkhorn_eps``, ``sinkhorn_tol``; defaults
            ``defaults.POST_DEFAULTS``), checked by :func:`vtrbench.config.check_post_options`.
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
    options = EvalOptions.from_arguments(locals())  # first: locals() holds only the arguments
    start = time.perf_counter()
    text = check_embeddings("text_emb", text_emb, None, None)
    video = check_embeddings("video_emb", video_emb, text.shape[1], text.device)
    if video.dtype != text.dtype:
        common = torch.promote_types(text.dtype, video.dtype)
        text, video = text.to(common), video.to(common)
    if (bank_text is None) != (bank_video is None):
        raise VtrbenchError("qbnorm needs both bank_text (t2v) and bank_video (v2t), or neither")
    banks = None
    if bank_text is not None and set(BANK_POSTS) & set(check_postprocessing(postprocessing, True)):
        t2v_bank = check_embeddings("bank_text", bank_text, text.shape[1], text.device).to(text.dtype)
        v2t_bank = check_embeddings("bank_video", bank_video, text.shape[1], text.device).to(text.dtype)
        banks = (EmbeddingScorer(t2v_bank, video), EmbeddingScorer(v2t_bank, text))
    posts = check_postprocessing(postprocessing, bank_text is not None)
    main = None
    if set(posts) - set(EMBEDDING_POSTS):
        main = evaluate_scorers(
            EmbeddingScorer(text, video),
            query_video,
            replace(options, postprocessing=[p for p in posts if p not in EMBEDDING_POSTS]),
            banks=banks,
            have_banks=bank_text is not None,
            progress=progress,
            start=start,
        )
    if "emcl" not in posts:
        assert main is not None
        return main
    return _with_emcl(main, text, video, query_video, options, posts, None if main else progress)


def _with_emcl(
    main: dict[str, Any] | None,
    text: torch.Tensor,
    video: torch.Tensor,
    query_video: torch.Tensor | np.ndarray,
    options: EvalOptions,
    posts: list[str],
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """``main`` (the other post-processings' result) with ``emcl``: the EM step over the whole test
    split (:mod:`vtrbench.eval.emcl`), its embeddings scored and ranked as raw ones."""
    post_opts = check_post_options(options.post_options or {}, complete=True)
    emcl_text, emcl_video = emcl_embeddings(text, video, post_opts)
    emcl = evaluate_scorers(
        EmbeddingScorer(emcl_text, emcl_video),
        query_video,
        replace(options, postprocessing=["raw"]),
        have_banks=False,
        progress=progress,
    )
    return merge_results(main, emcl, posts, post_opts)


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
    dsl_tau: float = defaults.DSL_TAU,
    qb_beta: float = defaults.QB_BETA,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    chunk_size: int = CHUNK_SIZE,
    postprocessing: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    qb_k: int = defaults.QB_K,
    mdr: str = defaults.MDR,
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
    direction and post-processing reads it (:mod:`vtrbench.eval.matrix`).
    """
    options = EvalOptions.from_arguments(locals())  # first: locals() holds only the arguments
    start = time.perf_counter()
    for name, state in (("text_state", text_state), ("video_state", video_state)):
        check_state(name, state)
    if (bank_text_state is None) != (bank_video_state is None):
        raise VtrbenchError("qbnorm needs both bank_text_state (t2v) and bank_video_state (v2t), or neither")
    block = check_block(block)
    banks = None
    if bank_text_state is not None and set(BANK_POSTS) & set(check_postprocessing(postprocessing, True)):
        check_state("bank_text_state", bank_text_state)
        check_state("bank_video_state", bank_video_state)
        banks = (
            PairScorer(score, bank_text_state, video_state, block=block),
            PairScorer(score, text_state, bank_video_state, block=block, queries="videos"),
        )
    return evaluate_scorers(
        PairScorer(score, text_state, video_state, block=block),
        query_video,
        options,
        banks=banks,
        have_banks=bank_text_state is not None,
        progress=progress,
        start=start,
    )
