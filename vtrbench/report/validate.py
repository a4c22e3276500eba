"""Ranges and internal consistency of a result dict: one check for every reader of result files.

:func:`validate_result` refuses, with one line naming the file and the key, what no evaluation can
produce: a recall outside [0, 100] or falling with K, a rank below 1 or beyond the gallery, a count of
queries or videos below 1, a negative seed, a post-processing flagged with the wrong transductivity,
stored metrics that the stored per-query data contradict, and a per-epoch ``history`` that no training
writes (``browse`` draws it: a string or an out-of-range value would draw a wrong curve). ``report``
calls it on every result (``load_results`` and ``build_report``); it only reads, so
``results.read_result`` can call it too.

Consistency, "within rounding" meaning :data:`TOL` (values rounded to two decimals pass):

- schema 2 (``per_query`` tie counts, see :mod:`vtrbench.report.perquery`): every R@K, MdR and MnR is
  recomputed from the counts, and ``per_query_ranks`` must be the counts' expected ranks;
- schema 1 (``per_query_ranks`` only): MnR is their mean and MdR their median (or the lower middle
  value under the ``clip4clip`` MdR convention); a tied query's expected recall is not determined by
  its expected rank, so R@K must lie within the bounds the ranks allow. With one correct item an
  expected rank is ``r = 1 + g + t/2`` (``g`` items above, ``t`` tied); over the ``(g, t)`` that give
  ``r``, ``P(rank <= K) = clip((K - g) / (t + 1), 0, 1)`` is monotone in ``g``, so its extremes are at
  ``g = 0`` and ``g = floor(r - 1)``. Without ties both bounds are the plain indicator ``r <= K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.report.perquery import COUNT_KEYS, expected_ranks, expected_recall
from vtrbench.results import DIRECTIONS, POSTPROCESSING, TRANSDUCTIVE

TOL = 0.005 + 1e-9
RECALL_PREFIX = "R@"


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: Keys that name a result's row in a report (every writer has set them since schema 1): a file
#: without its head reached the label code as a float NaN.
IDENTITY_KEYS = ("head", "loss")


class _Refuse:
    def __init__(self, src: str) -> None:
        self.src = src

    def __call__(self, key: str, problem: str) -> VtrbenchError:
        return VtrbenchError(f"{self.src}: {key} {problem}")


def validate_result(data: dict[str, Any], src: str) -> None:
    """Raise one VtrbenchError naming ``src`` and the key when ``data`` cannot be a real result.

    Assumes the structural checks of ``results.read_result`` (types of the top-level keys, finite
    metrics); everything here is about values and their agreement.
    """
    refuse = _Refuse(src)
    for key in IDENTITY_KEYS:
        if not isinstance(data.get(key), str) or not data[key]:
            raise refuse(repr(key), "is missing" if key not in data else f"is {data[key]!r}, not a name")
    seed = data.get("seed")
    if _int(seed) and seed < 0:
        raise refuse("seed", f"is {seed}; seeds are integers >= 0")
    protocol = _check_protocol(data.get("protocol") or {}, refuse)
    _check_flags(data, refuse)
    metrics = data.get("metrics") or {}
    for post, per_post in metrics.items():
        if not isinstance(per_post, dict):
            continue
        for d in DIRECTIONS:
            values = per_post.get(d)
            if isinstance(values, dict):
                _check_ranges(values, f"metrics.{post}.{d}", protocol.gallery[d], refuse)
    ranks_all, counts_all = _per_query_sections(data, refuse)
    for post, per_post in metrics.items():
        if isinstance(per_post, dict):
            _check_post(per_post, post, ranks_all, counts_all, protocol, refuse)
    for post, per_post in metrics.items():
        if isinstance(per_post, dict):
            _check_rsum(per_post, f"metrics.{post}", refuse)
    _check_history(data.get("history"), refuse)


@dataclass
class _Protocol:
    """What the protocol says about the rankings: per direction the gallery size and the number of
    queries (None: not recorded), and the conventions that change what the metrics mean."""

    gallery: dict[str, int | None]
    queries: dict[str, int | None]
    any_caption: bool  # v2t ranks all captions (several correct items per video query)
    lower_mdr: bool  # the clip4clip MdR convention: the lower middle value for t2v


def _check_protocol(protocol: Any, refuse: _Refuse) -> _Protocol:
    if not isinstance(protocol, dict):
        raise refuse("protocol", "must be an object")
    sizes: dict[str, int | None] = {}
    for key in ("n_queries", "n_gallery"):
        value = protocol.get(key)
        if value is None:
            sizes[key] = None
        elif not _int(value) or value < 1:
            raise refuse(f"protocol.{key}", f"is {value!r}; it must be an integer >= 1")
        else:
            sizes[key] = value
    n_q, n_v = sizes["n_queries"], sizes["n_gallery"]
    if n_q is not None and n_v is not None and n_q < n_v:
        raise refuse(
            "protocol.n_queries",
            f"is {n_q}, fewer than the {n_v} videos (protocol.n_gallery); every video has a caption",
        )
    excluded = protocol.get("excluded_failed_videos")
    if excluded is not None and (not _int(excluded) or excluded < 0):
        raise refuse("protocol.excluded_failed_videos", f"is {excluded!r}; it must be an integer >= 0")
    any_caption = protocol.get("v2t_multi_caption") == "any-caption"
    # The gallery each direction ranks in, and how many queries it has (None: not recorded).
    return _Protocol(
        gallery={"t2v": n_v, "v2t": n_q if any_caption else n_v},
        queries={"t2v": n_q, "v2t": n_v},
        any_caption=any_caption,
        lower_mdr=str(protocol.get("mdr") or "").startswith("clip4clip"),
    )


def _check_flags(data: dict[str, Any], refuse: _Refuse) -> None:
    """The transductive flags (fixed per post-processing) and ``cache.random_weights`` (a bool)."""
    transductive = data.get("transductive")
    if isinstance(transductive, dict):
        for post, flag in transductive.items():
            if post not in TRANSDUCTIVE:
                raise refuse(
                    f"transductive.{post}", f"names no post-processing (known: {', '.join(POSTPROCESSING)})"
                )
            if flag != TRANSDUCTIVE[post]:
                raise refuse(
                    f"transductive.{post}",
                    f"is {flag!r}, but {post} is "
                    + ("transductive" if TRANSDUCTIVE[post] else "not transductive")
                    + " by definition",
                )
    cache = data.get("cache")
    if (
        isinstance(cache, dict)
        and "random_weights" in cache
        and not isinstance(cache["random_weights"], bool)
    ):
        raise refuse("cache.random_weights", f"is {cache['random_weights']!r}; it must be true or false")


# history[i] keys -> the lowest value a run can record (None: any finite number; a plugin loss may
# be negative). lr and logit_scale are absent in files written before them; val only with validation.
HISTORY_FLOORS: dict[str, float | None] = {
    "loss": None,
    "seconds": 0.0,
    "pairs_per_s": 0.0,
    "lr": 0.0,
    "logit_scale": 0.0,
}
# history[i].val keys -> their range (recalls in percent; RSum is six of them)
VAL_RANGES = {"t2v/R@1": 100.0, "v2t/R@1": 100.0, "RSum": 600.0}


def _check_history(history: Any, refuse: _Refuse) -> None:
    """``history``: one object per epoch, epochs increasing from 1, each value a finite number in
    its range (browse draws them; a string or an out-of-range value would draw a wrong curve)."""
    if history is None:
        return
    if not isinstance(history, list):
        raise refuse("history", "must be a list of per-epoch objects")
    last = 0
    for i, entry in enumerate(history):
        key = f"history[{i}]"
        if not isinstance(entry, dict):
            raise refuse(key, "must be an object {epoch, loss, seconds, pairs_per_s, ...}")
        epoch = entry.get("epoch")
        if not _int(epoch) or epoch <= last:
            raise refuse(f"{key}.epoch", f"is {epoch!r}; epochs are integers increasing from 1")
        last = epoch
        if "loss" not in entry:
            raise refuse(f"{key}.loss", "is missing")
        for name, floor in HISTORY_FLOORS.items():
            if name not in entry:
                continue
            value = entry[name]
            if not _num(value) or (floor is not None and value < floor):
                need = "a finite number" + ("" if floor is None else f" >= {floor:g}")
                raise refuse(f"{key}.{name}", f"is {value!r}; it must be {need}")
        val = entry.get("val")
        if val is None:
            continue
        if not isinstance(val, dict):
            raise refuse(f"{key}.val", "must be an object of validation metrics")
        for name, value in val.items():
            high = VAL_RANGES.get(name, math.inf)
            if not _num(value) or not 0.0 <= value <= high:
                raise refuse(f"{key}.val.{name}", f"is {value!r}, outside [0, {high:g}]")


def _per_query_sections(data: dict[str, Any], refuse: _Refuse) -> tuple[dict[str, Any], dict[str, Any]]:
    """``per_query_ranks`` and ``per_query`` as objects keyed by known post-processings ({} if absent)."""
    ranks_all = data.get("per_query_ranks")
    ranks_all = ranks_all if isinstance(ranks_all, dict) else {}
    counts_all = data.get("per_query")
    if counts_all is not None and not isinstance(counts_all, dict):
        raise refuse("per_query", "must be an object {post: {direction: {higher, tied, tied_correct}}}")
    counts_all = counts_all or {}
    for name, section in (("per_query_ranks", ranks_all), ("per_query", counts_all)):
        for post in section:
            if post not in POSTPROCESSING:
                raise refuse(
                    f"{name}.{post}", f"names no post-processing (known: {', '.join(POSTPROCESSING)})"
                )
    return ranks_all, counts_all


def _check_post(
    per_post: dict[str, Any],
    post: str,
    ranks_all: dict[str, Any],
    counts_all: dict[str, Any],
    protocol: _Protocol,
    refuse: _Refuse,
) -> None:
    """One post-processing's stored metrics against its per-query tie counts, else its ranks."""
    for d in DIRECTIONS:
        stored = per_post.get(d) if isinstance(per_post.get(d), dict) else {}
        lower = protocol.lower_mdr and d == "t2v"
        ranks = _ranks(ranks_all, post, d, protocol.queries[d], protocol.gallery[d], refuse)
        counts = _counts(counts_all, post, d, protocol.queries[d], protocol.gallery[d], refuse)
        if counts is not None:
            _check_from_counts(stored, counts, ranks, f"{post}.{d}", lower, refuse)
        elif ranks is not None:
            _check_from_ranks(
                stored,
                ranks,
                f"{post}.{d}",
                lower,
                exact_grid=not (d == "v2t" and protocol.any_caption),
                refuse=refuse,
            )


def _check_ranges(values: dict[str, Any], key: str, size: int | None, refuse: _Refuse) -> None:
    recalls: list[tuple[int, float]] = []
    for name, value in values.items():
        if value is None or not _num(value):
            continue
        if name.startswith(RECALL_PREFIX):
            if not 0.0 <= value <= 100.0:
                raise refuse(f"{key}.{name}", f"is {value!r}, outside [0, 100] (a recall in percent)")
            try:
                recalls.append((int(name[len(RECALL_PREFIX) :]), float(value)))
            except ValueError:
                continue
            k = recalls[-1][0]
            if size is not None and k >= size and value < 100.0 - TOL:
                raise refuse(
                    f"{key}.{name}", f"is {value!r}; with {size} items every query is within the top {k}"
                )
        elif name in ("MdR", "MnR"):
            if value < 1.0:
                raise refuse(f"{key}.{name}", f"is {value!r}; ranks start at 1")
            if size is not None and value > size:
                raise refuse(f"{key}.{name}", f"is {value!r}, beyond the {size} items ranked")
    recalls.sort()
    for (k1, v1), (k2, v2) in zip(recalls, recalls[1:], strict=False):
        if v2 < v1 - TOL:
            raise refuse(f"{key}.R@{k2}", f"is {v2!r}, below R@{k1} = {v1!r}; recall cannot fall as K grows")


def _check_rsum(per_post: dict[str, Any], key: str, refuse: _Refuse) -> None:
    rsum = per_post.get("RSum")
    if rsum is None:
        return
    parts = [(per_post.get(d) or {}).get(f"R@{k}") for d in DIRECTIONS for k in (1, 5, 10)]
    if any(not _num(p) for p in parts):
        return
    if abs(rsum - sum(parts)) > 6 * TOL:
        raise refuse(
            f"{key}.RSum", f"is {rsum!r}, but R@1 + R@5 + R@10 of t2v and v2t sum to {sum(parts):.4f}"
        )


def _ranks(
    section: dict[str, Any], post: str, d: str, n: int | None, size: int | None, refuse: _Refuse
) -> np.ndarray | None:
    values = (section.get(post) or {}).get(d) if isinstance(section.get(post), dict) else None
    if values is None:
        return None
    key = f"per_query_ranks.{post}.{d}"
    if not isinstance(values, list) or not values or not all(_num(v) for v in values):
        raise refuse(key, "must be a non-empty list of numbers")
    arr = np.asarray(values, dtype=float)
    if n is not None and arr.size != n:
        raise refuse(key, f"holds {arr.size} ranks for {n} queries")
    bad = np.flatnonzero((arr < 1) | ((arr > size) if size is not None else False))
    if bad.size:
        raise refuse(f"{key}[{bad[0]}]", f"is {values[bad[0]]!r}, outside [1, {size}] (the items ranked)")
    return arr


def _counts(
    section: dict[str, Any], post: str, d: str, n: int | None, size: int | None, refuse: _Refuse
) -> tuple[np.ndarray, ...] | None:
    entry = (section.get(post) or {}).get(d) if isinstance(section.get(post), dict) else None
    if entry is None:
        return None
    key = f"per_query.{post}.{d}"
    if not isinstance(entry, dict) or set(entry) != set(COUNT_KEYS):
        raise refuse(key, f"must be an object with exactly {', '.join(COUNT_KEYS)}")
    arrays = []
    for name in COUNT_KEYS:
        values = entry[name]
        if not isinstance(values, list) or not values or not all(_int(v) for v in values):
            raise refuse(f"{key}.{name}", "must be a non-empty list of integers")
        arr = np.asarray(values, dtype=np.int64)
        low = 1 if name == "tied_correct" else 0
        bad = np.flatnonzero(arr < low)
        if bad.size:
            raise refuse(f"{key}.{name}[{bad[0]}]", f"is {values[bad[0]]}; it must be >= {low}")
        arrays.append(arr)
    lengths = {a.size for a in arrays}
    if len(lengths) > 1:
        raise refuse(key, f"lists differ in length ({', '.join(str(a.size) for a in arrays)})")
    if n is not None and arrays[0].size != n:
        raise refuse(key, f"holds {arrays[0].size} queries, protocol says {n}")
    if size is not None:
        total = arrays[0] + arrays[1] + arrays[2]
        bad = np.flatnonzero(total > size)
        if bad.size:
            i = bad[0]
            raise refuse(
                f"{key}[{i}]",
                f"counts {total[i]} items (higher + tied + tied_correct) in a gallery of {size}",
            )
    return tuple(arrays)


def _close(stored: Any, computed: float) -> bool:
    return not _num(stored) or abs(float(stored) - computed) <= TOL


def _median_ok(stored: Any, ranks: np.ndarray, lower: bool) -> tuple[bool, float]:
    median = float(np.median(ranks))
    if _close(stored, median):
        return True, median
    if lower:
        low = float(np.sort(ranks)[(ranks.size - 1) // 2])
        return _close(stored, low), median
    return False, median


def _check_from_counts(
    stored: dict[str, Any],
    counts: tuple[np.ndarray, ...],
    ranks: np.ndarray | None,
    where: str,
    lower: bool,
    refuse: _Refuse,
) -> None:
    expected = expected_ranks(*counts)
    if ranks is not None:
        if ranks.size != expected.size:
            raise refuse(
                f"per_query_ranks.{where}",
                f"holds {ranks.size} ranks, per_query.{where} {expected.size} queries",
            )
        bad = np.flatnonzero(np.abs(ranks - expected) > 1e-9 * np.maximum(1.0, expected))
        if bad.size:
            i = bad[0]
            raise refuse(
                f"per_query_ranks.{where}[{i}]",
                f"is {ranks[i]!r}, but per_query.{where} gives the expected rank {expected[i]!r}",
            )
    for name, value in stored.items():
        if name.startswith(RECALL_PREFIX) and name[len(RECALL_PREFIX) :].isdigit():
            computed = 100.0 * float(expected_recall(*counts, int(name[len(RECALL_PREFIX) :])).mean())
        elif name == "MnR":
            computed = float(expected.mean())
        elif name == "MdR":
            ok, computed = _median_ok(value, expected, lower)
            if ok:
                continue
        else:
            continue
        if not _close(value, computed):
            raise refuse(
                f"metrics.{where}.{name}",
                f"is {value!r}, but the stored per-query tie counts give {computed:.4f}",
            )


def _check_from_ranks(
    stored: dict[str, Any], ranks: np.ndarray, where: str, lower: bool, *, exact_grid: bool, refuse: _Refuse
) -> None:
    if exact_grid:
        spread = 2.0 * (ranks - 1.0)  # = 2g + t, an integer for one correct item
        off = np.flatnonzero(np.abs(spread - np.round(spread)) > 1e-6)
        if off.size:
            i = off[0]
            raise refuse(
                f"per_query_ranks.{where}[{i}]",
                f"is {ranks[i]!r}, not an expected rank 1 + g + t/2 of one correct item",
            )
    for name, value in stored.items():
        if value is None or not _num(value):
            continue
        if name == "MnR":
            if not _close(value, float(ranks.mean())):
                raise refuse(
                    f"metrics.{where}.MnR", f"is {value!r}, but the stored ranks average {ranks.mean():.4f}"
                )
        elif name == "MdR":
            ok, median = _median_ok(value, ranks, lower)
            if not ok:
                raise refuse(
                    f"metrics.{where}.MdR", f"is {value!r}, but the median stored rank is {median:.4f}"
                )
    if not exact_grid:
        return  # several correct items (v2t any-caption): expected ranks do not bound the recall tightly
    spread = 2.0 * (ranks - 1.0)
    s = np.round(spread) / 2.0  # g + t/2
    g_max = np.floor(s)
    for name, value in stored.items():
        if not (name.startswith(RECALL_PREFIX) and name[len(RECALL_PREFIX) :].isdigit()) or not _num(value):
            continue
        k = int(name[len(RECALL_PREFIX) :])
        at_zero = np.clip(k / (2.0 * s + 1.0), 0.0, 1.0)  # g = 0, t = 2s
        at_max = np.clip((k - g_max) / (2.0 * (s - g_max) + 1.0), 0.0, 1.0)  # g = floor(s), t in {0, 1}
        lo = 100.0 * float(np.minimum(at_zero, at_max).mean())
        hi = 100.0 * float(np.maximum(at_zero, at_max).mean())
        if not lo - TOL <= value <= hi + TOL:
            shown = f"{lo:.4f}" if hi - lo < 1e-9 else f"between {lo:.4f} and {hi:.4f}"
            raise refuse(
                f"metrics.{where}.{name}", f"is {value!r}, but the stored per-query ranks give {shown}"
            )
