"""``camoe``: vtrbench's documented reconstruction of CAMoE (METHODS.md section 6).

No official CAMoE model code exists (the authors released only the DSL loss), so
every choice below is an explicit, reported option rather than a guess hidden in
the code.

Video experts, each (B, T, D) frames → one unit vector per video:

- ``fusion``: position embeddings + pre-LN temporal transformer + input residual,
  unit per frame, masked mean, unit (the seqTransf global stream);
- ``action``: the same over [frame ; frame − previous frame] projected back to D
  (the projection starts as [I, 0], i.e. at the fusion input, and learns how much
  motion to mix in);
- ``entity``: per-frame residual MLP, unit per frame, masked max over time (order
  free); with ``patches=True`` each frame first adds an attention-pooled summary
  of its patch tokens;
- ``scene``: masked mean of unit frames through a residual linear map, unit.

Text streams, one per expert, from the token features (each through its own
residual linear adapter, then unit): ``fusion`` and ``scene`` use the EOT
(sentence) feature; with ``streams="pos"`` ``action`` averages the verb tokens
and ``entity`` the noun tokens (a caption with none falls back to EOT); with
``streams="learned"`` those two streams are learned attention over the valid
tokens instead (one query vector per expert, zero-initialised so it starts as
the plain token mean); ``streams="eot"`` uses the sentence for every expert.
``learned`` replaces exactly what the POS masks provide, so pos / learned / eot
differ only in how the action and entity streams are built.

Gate: g(t) = softmax(W · LN(EOT)) over the chosen experts (text only), or 1/K with
``gate="uniform"``; with one expert both are the constant 1 and no gate exists.

Temporal experts (``fusion``, ``action``): ``layers`` (2) pre-LN blocks each; ``init="clip"``
starts both from CLIP's text positional embedding and text layers 0..layers-1 (CLIP4Clip's
seqTransf start, see heads/seqtransf.py), ``init="random"`` from CLIP's random scheme.

Score s(t, v) = Σ_k g_k(t) cos(t_k, v_k), written as a plain dot product:
encode_text = [g_1 t_1, …, g_K t_K] (B, K·D), encode_video = [v_1, …, v_K] (B, K·D).
Experts are always laid out in sorted name order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import ADAPTED_OPTIONS, AdaptedHead, ClipStart, takes_scale_options
from vtrbench.heads._layers import (
    ACTIVATIONS,
    BOOL_OPTION,
    DEFAULT_ACTIVATION,
    DEFAULT_INIT,
    DEFAULT_MAX_FRAMES,
    INITS,
    QuickGELU,
    ResidualLinear,
    TemporalEncoder,
    adapt_unit,
    choose_one,
    eot_feature,
    init_small_normal,
    load_clip_text_layers,
    masked_max,
    masked_mean,
    mean_of_unit_frames,
    positive_int,
    resolve_heads,
    temporal_schema,
    text_inputs,
    video_inputs,
    zero_padding,
)
from vtrbench.heads.base import Batch, register_head

EXPERTS = ("action", "entity", "fusion", "scene")
STREAMS = ("pos", "learned", "eot")
GATES = ("single", "uniform")
#: Depth of each temporal expert (fusion, action): vtrbench's choice, half of seqTransf's 4.
DEFAULT_LAYERS = 2
#: The experts with a temporal transformer (the ones ``layers`` and ``init`` apply to).
TEMPORAL_EXPERTS = ("action", "fusion")
# Which POS mask feeds which expert's text stream under streams="pos".
POS_MASKS = {"action": "verb_mask", "entity": "noun_mask"}
MISSING_MASKS = (
    "camoe --streams pos needs noun/verb masks; this cache has none: "
    "re-extract with a tagger or use --streams learned|eot"
)
MISSING_PATCHES = (
    "camoe patches=True needs patch tokens; this cache has none: "
    "re-extract with patch tokens or drop the patches option"
)


class FusionExpert(nn.Module):
    """(B, T, D) frames → (B, D): temporal transformer, masked mean of unit frames."""

    def __init__(self, width: int, layers: int, heads: int, max_frames: int, activation: str) -> None:
        super().__init__()
        self.temporal = TemporalEncoder(width, layers, heads, max_frames, activation)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor | None) -> torch.Tensor:
        return mean_of_unit_frames(self.temporal(frames, mask), mask)


class ActionExpert(nn.Module):
    """(B, T, D) frames → (B, D): temporal transformer over [frame ; frame difference]."""

    def __init__(self, width: int, layers: int, heads: int, max_frames: int, activation: str) -> None:
        super().__init__()
        self.project = nn.Linear(2 * width, width)
        with torch.no_grad():
            self.project.weight.zero_()
            self.project.weight[:, :width].copy_(torch.eye(width))
            self.project.bias.zero_()
        self.temporal = TemporalEncoder(width, layers, heads, max_frames, activation)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor | None) -> torch.Tensor:
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        previous_valid = torch.cat([torch.zeros_like(mask[:, :1]), mask[:, :-1]], dim=1)
        # A difference only exists between two valid neighbours; elsewhere it is 0.
        diff = zero_padding(frames - previous, mask & previous_valid)
        x = self.project(torch.cat([frames, diff], dim=-1))
        return mean_of_unit_frames(self.temporal(x, mask), mask)


class PatchAttentionPool(nn.Module):
    """(B, T, P, D) patch tokens → (B, T, D): one learned query attending over each frame's patches.

    The query starts at zero, i.e. as the plain patch mean.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(width))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        weights = (F.normalize(patches, dim=-1) @ self.query).softmax(-1)
        return (weights.unsqueeze(-1) * patches).sum(-2)


class EntityExpert(nn.Module):
    """(B, T, D) frames [+ patches] → (B, D): per-frame residual MLP, masked max over time."""

    def __init__(self, width: int, use_patches: bool) -> None:
        super().__init__()
        self.patch_pool = PatchAttentionPool(width) if use_patches else None
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width), QuickGELU(), nn.Linear(width, width))
        init_small_normal(self.mlp[0], self.mlp[2])

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor | None) -> torch.Tensor:
        x = frames
        if self.patch_pool is not None:
            if patches is None:
                raise VtrbenchError(MISSING_PATCHES)
            x = x + self.patch_pool(patches)
        x = F.normalize(x + self.mlp(self.norm(x)), dim=-1)
        return F.normalize(masked_max(x, mask), dim=-1)


class SceneExpert(nn.Module):
    """(B, T, D) frames → (B, D): unit(A(masked mean of unit frames)), A residual linear."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.adapter = ResidualLinear(width)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor | None) -> torch.Tensor:
        return adapt_unit(self.adapter, mean_of_unit_frames(frames, mask))


def _parse_experts(experts: Any) -> tuple[str, ...]:
    names = experts.split(",") if isinstance(experts, str) else list(experts)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise VtrbenchError(f"camoe option experts is empty; choose from {', '.join(EXPERTS)}")
    for name in names:
        choose_one("camoe", "expert", name, EXPERTS)
    return tuple(sorted(set(names)))


@register_head("camoe")
class CAMoEHead(ClipStart, AdaptedHead):
    """Options: ``experts`` (subset of action/entity/fusion/scene, list or comma string; default all),
    ``streams`` ("pos" | "learned" | "eot"), ``gate`` ("single" | "uniform"), ``aux_weight``
    (weight of the mean per-expert loss the trainer adds; 0 = off), ``layers`` (depth of each
    temporal expert's transformer, 2), ``init`` ("random" here; "clip" starts the temporal experts
    from CLIP's text layers, see :meth:`init_from`), ``heads`` (8 or the largest divisor of D
    below 8; with init="clip" the backbone's), ``max_frames`` (64), ``patches`` (use cached patch
    tokens in the entity expert), ``activation`` ("quick_gelu" or "gelu"; with init="clip" the
    backbone's) and :data:`vtrbench.heads._common.ADAPTED_OPTIONS` (``adapter``: the per-stream text
    adapters; the scene expert's linear map is part of the expert and always present)."""

    head_name = "camoe"
    default_layers = DEFAULT_LAYERS
    option_schema = {
        "experts": OptionRule("names", choices=EXPERTS),
        "streams": OptionRule("choice", choices=STREAMS),
        "gate": OptionRule("choice", choices=GATES),
        "aux_weight": OptionRule("float", low=0),
        **temporal_schema(),
        "patches": BOOL_OPTION,
        **ADAPTED_OPTIONS,
    }

    search_space = {
        **AdaptedHead.search_space,
        "layers": {"low": 1, "high": 4},
        "aux_weight": {"low": 0.0, "high": 1.0},
    }

    @takes_scale_options()
    def __init__(
        self,
        embed_dim: int,
        *,
        experts: Any = EXPERTS,
        streams: str = "pos",
        gate: str = "single",
        aux_weight: float = 0.0,
        layers: int = DEFAULT_LAYERS,
        init: str = DEFAULT_INIT,
        heads: int | None = None,
        max_frames: int = DEFAULT_MAX_FRAMES,
        patches: bool = False,
        adapter: bool = True,
        activation: str = DEFAULT_ACTIVATION,
        **options: Any,
    ) -> None:
        super().__init__(embed_dim, options, adapter)
        self.experts = _parse_experts(experts)
        self.streams = choose_one("camoe", "streams", streams, STREAMS)
        self.gate = choose_one("camoe", "gate", gate, GATES)
        if isinstance(aux_weight, bool) or not isinstance(aux_weight, (int, float)) or aux_weight < 0:
            raise VtrbenchError(f"camoe option aux_weight must be a number >= 0, got {aux_weight!r}")
        self.aux_weight = float(aux_weight)
        self.layers = positive_int("camoe", "layers", layers)
        self.init = choose_one("camoe", "init", init, INITS)
        if self.init == "clip" and not self.temporal_experts:
            raise VtrbenchError(
                f"camoe init=clip applies to the temporal experts ({', '.join(TEMPORAL_EXPERTS)}); "
                f"the chosen experts {', '.join(self.experts)} have none"
            )
        self.activation = choose_one("camoe", "activation", activation, ACTIVATIONS)
        self.backbone_loaded = False
        self.heads = resolve_heads("camoe", embed_dim, heads)
        self.max_frames = positive_int("camoe", "max_frames", max_frames)
        self.patches = bool(patches)

        needs = set()
        if self.streams == "pos":
            needs |= {POS_MASKS[e] for e in self.experts if e in POS_MASKS}
        if self.patches and "entity" in self.experts:
            needs.add("patches")
        self.requires = frozenset(needs)

        builders = {
            "fusion": lambda: FusionExpert(
                embed_dim, self.layers, self.heads, self.max_frames, self.activation
            ),
            "action": lambda: ActionExpert(
                embed_dim, self.layers, self.heads, self.max_frames, self.activation
            ),
            "entity": lambda: EntityExpert(embed_dim, self.patches),
            "scene": lambda: SceneExpert(embed_dim),
        }
        self.video_experts = nn.ModuleDict({e: builders[e]() for e in self.experts})
        self.text_adapters = nn.ModuleDict({e: self.new_adapter() for e in self.experts})
        learned = [e for e in self.experts if e in POS_MASKS] if self.streams == "learned" else []
        self.stream_queries = nn.ParameterDict({e: nn.Parameter(torch.zeros(embed_dim)) for e in learned})
        # Softmax over a single expert is the constant 1: no gate parameters to (not) train.
        self.gate_norm: nn.LayerNorm | None = None
        self.gate_proj: nn.Linear | None = None
        if self.gate == "single" and len(self.experts) > 1:
            self.gate_norm = nn.LayerNorm(embed_dim)
            self.gate_proj = nn.Linear(embed_dim, len(self.experts))
            init_small_normal(self.gate_proj)

    @property
    def temporal_experts(self) -> tuple[str, ...]:
        return tuple(e for e in self.experts if e in TEMPORAL_EXPERTS)

    @classmethod
    def has_transformer(cls, options: Mapping[str, Any]) -> bool:
        """Whether a temporal expert is chosen: without one ``init`` stays at its default."""
        experts = _parse_experts(options.get("experts", EXPERTS))
        return any(e in TEMPORAL_EXPERTS for e in experts)

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """CLIP's text positions and layers into every temporal expert, as CLIP4Clip's seqTransf."""
        for expert in self.temporal_experts:
            load_clip_text_layers(self.video_experts[expert].temporal, weights)

    # ------------------------------------------------------------ parts

    def _stream(
        self, expert: str, batch: Batch, tokens: torch.Tensor, mask: torch.Tensor, eot: torch.Tensor
    ) -> torch.Tensor:
        """The raw (B, D) text feature that feeds ``expert``'s adapter."""
        if expert not in POS_MASKS or self.streams == "eot":
            return eot
        if self.streams == "learned":
            scores = F.normalize(tokens, dim=-1) @ self.stream_queries[expert]
            weights = scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(-1)
            return (weights.unsqueeze(-1) * tokens).sum(1)
        key = POS_MASKS[expert]
        if key not in batch:
            raise VtrbenchError(MISSING_MASKS)
        stream_mask = batch[key].bool() & mask
        has_tokens = stream_mask.any(1, keepdim=True)
        return torch.where(has_tokens, masked_mean(tokens, stream_mask), eot)

    def text_parts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm per-expert text streams (B, K, D) and gate weights (B, K), experts sorted."""
        tokens, mask, eot_index = text_inputs(batch, self.log_logit_scale.dtype)
        eot = eot_feature(tokens, eot_index)
        streams = torch.stack(
            [
                adapt_unit(self.text_adapters[e], self._stream(e, batch, tokens, mask, eot))
                for e in self.experts
            ],
            dim=1,
        )
        if self.gate_proj is not None and self.gate_norm is not None:
            gates = self.gate_proj(self.gate_norm(eot)).softmax(-1)
        else:
            gates = eot.new_full((eot.shape[0], len(self.experts)), 1.0 / len(self.experts))
        return streams, gates

    def video_parts(self, batch: Batch) -> torch.Tensor:
        """Unit-norm per-expert video embeddings (B, K, D), experts sorted."""
        self.check_clip_loaded()
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        patches = batch.get("patches") if self.patches else None
        if patches is not None:
            patches = zero_padding(patches.to(frames.dtype), mask)
        return torch.stack([self.video_experts[e](frames, mask, patches) for e in self.experts], dim=1)

    # ------------------------------------------------------------ Head interface

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, K·D): gate-weighted unit streams [g_1 t_1, …, g_K t_K]."""
        streams, gates = self.text_parts(batch)
        return (gates.unsqueeze(-1) * streams).flatten(1)

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, K·D): unit expert embeddings [v_1, …, v_K]."""
        return self.video_parts(batch).flatten(1)

    def training_logits(self, text: Batch, video: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main (B, B) logits; with aux_weight > 0 also one (B, B) matrix scale·cos(t_k, v_k) per expert."""
        streams, gates = self.text_parts(text)
        videos = self.video_parts(video)
        scale = self.logit_scale()
        main = self.emcl_logits((gates.unsqueeze(-1) * streams).flatten(1), videos.flatten(1))
        if self.aux_weight <= 0:
            return main, []
        return main, [scale * (streams[:, k] @ videos[:, k].t()) for k in range(len(self.experts))]

    def gate_weights(self, text: Batch) -> dict[str, torch.Tensor]:
        """{expert: (B,) gate weight}."""
        _, gates = self.text_parts(text)
        return {e: gates[:, k] for k, e in enumerate(self.experts)}

    def describe(self) -> dict[str, Any]:
        return {
            "experts": list(self.experts),
            "streams": self.streams,
            "gate": self.gate,
            "aux_weight": self.aux_weight,
            "layers": self.layers,
            "init": self.init,
            "heads": self.heads,
            "max_frames": self.max_frames,
            "patches": self.patches,
            "adapter": self.adapter,
            "activation": self.activation,
            **self.scale_options(),
            **self.emcl_describe(),
        }

    def label(self) -> str:
        """e.g. ``camoe[action,entity,fusion,scene;pos;single;layers=2;init=clip]``: the temporal
        experts' depth and start are stated whenever there is a temporal expert; other
        non-default extras are appended."""
        parts = [",".join(self.experts), self.streams, self.gate]
        if self.aux_weight > 0:
            parts.append(f"aux={self.aux_weight:g}")
        if self.temporal_experts:
            parts += [f"layers={self.layers}", f"init={self.init}"]
            if self.activation != DEFAULT_ACTIVATION:
                parts.append(self.activation)
        if self.patches:
            parts.append("patches")
        if not self.adapter:
            parts.append("no-adapter")
        parts += self.scale_label() + self.emcl_label()
        return f"camoe[{';'.join(parts)}]"
