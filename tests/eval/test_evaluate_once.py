"""Each pair scored once; result files store the tie counts every metric is computed from, and top-k.

Issue 20 item 1 (one scoring pass, in memory or streamed to a temporary file), issue 18 item 1
(``per_query`` counts, schema 2), issue 21 (``topk``) and issue 19 item 6 (``qb_k`` refused when the
gallery cannot give it; the real bank size recorded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.eval.test_evaluate import BETA, SCALE, TAU, dense_dsl, dense_qbnorm, make_split
from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings, evaluate_pairwise
from vtrbench.eval import matrix as ev_matrix
from vtrbench.eval.scoring import EmbeddingScorer
from vtrbench.metrics import (
    RECALL_KS,
    counts_from_json,
    expected_ranks,
    median_rank,
    ranks_from_counts,
    recall_from_counts,
)
from vtrbench.results import SCHEMA, read_result, write_result


def tie_heavy(seed: int = 5, n_v: int = 30, extra: int = 20):
    """Integer embeddings: dot products are exact whatever the chunk, and many are tied."""
    g = torch.Generator().manual_seed(seed)
    qv = torch.cat([torch.arange(n_v), torch.randint(0, n_v, (extra,), generator=g)])
    video = torch.randint(-1, 2, (n_v, 6), generator=g).float()
    text = torch.randint(-1, 2, (len(qv), 6), generator=g).float()
    banks = dict(bank_text=torch.randint(-1, 2, (25, 6), generator=g).float(), bank_video=video[:10] + 1)
    return text, video, qv, banks


# ------------------------------------------------------------------ per_query == the metrics


@pytest.mark.parametrize("protocol", ["clip4clip", "any-caption"])
def test_stored_counts_give_the_stored_metrics_exactly(protocol: str) -> None:
    text, video, qv, banks = tie_heavy()
    res = evaluate_embeddings(text, video, qv, logit_scale=0.5, v2t_protocol=protocol, **banks)
    assert set(res["per_query"]) == set(res["metrics"]) == {"raw", "dsl", "qbnorm"}
    fractional = 0
    for post, dirs in res["per_query"].items():
        for d, stored in dirs.items():
            counts = counts_from_json(stored)
            assert len(counts.higher) == (len(qv) if d == "t2v" else len(video))
            m = res["metrics"][post][d]
            for k in RECALL_KS:  # exactly, not approximately: the report's Δ relies on it
                assert 100.0 * float(recall_from_counts(stored, k).mean()) == m[f"R@{k}"]
            ranks = ranks_from_counts(stored)
            assert ranks.tolist() == res["per_query_ranks"][post][d]
            assert float(ranks.mean()) == m["MnR"] and median_rank(ranks) == m["MdR"]
            fractional += int(np.sum(ranks != np.round(ranks)))
    assert fractional > 0  # ties present, so expected recall is not the indicator rank <= K


def test_counts_from_json_refuses_malformed_counts() -> None:
    good = {"higher": [0, 2], "tied": [1, 0], "tied_correct": [1, 1]}
    assert counts_from_json(good, gallery=3).higher.tolist() == [0, 2]
    bad = [
        ({**good, "tied": [1]}, "one length"),
        ({**good, "higher": [-1, 0]}, ">= 0"),
        ({**good, "tied_correct": [0, 1]}, "tied_correct"),
        ({**good, "higher": [0.5, 1]}, "integers"),
        ({**good, "higher": [True, 1]}, "integers"),
        ({"higher": [0], "tied": [0]}, "exactly the keys"),
    ]
    for data, message in bad:
        with pytest.raises(VtrbenchError, match=message):
            counts_from_json(data, what="per_query.raw.t2v")
    with pytest.raises(VtrbenchError, match="gallery of 2"):
        counts_from_json(good, gallery=2)


# ------------------------------------------------------------------ top-k


def _dense_topk(scores: torch.Tensor, k: int) -> list[list[int]]:
    """Independent: sort every row by (score descending, gallery index ascending)."""
    s = scores.double().numpy()
    return [sorted(range(s.shape[1]), key=lambda j, r=r: (-s[r, j], j))[:k] for r in range(s.shape[0])]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_topk_is_the_dense_order_with_ties_by_gallery_index(chunk: int) -> None:
    text, video, qv, banks = tie_heavy(seed=9)
    res = evaluate_embeddings(text, video, qv, logit_scale=0.5, chunk_size=chunk, **banks)
    s = text @ video.T
    assert res["topk"]["raw"]["t2v"] == _dense_topk(s, 10)  # test videos, in split order
    assert res["topk"]["raw"]["v2t"] == _dense_topk(s.T, 10)  # test captions, in split order
    # many ties on this data: the index rule is what decides the lists
    assert any(len(set(row.tolist())) < 10 for row in s[:, :12])


def test_topk_of_post_processed_scores_and_small_galleries() -> None:
    text, video, qv, bank_text, bank_video = make_split(0, n_videos=8)
    res = evaluate_embeddings(
        text,
        video,
        qv,
        logit_scale=SCALE,
        bank_text=bank_text,
        bank_video=bank_video,
        dsl_tau=TAU,
        qb_beta=BETA,
    )
    s = text @ video.T
    assert res["topk"]["dsl"]["t2v"] == _dense_topk(dense_dsl(s), 8)  # k = gallery size when smaller
    assert res["topk"]["dsl"]["v2t"] == _dense_topk(dense_dsl(s.T), 10)
    assert res["topk"]["qbnorm"]["t2v"] == _dense_topk(dense_qbnorm(s, bank_text @ video.T)[0], 8)
    assert res["topk"]["raw"]["t2v"] != res["topk"]["dsl"]["t2v"]
    # the stored scores are what each post-processing ranks by, best first, 6 digits; QB-Norm ranks
    # a normalised query in log space (beta s - logsumexp over the bank), any other one by s itself
    qb, hub = dense_qbnorm(s, bank_text @ video.T)
    qb = torch.where(torch.from_numpy(hub)[:, None], qb.log(), qb)
    assert hub.any()  # with 8 videos every query is a hub query here
    for post, dense in (("raw", s), ("dsl", dense_dsl(s)), ("qbnorm", qb)):
        got, top = res["topk_scores"][post]["t2v"], res["topk"][post]["t2v"]
        want = [[float(dense[q, j]) for j in row] for q, row in enumerate(top)]
        assert np.allclose(got, want, rtol=1e-5, atol=1e-12), post
        assert all(row == sorted(row, reverse=True) for row in got)
    got = res["topk_scores"]["dsl"]["v2t"]
    want = [[float(dense_dsl(s.T)[v, j]) for j in row] for v, row in enumerate(res["topk"]["dsl"]["v2t"])]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-12)


# ------------------------------------------------------------------ every pair scored once


def _count_factorised(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pairs: list[int] = []
    for method in ("rows", "rows_into", "columns"):
        original = getattr(EmbeddingScorer, method)

        def counting(self: EmbeddingScorer, part: slice, *out: torch.Tensor, original=original) -> Any:
            scores = original(self, part, *out)
            pairs.append(scores.numel())
            return scores

        monkeypatch.setattr(EmbeddingScorer, method, counting)
    return pairs


@pytest.mark.parametrize("matrix_bytes", [ev_matrix.MATRIX_BYTES, 0])
def test_factorised_scores_each_pair_once(monkeypatch: pytest.MonkeyPatch, matrix_bytes: int) -> None:
    text, video, qv, bank_text, bank_video = make_split(1, n_videos=30, n_bank=70)
    pairs = _count_factorised(monkeypatch)
    res = evaluate_embeddings(
        text, video, qv, logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video,
        chunk_size=7, matrix_bytes=matrix_bytes,
    )  # fmt: skip
    n, m = len(qv), len(video)
    assert set(res["metrics"]) == {"raw", "dsl", "qbnorm"}
    # the test matrix once, the caption bank against the videos, the video bank against the captions
    assert sum(pairs) == n * m + len(bank_text) * m + len(bank_video) * n
    assert res["score_matrix"] == ("memory" if matrix_bytes else "disk")


def test_pairwise_scores_each_pair_once() -> None:
    g = torch.Generator().manual_seed(0)
    text = {"x": torch.nn.functional.normalize(torch.randn(23, 8, generator=g), dim=1)}
    video = {"x": torch.nn.functional.normalize(torch.randn(9, 8, generator=g), dim=1)}
    bank_t = {"x": torch.nn.functional.normalize(torch.randn(31, 8, generator=g), dim=1)}
    bank_v = {"x": torch.nn.functional.normalize(torch.randn(17, 8, generator=g), dim=1)}
    pairs: list[int] = []

    def score(t: dict, v: dict) -> torch.Tensor:
        pairs.append(t["x"].shape[0] * v["x"].shape[0])
        return t["x"] @ v["x"].T

    qv = torch.arange(23) % 9
    res = evaluate_pairwise(
        score, text, video, qv, logit_scale=SCALE, block=(4, 3), chunk_size=4,
        bank_text_state=bank_t, bank_video_state=bank_v,
    )  # fmt: skip
    assert set(res["metrics"]) == {"raw", "dsl", "qbnorm"}
    assert sum(pairs) == 23 * 9 + 31 * 9 + 17 * 23
    # and the scores are those of the factorised path (same function, block by block)
    flat = evaluate_embeddings(
        text["x"], video["x"], qv, logit_scale=SCALE, bank_text=bank_t["x"], bank_video=bank_v["x"]
    )
    assert res["per_query"] == flat["per_query"] and res["topk"] == flat["topk"]


@pytest.mark.parametrize("protocol", ["clip4clip", "any-caption"])
def test_matrix_on_disk_gives_the_same_result_and_is_removed(tmp_path: Path, protocol: str) -> None:
    text, video, qv, bank_text, bank_video = make_split(2, n_videos=150, n_bank=40)
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video, v2t_protocol=protocol)
    memory = evaluate_embeddings(text, video, qv, chunk_size=64, **kw)
    # tiles of 128 (the minimum): several row bands and column tiles, the last ones ragged
    disk = evaluate_embeddings(text, video, qv, chunk_size=64, matrix_bytes=0, tmp_dir=tmp_path, **kw)
    assert disk["score_matrix"] == "disk" and memory["score_matrix"] == "memory"
    for key in ("metrics", "per_query_ranks", "per_query", "topk"):
        assert disk[key] == memory[key], key
    assert list(tmp_path.iterdir()) == []


def test_matrix_file_is_removed_when_scoring_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text, video, qv, _, _ = make_split(3, n_videos=200)
    original = EmbeddingScorer.rows
    calls = []

    def failing(self: EmbeddingScorer, rows: slice) -> torch.Tensor:
        calls.append(rows)
        if len(calls) == 2:
            assert any(tmp_path.iterdir())  # the file exists while scoring
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(EmbeddingScorer, "rows", failing)
    with pytest.raises(KeyboardInterrupt):
        evaluate_embeddings(
            text, video, qv, logit_scale=SCALE, chunk_size=128, matrix_bytes=0, tmp_dir=tmp_path
        )
    assert list(tmp_path.iterdir()) == []


def test_without_room_on_disk_the_scores_are_recomputed_per_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text, video, qv, bank_text, bank_video = make_split(4, n_videos=20, n_bank=30)
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video, chunk_size=8)
    memory = evaluate_embeddings(text, video, qv, **kw)
    pairs = _count_factorised(monkeypatch)
    monkeypatch.setattr(ev_matrix.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    again = evaluate_embeddings(text, video, qv, matrix_bytes=0, tmp_dir=tmp_path, **kw)
    assert again["score_matrix"] == "recomputed"
    for key in ("metrics", "per_query", "topk"):
        assert again[key] == memory[key], key
    n, m = len(qv), len(video)
    # scale pass, DSL normalisers, t2v rows, v2t columns; each bank once
    assert sum(pairs) == 4 * n * m + len(bank_text) * m + len(bank_video) * n
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VtrbenchError, match="matrix_bytes"):
        evaluate_embeddings(text, video, qv, logit_scale=SCALE, matrix_bytes=-1)
    with pytest.raises(VtrbenchError, match="temporary folder") as err:
        evaluate_embeddings(text, video, qv, logit_scale=SCALE, matrix_bytes=0, tmp_dir="/nonexistent/dir")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_post_processings_together_equal_each_alone(dtype: torch.dtype) -> None:
    # every post-processing reads the one score matrix: none may change it for the next
    # (float64 scores are the matrix itself, not a copy, unless a post-processing copies them)
    text, video, qv, bank_text, bank_video = make_split(6, n_videos=25)
    kw = dict(logit_scale=SCALE, bank_text=bank_text.to(dtype), bank_video=bank_video.to(dtype))
    together = evaluate_embeddings(text.to(dtype), video.to(dtype), qv, **kw)
    for post in ("raw", "dsl", "qbnorm"):
        alone = evaluate_embeddings(text.to(dtype), video.to(dtype), qv, postprocessing=[post], **kw)
        assert alone["per_query"][post] == together["per_query"][post], post
        assert alone["topk"][post] == together["topk"][post], post


def test_in_memory_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    text, video, qv, _, _ = make_split(7, n_videos=40)  # ~80 x 40 float32: 12 KB
    for value, kind in (("0", "disk"), ("1K", "disk"), ("2g", "memory"), ("", "memory")):
        monkeypatch.setenv(ev_matrix.MATRIX_BYTES_ENV, value)
        assert evaluate_embeddings(text, video, qv, logit_scale=SCALE)["score_matrix"] == kind, value
    monkeypatch.setenv(ev_matrix.MATRIX_BYTES_ENV, "lots")
    with pytest.raises(VtrbenchError, match="VTRBENCH_EVAL_MATRIX_BYTES='lots'"):
        evaluate_embeddings(text, video, qv, logit_scale=SCALE)


# ------------------------------------------------------------------ qb_k


def test_qb_k_larger_than_the_gallery_is_refused_before_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    text, video, qv, bank_text, bank_video = make_split(5, n_videos=6)
    pairs = _count_factorised(monkeypatch)
    kw = dict(logit_scale=SCALE, bank_text=bank_text, bank_video=bank_video)
    assert evaluate_embeddings(text, video, qv, qb_k=6, **kw)["protocol"]["qbnorm"]["k"] == 6
    pairs.clear()
    with pytest.raises(VtrbenchError, match=r"qb_k 7 is larger than the test gallery \(6 usable videos\)"):
        evaluate_embeddings(text, video, qv, qb_k=7, **kw)
    assert sum(pairs) == 0
    # without qbnorm the value is not used, and not refused
    assert evaluate_embeddings(text, video, qv, qb_k=7, logit_scale=SCALE)["metrics"]


# ------------------------------------------------------------------ result files (schema 2)


def _result_file(tmp_path: Path, res: dict, name: str = "r.json") -> Path:
    result = {
        "schema": SCHEMA,
        "run_id": "toy.meanp.infonce.0000.s0",
        "config_hash": "0" * 16,
        "seed": 0,
        "protocol": res["protocol"],
        **{k: res[k] for k in ("metrics", "per_query_ranks", "per_query", "topk", "topk_scores")},
    }
    path = tmp_path / name
    write_result(path, result)
    return path


def _damaged(tmp_path: Path, data: dict, change, name: str) -> Path:
    d = json.loads(json.dumps(data))
    change(d)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(d))
    return path


def test_result_files_carry_per_query_and_topk_and_are_checked(tmp_path: Path) -> None:
    text, video, qv, banks = tie_heavy()
    res = evaluate_embeddings(text, video, qv, logit_scale=0.5, **banks)
    path = _result_file(tmp_path, res)
    data = read_result(path)
    assert SCHEMA == 2 and data["per_query"] == res["per_query"] and data["topk"] == res["topk"]
    assert data["topk_scores"] == res["topk_scores"]
    without = {k: v for k, v in data.items() if k not in ("_path", "topk_scores")}
    assert "topk_scores" not in read_result(_damaged(tmp_path, without, lambda d: None, "no-scores"))
    n_q, n_v = len(qv), len(video)

    def setter(*keys, value):
        def change(d):
            for k in keys[:-1]:
                d = d[k]
            d[keys[-1]] = value

        return change

    cases = {
        "no-per-query": (lambda d: d.pop("per_query"), "per_query must be an object"),
        "no-topk": (lambda d: d.pop("topk"), "topk must be an object"),
        "post-missing": (lambda d: d["per_query"].pop("dsl"), "one entry per post-processing"),
        "short": (setter("per_query", "raw", "t2v", "higher", value=[0] * (n_q - 1)), "one length"),
        "short-all": (
            setter("per_query", "raw", "v2t", value={"higher": [0], "tied": [0], "tied_correct": [1]}),
            f"protocol says {n_v}",
        ),
        "negative": (setter("per_query", "dsl", "t2v", "tied", value=[-1] * n_q), ">= 0"),
        "no-correct": (setter("per_query", "raw", "t2v", "tied_correct", value=[0] * n_q), "tied_correct"),
        "past-gallery": (setter("per_query", "raw", "t2v", "higher", value=[n_v] * n_q), f"gallery of {n_v}"),
        "float-count": (setter("per_query", "raw", "t2v", "higher", value=[0.0] * n_q), "integers"),
        "metric-disagrees": (setter("metrics", "raw", "t2v", "R@1", value=99.0), "per_query counts give"),
        "topk-short": (setter("topk", "raw", "t2v", value=res["topk"]["raw"]["t2v"][:-1]), "lists"),
        "topk-index": (setter("topk", "qbnorm", "v2t", 0, 0, value=n_q), f"in [0, {n_q})"),
        "topk-repeat": (setter("topk", "raw", "t2v", 0, value=[0] * 10), "distinct"),
        "topk-width": (setter("topk", "raw", "t2v", 0, value=list(range(9))), "10 distinct"),
        "scores-short": (
            setter("topk_scores", "raw", "t2v", value=res["topk_scores"]["raw"]["t2v"][:-1]),
            "lists",
        ),
        "scores-width": (setter("topk_scores", "dsl", "v2t", 0, value=[1.0] * 9), "10 finite numbers"),
        "scores-order": (
            setter("topk_scores", "raw", "t2v", 0, value=[float(i) for i in range(10)]),
            "best first",
        ),
        "scores-post": (lambda d: d["topk_scores"].pop("qbnorm"), "one entry per post-processing in topk"),
    }
    data.pop("_path")
    for name, (change, message) in cases.items():
        damaged = _damaged(tmp_path, data, change, name)
        with pytest.raises(VtrbenchError) as err:
            read_result(damaged)
        text_ = str(err.value)
        assert str(damaged) in text_ and message in text_ and "\n" not in text_, (name, text_)


def test_schema_1_files_stay_readable(tmp_path: Path) -> None:
    text, video, qv, _ = tie_heavy()
    res = evaluate_embeddings(text, video, qv, logit_scale=0.5)
    data = json.loads(_result_file(tmp_path, res).read_text())
    for key in ("per_query", "topk"):
        data.pop(key)
    data["schema"] = 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert "per_query" not in read_result(old)
    for schema in (3, 2.0, True):
        data["schema"] = schema
        old.write_text(json.dumps(data))
        with pytest.raises(VtrbenchError, match="reads 1 and 2"):
            read_result(old)


def test_eval_records_the_real_bank_and_refuses_an_impossible_qb_k(
    synth_cache: Path, tmp_path: Path, run_cli
):
    from vtrbench.cache import FeatureCache

    with FeatureCache(synth_cache) as cache:
        test_split = str(cache.attrs["default_test"])
        train_split = str(cache.attrs["default_train"])
        n_test = len(cache.split_rows(test_split)[0])
        bank_videos, bank_texts = (len(r) for r in cache.split_rows(train_split))
    results = tmp_path / "results"
    base = ["eval", "--cache", synth_cache, "--results", results, "--device", "cpu", "--head", "zeroshot"]
    refused = run_cli(*base, "--qb-k", str(n_test + 1))
    assert refused.code != 0 and not results.exists()
    assert f"qb_k {n_test + 1} is larger than test split" in refused.text and "Traceback" not in refused.text
    done = run_cli(*base, "--qb-k", str(n_test))
    assert done.code == 0, done.text
    (path,) = results.rglob("*.json")
    data = read_result(path)
    qb = data["protocol"]["qbnorm"]
    assert qb["k"] == n_test and qb["bank_size_asked"] == 5000
    # the synthetic train split is far smaller than the asked 5000: the bank is all of it
    assert qb["bank_size"] == {"t2v": bank_texts, "v2t": bank_videos} and bank_texts < 5000
    for post, dirs in data["per_query"].items():
        for d, counts in dirs.items():
            assert 100 * recall_from_counts(counts, 1).mean() == data["metrics"][post][d]["R@1"]
            assert expected_ranks(counts_from_json(counts)).tolist() == data["per_query_ranks"][post][d]


# ------------------------------------------------------------------ the before/after benchmark


def test_score_once_benchmark_counts_pairs_against_the_old_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    rev = "a87963e"  # the last commit before score-once
    known = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=root, capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"git history without {rev} (shallow clone?)")
    path = root / "benchmarks" / "eval.py"
    spec = importlib.util.spec_from_file_location("vtrbench_benchmark_eval_once", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "once.json"
    argv = ["--score-once-vs", rev, "--once-size", "60", "--once-pairwise", "wti", "--once-pair-size", "12",
            "--repeats", "1", "--bank", "30", "--device", "cpu", "--json", str(out)]  # fmt: skip
    bench.main(argv)
    assert "pairs/N^2 before" in capsys.readouterr().out
    rows = {(r["scorer"], r["posts"]): r for r in json.loads(out.read_text())["results"]}
    assert {k: (r["pairs_before"], r["pairs_after"]) for k, r in rows.items()} == {
        ("factorised", "raw"): (2.0, 1.0),
        ("factorised", "raw+dsl"): (3.0, 1.0),
        ("factorised", "raw+dsl+qbnorm"): (3.0 + 1.0, 1.0 + 1.0),  # two banks of 30 against 60
        ("wti", "raw+dsl"): (3.0, 1.0),
        ("wti", "raw+dsl+qbnorm"): (13.0, 11.0),  # banks 5x the test, as in the issue
    }
    assert all(r["ranks_equal_exact_ties"] for r in rows.values())
