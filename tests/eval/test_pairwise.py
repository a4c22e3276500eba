"""Pairwise heads: block evaluation == a dense double loop, memory bounded by the block, and the
checks tests/families/test_heads.py runs on embeddings, run here on scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_evaluate import BETA, SCALE, TAU, dense_dsl, dense_qbnorm

from vtrbench.cli import main
from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_pairwise
from vtrbench.factory import create_head, create_loss
from vtrbench.heads.base import is_pairwise, list_heads
from vtrbench.losses.base import list_losses
from vtrbench.metrics import t2v_metrics, v2t_metrics
from vtrbench.results import POSTPROCESSING, read_result
from vtrbench.runs.data import SplitData
from vtrbench.runs.scoring import evaluate_head, states

D, T, L = 16, 5, 6
PAIRWISE = [n for n in list_heads() if is_pairwise(n)]
P = 4  # patch tokens per frame (ucofia reads them; the other heads ignore them)
SMALL = {
    "tighttransf": {"layers": 1},
    "xpool": {"heads": 2},
    "tmass": {"heads": 2, "samples": 3},
    "wti": {},
    # ISA sizes above the test's widths (the padding test adds positions); few top-k samples
    "ucofia": {
        "layers": 1,
        "heads": 2,
        "topk": 2,
        "topk_samples": 8,
        "isa_words": L + 3,
        "isa_frames": T + 2,
    },
}


def test_the_pairwise_heads_are_registered():
    assert PAIRWISE == ["tighttransf", "tmass", "ucofia", "wti", "xpool"]
    assert not any(is_pairwise(n) for n in ("meanp", "seqtransf", "seqlstm", "camoe", "zeroshot"))


def build(name: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    head = create_head(name, embed_dim=D, **{**SMALL.get(name, {}), **options})
    with torch.no_grad():  # move every parameter off its (often identity or zero) initialisation
        for p in head.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return head.eval()


def random_items(n: int, seed: int, kind: str) -> dict[str, torch.Tensor]:
    """n captions or n videos with ragged prefix masks."""
    g = torch.Generator().manual_seed(seed)
    if kind == "video":
        counts = torch.randint(1, T + 1, (n,), generator=g)
        return {
            "frames": torch.randn(n, T, D, generator=g),
            "frame_mask": torch.arange(T)[None] < counts[:, None],
            "patches": torch.randn(n, T, P, D, generator=g),
        }
    counts = torch.randint(2, L + 1, (n,), generator=g)
    return {
        "tokens": torch.randn(n, L, D, generator=g),
        "token_mask": torch.arange(L)[None] < counts[:, None],
        "eot": (counts - 1).to(torch.int16),
    }


def split(n_videos: int, seed: int) -> SplitData:
    g = torch.Generator().manual_seed(seed)
    caps = torch.randint(1, 4, (n_videos,), generator=g)
    qv = torch.repeat_interleave(torch.arange(n_videos), caps)
    qv = qv[torch.randperm(len(qv), generator=g)]
    video = random_items(n_videos, seed + 1, "video")
    # captions carry their video's mean frame in every token, so scores are far from constant
    text = random_items(len(qv), seed + 2, "text")
    text["tokens"] = text["tokens"] + 2 * video["frames"][qv].mean(1, keepdim=True)
    text["eot"] = text["eot"].long()  # as load_split gives it
    return SplitData("test", video, text, qv, np.arange(n_videos), np.arange(len(qv)))


def one(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v[i : i + 1] for k, v in batch.items()}


def double_loop(head, text: dict, video: dict) -> torch.Tensor:
    """The dense caption x video matrix, one pair at a time from the raw features."""
    n_t, n_v = text["tokens"].shape[0], video["frames"].shape[0]
    out = torch.empty(n_t, n_v)
    with torch.no_grad():
        for i in range(n_t):
            for j in range(n_v):
                out[i, j] = head.score(one(text, i), one(video, j))[0, 0]
    return out


# ------------------------------------------------------------------ blocks == dense


@pytest.mark.parametrize("name", PAIRWISE)
def test_block_evaluation_equals_dense_double_loop(name):
    head = build(name, seed=1)
    test = split(7, seed=2)
    bank = split(4, seed=3)
    s = double_loop(head, test.text, test.video)
    s_bank_t2v = double_loop(head, bank.text, test.video)  # bank captions x test videos
    s_bank_v2t = double_loop(head, test.text, bank.video).T  # bank videos x test captions
    qv = test.text_video
    dense = {
        "raw": (s, s.T),
        "dsl": (dense_dsl(s), dense_dsl(s.T)),
        "qbnorm": (dense_qbnorm(s, s_bank_t2v)[0], dense_qbnorm(s.T, s_bank_v2t)[0]),
    }
    text_state, video_state = states(head, test)
    bank_text, bank_video = states(head, bank)
    n = max(test.n_texts, test.n_videos)
    want: dict[str, dict] = {}
    for protocol in ("clip4clip", "any-caption"):
        want[protocol] = {
            post: (t2v_metrics(t2v, qv)[1].tolist(), v2t_metrics(v2t.T, qv, protocol)[1].tolist())
            for post, (t2v, v2t) in dense.items()
        }
    runs = [
        ((1, 1), 1, "clip4clip"),
        ((2, 3), 4, "any-caption"),
        ((4, 1), 5, "clip4clip"),
        ((n + 5, n + 5), 1024, "any-caption"),
    ]
    for block, chunk, protocol in runs:
        got = evaluate_pairwise(
            head.score_states, text_state, video_state, qv, logit_scale=SCALE, block=block,
            bank_text_state=bank_text, bank_video_state=bank_video, dsl_tau=TAU, qb_beta=BETA,
            v2t_protocol=protocol, chunk_size=chunk,
        )  # fmt: skip
        for post, (r_t, r_v) in want[protocol].items():
            assert got["per_query_ranks"][post]["t2v"] == r_t, (post, block, protocol)
            assert got["per_query_ranks"][post]["v2t"] == r_v, (post, block, protocol)
    assert got["protocol"]["qbnorm"]["bank_size"] == {"t2v": bank.n_texts, "v2t": bank.n_videos}
    # the scores are not degenerate: the ranking is informative and post-processing changes it
    ranks = want["clip4clip"]
    assert ranks["raw"][0] != ranks["dsl"][0] and want["clip4clip"]["raw"][1] != want["any-caption"]["raw"][1]
    assert np.mean(ranks["raw"][0]) < 0.5 * (test.n_videos + 1)


@pytest.mark.parametrize("name", PAIRWISE)
def test_evaluate_head_scores_no_block_larger_than_asked(name, monkeypatch):
    head = build(name)
    test = split(11, seed=4)
    shapes = []
    original = head.score_states

    def spy(text, video):
        out = original(text, video)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(head, "score_states", spy)
    for block in [(3, 2), (1, 7)]:
        shapes.clear()
        res = evaluate_head(head, test, postprocessing=("raw", "dsl"), block=block)
        assert shapes and max(s[0] for s in shapes) <= block[0] and max(s[1] for s in shapes) <= block[1]
        # every pair is scored once per evaluation: DSL, t2v and v2t all read the one score matrix
        assert sum(a * b for a, b in shapes) == test.n_texts * test.n_videos
        assert len(res["per_query_ranks"]["raw"]["t2v"]) == test.n_texts


def test_pairwise_state_and_block_errors_are_clear():
    head = build("wti")
    test = split(4, seed=5)
    t, v = states(head, test)
    kw = dict(logit_scale=1.0)
    with pytest.raises(VtrbenchError, match="block must be two integers"):
        evaluate_pairwise(head.score_states, t, v, test.text_video, block=(0, 4), **kw)
    with pytest.raises(VtrbenchError, match=r"text_state\['unit'\] contains NaN"):
        evaluate_pairwise(
            head.score_states, dict(t, unit=t["unit"] * np.nan), v, test.text_video, block=(2, 2), **kw
        )
    with pytest.raises(VtrbenchError, match="share a non-zero first dimension"):
        evaluate_pairwise(
            head.score_states, dict(t, weight=t["weight"][:1]), v, test.text_video, block=(2, 2), **kw
        )
    with pytest.raises(VtrbenchError, match="qbnorm needs both"):
        evaluate_pairwise(head.score_states, t, v, test.text_video, block=(2, 2), bank_text_state=t, **kw)
    with pytest.raises(VtrbenchError, match="is pairwise"):
        head.encode_text(test.text)


# ------------------------------------------------------------------ the head checks, on scores


def make_batch(seed: int = 0, b: int = 6):
    return random_items(b, seed, "text"), random_items(b, seed + 100, "video")


@pytest.mark.parametrize("loss_name", list_losses())
@pytest.mark.parametrize("name", PAIRWISE)
def test_training_logits_are_the_scaled_block_and_losses_are_finite(name, loss_name):
    head = build(name)
    text, video = make_batch()
    logits, aux = head.training_logits(text, video)
    # tmass: one stochastic draw per caption plus its support-text logits, by design (checked
    # against the official formulas in tests/families/test_tmass_parity.py)
    n_aux = 1 if name == "tmass" else 0
    assert logits.shape == (6, 6) and len(aux) == n_aux and torch.isfinite(logits).all()
    for matrix in [logits, *aux]:
        loss = create_loss(loss_name)(matrix)
        assert loss.dim() == 0 and torch.isfinite(loss)
    if name == "tmass":
        return
    with torch.no_grad():
        torch.testing.assert_close(
            logits, head.logit_scale() * double_loop(head, text, video), rtol=1e-5, atol=1e-4
        )


@pytest.mark.parametrize("name", PAIRWISE)
def test_gradients_reach_every_trainable_parameter(name):
    head = build(name).train()
    text, video = make_batch(seed=1)
    create_loss("infonce")(head.training_logits(text, video)[0]).backward()
    for pname, p in head.named_parameters():
        if not p.requires_grad:
            assert name == "tighttransf" and pname == "log_logit_scale"  # fixed at 1, as CLIP4Clip
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} gets no gradient"


@pytest.mark.parametrize("name", PAIRWISE)
def test_padding_content_never_reaches_the_scores(name):
    head = build(name, text="tokens") if name == "tighttransf" else build(name)
    text, video = make_batch(seed=2)
    g = torch.Generator().manual_seed(7)

    def garbage(*shape):
        x = torch.randn(*shape, generator=g) * 1e4
        x.view(-1)[0] = float("nan")
        return x

    padded_video = {
        "frames": torch.cat(
            [
                torch.where(video["frame_mask"][..., None], video["frames"], garbage(6, T, D)),
                garbage(6, 2, D),
            ],
            1,
        ),
        "frame_mask": torch.cat([video["frame_mask"], torch.zeros(6, 2, dtype=torch.bool)], 1),
        "patches": torch.cat(
            [
                torch.where(video["frame_mask"][..., None, None], video["patches"], garbage(6, T, P, D)),
                garbage(6, 2, P, D),
            ],
            1,
        ),
    }
    padded_text = {
        "tokens": torch.cat(
            [torch.where(text["token_mask"][..., None], text["tokens"], garbage(6, L, D)), garbage(6, 3, D)],
            1,
        ),
        "token_mask": torch.cat([text["token_mask"], torch.zeros(6, 3, dtype=torch.bool)], 1),
        "eot": text["eot"],
    }
    with torch.no_grad():
        torch.testing.assert_close(
            head.score(padded_text, padded_video), head.score(text, video), rtol=0, atol=1e-5
        )


@pytest.mark.parametrize(
    ("name", "order_free"), [("xpool", True), ("wti", True), ("tighttransf", False), ("tmass", False)]
)
def test_frame_order(name, order_free):
    head = build(name)
    text, video = make_batch(seed=3)
    video["frame_mask"][:] = True
    shuffled = dict(video, frames=video["frames"][:, torch.tensor([4, 2, 0, 3, 1])])
    with torch.no_grad():
        a, b = head.score(text, video), head.score(text, shuffled)
    if order_free:
        torch.testing.assert_close(a, b)
    else:
        assert (a - b).abs().max() > 1e-4


def test_seqlstm_sees_frame_order_and_uses_only_valid_frames_in_order():
    head = build("seqlstm")
    _, video = make_batch(seed=4)
    video["frame_mask"][:] = True
    reversed_ = dict(video, frames=video["frames"].flip(1))
    with torch.no_grad():
        assert (head.encode_video(video) - head.encode_video(reversed_)).abs().max() > 1e-3
        # a mask with holes: the valid frames, in order, as if they were a prefix
        holes = dict(video, frame_mask=torch.tensor([[True, False, True, False, True]] * 6))
        prefix = {"frames": video["frames"][:, [0, 2, 4]], "frame_mask": torch.ones(6, 3, dtype=torch.bool)}
        torch.testing.assert_close(head.encode_video(holes), head.encode_video(prefix))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("xpool", {"head": 2}, "did you mean 'heads'"),
        ("xpool", {"heads": 3}, "heads=3 does not divide"),
        ("wti", {"mlp_layers": 4}, "mlp_layers must be 1, 2 or 3"),
        ("wti", {"adaptor": False}, "did you mean 'adapter'"),
        ("tighttransf", {"text": "token"}, "did you mean 'tokens'"),
        ("tighttransf", {"layers": 0}, "layers"),
        ("seqlstm", {"layers": 2}, "seqlstm option"),
        ("tmass", {"samples": 0}, "samples"),
        ("tmass", {"prior": "gauss"}, "prior"),
        ("tmass", {"prior_std": 0.5}, "only with prior=normal"),
    ],
)
def test_option_errors(name, options, message):
    with pytest.raises(VtrbenchError, match=message):
        create_head(name, embed_dim=D, **options)


@pytest.mark.parametrize(
    ("name", "options", "label"),
    [
        ("xpool", {}, "xpool"),
        ("xpool", {"heads": 4, "adapter": False}, "xpool[heads=4,no-adapter]"),
        ("wti", {"mlp_layers": 1}, "wti[mlp=1]"),
        ("tighttransf", {}, "tighttransf"),
        (
            "tighttransf",
            {"text": "tokens", "layers": 2, "types": False},
            "tighttransf[tokens,layers=2,no-types]",
        ),
        ("seqlstm", {"adapter": False}, "seqlstm[no-adapter]"),
        ("tmass", {}, "tmass"),
        ("tmass", {"samples": 20, "aux_weight": 0.8, "prior": "uniform01", "frames": 12}, "tmass"),
        (
            "tmass",
            {"samples": 5, "aux_weight": 0, "prior": "normal", "prior_std": 0.003, "adapter": False},
            "tmass[samples=5,aux=0,prior=normal,prior_std=0.003,no-adapter]",
        ),
    ],
)
def test_labels_carry_the_options_and_describe_is_plain_data(name, options, label):
    head = create_head(name, embed_dim=D, **options)
    assert head.label() == label
    assert json.loads(json.dumps(head.describe())) == head.describe()


# ------------------------------------------------------------------ through the CLI


def test_train_eval_ablate_report_through_the_cli(synth_cache: Path, tmp_path: Path):
    fast = ["--device", "cpu", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--quiet"]
    ckpt = tmp_path / "xpool.pt"
    argv = ["train", "--cache", str(synth_cache), "--results", str(tmp_path / "tr"), "--head", "xpool"]
    assert main([*argv, *fast, "--save-checkpoint", str(ckpt)]) == 0
    trained = read_result(next((tmp_path / "tr").rglob("*.json")))
    # every post-processing but emcl, which transforms embeddings a pairwise head does not have
    assert trained["label"] == "xpool" and set(trained["metrics"]) == set(POSTPROCESSING) - {"emcl"}
    argv = ["eval", "--cache", str(synth_cache), "--checkpoint", str(ckpt), "--results", str(tmp_path / "ev")]
    assert main([*argv, "--device", "cpu"]) == 0
    evaluated = read_result(next((tmp_path / "ev").rglob("*.json")))
    assert evaluated["metrics"] == trained["metrics"]
    grid = ["ablate", "--cache", str(synth_cache), "--results", str(tmp_path / "ab")]
    assert main([*grid, "--heads", "seqlstm,tighttransf,wti", "--losses", "dsl", "--seeds", "0", *fast]) == 0
    labels = sorted(read_result(p)["label"] for p in (tmp_path / "ab").rglob("*.s0.json"))
    assert labels == ["seqlstm", "tighttransf", "wti"]
    assert main(["report", str(tmp_path / "ab"), "--format", "md", "--output", str(tmp_path / "r.md")]) == 0
    table = (tmp_path / "r.md").read_text()
    assert all(h in table for h in ("seqlstm", "tighttransf", "wti"))


def test_pairwise_eval_benchmark_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from tests.top.test_benchmarks import load

    bench = load("eval")
    out = tmp_path / "eval.json"
    argv = ["--pairwise", "xpool,wti,tighttransf", "--pair-sizes", "12,30", "--dim", "16", "--frames", "4"]
    bench.main([*argv, "--words", "5", "--block", "8", "8", "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    for column in ("peak / one block", "one block alone (MiB)", "pairs/s"):
        assert column in printed
    saved = json.loads(out.read_text())
    assert [(r["head"], r["n_queries"]) for r in saved["results"]] == [
        (h, n) for h in ("xpool", "wti", "tighttransf") for n in (12, 30)
    ]
    for r in saved["results"]:
        assert r["block"] == [8, 8] and r["pairs_per_s"] == pytest.approx(
            2 * r["n_queries"] ** 2 / r["seconds"]
        )
