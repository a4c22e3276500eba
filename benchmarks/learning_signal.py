"""Does the synthetic dataset carry the signal vtrbench claims? (issue #3, "proof that it learns")

Renders the synthetic dataset, extracts it through the real pipeline with the tiny
random CLIP, then reports for zeroshot and each trained head:

- t2v R@1 on the test split, next to chance (1 / number of test videos);
- pair-order accuracy: for every test caption, does the head score its own video above
  the video's twin, which shows the same frames in reverse order (left vs right, grows
  vs shrinks, A-then-B vs B-then-A)? Mean pooling cannot tell the twins apart (0.5);
  a head that models time can. Order-free heads sit at 0.5 by construction: meanp and
  zeroshot (a mean), xpool (attention pooling: a weighted sum over a set of frames) and
  wti (maxima and softmax-weighted sums over frames); seqtransf, seqlstm, camoe,
  tighttransf and tmass (its radius reads the caption-frame cosines in frame order) see
  frame order.

    python benchmarks/learning_signal.py --videos 256 --epochs 30 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (``HEAD+emcl``: HEAD with EMCL's training module, _common.HEAD_VARIANTS)

from vtrbench.metrics import TIE_RTOL  # noqa: E402


def tie_band(scores: torch.Tensor) -> float:
    """The evaluation's own tie rule (vtrbench.metrics.TIE_RTOL): two raw scores tie when they differ
    by at most the sum of their rounding bounds, 2 * 2^-20 * max|s| of the split's matrix."""
    return 2.0 * TIE_RTOL * float(scores.abs().max()) if scores.numel() else 0.0


ALL_HEADS = (
    "meanp",
    "seqtransf",
    "seqlstm",
    "camoe",
    "tighttransf",
    "xpool",
    "wti",
    "tmass",
    "ucofia",
    "meanp+emcl",
)


def twin_ties(scores: torch.Tensor, text_video: torch.Tensor, twin: np.ndarray) -> float:
    """Fraction of captions that score their video and its twin within the evaluation's tie band.

    Separates the two ways to sit at 0.5: an order-free head ties every twin pair (1.0); a head
    whose scores do depend on order but prefer the same twin for the captions of both twins
    ties none and still averages exactly 0.5.
    """
    rows = torch.arange(scores.shape[0])
    own = scores[rows, text_video].double()
    other = scores[rows, torch.as_tensor(twin)[text_video]].double()
    return float(((own - other).abs() <= tie_band(scores)).double().mean())


def pair_order_accuracy(scores: torch.Tensor, text_video: torch.Tensor, twin: np.ndarray) -> float:
    """Mean over captions of [s(c, own) > s(c, twin)] + 0.5 [s(c, own) == s(c, twin)].

    ``scores``: the (captions, videos) similarity of the split. Scores within the evaluation's tie
    band (:func:`tie_band`) count as equal: pooling the same frames in another order differs only
    by float rounding (~1e-7), which must not read as a preference, and the ranks tie them too.
    """
    rows = torch.arange(scores.shape[0])
    own = scores[rows, text_video].double()
    other = scores[rows, torch.as_tensor(twin)[text_video]].double()
    tie = (own - other).abs() <= tie_band(scores)
    return float(((own > other) & ~tie).double().add(0.5 * tie.double()).mean())


@torch.no_grad()
def split_scores(head: Any, data: Any) -> torch.Tensor:
    """The full (captions, videos) similarity of a small split, for any head."""
    from vtrbench.heads.base import PairwiseHead
    from vtrbench.runs.scoring import embed, states

    if isinstance(head, PairwiseHead):
        text, video = states(head, data)
        bq, bv = head.eval_block
        return torch.cat(
            [
                torch.cat(
                    [
                        head.score_states(
                            {k: x[i : i + bq] for k, x in text.items()},
                            {k: x[j : j + bv] for k, x in video.items()},
                        )
                        for j in range(0, data.n_videos, bv)
                    ],
                    dim=1,
                )
                for i in range(0, data.n_texts, bq)
            ]
        )
    text_emb, video_emb = embed(head, data)
    return text_emb @ video_emb.T


def measure(
    workdir: Path,
    *,
    videos: int = 256,
    epochs: int = 30,
    seeds: tuple[int, ...] = (0,),
    heads: tuple[str, ...] = ("meanp", "seqtransf", "camoe"),
    loss: str = "infonce",
    lr: float = 1e-3,
    batch_size: int = 64,
) -> dict[str, Any]:
    from vtrbench.cache import FeatureCache
    from vtrbench.config import TrainConfig
    from vtrbench.demo import make_synthetic_cache
    from vtrbench.factory import create_head
    from vtrbench.runs.data import load_split
    from vtrbench.runs.scoring import evaluate_head
    from vtrbench.runs.train import fit, seed_everything

    # heads that read patch tokens (ucofia) need a cache extracted with them; the others ignore them
    patches = _common.needs_patch_tokens(heads)
    cache_path, _ = make_synthetic_cache(workdir, videos=videos, workers=0, patch_tokens=patches)
    data_dir = workdir / "synthetic"
    meta = json.loads((data_dir / "meta.json").read_text())
    pair_of = {v["id"]: v["pair"] for v in meta["videos"]}
    out: dict[str, Any] = {"videos": videos, "epochs": epochs, "seeds": list(seeds), "loss": loss, "rows": {}}
    with FeatureCache(cache_path) as cache:
        train, test = load_split(cache, "train", patches=patches), load_split(cache, "test", patches=patches)
        ids = cache.read_strings("videos", "id")
        test_ids = [ids[r] for r in test.video_rows]
        by_pair: dict[int, list[int]] = {}
        for i, vid in enumerate(test_ids):
            by_pair.setdefault(pair_of[vid], []).append(i)
        twin = np.array([next(j for j in by_pair[pair_of[v]] if j != i) for i, v in enumerate(test_ids)])
        out["chance_r1"] = 100.0 / test.n_videos
        config = TrainConfig(
            cache_hash=cache.config_hash,
            head="",
            loss=loss,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            train_split="train",
            test_split="test",
        )
        for name in ("zeroshot", *heads):
            r1, r10, acc, ties, secs = [], [], [], [], []
            for seed in seeds if name != "zeroshot" else (0,):
                seed_everything(seed)
                base, _tag, options = _common.head_variant(name)
                head = create_head(base, embed_dim=int(cache.attrs["embed_dim"]), **options)
                t0 = time.perf_counter()
                if head.trainable:
                    # the head's options as a run records them: the trainer reads its auxiliary-loss
                    # weight from there (camoe's aux_weight, tmass's support-text weight)
                    fit(head, train, replace(config, head=base, head_options=head.describe()), seed)
                secs.append(time.perf_counter() - t0)
                m = evaluate_head(head, test, postprocessing=("raw",))["metrics"]["raw"]
                r1.append(m["t2v"]["R@1"])
                r10.append(m["t2v"]["R@10"])
                scores = split_scores(head, test)
                acc.append(pair_order_accuracy(scores, test.text_video, twin))
                ties.append(twin_ties(scores, test.text_video, twin))
            out["rows"][name] = {
                "t2v_R@1": r1,
                "t2v_R@10": r10,
                "pair_order_acc": acc,
                "twin_ties": ties,
                "train_s": secs,
            }
    return out


def _mean_std(values: list[float], decimals: int) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{decimals}f}" + (f" ± {v.std(ddof=1):.{decimals}f}" if len(v) > 1 else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=256)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--loss", default="infonce")
    p.add_argument("--heads", default=",".join(ALL_HEADS), help="trained heads (zeroshot always runs)")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(
            Path(tmp),
            videos=a.videos,
            epochs=a.epochs,
            seeds=tuple(int(s) for s in a.seeds.split(",")),
            loss=a.loss,
            heads=tuple(h.strip() for h in a.heads.split(",") if h.strip()),
        )
    print(
        f"synthetic: {a.videos} videos, tiny random CLIP, {a.epochs} epochs, loss {a.loss}, "
        f"seeds {a.seeds}; chance t2v R@1 = {res['chance_r1']:.1f}"
    )
    print(f"chance t2v R@10 = {10 * res['chance_r1']:.1f}")
    print(
        f"{'head':<12} {'t2v R@1':>14} {'t2v R@10':>14} {'pair-order acc':>16} "
        f"{'twin ties':>10} {'train s':>8}"
    )
    for name, row in res["rows"].items():
        cells = [_mean_std(row[k], 1) for k in ("t2v_R@1", "t2v_R@10")] + [
            _mean_std(row["pair_order_acc"], 3)
        ]
        print(
            f"{name:<12} {cells[0]:>14} {cells[1]:>14} {cells[2]:>16} {np.mean(row['twin_ties']):>10.2f} "
            f"{np.mean(row['train_s']):>8.1f}"
        )
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
