"""vtrbench.metrics against brute-force oracles written here, independently of the code under test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vtrbench.errors import VtrbenchError
from vtrbench.metrics import (
    TIE_POLICY,
    TieCounts,
    expected_recall,
    retrieval_metrics,
    rsum,
    t2v_metrics,
    v2t_metrics,
)

KS = (1, 5, 10, 50)


# ---------------------------------------------------------------- oracles


def enumerate_tie_breaks(scores: list[float], correct: set[int], ks=KS) -> tuple[float, dict[int, float]]:
    """Exact expectation by enumerating every order of the items consistent with the scores.

    Returns the expected rank of the first correct item and P(rank <= k) for each k.
    """
    n = len(scores)
    total, rank_sum, hits = 0, 0, dict.fromkeys(ks, 0)
    for order in itertools.permutations(range(n)):
        if any(scores[order[i]] < scores[order[i + 1]] for i in range(n - 1)):
            continue
        rank = 1 + next(i for i, item in enumerate(order) if item in correct)
        total += 1
        rank_sum += rank
        for k in ks:
            hits[k] += rank <= k
    return rank_sum / total, {k: hits[k] / total for k in ks}


def loop_expectation(scores, correct, ks=KS):
    """Closed-form expectation from counts made with plain loops (validated by enumerate_tie_breaks)."""
    best = max(scores[j] for j in correct)
    g = sum(1 for j, s in enumerate(scores) if j not in correct and s > best)
    t = sum(1 for j, s in enumerate(scores) if j not in correct and s == best)
    c = sum(1 for j in correct if scores[j] == best)
    rank = 1 + g + t / (c + 1)
    probs = {}
    for k in ks:
        w = k - g
        if w <= 0:
            probs[k] = 0.0
        elif w > t:
            probs[k] = 1.0
        else:  # P(the first w of the t + c tied items are all wrong)
            probs[k] = 1 - math.comb(t, w) / math.comb(t + c, w)
    return rank, probs


def summarise(per_query):
    ranks = [r for r, _ in per_query]
    out = {f"R@{k}": 100 * sum(p[k] for _, p in per_query) / len(per_query) for k in KS}
    srt = sorted(ranks)
    mid = len(srt) // 2
    out["MdR"] = srt[mid] if len(srt) % 2 else (srt[mid - 1] + srt[mid]) / 2
    out["MnR"] = sum(ranks) / len(ranks)
    return out, ranks


def oracle_t2v(sim, qv, expect=loop_expectation):
    sim = np.asarray(sim, dtype=np.float64)
    return summarise([expect(list(sim[i]), {int(qv[i])}) for i in range(sim.shape[0])])


def oracle_v2t(sim, qv, protocol, expect=loop_expectation):
    sim = np.asarray(sim, dtype=np.float64)
    n_q, n_v = sim.shape
    per_query = []
    for v in range(n_v):
        if protocol == "clip4clip":
            grouped = [max(sim[c, v] for c in range(n_q) if qv[c] == u) for u in range(n_v)]
            per_query.append(expect(grouped, {v}))
        else:
            per_query.append(expect(list(sim[:, v]), {c for c in range(n_q) if qv[c] == v}))
    return summarise(per_query)


def clip4clip_compute_metrics(x):
    """CLIP4Clip's metrics formula (rows = queries, diagonal = ground truth), re-implemented."""
    sx = np.sort(-x, axis=1)
    d = np.diag(-x)[:, None]
    ind = np.where(sx - d == 0)[1]
    return {
        "R@1": float(np.sum(ind == 0)) * 100 / len(ind),
        "R@5": float(np.sum(ind < 5)) * 100 / len(ind),
        "R@10": float(np.sum(ind < 10)) * 100 / len(ind),
        "MdR": float(np.median(ind)) + 1,
        "MnR": float(np.mean(ind)) + 1,
    }


def assert_metrics_close(got, want):
    assert set(want) <= set(got)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key


# ---------------------------------------------------------------- fixtures


def multi_caption_index(rng, n_videos, max_caps):
    qv = np.concatenate([np.full(rng.integers(1, max_caps + 1), v) for v in range(n_videos)])
    return rng.permutation(qv)


def test_oracles_agree_on_tiny_integer_matrices():
    # The closed form used by loop_expectation, checked against exhaustive tie-breaking.
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(2, 7))
        scores = list(rng.integers(0, 3, size=n).astype(float))
        correct = set(rng.choice(n, size=int(rng.integers(1, min(n, 3) + 1)), replace=False).tolist())
        rank_e, probs_e = enumerate_tie_breaks(scores, correct, ks=(1, 2, 3, 5))
        rank_l, probs_l = loop_expectation(scores, correct, ks=(1, 2, 3, 5))
        assert rank_l == pytest.approx(rank_e)
        for k in probs_e:
            assert probs_l[k] == pytest.approx(probs_e[k])


@pytest.mark.parametrize("protocol", ["clip4clip", "any-caption"])
def test_small_multi_caption_against_exhaustive_enumeration(protocol):
    rng = np.random.default_rng(1)
    for _ in range(5):
        qv = multi_caption_index(rng, 3, 2)
        sim = rng.integers(0, 2, size=(len(qv), 3))
        m, ranks = t2v_metrics(sim, qv)
        want, want_ranks = oracle_t2v(sim, qv, expect=enumerate_tie_breaks)
        assert_metrics_close(m, want)
        np.testing.assert_allclose(ranks, want_ranks)
        if protocol == "any-caption" and len(qv) > 7:
            continue  # keep the enumeration over captions small
        m, ranks = v2t_metrics(sim, qv, protocol)
        want, want_ranks = oracle_v2t(sim, qv, protocol, expect=enumerate_tie_breaks)
        assert_metrics_close(m, want)
        np.testing.assert_allclose(ranks, want_ranks)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("multi", [False, True])
def test_random_matrices_against_loop_oracle(ties, multi):
    rng = np.random.default_rng(2 + 2 * ties + multi)
    n_v = 60
    qv = multi_caption_index(rng, n_v, 4) if multi else rng.permutation(n_v)
    shape = (len(qv), n_v)
    sim = rng.integers(-3, 4, size=shape).astype(np.float32) if ties else rng.standard_normal(shape)
    sim[np.arange(len(qv)), qv] += 1.0  # some signal, so ranks spread over 1..N
    m, ranks = t2v_metrics(sim, qv)
    want, want_ranks = oracle_t2v(sim, qv)
    assert_metrics_close(m, want)
    np.testing.assert_allclose(ranks, want_ranks)
    assert ties == bool(np.any(ranks != np.round(ranks)))
    for protocol in ("clip4clip", "any-caption"):
        m, ranks = v2t_metrics(sim, qv, protocol)
        want, want_ranks = oracle_v2t(sim, qv, protocol)
        assert_metrics_close(m, want)
        np.testing.assert_allclose(ranks, want_ranks)


def test_protocols_differ_with_multiple_captions_and_agree_with_one():
    rng = np.random.default_rng(7)
    qv = multi_caption_index(rng, 40, 5)
    sim = rng.standard_normal((len(qv), 40))
    a, _ = v2t_metrics(sim, qv, "clip4clip")
    b, _ = v2t_metrics(sim, qv, "any-caption")
    assert a != b
    qv1 = rng.permutation(40)
    sim1 = rng.standard_normal((40, 40))
    assert v2t_metrics(sim1, qv1, "clip4clip")[0] == v2t_metrics(sim1, qv1, "any-caption")[0]


@pytest.mark.parametrize("n", [7, 100])
def test_constant_similarity_is_chance_level(n):
    qv = np.arange(n)
    for m, ranks in (t2v_metrics(np.zeros((n, n)), qv), v2t_metrics(np.full((n, n), 0.3), qv)):
        for k in KS:
            assert m[f"R@{k}"] == pytest.approx(100 * min(k, n) / n)
        assert m["MdR"] == m["MnR"] == (n + 1) / 2
        np.testing.assert_array_equal(ranks, (n + 1) / 2)


def test_constant_similarity_any_caption():
    # Video v with c captions among 10: t = 10 - c wrong captions tied with c correct ones.
    qv = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    m, ranks = v2t_metrics(np.ones((10, 4)), qv, "any-caption")
    caps = np.bincount(qv)
    np.testing.assert_allclose(ranks, 1 + (10 - caps) / (caps + 1))
    assert m["R@1"] == pytest.approx(100 * np.mean(caps / 10))


def test_hand_worked_example():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.3], [0.1, 0.1, 0.1]])
    m, ranks = t2v_metrics(sim, [0, 1, 2])
    np.testing.assert_allclose(ranks, [1.0, 1.5, 2.0])
    assert m["R@1"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3)
    assert m["R@5"] == 100.0
    assert m["MdR"] == 1.5 and m["MnR"] == pytest.approx(1.5)
    # v2t on the transpose: video 0 column [0.9, 0.2, 0.1] -> rank 1; video 1 [0.1, 0.3, 0.1] -> 1;
    # video 2 [0.5, 0.3, 0.1]: 0.1 is last -> 3.
    m, ranks = v2t_metrics(sim, [0, 1, 2])
    np.testing.assert_allclose(ranks, [1.0, 1.0, 3.0])
    assert m["R@1"] == pytest.approx(200 / 3)
    assert m["MdR"] == 1.0


def test_hand_worked_any_caption_with_tied_correct_captions():
    # Video 0 owns captions 0 and 1; all three captions score 0.5 for it. Orders of {a, b, x}: the first
    # item is correct with probability 2/3, else the rank is 2 -> expected rank 4/3.
    sim = np.array([[0.5, 0.0], [0.5, 0.0], [0.5, 1.0]])
    m, ranks = v2t_metrics(sim, [0, 0, 1], "any-caption")
    np.testing.assert_allclose(ranks, [4 / 3, 1.0])
    assert m["R@1"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    # clip4clip groups captions 0 and 1 into one score 0.5 against video 1's 0.5: one tie.
    _, ranks = v2t_metrics(sim, [0, 0, 1], "clip4clip")
    np.testing.assert_allclose(ranks, [1.5, 1.0])


def test_equals_clip4clip_compute_metrics_without_ties():
    rng = np.random.default_rng(3)
    for n in (5, 64, 300):
        sim = rng.standard_normal((n, n)) + 2 * np.eye(n)
        t2v, _ = t2v_metrics(sim, np.arange(n))
        v2t, _ = v2t_metrics(sim, np.arange(n))
        assert_metrics_close(t2v, clip4clip_compute_metrics(sim))
        assert_metrics_close(v2t, clip4clip_compute_metrics(sim.T))


def test_clip4clip_formula_overweights_tied_queries():
    # One tied row (constant) and one perfect row: vtrbench weighs both queries equally.
    sim = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    m, _ = t2v_metrics(sim, [0, 1, 2])
    assert m["R@1"] == pytest.approx(100 * (1 / 3 + 1 + 1) / 3)
    assert clip4clip_compute_metrics(sim)["R@1"] == pytest.approx(100 * 3 / 5)


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(4)
    qv = multi_caption_index(rng, 20, 3)
    sim = rng.integers(0, 5, size=(len(qv), 20)).astype(np.float32)
    for protocol in ("clip4clip", "any-caption"):
        a = v2t_metrics(sim, qv, protocol)
        b = v2t_metrics(torch.from_numpy(sim), torch.from_numpy(qv), protocol)
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[1], b[1])
    a, b = t2v_metrics(sim, qv), t2v_metrics(torch.from_numpy(sim), torch.from_numpy(qv))
    assert a[0] == b[0]


def test_expected_recall_with_several_tied_correct_items_matches_enumeration():
    counts = TieCounts(np.array([0, 1, 2, 0]), np.array([3, 2, 4, 0]), np.array([2, 3, 2, 1]))
    for i in range(4):
        g, t, c = (int(a[i]) for a in counts)
        scores = [2.0] * g + [1.0] * (t + c)
        correct = set(range(g + t, g + t + c))
        _, probs = enumerate_tie_breaks(scores, correct, ks=(1, 2, 3, 4))
        for k, p in probs.items():
            assert expected_recall(counts, k)[i] == pytest.approx(p)


def test_retrieval_metrics_keys_rsum_and_policy():
    m = retrieval_metrics(TieCounts(np.array([0, 3]), np.array([0, 0]), np.array([1, 1])))
    assert list(m) == ["R@1", "R@5", "R@10", "R@50", "MdR", "MnR"]
    assert rsum(m, m) == pytest.approx(2 * (50 + 100 + 100))
    assert "1 + g + t/(c+1)" in TIE_POLICY


def test_user_errors():
    sim = np.zeros((3, 3))
    with pytest.raises(VtrbenchError, match="did you mean 'any-caption'"):
        v2t_metrics(sim, [0, 1, 2], protocol="any_caption")
    with pytest.raises(VtrbenchError, match="outside"):
        t2v_metrics(sim, [0, 1, 3])
    with pytest.raises(VtrbenchError, match="length 3"):
        t2v_metrics(sim, [0, 1])
    with pytest.raises(VtrbenchError, match="1 of 3 videos have none"):
        v2t_metrics(sim, [0, 1, 1])
    with pytest.raises(VtrbenchError, match="NaN"):
        t2v_metrics(np.full((3, 3), np.nan), [0, 1, 2])
