"""Retrieval evaluation from embeddings or a pairwise head, with inference post-processing.

Layer 4 of vtrbench (README, "Layout"): imports the ground (errors, registry, defaults), the core
(config, metrics, results) and nothing above; ``runs/``, ``api`` and ``search`` call it.

Every (caption, video) pair is scored exactly once per evaluation, into a score matrix that t2v (its
rows), v2t (its columns), DSL's normalisers and every post-processing read; each QB-Norm bank is
scored against the gallery once. The modules, bottom up:

- :mod:`~vtrbench.eval.options`: :class:`EvalOptions` (every option of an evaluation, defaults from
  :mod:`vtrbench.defaults`) and :class:`PostParams` (the numbers the post-processings use).
- :mod:`~vtrbench.eval.messages`: the refusals shared with the checks before a run.
- :mod:`~vtrbench.eval.blocks`: how the work is cut, and the rounding that makes it cut-independent.
- :mod:`~vtrbench.eval.scoring`: where raw scores come from (:class:`EmbeddingScorer`,
  :class:`PairScorer`).
- :mod:`~vtrbench.eval.matrix`: :class:`ScoreMatrix`, in memory, on disk or recomputed.
- :mod:`~vtrbench.eval.postprocess`: the post-processings (raw, dsl, qbnorm and the hubness family).
- :mod:`~vtrbench.eval.checks`: the input checks.
- :mod:`~vtrbench.eval.ranking`: :func:`evaluate_scorers`, ranking with ties, the result's numbers.
- :mod:`~vtrbench.eval.evaluate`: :func:`evaluate_embeddings` and :func:`evaluate_pairwise`.

The function ``postprocess.postprocess`` is not exported here: the name would hide the submodule.
"""

from vtrbench.eval.evaluate import evaluate_embeddings, evaluate_pairwise
from vtrbench.eval.matrix import MATRIX_BYTES, MATRIX_BYTES_ENV, ScoreMatrix, default_matrix_bytes
from vtrbench.eval.messages import bank_message, csls_k_message, qb_k_message
from vtrbench.eval.options import CHUNK_SIZE, DEFAULT_POSTS, EvalOptions, PostParams
from vtrbench.eval.postprocess import (
    BANK_POSTS,
    POSTPROCESSORS,
    PostProcessor,
    Scored,
    bank_statistics,
    dsl_normalisers,
    querybank_normalisers,
)
from vtrbench.eval.ranking import Counter, evaluate_scorers, rank_queries, scores_to_json
from vtrbench.eval.scoring import EmbeddingScorer, PairScorer, Scorer

__all__ = [
    "BANK_POSTS",
    "CHUNK_SIZE",
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
    "bank_statistics",
    "csls_k_message",
    "default_matrix_bytes",
    "dsl_normalisers",
    "evaluate_embeddings",
    "evaluate_pairwise",
    "evaluate_scorers",
    "qb_k_message",
    "querybank_normalisers",
    "rank_queries",
    "scores_to_json",
]
