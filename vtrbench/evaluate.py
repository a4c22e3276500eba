"""Deprecated: moved to vtrbench.eval (the evaluation core, split by concern: options, scoring,
matrix, postprocess, ranking, evaluate, messages).

Every public name this module had is re-exported until its callers import ``vtrbench.eval``. Two
things do not carry over: a monkeypatch here does not reach the code that runs (patch the module
that looks the name up, e.g. ``vtrbench.eval.ranking.TIE_RTOL`` or ``.ScoreMatrix``), and
``EvalOptions`` is now the caller's options (``logit_scale``, ``dsl_tau``, ``qb_beta`` ...); the
numbers the post-processings compute with, which it used to hold, are ``PostParams``.
"""

from vtrbench.eval import (
    BANK_POSTS,
    DEFAULT_POSTS,
    MATRIX_BYTES,
    MATRIX_BYTES_ENV,
    POSTPROCESSORS,
    Counter,
    EmbeddingScorer,
    EvalOptions,
    PairScorer,
    PostParams,
    PostProcessor,
    Scored,
    ScoreMatrix,
    Scorer,
    bank_message,
    csls_k_message,
    default_matrix_bytes,
    dsl_normalisers,
    evaluate_embeddings,
    evaluate_pairwise,
    evaluate_scorers,
    qb_k_message,
    querybank_normalisers,
    rank_queries,
    scores_to_json,
)
from vtrbench.eval.postprocess import postprocess

__all__ = [
    "BANK_POSTS",
    "DEFAULT_POSTS",
    "MATRIX_BYTES",
    "MATRIX_BYTES_ENV",
    "POSTPROCESSORS",
    "Counter",
    "EmbeddingScorer",
    "EvalOptions",
    "PairScorer",
    "PostParams",
    "PostProcessor",
    "ScoreMatrix",
    "Scored",
    "Scorer",
    "bank_message",
    "csls_k_message",
    "default_matrix_bytes",
    "dsl_normalisers",
    "evaluate_embeddings",
    "evaluate_pairwise",
    "evaluate_scorers",
    "postprocess",
    "qb_k_message",
    "querybank_normalisers",
    "rank_queries",
    "scores_to_json",
]
