"""Scaling: MSR-VTT-shaped caches of 1k-180k captions through the cache writer, then load, train, evaluate.

For each size (``--sizes``, captions; 20 captions per video as MSR-VTT), the script writes a
feature cache the way extraction does (``vtrbench.cache.write_part`` per chunk, then
``assemble`` with a ``Manifest``; D = 512, 12 frames, 32 tokens, fp16, frame / token / noun /
verb masks; values from a fixed random pool, speed and size do not depend on them) with a
``train`` split (90 % of the videos) and a ``test`` split (the other 10 %, all their captions).
Then, per head (``--heads``: a factorised ``meanp`` and a pairwise ``xpool`` by default), in a
fresh Python process so that no memory is shared between measurements:

- *load*: :func:`vtrbench.runs.data.load_split` of the train split (what ``vtrbench train`` does);
- *epoch / 1k captions*: :func:`vtrbench.runs.train.fit` for ``--steps`` batches of ``--batch``
  captions (all videos kept), seconds per 1,000 captions seen;
- *peak RSS / split*: the process's peak resident set during load + fit, minus the resident
  set before the load (the interpreter, torch, the open cache: the *baseline*, shown), divided
  by the split's in-memory fp16 size (target <= 1.3);
- *eval*: :func:`vtrbench.runs.scoring.evaluate_head` on the test split, raw scores (t2v and v2t).

Caches go to ``--workdir`` (default: a temporary folder) and are deleted after their size
is measured, unless ``--keep``. Run: ``python benchmarks/scale.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    GiB,
    MiB,
    check_row,
    machine_info,
    peak_rss_bytes,
    print_machine,
    print_notes,
    print_table,
    reset_peak_rss,
    rss_bytes,
    write_json,
)

CAPTIONS_PER_VIDEO = 20
POOL_ROWS = 4099  # rows of random features cycled through (a prime: no pattern with chunk sizes)
TARGET_MEMORY = 1.3


def build_cache(path: Path, n_captions: int, args: argparse.Namespace) -> dict[str, Any]:
    """Write an MSR-VTT-shaped cache of ``n_captions`` captions through write_part + assemble."""
    from vtrbench.cache import STATUS_OK, Manifest, assemble, part_identity, part_path, write_part

    n_videos = max(2, n_captions // CAPTIONS_PER_VIDEO)
    n_captions = n_videos * CAPTIONS_PER_VIDEO
    frames, words, dim = args.frames, args.words, args.dim
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((POOL_ROWS, dim), dtype=np.float32).astype(np.float16)
    n_test = max(1, n_videos // 10)
    text_video = np.arange(n_captions) // CAPTIONS_PER_VIDEO
    test_videos = np.arange(n_videos - n_test, n_videos)
    manifest = Manifest(
        config={"model": "benchmark-scale", "max_frames": frames, "max_words": words},
        config_hash=f"scale{n_captions}",
        video_ids=[f"video{i}" for i in range(n_videos)],
        video_paths=[f"/videos/video{i}.mp4" for i in range(n_videos)],
        captions=[f"caption {i}" for i in range(n_captions)],
        text_video=text_video.tolist(),
        splits={
            "train": {
                "video_rows": list(range(n_videos - n_test)),
                "text_rows": np.flatnonzero(text_video < n_videos - n_test).tolist(),
                "note": "first 90 % of the videos",
            },
            "test": {
                "video_rows": test_videos.tolist(),
                "text_rows": np.flatnonzero(text_video >= n_videos - n_test).tolist(),
                "note": "last 10 % of the videos",
            },
        },
        video_chunk=args.chunk // CAPTIONS_PER_VIDEO,
        text_chunk=args.chunk,
        attrs={
            "dataset": "scale",
            "embed_dim": dim,
            "max_frames": frames,
            "max_words": words,
            "default_train": "train",
            "default_test": "test",
            "dtype": "float16",
        },
    )

    def features(start: int, end: int, width: int, salt: int) -> np.ndarray:
        idx = (np.arange(start * width, end * width) * 7919 + salt) % POOL_ROWS
        return pool[idx].reshape(end - start, width, dim)

    t0 = time.perf_counter()
    for k, (s, e) in enumerate(manifest.chunks("videos")):
        n = e - s
        count = 1 + (np.arange(s, e) % frames)  # ragged: 1..12 frames
        count = np.maximum(count, frames - 2)  # most MSR-VTT clips fill all 12 frames
        mask = np.arange(frames)[None] < count[:, None]
        write_part(
            part_path(path, "videos", k),
            {
                "frames": features(s, e, frames, 1) * mask[..., None],
                "frame_mask": mask,
                "frame_index": np.tile(np.arange(frames, dtype=np.int32), (n, 1)),
                "status": np.full(n, STATUS_OK, dtype=np.int8),
                "error": np.array([""] * n, dtype=object),
            },
            part_identity(manifest, "videos", k),  # what assembly checks each part holds
        )
    for k, (s, e) in enumerate(manifest.chunks("texts")):
        n = e - s
        eot = np.minimum(7 + (np.arange(s, e) % 15), words - 1)  # 6-20 BPE tokens plus SOT/EOT
        mask = np.arange(words)[None] <= eot[:, None]
        inside = mask.copy()
        inside[:, 0] = False
        inside[np.arange(n), eot] = False
        roles = (np.arange(s, e)[:, None] + np.arange(words)[None]) % 4
        write_part(
            part_path(path, "texts", k),
            {
                "tokens": features(s, e, words, 2) * mask[..., None],
                "token_ids": np.zeros((n, words), dtype=np.int32),
                "token_mask": mask,
                "eot": eot.astype(np.int16),
                "noun_mask": inside & (roles == 0),
                "verb_mask": inside & (roles == 1),
            },
            part_identity(manifest, "texts", k),
        )
    t_parts = time.perf_counter() - t0
    assemble(path, manifest)
    return {
        "n_captions": n_captions,
        "n_videos": n_videos,
        "cache_bytes": path.stat().st_size,
        "write_parts_s": t_parts,
        "assemble_s": time.perf_counter() - t0 - t_parts,
    }


def measure(path: Path, head_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load + fit + evaluate one head (run in a child process: memory measured from its start)."""
    import torch

    from vtrbench.cache import FeatureCache
    from vtrbench.config import TrainConfig
    from vtrbench.factory import create_head
    from vtrbench.runs.data import SplitData, load_split
    from vtrbench.runs.scoring import evaluate_head
    from vtrbench.runs.train import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    with FeatureCache(path) as cache:
        base = rss_bytes()
        resettable = reset_peak_rss()
        t0 = time.perf_counter()
        train = load_split(cache, "train")
        load_s = time.perf_counter() - t0
        load_peak = peak_rss_bytes()
        split_bytes = train.nbytes()
        n = min(train.n_texts, args.steps * args.batch)
        # the first n captions (views, no copy); all videos stay, as in a real epoch
        data = SplitData(
            "train",
            train.video,
            {k: v[:n] for k, v in train.text.items()},
            train.text_video[:n],
            train.video_rows,
            train.text_rows[:n],
        )
        config = TrainConfig(
            cache_hash=cache.config_hash, head=head_name, loss="infonce", epochs=1, batch_size=args.batch
        )
        torch.manual_seed(0)
        head = create_head(head_name, embed_dim=int(cache.attrs["embed_dim"]))
        t0 = time.perf_counter()
        fit(head, data, config, seed=0, device="cpu")
        fit_s = time.perf_counter() - t0
        peak = peak_rss_bytes()
        del data, train
        test = load_split(cache, "test")
        t0 = time.perf_counter()
        out = evaluate_head(head, test, postprocessing=("raw",))
        eval_s = time.perf_counter() - t0
    return {
        "head": head_name,
        "baseline_rss": base,
        "split_bytes": split_bytes,
        "load_s": load_s,
        "load_peak_ratio": (load_peak - base) / split_bytes if resettable else None,
        "peak_ratio": (peak - base) / split_bytes if resettable else None,
        "fit_captions": n,
        "s_per_1k_captions": fit_s / n * 1000,
        "eval_s": eval_s,
        "eval_queries": test.n_texts,
        "eval_gallery": test.n_videos,
        "t2v_R@1": out["metrics"]["raw"]["t2v"]["R@1"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000", help="captions per cache (180000 = MSR-VTT 9k)")
    ap.add_argument("--heads", default="meanp,xpool", help="a factorised and a pairwise head by default")
    ap.add_argument("--steps", type=int, default=10, help="training steps timed per head")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=4000, help="captions per text part (videos: / 20)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the children (0: default)")
    ap.add_argument("--workdir", type=Path, default=None, help="where caches are written [a temp folder]")
    ap.add_argument("--keep", action="store_true", help="keep the caches")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--in-process", action="store_true", help="measure in this process (smoke tests; memory figures mix)"
    )
    ap.add_argument("--child", nargs=2, metavar=("CACHE", "HEAD"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _child(path: Path, head: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), head]
    for opt in ("steps", "batch", "threads"):
        cmd += [f"--{opt}", str(getattr(args, opt))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {head} on {path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), args.child[1], args)))
        return {}
    info = machine_info("cpu")
    print_machine(info)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vtrbench-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    results = []
    try:
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            path = workdir / f"scale-{size}.h5"
            if path.exists():
                path.unlink()
            built = build_cache(path, size, args)
            print(
                f"  {built['n_captions']:>7} captions: cache {built['cache_bytes'] / GiB:.2f} GiB", flush=True
            )
            for head in heads:
                measured = measure(path, head, args) if args.in_process else _child(path, head, args)
                r = {**built, **measured, "load_avg": os.getloadavg()[0]}
                results.append(r)
                print(f"    {head:<8} peak/split {r['peak_ratio']:.2f} eval {r['eval_s']:.2f} s", flush=True)
            if not args.keep:
                path.unlink()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        [
            r["n_captions"],
            r["head"],
            r["cache_bytes"] / GiB,
            r["split_bytes"] / GiB,
            r["load_s"],
            r["s_per_1k_captions"],
            r["load_peak_ratio"],
            r["peak_ratio"],
            None if r["peak_ratio"] is None else (r["peak_ratio"] - 1) * r["split_bytes"] / MiB,
            f"{r['eval_queries']} x {r['eval_gallery']}",
            r["eval_s"],
        ]
        for r in results
    ]
    print_table(
        f"Scaling (D={args.dim}, {args.frames} frames, {args.words} tokens, fp16; "
        f"{args.steps} steps of {args.batch})",
        [
            "captions",
            "head",
            "cache on disk (GiB)",
            "train split in memory (GiB)",
            "load s",
            "train s / 1k captions",
            "peak RSS / split (load)",
            "peak RSS / split (load + fit)",
            "peak above baseline + split (MiB)",
            "eval (queries x videos)",
            "eval s (raw)",
        ],
        rows,
    )
    base = max((r["baseline_rss"] for r in results), default=0)
    print_notes(
        [
            "peak RSS counted above the baseline (interpreter + torch + open cache, up to "
            f"{base / MiB:.0f} MiB here) in a fresh process per row",
            "train: fit on the first steps x batch captions of the train split, all its videos loaded;",
            "'peak above baseline + split': what training adds beyond the split (torch's first backward "
            "and optimiser state, batches): constant in the split's size, so the ratio falls as it grows",
        ]
    )
    checks = [
        check_row(
            f"peak RSS / split, {r['n_captions']} captions, {r['head']}",
            r["peak_ratio"],
            TARGET_MEMORY,
            at_most=True,
        )
        for r in results
        if r["peak_ratio"] is not None
    ]
    if checks:
        print_table("Targets", ["what", "value", "target", "verdict"], checks)
    payload = {"benchmark": "scale", "machine": info, "setup": {**vars(args), "workdir": str(workdir)}}
    payload["results"] = results
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
