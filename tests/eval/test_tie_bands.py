"""Tie bands from the arithmetic that happened (issue 27 item 3).

Sinkhorn's band no longer grows with the iterations, and DSL's follows the precision the raw scores
were computed in. Both are checked against exact float64 references written from the published
equations (benchmarks/tie_bands.py: no tolerance, logsumexps summed in sorted order) on a
360-caption x 120-video hub-heavy matrix and a tie-heavy one, and the DSL band against every move
of the raw scores within their rounding bound. README and the module docstring of
vtrbench/eval/postprocess.py quote the counts (``python -m benchmarks.tie_bands``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.tie_bands import (
    DSL_TAU,
    EPS,
    LOGIT_SCALE,
    MATRICES,
    differing,
    dsl_reference,
    exact_counts,
    raw64,
    sinkhorn_reference,
    vtrbench_counts,
)
from vtrbench.eval import evaluate_embeddings
from vtrbench.eval.blocks import normaliser_bound, rounded_for
from vtrbench.eval.matrix import ScoreMatrix
from vtrbench.eval.options import PostParams
from vtrbench.eval.postprocess import POSTPROCESSORS, DslState, prepare_sinkhorn
from vtrbench.eval.scoring import EmbeddingScorer
from vtrbench.metrics import TIE_RTOL, gt_counts

DIRS = ("t2v", "v2t")


@pytest.fixture(scope="module", params=list(MATRICES))
def matrix(
    request: pytest.FixtureRequest,
) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    text, video, qv = MATRICES[request.param]()
    return request.param, text, video, qv, raw64(text, video)


def _near_target(scores: np.ndarray, gt: np.ndarray, band: np.ndarray | float) -> np.ndarray:
    """Queries whose exact scores hold a wrong item within ``band`` of the correct one."""
    target = scores[np.arange(len(gt)), gt][:, None]
    near = np.abs(scores - target) <= band
    near[np.arange(len(gt)), gt] = False
    return near.any(axis=1)


# ------------------------------------------------------------------ Sinkhorn


@pytest.mark.parametrize("iters", [5, 50, 300])
def test_sinkhorn_equals_the_float64_reference_on_every_query(matrix, iters: int) -> None:
    name, text, video, qv, s = matrix
    got = vtrbench_counts(text, video, qv, "sinkhorn", sinkhorn_iters=iters)
    t2v, v2t, _ = sinkhorn_reference(s, iters)
    same = exact_counts(t2v, v2t, qv)
    diff = differing(got, same)
    delta = TIE_RTOL * float(np.abs(s).max())
    if iters >= 50:  # converged on both matrices (in 59 and 57 iterations): every query, both ways
        assert diff == {"t2v": 0, "v2t": 0}, (name, iters)
        t2v_c, v2t_c, n = sinkhorn_reference(s, None)
        assert n < 100 and differing(got, exact_counts(t2v_c, v2t_c, qv)) == {"t2v": 0, "v2t": 0}
    else:
        # at 5 iterations a query may differ only through a pair closer than the band of two scores
        # (6 delta / eps plus the scalings' rounding): a tie the raw scores' rounding could reverse
        band = 6 * delta / EPS + 2 * 2.0**-18
        qv_np = qv.numpy()
        moved = (got["t2v"] != same["t2v"]).any(axis=0)
        assert not (moved & ~_near_target(t2v, qv_np, band)).any(), name
        assert diff["t2v"] <= 1 and diff["v2t"] == 0, (name, diff)
    # the old band, (2 n + 1) delta / eps per score, ties pairs the exact scores keep apart
    old = gt_counts(torch.from_numpy(t2v), qv, (2 * iters + 1) * delta / EPS)
    old_counts = np.stack([old.higher, old.tied, old.tied_correct])
    if iters == 300:
        assert (old_counts != same["t2v"]).any(axis=0).sum() >= 5, name


def _states(text: torch.Tensor, video: torch.Tensor, iters: int, tol: float = 0.0):
    scorer = EmbeddingScorer(text, video)
    with ScoreMatrix(scorer, chunk_size=64) as m:
        delta = TIE_RTOL * m.scale
        opts = PostParams(
            logit_scale=LOGIT_SCALE, dsl_tau=DSL_TAU, qb_beta=20.0, chunk_size=64, qb_k=1, delta=delta,
            delta_in=delta, sinkhorn_iters=iters, sinkhorn_eps=EPS, sinkhorn_tol=tol,
        )  # fmt: skip
        return prepare_sinkhorn(m, None, opts), delta


def test_the_sinkhorn_band_does_not_grow_with_the_iterations(matrix) -> None:
    _, text, video, _, _ = matrix
    for iters in (1, 5, 50, 300):
        (t2v, v2t), delta = _states(text, video, iters)
        assert t2v.iterations == v2t.iterations == iters
        for state in (t2v, v2t):
            # 3 delta / eps (the score and the last iteration's two half-updates) + one float32 ulp
            ulp = normaliser_bound(state.log_scaling, torch.float32, 1)
            assert torch.allclose(state.slack[0], 3 * delta / EPS + ulp, rtol=0, atol=1e-15)
            assert float(state.slack.max()) < 3 * delta / EPS + 2.0**-17


def test_sinkhorn_tol_stops_early_and_says_when(matrix) -> None:
    name, text, video, qv, s = matrix
    kw = dict(logit_scale=LOGIT_SCALE, postprocessing=["sinkhorn"])
    options = {"sinkhorn_iters": 300, "sinkhorn_tol": 1e-3}
    res = [evaluate_embeddings(text, video, qv, chunk_size=c, post_options=options, **kw) for c in (7, 1000)]
    ran = res[0]["protocol"]["post_options"]["sinkhorn"]["iterations_run"]
    assert res[1]["protocol"]["post_options"]["sinkhorn"]["iterations_run"] == ran  # whatever the chunks
    assert res[0]["per_query"] == res[1]["per_query"]
    assert 2 < ran < 100, (name, ran)
    # the same numbers as running exactly that many iterations
    fixed = evaluate_embeddings(text, video, qv, post_options={"sinkhorn_iters": ran}, **kw)
    assert fixed["per_query"] == res[0]["per_query"]
    assert fixed["protocol"]["post_options"]["sinkhorn"]["iterations_run"] == ran
    # the rule: the first iteration that moved no log-scaling by more than the tolerance
    steps = []
    x, f, g = s / EPS, np.zeros(s.shape[0]), np.zeros(s.shape[1])
    for _ in range(ran):
        f_new = -math.log(s.shape[0]) - np.log(np.exp(x + g[None, :]).sum(1))
        g_new = -math.log(s.shape[1]) - np.log(np.exp(x + f_new[:, None]).sum(0))
        steps.append(max(np.abs(f_new - f).max(), np.abs(g_new - g).max()))
        f, g = f_new, g_new
    assert steps[-1] <= 1e-3 + 1e-5 and all(st > 1e-3 - 1e-5 for st in steps[1:-1]), steps
    # a tolerance nothing reaches runs to the cap; one everything reaches stops at the first check
    capped = evaluate_embeddings(
        text, video, qv, post_options={"sinkhorn_iters": 12, "sinkhorn_tol": 1e-12}, **kw
    )
    assert capped["protocol"]["post_options"]["sinkhorn"]["iterations_run"] == 12
    loose = evaluate_embeddings(
        text, video, qv, post_options={"sinkhorn_iters": 12, "sinkhorn_tol": 1e9}, **kw
    )
    assert loose["protocol"]["post_options"]["sinkhorn"]["iterations_run"] == 2


# ------------------------------------------------------------------ DSL


def test_dsl_with_float64_inputs_ties_only_within_float64_rounding(matrix) -> None:
    name, text, video, qv, s = matrix
    got = vtrbench_counts(text.double(), video.double(), qv, "dsl")
    t2v, v2t = dsl_reference(s)
    ref = exact_counts(t2v, v2t, qv)
    qv_np = qv.numpy()
    owner = {d: (qv_np if d == "t2v" else _v2t_gt(v2t, qv_np)) for d in DIRS}
    scores = {"t2v": t2v, "v2t": _v2t_grouped(v2t, qv_np)}
    for d in DIRS:
        moved = (got[d] != ref[d]).any(axis=0)
        # float64 rounding of a row's scores: 2^-40 of its largest |score| (2^12 float64 ulps)
        fine = 2.0**-40 * np.abs(scores[d]).max(axis=1, keepdims=True)
        assert not (moved & ~_near_target(scores[d], owner[d], fine)).any(), (name, d)
    if name == "hub-heavy":
        assert differing(got, ref) == {"t2v": 0, "v2t": 0}
    # the old band (float32's delta pushed through DSL: w L delta (1 + 2 |z| / tau)) ties pairs that
    # differ by far more than float64 rounding on the tie-heavy matrix
    z = LOGIT_SCALE * s
    w = np.exp(z / DSL_TAU - np.log(np.exp(z / DSL_TAU).sum(0)))
    old = w * LOGIT_SCALE * TIE_RTOL * np.abs(s).max() * (1 + 2 * np.abs(z) / DSL_TAU)
    counts = gt_counts(torch.from_numpy(t2v), qv, torch.from_numpy(old))
    old_moved = (np.stack([counts.higher, counts.tied, counts.tied_correct]) != ref["t2v"]).any(axis=0)
    fine = 2.0**-40 * np.abs(t2v).max(axis=1, keepdims=True)
    if name == "tie-heavy":
        assert (old_moved & ~_near_target(t2v, qv_np, fine)).sum() >= 2


def _v2t_grouped(v2t: np.ndarray, qv: np.ndarray) -> np.ndarray:
    """clip4clip v2t: a video's score for a caption group is the max over the group's captions."""
    n_v = v2t.shape[0]
    return np.stack([v2t[:, qv == u].max(axis=1) for u in range(n_v)], axis=1)


def _v2t_gt(v2t: np.ndarray, qv: np.ndarray) -> np.ndarray:
    return np.arange(v2t.shape[0])


@pytest.mark.parametrize(
    ("relative", "dtype", "tied"),
    [
        # the old band tied the first two even with float64 inputs (2 L delta = 1e-4 of the score here)
        (1e-4, torch.float64, False),
        (1e-7, torch.float64, False),
        (1e-15, torch.float64, True),  # within float64 rounding of the normalisers
        # float32 inputs, the dominant entry of its column (w near 1): a few float32 ulps of band
        (1e-4, torch.float32, False),
        (1e-6, torch.float32, True),
    ],
)
def test_two_dsl_scores_a_relative_gap_apart(relative: float, dtype: torch.dtype, tied: bool) -> None:
    # caption 0 scores videos 0 and 1 alike (a = 0.5); caption 1 scores them b and -b, which gives the
    # two videos normalisers that differ by ``relative`` (e^(L b - L a) = relative)
    a = 0.5
    b = a + math.log(relative) / LOGIT_SCALE
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    video = torch.tensor([[a, b], [a, -b]], dtype=torch.float64)
    res = evaluate_embeddings(
        text.to(dtype), video.to(dtype), torch.tensor([0, 1]), logit_scale=LOGIT_SCALE, postprocessing=["dsl"]
    )
    got = res["per_query"]["dsl"]["t2v"]
    z = LOGIT_SCALE * (text @ video.T).numpy()
    v = z * np.exp(z - np.log(np.exp(z).sum(0)))
    gap = (v[0, 1] - v[0, 0]) / v[0, 0]
    assert gap == pytest.approx(relative, rel=0.02 if relative > 1e-10 else 1.0)
    assert got["tied"][0] == int(tied) and got["higher"][0] == (0 if tied else 1), got


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_dsl_band_holds_every_move_of_the_raw_scores(matrix, dtype: torch.dtype) -> None:
    # every raw score moved by up to its rounding bound (random signs, and the worst pattern for the
    # dominant entries: its own score up, the rest of its column down): no DSL score moves beyond
    # its band
    name, text, video, _, _ = matrix
    s = (text.to(dtype) @ video.to(dtype).T).double()
    delta = TIE_RTOL * float(s.abs().max())
    delta_in = delta * torch.finfo(dtype).eps / torch.finfo(torch.float32).eps
    opts = PostParams(
        logit_scale=LOGIT_SCALE, dsl_tau=DSL_TAU, qb_beta=20.0, chunk_size=1024, qb_k=1, delta=delta,
        delta_in=delta_in,
    )  # fmt: skip

    def dsl(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lse = rounded_for(torch.logsumexp(raw * LOGIT_SCALE / DSL_TAU, 0), dtype)
        state = DslState(lse, normaliser_bound(lse, dtype, raw.shape[0]), True)
        return POSTPROCESSORS["dsl"].apply(raw, state, opts)

    v, slack = dsl(s)
    g = torch.Generator().manual_seed(0)
    patterns = [torch.randint(0, 2, s.shape, generator=g).double() * 2 - 1 for _ in range(4)]
    worst = -torch.ones_like(s)
    worst[s.argmax(0), torch.arange(s.shape[1])] = 1.0
    for pattern in [*patterns, worst, -worst]:
        moved, _ = dsl(s + delta_in * pattern)
        assert bool(((moved - v).abs() <= slack).all()), (name, dtype)
    # against the old band L delta w (1 + 2 |z| / tau) (float32's delta whatever the inputs): float64
    # inputs get a float64 band; with float32 inputs the entries that dominate their column (w >= 0.99,
    # where the normaliser moves with the score itself) get a much narrower one, the others about the
    # old one plus the normaliser's float32 rounding
    z = LOGIT_SCALE * s
    w = torch.exp(z / DSL_TAU - torch.logsumexp(z / DSL_TAU, 0))
    old = w * LOGIT_SCALE * delta * (1 + 2 * z.abs() / DSL_TAU)
    ratio = slack / old
    if dtype == torch.float64:
        assert float(ratio.max()) < 1e-6
    else:
        assert float(ratio[w >= 0.99].max()) < 0.1 and float(ratio.max()) < 1.1
