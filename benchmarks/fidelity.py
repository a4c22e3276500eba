"""Multi-fidelity tuning against full-fidelity tuning (issue 29 item 1): do they agree, and what is saved?

For each synthetic cache (``--videos``, comma list: the demo's 256 videos, and larger ones, made with
vtrbench-tiny and random weights as ``vtrbench demo`` makes them, if missing) and each tuning seed
(``--seeds``), in one run:

1. **full fidelity**: ``vtrbench tune --fidelity none`` (every trial trains in full, no pruner);
2. **multi-fidelity**: ``vtrbench tune --fidelity data,epochs --rungs R --eta E``, the same cells,
   trials, epoch cap, validation videos and seed;

and prints, per (cache, seed): each cell's best validation objective (t2v R@1 + v2t R@1) under both and
the gap (multi - full), the Spearman rank correlation over cells of the best values (average ranks for
ties), and the trained caption-epochs of both (every trial's ``caption_epochs``: train captions x
epochs, summed over its rungs) with the saving (1 - multi / full). Last, the pooled figures: mean
Spearman, mean absolute gap, and the caption-epoch ratio that ``comparison_cost.py --trial-fraction``
takes.

Run: ``python benchmarks/fidelity.py --out /tmp/vtrbench-fidelity`` (see benchmarks/README.md); ``--json``
saves the raw numbers. Validation objectives on these caches are coarse (R@1 over ~25 videos moves in
steps of 4): read the gaps in those steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from tune import study_stats  # noqa: E402  (benchmarks/tune.py: per cell, from the SQLite study)

MODES = {"full": ("--fidelity", "none"), "multi": ("--fidelity", "data,epochs")}


def _cli(*argv: Any) -> None:
    from vtrbench.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"vtrbench {argv[0]} failed (exit {code})")


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of the average ranks; None when either side is constant."""
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return None if va == 0 or vb == 0 else cov / (va * vb) ** 0.5


def compare(full: dict[str, dict[str, Any]], multi: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Agreement and saving of one (cache, seed): cells with a best value under both modes."""
    cells = sorted(c for c in full if None not in (full[c]["best"], (multi.get(c) or {}).get("best")))
    a = [full[c]["best"] for c in cells]
    b = [multi[c]["best"] for c in cells]
    spent = {m: sum(s[c]["caption_epochs"] for c in s) for m, s in (("full", full), ("multi", multi))}
    return {
        "cells": cells,
        "spearman": spearman(a, b) if len(cells) >= 2 else None,
        "gaps": {c: multi[c]["best"] - full[c]["best"] for c in cells},
        "caption_epochs": spent,
        "ratio": spent["multi"] / spent["full"] if spent["full"] else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="working folder (caches, studies); required unless --summarize")
    p.add_argument("--videos", default="256", help="synthetic cache sizes, comma list (256: the demo's)")
    p.add_argument("--heads", default="meanp,seqtransf")
    p.add_argument("--losses", default="infonce,dsl")
    p.add_argument("--trials", type=int, default=9)
    p.add_argument("--max-epochs", type=int, default=6)
    p.add_argument("--rungs", default="0.25:2,0.5:4,1:max", help="tune --rungs of the multi-fidelity run")
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--seeds", default="0,1", help="tuning seeds")
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="pool the runs of earlier --json files and print the summary (no tuning)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    info = _common.machine_info("cpu")
    _common.print_machine(info)
    if args.summarize:
        saved = [json.loads(Path(f).read_text()) for f in args.summarize]
        for run in (runs := [r for s in saved for r in s["runs"]]):
            print_run(run)
        vars(args).update({k: v for k, v in saved[0]["args"].items() if k not in ("json", "summarize")})
        return {"runs": runs, "summary": print_summary(runs, args)}
    if args.out is None:
        raise SystemExit("--out is required (or --summarize JSON ...)")
    from vtrbench.demo import make_synthetic_cache

    runs = []
    for videos in [int(v) for v in args.videos.split(",")]:
        cache, _ = make_synthetic_cache(args.out / f"synthetic-{videos}", videos=videos, workers=0)
        for seed in [int(s) for s in args.seeds.split(",")]:
            stats, seconds = {}, {}
            for mode, flags in MODES.items():
                study = args.out / f"tune-{videos}-s{seed}-{mode}.db"
                extra = ("--rungs", args.rungs, "--eta", args.eta) if mode == "multi" else ()
                t0 = time.perf_counter()
                _cli(
                    "tune", "--cache", cache, "--heads", args.heads, "--losses", args.losses,
                    "--trials", args.trials, "--max-epochs", args.max_epochs, "--val-fraction", 0.1,
                    "--study", study, "--seed", seed, "--device", "cpu", "--quiet", "--overwrite",
                    *flags, *extra,
                )  # fmt: skip
                seconds[mode] = time.perf_counter() - t0
                stats[mode] = study_stats(study)
            run = {"videos": videos, "seed": seed, "stats": stats, "seconds": seconds}
            run.update(compare(stats["full"], stats["multi"]))
            runs.append(run)
            print_run(run)
    summary = print_summary(runs, args)
    payload = {"machine": info, "args": vars(args), "runs": runs, "summary": summary}
    _common.write_json(args.json, json.loads(json.dumps(payload, default=str)))
    return payload


def print_run(run: dict[str, Any]) -> None:
    full, multi = run["stats"]["full"], run["stats"]["multi"]
    rows = [
        [c, full[c]["best"], multi[c]["best"], run["gaps"][c], full[c]["caption_epochs"]]
        + [multi[c]["caption_epochs"]]
        for c in run["cells"]
    ]
    _common.print_table(
        f"{run['videos']} videos, tuning seed {run['seed']}: best validation objective per cell",
        ["cell", "full", "multi", "gap", "caption-epochs full", "caption-epochs multi"],
        rows,
    )
    _common.print_notes(
        [
            f"Spearman over {len(run['cells'])} cells: {_common.fmt(run['spearman'])}",
            f"caption-epochs: full {run['caption_epochs']['full']:,}, "
            f"multi {run['caption_epochs']['multi']:,} "
            f"(multi / full {_common.fmt(run['ratio'])}); wall s: full {run['seconds']['full']:.0f}, "
            f"multi {run['seconds']['multi']:.0f} (loaded machine)",
        ]
    )


def print_summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    rhos = [r["spearman"] for r in runs if r["spearman"] is not None]
    gaps = [g for r in runs for g in r["gaps"].values()]
    full = sum(r["caption_epochs"]["full"] for r in runs)
    multi = sum(r["caption_epochs"]["multi"] for r in runs)
    summary = {
        "spearman_mean": statistics.fmean(rhos) if rhos else None,
        "spearman_min": min(rhos, default=None),
        "gap_mean_abs": statistics.fmean(abs(g) for g in gaps) if gaps else None,
        "gap_mean": statistics.fmean(gaps) if gaps else None,
        "gap_worst": min(gaps, default=None),
        "ratio": multi / full if full else None,
    }
    rows = [
        [r["videos"], r["seed"], r["spearman"], statistics.fmean(r["gaps"].values()), r["ratio"]]
        for r in runs
    ]
    floor = seed_noise(runs)
    summary["full_vs_full"] = floor
    _common.print_table(
        f"multi-fidelity (--rungs {args.rungs} --eta {args.eta}) vs full fidelity, {args.trials} trials x "
        f"cells {args.heads} x {args.losses}, epochs <= {args.max_epochs}",
        ["videos", "seed", "Spearman", "mean gap", "caption-epochs multi / full"],
        rows,
    )
    _common.print_notes(
        [
            f"Spearman over cells: mean {_common.fmt(summary['spearman_mean'])}, "
            f"min {_common.fmt(summary['spearman_min'])}",
            f"per-cell gap (multi - full best objective): mean {_common.fmt(summary['gap_mean'])}, "
            "mean |gap| "
            f"{_common.fmt(summary['gap_mean_abs'])}, worst {_common.fmt(summary['gap_worst'])}",
            f"trained caption-epochs multi / full: {_common.fmt(summary['ratio'])} "
            f"(saving {_common.fmt(None if summary['ratio'] is None else 1 - summary['ratio'])}); "
            "comparison_cost.py --measured-fraction takes the ratio",
            "the noise floor, full fidelity against itself with another tuning seed (same cache): Spearman "
            + ", ".join(f"{v}: {_common.fmt(x['spearman'])}" for v, x in floor.items())
            + "; mean |gap| "
            + ", ".join(f"{v}: {_common.fmt(x['gap_mean_abs'])}" for v, x in floor.items()),
        ]
    )
    return summary


def seed_noise(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per cache: full-fidelity tuning with the first seed against each other seed, averaged: the
    agreement that tuning noise alone leaves (what multi-fidelity's agreement is to be read against)."""
    out = {}
    for videos in sorted({r["videos"] for r in runs}):
        mine = [r for r in runs if r["videos"] == videos]
        pairs = [compare(mine[0]["stats"]["full"], r["stats"]["full"]) for r in mine[1:]]
        rhos = [p["spearman"] for p in pairs if p["spearman"] is not None]
        gaps = [abs(g) for p in pairs for g in p["gaps"].values()]
        out[videos] = {
            "spearman": statistics.fmean(rhos) if rhos else None,
            "gap_mean_abs": statistics.fmean(gaps) if gaps else None,
        }
    return out


if __name__ == "__main__":
    main()
