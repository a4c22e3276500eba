"""Inference post-processing: the table of post-processings (:data:`POSTPROCESSORS`), each a
``prepare`` from the whole score matrix and the bank scores, and an ``apply`` to a chunk of query rows.

Reported side by side (``results.TRANSDUCTIVE`` says which one sees all test queries at once):

- ``raw``: the similarity ``s = text_emb @ video_emb.T`` (cosine when the caller
  passes L2-normalised embeddings).
- ``dsl`` (CAMoE inference, transductive): with ``S = logit_scale * s``,
  ``S' = S * softmax(S / tau, dim=0)`` over the FULL query x gallery matrix, i.e.
  each gallery item is normalised over all test queries. t2v uses S; v2t applies
  the same rule to ``S.T`` (for each caption, a softmax over the videos).
- ``qbnorm`` (Bogolin et al., CVPR 2022, dynamic inverted softmax, inductive): a
  bank of training queries is scored against the test gallery; hubs are the
  gallery items that are top-1 for at least one bank query. A test query whose
  raw top-1 is a hub gets ``exp(beta s_ij) / sum_b exp(beta bank_bj)``; other rows
  stay raw. t2v uses a bank of training captions over the test videos; v2t a bank
  of training videos over the test captions. Rows are ranked in log space
  (``beta s_ij - logsumexp_b``), which orders them exactly as the exponentials
  without overflow, and a row is either all normalised or all raw. Ties for a
  top-1 count every tied item: a tie can make several items hubs, and a query is
  normalised if any of its tied top items is a hub.
- the hubness family below (``is-bank``/``is-test``, ``csls-bank``/``csls-test``, ``dsl-bank``,
  ``sinkhorn``). All bank-based statistics (qbnorm's too) come from one pass over each bank
  (:func:`bank_statistics`).

Each of the hubness family ranks a query's gallery by ``c * s_ij + g_j``: the raw score times a
constant plus a per-gallery-item offset ``g`` (a term that depends on the query only is left out:
it changes no rank). So memory stays O(chunk x gallery) for factorised heads and O(block) for
pairwise heads, and the statistics are O(gallery) vectors.

Names: ``-test`` reads all test queries at once (transductive), ``-bank`` a bank of training
queries (inductive; the same banks as QB-Norm: training captions scored against the test videos
for t2v, training videos against the test captions for v2t).

- ``is-bank`` / ``is-test``: inverted softmax (Smith et al., ICLR 2017, eq. 5:
  ``P(j | i) = exp(beta s_ij) / sum_m exp(beta s_mj)``, the sum over source items m), ranked in log
  space ``beta s_ij - logsumexp_m beta s_mj``. Over a bank it is QB-Norm applied to every query (no
  hub selection); over the test queries it is the paper's transductive form.
- ``csls-bank`` / ``csls-test``: CSLS (Conneau et al., ICLR 2018, eq. 6:
  ``CSLS(x, y) = 2 cos(x, y) - r_T(x) - r_S(y)``, ``r`` the mean similarity of the k nearest
  neighbours in the other set). ``r_T(x)`` is constant in a query's row and is left out;
  ``r_S(y_j)`` is the mean of gallery item j's k highest scores among the test queries (``-test``)
  or the bank (``-bank``).
- ``dsl-bank``: DSL's inference rule (CAMoE, ``S' = S * softmax(S / tau)`` with ``S = logit_scale *
  s``) with the softmax prior's normaliser taken over the bank instead of the test queries, so it
  is inductive. vtrbench's variant, for a fair main table; DSL itself is transductive.
- ``sinkhorn``: Sinkhorn-Knopp balancing (Sinkhorn 1967; as used for retrieval inference in e.g.
  Park et al., EMNLP 2022) of ``K = exp(s / eps)`` towards uniform marginals: ``n`` iterations (or
  fewer with ``sinkhorn_tol``, below) of
  ``u = a / (K v)`` then ``v = b / (K^T u)`` (``a = 1/Nq``, ``b = 1/Nv``, ``v = 1`` at first),
  giving ``P = diag(u) K diag(v)``; t2v ranks P's rows (``s_ij / eps + log v_j``), v2t its columns
  (``s_ij / eps + log u_i``), so both directions come from one balanced matrix (transductive).

v2t is defined for every one of them by swapping the roles (videos as queries over captions):
vtrbench extends ``is``, ``csls`` and ``dsl-bank`` to v2t with a bank of training videos, as it
does for QB-Norm; ``is-test``/``csls-test`` use the test videos.

For v2t with several captions per video, the ``clip4clip`` grouping (max over a
video's captions) is applied to the post-processed video x caption scores, and
``any-caption`` ranks the post-processed captions directly.

Ties. Post-processed scores are computed in float64; the normalisers are accumulated in float64 and
rounded to float32 (:func:`vtrbench.eval.blocks.rounded`), which makes them independent of the
summation order (hence of ``chunk_size``) and equal for gallery items with equal values, so exact
ties survive post-processing; DSL's normalisers and Sinkhorn's scalings of a float64 score matrix
stay float64 (:func:`~vtrbench.eval.blocks.rounded_for`). Each ``apply`` returns, next to its
scores, the rounding bound they carry given the raw scores' bound ``delta`` (:mod:`vtrbench.eval.ranking`):
``delta`` for raw scores; ``2 beta delta`` for QB-Norm-normalised rows and for ``is`` (the score and
the logsumexp); ``3 delta`` for ``csls`` (``2 s`` and a mean of raw scores). DSL and Sinkhorn push
``delta_in`` through their arithmetic instead: the same 8-ulp bound in the precision the raw scores
were computed in (``delta`` for float32 scores, ``2^-29 delta`` for float64), plus ``rho``, the
normaliser's own rounding (:func:`~vtrbench.eval.blocks.normaliser_bound`: a float32 ulp, or a
float64 accumulation bound for float64 scores); issue 27:

- DSL (``v = z w``, ``z = L s``, ``w = exp(z / tau - lse)``): ``w dz (1 + a) + |v| a`` with
  ``dz = L delta_in``, ``a = exp(e) - 1``, ``e = 2 q dz / tau + rho``: first order in ``dz`` and
  the normaliser's move, whose share not due to this score itself is ``q = 1 - w`` for ``dsl`` (the
  weights of a column sum to 1) and ``q = 1`` for ``dsl-bank`` (its sum does not hold the query).
  The entries that dominate their column (``w`` near 1) get a band of a few float32 ulps, where the
  old ``w L delta (1 + 2 |z| / tau)`` gave about ``2 L delta / tau`` of the score (2e-4 with
  ``L = 100``); float64 inputs get a float64 band. tests/eval/test_tie_bands.py checks that every
  move of the raw scores within ``delta_in`` stays inside it.
- Sinkhorn: ``3 delta_in / eps + rho`` per score, the score's own term and the last iteration's two
  half-updates (each a logsumexp of raw scores / eps, 1-Lipschitz: ``delta_in / eps`` apiece). It
  does not grow with the iterations: earlier iterations reach every gallery item through the same
  other-side scaling, so only what reaches two items differently could move a pair, and it is left
  out. That part is measured, not bounded: moving every raw score by up to ``delta`` (random signs,
  one column up and the rest down, rank-one sign patterns; ``python -m benchmarks.tie_bands
  --sensitivity``) moved a pair's difference by at most 0.79 of the pair's band on the 360 x 120
  hub-heavy and tie-heavy matrices, the same at 5, 50 and 300 iterations (the raw scores' real
  rounding is at most 0.35 ``delta``). The old ``(2 n + 1) delta / eps`` changed the counts of 61 of
  the 360 hub-heavy t2v queries at 300 iterations against the exact reference; this band, none.

Sinkhorn runs ``sinkhorn_iters`` iterations (at most ``defaults.SINKHORN_ITERS_MAX``), or stops
after the first iteration (from the second on) that moved no entry of ``log u`` or ``log v`` by more
than ``sinkhorn_tol`` (0: never); the result records ``iterations_run``.

- ``emcl`` (EMCL as an inference module, Jin et al., NeurIPS 2022; transductive): not a function of
  the score matrix but of the embeddings, so it is listed in :data:`EMBEDDING_POSTS` rather than
  :data:`POSTPROCESSORS`: :func:`vtrbench.eval.evaluate_embeddings` projects every test caption and
  video with the EM step (:mod:`vtrbench.eval.emcl`) and ranks the result as ``raw``. Pairwise heads
  and similarity matrices have no embeddings: it is refused there in one line.

Adding a post-processing = one entry in :data:`POSTPROCESSORS` (plus its name in
``results.POSTPROCESSING`` and ``results.TRANSDUCTIVE``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from vtrbench.eval.blocks import chunks, normaliser_bound, rounded, rounded_for
from vtrbench.eval.matrix import ScoreMatrix
from vtrbench.eval.options import PostParams
from vtrbench.eval.scoring import Scorer

# The post-processings that read a bank of training queries (both directions' banks, or none).
BANK_POSTS = ("qbnorm", "is-bank", "csls-bank", "dsl-bank")
# The post-processings that transform a factorised head's embeddings before they are scored, so they
# have no entry in POSTPROCESSORS (which works on score rows): ``emcl``, EMCL's EM step over the whole
# test split (transductive; vtrbench/eval/emcl.py), whose embeddings are then ranked as ``raw``.
EMBEDDING_POSTS = ("emcl",)
EMBEDDING_POSTS_MESSAGE = (
    "post-processing emcl transforms embeddings (a factorised head's, evaluate_embeddings); a pairwise "
    "head's scores or a similarity matrix have none: leave emcl out"
)

Scored = tuple[torch.Tensor, torch.Tensor]  # (scores, each score's rounding bound, broadcastable)


def _full(n: int, value: float, device: torch.device) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64, device=device)


def _merge_topk(best: torch.Tensor | None, block: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` largest values of each column of ``best`` and ``block`` stacked (``(k, M)``)."""
    both = block if best is None else torch.cat([best, block])
    return both.topk(min(k, both.shape[0]), dim=0).values


def _topk_mean(values: torch.Tensor) -> torch.Tensor:
    # topk returns the values sorted, so this sum runs in one order whatever the chunks were
    return rounded(values.to(torch.float64).mean(0))


# ---------------------------------------------------------------- statistics, each read once


def bank_statistics(scorer: Scorer, posts: list[str], opts: PostParams) -> dict[str, Any]:
    """Every bank-based statistic of the gallery in one pass over ``scorer`` (bank rows x gallery).

    Returns a dict with the entries the posts need: ``qb_lse``/``qb_hubs`` (QB-Norm, as
    :func:`querybank_normalisers`), ``is_lse`` (``logsumexp_b is_beta s_bj``),
    ``dsl_lse`` (``logsumexp_b logit_scale s_bj / tau``; float64 values for float64 scores, as
    :func:`dsl_normalisers`), ``csls_r`` (mean of the ``csls_k_bank`` highest bank scores of each
    gallery item); each ``(M,)`` float64 holding float32 values; ``n_bank``: the bank's size.
    """
    n, dev = scorer.n_gallery, scorer.device
    acc: dict[str, Any] = {}
    for name, on in (("qb_lse", "qbnorm"), ("is_lse", "is-bank"), ("dsl_lse", "dsl-bank")):
        if on in posts:
            acc[name] = _full(n, -math.inf, dev)
    hubs = torch.zeros(n, dtype=torch.bool, device=dev) if "qbnorm" in posts else None
    best: torch.Tensor | None = None
    scale = {"qb_lse": opts.qb_beta, "is_lse": opts.is_beta, "dsl_lse": opts.logit_scale / opts.dsl_tau}
    for rows in chunks(scorer.n_queries, opts.chunk_size):
        s = scorer.rows(rows)
        if hubs is not None:
            k = opts.qb_k
            kth = s.amax(1, keepdim=True) if k == 1 else s.topk(min(k, s.shape[1]), dim=1).values[:, -1:]
            hubs |= (s >= kth - 2 * opts.delta).any(0)
        s64 = s.to(torch.float64)
        for name, lse in acc.items():
            torch.logaddexp(lse, torch.logsumexp(s64 * scale[name], dim=0), out=lse)
        if "csls-bank" in posts:
            best = _merge_topk(best, s, opts.csls_k_bank)
    out: dict[str, Any] = {name: rounded(lse) for name, lse in acc.items()}
    if "dsl_lse" in acc:
        out["dsl_lse"] = rounded_for(acc["dsl_lse"], scorer.dtype)
    out["n_bank"] = scorer.n_queries
    if hubs is not None:
        out["qb_hubs"] = hubs
    if best is not None:
        out["csls_r"] = _topk_mean(best)
    return out


def prepare_bank(name: str) -> Callable[[ScoreMatrix, Any, PostParams], tuple[Any, Any]]:
    """``prepare`` of a bank-based post-processing: its entry of each direction's bank statistics."""

    def prepare(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[Any, Any]:
        assert banks is not None, f"{name} needs the bank statistics"
        return banks[0][name], banks[1][name]

    return prepare


def prepare_is_test(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video: logsumexp over the test captions of ``is_beta s``; per caption: over the test videos."""
    per_video = _full(matrix.n_cols, -math.inf, matrix.device)
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        z = matrix.rows(rows).to(torch.float64) * opts.is_beta
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return rounded(per_video), rounded(per_caption)


def prepare_csls_test(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video: mean of its ``csls_k`` best scores over the test captions; per caption: over the videos."""
    k = opts.csls_k
    best: torch.Tensor | None = None
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        s = matrix.rows(rows)
        best = _merge_topk(best, s, k)
        per_caption[rows] = rounded(s.topk(min(k, s.shape[1]), dim=1).values.to(torch.float64).mean(1))
    assert best is not None
    return _topk_mean(best), per_caption


class SinkhornState(NamedTuple):
    """One direction's Sinkhorn scaling (log space), each gallery item's tie bound, the iterations run."""

    log_scaling: torch.Tensor
    slack: torch.Tensor
    iterations: int


def prepare_sinkhorn(
    matrix: ScoreMatrix, banks: Any, opts: PostParams
) -> tuple[SinkhornState, SinkhornState]:
    """``(log v, log u)`` after ``sinkhorn_iters`` iterations (module docstring), one pass each, or
    fewer when ``sinkhorn_tol`` > 0 and an iteration moved no entry of ``log u``/``log v`` by more."""
    inv_eps = 1.0 / opts.sinkhorn_eps
    log_a, log_b = -math.log(matrix.n_rows), -math.log(matrix.n_cols)
    log_u = torch.zeros(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    log_v = torch.zeros(matrix.n_cols, dtype=torch.float64, device=matrix.device)
    done = 0
    while done < opts.sinkhorn_iters:
        last_u, last_v = log_u.clone(), log_v
        col = _full(matrix.n_cols, -math.inf, matrix.device)
        for rows in matrix.row_chunks():
            z = matrix.rows(rows).to(torch.float64) * inv_eps
            # rows first with the previous v, then these rows' share of the column sums with the new u
            log_u[rows] = rounded_for(log_a - torch.logsumexp(z + log_v, dim=1), matrix.dtype)
            torch.logaddexp(col, torch.logsumexp(z + log_u[rows, None], dim=0), out=col)
        log_v = rounded_for(log_b - col, matrix.dtype)
        done += 1
        # the step is computed from the stored values (float32-rounded for float32 scores, so the
        # same for every chunking unless a value sits on a rounding boundary)
        if opts.sinkhorn_tol > 0 and done > 1:
            step = max(float((log_u - last_u).abs().max()), float((log_v - last_v).abs().max()))
            if step <= opts.sinkhorn_tol:
                break
    v_slack = _sinkhorn_slack(log_v, matrix.n_rows, matrix.dtype, opts)
    u_slack = _sinkhorn_slack(log_u, matrix.n_cols, matrix.dtype, opts)
    return SinkhornState(log_v, v_slack, done), SinkhornState(log_u, u_slack, done)


def _sinkhorn_slack(
    log_scaling: torch.Tensor, n_terms: int, dtype: torch.dtype, opts: PostParams
) -> torch.Tensor:
    """Each gallery item's bound ``3 delta_in / eps + rho``: its own raw score, the last iteration's
    two half-updates (each a logsumexp of raw scores / eps, 1-Lipschitz: ``delta_in / eps`` apiece),
    and the scaling's own rounding ``rho`` (:func:`normaliser_bound`). Earlier iterations are left
    out: it does not grow with the iterations (module docstring, "Ties", says what that leaves)."""
    if opts.delta == 0:  # the tolerance switched off (or an all-zero matrix): exact ties
        return torch.zeros_like(log_scaling)[None, :]
    rho = normaliser_bound(log_scaling, dtype, n_terms)
    return rho.add_(3.0 * opts.delta_in / opts.sinkhorn_eps)[None, :]


# ---------------------------------------------------------------- apply to a chunk of query rows


def _slack(raw: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full((raw.shape[0], 1), value, dtype=torch.float64, device=raw.device)


def apply_is(raw: torch.Tensor, lse: torch.Tensor, opts: PostParams) -> Scored:
    """``is_beta s_ij - logsumexp_m is_beta s_mj`` (the log of Smith et al.'s eq. 5)."""
    # copy=True: float64 scores are otherwise the score matrix itself, which in-place ops would change
    scores = raw.to(torch.float64, copy=True).mul_(opts.is_beta).sub_(lse)
    return scores, _slack(raw, 2 * opts.is_beta * opts.delta)


def apply_csls(raw: torch.Tensor, r: torch.Tensor, opts: PostParams) -> Scored:
    """``2 s_ij - r_S(y_j)`` (Conneau et al.'s eq. 6 without the row-constant ``r_T(x_i)``)."""
    return raw.to(torch.float64, copy=True).mul_(2).sub_(r), _slack(raw, 3 * opts.delta)


def apply_sinkhorn(raw: torch.Tensor, state: SinkhornState | torch.Tensor, opts: PostParams) -> Scored:
    """``log P_ij`` up to the row's own constant: ``s_ij / eps + log`` of the gallery item's scaling.

    ``state``: :func:`prepare_sinkhorn`'s (a bare log-scaling tensor, as earlier releases passed,
    gets the float32 bound of :func:`_sinkhorn_slack`)."""
    if isinstance(state, torch.Tensor):
        state = SinkhornState(state, _sinkhorn_slack(state, 1, torch.float32, opts), 0)
    scores = raw.to(torch.float64, copy=True).div_(opts.sinkhorn_eps).add_(state.log_scaling)
    return scores, state.slack.expand(raw.shape[0], -1)


# ---------------------------------------------------------------- raw, dsl and qbnorm


def dsl_normalisers(
    matrix: ScoreMatrix, *, logit_scale: float, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both DSL softmax denominators (log space) from the caption x video matrix.

    Returns:
        ``(per_video, per_caption)``: ``(Nv,)`` logsumexp over all captions of
        ``logit_scale * s / tau`` (t2v) and ``(Nq,)`` logsumexp over all videos (v2t), float64
        holding float32-rounded values (float64 values for a float64 matrix: :func:`rounded_for`).
    """
    per_video = torch.full((matrix.n_cols,), -torch.inf, dtype=torch.float64, device=matrix.device)
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        z = matrix.rows(rows).to(torch.float64) * (logit_scale / tau)
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return rounded_for(per_video, matrix.dtype), rounded_for(per_caption, matrix.dtype)


class DslState(NamedTuple):
    """One direction's DSL normalisers (log space), their rounding bounds, and whether each sum holds
    the query's own score (``dsl``: the test queries) or not (``dsl-bank``: a bank)."""

    lse: torch.Tensor
    bound: torch.Tensor
    own: bool


def querybank_normalisers(
    scorer: Scorer, *, beta: float, chunk_size: int, k: int = 1, delta: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """QB-Norm statistics of a gallery from a bank of training queries (one pass over the bank).

    Args:
        scorer: bank query (rows) x test gallery raw scores, ``B x M``.

    Returns:
        ``(lse, hubs)``: ``(M,)`` logsumexp over the bank of ``beta * s`` (float64
        holding float32-rounded values) and ``(M,)`` bool, True for items that are
        among the top ``k`` (ties at the k-th score included: within ``2 * delta`` of it, the
        rounding band of two scores) of at least one bank query (the official
        ``get_retrieved_videos(train_test, k)``, default 1).
    """
    lse = torch.full((scorer.n_gallery,), -torch.inf, dtype=torch.float64, device=scorer.device)
    hubs = torch.zeros(scorer.n_gallery, dtype=torch.bool, device=scorer.device)
    for rows in chunks(scorer.n_queries, chunk_size):
        s = scorer.rows(rows)
        kth = s.amax(1, keepdim=True) if k == 1 else s.topk(min(k, s.shape[1]), dim=1).values[:, -1:]
        hubs |= (s >= kth - 2 * delta).any(0)
        torch.logaddexp(lse, torch.logsumexp(s.to(torch.float64).mul_(beta), dim=0), out=lse)
    return rounded(lse), hubs


# ---------------------------------------------------------------- the table of post-processings
#
# A post-processing is two functions: ``prepare(matrix, banks, opts) -> (t2v_state, v2t_state)``
# computes what it needs from the whole caption x video matrix (and the banks' scores, each scored
# once), and ``apply(raw, state, opts) -> scores`` turns one chunk of raw query rows into the scores
# that are ranked. Adding one = one entry in POSTPROCESSORS (plus its name in results.POSTPROCESSING
# and results.TRANSDUCTIVE).


def _prepare_none(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[None, None]:
    return None, None


def _apply_raw(raw: torch.Tensor, state: Any, opts: PostParams) -> Scored:
    return raw, torch.full((raw.shape[0], 1), opts.delta, dtype=raw.dtype, device=raw.device)


def _prepare_dsl(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[DslState, DslState]:
    per_video, per_caption = dsl_normalisers(matrix, logit_scale=opts.logit_scale, tau=opts.dsl_tau)
    return (
        DslState(per_video, normaliser_bound(per_video, matrix.dtype, matrix.n_rows), True),
        DslState(per_caption, normaliser_bound(per_caption, matrix.dtype, matrix.n_cols), True),
    )


def _prepare_dsl_bank(matrix: ScoreMatrix, banks: Any, opts: PostParams) -> tuple[DslState, DslState]:
    assert banks is not None, "dsl-bank needs the bank statistics"
    t2v, v2t = banks[0], banks[1]
    return (
        DslState(t2v["dsl_lse"], normaliser_bound(t2v["dsl_lse"], matrix.dtype, t2v["n_bank"]), False),
        DslState(v2t["dsl_lse"], normaliser_bound(v2t["dsl_lse"], matrix.dtype, v2t["n_bank"]), False),
    )


def _apply_dsl(raw: torch.Tensor, state: DslState | torch.Tensor, opts: PostParams) -> Scored:
    """``z * softmax_weight`` with ``z = logit_scale * s``, and its first-order bound (module docstring,
    "Ties"): ``w dz (1 + a) + |v| a``, ``a = exp(e) - 1``, ``e = 2 q dz / tau + rho``, ``dz =
    logit_scale * delta_in``, ``q = 1 - w`` where the normaliser's sum holds this score (``dsl``) and
    1 where it does not (``dsl-bank``), ``rho`` the normaliser's own rounding."""
    if isinstance(state, torch.Tensor):  # a bare normaliser, as earlier releases passed
        state = DslState(state, normaliser_bound(state, torch.float32, 1), False)
    # copy=True: float64 scores are otherwise the matrix itself, and in-place ops would change it
    z = raw.to(torch.float64, copy=True).mul_(opts.logit_scale)
    w = (z / opts.dsl_tau).sub_(state.lse).exp_()  # the softmax weight over the queries
    v = z.mul_(w)
    if opts.delta == 0:  # exact ties (an all-zero matrix, or tolerance switched off)
        return v, torch.zeros((raw.shape[0], 1), dtype=torch.float64, device=raw.device)
    dz = opts.logit_scale * opts.delta_in
    rho = state.bound[None, :] if state.bound.ndim == 1 else state.bound
    # q: the share of the normaliser's first-order move that is not this score's own move (the
    # weights of a column sum to 1); w's own rounding (rho) widens it by w * rho
    q = (1.0 - w * (1.0 - rho)).clamp_(min=0.0) if state.own else torch.ones_like(w)
    e = q.mul_(2.0 * dz / opts.dsl_tau).add_(rho)  # |log w' - log w| to first order
    a = e.expm1_()  # |log w' - log w| <= e gives |w'/w - 1| <= exp(e) - 1
    wdz = w.mul_(dz)
    # w dz (1 + a) + |v| a, in the buffers already held
    return v, a.mul_(v.abs().add_(wdz)).add_(wdz)


def _prepare_qbnorm(
    matrix: ScoreMatrix, banks: tuple[dict[str, Any], dict[str, Any]] | None, opts: PostParams
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    # banks: each direction's bank_statistics (one pass over the bank for every post)
    assert banks is not None
    return (banks[0]["qb_lse"], banks[0]["qb_hubs"]), (banks[1]["qb_lse"], banks[1]["qb_hubs"])


def _apply_qbnorm(raw: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], opts: PostParams) -> Scored:
    bank_lse, hubs = state
    # the query's top-1 items: everything within the rounding band of two scores of the maximum
    top = raw >= raw.amax(1, keepdim=True) - 2 * opts.delta
    normalise = (top & hubs).any(1).nonzero().squeeze(1)
    slack = torch.full((raw.shape[0], 1), opts.delta, dtype=torch.float64, device=raw.device)
    if normalise.numel() == 0:
        return raw, slack.to(raw.dtype)
    s = raw.to(torch.float64, copy=True)  # never write into the score matrix
    s[normalise] = s[normalise].mul_(opts.qb_beta).sub_(bank_lse)
    # beta*s carries beta*delta, the bank's logsumexp up to beta*delta
    slack[normalise] = 2 * opts.qb_beta * opts.delta
    return s, slack


@dataclass(frozen=True)
class PostProcessor:
    prepare: Callable[[ScoreMatrix, Any, PostParams], tuple[Any, Any]]
    apply: Callable[[torch.Tensor, Any, PostParams], Scored]


POSTPROCESSORS: dict[str, PostProcessor] = {
    "raw": PostProcessor(_prepare_none, _apply_raw),
    "dsl": PostProcessor(_prepare_dsl, _apply_dsl),
    "qbnorm": PostProcessor(_prepare_qbnorm, _apply_qbnorm),
    "is-bank": PostProcessor(prepare_bank("is_lse"), apply_is),
    "is-test": PostProcessor(prepare_is_test, apply_is),
    "csls-bank": PostProcessor(prepare_bank("csls_r"), apply_csls),
    "csls-test": PostProcessor(prepare_csls_test, apply_csls),
    "dsl-bank": PostProcessor(_prepare_dsl_bank, _apply_dsl),
    "sinkhorn": PostProcessor(prepare_sinkhorn, apply_sinkhorn),
}


def postprocess(
    raw: torch.Tensor, post: str, state: Any, *, logit_scale: float, tau: float, beta: float
) -> torch.Tensor:
    """Scores of one chunk after post-processing ``post`` (rows = queries, columns = the whole gallery).

    Args:
        raw: ``(n, M)`` raw similarity of ``n`` queries with all ``M`` gallery items.
        state: what ``POSTPROCESSORS[post].prepare`` computed for this direction.

    Returns:
        ``(n, M)``: ``raw`` itself for ``"raw"``, float64 otherwise; only the order
        within a row is meaningful.
    """
    opts = PostParams(logit_scale=logit_scale, dsl_tau=tau, qb_beta=beta, chunk_size=1, qb_k=1)
    return POSTPROCESSORS[post].apply(raw, state, opts)[0]
