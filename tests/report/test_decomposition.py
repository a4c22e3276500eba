"""The loss x inference decomposition section of the default report (issue 22 item 3).

Results are made the way a run makes them (every post-processing through vtrbench.eval) on
synthetic embeddings built so that the answer is known: in one world the test gallery has hubs and
both "losses" give the same embeddings (the inference carries the gain), in the other there are no
hubs and one loss gives much cleaner embeddings (the loss carries it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vtrbench.eval import evaluate_embeddings
from vtrbench.report import build_report, render_json, render_markdown
from vtrbench.report.decomposition import TITLE
from vtrbench.results import POSTPROCESSING, TRANSDUCTIVE

N_V, CAPS, DIM = 60, 2, 24


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _world(hubs: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    video = _unit(torch.randn(N_V, DIM, generator=g))
    qv = torch.arange(N_V).repeat_interleave(CAPS)
    if hubs:
        # a few videos near the captions' common direction: each is everyone's near neighbour
        common = _unit(torch.randn(1, DIM, generator=g))
        video[:4] = _unit(common + 0.15 * torch.randn(4, DIM, generator=g))
    return video, qv


def _result(label: str, loss: str, seed: int, video, qv, noise: float, common_pull: float) -> dict:
    g = torch.Generator().manual_seed(1000 * seed + 17 + int(noise * 100))
    text = video[qv] + noise * torch.randn(len(qv), DIM, generator=g)
    if common_pull:
        text = text + common_pull * video[:4].mean(0, keepdim=True)
    text = _unit(text)
    bank = _unit(video[torch.randint(0, N_V, (80,), generator=g)] + noise * torch.randn(80, DIM, generator=g))
    if common_pull:
        bank = _unit(bank + common_pull * video[:4].mean(0, keepdim=True))
    bank_video = _unit(
        text[torch.randint(0, len(qv), (80,), generator=g)] + 0.5 * torch.randn(80, DIM, generator=g)
    )
    ev = evaluate_embeddings(
        text, video, qv, logit_scale=100.0, bank_text=bank, bank_video=bank_video,
        postprocessing=POSTPROCESSING, post_options={"csls_k": 5},
    )  # fmt: skip
    return {
        "schema": 2,
        "run_id": f"toy.{label}.{loss}.s{seed}",
        "dataset": "toy",
        "kind": "train",
        "head": label,
        "loss": loss,
        "label": label,
        "config_hash": f"hash-{label}-{loss}",
        "seed": seed,
        "cache": {"fingerprint": "fp0", "model": "ViT-B-32", "pretrained": "openai", "random_weights": False},
        "protocol": {
            "test_split": "toy",
            "n_queries": len(qv),
            "n_gallery": N_V,
            "v2t_multi_caption": "clip4clip",
            "ties": "expected rank",
            "mdr": "standard",
        },
        "metrics": ev["metrics"],
        "transductive": {p: TRANSDUCTIVE[p] for p in ev["metrics"]},
        "per_query_ranks": ev["per_query_ranks"],
        "per_query": ev["per_query"],
    }


def _results(world: str) -> list[dict]:
    video, qv = _world(hubs=world == "hubs")
    if world == "hubs":  # same embeddings for both losses: any gain is the inference's
        noise = {"infonce": 0.4, "dsl": 0.4}
        pull = 2.0
    else:  # no hubs, one loss's embeddings much cleaner
        noise = {"infonce": 1.1, "dsl": 0.45}
        pull = 0.0
    return [
        _result(
            "meanP",
            loss,
            seed + (10 if loss == "dsl" and world == "hubs" else 0),
            video,
            qv,
            noise[loss],
            pull,
        )
        for loss in ("infonce", "dsl")
        for seed in (0, 1, 2)
    ]


@pytest.fixture(scope="module")
def hub_results() -> list[dict]:
    return _results("hubs")


@pytest.fixture(scope="module")
def clean_results() -> list[dict]:
    return _results("clean")


def test_inference_carries_the_gain_when_the_losses_give_the_same_embeddings(hub_results) -> None:
    report = build_report(hub_results, n_boot=300)
    dec = report.decomposition
    assert dec is not None and dec.metric == "t2v/R@1"
    (hd,) = dec.heads
    assert hd.reference == "infonce" and hd.losses == ["infonce", "dsl"] and hd.posts == list(POSTPROCESSING)
    # cells are the stored metrics averaged over seeds; effects are differences of cells
    for loss in hd.losses:
        for post in hd.posts:
            stored = np.mean([r["metrics"][post]["t2v"]["R@1"] for r in hub_results if r["loss"] == loss])
            assert hd.means.at[loss, post] == pytest.approx(stored)
    for (loss, post), (d, lo, hi) in hd.loss_effect.items():
        assert d == pytest.approx(hd.means.at[loss, post] - hd.means.at["infonce", post]) and lo <= d <= hi
    for (loss, post), (d, lo, hi) in hd.inference_effect.items():
        assert d == pytest.approx(hd.means.at[loss, post] - hd.means.at[loss, "raw"]) and lo <= d <= hi
    # the world's answer: DSL inference lifts the reference loss clearly; the loss does not at raw
    _, lo, _ = hd.inference_effect[("infonce", "dsl")]
    assert lo > 0
    _, lo, hi = hd.loss_effect[("dsl", "raw")]
    assert lo <= 0 <= hi
    assert "the inference post-processing carries the gain" in hd.sentence
    md = render_markdown(report)
    assert f"## {TITLE} (t2v/R@1)" in md and "### meanP: inference effect at fixed loss (vs raw)" in md
    assert "dsl (T)" in md and "loss effect: DSL − InfoNCE" in md
    assert hd.sentence.split(":")[0] in md
    # the default report shows raw/dsl/qbnorm blocks only; the section reads every post-processing
    assert [b.post for b in report.blocks] == ["raw", "dsl", "qbnorm"]
    assert "sinkhorn (T)" in md
    data = json.loads(render_json(report))["decomposition"]
    assert data["heads"][0]["sentence"] == hd.sentence and len(data["heads"][0]["inference_effect"]) == 16


def test_the_loss_carries_the_gain_when_its_embeddings_are_cleaner(clean_results) -> None:
    dec = build_report(clean_results, n_boot=300).decomposition
    (hd,) = dec.heads
    _, lo, _ = hd.loss_effect[("dsl", "raw")]
    assert lo > 0
    assert (
        "the training loss carries the gain" in hd.sentence
        or "both factors help, the training loss more" in hd.sentence
    )


def test_no_section_without_two_losses_or_with_it_switched_off(hub_results) -> None:
    one_loss = [r for r in hub_results if r["loss"] == "infonce"]
    assert build_report(one_loss, n_boot=50).decomposition is None
    assert TITLE not in render_markdown(build_report(one_loss, n_boot=50))
    assert build_report(hub_results, n_boot=50, decomposition=False).decomposition is None
    # results of the raw post-processing only: one inference, nothing to decompose
    raw_only = []
    for r in hub_results:
        r = dict(r)
        for key in ("metrics", "per_query_ranks", "per_query", "transductive"):
            r[key] = {"raw": r[key]["raw"]}
        raw_only.append(r)
    assert build_report(raw_only, n_boot=50, posts=["raw"]).decomposition is None


def test_queries_bootstrap_and_mnr_metric(hub_results) -> None:
    dec = build_report(
        hub_results, n_boot=200, bootstrap="queries", layout="pivot", metric="t2v/MnR"
    ).decomposition
    (hd,) = dec.heads
    assert dec.metric == "t2v/MnR" and dec.bootstrap == "queries"
    d, lo, hi = hd.inference_effect[("infonce", "dsl")]
    assert hi < 0  # a lower mean rank is the gain
    assert "the inference post-processing carries the gain" in hd.sentence


def test_report_post_shows_the_new_blocks_labelled(hub_results) -> None:
    report = build_report(hub_results, n_boot=50, posts=["is-bank", "sinkhorn"])
    assert [b.post for b in report.blocks] == ["is-bank", "sinkhorn"]
    titles = {b.post: b.title for b in report.blocks}
    assert "transductive" in titles["sinkhorn"].lower() and "transductive" not in titles["is-bank"].lower()
    md = render_markdown(report)
    assert "transductive blocks (sinkhorn)" in md and "is-bank: inductive, with the qbnorm banks" in md


def test_terminal_shows_the_section_as_fitted_tables(hub_results) -> None:
    import io

    from rich.console import Console

    from vtrbench.report.terminal import print_report

    report = build_report(hub_results, n_boot=50)
    console = Console(width=100, record=True, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    assert f"{TITLE} (t2v/R@1)" in text and "meanP: inference effect at fixed loss (vs raw)" in text
    assert "carries the gain" in text and max(len(line) for line in text.splitlines()) <= 100
