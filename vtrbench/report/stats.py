"""Bootstrap intervals for the baseline differences (from per_query_ranks).

Two procedures, chosen with ``bootstrap=`` in build_report (``--bootstrap`` on the command line):

- ``seeds+queries`` (default, :func:`hierarchical_bootstrap`): each replicate draws every system's
  seeds with replacement (independently per system: seed 0 of one head has nothing to do with seed
  0 of another), then the queries with replacement, shared by both systems (paired). The interval
  covers seed noise and query sampling.
- ``queries`` (:func:`paired_bootstrap`): seeds are averaged first and only queries are resampled;
  the interval ignores seed noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.report.loading import _source

BOOTSTRAPS = ("seeds+queries", "queries")
# Replicates resampled at once: bounds memory to about _CHUNK x seeds x queries floats.
_CHUNK = 64


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean difference ``mean(a - b)`` over queries and its paired percentile 95 % interval.

    ``a``, ``b``: shape (Q,), per-query values of two systems on the same queries in the same order.
    Procedure (fixed so that it can be reproduced independently): ``d = a - b``;
    ``rng = numpy.random.default_rng(seed)``; for each of ``n_boot`` replicates, one call
    ``idx = rng.integers(0, Q, size=Q)`` draws query indices with replacement, shared by both systems
    (that is the pairing), and the replicate is ``d[idx].mean()``; the interval is
    ``numpy.percentile(replicates, [2.5, 97.5])`` (linear interpolation). Returns (diff, lo, hi).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equal-length 1-d arrays, got {a.shape} and {b.shape}")
    d = a - b
    q = d.size
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for i in range(n_boot):
        replicates[i] = d[rng.integers(0, q, size=q)].mean()
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def hierarchical_bootstrap(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Difference of means ``a.mean() - b.mean()`` with a 95 % interval over seeds and queries.

    ``a``: shape (Sa, Q), ``b``: shape (Sb, Q): per-seed, per-query values of two systems on the same
    queries in the same order. Procedure (fixed so that it can be reproduced independently):
    ``rng = numpy.random.default_rng(seed)``; replicates are made in chunks of ``_CHUNK`` (the last
    one shorter); for a chunk of ``m`` replicates, in this order, ``sa = rng.integers(0, Sa, size=(m,
    Sa))``, ``sb = rng.integers(0, Sb, size=(m, Sb))``, ``q = rng.integers(0, Q, size=(m, Q))``;
    replicate ``r`` is ``a[sa[r]][:, q[r]].mean() - b[sb[r]][:, q[r]].mean()``. The interval is
    ``numpy.percentile(replicates, [2.5, 97.5])``. Returns (diff, lo, hi).
    """
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.size == 0 or b.size == 0:
        raise ValueError(f"hierarchical_bootstrap needs (seeds, queries) arrays, got {a.shape} and {b.shape}")
    (sa_n, q_n), sb_n = a.shape, b.shape[0]
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        sa = rng.integers(0, sa_n, size=(m, sa_n))
        sb = rng.integers(0, sb_n, size=(m, sb_n))
        q = rng.integers(0, q_n, size=(m, q_n))
        # Same numbers as the loop in the docstring, without materialising the draws: a replicate's
        # mean over its (seed, query) grid is a weighted sum, the weights being how often each seed
        # and each query was drawn.
        wa = _counts(sa, sa_n) / sa_n  # (m, Sa)
        wb = _counts(sb, sb_n) / sb_n
        wq = _counts(q, q_n) / q_n  # (m, Q)
        replicates[start : start + m] = ((wa @ a - wb @ b) * wq).sum(axis=1)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(m, k) indices in [0, n) -> (m, n) how often each index was drawn in each row."""
    m = draws.shape[0]
    flat = (draws + n * np.arange(m)[:, None]).ravel()
    return np.bincount(flat, minlength=m * n).reshape(m, n).astype(float)


def per_query_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-query values of one system (its seeds averaged), shape (Q,): see :func:`per_seed_values`."""
    return per_seed_values(results, post, metric).mean(axis=0)


def per_seed_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-seed, per-query values of one system, shape (seeds, Q).

    R@K: 100 × (stored rank <= K); MnR: the stored rank. ``results`` are the seeds of one configuration.
    """
    direction, name = metric.split("/", 1)
    arrays = []
    for i, r in enumerate(results):
        src = _source(r, i)
        try:
            ranks = r["per_query_ranks"][post][direction]
        except (KeyError, TypeError):
            raise VtrbenchError(
                f"{src}: no per_query_ranks.{post}.{direction}; "
                "a baseline difference needs the per-query ranks"
            ) from None
        try:
            arr = np.asarray(ranks, dtype=float)
        except (TypeError, ValueError):
            raise VtrbenchError(
                f"{src}: per_query_ranks.{post}.{direction} must be a list of numbers"
            ) from None
        if arr.ndim != 1 or arr.size == 0:
            raise VtrbenchError(f"{src}: per_query_ranks.{post}.{direction} must be a non-empty list")
        arrays.append((src, arr))
    sizes = {arr.size for _, arr in arrays}
    if len(sizes) > 1:
        raise VtrbenchError(
            f"seeds of one configuration rank different numbers of {direction} queries: "
            + ", ".join(f"{src}: {arr.size}" for src, arr in arrays)
        )
    stacked = np.stack([arr for _, arr in arrays])
    return 100.0 * (stacked <= int(name[2:])) if name.startswith("R@") else stacked
