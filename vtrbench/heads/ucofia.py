"""``ucofia`` (UCoFiA, Wang et al., ICCV 2023), pairwise, on frozen features and patch tokens.

Unified coarse-to-fine alignment, from the authors' ``train/modules/modeling_ucofia.py`` and
``train/modules/differential_topk.py`` (repository ``Ziyang412/UCoFiA``, commit
2a0a91d4ccb18c2d793e24c9b214594a67fdc104). A caption gives its unit EOT feature ``s`` and its unit
token features ``w_1..w_L``; a video its frames ``f_1..f_T`` (CLIP's projected CLS per frame) and,
per frame, ``k`` patch tokens chosen by a learned scorer (UCoFiA's ``VisualTokenSelection``)::

    video  = unit(mean_t unit(seqTransf(f)_t))                          # CLIP4Clip's seqTransf
    l_vid  = (s G1) . (video G2)                                         # video-sentence
    l_frm  = ISA_T(s . unit(f_t))                                        # sentence-frame
    S_ln   = (w_l A) . (p_n B)      p = [f_t, top-k patches of frame t]  # word-patch, (L, T(1+k))
    l_pat  = (ISA_N(ISA_L(S)) + ISA_L(ISA_N(S))) / 2
    logits = (scale l_vid + scale l_frm + l_pat) / 3

with G1, G2, A, B (D x D) starting at the identity and the interaction-aware aggregation
``ISA_X(x) = sum_x softmax_x(softmax_x(x / tau) W_X / tau) x`` (W_X square, starting at the
identity, over the axis X: words, frames or patches; tau = 0.01). ``score_states`` returns
``logits / scale`` (the head's logit scale), so training's ``scale * score`` is the official
logits; UCoFiA trains them with the symmetric cross entropy (vtrbench's ``infonce``).

The patch selector (``PatchSelector``): a score per patch, ``tanh(MLP([LN-proj(x_n), LN-proj(f_t)]))``
(UCoFiA's ``PredictorLG``, the frame's CLS token as the global context), then a differentiable top-k
(Berthet et al.'s perturbed optimiser, as UCoFiA's ``PerturbedTopK``): in training the mean of the
sorted top-k one-hot indicators over ``topk_samples`` Gaussian perturbations of the scores
(``sigma`` = ``topk_sigma``), with the perturbed optimiser's gradient. The noise is drawn from the
global generator, which the run seeds (training is reproducible from the run's seed). In
evaluation the selection is the plain top-k (the noise's zero-temperature limit), so a video's
state, and so its scores, do not depend on the draws or on the block it is scored in; UCoFiA keeps
drawing noise at evaluation (deviation measured in docs/heads.md).

vtrbench differences (docs/heads.md): padded words, frames and their patches are masked out of
every softmax and mean (UCoFiA's inputs have no padding it could see: CLIP's padded token outputs
and black frames are real features there, which a cache does not hold); the ISA matrices are sized
``isa_words`` x ``isa_words`` and ``isa_frames`` x ``isa_frames`` (UCoFiA: max_words 32, max_frames
12) and a cache with fewer positions uses their leading block; UCoFiA's inference-time
Sinkhorn-Knopp bias over a bank of training captions (``eval_t2v/main_ucofia.py``) is the option
``sinkhorn=bank`` (:meth:`UCoFiAHead.gallery_state`), off by default (it needs the training split).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import AdaptedPairwiseHead, ClipStart, bracket_label, takes_scale_options
from vtrbench.heads._layers import (
    DEFAULT_ACTIVATION,
    DEFAULT_INIT,
    DEFAULT_MAX_FRAMES,
    NORM_EPS,
    choose_one,
    load_clip_text_layers,
    mean_of_unit_frames,
    positive_int,
    temporal_schema,
    video_inputs,
)
from vtrbench.heads.base import LOGIT_SCALE_OPTION, Batch, PairwiseHead, register_head

#: UCoFiA's MSR-VTT configuration (train/scripts/train_msrvtt.sh and modeling_ucofia.py).
DEFAULT_TOPK = 3  # VisualTokenSelection(topk=3)
DEFAULT_TOPK_SAMPLES = 500  # PerturbedTopK num_samples
DEFAULT_TOPK_SIGMA = 0.05  # PerturbedTopK sigma
DEFAULT_TAU = 0.01  # every ISA softmax divides by 1e-2
DEFAULT_ISA_WORDS = 32  # --max_words 32
DEFAULT_ISA_FRAMES = 12  # --max_frames 12
DEFAULT_LAYERS = 4  # --sim_header seqTransf, cross_num_hidden_layers 4
#: ``sinkhorn``: ``bank`` is UCoFiA's inference (eval_t2v/main_ucofia.py): each level's training-caption
#: bank x test gallery logits balanced by Sinkhorn-Knopp, the log video scaling added per level;
#: ``none`` scores the plain average of the levels.
SINKHORN_MODES = ("none", "bank")
DEFAULT_SINKHORN = "none"
DEFAULT_SINKHORN_ITERS = 4  # sinkhorn_knopp(n_iters=4)
MAX_SINKHORN_ITERS = 1000
#: An upper bound for ``topk`` and the ISA sizes: the largest CLIP patch grid (ViT-L/14 at 336 px,
#: 576 patches) with room; beyond it a (captions x words x videos x frames(1 + k)) block is unbounded.
MAX_TOPK = 1024
MAX_ISA = 4096
MAX_SAMPLES = 100_000
#: Elements of the word-token similarities evaluation builds at a time (whole videos, at least one):
#: with its two work buffers, 1.2 MB of float32, inside a 2 MiB L2 cache (docs/heads.md, Cost).
EVAL_CHUNK = 100_000
#: The cache field the head reads beyond frames and tokens, and how a missing one is refused.
MISSING_PATCHES = (
    "ucofia needs the cache's patch tokens, which it does not hold: re-extract with "
    "`vtrbench extract --patch-tokens`"
)


#: added to the logits of masked entries: exp() gives exactly 0 next to any valid entry, and the sum
#: stays finite (a row with no valid entry gets uniform weights, not NaN)
MASK_BIAS = -1.0e30


def mask_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where ``mask`` (bool) holds, :data:`MASK_BIAS` elsewhere: added to softmax logits."""
    return (~mask).to(dtype) * MASK_BIAS


def isa(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    tau: float,
    dim: int = -1,
    *,
    work: tuple[torch.Tensor, torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """UCoFiA's interaction-aware similarity aggregation of ``x`` over the axis ``dim`` (-1, or 1 of a
    3-D ``x``): ``sum_n softmax(softmax(x / tau) W / tau)_n x_n`` with W the leading (n, n) block of
    ``weight`` (the second softmax's logit n is ``sum_m first_m W_mn``).

    ``bias`` (broadcastable to ``x``, :func:`mask_bias`) masks entries out of both softmaxes; masked
    entries of ``x`` must be finite (they get weight 0 next to any valid entry). Over ``dim=1`` the
    products are W^T from the left on (B, n, M), so no axis is moved (no copy of x).

    Without autograd only: ``work``, two contiguous tensors of ``x``'s shape, holds the intermediate
    softmaxes (rewritten, nothing allocated), and the result is written into ``out``: the same
    operations on the same values (:func:`isa_both_chunked` reuses its buffers across chunks)."""
    n = x.shape[dim]
    w = weight[:n, :n] * (1.0 / tau)
    if work is None:
        first = torch.add(bias, x, alpha=1.0 / tau).softmax(dim)
        logits = first @ w if dim == -1 else torch.matmul(w.t(), first)
        second = logits.add_(bias).softmax(dim)
        return (second * x).sum(dim)
    a, b = work
    torch.softmax(torch.add(bias, x, alpha=1.0 / tau, out=a), dim, out=b)
    if dim == -1:
        torch.mm(b.view(-1, n), w, out=a.view(-1, n))
    else:
        torch.matmul(w.t(), b, out=a)
    torch.softmax(a.add_(bias), dim, out=b)
    return torch.sum(b.mul_(x), dim, out=out)


class _PerturbedTopK(torch.autograd.Function):
    """Mean sorted top-k one-hot indicators over Gaussian perturbations of the scores (b, d) ->
    (b, k, d), with the perturbed optimiser's gradient ``E[indicator noise^T] / sigma``.

    The (b, samples, k, d) one-hot tensor is never built: the indicators are counts and the
    gradient's expectation a sum of the noise at the chosen indices (scatter-adds of (b, k, samples)).
    """

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, k: int, samples: int, sigma: float) -> torch.Tensor:
        b, d = scores.shape
        # drawn in float32 whatever the scores' dtype, as UCoFiA does: the same draws in float64
        noise = torch.randn(b, samples, d, device=scores.device).to(scores.dtype)
        chosen = torch.topk(scores.unsqueeze(1) + sigma * noise, k, dim=-1, sorted=False).indices
        chosen = chosen.sort(-1).values.transpose(1, 2)  # (b, k, samples): the i-th smallest index
        counts = scores.new_zeros(b, k, d).scatter_add_(2, chosen, scores.new_ones(chosen.shape))
        ctx.save_for_backward(noise, chosen)
        ctx.sigma = sigma
        return counts / samples

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        noise, chosen = ctx.saved_tensors
        b, samples, d = noise.shape
        # E[b, k, j] = sum over samples choosing j as the k-th index of noise[b, sample, j]
        at = noise.gather(2, chosen.transpose(1, 2)).transpose(1, 2)  # (b, k, samples)
        expected = grad.new_zeros(b, chosen.shape[1], d).scatter_add_(2, chosen, at.to(grad.dtype))
        return (grad * expected).sum(1) / (samples * ctx.sigma), None, None, None


class PatchSelector(nn.Module):
    """UCoFiA's ``VisualTokenSelection``: a frame's CLS (its cached frame feature) and its ``k``
    highest-scoring patch tokens, (B, T, P, D) patches + (B, T, D) frames -> (B, T, 1 + k, D)."""

    def __init__(self, dim: int, topk: int, samples: int, sigma: float) -> None:
        super().__init__()
        self.topk, self.samples, self.sigma = topk, samples, sigma
        half = dim // 2
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, half, bias=False)
        self.hidden = nn.Linear(2 * half, half, bias=False)
        self.out = nn.Linear(half, 1, bias=False)
        for linear in (self.proj, self.hidden, self.out):
            nn.init.normal_(linear.weight, std=0.02)  # CLIP4Clip's init_weights, which UCoFiA applies

    def scores(self, frames: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """(B, T, P) patch scores in (-1, 1), read against the frame's CLS token."""
        x = F.gelu(self.proj(self.norm(torch.cat([frames.unsqueeze(2), patches], 2))))
        ctx = x[:, :, :1].expand_as(x[:, :, 1:])
        return torch.tanh(self.out(F.gelu(self.hidden(torch.cat([x[:, :, 1:], ctx], -1))))).squeeze(-1)

    def forward(self, frames: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        b, t, p, d = patches.shape
        if self.topk > p:
            raise VtrbenchError(
                f"ucofia option topk={self.topk} exceeds the cache's {p} patch tokens per frame"
            )
        score = self.scores(frames, patches).reshape(b * t, p)
        if self.training:
            pick = _PerturbedTopK.apply(score, self.topk, self.samples, self.sigma)
        else:  # the noise's zero-temperature limit: a video's state is a function of the video alone
            chosen = score.topk(self.topk, -1, sorted=False).indices.sort(-1).values
            pick = F.one_hot(chosen, p).to(score.dtype)
        selected = torch.bmm(pick, patches.reshape(b * t, p, d)).view(b, t, self.topk, d)
        return torch.cat([frames.unsqueeze(2), selected], 2)


class CoarseToFineHead(AdaptedPairwiseHead):
    """The multi-level alignment building block: a pairwise head whose score is the weighted sum
    of several levels' (Bq, Bv) similarities, each computed by :meth:`level_scores` from the same
    per-item states. Plugin authors subclass it (``register_head``), fill ``text_state`` /
    ``video_state`` and :meth:`level_scores`, and may set ``level_weights``; :func:`isa` is the
    interaction-aware aggregation to build levels with."""

    #: Each level's weight in the sum (None: equal weights 1/levels).
    level_weights: tuple[float, ...] | None = None

    def level_scores(self, text: Batch, video: Batch) -> list[torch.Tensor]:
        """The (Bq, Bv) similarity of each level for a block of caption and video states."""
        raise NotImplementedError

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """The weighted sum of the levels, plus the per-video ``offset`` a gallery state may carry
        (:meth:`gallery_state`)."""
        levels = self.level_scores(text, video)
        weights = self.level_weights or (1.0 / len(levels),) * len(levels)
        if len(weights) != len(levels):
            raise VtrbenchError(
                f"{type(self).__name__}: {len(weights)} level weights for {len(levels)} levels"
            )
        out = levels[0] * weights[0]
        for w, level in zip(weights[1:], levels[1:], strict=True):
            out = out + level * w
        return out + video["offset"][None, :] if "offset" in video else out

    def gallery_state(self, video: Batch, bank_text: Batch | None, block: tuple[int, int]) -> Batch:
        """The gallery's video states, completed with what depends on the whole gallery (called once
        by evaluation with a bank of training captions' states, or None). Here: unchanged."""
        return video


def _eye(n: int) -> nn.Parameter:
    return nn.Parameter(torch.eye(n))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(NORM_EPS)


@register_head("ucofia")
class UCoFiAHead(ClipStart, CoarseToFineHead):
    """Options: ``topk`` (3 patches per frame), ``topk_samples`` (500) and ``topk_sigma`` (0.05) of
    the training-time perturbed top-k, ``tau`` (0.01, the ISA temperature), ``isa_words`` (32) and
    ``isa_frames`` (12), the sizes of the ISA matrices; ``sinkhorn`` ("none" | "bank": UCoFiA's
    inference bias, see :meth:`gallery_state`) and ``sinkhorn_iters`` (4); the seqTransf video
    encoder's ``layers`` (4), ``init``, ``heads``, ``max_frames``, ``activation``; the logit scale.
    Needs patch tokens."""

    head_name = "ucofia"
    default_layers = DEFAULT_LAYERS
    requires = frozenset({"patches"})
    eval_block = (64, 64)
    search_space = {
        **AdaptedPairwiseHead.search_space,
        "topk": {"low": 1, "high": 8},
        "tau": {"low": 0.005, "high": 0.1, "log": True},
    }
    option_schema = {
        "topk": OptionRule("int", low=1, high=MAX_TOPK),
        "topk_samples": OptionRule("int", low=1, high=MAX_SAMPLES),
        "topk_sigma": OptionRule("float", low=0.0, low_open=True, high=10.0),
        "tau": OptionRule("float", low=0.0, low_open=True, high=10.0),
        "isa_words": OptionRule("int", low=1, high=MAX_ISA),
        "isa_frames": OptionRule("int", low=1, high=MAX_ISA),
        "sinkhorn": OptionRule("choice", choices=SINKHORN_MODES),
        "sinkhorn_iters": OptionRule("int", low=1, high=MAX_SINKHORN_ITERS),
        **temporal_schema(),
        **LOGIT_SCALE_OPTION,
    }

    @takes_scale_options()
    def __init__(
        self,
        embed_dim: int,
        *,
        topk: int = DEFAULT_TOPK,
        topk_samples: int = DEFAULT_TOPK_SAMPLES,
        topk_sigma: float = DEFAULT_TOPK_SIGMA,
        tau: float = DEFAULT_TAU,
        isa_words: int = DEFAULT_ISA_WORDS,
        isa_frames: int = DEFAULT_ISA_FRAMES,
        sinkhorn: str = DEFAULT_SINKHORN,
        sinkhorn_iters: int = DEFAULT_SINKHORN_ITERS,
        layers: int = DEFAULT_LAYERS,
        init: str = DEFAULT_INIT,
        heads: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        activation: str = DEFAULT_ACTIVATION,
        **options: Any,
    ) -> None:
        super().__init__(embed_dim, options, adapter=False)
        self.topk = _bounded_int("topk", topk, MAX_TOPK)
        self.topk_samples = _bounded_int("topk_samples", topk_samples, MAX_SAMPLES)
        self.topk_sigma = _positive_float("topk_sigma", topk_sigma)
        self.tau = _positive_float("tau", tau)
        self.isa_words = _bounded_int("isa_words", isa_words, MAX_ISA)
        self.isa_frames = _bounded_int("isa_frames", isa_frames, MAX_ISA)
        self.sinkhorn = choose_one("ucofia", "sinkhorn", sinkhorn, SINKHORN_MODES)
        self.sinkhorn_iters = _bounded_int("sinkhorn_iters", sinkhorn_iters, MAX_SINKHORN_ITERS)
        self.set_temporal_options(layers, init, heads, max_frames, activation)
        self.backbone_loaded = False
        self.temporal = self.new_temporal_encoder()
        d, nw, nf = embed_dim, self.isa_words, self.isa_frames
        # UCoFiA's names: global_mat_weight(_1), frame_logit_weight, local_mat_weight(1),
        # word_mat_weight(2), pixel_mat_weight(2); all start at the identity
        self.sentence_proj, self.video_proj = _eye(d), _eye(d)
        self.frame_isa = _eye(nf)
        self.word_proj, self.patch_proj = _eye(d), _eye(d)
        self.word_isa, self.word_isa2 = _eye(nw), _eye(nw)
        self.patch_isa, self.patch_isa2 = _eye(nf * (1 + self.topk)), _eye(nf * (1 + self.topk))
        self.selector = PatchSelector(d, self.topk, self.topk_samples, self.topk_sigma)

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """CLIP's text positions and layers into the seqTransf encoder (init="clip")."""
        load_clip_text_layers(self.temporal, weights)

    def text_state(self, batch: Batch) -> Batch:
        """unit sentence (B, D), unit words times A (B, L, D) (0 on padding), word mask (B, L)."""
        dtype = self.log_logit_scale.dtype
        mask = batch["token_mask"].bool()
        if mask.shape[1] > self.isa_words:
            raise VtrbenchError(
                f"the cache has {mask.shape[1]} token positions per caption but ucofia was built with "
                f"isa_words={self.isa_words}; set the head option isa_words to at least {mask.shape[1]}"
            )
        tokens = batch["tokens"].to(dtype)
        sentence = _unit(tokens[torch.arange(tokens.shape[0], device=tokens.device), batch["eot"].long()])
        words = torch.where(mask[..., None], _unit(torch.where(mask[..., None], tokens, 1.0)), 0.0)
        return {"sentence": sentence, "words": words @ self.word_proj, "mask": mask}

    def video_state(self, batch: Batch) -> Batch:
        """video G2 (B, D), unit frames (B, T, D) (0 on padding), their softmax bias (B, T), the
        selected tokens times B (B, T(1+k), D) (0 on padding) and their bias (B, T(1+k))."""
        if "patches" not in batch:
            raise VtrbenchError(MISSING_PATCHES)
        self.check_clip_loaded()
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        b, t = mask.shape
        if t > self.isa_frames:
            raise VtrbenchError(
                f"the cache has {t} frames per video but ucofia was built with isa_frames="
                f"{self.isa_frames}; set the head option isa_frames to at least {t}"
            )
        video = mean_of_unit_frames(self.temporal(frames, mask), mask)
        patches = torch.where(mask[:, :, None, None], batch["patches"].to(frames.dtype), 0.0)
        tokens = self.selector(frames, patches).flatten(1, 2)  # (B, T(1+k), D), frame-major
        token_mask = mask.repeat_interleave(1 + self.topk, 1)
        unit_frames = torch.where(mask[..., None], _unit(torch.where(mask[..., None], frames, 1.0)), 0.0)
        return {
            "video": video @ self.video_proj,
            "frames": unit_frames,
            "frame_bias": mask_bias(mask, frames.dtype),
            "tokens": tokens @ self.patch_proj,
            "token_bias": mask_bias(token_mask, frames.dtype),
        }

    def level_scores(self, text: Batch, video: Batch) -> list[torch.Tensor]:
        """[video-sentence, sentence-frame, word-patch / scale], each (Bq, Bv)."""
        scale = self.logit_scale()
        l_vid = (text["sentence"] @ self.sentence_proj) @ video["video"].t()
        frame_sim = torch.einsum("qd,vtd->qvt", text["sentence"], video["frames"])
        l_frm = isa(frame_sim, self.frame_isa, video["frame_bias"][None], self.tau)
        return [l_vid, l_frm, self.patch_level(text, video) / scale]

    def gallery_state(self, video: Batch, bank_text: Batch | None, block: tuple[int, int]) -> Batch:
        """With ``sinkhorn=bank``, UCoFiA's inference bias: each level's logits of the bank captions
        against the whole gallery (scored in ``block``s), balanced by ``sinkhorn_iters`` Sinkhorn-Knopp
        iterations; the log column scalings (log-softmax over the gallery) of the three levels are
        averaged into a per-video ``offset`` (score units). It reads the gallery and training captions,
        never the test queries (inductive). Float64, so the offset does not depend on the block."""
        if self.sinkhorn == "none":
            return video
        if bank_text is None:
            raise VtrbenchError(
                "ucofia sinkhorn=bank needs a bank of training captions at evaluation "
                "(evaluate_head(..., bank=the train split)); or set sinkhorn=none"
            )
        nb, nv = next(iter(bank_text.values())).shape[0], next(iter(video.values())).shape[0]
        scale = self.logit_scale().double()
        rows: list[list[torch.Tensor]] = []
        with torch.no_grad():
            for i in range(0, nb, block[0]):
                t = {k: v[i : i + block[0]] for k, v in bank_text.items()}
                parts = [
                    torch.stack(self.level_scores(t, {k: v[j : j + block[1]] for k, v in video.items()}))
                    for j in range(0, nv, block[1])
                ]
                rows.append(torch.cat(parts, 2).double())
            logits = torch.cat(rows, 1) * scale  # (3, bank, gallery): UCoFiA's three logit matrices
            offset = torch.stack([sinkhorn_video_bias(m, self.sinkhorn_iters) for m in logits]).mean(0)
        return {**video, "offset": (offset / scale).to(next(iter(video.values())).dtype)}

    def patch_level(self, text: Batch, video: Batch) -> torch.Tensor:
        """UCoFiA's word-patch score of a block: the two ISA orders averaged, (Bq, Bv). Without
        autograd (evaluation) the first ISAs run over chunks of videos (:func:`isa_both_chunked`):
        the same values, the block's (Bq, L, Bv, N) tensors never built."""
        keep = _used_width(text["mask"])
        words, w_bias = text["words"][:, :keep], mask_bias(text["mask"][:, :keep], text["words"].dtype)
        tokens, p_bias = video["tokens"], video["token_bias"]
        (nq, nw, d), (nv, npt) = words.shape, p_bias.shape
        if torch.is_grad_enabled():
            # padded words and tokens are 0 vectors: their similarities are 0, finite, as isa needs
            sim = (words.reshape(nq * nw, d) @ tokens.reshape(nv * npt, d).t()).view(nq, nw, nv, npt)
            # over patches, for each word: (Bq, L, Bv)
            per_word = isa(sim, self.patch_isa, p_bias[None, None], self.tau)
            # over words (axis 1 of (Bq, L, Bv N), no transpose), for each patch: (Bq, Bv N)
            per_patch = isa(sim.view(nq, nw, nv * npt), self.word_isa, w_bias[:, :, None], self.tau, dim=1)
        else:
            isa_weights = (self.patch_isa, self.word_isa)
            per_word, per_patch = isa_both_chunked(words, tokens, w_bias, p_bias, isa_weights, self.tau)
        # then over words of the per-word scores, and over patches of the per-patch ones: (Bq, Bv)
        v2w = isa(per_word, self.word_isa2, w_bias[:, :, None], self.tau, dim=1)
        s2f = isa(per_patch.view(nq, nv, npt), self.patch_isa2, p_bias[None], self.tau)
        return (s2f + v2w) / 2

    def describe(self) -> dict[str, Any]:
        return {
            "topk": self.topk,
            "topk_samples": self.topk_samples,
            "topk_sigma": self.topk_sigma,
            "tau": self.tau,
            "isa_words": self.isa_words,
            "isa_frames": self.isa_frames,
            "sinkhorn": self.sinkhorn,
            "sinkhorn_iters": self.sinkhorn_iters,
            "layers": self.layers,
            "init": self.init,
            "heads": self.heads,
            "max_frames": self.max_frames,
            "activation": self.activation,
            **self.scale_options(),
        }

    def label(self) -> str:
        """e.g. ``ucofia[init=clip]``, ``ucofia[topk=4,tau=0.05]``: the options off their defaults."""
        defaults = {
            "topk": DEFAULT_TOPK,
            "topk_samples": DEFAULT_TOPK_SAMPLES,
            "topk_sigma": DEFAULT_TOPK_SIGMA,
            "tau": DEFAULT_TAU,
            "isa_words": DEFAULT_ISA_WORDS,
            "isa_frames": DEFAULT_ISA_FRAMES,
            "sinkhorn": DEFAULT_SINKHORN,
            "sinkhorn_iters": DEFAULT_SINKHORN_ITERS,
            "layers": DEFAULT_LAYERS,
            "max_frames": DEFAULT_MAX_FRAMES,
            "activation": DEFAULT_ACTIVATION,
        }
        extras = [
            f"{k}={getattr(self, k):g}" if isinstance(v, float) else f"{k}={getattr(self, k)}"
            for k, v in defaults.items()
            if getattr(self, k) != v
        ]
        extras += [f"init={self.init}"] if self.init != DEFAULT_INIT else []
        return bracket_label(self.head_name, extras + self.scale_label())


def sinkhorn_video_bias(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """UCoFiA's ``sinkhorn_knopp``'s video bias of a (queries, gallery) logit matrix: with
    ``K = exp(logits - max)``, ``b = 1 / K.sum(0)``, then ``iters`` times ``a = 1 / (K b)``,
    ``b = 1 / (a K)``; returns ``log_softmax(log b)`` over the gallery (the constant ``- max`` drops out)."""
    k = (logits - logits.max()).exp()
    b = 1.0 / k.sum(0)
    for _ in range(iters):
        a = 1.0 / (k @ b)
        b = 1.0 / (a @ k)
    return torch.log_softmax(b.log(), 0)


def isa_both_chunked(
    words: torch.Tensor,
    tokens: torch.Tensor,
    word_bias: torch.Tensor,
    token_bias: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor],
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Without autograd: the word-token similarities S (Bq, L, Bv, N) of (Bq, L, D) ``words`` and
    (Bv, N, D) ``tokens`` and their two first ISAs, :func:`isa` over tokens (``weights[0]``, per word:
    (Bq, L, Bv)) and over words (``weights[1]``, per token: (Bq, Bv N)), the same operations on the
    same values as :func:`isa` on the whole S. S is built :data:`EVAL_CHUNK` elements (whole videos)
    at a time into three buffers allocated once and rewritten in place (``out=``), so that the 15
    passes over it (the product, seven per ISA) stay in cache and none allocates; each pair's values
    depend on its own caption and video only, whatever the chunk."""
    (nq, nw, d), (nv, npt) = words.shape, token_bias.shape
    per_video = nq * nw * npt
    step = max(1, min(nv, EVAL_CHUNK // per_video))
    sim_buf, first_buf, second_buf = (words.new_empty(per_video * step) for _ in range(3))
    per_word, per_patch = words.new_empty(nq, nw, nv), words.new_empty(nq, nv * npt)
    words_2d, w_bias = words.reshape(nq * nw, d), word_bias[:, :, None]
    for v in range(0, nv, step):
        c = min(step, nv - v)
        m, size = c * npt, per_video * c
        sim, first, second = sim_buf[:size], first_buf[:size], second_buf[:size]
        torch.mm(words_2d, tokens[v : v + c].reshape(m, d).t(), out=sim.view(nq * nw, m))
        for shape, dim, bias, weight, out in (
            ((nq, nw, c, npt), -1, token_bias[v : v + c], weights[0], per_word[:, :, v : v + c]),
            ((nq, nw, m), 1, w_bias, weights[1], per_patch[:, v * npt : v * npt + m]),
        ):
            work = (first.view(shape), second.view(shape))
            isa(sim.view(shape), weight, bias, tau, dim, work=work, out=out)
    return per_word, per_patch


def _used_width(mask: torch.Tensor) -> int:
    """1 + the last position of a (B, N) mask that some item uses (1 when none does): words past it
    are padding in every caption of the block, and the block's cost is linear in the words kept."""
    used = mask.any(0).nonzero()
    return int(used.max()) + 1 if used.numel() else 1


def _bounded_int(option: str, value: Any, high: int) -> int:
    n = positive_int("ucofia", option, value)
    if n > high:
        raise VtrbenchError(f"ucofia option {option} must be at most {high}, got {value!r}")
    return n


def _positive_float(option: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0.0 < float(value) <= 10.0):
        raise VtrbenchError(f"ucofia option {option} must be a number in (0, 10], got {value!r}")
    return float(value)


__all__ = ["MASK_BIAS", "CoarseToFineHead", "PairwiseHead", "PatchSelector", "UCoFiAHead", "isa", "mask_bias"]
