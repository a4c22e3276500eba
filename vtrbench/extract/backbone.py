"""What the heads need from the frozen backbone, taken at extraction time.

CLIP4Clip starts seqTransf from CLIP itself: ``frame_position_embeddings`` is CLIP's text
positional embedding and ``transformerClip`` layer i is CLIP's text layer i, for i < 4
(modules/modeling.py, ``CLIP4ClipPreTrainedModel.from_pretrained``). Train and eval never load
open_clip, so extraction copies those tensors into the cache (``/backbone``, written by
vtrbench.cache at assembly) and ``--init clip`` reads them back from there.

Nothing is stored, and the reason is recorded instead, when the text tower cannot initialise
a temporal transformer over the cached frame features: its width differs from the embedding
width the heads use (CLIP4Clip's transformerClip runs at the text width on projected frame
embeddings, so the two must agree), or its blocks are not plain CLIP blocks (layer scale, extra
norms, another MLP width or activation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

#: Text layers stored: CLIP4Clip's seqTransf depth (``cross_num_hidden_layers`` 4, layers 0-3).
STORED_LAYERS = 4

#: The parameters of a plain CLIP text block (open_clip's ResidualAttentionBlock without layer
#: scale or extra norms); anything else cannot be copied into vtrbench's TransformerBlock.
BLOCK_KEYS = frozenset(
    {
        "ln_1.weight",
        "ln_1.bias",
        "attn.in_proj_weight",
        "attn.in_proj_bias",
        "attn.out_proj.weight",
        "attn.out_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.c_fc.weight",
        "mlp.c_fc.bias",
        "mlp.c_proj.weight",
        "mlp.c_proj.bias",
    }
)


@dataclass
class BackboneExport:
    """The tensors (float32, keyed ``positional_embedding`` and ``resblocks.<i>.<block key>``)
    and the attributes that describe them; ``arrays`` is empty when nothing can be stored, and
    ``attrs["reason"]`` then says why."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        return bool(self.arrays)

    def summary(self) -> str:
        """One line for the cache attributes and ``inspect``."""
        if not self.stored:
            return f"none: {self.attrs.get('reason', '')}"
        a = self.attrs
        return (
            f"CLIP text positional embedding ({a['context_length']} x {a['width']}) and text layers "
            f"0-{a['layers'] - 1} ({a['heads']} heads, {a['activation']})"
        )


def _text_tower(model: Any) -> tuple[Any, Any] | None:
    """(positional_embedding, transformer) of an open_clip model's text tower, or None.

    open_clip's ``CLIP`` keeps them on the model itself; ``CustomTextCLIP`` under ``model.text``
    (a ``TextTransformer``; Hugging Face text towers have neither and are not supported).
    """
    for owner in (model, getattr(model, "text", None)):
        pos = getattr(owner, "positional_embedding", None)
        transformer = getattr(owner, "transformer", None)
        if pos is not None and transformer is not None and hasattr(transformer, "resblocks"):
            return pos, transformer
    return None


def _activation(block: Any) -> str | None:
    from open_clip.transformer import QuickGELU

    act = getattr(getattr(block, "mlp", None), "gelu", None)
    if isinstance(act, QuickGELU):
        return "quick_gelu"
    if isinstance(act, nn.GELU) and act.approximate == "none":
        return "gelu"
    return None


def text_tower_init(model: Any, embed_dim: int, layers: int = STORED_LAYERS) -> BackboneExport:
    """The text positional embedding and text layers 0..layers-1 of an open_clip ``model``, when
    they can start a temporal transformer of width ``embed_dim`` (see the module docstring)."""
    tower = _text_tower(model)
    if tower is None:
        return BackboneExport(attrs={"reason": "the model has no open_clip CLIP text transformer"})
    pos, transformer = tower
    width = int(pos.shape[-1])
    if width != embed_dim:
        return BackboneExport(
            attrs={"reason": f"CLIP's text width {width} differs from the embedding width {embed_dim}"}
        )
    blocks = list(transformer.resblocks)[:layers]
    if not blocks:
        return BackboneExport(attrs={"reason": "the text transformer has no layers"})
    heads = {int(getattr(b.attn, "num_heads", 0)) for b in blocks}
    activations = {_activation(b) for b in blocks}
    for i, block in enumerate(blocks):
        keys = set(block.state_dict())
        if keys != BLOCK_KEYS or not isinstance(block.attn, nn.MultiheadAttention):
            extra = sorted(keys - BLOCK_KEYS) or sorted(BLOCK_KEYS - keys)
            return BackboneExport(
                attrs={"reason": f"text layer {i} is not a plain CLIP block ({', '.join(extra[:3])})"}
            )
        if tuple(block.mlp.c_fc.weight.shape) != (4 * width, width):
            return BackboneExport(attrs={"reason": f"text layer {i} has an MLP width other than 4 x {width}"})
    if len(heads) != 1 or len(activations) != 1 or None in activations:
        return BackboneExport(
            attrs={"reason": "the text layers' attention heads or activation are not CLIP's"}
        )
    arrays = {"positional_embedding": pos.detach().float().cpu().numpy()}
    for i, block in enumerate(blocks):
        for key, value in block.state_dict().items():
            arrays[f"resblocks.{i}.{key}"] = value.detach().float().cpu().numpy()
    attrs = {
        "source": "open_clip text tower",
        "width": width,
        "heads": heads.pop(),
        "layers": len(blocks),
        "activation": activations.pop(),
        "context_length": int(pos.shape[0]),
        "layer_norm_eps": float(blocks[0].ln_1.eps),
        "reason": "",
    }
    return BackboneExport(arrays=arrays, attrs=attrs)
