"""Result dicts for the report tests, built independently of vtrbench.report.

- :func:`with_tie_counts`: schema-1 results with whole-number ranks (the committed fixtures) as
  schema 2, adding the per-query tie counts such ranks imply (no ties: ``higher = rank - 1``).
- :func:`scored_result`: a schema-2 result made the way evaluation makes one, from a caption × video
  score matrix through ``vtrbench.metrics`` (``gt_counts``, ``v2t_counts``, ``retrieval_metrics``), so
  that tie-heavy systems (meanP-like twins) can be compared with tie-free ones.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np


def counts_from_ranks(ranks: list[float]) -> dict[str, list[int]]:
    """Tie counts of untied whole-number ranks."""
    assert all(float(r).is_integer() for r in ranks), "only whole ranks have unambiguous counts"
    return {
        "higher": [int(r) - 1 for r in ranks],
        "tied": [0] * len(ranks),
        "tied_correct": [1] * len(ranks),
    }


def with_tie_counts(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of schema-1 results with ``per_query`` counts from their (untied) ranks, as schema 2."""
    out = []
    for r in results:
        r = copy.deepcopy(r)
        r["schema"] = 2
        r["per_query"] = {
            post: {d: counts_from_ranks(ranks) for d, ranks in dirs.items()}
            for post, dirs in r["per_query_ranks"].items()
        }
        out.append(r)
    return out


def _as_json(counts: Any) -> dict[str, list[int]]:
    return {k: [int(x) for x in getattr(counts, k)] for k in ("higher", "tied", "tied_correct")}


def scored_result(
    label: str,
    sim: np.ndarray,
    query_video: np.ndarray,
    *,
    seed: int = 0,
    loss: str = "infonce",
    post: str = "raw",
    v2t_protocol: str = "clip4clip",
) -> dict[str, Any]:
    """A schema-2 result of one post-processing, as evaluation computes it from ``sim`` (Nq × Nv)."""
    from vtrbench import metrics as M

    sim = np.asarray(sim, dtype=np.float64)
    qv = np.asarray(query_video, dtype=np.int64)
    t2v = M.gt_counts(sim, qv)
    v2t = M.v2t_counts(sim.T, np.arange(sim.shape[1]), qv, v2t_protocol)
    m_t2v, m_v2t = M.retrieval_metrics(t2v), M.retrieval_metrics(v2t)
    return {
        "schema": 2,
        "run_id": f"toy.{label}.{loss}.s{seed}",
        "dataset": "toy",
        "kind": "train",
        "head": "meanp",
        "loss": loss,
        "label": label,
        "config_hash": f"hash-{label}-{loss}",
        "seed": seed,
        "cache": {"fingerprint": "fp0", "model": "ViT-B-32", "pretrained": "openai", "random_weights": False},
        "protocol": {
            "test_split": "toy",
            "n_queries": int(sim.shape[0]),
            "n_gallery": int(sim.shape[1]),
            "v2t_multi_caption": v2t_protocol,
            "ties": "expected rank",
            "mdr": "standard",
        },
        "metrics": {post: {"t2v": m_t2v, "v2t": m_v2t, "RSum": M.rsum(m_t2v, m_v2t)}},
        "transductive": {post: post == "dsl"},
        "per_query_ranks": {
            post: {"t2v": M.expected_ranks(t2v).tolist(), "v2t": M.expected_ranks(v2t).tolist()}
        },
        "per_query": {post: {"t2v": _as_json(t2v), "v2t": _as_json(v2t)}},
    }


def twin_scores(
    n_videos: int, captions_per_video: int, *, rng: np.random.Generator, ties: bool
) -> np.ndarray:
    """Scores of a retrieval system on videos that come in twin pairs (2i, 2i+1).

    ``ties=True``: a meanP-like system that cannot tell twins apart (reversed frames, same mean), so
    every caption ties its video with the twin (and often a third video); ``ties=False``: a tie-free
    system of similar quality (small noise breaks every tie).
    """
    n_q = n_videos * captions_per_video
    qv = np.repeat(np.arange(n_videos), captions_per_video)
    base = rng.normal(size=(n_q, n_videos // 2)).round(1)  # coarse scores: many exact ties
    base[np.arange(n_q), qv // 2] += 1.5
    sim = np.repeat(base, 2, axis=1)  # twins score exactly alike
    if not ties:
        sim = sim + rng.normal(scale=0.3, size=sim.shape)
    return sim
