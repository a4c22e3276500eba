"""``triplet``: VSE++'s max-margin ranking loss against a plain-loop transcription of the paper's
equations (Faghri et al., BMVC 2018, Section 3: sum of hinges ℓ_SH, max of hinges ℓ_MH), and its options
through every way in (create_loss, the API, the command line)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_loss

B = 7


def cosines(seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = F.normalize(torch.randn(B, 16, generator=g, dtype=dtype), dim=-1)
    v = F.normalize(torch.randn(B, 16, generator=g, dtype=dtype) + 0.5 * t, dim=-1)
    return t @ v.t()


def paper_loss(s: list[list[float]], margin: float, hardest: bool) -> float:
    """Per positive pair (i, i): hinges over the other videos of caption i and the other captions of
    video i, summed (SH) or maxed (MH); then the mean over the pairs. Plain Python floats."""
    n = len(s)
    total = 0.0
    for i in range(n):
        over_videos = [max(0.0, margin - s[i][i] + s[i][j]) for j in range(n) if j != i]
        over_captions = [max(0.0, margin - s[i][i] + s[k][i]) for k in range(n) if k != i]
        if hardest:
            total += max(over_videos) + max(over_captions)
        else:
            total += sum(over_videos) + sum(over_captions)
    return total / n


@pytest.mark.parametrize("reduction", ["sum", "hardest"])
@pytest.mark.parametrize("margin", [0.2, 0.05, 1.0])
def test_triplet_equals_the_papers_equations(reduction: str, margin: float) -> None:
    cos = cosines(seed=int(margin * 100))
    # near-ties: two negatives equal to the positive, so the hinge is exactly at the margin
    cos[0, 1] = cos[0, 0]
    cos[2, 0] = cos[0, 0]
    expected = paper_loss(cos.tolist(), margin, reduction == "hardest")
    got = create_loss("triplet", margin=margin, reduction=reduction)(100.0 * cos)
    assert math.isclose(got.item(), expected, rel_tol=1e-12, abs_tol=1e-12)
    assert expected > 0  # the case is not trivially zero


def test_defaults_are_vsepp_margin_and_sum_of_hinges() -> None:
    s = 100.0 * cosines(seed=3)
    explicit = create_loss("triplet", margin=0.2, reduction="sum")(s)
    torch.testing.assert_close(create_loss("triplet")(s), explicit)
    assert create_loss("triplet", reduction="hardest")(s) < create_loss("triplet")(s)


def test_separated_pairs_give_zero_and_gradients_flow() -> None:
    s = torch.full((B, B), -50.0, dtype=torch.float64) + 100.0 * torch.eye(B, dtype=torch.float64)
    assert create_loss("triplet")(s).item() == 0.0  # every negative is more than the margin below
    x = (100.0 * cosines(seed=4, dtype=torch.float32)).requires_grad_(True)
    loss = create_loss("triplet", reduction="hardest")(x)
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.diagonal().sum() < 0  # raising positives lowers it


@pytest.mark.parametrize(
    "options",
    [{"margin": math.nan}, {"margin": 0.0}, {"margin": -0.2}, {"margin": math.inf}, {"margin": "0.2"},
     {"margin": True}, {"reduction": "mean"}, {"reduction": None}, {"margn": 0.2}],
)  # fmt: skip
def test_bad_options_are_one_line_before_any_work(options: dict) -> None:
    from vtrbench import api

    with pytest.raises(VtrbenchError) as info:
        create_loss("triplet", **options)
    assert "\n" not in str(info.value)
    with pytest.raises(VtrbenchError, match="create_loss"):
        api.create_loss("triplet", **options)


def test_cli_margin_and_reduction(run_cli, synth_cache: Path, tmp_path: Path) -> None:
    import json

    results = tmp_path / "r"
    argv = ["train", "--cache", synth_cache, "--head", "meanp", "--loss", "triplet", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--quiet", "--results", results]  # fmt: skip
    r = run_cli(*argv, "--margin", "0.1", "--reduction", "hardest")
    assert r.code == 0, r.text
    (res,) = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert res["loss"] == "triplet" and res["loss_options"] == {"margin": 0.1, "reduction": "hardest"}
    assert math.isfinite(res["history"][0]["loss"])
    r = run_cli(*argv, "--margin", "nan")
    assert r.code == 2 and "margin" in r.err, r.text
    r = run_cli(*argv[:6], "infonce", *argv[7:], "--margin", "0.1")
    assert r.code == 2 and "--margin only applies to --loss triplet" in r.err, r.text
