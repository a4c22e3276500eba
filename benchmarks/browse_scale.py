"""Does a ``vtrbench browse`` page of 10k queries x 7 systems stay responsive? Size and load time.

    python -m benchmarks.browse_scale [--queries 10000] [--systems 7] [--videos 1000]

Builds the page's data directly (random ranks, top-5 lists with scores in both directions and
gates; one real thumbnail strip
repeated for every video, 6-8 KiB like a 320x240 clip) with vtrbench.browse.page.render_page, opens
it in headless Chromium without virtual time, and prints the file size, the in-page time to the end
of the first render (``performance.now()`` at the end of init: parse + JSON + tables + drill-down)
and the time of one drill-down update (filter typed), next to the wall time of the whole browser run
for the page and for a 1-query page in the same run (the browser's own start-up).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np


def _data(n_q: int, n_sys: int, n_v: int, thumb: str) -> dict:
    rng = np.random.default_rng(0)
    words = "a man woman dog red blue ball runs jumps left right kitchen road slices cooks".split()
    caps = [" ".join(rng.choice(words, rng.integers(4, 14))) for _ in range(n_q)]
    systems = []
    for s in range(n_sys):
        ranks = np.round(rng.gamma(1.5, 20, n_q) + 1, 1).tolist()
        topk = rng.integers(0, n_v, (n_q, 5)).tolist()
        gate = rng.dirichlet(np.ones(4), n_q).round(4).T

        def scores(n: int) -> list[list[float]]:
            # as result files store them: 6 significant digits, best first
            raw = -np.sort(-rng.normal(0.2, 0.05, (n, 5)), axis=1)
            return [[float(f"{x:.6g}") for x in row] for row in raw]

        systems.append(
            {
                "id": f"sys{s}",
                "name": f"system {s}",
                "seeds": [0],
                "ranks": ranks,
                "topk": topk,
                "scores": scores(n_q),
                "ranks_v2t": np.round(rng.gamma(1.5, 20, n_v) + 1, 1).tolist(),
                "topk_v2t": rng.integers(0, n_q, (n_v, 5)).tolist(),
                "scores_v2t": scores(n_v),
                "topk_seed": 0,
                "gate": {
                    e: g.tolist() for e, g in zip(("fusion", "action", "entity", "scene"), gate, strict=True)
                },
            }
        )
    return {
        "title": "scale",
        "post": "raw",
        "systems": systems,
        "a": "sys0",
        "b": "sys1",
        "captions": caps,
        "gt": rng.integers(0, n_v, n_q).tolist(),
        "verb": rng.choice(["tagged", "rule", "sentence"], n_q).tolist(),
        "videos": [f"video{i}" for i in range(n_v)],
        "thumbs": [thumb] * n_v,
        "tables": [
            {
                "title": "raw",
                "columns": ["Method", "Loss", "n", "t2v R@1 ↑"],
                "left": 2,
                "bold": [[3]],
                "rows": [[f"system {s}", "InfoNCE", "1", f"{40 + s:.1f}"] for s in range(n_sys)],
            }
        ],
        "gate_summary": [],
        "notes": [],
        "provenance": ["synthetic scale test"],
    }


def _open(page: Path) -> tuple[float, dict[str, str]]:
    import subprocess

    from vtrbench.browse.chromium import FLAGS, find_chromium

    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [find_chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wall = time.perf_counter() - t0
    body = re.search(r"<body([^>]*)>", proc.stdout)
    return wall, dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1) if body else ""))


def main() -> None:
    from vtrbench.browse.page import render_page
    from vtrbench.extract.decode import decode_video
    from vtrbench.extract.thumbnails import thumbnail_strip

    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--systems", type=int, default=7)
    p.add_argument("--videos", type=int, default=1000)
    args = p.parse_args()
    clip = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "video9771.mp4"
    thumb = (
        thumbnail_strip(decode_video(clip, rate=1, max_frames=12).frames) if clip.is_file() else "A" * 8000
    )
    out = Path(tempfile.mkdtemp(prefix="browse-scale-"))
    big, small = out / "big.html", out / "small.html"
    big.write_text(render_page(_data(args.queries, args.systems, args.videos, thumb)))
    small.write_text(render_page(_data(1, 2, 2, thumb)))
    wall_small, _ = _open(small)
    wall_big, timing = _open(big)
    print(
        f"page: {args.queries} queries x {args.systems} systems, {args.videos} videos with thumbnails: "
        f"{big.stat().st_size / 2**20:.1f} MiB"
    )
    print(
        f"in page: first render done at {timing.get('init-ms')} ms, "
        f"one drill-down update {timing.get('drill-ms')} ms"
    )
    print(f"browser run (start, load, dump): {wall_big:.1f} s; for a 1-query page {wall_small:.1f} s")


if __name__ == "__main__":
    main()
