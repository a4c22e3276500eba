"""A tour of vtrbench's Python API, in cells (run it whole, or cell by cell in an editor).

    python examples/api_tour.py CACHE.h5 [--results DIR]

Loads a cache, computes frozen-CLIP zero-shot similarity by hand, evaluates it with vtrbench's
metrics, and checks that the numbers equal `vtrbench eval --head zeroshot` on the same cache.
"""

# %% imports and arguments
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from vtrbench import api
from vtrbench.cli import main as vtrbench_cli

parser = argparse.ArgumentParser()
parser.add_argument("cache", type=Path)
parser.add_argument("--results", type=Path, default=Path(tempfile.mkdtemp(prefix="vtrbench-tour-")))
args = parser.parse_args()

# %% load the test split as tensors
with api.open_cache(args.cache) as cache:
    test_split = str(cache.attrs["default_test"])
    test = api.load_split(cache, test_split)
    embed_dim = int(cache.attrs["embed_dim"])
print(f"{test_split}: {test.n_texts} captions, {test.n_videos} videos, width {embed_dim}")

# %% zero-shot CLIP by hand: unit EOT feature . unit mean of unit frame features
tokens, eot = test.text["tokens"].float(), test.text["eot"].long()
text = F.normalize(tokens[torch.arange(len(eot)), eot], dim=-1)
frames, mask = F.normalize(test.video["frames"].float(), dim=-1), test.video["frame_mask"]
frames = frames * mask.unsqueeze(-1)  # padding rows count for nothing
video = F.normalize(frames.sum(1) / mask.sum(1, keepdim=True).clamp(min=1), dim=-1)
similarity = text @ video.T

# %% evaluate it with vtrbench's metrics (ties, v2t protocol, test-time DSL)
logit_scale = float(api.create_head("zeroshot", embed_dim=embed_dim).logit_scale().detach())
mine = api.evaluate_similarity(similarity, test.text_video, logit_scale=logit_scale)["metrics"]
print("by hand:", {post: round(m["t2v"]["R@1"], 2) for post, m in mine.items()})

# %% the same through the command line
argv = ["eval", "--cache", str(args.cache), "--head", "zeroshot", "--results", str(args.results)]
code = vtrbench_cli(argv)
assert code == 0, "vtrbench eval failed"
(result_file,) = sorted(args.results.rglob("*.json"))
theirs = api.read_result(result_file)["metrics"]
for post in mine:
    for direction in ("t2v", "v2t"):
        for metric, value in mine[post][direction].items():
            other = theirs[post][direction][metric]
            if abs(value - other) > 1e-6:
                sys.exit(f"MISMATCH {post} {direction} {metric}: by hand {value} vs vtrbench eval {other}")
print("equal: the hand-made zero-shot similarity gives exactly `vtrbench eval --head zeroshot`'s numbers")
