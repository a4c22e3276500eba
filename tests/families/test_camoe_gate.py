"""The CAMoE gate, computed by hand from its parameters (METHODS.md section 6).

g(t) = softmax(W · LN(EOT feature) + b) over the experts: it reads the sentence (EOT) feature of
the caption and nothing else. The expected values below come from the parameters and the raw
token features only (no call into the head's own text path), so a gate fed the token mean, a
noun/verb stream, or the EOT feature after an adapter gives other numbers.
"""

from __future__ import annotations

import pytest
import torch

from vtrbench.factory import create_head

B, L, D = 5, 7, 16


def text_batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n_tokens = torch.tensor([L, 3, 5, 2, 6])
    mask = torch.arange(L)[None] < n_tokens[:, None]
    return {
        "tokens": torch.randn(B, L, D, generator=g) * 2,
        "token_mask": mask,
        "eot": (n_tokens - 1).to(torch.int16),  # the cache stores eot as int16
        "noun_mask": mask & (torch.rand(B, L, generator=g) < 0.5),
        "verb_mask": mask & (torch.rand(B, L, generator=g) < 0.5),
    }


def gated_head(streams: str, experts: str = "action,entity,fusion,scene"):
    torch.manual_seed(0)
    head = create_head("camoe", embed_dim=D, experts=experts, streams=streams, layers=1).eval()
    with torch.no_grad():  # every parameter off its initialisation (LN gain 1 / bias 0, adapters = I)
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return head


@torch.no_grad()
def gate_by_hand(head, text: dict[str, torch.Tensor]) -> torch.Tensor:
    """softmax(W · LN(eot) + b) with LayerNorm written out (biased variance, eps from the module)."""
    x = text["tokens"][torch.arange(B), text["eot"].long()].double()
    ln = head.gate_norm
    z = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + ln.eps)
    z = z * ln.weight.double() + ln.bias.double()
    logits = z @ head.gate_proj.weight.double().t() + head.gate_proj.bias.double()
    return torch.exp(logits - logits.logsumexp(-1, keepdim=True))


@pytest.mark.parametrize("streams", ["pos", "learned", "eot"])
def test_gate_is_softmax_of_projected_layernormed_eot(streams: str) -> None:
    head = gated_head(streams)
    text = text_batch(1)
    with torch.no_grad():
        weights = head.gate_weights(text)
        _, gates = head.text_parts(text)
    expected = gate_by_hand(head, text).float()
    assert list(weights) == ["action", "entity", "fusion", "scene"]  # sorted expert order
    got = torch.stack([weights[e] for e in head.experts], 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gates, expected, rtol=1e-5, atol=1e-6)
    assert float((expected - 0.25).abs().max()) > 0.05  # not close to uniform: a real test of W, b


@pytest.mark.parametrize("streams", ["pos", "learned", "eot"])
def test_gate_ignores_every_token_but_eot(streams: str) -> None:
    head = gated_head(streams)
    text = text_batch(2)
    changed = {k: v.clone() for k, v in text.items()}
    g = torch.Generator().manual_seed(9)
    noise = torch.randn(B, L, D, generator=g) * 5
    keep = torch.zeros(B, L, dtype=torch.bool)
    keep[torch.arange(B), text["eot"].long()] = True
    changed["tokens"] = torch.where(keep[..., None], text["tokens"], noise)
    changed["noun_mask"] = ~text["noun_mask"] & text["token_mask"]
    changed["verb_mask"] = ~text["verb_mask"] & text["token_mask"]
    with torch.no_grad():
        before = head.text_parts(text)
        after = head.text_parts(changed)
    torch.testing.assert_close(after[1], before[1], rtol=0, atol=0)  # the gate did not move
    if streams != "eot":
        # ... while the text streams that do read the other tokens changed (the edit was real)
        assert float((after[0] - before[0]).abs().max()) > 1e-3


def test_gate_follows_the_eot_feature() -> None:
    head = gated_head("pos")
    text = text_batch(3)
    changed = {k: v.clone() for k, v in text.items()}
    rows = torch.arange(B)
    changed["tokens"][rows, text["eot"].long()] += torch.randn(
        B, D, generator=torch.Generator().manual_seed(4)
    )
    with torch.no_grad():
        moved = head.text_parts(changed)[1]
        unchanged = head.text_parts(text)[1]
    torch.testing.assert_close(moved, gate_by_hand(head, changed).float(), rtol=1e-5, atol=1e-6)
    assert float((moved - unchanged).abs().min(1).values.max()) > 1e-4


def test_uniform_gate_and_single_expert_have_no_gate_parameters() -> None:
    uniform = create_head("camoe", embed_dim=D, gate="uniform")
    single = create_head("camoe", embed_dim=D, experts="scene")
    assert uniform.gate_proj is None and single.gate_proj is None
    text = text_batch(5)
    with torch.no_grad():
        torch.testing.assert_close(uniform.text_parts(text)[1], torch.full((B, 4), 0.25))
        torch.testing.assert_close(single.text_parts(text)[1], torch.ones(B, 1))
