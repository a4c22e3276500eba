"""The hubness post-processings (issue 22): parity with plain numpy implementations of the published
equations, both directions; independence of blocks, chunks and the matrix's storage with near-ties;
one-line refusals before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_evaluate import make_split
from test_evaluate_ties import RUNS, _states, twins

from vtrbench.config import check_option, check_post_options
from vtrbench.defaults import POST_DEFAULTS
from vtrbench.errors import VtrbenchError
from vtrbench.eval import BANK_POSTS, evaluate_embeddings, evaluate_pairwise, ranking
from vtrbench.metrics import t2v_metrics, v2t_metrics
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

NEW = ("is-bank", "is-test", "csls-bank", "csls-test", "dsl-bank", "sinkhorn")
SCALE, TAU = 100.0, 1.0
OPTS = {"is_beta": 12.0, "csls_k": 4, "sinkhorn_iters": 3, "sinkhorn_eps": 0.08}


# ------------------------------------------------ plain numpy, written from the papers' equations


def inverted_softmax(s: np.ndarray, sources: np.ndarray, beta: float) -> np.ndarray:
    """Smith et al. 2017, eq. 5: P(j|i) = exp(beta s_ij) / sum_m exp(beta s_mj), m over ``sources``."""
    out = np.empty_like(s)
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            out[i, j] = np.exp(beta * s[i, j]) / np.exp(beta * sources[:, j]).sum()
    return out


def knn_mean(sims: np.ndarray, k: int) -> np.ndarray:
    """Row-wise mean of the k largest values."""
    return np.array([np.sort(row)[::-1][:k].mean() for row in sims])


def csls(s: np.ndarray, sources: np.ndarray, k: int) -> np.ndarray:
    """Conneau et al. 2018, eq. 6: 2 cos(x, y) - r_T(x) - r_S(y), both neighbourhood terms kept."""
    r_t = knn_mean(s, k)  # each query's k nearest gallery items
    r_s = knn_mean(sources.T, k)  # each gallery item's k nearest sources
    return 2 * s - r_t[:, None] - r_s[None, :]


def dsl_prior(s: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """CAMoE's S * softmax(S / tau) with the softmax over ``sources`` (each gallery item's column)."""
    z, zb = SCALE * s, SCALE * sources
    return z * np.exp(z / TAU) / np.exp(zb / TAU).sum(0)


def sinkhorn(s: np.ndarray, iters: int, eps: float) -> np.ndarray:
    """Sinkhorn-Knopp: u = a / (K v), v = b / (K^T u), uniform marginals; P = diag(u) K diag(v)."""
    k = np.exp(s / eps)
    a, b = np.full(s.shape[0], 1 / s.shape[0]), np.full(s.shape[1], 1 / s.shape[1])
    v = np.ones(s.shape[1])
    for _ in range(iters):
        u = a / (k @ v)
        v = b / (k.T @ u)
    return u[:, None] * k * v[None, :]


def reference(post: str, text, video, bank_text, bank_video) -> tuple[np.ndarray, np.ndarray]:
    """(t2v scores captions x videos, v2t scores videos x captions) of ``post``."""
    t, v, bt, bv = (x.double().numpy() for x in (text, video, bank_text, bank_video))
    s, st = t @ v.T, v @ t.T
    beta, k = OPTS["is_beta"], OPTS["csls_k"]
    if post == "is-bank":
        return inverted_softmax(s, bt @ v.T, beta), inverted_softmax(st, bv @ t.T, beta)
    if post == "is-test":
        return inverted_softmax(s, s, beta), inverted_softmax(st, st, beta)
    if post == "csls-bank":
        return csls(s, bt @ v.T, k), csls(st, bv @ t.T, k)
    if post == "csls-test":
        return csls(s, s, k), csls(st, st, k)
    if post == "dsl-bank":
        return dsl_prior(s, bt @ v.T), dsl_prior(st, bv @ t.T)
    p = sinkhorn(s, OPTS["sinkhorn_iters"], OPTS["sinkhorn_eps"])
    return p, p.T


@pytest.mark.parametrize("protocol", ["clip4clip", "any-caption"])
def test_each_post_processing_equals_its_published_equation(protocol: str) -> None:
    text, video, qv, bank_text, bank_video = make_split(1, n_bank=30)
    for chunk in (5, 1000):
        got = evaluate_embeddings(
            text, video, qv, logit_scale=SCALE, dsl_tau=TAU, bank_text=bank_text, bank_video=bank_video,
            postprocessing=POSTPROCESSING, post_options=OPTS, v2t_protocol=protocol, chunk_size=chunk,
        )  # fmt: skip
        raw = got["per_query_ranks"]["raw"]
        for post in NEW:
            t2v, v2t = reference(post, text, video, bank_text, bank_video)
            m_t, r_t = t2v_metrics(torch.from_numpy(t2v), qv)
            m_v, r_v = v2t_metrics(torch.from_numpy(v2t).T, qv, protocol)
            np.testing.assert_array_equal(got["per_query_ranks"][post]["t2v"], r_t, err_msg=f"{post} {chunk}")
            np.testing.assert_array_equal(got["per_query_ranks"][post]["v2t"], r_v, err_msg=f"{post} {chunk}")
            assert got["metrics"][post]["t2v"] == pytest.approx(m_t)
            assert got["metrics"][post]["v2t"] == pytest.approx(m_v)
            # each one does re-rank this data (the parity is not raw against raw)
            assert got["per_query_ranks"][post]["t2v"] != raw["t2v"], post
            assert got["per_query_ranks"][post]["v2t"] != raw["v2t"], post
    protocol_info = got["protocol"]
    assert protocol_info["post_options"]["sinkhorn"] == {
        "sinkhorn_iters": 3,
        "sinkhorn_eps": 0.08,
        "sinkhorn_tol": 0.0,
        "iterations_run": 3,
    }
    assert protocol_info["post_options"]["csls-test"] == {"csls_k": 4}
    assert protocol_info["post_options"]["is-bank"] == {"is_beta": 12.0}
    assert protocol_info["post_bank_size"] == {"t2v": 30, "v2t": 30}


def test_sinkhorn_iterations_and_eps_matter_and_is_bank_is_qbnorm_on_every_row() -> None:
    text, video, qv, bank_text, bank_video = make_split(2, n_bank=30)
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video)

    def run(**options: float) -> dict:
        return evaluate_embeddings(text, video, qv, postprocessing=["sinkhorn"], post_options=options, **kw)

    one, many = run(sinkhorn_iters=1), run(sinkhorn_iters=8)
    assert one["per_query_ranks"] != many["per_query_ranks"]
    assert run(sinkhorn_eps=0.5)["per_query_ranks"] != run()["per_query_ranks"]
    # is-bank with qbnorm's beta on a bank whose every top-1 is a hub = qbnorm's normalised rows
    both = evaluate_embeddings(
        text, video, qv, postprocessing=["is-bank", "qbnorm"], post_options={"is_beta": 20.0}, qb_beta=20.0,
        qb_k=len(video), **kw,
    )  # fmt: skip
    assert both["per_query_ranks"]["is-bank"] == both["per_query_ranks"]["qbnorm"]


def test_together_equals_each_alone_with_float64_scores() -> None:
    # float64 scores are the matrix itself: a post-processing that wrote into it would change the next
    text, video, qv, bank_text, bank_video = make_split(4, n_bank=30)
    kw = dict(logit_scale=SCALE, bank_text=bank_text.double(), bank_video=bank_video.double())
    together = evaluate_embeddings(text.double(), video.double(), qv, postprocessing=POSTPROCESSING, **kw)
    for post in POSTPROCESSING:
        alone = evaluate_embeddings(text.double(), video.double(), qv, postprocessing=[post], **kw)
        assert alone["per_query"][post] == together["per_query"][post], post


def _twins_run(name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> list[dict]:
    text, video, qv = twins(8, 40, seed=3)
    bank_text, bank_video, _ = twins(6, 20, seed=4)
    head, ts, vs = _states(name, text, video, qv)
    _, bts, bvs = _states(name, bank_text, bank_video, torch.arange(20) % 12)
    if name == "meanpool":
        bts, bvs = head.text_state(bank_text), head.video_state(bank_video)
    out = []
    for (block, chunk), matrix_bytes in zip(RUNS, (1 << 30, 0, 1 << 30, 0), strict=True):
        out.append(
            evaluate_pairwise(
                head.score_states,
                ts,
                vs,
                qv,
                logit_scale=100.0,
                block=block,
                chunk_size=chunk,
                bank_text_state=bts,
                bank_video_state=bvs,
                postprocessing=NEW,
                post_options={"csls_k": 3},
                matrix_bytes=matrix_bytes,
            )  # fmt: skip
        )
    return out


@pytest.mark.parametrize("name", ["xpool", "meanpool"])
def test_near_tie_twins_give_the_same_counts_for_every_block_chunk_and_storage(name: str) -> None:
    results = _twins_run(name)
    first = results[0]
    assert set(first["per_query"]) == set(NEW)
    assert {r["score_matrix"] for r in results} == {"memory", "disk"}
    for res, run in zip(results[1:], RUNS[1:], strict=True):
        assert res["per_query"] == first["per_query"], (name, run)
        assert res["metrics"] == first["metrics"], (name, run)
    for post, dirs in first["per_query"].items():
        assert min(dirs["t2v"]["tied"]) >= 1, post  # every caption's video ties its reversed twin


def test_without_the_tolerance_the_cuts_change_the_new_posts(monkeypatch: pytest.MonkeyPatch) -> None:
    # the test above has teeth: with exact ties, the blocks change the counts of each new post
    # ranking reads TIE_RTOL as its module global when an evaluation runs
    monkeypatch.setattr(ranking, "TIE_RTOL", 0.0)
    results = _twins_run("meanpool")
    first = results[0]["per_query"]
    changed = {p: any(r["per_query"][p] != first[p] for r in results[1:]) for p in NEW}
    assert all(changed.values()), changed


def test_labels_and_defaults() -> None:
    assert set(TRANSDUCTIVE) == set(POSTPROCESSING) and set(NEW) <= set(POSTPROCESSING)
    assert [p for p in NEW if TRANSDUCTIVE[p]] == ["is-test", "csls-test", "sinkhorn"]
    assert set(BANK_POSTS) == {"qbnorm", "is-bank", "csls-bank", "dsl-bank"}
    assert check_post_options({}, complete=True) == POST_DEFAULTS
    assert POST_DEFAULTS["csls_k"] == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"is_beta": 0.0}, "--post-option is_beta must be a finite number > 0 and <= 1000000, got 0.0"),
        ({"is_beta": -1.0}, "--post-option is_beta must be a finite number > 0"),
        # issue 28: factors that overflowed the float32 normalisers after the whole run had trained
        ({"is_beta": 1e300}, "--post-option is_beta must be a finite number > 0 and <= 1000000, got 1e+300"),
        ({"is_beta": 1.000001e6}, "--post-option is_beta must be a finite number > 0 and <= 1000000"),
        ({"sinkhorn_eps": 1e-300}, "--post-option sinkhorn_eps must be a finite number >= 1e-06, got 1e-300"),
        ({"sinkhorn_eps": 0.0}, "--post-option sinkhorn_eps must be a finite number >= 1e-06, got 0.0"),
        (
            {"sinkhorn_eps": float("nan")},
            "--post-option sinkhorn_eps must be a finite number >= 1e-06, got nan",
        ),
        ({"sinkhorn_iters": 100000000}, "--post-option sinkhorn_iters must be an integer >= 1 and <= 1000"),
        ({"sinkhorn_iters": 0}, "--post-option sinkhorn_iters must be an integer >= 1 and <= 1000, got 0"),
        (
            {"sinkhorn_iters": 1001},
            "--post-option sinkhorn_iters must be an integer >= 1 and <= 1000, got 1001",
        ),
        ({"sinkhorn_tol": -1e-6}, "--post-option sinkhorn_tol must be a finite number >= 0, got -1e-06"),
        ({"sinkhorn_tol": float("inf")}, "--post-option sinkhorn_tol must be a finite number >= 0, got inf"),
        ({"sinkhorn_tol": "1e-6"}, "--post-option sinkhorn_tol must be a finite number >= 0, got '1e-6'"),
        ({"csls_k": 2.5}, "--post-option csls_k must be an integer >= 1"),
        ({"csls_k": True}, "--post-option csls_k must be an integer >= 1"),
        ({"beta": 1.0}, "--post-option: unknown key 'beta' (known: is_beta, csls_k"),
    ],
)
def test_bad_parameters_are_one_line_before_any_work(options: dict, message: str, monkeypatch) -> None:
    text, video, qv, bank_text, bank_video = make_split(3)

    def never(*a, **k):  # the refusal comes before the matrix is scored
        raise AssertionError("scored")

    monkeypatch.setattr(ranking, "ScoreMatrix", never)  # where evaluate_scorers looks it up
    with pytest.raises(VtrbenchError) as e:
        evaluate_embeddings(text, video, qv, logit_scale=SCALE, postprocessing=NEW, post_options=options,
                            bank_text=bank_text, bank_video=bank_video)  # fmt: skip
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(VtrbenchError, match="post-option"):
        check_option("post_options", options)


def test_csls_k_beyond_gallery_or_bank_and_bank_posts_without_bank_are_refused(monkeypatch) -> None:
    text, video, qv, bank_text, bank_video = make_split(3, n_videos=12, n_bank=8)
    monkeypatch.setattr(
        ranking, "ScoreMatrix", lambda *a, **k: (_ for _ in ()).throw(AssertionError("scored"))
    )
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video)
    with pytest.raises(VtrbenchError, match=r"csls_k 13 is larger than the test gallery \(12\)"):
        evaluate_embeddings(text, video, qv, postprocessing=["csls-test"], post_options={"csls_k": 13}, **kw)
    with pytest.raises(VtrbenchError, match=r"csls_k 9 is larger than the banks of training queries \(8\)"):
        evaluate_embeddings(text, video, qv, postprocessing=["csls-bank"], post_options={"csls_k": 9}, **kw)
    for post in ("is-bank", "csls-bank", "dsl-bank", "qbnorm"):
        with pytest.raises(VtrbenchError, match=f"^{post} needs a bank of training queries.*--train-split"):
            evaluate_embeddings(text, video, qv, logit_scale=SCALE, postprocessing=["raw", post])


def test_the_default_csls_k_is_lowered_to_a_small_gallery_and_recorded() -> None:
    text, video, qv, bank_text, bank_video = make_split(5, n_videos=7, n_bank=5)
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video)
    res = evaluate_embeddings(text, video, qv, postprocessing=["csls-test", "csls-bank"], **kw)
    # each is lowered to its own neighbourhood (7 test videos, a bank of 5), and says so
    assert res["protocol"]["post_options"] == {"csls-test": {"csls_k": 7}, "csls-bank": {"csls_k": 5}}
    alone = evaluate_embeddings(text, video, qv, postprocessing=["csls-test"], **kw)
    assert alone["protocol"]["post_options"] == {"csls-test": {"csls_k": 7}}
    asked = evaluate_embeddings(
        text, video, qv, postprocessing=["csls-test"], post_options={"csls_k": 3}, **kw
    )
    assert asked["protocol"]["post_options"] == {"csls-test": {"csls_k": 3}}
    assert asked["per_query"] != alone["per_query"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("csls_k=abc", "--post-option csls_k must be an integer >= 1, got 'abc'"),
        ("sinkhorn_eps=-1", "--post-option sinkhorn_eps must be a finite number >= 1e-06, got -1"),
        ("is_beta", "expected KEY=VALUE"),
    ],
)
def test_cli_post_option_is_one_line_before_the_cache_is_opened(option: str, message: str, capsys) -> None:
    from vtrbench.cli import main

    code = main(["eval", "--cache", "/nonexistent.h5", "--head", "zeroshot", "--post-option", option])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err and "nonexistent" not in err


def _finite_topk(result: dict) -> bool:
    return all(
        np.isfinite(row).all() for p in result["topk_scores"].values() for d in p.values() for row in d
    )


def test_score_scaling_bounds_keep_every_post_processing_finite_and_beyond_is_one_line() -> None:
    """The rule (defaults.POST_SCALE_MAX): a factor <= 1e6 (is_beta, 1 / sinkhorn_eps) keeps every
    post-processing finite for max|s| <= 1e31; a larger max|s| at such a factor is refused naming the
    option. Embeddings scaled so that the largest |score| sits just inside and just outside that line."""
    rng = np.random.default_rng(5)
    text = rng.normal(size=(24, 8))
    video = rng.normal(size=(8, 8))
    qv = np.arange(24) % 8
    raw_max = np.abs(text @ video.T).max()
    worst = {"is_beta": 1e6, "sinkhorn_eps": 1e-6, "sinkhorn_iters": 20}
    posts = ["raw", "is-test", "sinkhorn"]
    inside = text * (0.9e31 / raw_max)
    result = evaluate_embeddings(
        inside, video, qv, logit_scale=SCALE, postprocessing=posts, post_options=worst
    )
    assert _finite_topk(result)
    # independent oracle for is-test's top-1: argmax_j beta s_ij - logsumexp_m beta s_mj, in float64
    z = 1e6 * (inside @ video.T)
    lse = z.max(0) + np.log(np.exp(z - z.max(0)).sum(0))
    assert [row[0] for row in result["topk"]["is-test"]["t2v"]] == list((z - lse).argmax(1))
    outside = text * (2e31 / raw_max)
    for key in ("is_beta", "sinkhorn_eps"):
        asked = {key: worst[key]}
        with pytest.raises(VtrbenchError, match=f"--post-option {key}=") as e:
            evaluate_embeddings(
                outside, video, qv, logit_scale=SCALE, postprocessing=posts, post_options=asked
            )
        assert "\n" not in str(e.value)
    # the default factors (20) are far from the line at the same scores
    assert _finite_topk(evaluate_embeddings(outside, video, qv, logit_scale=SCALE, postprocessing=posts))
