"""tmass's inference noise: drawn per caption from the run's seed, the same however the work is
cut, kept in checkpoints and recorded in results (parity with the official code:
test_tmass_parity.py; the pairwise evaluation guarantees: tests/eval/test_pairwise.py and
test_evaluate_ties.py, which include tmass)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vtrbench.cli import main
from vtrbench.factory import create_head
from vtrbench.results import read_result

D = 16


def captions(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(2, 6, (n,), generator=g)
    return {
        "tokens": torch.randn(n, 6, D, generator=g),
        "token_mask": torch.arange(6)[None] < counts[:, None],
        "eot": counts - 1,
    }


def rows(batch: dict[str, torch.Tensor], idx: list[int]) -> dict[str, torch.Tensor]:
    return {k: v[torch.tensor(idx)] for k, v in batch.items()}


def head(seed: int, **options):
    torch.manual_seed(seed)
    return create_head("tmass", embed_dim=D, samples=4, **options).eval()


def test_a_captions_noise_does_not_depend_on_its_batch_or_position():
    h = head(0)
    text = captions(7, seed=1)
    whole = h.text_state(text)["noise"]
    order = [6, 2, 4, 0]
    parts = torch.cat(
        [h.text_state(rows(text, order))["noise"], h.text_state(rows(text, [1, 3, 5]))["noise"]]
    )
    assert torch.equal(parts, whole[torch.tensor(order + [1, 3, 5])])
    # the draws are the prior's: uniform on [0, 1), distinct per caption and per sample
    assert whole.shape == (7, 4, D) and whole.min() >= 0 and whole.max() < 1
    assert not torch.equal(whole[0], whole[1]) and not torch.equal(whole[0, 0], whole[0, 1])


def test_the_noise_seed_follows_the_seed_and_travels_in_the_state_dict():
    text = captions(3, seed=2)
    a, b, c = head(5), head(5), head(6)
    assert int(a.noise_seed) == int(b.noise_seed) != int(c.noise_seed)
    assert torch.equal(a.text_state(text)["noise"], b.text_state(text)["noise"])
    assert not torch.equal(a.text_state(text)["noise"], c.text_state(text)["noise"])
    c.load_state_dict(a.state_dict())
    assert torch.equal(a.text_state(text)["noise"], c.text_state(text)["noise"])
    assert a.eval_protocol()["noise_seed"] == int(a.noise_seed)
    # parameters are drawn before the noise seed: the same as xpool's under the same seed
    torch.manual_seed(5)
    x = create_head("xpool", embed_dim=D)
    shared = {k: v for k, v in x.state_dict().items()}
    assert all(torch.equal(a.state_dict()[k], v) for k, v in shared.items())


def test_normal_prior_draws_scale_with_prior_std():
    text = captions(50, seed=3)
    wide, narrow = head(0, prior="normal"), head(0, prior="normal", prior_std=0.003)
    n_wide, n_narrow = wide.text_state(text)["noise"], narrow.text_state(text)["noise"]
    torch.testing.assert_close(n_narrow, n_wide * 0.003)  # same seed: the same standard normals
    assert abs(float(n_wide.std()) - 1.0) < 0.05 and n_wide.min() < 0


def test_train_then_eval_records_the_seed_and_gives_the_same_metrics(synth_cache: Path, tmp_path: Path):
    fast = ["--device", "cpu", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--quiet"]
    ckpt = tmp_path / "tmass.pt"
    argv = ["train", "--cache", str(synth_cache), "--results", str(tmp_path / "tr"), "--head", "tmass"]
    opts = ["--head-option", "samples=3"]
    assert main([*argv, *fast, *opts, "--seed", "3", "--save-checkpoint", str(ckpt)]) == 0
    trained = read_result(next((tmp_path / "tr").rglob("*.json")))
    assert trained["label"] == "tmass[samples=3]"
    recorded = trained["protocol"]["head"]
    assert recorded["samples"] == 3 and isinstance(recorded["noise_seed"], int)
    assert json.loads(json.dumps(recorded)) == recorded
    argv = ["eval", "--cache", str(synth_cache), "--checkpoint", str(ckpt), "--results", str(tmp_path / "ev")]
    assert main([*argv, "--device", "cpu"]) == 0
    evaluated = read_result(next((tmp_path / "ev").rglob("*.json")))
    assert evaluated["protocol"]["head"] == recorded
    assert evaluated["metrics"] == trained["metrics"]  # the checkpoint brings the same noise
