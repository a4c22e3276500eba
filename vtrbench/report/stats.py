"""Bootstrap intervals, p-values and multiple-comparison corrections for the baseline differences.

Per-query values come from the tie counts of schema-2 result files (:mod:`vtrbench.report.perquery`):
each query's expected recall@K (or expected rank for MnR), the very quantity the table's columns
average, so Δ's point estimate is the difference of the two columns.

Two procedures, chosen with ``bootstrap=`` in build_report (``--bootstrap`` on the command line):

- ``seeds+queries`` (default, :func:`hierarchical_bootstrap`): each replicate draws every system's
  seeds with replacement (independently per system: seed 0 of one head has nothing to do with seed
  0 of another), then the queries with replacement, shared by both systems (paired). The interval
  covers seed noise and query sampling.
- ``queries`` (:func:`paired_bootstrap`): seeds are averaged first and only queries are resampled;
  the interval ignores seed noise.

p-values (:func:`bootstrap_p`) come from the same replicates as the interval: the two-sided
percentile-bootstrap p = min(1, 2 · min(P*(Δ* <= 0), P*(Δ* >= 0))), P* the share of replicates. It is 0
when no replicate reaches 0 (that is, below 1 / n_boot: more replicates resolve smaller p-values).
:func:`adjust_p` applies Holm's step-down or Bonferroni's correction over a family of cells.

Few seeds. The seed level draws S seeds with replacement from S: with S = 2 there are only 3 distinct
multisets, with S = 3 ten, and the resampled seed variance is (S - 1)/S of the sample variance (the
plug-in estimate), so with 2-3 seeds the intervals are somewhat too narrow; the report warns below
:data:`MIN_SEEDS` seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.report.loading import source_name
from vtrbench.report.perquery import MissingCounts, metric_values, tie_counts

BOOTSTRAPS = ("seeds+queries", "queries")
CORRECTIONS = ("auto", "holm", "bonferroni", "none")
# "auto" applies Holm when the table tests more than this many cells (a "few" comparisons are read
# one by one; beyond that the chance of a false † somewhere grows quickly: 1 - 0.95**4 = 19 %).
FEW_CELLS = 3
MIN_SEEDS = 3
ALPHA = defaults.SIGNIFICANCE
# Bootstrap replicates are weighted sums: a replicate that is 0 in exact arithmetic may come out as
# +-1e-15, which must count on both sides of 0 (identical systems have p = 1).
ZERO_TOL = 1e-9
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
    diff, replicates = paired_replicates(a, b, n_boot=n_boot, seed=seed)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return diff, float(lo), float(hi)


def paired_replicates(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """The point estimate and the ``n_boot`` replicates of :func:`paired_bootstrap` (same draws)."""
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
    return float(d.mean()), replicates


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
    diff, replicates = hierarchical_replicates(a, b, n_boot=n_boot, seed=seed)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return diff, float(lo), float(hi)


def hierarchical_replicates(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """The point estimate and the ``n_boot`` replicates of :func:`hierarchical_bootstrap`."""
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
    return float(a.mean() - b.mean()), replicates


def joint_replicates(
    cells: Sequence[np.ndarray],
    runs: Sequence[int],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    bootstrap: str = "seeds+queries",
) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(k,)`` of ``k`` cells measured on the same queries and ``(k, n_boot)`` bootstrap
    replicates of them, drawn together so that any contrast of the cells has its own replicates.

    ``cells[c]``: shape (S_c, Q), per-seed, per-query values of cell ``c``. ``runs[c]``: which group
    of trained runs the cell's seeds are; the cells of one group hold the same runs in the same order
    (one training evaluated with several post-processings) and share each replicate's seed draw,
    groups are drawn independently (seed 0 of one training has nothing to do with seed 0 of another).
    The queries are drawn once per replicate and shared by every cell (the pairing).

    Procedure (fixed, so that it can be reproduced): ``rng = numpy.random.default_rng(seed)``;
    chunks of ``_CHUNK`` replicates (the last one shorter); for a chunk of ``m``, in this order: for
    each group in order of first appearance in ``runs``, ``rng.integers(0, S_g, size=(m, S_g))``
    (``seeds+queries`` only), then ``q = rng.integers(0, Q, size=(m, Q))``; a replicate of a cell is
    the mean of its values over the drawn seeds and queries. ``queries``: each cell's seeds are
    averaged first and only the queries are drawn.
    """
    arrays = [np.atleast_2d(np.asarray(c, dtype=float)) for c in cells]
    if not arrays or len(runs) != len(arrays) or len({a.shape[1] for a in arrays}) != 1:
        raise ValueError(
            "joint_replicates needs cells of (seeds, queries) on the same queries, one run id each"
        )
    if bootstrap == "queries":
        arrays = [a.mean(axis=0, keepdims=True) for a in arrays]
    groups = list(dict.fromkeys(runs))
    sizes = {g: {a.shape[0] for a, r in zip(arrays, runs, strict=True) if r == g} for g in groups}
    if any(len(s) != 1 for s in sizes.values()):
        raise ValueError(f"cells of one run group must hold the same number of seeds: {sizes}")
    q_n = arrays[0].shape[1]
    rng = np.random.default_rng(seed)
    replicates = np.empty((len(arrays), n_boot))
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        weights = {}
        for g in groups:
            s_n = next(iter(sizes[g]))
            draws = rng.integers(0, s_n, size=(m, s_n)) if bootstrap != "queries" else np.zeros((m, 1), int)
            weights[g] = _counts(draws, s_n) / draws.shape[1]  # (m, S_g)
        wq = _counts(rng.integers(0, q_n, size=(m, q_n)), q_n) / q_n  # (m, Q)
        for c, (a, g) in enumerate(zip(arrays, runs, strict=True)):
            replicates[c, start : start + m] = ((weights[g] @ a) * wq).sum(axis=1)
    return np.array([a.mean() for a in arrays]), replicates


class Effect(NamedTuple):
    """One contrast of :func:`holm_intervals`: its estimate, interval ``[lo, hi]`` at error level
    ``level``, bootstrap p, Holm-adjusted p and Holm's decision."""

    estimate: float
    lo: float
    hi: float
    level: float
    p: float
    p_holm: float
    significant: bool


def holm_intervals(estimates: np.ndarray, replicates: np.ndarray, alpha: float = ALPHA) -> list[Effect]:
    """Holm's step-down test of "no difference" for each of ``m`` contrasts at family-wise level
    ``alpha``, with intervals that agree with the decisions.

    ``replicates``: ``(m, n)`` bootstrap replicates of the contrasts (drawn jointly, e.g. from
    :func:`joint_replicates`). p-values: the add-one two-sided percentile-bootstrap p,
    ``p = min(1, 2 (c + 1) / (n + 1))``, ``c = min(#{r <= 0}, #{r >= 0})`` (0 with :data:`ZERO_TOL`);
    the +1 keeps "no replicate crossed 0" from reading as p = 0 with few replicates. Holm: the
    ``k``-th smallest p (0-based) is rejected when it is ``<= alpha / (m - k)`` and every smaller one
    was; ``p_holm`` is Holm's adjusted p. Intervals: the order statistics ``K`` and ``n - 1 - K`` of a
    contrast's replicates, ``K = floor(level (n + 1) / 2) - 1``, ``level`` the one its step was tested
    at (the first non-rejected step's level for the contrasts after it), so that an interval excludes
    0 exactly when Holm rejects; with ``K < 0`` (too few replicates for that level) the interval is
    ``(-inf, inf)`` and the contrast cannot be rejected.
    """
    est = np.asarray(estimates, dtype=float)
    reps = np.sort(np.asarray(replicates, dtype=float), axis=1)
    m, n = reps.shape
    crossing = np.minimum((reps <= ZERO_TOL).sum(axis=1), (reps >= -ZERO_TOL).sum(axis=1))
    p = np.minimum(1.0, 2.0 * (crossing + 1) / (n + 1))
    p_holm = adjust_p(p, "holm")
    levels = np.empty(m)
    rejected = np.zeros(m, dtype=bool)
    stop: float | None = None
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        levels[i] = alpha / (m - rank) if stop is None else stop
        if stop is None and 2 * (crossing[i] + 1) <= levels[i] * (n + 1):
            rejected[i] = True
        elif stop is None:
            stop = levels[i]
    out = []
    for i in range(m):
        k = int(np.floor(levels[i] * (n + 1) / 2)) - 1
        lo, hi = (float(reps[i, k]), float(reps[i, n - 1 - k])) if k >= 0 else (-np.inf, np.inf)
        out.append(
            Effect(float(est[i]), lo, hi, float(levels[i]), float(p[i]), float(p_holm[i]), bool(rejected[i]))
        )
    return out


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value of "no difference": min(1, 2 min(P*(Δ*<=0), P*(Δ*>=0)))."""
    r = np.asarray(replicates, dtype=float)
    if r.size == 0:
        raise ValueError("bootstrap_p needs at least one replicate")
    below = float(np.mean(r <= ZERO_TOL))
    above = float(np.mean(r >= -ZERO_TOL))
    return min(1.0, 2.0 * min(below, above))


def adjust_p(p: Sequence[float], method: str) -> np.ndarray:
    """Family-wise adjusted p-values (compare them with the level, e.g. 0.05).

    ``holm``: sort ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))`` (1-based), back in the
    input order; ``bonferroni``: ``min(1, m p)``; ``none``: ``p`` unchanged. NaN entries (cells without a
    test) are left out of the family and stay NaN.
    """
    values = np.asarray(p, dtype=float)
    out = np.full(values.shape, np.nan)
    tested = ~np.isnan(values)
    m = int(tested.sum())
    if method == "none" or m == 0:
        out[tested] = values[tested]
        return out
    if method == "bonferroni":
        out[tested] = np.minimum(1.0, m * values[tested])
        return out
    if method != "holm":
        raise VtrbenchError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    idx = np.flatnonzero(tested)
    order = idx[np.argsort(values[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[i]))
        out[i] = running
    return out


def resolve_correction(method: str, n_tested: int) -> str:
    """The correction that applies: ``auto`` is Holm above :data:`FEW_CELLS` tested cells, else none."""
    if method not in CORRECTIONS:
        raise VtrbenchError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    if method == "auto":
        return "holm" if n_tested > FEW_CELLS else "none"
    return method


def _counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(m, k) indices in [0, n) -> (m, n) how often each index was drawn in each row."""
    m = draws.shape[0]
    flat = (draws + n * np.arange(m)[:, None]).ravel()
    return np.bincount(flat, minlength=m * n).reshape(m, n).astype(float)


def per_query_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-query values of one system (its seeds averaged), shape (Q,): see :func:`per_seed_values`."""
    return per_seed_values(results, post, metric).mean(axis=0)


def per_seed_values(results: Sequence[dict[str, Any]], post: str, metric: str) -> np.ndarray:
    """Per-seed, per-query values of one system, shape (seeds, Q), from the stored tie counts.

    R@K: 100 × each query's expected recall@K; MnR: its expected rank (see
    :mod:`vtrbench.report.perquery`); ``results`` are the seeds of one configuration. Raises
    :class:`MissingCounts` naming the first file without ``per_query`` counts (schema 1).
    """
    direction, name = metric.split("/", 1)
    arrays = []
    for i, r in enumerate(results):
        src = source_name(r, i)
        counts = tie_counts(r, post, direction)
        if counts is None:
            raise MissingCounts(
                f"{src}: no per_query.{post}.{direction} tie counts (a schema-1 result); "
                "re-run its evaluation to compare it"
            )
        arrays.append((src, metric_values(counts, name)))
    sizes = {arr.size for _, arr in arrays}
    if len(sizes) > 1:
        raise VtrbenchError(
            f"seeds of one configuration rank different numbers of {direction} queries: "
            + ", ".join(f"{src}: {arr.size}" for src, arr in arrays)
        )
    return np.stack([arr for _, arr in arrays])
