"""The hubness post-processings beyond raw/dsl/qbnorm: inverted softmax, CSLS, DSL with a bank, Sinkhorn.

Each is a ``prepare`` (statistics of the gallery from the whole test matrix, or from a bank of
training queries, computed once) and an ``apply`` to a chunk of raw query rows, registered in
:data:`vtrbench.evaluate.POSTPROCESSORS`; the evaluation core (score once, tie counts, top-k) is
unchanged. Every one of them ranks a query's gallery by ``c * s_ij + g_j``: the raw score times a
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
  Park et al., EMNLP 2022) of ``K = exp(s / eps)`` towards uniform marginals: ``n`` iterations of
  ``u = a / (K v)`` then ``v = b / (K^T u)`` (``a = 1/Nq``, ``b = 1/Nv``, ``v = 1`` at first),
  giving ``P = diag(u) K diag(v)``; t2v ranks P's rows (``s_ij / eps + log v_j``), v2t its columns
  (``s_ij / eps + log u_i``), so both directions come from one balanced matrix (transductive).

v2t is defined for every one of them by swapping the roles (videos as queries over captions):
vtrbench extends ``is``, ``csls`` and ``dsl-bank`` to v2t with a bank of training videos, as it
does for QB-Norm; ``is-test``/``csls-test`` use the test videos.

Ties. As for DSL/QB-Norm, normalisers are accumulated in float64 and rounded to float32 (so they
do not depend on the chunks, and equal gallery items get equal values), and each apply returns
the rounding bound its scores carry given the raw scores' bound ``delta`` (module docstring of
:mod:`vtrbench.evaluate`): ``2 beta delta`` for ``is`` (the score and the logsumexp), ``3 delta``
for ``csls`` (``2 s`` and a mean of raw scores), DSL's bound for ``dsl-bank``, and
``(2 n + 1) delta / eps`` for Sinkhorn (each logsumexp is 1-Lipschitz in the max norm, so an
iteration adds at most ``2 delta / eps`` to the scalings' bound).
"""

from __future__ import annotations

import math
from typing import Any

import torch

# The parameters of these post-processings, their defaults and what they accept. They are run options
# (``post_options`` in TrainConfig/RunSpec, ``--post-option KEY=VALUE`` on the command line), checked
# by vtrbench.config.check_post_options.
POST_DEFAULTS: dict[str, int | float] = {
    "is_beta": 20.0,  # inverse temperature on cosine scores, as QB-Norm's default beta
    "csls_k": 10,  # Conneau et al.'s k
    "sinkhorn_iters": 5,
    "sinkhorn_eps": 0.05,  # K = exp(s / eps) on cosine scores: 1 / eps = 20, as is_beta
}
BANK_POSTS = ("qbnorm", "is-bank", "csls-bank", "dsl-bank")


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _rounded(x: torch.Tensor) -> torch.Tensor:
    # float64 accumulation, then float32 rounding: independent of the summation order
    return x.to(torch.float32).to(torch.float64)


def _full(n: int, value: float, device: torch.device) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64, device=device)


def _merge_topk(best: torch.Tensor | None, block: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` largest values of each column of ``best`` and ``block`` stacked (``(k, M)``)."""
    both = block if best is None else torch.cat([best, block])
    return both.topk(min(k, both.shape[0]), dim=0).values


def _topk_mean(values: torch.Tensor) -> torch.Tensor:
    # topk returns the values sorted, so this sum runs in one order whatever the chunks were
    return _rounded(values.to(torch.float64).mean(0))


# ---------------------------------------------------------------- statistics, each read once


def bank_statistics(scorer: Any, posts: list[str], opts: Any) -> dict[str, Any]:
    """Every bank-based statistic of the gallery in one pass over ``scorer`` (bank rows x gallery).

    Returns a dict with the entries the posts need: ``qb_lse``/``qb_hubs`` (QB-Norm, as
    :func:`vtrbench.evaluate.querybank_normalisers`), ``is_lse`` (``logsumexp_b is_beta s_bj``),
    ``dsl_lse`` (``logsumexp_b logit_scale s_bj / tau``), ``csls_r`` (mean of the ``csls_k_bank``
    highest bank scores of each gallery item); each ``(M,)`` float64 holding float32 values.
    """
    n, dev = scorer.n_gallery, scorer.device
    acc: dict[str, Any] = {}
    for name, on in (("qb_lse", "qbnorm"), ("is_lse", "is-bank"), ("dsl_lse", "dsl-bank")):
        if on in posts:
            acc[name] = _full(n, -math.inf, dev)
    hubs = torch.zeros(n, dtype=torch.bool, device=dev) if "qbnorm" in posts else None
    best: torch.Tensor | None = None
    scale = {"qb_lse": opts.beta, "is_lse": opts.is_beta, "dsl_lse": opts.logit_scale / opts.tau}
    for rows in _chunks(scorer.n_queries, opts.chunk_size):
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
    out: dict[str, Any] = {name: _rounded(lse) for name, lse in acc.items()}
    if hubs is not None:
        out["qb_hubs"] = hubs
    if best is not None:
        out["csls_r"] = _topk_mean(best)
    return out


def prepare_bank(name: str) -> Any:
    """``prepare`` of a bank-based post-processing: its entry of each direction's bank statistics."""

    def prepare(matrix: Any, banks: Any, opts: Any) -> tuple[Any, Any]:
        assert banks is not None, f"{name} needs the bank statistics"
        return banks[0][name], banks[1][name]

    return prepare


def prepare_is_test(matrix: Any, banks: Any, opts: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video: logsumexp over the test captions of ``is_beta s``; per caption: over the test videos."""
    per_video = _full(matrix.n_cols, -math.inf, matrix.device)
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        z = matrix.rows(rows).to(torch.float64) * opts.is_beta
        torch.logaddexp(per_video, torch.logsumexp(z, dim=0), out=per_video)
        per_caption[rows] = torch.logsumexp(z, dim=1)
    return _rounded(per_video), _rounded(per_caption)


def prepare_csls_test(matrix: Any, banks: Any, opts: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per video: mean of its ``csls_k`` best scores over the test captions; per caption: over the videos."""
    k = opts.csls_k
    best: torch.Tensor | None = None
    per_caption = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    for rows in matrix.row_chunks():
        s = matrix.rows(rows)
        best = _merge_topk(best, s, k)
        per_caption[rows] = _rounded(s.topk(min(k, s.shape[1]), dim=1).values.to(torch.float64).mean(1))
    assert best is not None
    return _topk_mean(best), per_caption


def prepare_sinkhorn(matrix: Any, banks: Any, opts: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log v, log u)`` after ``sinkhorn_iters`` iterations (module docstring), one pass each."""
    inv_eps = 1.0 / opts.sinkhorn_eps
    log_a, log_b = -math.log(matrix.n_rows), -math.log(matrix.n_cols)
    log_u = torch.empty(matrix.n_rows, dtype=torch.float64, device=matrix.device)
    log_v = torch.zeros(matrix.n_cols, dtype=torch.float64, device=matrix.device)
    for _ in range(opts.sinkhorn_iters):
        col = _full(matrix.n_cols, -math.inf, matrix.device)
        for rows in matrix.row_chunks():
            z = matrix.rows(rows).to(torch.float64) * inv_eps
            # rows first with the previous v, then these rows' share of the column sums with the new u
            log_u[rows] = _rounded(log_a - torch.logsumexp(z + log_v, dim=1))
            torch.logaddexp(col, torch.logsumexp(z + log_u[rows, None], dim=0), out=col)
        log_v = _rounded(log_b - col)
    return log_v, log_u


# ---------------------------------------------------------------- apply to a chunk of query rows


Scored = tuple[torch.Tensor, torch.Tensor]


def _slack(raw: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full((raw.shape[0], 1), value, dtype=torch.float64, device=raw.device)


def apply_is(raw: torch.Tensor, lse: torch.Tensor, opts: Any) -> Scored:
    """``is_beta s_ij - logsumexp_m is_beta s_mj`` (the log of Smith et al.'s eq. 5)."""
    # copy=True: float64 scores are otherwise the score matrix itself, which in-place ops would change
    scores = raw.to(torch.float64, copy=True).mul_(opts.is_beta).sub_(lse)
    return scores, _slack(raw, 2 * opts.is_beta * opts.delta)


def apply_csls(raw: torch.Tensor, r: torch.Tensor, opts: Any) -> Scored:
    """``2 s_ij - r_S(y_j)`` (Conneau et al.'s eq. 6 without the row-constant ``r_T(x_i)``)."""
    return raw.to(torch.float64, copy=True).mul_(2).sub_(r), _slack(raw, 3 * opts.delta)


def apply_sinkhorn(raw: torch.Tensor, log_scaling: torch.Tensor, opts: Any) -> Scored:
    """``log P_ij`` up to the row's own constant: ``s_ij / eps + log`` of the gallery item's scaling."""
    bound = (2 * opts.sinkhorn_iters + 1) * opts.delta / opts.sinkhorn_eps
    return raw.to(torch.float64, copy=True).div_(opts.sinkhorn_eps).add_(log_scaling), _slack(raw, bound)
