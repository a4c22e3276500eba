"""Size of the thumbnail strips that extraction stores (features/README.md quotes the output).

    python -m benchmarks.thumbnails [VIDEO ...]

Decodes each video as extraction does (12 frames, 1 fps, uniform), makes its strip with
vtrbench.extract.thumbnails and prints the stored bytes (base64 text) per video and per 1k videos.
Default videos: the MSR-VTT clips in ../shared/data/videos (320x240) and 8 synthetic ones.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    from vtrbench.extract.decode import decode_video
    from vtrbench.extract.thumbnails import THUMB_NOTE, thumbnail_strip

    paths = [Path(a) for a in argv]
    if not paths:
        shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
        paths = sorted(shared.glob("*.mp4"))
        from vtrbench.datasets.synthetic import SynthConfig, render_dataset

        tmp = Path(tempfile.mkdtemp(prefix="thumbs-"))
        render_dataset(SynthConfig(videos=8, seed=0), tmp)
        paths += sorted((tmp / "videos").glob("*.mp4"))
    print(f"thumbnails: {THUMB_NOTE}")
    for p in paths:
        video = decode_video(p, rate=1, max_frames=12, sampling="uniform")
        t0 = time.perf_counter()
        strip = thumbnail_strip(video.frames)
        ms = 1000 * (time.perf_counter() - t0)
        h, w = video.frames.shape[1:3]
        print(
            f"{p.name}: {w}x{h}, {len(video.frames)} frames -> {len(strip) / 1024:.1f} KiB stored "
            f"({len(strip) / 1024:.1f} MiB per 1k such videos), {ms:.1f} ms"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
