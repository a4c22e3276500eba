"""The options of one evaluation (:class:`EvalOptions`) and the numbers its post-processings use
(:class:`PostParams`).

Every default comes from :mod:`vtrbench.defaults` (:data:`CHUNK_SIZE` and :data:`DEFAULT_POSTS` are
its names, kept here for the callers of earlier releases).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from vtrbench import defaults

CHUNK_SIZE = defaults.CHUNK_SIZE
DEFAULT_POSTS = defaults.POSTPROCESSING


@dataclass(frozen=True)
class EvalOptions:
    """Every option of one evaluation, as the caller chose it.

    Nothing is checked here: :func:`vtrbench.eval.evaluate_scorers` checks them in a fixed order
    against the data (the gallery, the banks), so that the first refusal stays the same message.

    Attributes:
        logit_scale: the multiplier of the cosine (e.g. 100), not its log; used by ``dsl``.
        dsl_tau: DSL inference temperature on logit-scaled scores.
        qb_beta: QB-Norm inverse temperature on cosine scores.
        qb_k: QB-Norm hubs are the top-``qb_k`` gallery items of each bank query.
        v2t_protocol: ``"clip4clip"`` or ``"any-caption"`` (:mod:`vtrbench.metrics`).
        mdr: ``"standard"`` (np.median) or ``"clip4clip"`` (torch.median for multi-caption t2v).
        chunk_size: query rows scored at once.
        postprocessing: names of ``results.POSTPROCESSING``; None: :data:`DEFAULT_POSTS`.
        post_options: parameters of the hubness post-processings (``is_beta``, ``csls_k``,
            ``sinkhorn_iters``, ``sinkhorn_eps``, ``sinkhorn_tol``); None or missing keys:
            ``defaults.POST_DEFAULTS``.
        matrix_bytes: the largest score matrix held in memory; None: ``matrix.default_matrix_bytes()``.
        tmp_dir: where a larger matrix is written (None: the system's temp folder).
    """

    logit_scale: float
    dsl_tau: float = defaults.DSL_TAU
    qb_beta: float = defaults.QB_BETA
    qb_k: int = defaults.QB_K
    v2t_protocol: str = defaults.V2T_PROTOCOL
    mdr: str = defaults.MDR
    chunk_size: int = CHUNK_SIZE
    postprocessing: Sequence[str] | None = None
    post_options: dict[str, Any] | None = None
    matrix_bytes: int | None = None
    tmp_dir: str | os.PathLike[str] | None = None

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> EvalOptions:
        """The options among a function's arguments, by field name (other names are ignored).

        ``evaluate_embeddings`` and ``evaluate_pairwise`` take every field as a keyword of the same
        name and pass ``locals()``, so that a new option is one field and one keyword, not a third
        list of names to keep in step.
        """
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class PostParams:
    """The numbers every post-processing computes with: an :class:`EvalOptions` once checked and
    resolved against the gallery and banks (``csls_k`` lowered to a small gallery), and the rounding
    bound ``delta`` of each raw score (``metrics.TIE_RTOL`` x the matrix's largest |score|), known
    once the matrix is scored.

    ``delta_in``: the same bound in the precision the raw scores were computed in (``delta`` scaled by
    that dtype's epsilon over float32's: equal to ``delta`` for float32 scores, 2^-29 of it for
    float64; None: ``delta``); DSL and Sinkhorn push it through their arithmetic, so that float64 inputs
    get a float64 band (issue 27).

    ``csls_k`` is csls-test's k, ``csls_k_bank`` csls-bank's; they differ only below 10 items.
    """

    logit_scale: float
    dsl_tau: float
    qb_beta: float
    chunk_size: int
    qb_k: int
    delta: float = 0.0
    is_beta: float = defaults.IS_BETA
    csls_k: int = defaults.CSLS_K
    csls_k_bank: int = defaults.CSLS_K
    sinkhorn_iters: int = defaults.SINKHORN_ITERS
    sinkhorn_eps: float = defaults.SINKHORN_EPS
    sinkhorn_tol: float = defaults.SINKHORN_TOL
    emcl_k: int = defaults.EMCL_POST_K
    emcl_iters: int = defaults.EMCL_POST_ITERS
    emcl_lambda: float = defaults.EMCL_POST_LAMBDA
    emcl_beta: float = defaults.EMCL_POST_BETA
    emcl_seed: int = defaults.EMCL_POST_SEED
    delta_in: float | None = None

    def __post_init__(self) -> None:
        if self.delta_in is None:  # a bound given for float32 scores only: the same for both
            object.__setattr__(self, "delta_in", self.delta)
