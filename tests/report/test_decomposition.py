"""The loss x inference decomposition section of the default report (issue 22 item 3, issue 27).

Results are made the way a run makes them (every post-processing through vtrbench.eval) on
synthetic embeddings built so that the answer is known (benchmarks/decomposition_sim.py,
``synthetic_results``): in one world the test gallery has hubs and both "losses" give the same
embeddings (the inference carries the gain), in the other there are no hubs and one loss gives much
cleaner embeddings (the loss carries it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.decomposition_sim import synthetic_results
from vtrbench.errors import VtrbenchError
from vtrbench.report import build_report, render_json, render_markdown
from vtrbench.report.decomposition import CONTRASTS, TITLE
from vtrbench.results import POSTPROCESSING


@pytest.fixture(scope="module")
def hub_results() -> list[dict]:
    return synthetic_results("hubs")


@pytest.fixture(scope="module")
def clean_results() -> list[dict]:
    return synthetic_results("clean")


def _cell_mean(results: list[dict], loss: str, post: str) -> float:
    return float(np.mean([r["metrics"][post]["t2v"]["R@1"] for r in results if r["loss"] == loss]))


def test_inference_carries_the_gain_when_the_losses_give_the_same_embeddings(hub_results) -> None:
    report = build_report(hub_results, n_boot=1000)
    dec = report.decomposition
    assert dec is not None and dec.metric == "t2v/R@1" and dec.family == 6 and dec.alpha == 0.05
    (hd,) = dec.heads
    assert hd.reference == "infonce" and hd.losses == ["infonce", "dsl"] and hd.posts == list(POSTPROCESSING)
    # the target is fixed before looking: DSL-trained, DSL-inferred
    assert hd.target == ("dsl", "dsl") and hd.target_how == "default" and hd.seeds == {"infonce": 3, "dsl": 3}
    # cells are the stored metrics averaged over seeds
    for loss in hd.losses:
        for post in hd.posts:
            assert hd.means.at[loss, post] == pytest.approx(_cell_mean(hub_results, loss, post))
    # the six effects are contrasts of the four cells of the 2 x 2
    rr, tr = _cell_mean(hub_results, "infonce", "raw"), _cell_mean(hub_results, "dsl", "raw")
    rp, tp = _cell_mean(hub_results, "infonce", "dsl"), _cell_mean(hub_results, "dsl", "dsl")
    want = {
        "loss@raw": tr - rr, "loss@post": tp - rp, "inference@ref": rp - rr, "inference@target": tp - tr,
        "interaction": tp - tr - rp + rr, "loss-vs-inference": tr - rp,
    }  # fmt: skip
    assert set(hd.effects) == set(CONTRASTS) == set(want)
    for key, t in hd.effects.items():
        assert t.estimate == pytest.approx(want[key]), key
        assert t.lo <= t.estimate <= t.hi, key
        # an interval excludes 0 exactly when Holm calls the effect significant
        assert (t.lo > 0 or t.hi < 0) == t.significant, key
    # the world's answer: DSL inference lifts the reference loss clearly; the loss does not at raw
    assert hd.effects["inference@ref"].significant and hd.effects["inference@ref"].estimate > 0
    assert not hd.effects["loss@raw"].significant
    assert hd.verdict == "inference" and "the inference post-processing carries the gain" in hd.sentence
    assert "target fixed before looking (the DSL-trained, DSL-inferred cell)" in hd.sentence
    md = render_markdown(report)
    assert f"## {TITLE} (t2v/R@1)" in md and "### meanP: 2 × 2 from (InfoNCE, raw) to (DSL, dsl)" in md
    assert "dsl (T)" in md and "interaction" in md and "Holm" in md and "over the 6 effects" in md
    assert hd.sentence.split(":")[0] in md
    # the default report shows raw/dsl/qbnorm blocks only; the section's means read every post
    assert [b.post for b in report.blocks] == ["raw", "dsl", "qbnorm"]
    assert "sinkhorn (T)" in md
    data = json.loads(render_json(report))["decomposition"]
    head = data["heads"][0]
    assert head["sentence"] == hd.sentence and head["verdict"] == "inference" and data["family"] == 6
    assert head["target"] == {"loss": "dsl", "post": "dsl", "chosen": "default"}
    assert [e["effect"] for e in head["effects"]] == list(CONTRASTS)
    assert {e["effect"]: e["significant"] for e in head["effects"]}["inference@ref"] is True


def test_the_loss_carries_the_gain_when_its_embeddings_are_cleaner(clean_results) -> None:
    dec = build_report(clean_results, n_boot=1000).decomposition
    (hd,) = dec.heads
    assert hd.effects["loss@raw"].significant and hd.effects["loss@raw"].estimate > 0
    assert hd.verdict == "loss" and "the training loss carries the gain" in hd.sentence


def test_holm_runs_over_every_head_of_the_section(hub_results, clean_results) -> None:
    # two heads: one family of 12; each interval at its Holm step's level, excluding 0 iff significant
    other = [
        dict(r, label="seqTransf", head="seqTransf", config_hash=r["config_hash"] + "-b")
        for r in clean_results
    ]
    dec = build_report(hub_results + other, n_boot=1000).decomposition
    assert dec.family == 12 and [hd.head for hd in dec.heads] == ["meanP", "seqTransf"]
    tested = [t for hd in dec.heads for t in hd.effects.values()]
    p = np.array([t.p for t in tested])
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        t = tested[i]
        assert t.level <= 0.05 / (12 - rank) + 1e-15  # never looser than its Holm step
        assert (t.lo > 0 or t.hi < 0) == t.significant
    assert {hd.verdict for hd in dec.heads} == {"inference", "loss"}


def test_a_named_target_and_one_chosen_from_the_data_say_so(hub_results) -> None:
    named = build_report(hub_results, n_boot=200, decomposition_target="dsl:qbnorm").decomposition
    (hd,) = named.heads
    assert hd.target == ("dsl", "qbnorm") and hd.target_how == "named"
    assert "target named by the user before looking" in hd.sentence
    # no DSL loss: the default target is missing, the best mean is taken, after looking, and labelled
    renamed = [dict(r, loss="triplet" if r["loss"] == "dsl" else r["loss"]) for r in hub_results]
    hd = build_report(renamed, n_boot=200).decomposition.heads[0]
    assert hd.target_how == "data" and hd.target[0] == "triplet" and hd.target[1] != "raw"
    means = hd.means.loc[["triplet"], [p for p in hd.posts if p != "raw"]]
    assert hd.means.at[hd.target] == means.to_numpy().max()
    assert "chosen from the data" in hd.sentence and "after looking" in hd.sentence
    # a named cell no head has is refused in one line; so are malformed targets
    for bad, message in [
        ("triplet:dsl", "no head has that cell"),
        ("dsl", "LOSS:POST"),
        ("dsl:dls", "unknown post-processing 'dls'"),
        ("dsl:raw", "must change the inference"),
        ((), "LOSS:POST"),
    ]:
        with pytest.raises(VtrbenchError, match=message) as e:
            build_report(hub_results, n_boot=50, decomposition_target=bad)
        assert "\n" not in str(e.value)


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
        hub_results, n_boot=1000, bootstrap="queries", layout="pivot", metric="t2v/MnR"
    ).decomposition
    (hd,) = dec.heads
    assert dec.metric == "t2v/MnR" and dec.bootstrap == "queries"
    t = hd.effects["inference@ref"]
    assert t.significant and t.hi < 0  # a lower mean rank is the gain
    assert hd.verdict == "inference"


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
    assert f"{TITLE} (t2v/R@1)" in text and "meanP: training loss × inference (means)" in text
    assert "carries the gain" in text and "2 × 2 from" in text and "Holm" in text
    assert max(len(line) for line in text.splitlines()) <= 100
