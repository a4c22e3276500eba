"""How far CLIP4Clip's seqTransf attention-mask tiling moves video embeddings on a ragged batch.

CLIP4Clip builds its (N, T, T) additive mask and tiles it for ``nn.MultiheadAttention`` with
``attn_mask.repeat(n_head, 1, 1)`` (head-major), while ``nn.MultiheadAttention`` reads an
``(N * n_head, T, T)`` mask batch-major (item i, head h at row i * n_head + h). With several heads
and videos of different lengths, head h of item i is therefore masked with the mask of item
``(i * n_head + h) mod N``. DRL fixed it with ``repeat_interleave``; vtrbench applies each video's
own mask. This script computes both on the same batch and weights and prints the difference:

    python benchmarks/clip4clip_mask_tiling.py [--batch 64] [--frames 12] [--min-frames 2] [--seed 0]

Weights: ViT-B/32's text tower architecture (width 512, 8 heads, CLIP4Clip's 4 layers, QuickGELU)
with open_clip's random initialisation (no pretrained weights can be downloaded here), loaded as
CLIP4Clip loads them (positional embedding + text layers 0-3). Frames: Gaussian, per-dimension scale
0.4 (about ViT-B/32 frame embeddings). The sizes are what these weights give, not a measurement on
real CLIP weights; the point is that the difference is not a rounding effect.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LAYOUTS = ("repeat", "repeat_interleave")  # CLIP4Clip as released, DRL / vtrbench


class _TFLayerNorm(nn.Module):
    """CLIP4Clip's until_module.LayerNorm (epsilon inside the square root, 1e-12)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + 1e-12)) + self.bias


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = _TFLayerNorm(width)
        mlp = [
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", _QuickGELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]
        self.mlp = nn.Sequential(OrderedDict(mlp))
        self.ln_2 = _TFLayerNorm(width)
        self.heads = heads


class ReferenceSeqTransf(nn.Module):
    """CLIP4Clip's seqTransf video path (``_loose_similarity``) with either mask layout."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(77, width)
        self.transformerClip = nn.ModuleList(_Block(width, heads) for _ in range(layers))

    def load_clip(self, weights: dict[str, torch.Tensor]) -> None:
        """``weights`` as a vtrbench cache stores them: positional_embedding, resblocks.<i>.<key>."""
        state = {"frame_position_embeddings.weight": weights["positional_embedding"]}
        for key, value in weights.items():
            if key.startswith("resblocks.") and int(key.split(".")[1]) < len(self.transformerClip):
                state["transformerClip." + key[len("resblocks.") :]] = value
        self.load_state_dict(state, strict=True)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, layout: str) -> torch.Tensor:
        n, t, _ = frames.shape
        x = frames + self.frame_position_embeddings(torch.arange(t))[None]
        ext = ((1.0 - mask.float().unsqueeze(1)) * -1000000.0).expand(-1, t, -1)
        x = x.permute(1, 0, 2)
        for block in self.transformerClip:
            tiled = (
                ext.repeat(block.heads, 1, 1) if layout == "repeat" else ext.repeat_interleave(block.heads, 0)
            )
            h = block.ln_1(x)
            x = x + block.attn(h, h, h, need_weights=False, attn_mask=tiled)[0]
            x = x + block.mlp(block.ln_2(x))
        x = F.normalize(x.permute(1, 0, 2) + frames, dim=-1)
        m = mask.float().unsqueeze(-1)
        return F.normalize((x * m).sum(1) / m.sum(1).clamp(min=1.0), dim=-1)


def clip_text_weights(model: str = "ViT-B-32-quickgelu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Random-initialised CLIP text layers exported as vtrbench's extraction stores them."""
    import open_clip

    from vtrbench.extract.backbone import text_tower_init

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = open_clip.create_model(model, pretrained=None)
    export = text_tower_init(clip, int(clip.text_projection.shape[1]))
    assert export.stored, export.attrs
    return {k: torch.from_numpy(v) for k, v in export.arrays.items()}, {**export.attrs, "stored": True}


def ragged_batch(
    batch: int, frames: int, min_frames: int, width: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_frames, frames + 1, (batch,), generator=g)
    mask = torch.arange(frames)[None] < lengths[:, None]
    x = torch.randn(batch, frames, width, generator=g) * 0.4 * mask[..., None]
    return x, mask


def measure(
    weights: dict[str, torch.Tensor],
    info: dict[str, Any],
    frames: torch.Tensor,
    mask: torch.Tensor,
    layers: int = 4,
) -> dict[str, Any]:
    """Video embeddings of the batch with both layouts and with vtrbench's seqtransf (init=clip)."""
    from vtrbench.factory import create_head

    width, heads = frames.shape[-1], int(info["heads"])
    ref = ReferenceSeqTransf(width, layers, heads).eval()
    ref.load_clip(weights)
    head = create_head("seqtransf", embed_dim=width, init="clip", layers=layers, heads=heads).eval()
    head.init_from(weights, info)
    with torch.no_grad():
        clip4clip = ref(frames, mask, "repeat")
        fixed = ref(frames, mask, "repeat_interleave")
        ours = head.encode_video({"frames": frames, "frame_mask": mask})
    distance = 1.0 - (clip4clip * fixed).sum(-1)  # cosine distance per video
    # the item whose mask head h of item i gets under head-major tiling: (i * heads + h) mod N
    n = frames.shape[0]
    borrowed = [[(i * heads + h) % n for h in range(heads)] for i in range(n)]
    same_mask = [all(bool((mask[j] == mask[i]).all()) for j in borrowed[i]) for i in range(n)]
    return {
        "videos": n,
        "heads": heads,
        "frames": int(frames.shape[1]),
        "lengths": mask.sum(1).tolist(),
        "vtrbench_vs_fixed_max_abs": float((ours - fixed).abs().max()),
        "cosine_distance_max": float(distance.max()),
        "cosine_distance_mean": float(distance.mean()),
        "max_abs_diff": float((clip4clip - fixed).abs().max()),
        "videos_changed_1e-6": int((distance > 1e-6).sum()),
        "videos_with_only_own_length_masks": int(sum(same_mask)),
        "gallery_rank_changes": _rank_changes(clip4clip, fixed),
    }


def _rank_changes(a: torch.Tensor, b: torch.Tensor) -> int:
    """Video-to-video nearest neighbours (excluding itself) that differ between the two embeddings."""
    sa, sb = a @ a.t(), b @ b.t()
    sa.fill_diagonal_(-2.0)
    sb.fill_diagonal_(-2.0)
    return int((sa.argmax(1) != sb.argmax(1)).sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--min-frames", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weights, info = clip_text_weights()
    frames, mask = ragged_batch(args.batch, args.frames, args.min_frames, int(info["width"]), args.seed)
    ragged = measure(weights, info, frames, mask)
    full = measure(weights, info, frames, torch.ones_like(mask))
    out = {"ragged": ragged, "full_masks": full}
    for name, r in out.items():
        print(
            f"{name}: {r['videos']} videos, {r['heads']} heads; CLIP4Clip tiling vs own masks: "
            f"cosine distance max {r['cosine_distance_max']:.3g} mean {r['cosine_distance_mean']:.3g}, "
            f"max |diff| {r['max_abs_diff']:.3g}, {r['videos_changed_1e-6']} videos moved, "
            f"{r['gallery_rank_changes']} video-video nearest neighbours changed; "
            f"vtrbench vs fixed reference max |diff| {r['vtrbench_vs_fixed_max_abs']:.2g}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
