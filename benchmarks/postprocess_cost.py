"""What the hubness post-processings add to an evaluation: raw/dsl/qbnorm vs all of results.POSTPROCESSING.

    python -m benchmarks.postprocess_cost [--n 1000] [--bank 5000] [--dim 512] [--repeats 5]

A factorised case (``n`` captions x ``n`` videos, one caption per video, banks of ``bank`` training
captions and videos as the trainer's default), evaluated with the three classic post-processings and
with all nine, alternately in one process (so that machine load hits both alike); prints the median
time of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vtrbench.eval import DEFAULT_POSTS, evaluate_embeddings
from vtrbench.results import POSTPROCESSING


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--bank", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    video = _unit(torch.randn(args.n, args.dim, generator=g))
    text = _unit(video + 0.8 * torch.randn(args.n, args.dim, generator=g))
    bank_text = _unit(torch.randn(args.bank, args.dim, generator=g))
    bank_video = _unit(torch.randn(args.bank, args.dim, generator=g))
    qv = torch.arange(args.n)
    kw = dict(logit_scale=100.0, bank_text=bank_text, bank_video=bank_video)
    sets = {"raw+dsl+qbnorm": DEFAULT_POSTS, f"all {len(POSTPROCESSING)}": POSTPROCESSING}
    times: dict[str, list[float]] = {name: [] for name in sets}
    evaluate_embeddings(text[:64], video[:64], qv[:64], logit_scale=100.0)  # warm-up
    for _ in range(args.repeats):
        for name, posts in sets.items():
            t0 = time.perf_counter()
            evaluate_embeddings(text, video, qv, postprocessing=posts, **kw)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    threads = torch.get_num_threads()
    print(f"{args.n} x {args.n} factorised, dim {args.dim}, banks {args.bank}, {threads} threads")
    for name, t in med.items():
        print(f"  {name:>16}: median {t:.3f} s over {args.repeats} runs")
    (a, ta), (b, tb) = med.items()
    print(f"  ratio {b} / {a}: {tb / ta:.2f}x (+{tb - ta:.3f} s)")


if __name__ == "__main__":
    main()
