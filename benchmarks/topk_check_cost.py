"""The cost of checking ``topk`` against ``per_query`` when a result file is read (issue 28): the time
of ``read_result`` on a 1000-caption x 1000-video result with every post-processing, with the check
and with it switched off, and how many t2v queries gave it ground truth (ranked first, untied).

    python -m benchmarks.topk_check_cost --template results/synthetic/...s0.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import vtrbench.results as R
from vtrbench.eval import evaluate_embeddings


def best(f: Callable[[], object], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--template", type=Path, required=True, help="any schema-2 result file (its header is kept)"
    )
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args()
    n, template = args.n, args.template
    g = torch.Generator().manual_seed(0)
    video = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=1)
    text = torch.nn.functional.normalize(video + 0.15 * torch.randn(n, 32, generator=g), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(200, 32, generator=g), dim=1)
    posts = list(R.POSTPROCESSING)
    ev = evaluate_embeddings(
        text, video, torch.arange(n), logit_scale=100.0, postprocessing=posts, bank_text=bank, bank_video=bank
    )
    r = json.loads(template.read_text())
    r["protocol"].update(n_queries=n, n_gallery=n)
    for k in ("metrics", "per_query", "per_query_ranks", "topk", "topk_scores"):
        r[k] = ev[k]
    r["transductive"] = {p: R.TRANSDUCTIVE[p] for p in ev["metrics"]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        path.write_text(json.dumps(r))
        with_check = best(lambda: R.read_result(path))
        original = R._topk_contradiction
        R._topk_contradiction = lambda data, ranked: None  # the same read without the check
        try:
            without = best(lambda: R.read_result(path))
        finally:
            R._topk_contradiction = original
        size = path.stat().st_size
    firsts = sum(
        int(((np.array(c["t2v"]["higher"]) == 0) & (np.array(c["t2v"]["tied"]) == 0)).sum())
        for c in ev["per_query"].values()
    )
    print(f"{n} x {n}, {len(ev['per_query'])} post-processings, file {size / 2**20:.1f} MiB: read_result "
          f"{with_check * 1000:.0f} ms with the topk check, {without * 1000:.0f} ms without; "
          f"untied first t2v ranks (ground truth for the check): {firsts}")  # fmt: skip


if __name__ == "__main__":
    main()
