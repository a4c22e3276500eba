"""Per-query values behind Δ and †: the same quantity as the table's columns, query by query.

A result file of schema 2 stores, per post-processing and direction, the tie counts every metric was
computed from (``result["per_query"][post][direction] = {"higher": [int], "tied": [int],
"tied_correct": [int]}``, exactly ``vtrbench.metrics.TieCounts``). For one query with ``g`` wrong
items strictly above the best correct one, ``t`` wrong items tied with it and ``c`` correct items at
that score, under uniformly random tie-breaking (the metric's own definition, metrics.py's note):

- expected recall@K = ``P(rank <= K)``: 0 if ``w = K - g <= 0``, 1 if ``w > t``, else
  ``1 - C(t + c - w, c) / C(t + c, c)`` (``w / (t + 1)`` for ``c = 1``);
- expected rank = ``1 + g + t / (c + 1)``.

So ``100 * mean(expected recall@K)`` over the queries IS the stored R@K and ``mean(expected rank)`` the
stored MnR, and a baseline difference of per-query values has the difference of the two columns as
its point estimate, for every K and both directions. Schema-1 files store only the expected ranks,
from which a tied query's recall cannot be recovered (rank 2 is one item above, or two tied): their
Δ and † are "n/a" (:class:`MissingCounts`), and re-running the evaluation writes schema 2.

The formulas are re-implemented here in numpy because ``report`` must not import torch (metrics.py
does); tests/report/test_report_stats.py checks them against ``vtrbench.metrics`` on tie-heavy scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError

COUNT_KEYS = ("higher", "tied", "tied_correct")


class MissingCounts(VtrbenchError):
    """A result has no per-query tie counts for a (post, direction): a schema-1 file."""


def tie_counts(result: dict[str, Any], post: str, direction: str) -> tuple[np.ndarray, ...] | None:
    """``(higher, tied, tied_correct)`` int64 arrays of one (post, direction), or None when absent.

    Shapes and ranges are checked by :func:`vtrbench.report.validate.validate_result` when the file is
    loaded; here only their presence matters.
    """
    per_query = result.get("per_query")
    if not isinstance(per_query, dict):
        return None
    entry = (per_query.get(post) or {}).get(direction) if isinstance(per_query.get(post), dict) else None
    if not isinstance(entry, dict) or not all(k in entry for k in COUNT_KEYS):
        return None
    return tuple(np.asarray(entry[k], dtype=np.int64) for k in COUNT_KEYS)


def expected_ranks(higher: np.ndarray, tied: np.ndarray, tied_correct: np.ndarray) -> np.ndarray:
    """``1 + g + t / (c + 1)`` per query (float64)."""
    g, t, c = (np.asarray(a, dtype=np.float64) for a in (higher, tied, tied_correct))
    return 1.0 + g + t / (c + 1.0)


def expected_recall(higher: np.ndarray, tied: np.ndarray, tied_correct: np.ndarray, k: int) -> np.ndarray:
    """``P(rank <= k)`` per query under uniformly random tie-breaking (float64 in [0, 1])."""
    g, t, c = (np.asarray(a, dtype=np.int64) for a in (higher, tied, tied_correct))
    w = k - g  # wrong items that may still come before a correct one
    out = np.clip(w / (t + 1.0), 0.0, 1.0)
    several = (c > 1) & (w > 0) & (w <= t)
    if several.any():
        # P(no correct item among the first w of the t + c tied ones) = prod_j (t + c - w - j) / (t + c - j)
        # over j < c: the c correct items are placed uniformly among the t + c positions.
        ts, cs, ws = t[several], c[several], w[several]
        miss = np.ones(len(ts))
        for j in range(int(cs.max())):
            step = np.where(j < cs, (ts + cs - ws - j) / np.maximum(ts + cs - j, 1), 1.0)
            miss *= step
        out[several] = 1.0 - miss
    return out


def metric_values(counts: tuple[np.ndarray, ...], name: str) -> np.ndarray:
    """Per-query value of one metric (``R@K`` in percent, or ``MnR``) from tie counts."""
    if name.startswith("R@"):
        return 100.0 * expected_recall(*counts, int(name[2:]))
    if name == "MnR":
        return expected_ranks(*counts)
    raise VtrbenchError(f"{name} is not a mean over queries; it has no per-query values")
