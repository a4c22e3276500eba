"""Losses: checked against formulas written out independently (explicit exp / sum, float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_loss
from vtrbench.losses.base import list_losses

B = 6


def logit_matrix(seed: int, scale: float = 100.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """scale · cos of random unit vectors, shaped like a trained head's (B, B) logits."""
    g = torch.Generator().manual_seed(seed)
    t = F.normalize(torch.randn(B, 16, generator=g, dtype=dtype), dim=-1)
    v = F.normalize(torch.randn(B, 16, generator=g, dtype=dtype) + t, dim=-1)
    return scale * t @ v.t()


def official_dsl_direction(s: torch.Tensor, temperature: float) -> torch.Tensor:
    """CAMoE DSL.py, one direction, with every softmax written as exp / sum."""
    n = s.shape[0]
    prior = torch.empty_like(s)
    for j in range(n):
        column = [math.exp(s[i, j].item() / temperature) for i in range(n)]
        for i in range(n):
            prior[i, j] = column[i] / sum(column) * n
    sp = s * prior
    losses = []
    for i in range(n):
        row = [math.exp(sp[i, j].item()) for j in range(n)]
        losses.append(-math.log(row[i] / sum(row)))
    return torch.tensor(losses, dtype=s.dtype)


def brute_force_infonce(s: torch.Tensor) -> float:
    n = s.shape[0]
    rows = [-math.log(math.exp(s[i, i]) / sum(math.exp(s[i, j]) for j in range(n))) for i in range(n)]
    cols = [-math.log(math.exp(s[i, i]) / sum(math.exp(s[j, i]) for j in range(n))) for i in range(n)]
    return 0.5 * (sum(rows) / n + sum(cols) / n)


@pytest.mark.parametrize(("scale", "temperature"), [(100.0, 1000.0), (100.0, 50.0), (20.0, 1.0), (5.0, 0.5)])
def test_dsl_equals_the_official_formula(scale, temperature):
    s = logit_matrix(seed=int(scale + temperature), scale=scale)
    expected = 0.5 * (
        official_dsl_direction(s, temperature).mean() + official_dsl_direction(s.t(), temperature).mean()
    )
    loss = create_loss("dsl", temperature=temperature)(s)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


def test_dsl_default_temperature_is_the_official_1000():
    s = logit_matrix(seed=3)
    torch.testing.assert_close(create_loss("dsl")(s), create_loss("dsl", temperature=1000.0)(s))
    assert not torch.allclose(create_loss("dsl")(s), create_loss("dsl", temperature=10.0)(s))


def test_dsl_with_a_flat_prior_is_infonce():
    """τ → ∞ makes softmax(S/τ, dim=0)·B all ones, so S' = S."""
    s = logit_matrix(seed=4)
    torch.testing.assert_close(create_loss("dsl", temperature=1e12)(s), create_loss("infonce")(s))


def test_infonce_equals_cross_entropy_both_ways_and_brute_force():
    s = logit_matrix(seed=5, scale=10.0)
    targets = torch.arange(B)
    expected = 0.5 * (F.cross_entropy(s, targets) + F.cross_entropy(s.t(), targets))
    loss = create_loss("infonce")(s)
    torch.testing.assert_close(loss, expected)
    assert math.isclose(loss.item(), brute_force_infonce(s), rel_tol=1e-12)


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_is_a_finite_scalar_with_finite_gradients(name):
    s = logit_matrix(seed=6, dtype=torch.float32).requires_grad_(True)
    loss = create_loss(name)(s)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    # Raising the positives' logits lowers the loss.
    assert create_loss(name)(s.detach() + 5 * torch.eye(B)) < loss


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_is_invariant_to_relabelling_the_pairs(name):
    s = logit_matrix(seed=7)
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(0))
    loss = create_loss(name)
    torch.testing.assert_close(loss(s[perm][:, perm]), loss(s))


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_rejects_a_non_square_matrix(name):
    with pytest.raises(ValueError, match="square"):
        create_loss(name)(torch.zeros(B, B + 1))


def test_loss_options_are_checked():
    with pytest.raises(VtrbenchError, match="did you mean 'temperature'"):
        create_loss("dsl", temprature=1.0)
    with pytest.raises(VtrbenchError, match="takes no options"):
        create_loss("infonce", temperature=1.0)
    with pytest.raises(VtrbenchError, match="temperature must be a number > 0"):
        create_loss("dsl", temperature=0)
    with pytest.raises(VtrbenchError, match="did you mean 'dsl'"):
        create_loss("dls")
