"""seqtransf / camoe: CLIP4Clip's start (``--init clip``) against a random start (issue 8, item 3).

1. How far a freshly initialised random temporal transformer is from the identity
   (||T(x) - x|| / ||x||, 4 layers, width 512 and 64, Gaussian inputs of per-dimension scale
   0.4, about that of ViT-B/32 frame embeddings, and 1.0).
2. t2v R@1 / R@10 of seqtransf and camoe trained with ``--init clip`` and ``--init random`` on
   the synthetic dataset. The demo's ``vtrbench-tiny`` cannot be used for this: its text tower is
   128 wide for 64-d embeddings, so its caches hold no text layers (and the demo trains with
   ``init=random``). This script registers ``vtrbench-tiny-text64``, vtrbench-tiny with a 64-wide,
   4-layer text tower (random weights, ``--pretrained none``), extracts the synthetic dataset with
   it and trains through ``vtrbench.runner`` as ``vtrbench train`` does. With random CLIP
   weights, "CLIP's text layers" are random too: the rows show that the option works end to end
   and what it costs or gains here, not what it does with real CLIP weights.

    python benchmarks/clip_init.py --videos 256 --epochs 60 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "vtrbench-tiny-text64"


def identity_distance(width: int, scale: float, layers: int = 4, seed: int = 0) -> float:
    from vtrbench.heads._layers import Transformer, resolve_heads

    torch.manual_seed(seed)
    stack = Transformer(width, layers, resolve_heads("bench", width, None))
    x = torch.randn(64, 12, width) * scale
    with torch.no_grad():
        y = stack(x, torch.ones(64, 12, dtype=torch.bool))
    return float((y - x).norm() / x.norm())


def register_model(workdir: Path) -> None:
    import open_clip

    from vtrbench.extract.encode import list_models, model_config

    list_models()
    cfg = json.loads(json.dumps(model_config("vtrbench-tiny")))
    cfg["text_cfg"].update({"width": 64, "heads": 2, "layers": 4})
    cfg_dir = workdir / "model_configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / f"{MODEL}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_dir)


def make_cache(workdir: Path, videos: int) -> Path:
    from vtrbench.config import ExtractConfig
    from vtrbench.datasets import load_dataset
    from vtrbench.datasets.synthetic import SynthConfig, render_dataset
    from vtrbench.extract.pipeline import RunOptions, dataset_fingerprint, extract_features

    data_dir = workdir / "synthetic"
    render_dataset(SynthConfig(videos=videos, seed=0), data_dir)
    index = load_dataset("synthetic", data_dir, None)
    cfg = ExtractConfig(
        dataset="synthetic",
        dataset_fingerprint=dataset_fingerprint(index),
        model=MODEL,
        pretrained="none",
        max_frames=index.max_frames,
        image_size=64,
        max_words=index.max_words,
    )
    cache = workdir / "features" / f"synthetic_{MODEL}_none.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extract_features(index, cfg, cache, RunOptions(progress=False, workers=0))
    return cache


def measure(workdir: Path, *, videos: int, epochs: int, seeds: tuple[int, ...], loss: str) -> dict[str, Any]:
    from vtrbench.cache import FeatureCache
    from vtrbench.runs.runner import run_training
    from vtrbench.runs.spec import RunSpec

    register_model(workdir)
    cache_path = make_cache(workdir, videos)
    out: dict[str, Any] = {"videos": videos, "epochs": epochs, "seeds": list(seeds), "loss": loss, "rows": {}}
    with FeatureCache(cache_path) as cache:
        out["backbone"] = str(cache.attrs.get("backbone"))
        data: dict[str, Any] = {}
        for head in ("seqtransf", "camoe"):
            for init in ("clip", "random"):
                r1, r10, secs, label = [], [], [], ""
                for seed in seeds:
                    spec = RunSpec(
                        cache_path=cache_path,
                        head=head,
                        loss=loss,
                        head_options={"init": init},
                        epochs=epochs,
                        batch_size=64,
                        lr=1e-3,
                        results_dir=workdir / "results",
                        progress=False,
                    )
                    t0 = time.perf_counter()
                    result = run_training(spec, seed, cache=cache, data=data).result
                    secs.append(time.perf_counter() - t0)
                    assert result is not None
                    label = result["label"]
                    r1.append(result["metrics"]["raw"]["t2v"]["R@1"])
                    r10.append(result["metrics"]["raw"]["t2v"]["R@10"])
                out["rows"][label] = {"t2v_R@1": r1, "t2v_R@10": r10, "seconds": secs}
    return out


def _mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.1f}" + (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=256)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--loss", default="infonce")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    print("1. fresh random temporal transformer (4 layers): ||T(x) - x|| / ||x||")
    distances = {}
    for width in (512, 64):
        for scale in (0.4, 1.0):
            distances[f"{width}/{scale}"] = d = identity_distance(width, scale)
            print(f"   width {width:>3}, input scale {scale}: {d:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(
            Path(tmp),
            videos=a.videos,
            epochs=a.epochs,
            seeds=tuple(int(s) for s in a.seeds.split(",")),
            loss=a.loss,
        )
    res["identity_distance"] = distances
    print(
        f"2. synthetic: {a.videos} videos, {MODEL} (random weights), {a.epochs} epochs, loss {a.loss}, "
        f"seeds {a.seeds}\n   cache backbone: {res['backbone']}"
    )
    print(f"   {'head':<66} {'t2v R@1':>12} {'t2v R@10':>12} {'train+eval s':>13}")
    for label, row in res["rows"].items():
        print(
            f"   {label:<66} {_mean_std(row['t2v_R@1']):>12} {_mean_std(row['t2v_R@10']):>12} "
            f"{np.mean(row['seconds']):>13.1f}"
        )
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
