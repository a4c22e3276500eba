"""Paired bootstrap intervals for the baseline differences (from per_query_ranks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.report.loading import _source

# --------------------------------------------------------------------------- statistics


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


def per_query_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-query values of one system (its seeds averaged), shape (Q,).

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
    values = 100.0 * (stacked <= int(name[2:])) if name.startswith("R@") else stacked
    return values.mean(axis=0)
