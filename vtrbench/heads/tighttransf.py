"""``tighttransf`` (CLIP4Clip tightTransf), pairwise, on frozen features.

For a caption and a video, the sequence [caption ; frames] (the caption is its EOT
feature, one token, as in CLIP4Clip, or with ``text="tokens"`` its valid token
features) gets position embeddings (one table over the joint sequence: caption token i
at row i, frame j at row 1 + j after the EOT, as CLIP4Clip, or at row 77 + j after the
77-token caption slot, so that caption padding never moves the frames) and type
embeddings (caption = 0, frame = 1), goes through a pre-LN transformer (QuickGELU,
key padding mask) of width D, and is scored by CLIP4Clip's pooler and score head::

    h = LN(transformer(x + pos + type))[position 0]
    s(t, v) = Linear_{D→1}(QuickGELU(Linear_{D→D}(h)))

The score is used as a logit directly (CLIP4Clip multiplies nothing), so the head's
logit scale is fixed at 1 and not trained (the head has no ``logit_scale`` option).

``init="clip"`` starts where CLIP4Clip starts (modeling.py ``from_pretrained``, sim_header
"tightTransf"): the position table's first rows are CLIP's text positional embedding (all
77 with ViT-B CLIP: the caption slot and, with ``text="eot"``, every frame row) and transformer
layer i is CLIP's text layer i, from the backbone weights the cache stores; the pooler and the
score head stay random (CLIP has none). ``init="random"`` uses CLIP's random scheme. As for
``seqtransf``, ``vtrbench train`` picks ``clip`` when the cache holds fitting weights. The
pooler's LayerNorm uses eps 1e-12 as CLIP4Clip's ``CrossPooler`` (its TF-style LayerNorm).

vtrbench differences: CLIP4Clip's embedding module declares token-type embeddings but leaves
them commented out, vtrbench adds them as the issue and the paper describe, zero-initialised
so that the untrained head computes exactly CLIP4Clip's function; with ``text="tokens"`` the
frame rows (77 + j) lie past CLIP's context and keep their random start; no dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.heads._common import ClipStart, bracket_label
from vtrbench.heads._layers import (
    ACTIVATIONS,
    BOOL_OPTION,
    DEFAULT_ACTIVATION,
    DEFAULT_INIT,
    INITS,
    LAYER_NORM_EPS,
    QuickGELU,
    Transformer,
    choose_one,
    eot_feature,
    init_small_normal,
    load_clip_into,
    option_names,
    positive_int,
    reject_unknown_options,
    resolve_heads,
    temporal_schema,
    text_inputs,
    video_inputs,
)
from vtrbench.heads.base import Batch, PairwiseHead, register_head

DEFAULT_LAYERS = 4  # CLIP4Clip's cross_num_hidden_layers
TEXT_MODES = ("eot", "tokens")
MAX_WORDS = 77  # CLIP's context length: the caption slot of the position table
MAX_FRAMES = 64  # the longest frame sequence vtrbench samples


@register_head("tighttransf")
class TightTransfHead(ClipStart, PairwiseHead):
    """Options: ``text`` ("eot" as CLIP4Clip | "tokens"), ``layers`` (4), ``heads`` (8 or the largest
    divisor of D below 8; with init="clip" the backbone's), ``types`` (True: token-type embeddings),
    ``init`` ("random" here; "clip" copies CLIP's positions and text layers, see :meth:`init_from`),
    ``activation`` ("quick_gelu" as CLIP4Clip, or "gelu"; with init="clip" the backbone's)."""

    head_name = "tighttransf"
    default_layers = DEFAULT_LAYERS
    # CLIP fills the position rows inside its context and the frame rows past it stay random, so no
    # frame count makes CLIP's start impossible (tighttransf has no max_frames): check against 1
    clip_frames = 1
    search_space = {**PairwiseHead.search_space, "layers": {"low": 1, "high": 4}}

    eval_block = (32, 32)
    option_schema = {
        "text": OptionRule("choice", choices=TEXT_MODES),
        "layers": temporal_schema()["layers"],
        "heads": temporal_schema()["heads"],
        "types": BOOL_OPTION,
        "init": OptionRule("choice", choices=INITS),
        "activation": OptionRule("choice", choices=ACTIVATIONS),
    }

    def __init__(
        self,
        embed_dim: int,
        *,
        text: str = "eot",
        layers: int = DEFAULT_LAYERS,
        heads: int | None = None,
        types: bool = True,
        init: str = DEFAULT_INIT,
        activation: str = DEFAULT_ACTIVATION,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("tighttransf", unknown, option_names(type(self)))
        super().__init__(embed_dim, logit_scale_init=1.0)
        self.log_logit_scale.requires_grad_(False)
        self.text = choose_one("tighttransf", "text", text, TEXT_MODES)
        self.text_needs_tokens = self.text == "tokens"
        self.layers = positive_int("tighttransf", "layers", layers)
        self.heads = resolve_heads("tighttransf", embed_dim, heads)
        self.types = bool(types)
        self.init = choose_one("tighttransf", "init", init, INITS)
        self.activation = choose_one("tighttransf", "activation", activation, ACTIVATIONS)
        self.backbone_loaded = False
        d = embed_dim
        self.position = nn.Parameter(torch.randn(MAX_WORDS + MAX_FRAMES, d) * 0.01)
        self.type_embedding = nn.Parameter(torch.zeros(2, d)) if self.types else None
        self.transformer = Transformer(d, self.layers, self.heads, self.activation)
        self.pool_norm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)  # CLIP4Clip CrossPooler's ln_pool
        self.pool_dense = nn.Linear(d, d)
        self.pool_act = QuickGELU()
        self.score_head = nn.Linear(d, 1)
        init_small_normal(self.pool_dense, self.score_head)

    def clamp_logit_scale(self) -> None:
        pass  # fixed at 1

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """CLIP's text layers into the cross transformer and CLIP's text positions into the position
        table, as CLIP4Clip's ``from_pretrained`` does for tightTransf."""
        load_clip_into(self.transformer, self.position, weights)

    def text_state(self, batch: Batch) -> Batch:
        """caption tokens (B, Lt, D) with their mask (B, Lt); Lt = 1 for ``text="eot"``."""
        tokens, mask, eot = text_inputs(batch, self.log_logit_scale.dtype)
        if self.text == "eot":
            return {"tokens": eot_feature(tokens, eot)[:, None], "mask": mask.new_ones(tokens.shape[0], 1)}
        return {"tokens": tokens, "mask": mask}

    def video_state(self, batch: Batch) -> Batch:
        frames, mask = video_inputs(batch, self.log_logit_scale.dtype)
        return {"frames": frames, "mask": mask}

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) scores: the cross transformer runs once per pair, in one (Bq·Bv) batch."""
        self.check_clip_loaded()
        tokens, frames = text["tokens"], video["frames"]
        bq, lt, d = tokens.shape
        bv, t, _ = frames.shape
        if lt > MAX_WORDS or t > MAX_FRAMES:
            raise VtrbenchError(
                f"tighttransf takes at most {MAX_WORDS} caption tokens and {MAX_FRAMES} frames, "
                f"got {lt} and {t}"
            )
        frame_start = 1 if self.text == "eot" else MAX_WORDS
        position = torch.cat([self.position[:lt], self.position[frame_start : frame_start + t]])
        x = torch.cat([tokens[:, None].expand(bq, bv, lt, d), frames[None].expand(bq, bv, t, d)], dim=2)
        x = x + position
        if self.type_embedding is not None:
            x = x + torch.cat([self.type_embedding[:1].expand(lt, d), self.type_embedding[1:].expand(t, d)])
        mask = torch.cat([text["mask"][:, None].expand(bq, bv, lt), video["mask"][None].expand(bq, bv, t)], 2)
        h = self.transformer(x.reshape(bq * bv, lt + t, d), mask.reshape(bq * bv, lt + t))
        pooled = self.pool_act(self.pool_dense(self.pool_norm(h[:, 0])))
        return self.score_head(pooled).reshape(bq, bv)

    def describe(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "layers": self.layers,
            "heads": self.heads,
            "types": self.types,
            "init": self.init,
            "activation": self.activation,
        }

    def label(self) -> str:
        """e.g. ``tighttransf``, ``tighttransf[init=clip]``, ``tighttransf[tokens,layers=2]``: a CLIP
        start is stated; a bare name is the random start, as every tighttransf result before
        init=clip existed."""
        extras = [] if self.text == "eot" else [self.text]
        if self.layers != DEFAULT_LAYERS:
            extras.append(f"layers={self.layers}")
        if self.init != DEFAULT_INIT:
            extras.append(f"init={self.init}")
        if self.activation != DEFAULT_ACTIVATION:
            extras.append(self.activation)
        if not self.types:
            extras.append("no-types")
        return bracket_label(self.head_name, extras)
