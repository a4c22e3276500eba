"""Per-query tie counts and what follows from them (expected ranks and recalls), numpy only.

A result file stores, for each query, how many wrong items scored above the best correct one, how
many tied with it, and how many correct items share its score (:class:`TieCounts`); every recall,
rank and Δ of the reports is computed from these counts by the functions here. They need no torch,
so that reading and reporting results never imports it (:mod:`vtrbench.metrics` computes the
counts from scores, in torch, and re-exports these names).

Core layer: imports only the ground.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vtrbench.errors import VtrbenchError


def median_rank(ranks: np.ndarray, lower: bool = False) -> float:
    """np.median, or with ``lower`` the lower middle value of the sorted ranks (torch.median's rule)."""
    if not lower:
        return float(np.median(ranks))
    return float(np.sort(ranks)[(len(ranks) - 1) // 2])


class TieCounts(NamedTuple):
    """Per-query counts that determine the expected rank, each ``(N,)`` int64 numpy.

    ``higher``: wrong items scoring strictly above the best correct item;
    ``tied``: wrong items scoring exactly the same; ``tied_correct``: correct items
    at that score (>= 1).
    """

    higher: np.ndarray
    tied: np.ndarray
    tied_correct: np.ndarray


TOPK = 10  # gallery items stored per query in result files (issue 21's browser)


def expected_ranks(counts: TieCounts) -> np.ndarray:
    """``(N,)`` float64 expected rank (1 = best): ``1 + higher + tied / (tied_correct + 1)``."""
    g, t, c = (np.asarray(a, dtype=np.float64) for a in counts)
    return 1.0 + g + t / (c + 1.0)


def expected_recall(counts: TieCounts, k: int) -> np.ndarray:
    """``(N,)`` float64 probability that the rank is <= ``k`` under random tie-breaking.

    With ``w = k - higher`` wrong items still allowed before a correct one, ``t``
    tied wrong and ``c`` tied correct items: 0 if ``w <= 0``, 1 if ``w > t``, else
    ``1 - C(t + c - w, c) / C(t + c, c)``, which is ``w / (t + 1)`` for ``c = 1``.
    """
    g, t, c = (np.asarray(a, dtype=np.int64) for a in counts)
    w = k - g
    out = np.clip(w / (t + 1.0), 0.0, 1.0)
    multi = (c > 1) & (w > 0) & (w <= t)
    if multi.any():
        tm, cm, wm = t[multi], c[multi], w[multi]
        none_in_first_w = np.ones(len(tm))
        for j in range(int(cm.max())):
            factor = (tm + cm - wm - j) / (tm + cm - j)
            none_in_first_w = np.where(j < cm, none_in_first_w * factor, none_in_first_w)
        out[multi] = 1.0 - none_in_first_w
    return out


def counts_to_json(counts: TieCounts) -> dict[str, list[int]]:
    """``TieCounts`` as result files store them: ``{"higher": [..], "tied": [..], "tied_correct": [..]}``."""
    fields = zip(TieCounts._fields, counts, strict=True)
    return {name: np.asarray(a, dtype=np.int64).tolist() for name, a in fields}


def counts_from_json(data: object, *, gallery: int | None = None, what: str = "per_query") -> TieCounts:
    """The inverse of :func:`counts_to_json`, checked: one-line VtrbenchError naming ``what`` when malformed.

    Args:
        data: ``{"higher": [int], "tied": [int], "tied_correct": [int]}`` of equal lengths >= 1, or a
            :class:`TieCounts` (returned as int64 arrays after the same checks).
        gallery: the number of items each query was ranked among, if known: then every query needs
            ``higher + tied + tied_correct <= gallery``.
        what: the key to name in messages (e.g. ``"per_query.raw.t2v"``).

    Returns:
        :class:`TieCounts` of int64 numpy arrays; ``higher, tied >= 0``, ``tied_correct >= 1``.
    """
    if isinstance(data, TieCounts):
        data = dict(zip(TieCounts._fields, data, strict=True))
    if not isinstance(data, dict) or set(data) != set(TieCounts._fields):
        raise VtrbenchError(f"{what} must be an object with exactly the keys {', '.join(TieCounts._fields)}")
    arrays = []
    for name in TieCounts._fields:
        values = data[name]
        if isinstance(values, np.ndarray) or type(values).__module__.startswith("torch"):  # a torch.Tensor
            values = values.tolist()
        if not isinstance(values, list | tuple) or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values
        ):
            raise VtrbenchError(f"{what}.{name} must be a list of integers")
        arrays.append(np.asarray(values, dtype=np.int64).reshape(-1))
    n = {len(a) for a in arrays}
    if len(n) != 1 or n == {0}:
        raise VtrbenchError(f"{what}: higher, tied and tied_correct must be non-empty lists of one length")
    higher, tied, correct = arrays
    if (higher < 0).any() or (tied < 0).any():
        raise VtrbenchError(f"{what}: higher and tied must be >= 0")
    if (correct < 1).any():
        raise VtrbenchError(f"{what}.tied_correct must be >= 1 (the correct item itself)")
    if gallery is not None and (higher + tied + correct > gallery).any():
        bad = int(np.argmax(higher + tied + correct > gallery))
        raise VtrbenchError(
            f"{what}: query {bad} counts {int(higher[bad] + tied[bad] + correct[bad])} items "
            f"in a gallery of {gallery}"
        )
    return TieCounts(higher, tied, correct)


def recall_from_counts(counts: TieCounts | dict, k: int) -> np.ndarray:
    """Per-query expected recall@``k`` (0..1) from stored counts: what ``R@k`` averages (times 100).

    ``100 * recall_from_counts(result["per_query"][post][dir], k).mean()`` equals the stored
    ``result["metrics"][post][dir][f"R@{k}"]`` exactly (the same function computes both).
    """
    return expected_recall(counts_from_json(counts), k)


def ranks_from_counts(counts: TieCounts | dict) -> np.ndarray:
    """Per-query expected ranks from stored counts (what ``per_query_ranks``, MdR and MnR use)."""
    return expected_ranks(counts_from_json(counts))
