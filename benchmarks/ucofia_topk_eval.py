"""Size of ucofia's one deliberate difference at evaluation: the plain top-k of patches instead of
UCoFiA's perturbed top-k, which keeps drawing noise at evaluation (docs/heads.md, "ucofia").

On the parity test's inputs and weights (tests/families/test_ucofia_parity.py: D = 16, 7 patches
per frame, k = 3, UCoFiA's 500 samples at sigma 0.05, float64), the reference's stochastic scores for
``--draws`` noise seeds against the head's deterministic ones: the largest difference relative to the
largest score, the same between two of UCoFiA's own draws, and whether the text-to-video order agrees.

Run: ``python benchmarks/ucofia_topk_eval.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "families"))


def main() -> None:
    import test_ucofia_parity as parity

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=5)
    args = ap.parse_args()
    head, ref, _ = parity.build(3, 0.01, samples=500, sigma=0.05)
    head.eval()
    ref.eval()
    text, video = parity.inputs(5, False)
    with torch.no_grad():
        hard = head.logit_scale() * head.score(text, video)
        draws = [parity.ref_scores(ref, head, text, video, seed) for seed in range(args.draws)]
    top = float(hard.abs().max())
    diff = max(float((d - hard).abs().max()) for d in draws) / top
    own = float((draws[0] - draws[1]).abs().max()) / top if len(draws) > 1 else float("nan")
    same = all(bool((d.argsort(1) == hard.argsort(1)).all()) for d in draws)
    print(f"max |UCoFiA's stochastic eval - plain top-k| / max|score| over {args.draws} draws: {diff:.2e}")
    print(f"between two of UCoFiA's own draws: {own:.2e}; same t2v order in every draw: {same}")


if __name__ == "__main__":
    main()
