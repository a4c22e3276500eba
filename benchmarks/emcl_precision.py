"""The two deliberate deviations of vtrbench's ``emcl`` post-processing from the official inference
module (jpthu17/EMCL ``video_retrieval/As_an_inference_module``), measured:

1. precision: the official code runs the EM step in float32; vtrbench in float64 (rounded back to the
   embeddings' dtype). The script runs the same EM step (vtrbench.heads._emcl, the official arithmetic)
   in float32 and in float64 on float32 embeddings and prints the largest score difference relative
   to the largest score.
2. blocks: the official evaluation loop applies the EM step to each block of ``--block`` captions x
   ``--block`` videos (CLIP2Video's ``batch_size_val``, 64 in the official MSR-VTT command); vtrbench
   to the whole split at once. The script prints how far the blockwise scores are from the whole-split
   ones and the t2v R@1 of each (and of the raw scores).

    python -m benchmarks.emcl_precision [--videos 1000] [--captions-per-video 2] [--block 64] [--seeds 0,1,2]

Embeddings: synthetic unit vectors, each caption its video plus Gaussian noise of norm ``--noise`` (7:
raw t2v R@1 near 50), width 512, the official MSR-VTT inference setting (K 7, 10 iterations,
lambda 0.1, beta 4). The sizes are those of these embeddings, not of a trained head on real features.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vtrbench.heads._emcl import em_bases, initial_bases, reconstruct  # noqa: E402

K, ITERS, LAMBDA, BETA = 7, 10, 0.1, 4.0


def emcl(text: torch.Tensor, video: torch.Tensor, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Caption x video scores after the EM step over ``[video; text]`` computed in ``dtype``."""
    start = initial_bases(K, torch.Generator().manual_seed(seed)).to(dtype)
    x = torch.cat([video, text]).to(dtype)
    mu, z = em_bases(x, start, ITERS, LAMBDA)
    out = reconstruct(x, mu, z, BETA)
    return out[video.shape[0] :] @ out[: video.shape[0]].T


def blockwise(text: torch.Tensor, video: torch.Tensor, seed: int, block: int) -> torch.Tensor:
    """The official evaluation loop: the EM step on each (captions, videos) block on its own."""
    out = torch.empty(text.shape[0], video.shape[0], dtype=torch.float64)
    for i in range(0, text.shape[0], block):
        for j in range(0, video.shape[0], block):
            out[i : i + block, j : j + block] = emcl(
                text[i : i + block], video[j : j + block], seed, torch.float64
            )
    return out


def r1(sim: torch.Tensor, qv: torch.Tensor) -> float:
    own = sim.gather(1, qv[:, None])
    return 100.0 * float(((sim > own).sum(1) == 0).double().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--captions-per-video", type=int, default=2)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--noise", type=float, default=7.0, help="caption noise norm (the video is unit)")
    args = ap.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        g = torch.Generator().manual_seed(seed)
        video = torch.nn.functional.normalize(torch.randn(args.videos, args.dim, generator=g), dim=1)
        qv = torch.arange(args.videos).repeat_interleave(args.captions_per_video)
        noise = torch.randn(len(qv), args.dim, generator=g) * args.noise / args.dim**0.5
        text = torch.nn.functional.normalize(video[qv] + noise, dim=1)
        exact = emcl(text, video, seed, torch.float64)
        single = emcl(text, video, seed, torch.float32).double()
        blocks = blockwise(text, video, seed, args.block)
        scale = float(exact.abs().max())
        rows.append(
            {
                "seed": seed,
                "float32_vs_float64_rel": float((single - exact).abs().max()) / scale,
                "blockwise_vs_whole_rel_max": float((blocks - exact).abs().max()) / scale,
                "blockwise_vs_whole_rel_mean": float((blocks - exact).abs().mean()) / scale,
                "t2v_R1_raw": r1(text.double() @ video.double().T, qv),
                "t2v_R1_whole": r1(exact, qv),
                "t2v_R1_blockwise": r1(blocks, qv),
            }
        )
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
