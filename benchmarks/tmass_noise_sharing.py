"""How much does tmass's shared inference noise move the metrics? (docs/heads.md, "T-MASS")

The official T-MASS evaluation draws fresh ε for every (video, trial); vtrbench draws a caption's K
draws once and uses them against every video (seeded, cut-invariant). Both give each pair's score
the same distribution; they differ in the correlation across videos. This trains one tmass head on
the synthetic dataset, then scores the test split both ways under several noise seeds and reports
t2v R@1 / R@5 / mean rank, next to the spread that the noise seed alone causes::

    python benchmarks/tmass_noise_sharing.py --videos 128 --epochs 20 --draws 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch


def t2v(scores: torch.Tensor, text_video: torch.Tensor) -> tuple[float, float, float]:
    """R@1, R@5, mean rank of each caption's video (ties counted as the expected rank)."""
    own = scores[torch.arange(scores.shape[0]), text_video][:, None]
    rank = (scores > own).sum(1).double() + 0.5 * ((scores == own).sum(1).double() - 1) + 1
    return (
        float((rank <= 1).double().mean() * 100),
        float((rank <= 5).double().mean() * 100),
        float(rank.mean()),
    )


@torch.no_grad()
def scores_both_ways(head, data, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(shared, independent) score matrices: shared = the head's own evaluation with noise_seed =
    ``seed``; independent = fresh draws for every (video, sample), as the official evaluation."""
    from vtrbench.heads.base import slice_state
    from vtrbench.runs.scoring import states

    head.noise_seed.fill_(seed)
    ts, vs = states(head, data)
    shared = head.score_states(ts, vs)
    g = torch.Generator().manual_seed(seed)
    cols = []
    for j in range(data.n_videos):
        fresh = dict(ts, noise=head.draw(tuple(ts["noise"].shape), g).to(ts["noise"]))
        cols.append(head.score_states(fresh, slice_state(vs, slice(j, j + 1))))
    return shared, torch.cat(cols, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--draws", type=int, default=5, help="noise seeds per way")
    a = p.parse_args()
    from vtrbench.cache import FeatureCache
    from vtrbench.config import TrainConfig
    from vtrbench.demo import make_synthetic_cache
    from vtrbench.factory import create_head
    from vtrbench.runs.data import load_split
    from vtrbench.runs.train import fit, seed_everything

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = make_synthetic_cache(Path(tmp), videos=a.videos, workers=0)
        with FeatureCache(path) as cache:
            train, test = load_split(cache, "train"), load_split(cache, "test")
            seed_everything(0)
            head = create_head("tmass", embed_dim=int(cache.attrs["embed_dim"]))
            config = TrainConfig(
                cache_hash=cache.config_hash, head="tmass", loss="infonce", epochs=a.epochs, lr=1e-3,
                batch_size=64, train_split="train", test_split="test", head_options=head.describe(),
            )  # fmt: skip
            fit(head, train, config, 0)
    rows = {"shared (vtrbench)": [], "independent (official)": []}
    for seed in range(a.draws):
        shared, independent = scores_both_ways(head.eval(), test, seed)
        rows["shared (vtrbench)"].append(t2v(shared, test.text_video))
        rows["independent (official)"].append(t2v(independent, test.text_video))
    print(f"tmass, synthetic {a.videos} videos, {a.epochs} epochs, {test.n_texts} test captions x "
          f"{test.n_videos} videos; {a.draws} noise seeds per way (mean ± std over seeds)")  # fmt: skip
    print(f"{'noise':<24} {'t2v R@1':>14} {'t2v R@5':>14} {'mean rank':>14}")
    for name, vals in rows.items():
        v = np.asarray(vals)
        cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(v.mean(0), v.std(0, ddof=1), strict=True)]
        print(f"{name:<24} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
