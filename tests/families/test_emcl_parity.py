"""Parity of the EMCL training module (head option ``emcl=true``) with the official code.

``RefEmcl`` re-implements, in the reference's own layout (an object, not a module; the features as
``b x n`` with the EM run on the transpose; the bases as a ``1 x K`` tensor repeated over the items),
the ``Emcl`` class of jpthu17/EMCL ``video_retrieval/EMCL-Net/tvr/models/until_module.py`` at commit
8e759f5e0b53c79053d211a8b179e1ce6d7bdca0, and ``ref_logits`` the tail of ``EMCL.get_logits`` in
``tvr/models/modeling.py`` (same commit): videos then captions stacked, ``self.emcl(...,
if_train=self.training)``, split, L2-normalised, ``t @ v.T``; the loss is its ``CrossEn`` both ways.
EMCL-Net's video feature is pooled per caption (``temp``-softmax over frames); a factorised head
pools each video once, so the reference is fed the head's own embeddings, and what is compared is
everything EMCL adds: the EM step, the momentum update of the bases, the normalisation, the logits,
the loss's gradients with respect to every parameter of the head, in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vtrbench.factory import create_head
from vtrbench.heads._emcl import initial_bases

B, T, L, D = 6, 5, 7, 32


class RefEmcl:
    """The official ``Emcl`` (see the module docstring), argument names as there."""

    def __init__(self, k=32, stage_num=9, momentum=0.9, lamd=1, beta=3):
        self.k = k
        self.lamd = lamd
        self.stage_num = stage_num
        self.beta = beta
        self.momentum = momentum
        self.mu = torch.Tensor(1, self.k)
        self.mu.normal_(0, math.sqrt(2.0 / self.k))
        self.mu = self.mu / (1e-6 + self.mu.norm(dim=0, keepdim=True))

    def __call__(self, embds, if_train=True):
        b, n = embds.size()
        mu = self.mu.repeat(b, 1).to(embds.device)  # official: .cuda(embds.device)
        _embds = embds
        with torch.no_grad():
            for _ in range(self.stage_num):
                _embds_t = _embds.permute(1, 0)  # n x b
                z = torch.mm(_embds_t, mu)  # n x k
                z = z / self.lamd
                z = F.softmax(z, dim=1)
                z = z / (1e-6 + z.sum(dim=0, keepdim=True))
                mu = torch.mm(_embds, z)  # b x k
                mu = mu / (1e-6 + mu.norm(dim=0, keepdim=True))
        z_t = z.permute(1, 0)  # k x n
        _embds = torch.mm(mu, z_t)  # b x n
        if if_train:
            mu = mu.cpu()
            self.mu = self.momentum * self.mu + (1 - self.momentum) * mu.mean(dim=0, keepdim=True)
        return self.beta * _embds + embds


def ref_logits(emcl: RefEmcl, cls: torch.Tensor, video_feat: torch.Tensor, training: bool) -> torch.Tensor:
    """EMCL.get_logits after the pooling: the EM step over [videos; captions], unit norm, cosine."""
    all_embedding = torch.cat((video_feat, cls), dim=0)
    all_embedding = emcl(all_embedding, if_train=training)
    video_feat = all_embedding[: video_feat.size(0), :]
    text_feat = all_embedding[video_feat.size(0) :, :]
    _t_feat = text_feat / text_feat.norm(dim=-1, keepdim=True)
    _v_feat = video_feat / video_feat.norm(dim=-1, keepdim=True)
    return torch.einsum("ad,bd->ab", _t_feat, _v_feat)


def cross_en(sim_matrix: torch.Tensor) -> torch.Tensor:
    """until_module.CrossEn."""
    logpt = F.log_softmax(sim_matrix, dim=-1)
    return (-torch.diag(logpt)).mean()


def inputs(seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A float64 batch with ragged masks; videos 0 and 3 are the same video (two of its captions)."""
    g = torch.Generator().manual_seed(seed)
    n_tokens = torch.tensor([L, 3, 5, 2, 6, 4])
    n_frames = torch.tensor([T, 1, 4, T, 2, 3])
    tokens = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    frames = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    frames[3] = frames[0]
    token_mask = torch.arange(L)[None] < n_tokens[:, None]
    frame_mask = torch.arange(T)[None] < n_frames[:, None]
    frame_mask[3] = frame_mask[0]
    text = {
        "tokens": tokens * token_mask[..., None],
        "token_mask": token_mask,
        "eot": n_tokens - 1,
        "noun_mask": token_mask & (torch.rand(B, L, generator=g) < 0.5),
        "verb_mask": token_mask & (torch.rand(B, L, generator=g) < 0.5),
    }
    return text, {"frames": frames * frame_mask[..., None], "frame_mask": frame_mask}


def emcl_head(name: str, **options):
    head = create_head(name, embed_dim=D, emcl=True, **options).double()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # off the identity adapters, so the gradients reach something non-trivial
        for p in head.parameters():
            if p.requires_grad and p.ndim > 0:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)
    return head


def reference_for(head, **params) -> RefEmcl:
    ref = RefEmcl(**params)
    ref.mu = head.emcl_step.bases.detach().clone()[None]  # the weights copied, as for every parity test
    return ref


def grads(head, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    head.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}


TIGHT = dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["meanp", "seqlstm", "seqtransf", "camoe"])
def test_training_logits_loss_gradients_and_bases_match_the_official_module(name: str) -> None:
    torch.manual_seed(0)
    head = emcl_head(name)
    ref = reference_for(head)  # EMCL-Net's MSR-VTT defaults: K 32, 9 stages, momentum 0.9, lamd 1, beta 3
    head.train()
    for step in range(3):  # the bases move with the momentum, and each step starts from the moved ones
        text, video = inputs(step)
        ours, _ = head.training_logits(text, video)
        scale = head.logit_scale()
        theirs = scale * ref_logits(ref, head.encode_text(text), head.encode_video(video), True)
        torch.testing.assert_close(ours, theirs, **TIGHT)
        torch.testing.assert_close(head.emcl_step.bases, ref.mu[0].to(torch.float64), **TIGHT)
        g_ours = grads(head, (cross_en(ours) + cross_en(ours.T)) / 2)
        g_ref = grads(head, (cross_en(theirs) + cross_en(theirs.T)) / 2)
        assert set(g_ours) == set(g_ref) and len(g_ours) > 1
        for key in g_ours:
            torch.testing.assert_close(g_ours[key], g_ref[key], **TIGHT)


def test_evaluation_mode_does_not_move_the_bases_and_other_parameters_are_followed() -> None:
    torch.manual_seed(0)
    params = dict(k=5, stage_num=3, momentum=0.5, lamd=0.3, beta=2)
    head = emcl_head("meanp", emcl_k=5, emcl_iters=3, emcl_momentum=0.5, emcl_lambda=0.3, emcl_beta=2.0)
    ref = reference_for(head, **params)
    before = head.emcl_step.bases.clone()
    head.eval()
    text, video = inputs(4)
    ours, _ = head.training_logits(text, video)
    theirs = head.logit_scale() * ref_logits(ref, head.encode_text(text), head.encode_video(video), False)
    torch.testing.assert_close(ours, theirs, **TIGHT)
    assert torch.equal(head.emcl_step.bases, before)
    head.train()
    ours, _ = head.training_logits(text, video)
    theirs = head.logit_scale() * ref_logits(ref, head.encode_text(text), head.encode_video(video), True)
    torch.testing.assert_close(ours, theirs, **TIGHT)
    torch.testing.assert_close(head.emcl_step.bases, ref.mu[0].to(torch.float64), **TIGHT)
    assert not torch.equal(head.emcl_step.bases, before)


@pytest.mark.parametrize("k", [1, 7, 32])
def test_the_starting_bases_are_the_official_draw(k: int) -> None:
    """The official constructor draws from torch's global generator; vtrbench from a generator of its
    own seeded alike: the same values (each +-1 up to the 1e-6)."""
    torch.manual_seed(123)
    official = RefEmcl(k=k).mu[0]
    ours = initial_bases(k, torch.Generator().manual_seed(123))
    torch.testing.assert_close(ours, official, rtol=0, atol=0)


def test_emcl_leaves_the_heads_own_seeded_draws_alone() -> None:
    torch.manual_seed(5)
    plain = create_head("seqtransf", embed_dim=D).state_dict()
    torch.manual_seed(5)
    with_emcl = create_head("seqtransf", embed_dim=D, emcl=True).state_dict()
    assert set(with_emcl) - set(plain) == {"emcl_step.bases"}
    for key, value in plain.items():
        assert torch.equal(value, with_emcl[key]), key


def test_the_gradient_through_the_em_step_is_the_identity() -> None:
    """The iterations run without gradient: d(output)/d(features) is the identity (before the norm)."""
    from vtrbench.heads._emcl import em_bases, reconstruct

    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 6, generator=g, dtype=torch.float64, requires_grad=True)
    mu, z = em_bases(x, initial_bases(4, g).double(), 5, 0.5)
    w = torch.randn(9, 6, generator=g, dtype=torch.float64)
    (reconstruct(x, mu, z, 3.0) * w).sum().backward()
    assert torch.equal(x.grad, w)
