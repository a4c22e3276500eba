"""``topk`` must agree with ``per_query`` (issue 28): report and browse refuse a result file whose top-k
lists contradict its tie counts, naming the file and the key, and accept what the evaluation writes,
also with exact ties and near-ties under every post-processing.

The rule (vtrbench/results.py, _topk_contradiction): a query ranked first with no tie (``higher =
tied = 0``) has a correct item at ``topk[0]``; with that ground truth no correct item may sit before
position ``higher``, a t2v query's video must sit at a position <= ``higher + tied``, and the ground
truths read from different post-processings and directions must agree.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings
from vtrbench.results import read_result

POSTS = ["raw", "dsl", "qbnorm", "is-bank", "is-test", "csls-bank", "csls-test", "dsl-bank", "sinkhorn"]


@pytest.fixture(scope="module")
def real_file(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("topk")
    assert main(["eval", "--cache", str(synth_cache), "--head", "zeroshot", "--results", str(root),
                 "--device", "cpu"]) == 0  # fmt: skip
    (path,) = root.rglob("*.json")
    return json.loads(path.read_text())


def _untied_firsts(data: dict, post: str, d: str) -> list[int]:
    c = data["per_query"][post][d]
    return [q for q, (h, t) in enumerate(zip(c["higher"], c["tied"], strict=True)) if h == 0 and t == 0]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    return path


def _near_tie_evaluation(seed: int) -> tuple[dict, int, int]:
    """Two twin videos (exact ties), captions on a coarse grid (more exact ties) plus tiny noise on
    every other caption (near-ties)."""
    g = torch.Generator().manual_seed(seed)
    n_v, dim = 12, 8
    base = torch.randn(n_v - 2, dim, generator=g)
    video = torch.nn.functional.normalize(torch.cat([base, base[:2]]), dim=1)
    qv = torch.arange(3 * n_v) % n_v
    text = torch.round(4 * (video[qv] + 0.8 * torch.randn(len(qv), dim, generator=g))) / 4
    text = text + 1e-7 * torch.randn(text.shape, generator=g) * (torch.arange(len(qv)) % 2)[:, None]
    bank_text = torch.randn(20, dim, generator=g)
    bank_video = torch.randn(20, dim, generator=g)
    out = evaluate_embeddings(text, video, qv, logit_scale=100.0, postprocessing=POSTS,
                              bank_text=bank_text, bank_video=bank_video)  # fmt: skip
    return out, len(qv), n_v


def _near_tie_file(real_file: dict, seed: int) -> dict:
    """The real file with the near-tie evaluation's metrics, counts and lists in place of its own."""
    out, n_q, n_v = _near_tie_evaluation(seed)
    data = copy.deepcopy(real_file)
    data["protocol"].update(n_queries=n_q, n_gallery=n_v)
    for key in ("metrics", "per_query", "per_query_ranks", "topk", "topk_scores"):
        data[key] = out[key]
    data["transductive"] = {p: real_file["transductive"].get(p, False) for p in out["metrics"]}
    return data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_what_the_evaluation_writes_passes_with_ties(real_file: dict, tmp_path: Path, seed: int) -> None:
    data = _near_tie_file(real_file, seed)
    read_result(_write(tmp_path, data))
    # the check had ground truth to work with: queries ranked first with no tie in several posts
    assert sum(len(_untied_firsts(data, p, "t2v")) for p in data["per_query"]) > 5


def _refused(tmp_path: Path, data: dict, *mention: str) -> str:
    with pytest.raises(VtrbenchError) as e:
        read_result(_write(tmp_path, data))
    msg = str(e.value)
    assert "r.json" in msg and "\n" not in msg and all(m in msg for m in mention), msg
    return msg


def test_contradicting_topk_is_refused_naming_file_and_key(real_file: dict, tmp_path: Path) -> None:
    read_result(_write(tmp_path, real_file))  # the file as written passes
    post, d = next(
        (p, d) for p in real_file["topk"] for d in ("t2v", "v2t") if _untied_firsts(real_file, p, d)
    )
    q = _untied_firsts(real_file, post, d)[0]
    # 1. a query ranked first with no tie whose top-1 is another item (swap the first two)
    bad = copy.deepcopy(real_file)
    row = bad["topk"][post][d][q]
    row[0], row[1] = row[1], row[0]
    _refused(tmp_path, bad, f"topk.{post}.{d}")

    data = _near_tie_file(real_file, 0)
    pq = data["per_query"]
    # 2. a query's video (known from a post ranking it first, untied) placed first under a post whose
    # counts put wrong videos above it
    p, q2, o = next(
        (p, q2, o)
        for p in data["topk"]
        for q2 in _untied_firsts(data, p, "t2v")
        for o in data["topk"]
        if pq[o]["t2v"]["higher"][q2] > 0
    )
    video = data["topk"][p]["t2v"][q2][0]
    bad = copy.deepcopy(data)
    row = bad["topk"][o]["t2v"][q2]
    row.remove(video) if video in row else row.pop()
    row.insert(0, video)
    _refused(tmp_path, bad, f"topk.{o}.t2v[{q2}]", "wrong items above")
    # 3. a t2v list that lacks the query's video where the counts put it within the list
    p, q3 = next((p, q3) for p in data["topk"] for q3 in _untied_firsts(data, p, "t2v"))
    video = data["topk"][p]["t2v"][q3][0]
    spare = [v for v in range(data["protocol"]["n_gallery"]) if v not in data["topk"][p]["t2v"][q3]]
    bad = copy.deepcopy(data)
    row = bad["topk"][p]["t2v"][q3]
    row[row.index(video)] = spare[0]
    _refused(tmp_path, bad, f"topk.{p}.t2v[{q3}]")
