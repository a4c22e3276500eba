"""Inference post-processing with temperatures other than the defaults (METHODS.md section 8).

test_evaluate.py checks the chunked evaluation against a dense reference at tau = 1 and
beta = 20, where ``z / tau`` and ``z * tau`` agree: a DSL that multiplied by the temperature
passed. Here the dense computation is written again from METHODS.md with tau and beta that are
not 1 and 20, and several chunk sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings
from vtrbench.metrics import t2v_metrics, v2t_metrics

SCALE = 100.0


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def data(seed: int = 3, n_videos: int = 30, dim: int = 12, n_bank: int = 40):
    g = torch.Generator().manual_seed(seed)
    qv = torch.arange(n_videos).repeat_interleave(2)[torch.randperm(2 * n_videos, generator=g)]
    video = unit(torch.randn(n_videos, dim, generator=g, dtype=torch.float64)).float()
    text = unit(video[qv] + 0.8 * torch.randn(len(qv), dim, generator=g)).float()
    bank_text = unit(
        video[torch.randint(0, n_videos, (n_bank,), generator=g)]
        + 0.8 * torch.randn(n_bank, dim, generator=g)
    )
    bank_video = unit(
        text[torch.randint(0, len(qv), (n_bank,), generator=g)] + torch.randn(n_bank, dim, generator=g)
    )
    return text, video, qv, bank_text.float(), bank_video.float()


def dsl(s: torch.Tensor, tau: float) -> torch.Tensor:
    """S' = S * softmax(S / tau, dim=0) on logit-scaled scores, over the whole query x gallery matrix."""
    z = SCALE * s.double()
    return z * torch.softmax(z / tau, dim=0)


def qbnorm(s: torch.Tensor, bank: torch.Tensor, beta: float) -> torch.Tensor:
    """Rows whose raw top-1 is a hub (top-1 of some bank query) become exp(beta s) / sum_bank exp(beta b)."""
    s, bank = s.double(), bank.double()
    hubs = set(bank.argmax(1).tolist())
    out = s.clone()
    for i in range(s.shape[0]):
        if int(s[i].argmax()) in hubs:
            out[i] = torch.exp(beta * s[i]) / torch.exp(beta * bank).sum(0)
    return out


@pytest.mark.parametrize(("tau", "beta"), [(0.3, 7.0), (4.0, 35.0)])
def test_dsl_and_qbnorm_use_their_temperatures(tau: float, beta: float) -> None:
    text, video, qv, bank_text, bank_video = data()
    s = text.double() @ video.double().T
    st = s.T
    want = {
        "dsl": (dsl(s, tau), dsl(st, tau)),
        "qbnorm": (
            qbnorm(s, bank_text.double() @ video.double().T, beta),
            qbnorm(st, bank_video.double() @ text.double().T, beta),
        ),
    }
    for chunk in (5, 1000):
        got = evaluate_embeddings(
            text, video, qv, logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video,
            dsl_tau=tau, qb_beta=beta, chunk_size=chunk,
        )  # fmt: skip
        for post, (t2v_scores, v2t_scores) in want.items():
            m_t, r_t = t2v_metrics(t2v_scores, qv)
            m_v, r_v = v2t_metrics(v2t_scores.T, qv)
            np.testing.assert_array_equal(got["per_query_ranks"][post]["t2v"], r_t, err_msg=f"{post} {chunk}")
            np.testing.assert_array_equal(got["per_query_ranks"][post]["v2t"], r_v, err_msg=f"{post} {chunk}")
            assert got["metrics"][post]["t2v"] == pytest.approx(m_t)
    # the temperature matters on this data: another tau gives other DSL ranks
    other = evaluate_embeddings(text, video, qv, logit_scale=SCALE, dsl_tau=1.0, postprocessing=("dsl",))
    assert other["per_query_ranks"]["dsl"]["t2v"] != got["per_query_ranks"]["dsl"]["t2v"]


def test_embeddings_of_different_precision_are_promoted() -> None:
    # float32 captions against float64 videos: ranked as if both were float64 (not refused, not cast down)
    text, video, qv, _, _ = data(seed=5)
    video64 = video.double() + 1e-9 * torch.randn(video.shape, dtype=torch.float64)
    mixed = evaluate_embeddings(text, video64, qv, logit_scale=SCALE, postprocessing=("raw", "dsl"))
    both = evaluate_embeddings(text.double(), video64, qv, logit_scale=SCALE, postprocessing=("raw", "dsl"))
    assert mixed["per_query_ranks"] == both["per_query_ranks"] and mixed["metrics"] == both["metrics"]


# ---------------------------------------------------- input refusals (found by mutation testing)


def _eval(text, video, qv, **kw):
    kw = {"logit_scale": SCALE, "postprocessing": ("raw",), **kw}
    return evaluate_embeddings(text, video, qv, **kw)


def test_embeddings_must_be_non_empty_2d_float() -> None:
    text, video, qv, _, _ = data()
    for bad in (text[:0], text[0], text.long()):  # no rows, 1-D, integers
        with pytest.raises(VtrbenchError, match="text_emb must be a non-empty"):
            _eval(bad, video, qv)
    # one caption and one video is a valid (tiny) test split
    one = _eval(text[:1], video[qv[:1]], torch.tensor([0]))
    assert one["per_query_ranks"]["raw"]["t2v"] == [1.0]


def test_query_video_shape_and_range_are_checked() -> None:
    text, video, qv, _, _ = data()
    with pytest.raises(VtrbenchError, match="query_video must be 1-D integer"):
        _eval(text, video, qv[:, None])
    for bad_row, shown in ((len(video), f"0..{len(video)}"), (-1, f"-1..{len(video) - 1}")):
        q = qv.clone()
        q[0] = bad_row
        if bad_row == -1:
            q[1:] = torch.arange(len(q) - 1) % len(video)
        with pytest.raises(VtrbenchError, match=rf"outside \[0, {len(video)}\): {shown}"):
            _eval(text, video, q)


def test_videos_without_a_caption_are_counted_in_the_refusal() -> None:
    text, video, _, _, _ = data()
    qv = torch.tensor([0, 1, 3, 3, 1])  # videos 2 and 4 of 5 have no caption
    with pytest.raises(VtrbenchError, match=r"2 of 5 test videos have no caption.*\(first: row 2\)"):
        _eval(text[:5], video[:5], qv)


def test_one_post_processing_can_be_named_as_a_string() -> None:
    text, video, qv, _, _ = data()
    got = evaluate_embeddings(text, video, qv, logit_scale=SCALE, postprocessing="dsl")
    assert set(got["metrics"]) == {"dsl"}


def test_numeric_options_are_checked_and_sizes_reported() -> None:
    text, video, qv, _, _ = data()
    for kw in ({"chunk_size": True}, {"chunk_size": 0}, {"dsl_tau": 0.0}, {"logit_scale": float("inf")}):
        with pytest.raises(VtrbenchError):
            _eval(text, video, qv, **kw)
    protocol = _eval(text, video, qv)["protocol"]
    assert protocol["n_queries"] == len(qv) == 60 and protocol["n_gallery"] == len(video) == 30
