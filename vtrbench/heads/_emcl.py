"""EMCL's expectation-maximisation step (Jin et al., "Expectation-Maximization Contrastive Learning
for Compact Video-and-Language Representations", NeurIPS 2022), written once for its two uses: the
training module of the factorised heads (head option ``emcl=true``, :class:`EmclModule`) and the
inference post-processing ``emcl`` (:mod:`vtrbench.eval.emcl`).

Semantics of the official ``Emcl`` class (jpthu17/EMCL ``video_retrieval/EMCL-Net/tvr/models/
until_module.py`` at 8e759f5e, the same class in ``As_an_inference_module/modules/modeling.py`` at
1242af90). The features of a set of videos and captions are stacked into ``X`` (``b x n``: ``b`` items,
``n`` feature dimensions). The data points of the EM are the ``n`` feature dimensions (columns of
``X``, each a ``b``-vector), and the ``K`` bases ``mu`` are ``b``-vectors. Starting from
``mu = 1_b m^T`` (every item gets the stored row ``m`` of ``K`` values), each of ``iters`` iterations
does::

    z  = softmax_K(X^T mu / lambda)          # (n, K) responsibilities
    z  = z / (1e-6 + column sums of z)
    mu = X z;  mu = mu / (1e-6 + column norms of mu)

and the output is ``X + beta * mu z^T``. The iterations run without gradient, so the gradient of
the output with respect to ``X`` is the identity (``mu`` and ``z`` are constants to autograd). In
training the stored row moves: ``m <- momentum m + (1 - momentum) mean_b(mu)``. ``m`` starts as
``N(0, 2/K)`` draws divided by ``1e-6 +`` their norm over a dimension of size one, i.e. each is
``+-1`` up to the 1e-6.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def initial_bases(k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``(K,)`` starting row ``m`` as the official constructor draws it (see the module note)."""
    m = torch.empty(1, k).normal_(0.0, math.sqrt(2.0 / k), generator=generator)
    return (m / (1e-6 + m.norm(dim=0, keepdim=True)))[0]


@torch.no_grad()
def em_bases(
    x: torch.Tensor, start: torch.Tensor, iters: int, lamd: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, z)`` after ``iters`` EM iterations on ``x`` (``b x n``) from the row ``start`` (``(K,)``):
    ``mu`` is ``(b, K)``, ``z`` is ``(n, K)``; both carry no gradient."""
    mu = start.to(x.dtype).expand(x.shape[0], -1)
    z = x.new_zeros(x.shape[1], start.shape[0])
    for _ in range(iters):
        z = torch.softmax(x.T @ mu / lamd, dim=1)
        z = z / (1e-6 + z.sum(dim=0, keepdim=True))
        mu = x @ z
        mu = mu / (1e-6 + mu.norm(dim=0, keepdim=True))
    return mu, z


def reconstruct(x: torch.Tensor, mu: torch.Tensor, z: torch.Tensor, beta: float) -> torch.Tensor:
    """``x + beta * mu z^T``: the features plus their weighted projection on the subspace."""
    return x + beta * (mu @ z.T)


class EmclModule(nn.Module):
    """The training module: the EM step over a batch's videos and captions, then unit norm (EMCL-Net's
    ``get_logits`` normalises after ``self.emcl``). ``bases`` is the stored row ``m`` (a buffer,
    saved with the head; updated with ``momentum`` in training mode only, as ``if_train``)."""

    bases: torch.Tensor

    def __init__(
        self,
        k: int,
        iters: int,
        lamd: float,
        beta: float,
        momentum: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.k, self.iters, self.lamd, self.beta, self.momentum = k, iters, lamd, beta, momentum
        # the official constructor draws from torch's global generator; ``generator`` lets the head
        # keep its own parameters' seeded draws those of a head without EMCL
        self.register_buffer("bases", initial_bases(k, generator))

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text', video')``, each unit-norm, from ``(Bt, E)`` and ``(Bv, E)`` features."""
        x = torch.cat([video, text], dim=0)  # the official order: videos first
        mu, z = em_bases(x, self.bases, self.iters, self.lamd)
        if self.training:
            with torch.no_grad():
                self.bases.mul_(self.momentum).add_(
                    (1.0 - self.momentum) * mu.mean(dim=0).to(self.bases.dtype)
                )
        out = reconstruct(x, mu, z, self.beta)
        out = out / out.norm(dim=-1, keepdim=True)
        return out[video.shape[0] :], out[: video.shape[0]]

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, iters={self.iters}, lamd={self.lamd:g}, beta={self.beta:g}, "
            f"momentum={self.momentum:g}"
        )
