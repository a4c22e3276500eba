"""``tmass`` (T-MASS, Wang et al., CVPR 2024): the caption as a stochastic embedding, on X-Pool's
caption-conditioned pooling (:class:`vtrbench.heads.xpool.XPoolHead`: its modules, states and
attention weights, reused, not copied).

Official code: github.com/Jiamian-Wang/T-MASS-text-video-retrieval at commit 8bda3f97
(``modules/stochastic_module.py``, ``model/clip_stochastic.py``, ``trainer/trainer_stochastic.py``).
For a caption t (raw-scale EOT feature) and a video v with frames f_1..f_T::

    c_j(t, v) = cos(t, f_j)                          the caption-frame cosine profile (T values)
    R(t, v)   = W c + b                              LinearCosRadius: W (D, frames), identity start
    t_s       = t + ε ⊙ exp(R(t, v))                 ε ~ U[0, 1) (official default) or N(0, std²)
    o(t, v)   = X-Pool's pooled video conditioned on t
    s(t, v)   = cos(t_s, o(t, v))

Training (one ε per caption, its radius taken against its own video, as the official trainer):
main logits = scale · cos(t_s,i, o(t_i, v_j)); the support text
t_sup,i = (ō_i - t_i)/|ō_i - t_i| ⊙ exp(R(t_i, v_i)) + t_i, with ō_i the mean over the batch's
captions of video i's pooled vectors, gives the auxiliary logits scale · cos(t_sup,i, o(t_i, v_j)),
weighted by ``aux_weight`` (the official ``support_loss_weight``); the run's loss applies to both.

Inference (the official trainer's rule): ``samples`` draws ε_1..ε_K per pair, the score is the
best, max_k cos(t + ε_k ⊙ exp(R(t, v)), o(t, v)). Per pair it needs only dot products, so no
(caption, video, sample, D) tensor is formed::

    (t + ε⊙r)·o = t·o + ε·(r⊙o)        |t + ε⊙r|² = |t|² + 2 ε·(r⊙t) + ε²·(r⊙r)

three (K, D) x (D, c) products per caption, over a block's videos a tile of c at a time: the tile's
pooled vectors o and radii r ((Bq, c, D), at most ``TILE_ELEMENTS`` values each) are made and used
while they are in cache, so no (Bq, Bv, D) tensor of the block goes through memory (each pair is
computed alone: the tile size does not change a pair's value beyond matmul rounding, and
tests/eval/test_evaluate_ties.py checks the counts for one-video and ragged tiles).
The noise of a caption is drawn from a generator
seeded by the head's ``noise_seed`` (drawn from the run's seed when the head is built, kept in
the checkpoint and recorded in the result) and a hash of the caption's feature, so it does not
depend on blocks, chunks or batch order. Deliberate difference: the official evaluation draws
fresh ε for every video; here a caption's K draws are shared by every video it is scored against
(common random numbers), which keeps the noise O(captions) instead of O(pairs).

vtrbench differences, beyond X-Pool's (see xpool.py): t is the raw-scale caption through X-Pool's
text adapter (|t| · unit(A(unit(t))), exactly t with the adapter at its identity start); a padded
frame's cosine is 0 (the official code always samples ``num_frames`` frames); the official
radius module's unused ``learnable_scalar`` is left out.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule, check_head_options
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import bracket_label, takes_scale_options
from vtrbench.heads._layers import eot_input, video_inputs
from vtrbench.heads.base import Batch, register_head
from vtrbench.heads.xpool import DEFAULT_HEADS, XPoolHead

#: exp(x) = exp2(x · log2 e): in place with its multiply, 1.6-1.9x cheaper than torch's exp here
#: (benchmarks/tmass_ops.py)
LOG2_E = 1.4426950408889634
#: a tile of (captions, videos, D) per-pair values stays under this many elements (2 MiB in float32)
TILE_ELEMENTS = 2**19

#: Official MSR-VTT configuration (README's training command, config/all_config.py defaults).
DEFAULT_SAMPLES = 20  # --stochasic_trials
DEFAULT_AUX_WEIGHT = 0.8  # --support_loss_weight (MSR-VTT command; the argparse default is 0)
PRIORS = ("uniform01", "normal")  # --stochastic_prior
DEFAULT_PRIOR = PRIORS[0]
DEFAULT_PRIOR_STD = 1.0  # --stochastic_prior_std (normal prior only)
DEFAULT_FRAMES = 12  # --num_frames: the width of LinearCosRadius's input
#: Bounds: K samples cost 3 K D multiply-adds per pair (K = 20: 60 D), frames D each.
MAX_SAMPLES = 1024
MAX_FRAMES = 1024

TMASS_OPTIONS: dict[str, OptionRule] = {
    "samples": OptionRule("int", low=1, high=MAX_SAMPLES),
    "aux_weight": OptionRule("float", low=0.0, high=100.0),
    "prior": OptionRule("choice", choices=PRIORS),
    "prior_std": OptionRule("float", low=0.0, low_open=True, high=100.0),
    "frames": OptionRule("int", low=1, high=MAX_FRAMES),
}


class LinearCosRadius(nn.Module):
    """T-MASS's radius R(t, v) = W c(t, v) + b, a linear function of the caption-frame cosine
    profile c (``frames`` values), W (D, frames) starting at the identity (eye) and b at 0, as the
    official ``LinearCosRadius``. A video with T < ``frames`` frames uses W's first T columns (the
    profile padded with zeros); plugin heads may subclass it and override :meth:`forward`."""

    def __init__(self, frames: int, dim: int) -> None:
        super().__init__()
        self.frames = frames
        self.linear = nn.Linear(frames, dim)
        nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        """profile (..., T) → R (..., D)."""
        t = profile.shape[-1]
        if t > self.frames:
            raise VtrbenchError(
                f"tmass option frames={self.frames} is less than the {t} frames per video of the "
                f"features: pass --head-option frames={t} (or more)"
            )
        # the bias as one more column against a constant 1: one matrix product writes R, with no
        # separate pass over the (pairs, D) output to broadcast the bias first (as addmm does)
        ones = torch.ones_like(profile[..., :1])
        weight = torch.cat([self.linear.weight[:, :t], self.linear.bias[:, None]], 1)
        return torch.cat([profile, ones], -1) @ weight.t()


@register_head("tmass")
class TMassHead(XPoolHead):
    """Options: X-Pool's (``heads``, ``adapter``, logit scale) and :data:`TMASS_OPTIONS`:
    ``samples`` (K at inference), ``aux_weight`` (support-text loss weight), ``prior``
    (uniform01 | normal), ``prior_std`` (normal only), ``frames`` (the radius's input width)."""

    head_name = "tmass"
    search_space = {
        **XPoolHead.search_space,
        "aux_weight": {"low": 0.0, "high": 1.0},
        "samples": {"choices": [1, 5, 10, 20, 40]},
        "prior": {"choices": list(PRIORS)},
    }
    eval_block = (32, 256)
    option_schema = {**XPoolHead.option_schema, **TMASS_OPTIONS}

    @takes_scale_options()
    def __init__(
        self,
        embed_dim: int,
        *,
        heads: int = DEFAULT_HEADS,
        samples: int = DEFAULT_SAMPLES,
        aux_weight: float = DEFAULT_AUX_WEIGHT,
        prior: str = DEFAULT_PRIOR,
        prior_std: float = DEFAULT_PRIOR_STD,
        frames: int = DEFAULT_FRAMES,
        adapter: bool = True,
        **options: Any,
    ) -> None:
        own = {"samples": samples, "aux_weight": aux_weight, "prior": prior, "prior_std": prior_std}
        own = check_head_options(self.head_name, {**own, "frames": frames}, TMASS_OPTIONS)
        self.check_option_combination(own)
        super().__init__(embed_dim, heads=heads, adapter=adapter, **options)
        self.samples, self.aux_weight = int(own["samples"]), float(own["aux_weight"])
        self.prior, self.prior_std = str(own["prior"]), float(own["prior_std"])
        self.radius = LinearCosRadius(int(own["frames"]), embed_dim)
        # Drawn last, from the generator the run seeded: the inference noise follows the run's seed,
        # and the parameters above are drawn exactly as xpool's. A buffer: checkpoints keep it.
        seed = int(torch.randint(0, 2**62, (), dtype=torch.long))
        self.register_buffer("noise_seed", torch.tensor(seed, dtype=torch.long))

    @classmethod
    def check_option_combination(cls, options: dict[str, Any], *, where: str | None = None) -> None:
        """``prior_std`` other than its default only with ``prior=normal`` (it would change the
        run id and nothing else)."""
        prior = options.get("prior", DEFAULT_PRIOR)
        if prior != "normal" and options.get("prior_std", DEFAULT_PRIOR_STD) != DEFAULT_PRIOR_STD:
            prefix = f"{where}: " if where else ""
            raise VtrbenchError(
                f"{prefix}head 'tmass' option prior_std applies only with prior=normal, not prior={prior}"
            )

    # ------------------------------------------------------------------ states

    def caption_state(self, batch: Batch) -> Batch:
        """X-Pool's caption state plus ``norm`` (B,): the raw-scale caption is norm · unit."""
        state = super().text_state(batch)
        state["norm"] = eot_input(batch, self.log_logit_scale.dtype).norm(dim=-1)
        return state

    def text_state(self, batch: Batch) -> Batch:
        """:meth:`caption_state` plus ``noise`` (B, K, D): the caption's K inference draws."""
        state = self.caption_state(batch)
        state["noise"] = self.caption_noise(eot_input(batch, torch.float32)).to(state["unit"])
        return state

    def video_state(self, batch: Batch) -> Batch:
        """X-Pool's video state with its ``slot`` replaced by ``slots`` (B, K + 2, D), the pooled
        vector's terms [γ3 ⊙ E; γ3 ⊙ e; β3] of :meth:`output_weights`, and ``unit_frames`` (B, T, D):
        unit frames, padding 0. The slots are built once per video here, not once per block."""
        state = super().video_state(batch)
        frames, _ = video_inputs(batch, self.log_logit_scale.dtype)
        state["unit_frames"] = F.normalize(frames, dim=-1)
        with torch.autocast(frames.device.type, enabled=False):
            g3, b3 = self.layer_norm3.weight, self.layer_norm3.bias
            slot = state.pop("slot") * g3
            fixed = torch.stack([g3 * self._e_const(), b3]).to(slot)
            state["slots"] = torch.cat([slot, fixed.expand(slot.shape[0], 2, -1)], 1)
        return state

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """ε of the head's prior (float32, CPU unless no generator is given)."""
        if self.prior == "normal":
            return torch.randn(shape, generator=generator) * self.prior_std
        return torch.rand(shape, generator=generator)

    def caption_noise(self, eot: torch.Tensor) -> torch.Tensor:
        """(B, K, D) draws per caption from a generator seeded by (noise_seed, the caption's float32
        feature bytes): the same caption gets the same draws however the work is cut."""
        rows = eot.detach().float().cpu().contiguous().numpy()
        seed = int(self.noise_seed).to_bytes(8, "little")
        out = []
        for row in rows:
            key = int.from_bytes(hashlib.blake2b(seed + row.tobytes(), digest_size=8).digest(), "little")
            g = torch.Generator().manual_seed(key & (2**63 - 1))
            out.append(self.draw((self.samples, self.embed_dim), g))
        if not out:
            return torch.zeros(0, self.samples, self.embed_dim)
        return torch.stack(out)

    # ------------------------------------------------------------------ scoring

    def log_radius(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv, D) R(t, v) of every caption against every video."""
        uf = video["unit_frames"]
        nv, t = uf.shape[0], uf.shape[1]
        profile = (text["unit"] @ uf.reshape(nv * t, -1).t()).view(-1, nv, t)
        return self.radius(profile)

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) best of the caption's K stochastic embeddings against each pooled video."""
        a = self.attention(text, video)
        with torch.autocast(a.device.type, enabled=False):
            text = {k: v.to(a.dtype) if v.is_floating_point() else v for k, v in text.items()}
            t = text["norm"][:, None] * text["unit"]
            w, slots = self.output_weights(a, video)  # o = w · slots, (Bv, Bq, S) and (Bv, S, D)
            uf = video["unit_frames"].to(a.dtype)
            nq, nv, frames = t.shape[0], uf.shape[0], uf.shape[1]
            profile = (text["unit"] @ uf.reshape(nv * frames, -1).t()).view(nq, nv, frames)
            samples = SampleTerms(t, text["noise"])
            out = torch.empty(nq, nv, dtype=a.dtype, device=a.device)
            # Videos a tile at a time: the tile's (Bq, c, D) pooled vectors and radii stay in a
            # core's cache across their passes instead of going through memory (benchmarks/eval.py
            # --floor; same values for any tile size: tests/eval/test_evaluate_ties.py).
            step = max(1, TILE_ELEMENTS // max(1, nq * self.embed_dim))
            for j in range(0, nv, step):
                cols = slice(j, min(j + step, nv))
                o = torch.bmm(w[cols], slots[cols]).transpose(0, 1)  # (Bq, c, D), the tile's o
                r = self.radius(profile[:, cols]).mul_(LOG2_E).exp2_()  # exp(R); exp2 is faster
                out[:, cols] = samples.best(r, o)
            return out

    def output_weights(self, a: torch.Tensor, video: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """X-Pool's pooled vector as one product, o = w · [γ3 ⊙ E; γ3 ⊙ e; β3] with weights
        w = [a/(σ2 σ3), 1/σ3, 1] (see xpool.py: o = γ3 ⊙ ((a·E)/σ2 + e)/σ3 + β3); σ2, σ3 from the
        video's Gram forms. Returns w (Bv, Bq, K + 2) and the slots (Bv, K + 2, D)."""
        kk, d = a.shape[-1], float(self.embed_dim)
        at = a.transpose(0, 1)  # (Bv, Bq, K)
        gram = video["gram"].to(a.dtype)
        ga = torch.bmm(at, gram[..., : 2 * kk])
        gc = (ga[..., :kk] * at).sum(-1)  # aᵀ C Cᵀ a
        ge = (ga[..., kk:] * at).sum(-1)  # aᵀ E Eᵀ a
        he = (at * gram[:, None, :, 3 * kk]).sum(-1)  # a · (E e)
        e = self._e_const()
        inv2 = torch.rsqrt(gc / d + self.layer_norm2.eps)
        inv3 = torch.rsqrt((ge * inv2 * inv2 + 2.0 * he * inv2 + e.dot(e)) / d + self.layer_norm3.eps)
        w = torch.cat([at * (inv2 * inv3)[..., None], inv3[..., None], torch.ones_like(inv3)[..., None]], -1)
        return w, video["slots"].to(a.dtype)

    def training_logits(self, text: Batch, video: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main (B, B) logits with one stochastic draw per caption, and (with ``aux_weight`` > 0) the
        support-text logits (module docstring); caption i's video is video i, as the trainer's
        batches pair them. An unpaired (Bq, Bv) batch (the plugin contract's dry runs) takes each
        pair's own radius and has no support text (there is no "own video" to point at)."""
        ts, vs = self.caption_state(text), self.video_state(video)
        a = self.attention(ts, vs)
        with torch.autocast(a.device.type, enabled=False):
            w, slots = self.output_weights(a, vs)
            o = torch.bmm(w, slots).transpose(0, 1)  # (Bq, Bv, D): caption i, video j
            ts = {k: v.to(o.dtype) if v.is_floating_point() else v for k, v in ts.items()}
            t = ts["norm"][:, None] * ts["unit"]
            uf = vs["unit_frames"].to(o.dtype)
            eps = self.draw(tuple(t.shape)).to(t)
            scale = self.logit_scale().to(o.dtype)
            if t.shape[0] != uf.shape[0]:
                r = self.log_radius(ts, {"unit_frames": uf}).exp()
                stochastic = F.normalize(t[:, None, :] + eps[:, None, :] * r, dim=-1)
                return scale * (stochastic * F.normalize(o, dim=-1)).sum(-1), []
            radius = self.radius(torch.einsum("bd,btd->bt", ts["unit"], uf)).exp()  # own video
            logits = scale * pair_cosine(t + eps * radius, o)
            if self.aux_weight <= 0:
                return logits, []
            pointer = o.mean(0) - t  # video i's pooled vectors averaged over the batch's captions
            support = F.normalize(pointer, dim=-1, eps=0.0) * radius + t
            return logits, [scale * pair_cosine(support, o)]

    # ------------------------------------------------------------------ options

    def describe(self) -> dict[str, Any]:
        return {
            "heads": self.heads,
            "adapter": self.adapter,
            "samples": self.samples,
            "aux_weight": self.aux_weight,
            "prior": self.prior,
            "prior_std": self.prior_std,
            "frames": self.radius.frames,
            **self.scale_options(),
        }

    def label(self) -> str:
        extras = [] if self.heads == DEFAULT_HEADS else [f"heads={self.heads}"]
        if self.samples != DEFAULT_SAMPLES:
            extras.append(f"samples={self.samples}")
        if self.aux_weight != DEFAULT_AUX_WEIGHT:
            extras.append(f"aux={self.aux_weight:g}")
        if self.prior != DEFAULT_PRIOR:
            extras.append(f"prior={self.prior}")
        if self.prior_std != DEFAULT_PRIOR_STD:
            extras.append(f"prior_std={self.prior_std:g}")
        if self.radius.frames != DEFAULT_FRAMES:
            extras.append(f"frames={self.radius.frames}")
        return bracket_label(self.head_name, extras + self.option_extras())

    def eval_protocol(self) -> dict[str, Any]:
        """What makes the inference noise reproducible (goes into the result's protocol)."""
        return {
            "noise_seed": int(self.noise_seed),
            "samples": self.samples,
            "noise": "per caption: seeded by noise_seed and the caption's feature; shared by every video",
        }


def pair_cosine(t: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """(B, B) cos(t_i, o_ij) of one vector per caption against its pooled videos (B, B, D)."""
    return torch.einsum("bd,bvd->bv", F.normalize(t, dim=-1), F.normalize(o, dim=-1))


class SampleTerms:
    """A block's captions and their K inference draws, with the per-caption factors that
    :meth:`best` reuses for every tile of videos: ε (Bq, K, D), 2 ε ⊙ t, ε ⊙ ε and |t|²."""

    def __init__(self, t: torch.Tensor, eps: torch.Tensor) -> None:
        self.t, self.eps = t, eps
        self.eps_t2 = 2.0 * eps * t[:, None, :]
        self.eps_sq = eps * eps
        self.tt = (t * t).sum(-1)

    def best(self, r: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """max_k cos(t_q + ε_qk ⊙ r_qv, o_qv) for r and o (Bq, c, D) → (Bq, c).
        By the expansions of the module docstring, three (K, D) x (D, c) products per caption.
        ``r`` is overwritten (with r ⊙ r)."""
        to = torch.linalg.vecdot(o, self.t[:, None, :])  # t · o; 2.8-4.3x cheaper than a bmm (tmass_ops.py)
        oo = torch.linalg.vecdot(o, o)
        sq = torch.baddbmm(self.tt[:, None, None], self.eps_t2, r.transpose(1, 2))  # |t|² + 2 ε·(r⊙t)
        num = torch.bmm(self.eps, (r * o).transpose(1, 2))  # ε · (r ⊙ o), (Bq, K, c)
        num += to[:, None, :]
        sq.baddbmm_(self.eps_sq, r.mul_(r).transpose(1, 2))  # + ε² · (r ⊙ r)
        # F.normalize's eps on each norm: a zero vector divides by 1e-12
        den = sq.clamp_min_(0.0).sqrt_().clamp_min_(1e-12) * oo.sqrt().clamp_min(1e-12)[:, None, :]
        return (num / den).amax(1)
