"""Building blocks shared by the heads.

Masking policy: padded frames and tokens are zeroed on the way in
(:func:`video_inputs`, :func:`text_inputs`) and then excluded from every
attention, mean and max, so whatever a cache holds in its padding (zeros,
garbage, even NaN) cannot reach an embedding.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtrbench.config import OptionRule
from vtrbench.errors import VtrbenchError
from vtrbench.registry import unknown_name_message

DEFAULT_ATTENTION_HEADS = 8
DEFAULT_MAX_FRAMES = 64


# ---------------------------------------------------------------- options


def reject_unknown_options(owner: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise a did-you-mean VtrbenchError for the first unknown keyword option of ``owner``."""
    if not unknown:
        return
    known = sorted(known)
    if not known:
        raise VtrbenchError(f"head {owner!r} takes no options; got {', '.join(sorted(unknown))}")
    raise VtrbenchError(unknown_name_message(f"{owner} option", sorted(unknown)[0], known))


def option_names(cls: type) -> list[str]:
    """The keyword options a head class takes (its ``__init__`` parameters minus embed_dim)."""
    params = inspect.signature(cls.__init__).parameters.values()
    skip = {"self", "embed_dim"}
    return [p.name for p in params if p.name not in skip and p.kind is p.KEYWORD_ONLY]


def choose_one(owner: str, option: str, value: str, choices: Iterable[str]) -> str:
    """Validate a string option against its choices, with a did-you-mean message."""
    choices = list(choices)
    if value not in choices:
        raise VtrbenchError(unknown_name_message(f"{owner} {option}", str(value), choices))
    return value


def positive_int(owner: str, option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VtrbenchError(f"{owner} option {option} must be a positive integer, got {value!r}")
    return value


def resolve_heads(owner: str, width: int, heads: int | None) -> int:
    """Attention head count for ``width``.

    ``None`` means the default (8) or, when 8 does not divide the width, the
    largest divisor of the width below 8. An explicit value must divide the width.
    """
    if heads is None:
        return max(h for h in range(1, DEFAULT_ATTENTION_HEADS + 1) if width % h == 0)
    heads = positive_int(owner, "heads", heads)
    if width % heads:
        divisors = [h for h in range(1, min(width, 64) + 1) if width % h == 0]
        raise VtrbenchError(
            f"{owner} option heads={heads} does not divide the embedding width {width}; "
            f"choose one of {divisors}"
        )
    return heads


# ---------------------------------------------------------------- inputs and pooling


def _expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) with mask (B, N) bool → x with every masked-out entry set to 0."""
    # one pass (an out-of-place masked_fill copies x, then fills): the same values
    return torch.where(_expand_mask(mask, x), x, 0.0)


def video_inputs(batch: Mapping[str, torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, T, D) in ``dtype`` with padding zeroed, frame_mask (B, T) bool."""
    mask = batch["frame_mask"].bool()
    return zero_padding(batch["frames"].to(dtype), mask), mask


def text_inputs(
    batch: Mapping[str, torch.Tensor], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens (B, L, D) in ``dtype`` with padding zeroed, token_mask (B, L) bool, eot (B,) long."""
    mask = batch["token_mask"].bool()
    return zero_padding(batch["tokens"].to(dtype), mask), mask, batch["eot"].long()


def eot_feature(tokens: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
    """tokens (B, L, D), eot (B,) → (B, D): the CLIP sentence embedding (the EOT row)."""
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), eot]


def eot_input(batch: Mapping[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """(B, D) EOT features in ``dtype`` (see :func:`text_inputs`, :func:`eot_feature`)."""
    tokens, _, eot = text_inputs(batch, dtype)
    return eot_feature(tokens, eot)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), mask (B, N) → (B, D); a row with no valid entry gives 0."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), mask (B, N) → (B, D) element-wise max over valid entries; 0 for empty rows."""
    filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
    return filled.max(1).values.masked_fill(~mask.any(1, keepdim=True), 0.0)


#: F.normalize's default: x / max(|x|, NORM_EPS)
NORM_EPS = 1e-12


def mean_of_unit_frames(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """frames (B, T, D) (finite, e.g. padding zeroed), mask (B, T) → (B, D): unit-norm masked mean of
    unit-norm frames.

    Written as one weighted sum, Σ_t w_t f_t with w_t = m_t / max(|f_t|, eps) / max(Σ_t m_t, 1) (a
    batched (1, T) x (T, D) product), instead of normalising, masking and summing (B, T, D) tensors
    one pass each: the same function, in fewer passes over the frames (issue 29)."""
    m = mask.to(frames.dtype)
    w = m / torch.linalg.vector_norm(frames, dim=-1).clamp_min(NORM_EPS)
    w = (w / m.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(1)
    # in the frames' dtype, as the elementwise sum was (autocast would take the product to bfloat16)
    device = frames.device.type
    off = torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext()
    with off:
        pooled = torch.bmm(w.to(frames.dtype), frames).squeeze(1)
    return F.normalize(pooled, dim=-1)


# ---------------------------------------------------------------- layers


class ResidualLinear(nn.Module):
    """y = x + W x + b with W, b zero-initialised: the identity until trained.

    (..., D) → (..., D). Starting at the identity means a trained head begins
    exactly at frozen CLIP and can only move away from it where the loss says so.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x)


def unit_adapter(dim: int, enabled: bool) -> nn.Module:
    """A ResidualLinear adapter, or the identity when adapters are switched off."""
    return ResidualLinear(dim) if enabled else nn.Identity()


def adapt_unit(adapter: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) → (B, D) unit-norm: normalise, adapt, normalise.

    Normalising before the adapter makes its bias act at the same relative size
    whatever the backbone's feature norm is.
    """
    return F.normalize(adapter(F.normalize(x, dim=-1)), dim=-1)


def init_small_normal(*linears: nn.Linear) -> None:
    """Weights N(0, 0.02), biases 0: the BERT-style start of CLIP4Clip's and DRL's heads."""
    for linear in linears:
        nn.init.normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)


class QuickGELU(nn.Module):
    """x · sigmoid(1.702 x), the activation of OpenAI CLIP and CLIP4Clip's temporal transformer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


#: The MLP activations a temporal transformer can use: CLIP4Clip's (OpenAI CLIP's QuickGELU) and
#: exact GELU, which open_clip's non-OpenAI text towers use; with ``init="clip"`` the backbone's
#: activation is taken so that the copied layers compute what they were trained to compute.
ACTIVATIONS = ("quick_gelu", "gelu")
#: The heads' default activation (CLIP4Clip's); labels name any other.
DEFAULT_ACTIVATION = ACTIVATIONS[0]

#: LayerNorm epsilon of CLIP4Clip's ``transformerClip`` (its TF-style LayerNorm, module_cross.py),
#: not CLIP's 1e-5: vtrbench follows the temporal module it reproduces.
LAYER_NORM_EPS = 1e-12


def make_activation(name: str) -> nn.Module:
    return QuickGELU() if name == "quick_gelu" else nn.GELU()


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention over (B, N, D) with a (B, N) key padding mask (True = valid).

    Masked keys get the dtype's most negative score rather than -inf, so a row
    whose keys are all masked yields finite (and later discarded) values, not NaN.
    ``qkv`` holds [W_q; W_k; W_v] row-stacked with heads as contiguous column blocks,
    the layout of ``nn.MultiheadAttention.in_proj_weight`` (so CLIP weights copy over as is).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        y = scores.softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + attn(LN(x)); x + MLP(LN(x)), hidden 4·D (CLIP's ResidualAttentionBlock)."""

    def __init__(self, width: int, heads: int, activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attn = MaskedSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), make_activation(activation), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of pre-LN blocks, (B, N, D) + mask (B, N) → (B, N, D).

    Randomly initialised with CLIP's text-transformer scheme (std width^-0.5 for attention
    inputs, scaled down by sqrt(2·layers) on the residual outputs). That scheme does NOT
    start the stack near the identity: a fresh 4-layer stack's output lies 0.7 (inputs of
    per-dimension scale 1) to 1.8 (scale 0.4, about ViT-B/32 frame embeddings) relative L2
    distance from its input (``python benchmarks/clip_init.py``). ``init="clip"`` (CLIP4Clip's
    start) replaces it with CLIP's text layers, see :func:`load_clip_text_layers`.
    """

    def __init__(self, width: int, layers: int, heads: int, activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, activation) for _ in range(layers))
        attn_std = width**-0.5
        proj_std = attn_std * (2 * layers) ** -0.5
        fc_std = (2 * width) ** -0.5
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=attn_std)
            nn.init.normal_(block.attn.out.weight, std=proj_std)
            nn.init.normal_(block.mlp[0].weight, std=fc_std)
            nn.init.normal_(block.mlp[2].weight, std=proj_std)
            for linear in (block.attn.qkv, block.attn.out, block.mlp[0], block.mlp[2]):
                nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x


class FramePositionEmbedding(nn.Module):
    """Learned per-position vectors added to (B, T, D) frames, T ≤ max_frames.

    Random init: small (std 0.01), so frame order is visible from the first step but
    barely perturbs the CLIP frame embeddings (per-dimension size ~0.4 for ViT-B/32).
    With ``init="clip"`` the rows are CLIP's text positional embedding, as in CLIP4Clip.
    """

    def __init__(self, max_frames: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_frames, width) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.weight.shape[0]:
            raise VtrbenchError(
                f"the batch has {t} frames per video but the head was built with "
                f"max_frames={self.weight.shape[0]}; set the head option max_frames to at least {t}"
            )
        return x + self.weight[:t]


class TemporalEncoder(nn.Module):
    """CLIP4Clip seqTransf body: (B, T, D) + mask → transformer(x + pos) + x, per frame.

    The outer residual (output + input frames) keeps the frozen CLIP frame
    embedding inside every output frame, exactly as CLIP4Clip does.
    """

    def __init__(
        self, width: int, layers: int, heads: int, max_frames: int, activation: str = DEFAULT_ACTIVATION
    ) -> None:
        super().__init__()
        self.position = FramePositionEmbedding(max_frames, width)
        self.transformer = Transformer(width, layers, heads, activation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.position(x), mask) + x


# ---------------------------------------------------------------- option schemas
#
# Rules shared by the heads' ``option_schema`` (see Head.option_schema and vtrbench.config).

BOOL_OPTION = OptionRule("bool")
LAYERS_OPTION = OptionRule("int", low=1)
#: attention heads: None (``auto`` on the command line) = 8 or the largest divisor of the width below 8
ATTENTION_HEADS_OPTION = OptionRule("int", low=1, optional=True)
MAX_FRAMES_OPTION = OptionRule("int", low=1)


def temporal_schema() -> dict[str, OptionRule]:
    """Options of a temporal transformer that can start from CLIP (seqtransf, camoe, wti agg)."""
    return {
        "layers": LAYERS_OPTION,
        "init": OptionRule("choice", choices=INITS),
        "heads": ATTENTION_HEADS_OPTION,
        "max_frames": MAX_FRAMES_OPTION,
        "activation": OptionRule("choice", choices=ACTIVATIONS),
    }


# ---------------------------------------------------------------- initialisation from CLIP

#: ``init`` values of the heads with a temporal transformer. ``clip``: CLIP4Clip's start, the
#: frame position embeddings from CLIP's text positional embedding and transformer layer i from
#: CLIP's text layer i (modeling.py, ``from_pretrained``); ``random``: CLIP's random scheme.
INITS = ("clip", "random")
#: ``init`` of a head built directly (``vtrbench train`` decides it from the cache, see resolve_init).
DEFAULT_INIT = "random"

# vtrbench parameter ← open_clip text block key (vtrbench/extract/backbone.py stores them under
# "resblocks.<i>.<key>"; nn.MultiheadAttention's in_proj/out_proj are qkv/out here).
_BLOCK_PARAMS = (
    ("ln_1.weight", "ln_1.weight"),
    ("ln_1.bias", "ln_1.bias"),
    ("attn.qkv.weight", "attn.in_proj_weight"),
    ("attn.qkv.bias", "attn.in_proj_bias"),
    ("attn.out.weight", "attn.out_proj.weight"),
    ("attn.out.bias", "attn.out_proj.bias"),
    ("ln_2.weight", "ln_2.weight"),
    ("ln_2.bias", "ln_2.bias"),
    ("mlp.0.weight", "mlp.c_fc.weight"),
    ("mlp.0.bias", "mlp.c_fc.bias"),
    ("mlp.2.weight", "mlp.c_proj.weight"),
    ("mlp.2.bias", "mlp.c_proj.bias"),
)


def backbone_misfit(
    info: Mapping[str, Any], *, width: int, layers: int, heads: int | None, max_frames: int
) -> str | None:
    """Why the cache's backbone weights (``info`` = FeatureCache.backbone_info()) cannot start a
    temporal encoder with these options, or None when they can."""
    if not info.get("stored"):
        return str(info.get("reason") or "the cache holds no backbone weights")
    if int(info["width"]) != width:
        return f"CLIP's text width {info['width']} differs from the embedding width {width}"
    if layers > int(info["layers"]):
        return (
            f"layers={layers} but the cache holds CLIP text layers 0-{int(info['layers']) - 1} only "
            f"(use layers <= {info['layers']})"
        )
    if heads is not None and heads != int(info["heads"]):
        return f"heads={heads} but CLIP's text layers have {info['heads']} attention heads"
    if max_frames > int(info["context_length"]):
        return (
            f"max_frames={max_frames} exceeds CLIP's {info['context_length']} text positions "
            "that initialise the frame position embeddings"
        )
    return None


def resolve_init(
    owner: str, options: Mapping[str, Any], info: Mapping[str, Any], width: int, *, default_layers: int
) -> tuple[dict[str, Any], str | None]:
    """Fill in ``init`` (and, for ``clip``, the backbone's heads and activation) for a head whose
    temporal transformer can start from CLIP's text layers.

    No ``init`` given: ``clip`` when the cache's backbone weights fit, else ``random`` with a note
    saying why. ``init="clip"`` that cannot be honoured is an error, raised before any training.
    Returns (options, note or None).
    """
    opts = dict(options)
    init = opts.get("init")
    if init is not None:
        choose_one(owner, "init", init, INITS)
    layers = positive_int(owner, "layers", opts.get("layers", default_layers))
    max_frames = positive_int(owner, "max_frames", opts.get("max_frames", DEFAULT_MAX_FRAMES))
    misfit = backbone_misfit(info, width=width, layers=layers, heads=opts.get("heads"), max_frames=max_frames)
    note = None
    if init is None:
        init = "clip" if misfit is None else "random"
        if misfit is not None:
            note = f"{owner}: temporal transformer initialised at random (init=random): {misfit}"
    elif init == "clip" and misfit is not None:
        raise VtrbenchError(f"{owner} init=clip is not possible: {misfit}; use --init random")
    opts["init"] = init
    if init == "clip":
        opts["heads"] = int(info["heads"])
        opts["activation"] = str(info["activation"])
    return opts, note


def load_clip_text_layers(encoder: TemporalEncoder, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy CLIP's text positional embedding (first max_frames rows) and text layers 0..L-1 into
    ``encoder``, as CLIP4Clip initialises ``frame_position_embeddings`` and ``transformerClip``."""
    load_clip_into(encoder.transformer, encoder.position.weight, weights)


def load_clip_into(
    transformer: Transformer, position: nn.Parameter, weights: Mapping[str, torch.Tensor]
) -> None:
    """Copy CLIP's text layers 0..L-1 into ``transformer`` and CLIP's text positional embedding into
    the first ``min(rows, context_length)`` rows of the position table ``position`` (rows past CLIP's
    context keep their initialisation: tightTransf's frame rows after a 77-token caption slot)."""
    own = dict(transformer.named_parameters())
    copies: list[tuple[str, str]] = []
    for i in range(len(transformer.blocks)):
        copies += [(f"blocks.{i}.{a}", f"resblocks.{i}.{b}") for a, b in _BLOCK_PARAMS]
    with torch.no_grad():
        if "positional_embedding" not in weights:
            raise VtrbenchError(
                "the cache's backbone weights lack 'positional_embedding' (re-extract the cache)"
            )
        src = weights["positional_embedding"]
        rows = min(position.shape[0], src.shape[0])
        if src.dim() != 2 or src.shape[1] != position.shape[1]:
            raise VtrbenchError(
                f"the cache's backbone weight 'positional_embedding' has shape {tuple(src.shape)}, "
                f"the head needs (n, {position.shape[1]})"
            )
        position[:rows].copy_(src[:rows].to(position.dtype))
        for name, key in copies:
            if key not in weights:
                raise VtrbenchError(f"the cache's backbone weights lack {key!r} (re-extract the cache)")
            src = weights[key]
            dst = own[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise VtrbenchError(
                    f"the cache's backbone weight {key!r} has shape {tuple(src.shape)}, "
                    f"the head needs {tuple(dst.shape)}"
                )
            dst.copy_(src.to(dst.dtype))
