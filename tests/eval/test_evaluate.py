"""Chunked evaluation == an independent dense computation, for every post-processing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings
from vtrbench.metrics import t2v_metrics, v2t_metrics

SCALE, TAU, BETA = 100.0, 1.0, 20.0


def normalised(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def make_split(seed: int, n_videos: int = 40, max_caps: int = 3, dim: int = 16, n_bank: int = 50):
    """Caption embeddings near their video's; banks drawn around the test videos so that hubs occur."""
    g = torch.Generator().manual_seed(seed)
    caps = torch.randint(1, max_caps + 1, (n_videos,), generator=g)
    qv = torch.repeat_interleave(torch.arange(n_videos), caps)
    qv = qv[torch.randperm(len(qv), generator=g)]
    video = normalised(torch.randn(n_videos, dim, generator=g))
    text = normalised(video[qv] + 0.9 * torch.randn(len(qv), dim, generator=g))
    pick = torch.randint(0, n_videos, (n_bank,), generator=g)
    bank_text = normalised(video[pick] + 0.9 * torch.randn(n_bank, dim, generator=g))
    bank_video = normalised(
        text[torch.randint(0, len(qv), (n_bank,), generator=g)] + torch.randn(n_bank, dim, generator=g)
    )
    return text, video, qv, bank_text, bank_video


# ------------------------------------------------------- dense reference, written from METHODS.md §8


def dense_dsl(s: torch.Tensor) -> torch.Tensor:
    z = SCALE * s.double()
    return z * torch.softmax(z / TAU, dim=0)


def dense_qbnorm(s: torch.Tensor, bank_sim: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    s, bank_sim = s.double(), bank_sim.double()
    hubs = set(bank_sim.argmax(1).tolist())
    denom = torch.exp(BETA * bank_sim).sum(0)
    out = s.clone()
    is_hub_query = np.zeros(s.shape[0], dtype=bool)
    for i in range(s.shape[0]):
        if int(s[i].argmax()) in hubs:
            out[i] = torch.exp(BETA * s[i]) / denom
            is_hub_query[i] = True
    return out, is_hub_query


def dense_reference(text, video, qv, bank_text, bank_video, protocol):
    s = text @ video.T  # captions x videos
    st = video @ text.T  # videos x captions: v2t post-processing acts on this orientation
    t2v = {"raw": s, "dsl": dense_dsl(s), "qbnorm": dense_qbnorm(s, bank_text @ video.T)[0]}
    v2t = {"raw": st, "dsl": dense_dsl(st), "qbnorm": dense_qbnorm(st, bank_video @ text.T)[0]}
    out = {}
    for post in ("raw", "dsl", "qbnorm"):
        m_t, r_t = t2v_metrics(t2v[post], qv)
        m_v, r_v = v2t_metrics(v2t[post].T, qv, protocol)
        out[post] = (m_t, r_t, m_v, r_v)
    return out


# ------------------------------------------------------- tests


@pytest.mark.parametrize("protocol", ["clip4clip", "any-caption"])
def test_chunked_equals_dense_reference(protocol):
    text, video, qv, bank_text, bank_video = make_split(0)
    want = dense_reference(text, video, qv, bank_text, bank_video, protocol)
    n = len(qv)
    for chunk in (1, 7, n, n + 5):
        got = evaluate_embeddings(
            text, video, qv, logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video,
            dsl_tau=TAU, qb_beta=BETA, v2t_protocol=protocol, chunk_size=chunk,
        )  # fmt: skip
        for post, (m_t, r_t, m_v, r_v) in want.items():
            np.testing.assert_array_equal(got["per_query_ranks"][post]["t2v"], r_t, err_msg=f"{post} {chunk}")
            np.testing.assert_array_equal(got["per_query_ranks"][post]["v2t"], r_v, err_msg=f"{post} {chunk}")
            assert got["metrics"][post]["t2v"] == pytest.approx(m_t)
            assert got["metrics"][post]["v2t"] == pytest.approx(m_v)
    # the post-processings do change the ranking on this data
    ranks = got["per_query_ranks"]
    assert ranks["raw"]["t2v"] != ranks["dsl"]["t2v"] and ranks["raw"]["t2v"] != ranks["qbnorm"]["t2v"]
    assert ranks["raw"]["v2t"] != ranks["dsl"]["v2t"] and ranks["raw"]["v2t"] != ranks["qbnorm"]["v2t"]


def test_ties_chunked_equals_dense_and_chunk_invariant():
    # Integer embeddings: every dot product is exact in float32 whatever the chunk, and many are tied.
    g = torch.Generator().manual_seed(5)
    n_v = 30
    qv = torch.cat([torch.arange(n_v), torch.randint(0, n_v, (20,), generator=g)])
    video = torch.randint(-1, 2, (n_v, 6), generator=g).float()
    text = torch.randint(-1, 2, (len(qv), 6), generator=g).float()
    banks = dict(bank_text=torch.randint(-1, 2, (25, 6), generator=g).float(), bank_video=video[:10] + 1)
    results = [
        evaluate_embeddings(text, video, qv, logit_scale=0.5, chunk_size=c, **banks) for c in (1, 4, 64)
    ]
    m_t, r_t = t2v_metrics(text @ video.T, qv)
    m_v, r_v = v2t_metrics(text @ video.T, qv)
    assert np.any(r_t != np.round(r_t)) and np.any(r_v != np.round(r_v))  # ties present
    for res in results:
        assert res["per_query_ranks"]["raw"]["t2v"] == r_t.tolist()
        assert res["per_query_ranks"]["raw"]["v2t"] == r_v.tolist()
        assert res["metrics"]["raw"]["t2v"] == m_t
        assert res["per_query_ranks"] == results[0]["per_query_ranks"]
    # exact ties survive post-processing (the normalisers do not depend on summation order)
    assert any(r != round(r) for r in results[0]["per_query_ranks"]["dsl"]["t2v"])


def test_dsl_needs_the_full_matrix():
    text, video, qv, _, _ = make_split(1, n_videos=60)
    full = evaluate_embeddings(text, video, qv, logit_scale=SCALE, chunk_size=8, postprocessing=["dsl"])
    # The wrong way: a softmax over the queries of each chunk only.
    s = text @ video.T
    per_chunk = torch.cat([dense_dsl(s[i : i + 8]) for i in range(0, len(qv), 8)])
    _, wrong_ranks = t2v_metrics(per_chunk, qv)
    _, right_ranks = t2v_metrics(dense_dsl(s), qv)
    assert full["per_query_ranks"]["dsl"]["t2v"] == right_ranks.tolist()
    assert full["per_query_ranks"]["dsl"]["t2v"] != wrong_ranks.tolist()


def test_qbnorm_leaves_non_hub_rows_unchanged():
    text, video, qv, bank_text, bank_video = make_split(2, n_videos=50)
    res = evaluate_embeddings(text, video, qv, logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video)
    _, is_hub_query = dense_qbnorm(text @ video.T, bank_text @ video.T)
    raw = np.array(res["per_query_ranks"]["raw"]["t2v"])
    qb = np.array(res["per_query_ranks"]["qbnorm"]["t2v"])
    assert 0 < is_hub_query.sum() < len(qv)
    np.testing.assert_array_equal(qb[~is_hub_query], raw[~is_hub_query])
    assert np.any(qb[is_hub_query] != raw[is_hub_query])


def test_qbnorm_without_active_hubs_is_raw():
    text, video, qv, _, _ = make_split(3)
    # Every bank query's top-1 is a video that no test caption ranks first.
    raw_top = set((text @ video.T).argmax(1).tolist())
    cold = next(v for v in range(len(video)) if v not in raw_top)
    bank = video[cold].repeat(10, 1)
    res = evaluate_embeddings(text, video, qv, logit_scale=SCALE, bank_text=bank, bank_video=text[:3])
    assert res["per_query_ranks"]["qbnorm"]["t2v"] == res["per_query_ranks"]["raw"]["t2v"]
    assert res["metrics"]["qbnorm"]["t2v"] == res["metrics"]["raw"]["t2v"]


def test_result_structure():
    text, video, qv, bank_text, bank_video = make_split(4)
    res = evaluate_embeddings(text.numpy(), video.numpy(), qv.numpy(), logit_scale=SCALE)
    assert list(res["metrics"]) == ["raw", "dsl"]  # no bank -> no qbnorm
    for post, m in res["metrics"].items():
        assert m["RSum"] == pytest.approx(sum(m[d][f"R@{k}"] for d in ("t2v", "v2t") for k in (1, 5, 10)))
        assert len(res["per_query_ranks"][post]["t2v"]) == len(qv)
        assert len(res["per_query_ranks"][post]["v2t"]) == len(video)
    json.dumps(res)
    res = evaluate_embeddings(
        text,
        video,
        qv,
        logit_scale=SCALE,
        bank_text=bank_text,
        bank_video=bank_video,
        postprocessing=["qbnorm"],
    )
    assert list(res["metrics"]) == ["qbnorm"]
    assert res["protocol"]["qbnorm"] == {"bank_size": {"t2v": 50, "v2t": 50}, "beta": 20.0, "k": 1}


def test_user_errors():
    text, video, qv, bank_text, _ = make_split(5, n_videos=10)
    kw = dict(logit_scale=SCALE)
    with pytest.raises(VtrbenchError, match="did you mean 'dsl'"):
        evaluate_embeddings(text, video, qv, postprocessing=["dls"], **kw)
    with pytest.raises(VtrbenchError, match="did you mean 'clip4clip'"):
        evaluate_embeddings(text, video, qv, v2t_protocol="clip4clp", **kw)
    with pytest.raises(VtrbenchError, match="both bank_text"):
        evaluate_embeddings(text, video, qv, bank_text=bank_text, **kw)
    with pytest.raises(VtrbenchError, match="have no caption"):
        evaluate_embeddings(text, torch.cat([video, video[:1]]), qv, **kw)
    with pytest.raises(VtrbenchError, match="embedding size"):
        evaluate_embeddings(text, video[:, :5], qv, **kw)
    with pytest.raises(VtrbenchError, match="NaN"):
        evaluate_embeddings(text * float("nan"), video, qv, **kw)
    with pytest.raises(VtrbenchError, match="chunk_size"):
        evaluate_embeddings(text, video, qv, chunk_size=0, **kw)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from vtrbench.eval import evaluate_embeddings
    torch.set_num_threads(1)
    n, dim = 12000, 64
    g = torch.Generator().manual_seed(0)
    video = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    text = torch.nn.functional.normalize(video + torch.randn(n, dim, generator=g), dim=1)
    qv = torch.arange(n)
    evaluate_embeddings(text[:64], video[:64], qv[:64], logit_scale=100.0, postprocessing=["raw"])  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # matrix_bytes=0: the score matrix goes to a temporary file instead of memory (the streamed path)
    res = evaluate_embeddings(
        text, video, qv, logit_scale=100.0, chunk_size=128, postprocessing=["raw"], matrix_bytes=0
    )
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024, res["metrics"]["raw"]["t2v"]["R@1"], res["eval_s"])
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_chunked_memory_stays_far_below_the_dense_matrix():
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], cwd=repo, env={"PYTHONPATH": str(repo)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    grown, r1, _ = out.stdout.split()
    dense_bytes = 12000 * 12000 * 4  # one float32 similarity matrix: 549 MiB
    assert int(grown) < dense_bytes / 4, f"peak RSS grew {int(grown) / 2**20:.0f} MiB"
    assert 0 < float(r1) < 100


def test_progress_counts_every_ranked_query_once() -> None:
    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(23, 8, generator=g), dim=-1)
    video = torch.nn.functional.normalize(torch.randn(9, 8, generator=g), dim=-1)
    qv = torch.arange(23) % 9
    seen: list[int] = []
    with_progress = evaluate_embeddings(
        text, video, qv, logit_scale=100.0, chunk_size=4, progress=seen.append
    )
    plain = evaluate_embeddings(text, video, qv, logit_scale=100.0, chunk_size=4)
    assert sum(seen) == 23 + 9 and max(seen) <= 4
    assert with_progress["metrics"] == plain["metrics"]
