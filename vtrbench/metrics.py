"""Retrieval metrics: similarity -> rank of the ground truth -> R@K, MdR, MnR.

Pure functions on numpy arrays or torch tensors (CPU or CUDA). Counting is done
in torch on the input's device; what comes back is numpy on the CPU.

Orientation: a similarity matrix ``sim`` always has the test captions as rows and
the test videos as columns, shape ``(Nq, Nv)``; ``query_video[i]`` is the column
(gallery index) of caption ``i``'s video. ``v2t_metrics`` takes the same matrix
and ranks along the other axis.

NOTE: Ties. Scores that are exactly equal are broken uniformly at random, and
vtrbench reports the *expectation* over that randomness instead of drawing one
order. For one query let ``g`` be the number of wrong items scoring strictly
above the best correct item, ``t`` the number of wrong items scoring exactly the
same, and ``c`` the number of correct items at that score (``c = 1`` except in
the ``any-caption`` v2t protocol). Then the stored rank is its expected value
``1 + g + t / (c + 1)`` and R@K averages ``P(rank <= K)`` over queries; for
``c = 1`` that is ``clip((K - g) / (t + 1), 0, 1)``. Without ties this is the
ordinary rank and equals CLIP4Clip's ``compute_metrics``. A constant similarity
gives chance level (R@K = K / N), where "first match" rank code reports 100 %, and
every query weighs the same, where CLIP4Clip's code counts a query with ``t`` ties
``t + 1`` times. MdR and MnR are the median (``np.median``) and the mean of the
expected ranks.

NOTE: What is a tie. The counting functions take an optional ``slack``, each score's rounding
bound: ``j`` is tied with the correct item ``c`` when ``|s_j - s_c| <= slack_j + slack_c``, above it
beyond that. Without ``slack`` (the default, and ``t2v_metrics``/``v2t_metrics`` on a matrix you
pass) ties are exact equality. :mod:`vtrbench.evaluate` always passes one: ``delta = TIE_RTOL *
max|s|`` over the test matrix for raw scores (``TIE_RTOL = 2^-20``, 8 float32 ulps of the largest
score), pushed through each post-processing, because the last bits of a score depend on how the
work was cut (a pairwise head's block shape, the chunk size) and exact equality would make
near-ties (reversed twins under an order-free head) tied or not depending on the cut. Result files
record it in ``protocol.tie_tolerance``. Top-k lists (:func:`topk_indices`) order exactly equal
scores by gallery index; scores within the tolerance but not equal keep their computed order.

NOTE: Multiple captions per video. Text-to-video: every caption is a query over
the videos. Video-to-text, two named protocols:

- ``clip4clip`` (default): the score of video ``v`` for the caption group of
  video ``u`` is the maximum over ``u``'s captions, giving a ``V x V`` matrix in
  which ``u = v`` is ranked among the ``V`` groups. With one caption per video
  this is the plain transposed ranking.
- ``any-caption``: the rank, among all ``Nq`` captions, of the best-ranked correct
  caption; the other correct captions are not counted as competitors.
"""

from __future__ import annotations

import numpy as np
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.registry import unknown_name_message
from vtrbench.tiecounts import (  # noqa: F401 - re-exported: metrics is where callers look them up
    TOPK,
    TieCounts,
    counts_from_json,
    counts_to_json,
    expected_ranks,
    expected_recall,
    median_rank,
    ranks_from_counts,
    recall_from_counts,
)

TIE_POLICY = (
    "expected rank under uniformly random tie-breaking: rank = 1 + g + t/(c+1), R@K = mean P(rank <= K); "
    "g = wrong items scoring above the best correct item, t = wrong items tied with it, c = correct items "
    "tied at that score (c = 1 except v2t any-caption), so P(rank <= K) = clip((K-g)/(t+1), 0, 1) for c = 1; "
    "MdR = np.median, MnR = mean of the expected ranks; without ties identical to CLIP4Clip compute_metrics"
)
# Relative tie tolerance of evaluation (vtrbench.evaluate): every raw score carries a rounding bound
# delta = TIE_RTOL * (the largest |score| of the test matrix); two scores whose difference is within
# the sum of their bounds are tied. 2^-20 = 8 float32 ulps of the largest score. Measured (D = 512,
# 12 frames, 32 tokens, and the tests' D = 16): a pairwise head's block shape moves its scores by
# <= 3 such ulps (xpool 9e-8 of 0.25, wti 6e-8 of 0.49) and reversed twins of order-free heads differ
# by <= 2.6, so a twin pair (16 ulps of band) is tied whatever the blocks, with a 3x margin or more.
TIE_RTOL = 2.0**-20
TIE_TOLERANCE_POLICY = (
    "tolerance: each raw score s carries the rounding bound delta = 2^-20 * max|s| over the test matrix "
    "(protocol.tie_tolerance); two scores are tied when they differ by at most the sum of their bounds; "
    "dsl and sinkhorn scores carry that bound in the precision the scores were computed in (float64 "
    "inputs: 2^-29 of it) pushed through their arithmetic plus their normalisers' own rounding "
    "(vtrbench.eval.postprocess, 'Ties'; sinkhorn's does not grow with the iterations), "
    "qbnorm-normalised rows 2*beta*delta; QB-Norm's top-1/top-k hub tests use the same bands; so ranks "
    "do not depend on eval_block or chunk_size"
)
RECALL_KS = (1, 5, 10, 50)
V2T_PROTOCOLS = ("clip4clip", "any-caption")
# MdR conventions. "standard": np.median (mean of the two middle ranks for an even count).
# "clip4clip": what CLIP4Clip's main_task_retrieval does: with several captions per video the
# text-to-video ranks go through tensor_text_to_video_metrics, which takes torch.median (the lower
# of the two middle values); v2t and single-caption splits use compute_metrics' np.median.
MDR_CONVENTIONS = ("standard", "clip4clip")


def mdr_policy(convention: str) -> str:
    """The sentence a result's protocol records for its MdR convention."""
    check_mdr(convention)
    if convention == "standard":
        return "standard: MdR = np.median of the expected ranks (mean of the two middle values) both ways"
    return (
        "clip4clip: t2v MdR with several captions per video = torch.median (lower middle value), as "
        "CLIP4Clip's multi-sentence path; v2t and one-caption splits np.median"
    )


def check_mdr(convention: str) -> str:
    if convention not in MDR_CONVENTIONS:
        raise VtrbenchError(unknown_name_message("MdR convention", str(convention), list(MDR_CONVENTIONS)))
    return convention


ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, *, device: torch.device | None = None) -> torch.Tensor:
    """numpy/torch -> torch tensor, zero-copy where possible, moved to ``device`` if given."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if device is not None:
        t = t.to(device)
    return t


def _as_scores(sim: ArrayLike) -> torch.Tensor:
    s = as_tensor(sim).detach()
    if s.ndim != 2:
        raise VtrbenchError(f"a similarity matrix must be 2-D, got shape {tuple(s.shape)}")
    if not torch.is_floating_point(s):
        s = s.to(torch.float64)
    # a sum is NaN whenever an entry is, and much cheaper than isnan().any() on big blocks
    if torch.isnan(s.sum()) and torch.isnan(s).any():
        raise VtrbenchError("the similarity matrix contains NaN; check the embeddings")
    return s


def _as_index(idx: ArrayLike, n: int, size: int, what: str, device: torch.device) -> torch.Tensor:
    i = as_tensor(idx, device=device).detach()
    if i.dtype.is_floating_point or i.dtype == torch.bool or i.ndim != 1 or i.shape[0] != n:
        raise VtrbenchError(
            f"{what} must be a 1-D integer array of length {n}, got {i.dtype} {tuple(i.shape)}"
        )
    i = i.to(torch.int64)
    if n and (int(i.min()) < 0 or int(i.max()) >= size):
        raise VtrbenchError(
            f"{what} holds indices outside [0, {size}): min {int(i.min())}, max {int(i.max())}"
        )
    return i


def _count(mask: torch.Tensor) -> torch.Tensor:
    # int32 accumulation: summing a bool block as int64 is several times slower on CPU
    return mask.sum(1, dtype=torch.int32)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.int64).numpy()


def _slack_at(slack: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The bound of each row's item ``idx`` (``(N, 1)``), for a full ``(N, M)`` or broadcast slack."""
    if slack.ndim == 2 and slack.shape[1] > 1:
        return slack.gather(1, idx)
    return slack.reshape(-1, 1) if slack.ndim == 2 else slack.reshape(1, 1).expand(idx.shape[0], 1)


def _as_slack(slack: ArrayLike | float | None, s: torch.Tensor) -> torch.Tensor | None:
    if slack is None:
        return None
    t = torch.as_tensor(slack, device=s.device).to(s.dtype if s.is_floating_point() else torch.float64)
    if t.ndim == 0:
        t = t.reshape(1, 1).expand(s.shape[0], 1)
    if t.ndim != 2 or t.shape[0] != s.shape[0] or t.shape[1] not in (1, s.shape[1]):
        raise VtrbenchError(f"slack of shape {tuple(t.shape)} does not fit scores {tuple(s.shape)}")
    return t


def gt_counts(scores: ArrayLike, gt: ArrayLike, slack: ArrayLike | float | None = None) -> TieCounts:
    """Counts for queries with exactly one correct item.

    Args:
        scores: ``(N, M)`` scores, row = query, column = gallery item (higher = better).
        gt: ``(N,)`` int, the column of each row's correct item.
        slack: None (exact equality is a tie), or each score's rounding bound, ``(N, M)``, ``(N, 1)``
            or a scalar: item ``j`` is tied with the correct item ``c`` when
            ``|s_j - s_c| <= slack_j + slack_c`` and above it when ``s_j - s_c`` exceeds that.

    Returns:
        :class:`TieCounts` with ``tied_correct`` all 1.
    """
    s = _as_scores(scores)
    g = _as_index(gt, s.shape[0], s.shape[1], "gt", s.device)
    target = s.gather(1, g[:, None])
    u = _as_slack(slack, s)
    if u is None:
        higher = _count(s > target)
        tied = _count(s == target) - 1
    elif u.shape[1] == 1 and not bool(u.any()):  # no slack: exact ties, the fast path
        higher = _count(s > target)
        tied = _count(s == target) - 1
    elif u.shape[1] == 1:  # one bound per row: two comparisons against the band's edges
        band = 2 * u
        higher = _count(s > target + band)
        tied = _count(s >= target - band) - higher - 1
    else:
        u_t = _slack_at(u, g[:, None])
        # s - u > t + u_t: above beyond the band; s + u >= t - u_t: not below it
        higher = _count((s - u) > (target + u_t))
        tied = _count((s + u) >= (target - u_t)) - higher - 1
    return TieCounts(_to_numpy(higher), _to_numpy(tied), np.ones(s.shape[0], dtype=np.int64))


def best_correct_counts(
    scores: ArrayLike, correct: ArrayLike, slack: ArrayLike | float | None = None
) -> TieCounts:
    """Counts for queries with one or more correct items; the best-scoring one is ranked.

    Args:
        scores: ``(N, M)`` scores, row = query.
        correct: ``(N, M)`` bool, True where the item is correct; every row needs one.
        slack: rounding bounds as in :func:`gt_counts` (None: exact ties).

    Returns:
        :class:`TieCounts`; correct items below the best one are not competitors.
    """
    s = _as_scores(scores)
    m = as_tensor(correct, device=s.device).to(torch.bool)
    if m.shape != s.shape:
        raise VtrbenchError(f"correct mask shape {tuple(m.shape)} does not match scores {tuple(s.shape)}")
    if s.shape[0] and not bool(m.any(1).all()):
        raise VtrbenchError("every query needs at least one correct item")
    masked = s.masked_fill(~m, -torch.inf)
    u = _as_slack(slack, s)
    if u is None:
        best = masked.amax(1, keepdim=True)
        above, equal = s > best, s == best
    else:
        arg = masked.argmax(1, keepdim=True)
        best = s.gather(1, arg)
        band = u + _slack_at(u, arg)
        diff = s - best
        above, equal = diff > band, diff.abs_() <= band
    wrong = ~m
    return TieCounts(
        _to_numpy(_count(above & wrong)), _to_numpy(_count(equal & wrong)), _to_numpy(_count(equal & m))
    )


def topk_indices(scores: ArrayLike, k: int) -> np.ndarray:
    """``(N, min(k, M))`` int64 gallery indices of each row's ``k`` best items, best first.

    Equal scores are ordered by gallery index (lower first), so the list is deterministic and does
    not depend on how the rows were cut into chunks. NaN is refused like everywhere else.
    """
    s = _as_scores(scores)
    n, m = s.shape
    k = min(int(k), m)
    if k <= 0 or n == 0:
        return np.zeros((n, max(k, 0)), dtype=np.int64)
    top = s.topk(min(k + 1, m), dim=1)
    kth = top.values[:, k - 1 : k]
    idx = top.indices[:, :k]
    # rows where the k-th value is tied beyond the k picked (the (k+1)-th equals it): topk chose
    # among those ties arbitrarily
    if k < m:
        ambiguous = (top.values[:, k] == top.values[:, k - 1]).nonzero().squeeze(1)
    else:
        ambiguous = torch.zeros(0, dtype=torch.int64, device=s.device)
    if ambiguous.numel():
        sa, kth_a = s.index_select(0, ambiguous), kth.index_select(0, ambiguous)
        above, equal = sa > kth_a, sa == kth_a
        need = k - _count(above)
        # everything above the k-th value is in; the k-th value's ties fill the rest in index order
        take = above | (equal & (equal.cumsum(1, dtype=torch.int32) <= need[:, None]))
        idx = idx.clone()
        idx[ambiguous] = take.nonzero()[:, 1].view(-1, k)  # row-major: index order within each row
    # best first, equal scores by gallery index: sort the picks by index, then stably by score
    idx = idx.sort(dim=1).values
    order = s.gather(1, idx).sort(dim=1, descending=True, stable=True).indices
    return _to_numpy(idx.gather(1, order))


def retrieval_metrics(
    counts: TieCounts, ks: tuple[int, ...] = RECALL_KS, *, lower_median: bool = False
) -> dict[str, float]:
    """``{"R@1", "R@5", "R@10", "R@50"}`` in percent (expected recall), then ``"MdR"`` and ``"MnR"``.

    See the module note on ties: ranks are expected ranks, MdR is ``np.median``
    (mean of the two middle values for an even count), or the lower middle value
    with ``lower_median`` (CLIP4Clip's multi-caption t2v, :data:`MDR_CONVENTIONS`).
    """
    n = len(counts.higher)
    if n == 0:
        raise VtrbenchError("no queries to compute retrieval metrics on")
    out = {f"R@{k}": float(100.0 * expected_recall(counts, k).mean()) for k in ks}
    ranks = expected_ranks(counts)
    out["MdR"] = median_rank(ranks, lower=lower_median)
    out["MnR"] = float(ranks.mean())
    return out


def rsum(t2v: dict[str, float], v2t: dict[str, float]) -> float:
    """R@1 + R@5 + R@10 of both directions."""
    return float(sum(d[f"R@{k}"] for d in (t2v, v2t) for k in (1, 5, 10)))


def check_v2t_protocol(protocol: str) -> str:
    """Return ``protocol`` if it is one of :data:`V2T_PROTOCOLS`, else raise with a suggestion."""
    if protocol not in V2T_PROTOCOLS:
        raise VtrbenchError(unknown_name_message("v2t protocol", str(protocol), list(V2T_PROTOCOLS)))
    return protocol


def _is_identity(item_group: torch.Tensor, n_groups: int) -> bool:
    return item_group.numel() == n_groups and bool(
        (item_group == torch.arange(n_groups, device=item_group.device)).all()
    )


def group_max(scores: torch.Tensor, item_group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Max over the columns of each group: ``(N, M)`` scores, ``(M,)`` int group -> ``(N, n_groups)``.

    Groups without a column get ``-inf``. With exactly one column per group this is
    a column permutation, done as a gather because it is cheaper than a scatter.
    """
    n, m = scores.shape
    if m == n_groups and _is_identity(item_group, n_groups):
        return scores  # one column per group, in group order (a test split of one caption per video)
    if m == n_groups:
        first = torch.full((n_groups,), -1, dtype=torch.int64, device=scores.device)
        first[item_group] = torch.arange(m, device=scores.device)
        if bool((first >= 0).all()):
            return scores.index_select(1, first)
    out = torch.full((n, n_groups), -torch.inf, dtype=scores.dtype, device=scores.device)
    return out.scatter_reduce_(1, item_group.expand(n, m), scores, reduce="amax", include_self=True)


def v2t_counts(
    video_scores: ArrayLike,
    videos: ArrayLike,
    caption_video: ArrayLike,
    protocol: str = "clip4clip",
    slack: ArrayLike | float | None = None,
) -> TieCounts:
    """Video-to-text counts for a block of query videos.

    Args:
        video_scores: ``(n, Nq)`` scores, row = query video, column = caption.
        videos: ``(n,)`` int, the gallery index of each row's video.
        caption_video: ``(Nq,)`` int, the video of each caption; every video in
            ``0 .. max`` must own a caption for ``clip4clip``.
        protocol: ``"clip4clip"`` or ``"any-caption"`` (module note).
        slack: rounding bounds as in :func:`gt_counts` (None: exact ties); under ``clip4clip`` a
            caption group's bound is that of its best caption.

    Returns:
        :class:`TieCounts` of the ``n`` query videos.
    """
    check_v2t_protocol(protocol)
    s = _as_scores(video_scores)
    cap = as_tensor(caption_video, device=s.device).to(torch.int64)
    n_videos = int(cap.max()) + 1 if cap.numel() else 0
    v = _as_index(videos, s.shape[0], n_videos, "videos", s.device)
    u = _as_slack(slack, s)
    if protocol == "clip4clip" and _is_identity(cap, s.shape[1]):
        return gt_counts(s, v, u)  # one caption per video, in video order: nothing to group
    if protocol == "clip4clip":
        grouped = group_max(s, cap, n_videos)
        if u is not None and u.shape[1] > 1:
            # a group's bound is that of its best caption (the largest one if several tie for best)
            at_best = s == grouped.index_select(1, cap)
            u = group_max(torch.where(at_best, u.expand_as(s), -torch.inf), cap, n_videos)
        return gt_counts(grouped, v, u)
    return best_correct_counts(s, cap[None, :] == v[:, None], u)


def _check_query_video(sim: torch.Tensor, query_video: ArrayLike) -> torch.Tensor:
    return _as_index(query_video, sim.shape[0], sim.shape[1], "query_video", sim.device)


def t2v_metrics(sim: ArrayLike, query_video: ArrayLike) -> tuple[dict[str, float], np.ndarray]:
    """Text-to-video metrics.

    Args:
        sim: ``(Nq, Nv)`` similarity, rows = captions (queries), columns = videos.
        query_video: ``(Nq,)`` int, gallery index of each caption's video.

    Returns:
        ``(metrics, ranks)``: :func:`retrieval_metrics` dict and the ``(Nq,)``
        float64 expected rank of each caption's video.
    """
    s = _as_scores(sim)
    counts = gt_counts(s, _check_query_video(s, query_video))
    return retrieval_metrics(counts), expected_ranks(counts)


def v2t_metrics(
    sim: ArrayLike, query_video: ArrayLike, protocol: str = "clip4clip"
) -> tuple[dict[str, float], np.ndarray]:
    """Video-to-text metrics from the same ``(Nq, Nv)`` caption x video matrix.

    Args:
        sim: ``(Nq, Nv)`` similarity, rows = captions, columns = videos.
        query_video: ``(Nq,)`` int, gallery index of each caption's video; every
            video needs at least one caption (it is a query).
        protocol: ``"clip4clip"`` (max over each video's captions, V x V ranking)
            or ``"any-caption"`` (rank of the best correct caption among all captions).

    Returns:
        ``(metrics, ranks)`` with ``(Nv,)`` ranks in video order.
    """
    check_v2t_protocol(protocol)
    s = _as_scores(sim)
    qv = _check_query_video(s, query_video)
    missing = s.shape[1] - int(torch.unique(qv).numel())
    if missing:
        raise VtrbenchError(
            f"v2t needs at least one caption per video; {missing} of {s.shape[1]} videos have none"
        )
    videos = torch.arange(s.shape[1], device=s.device)
    counts = v2t_counts(s.T, videos, qv, protocol)
    return retrieval_metrics(counts), expected_ranks(counts)
