"""Extraction throughput: the pipeline against its own stages and a CLIP4Clip-style naive path.

Measured in one run, on the same videos and model (frames/s = sampled frames / wall seconds):

- ``decode+sample``: :func:`vtrbench.extract.decode.decode_video` on every distinct video,
  one process, no preprocessing (informational: the raw cost of reading the sampled frames);
- ``stage 1 (decode)``: the real pipeline (:func:`vtrbench.extract.videos.run_videos`,
  its worker processes, IPC and part files) with the CLIP forward pass replaced by a stub
  that returns zeros: decoding + sampling + preprocessing as the pipeline runs them;
- ``stage 2 (encode)``: the pipeline's encoding code (``ChunkArrays.add`` / ``flush``,
  batches across videos, pinned memory + non-blocking copies + fp16 autocast on CUDA) on
  frames decoded and preprocessed beforehand;
- ``pipeline``: ``run_videos`` itself, stages overlapped;
- ``naive``: the way CLIP4Clip's ``RawVideoExtractorCV2`` loads video: per video, one
  seek + decode per sampled frame (every second's frame, then ``max_frames`` kept
  uniformly), per-frame PIL preprocessing (torchvision ``Resize(BICUBIC)``,
  ``CenterCrop``, ``ToTensor``, ``Normalize``), one forward pass per video.

Derived: ``bound`` = frames / (t_stage1 + t_stage2), the throughput of running the two
stages back to back on the same cores; ``slower stage`` = min of the two stage rates.
Targets (issue #5): ViT-B-32 on CPU, pipeline >= 0.9 x bound; tiny model (decode-bound),
pipeline >= 2 x naive; on a GPU, pipeline >= 0.8 x slower stage.

Videos are rendered once (cached in ``--video-dir``): H.264 High profile, default GOP
(keyframe every 250 frames, like MSR-VTT's clips), a panned noisy texture with a moving
square, so that decoding costs about what real 320x240 clips cost (a note compares with
``--reference-videos`` when they exist). ``--repeat K`` lists every file K times for the
pipeline and its stages (more work per measurement on a fast machine without rendering
more); the naive path and the decode-only row run over the distinct files once (their
rates are per video, sequential, so listing a file again would not change them).

Run: ``python benchmarks/extract.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import (  # noqa: E402
    check_row,
    machine_info,
    print_machine,
    print_notes,
    print_table,
    ratio,
    sync,
    write_json,
)

DEFAULT_REFERENCE = ROOT.parent / "shared" / "data" / "videos"
TARGET_BOUND = 0.9
TARGET_NAIVE = 2.0
TARGET_GPU_OVERLAP = 0.8
TEXTURE_CELL = 16  # pixels per random texture cell before smoothing
# Per-frame noise amplitude and x264 quality: at 320x240 they give ~250 kbit/s and a full decode
# of ~0.25 ms/frame, what the two MSR-VTT clips in shared/data/videos measure (~190 kbit/s,
# 0.24 ms/frame) on the same machine. Change RENDER_VERSION with them: it names the cached files.
NOISE = 7
CRF = "22"
RENDER_VERSION = 2


# ------------------------------------------------------------------ videos


def render_frames(seed: int, width: int, height: int, fps: int, seconds: int) -> np.ndarray:
    """``(fps * seconds, height, width, 3)`` uint8: a smooth texture panning right and down,
    a red square moving across it, and per-frame noise (which is what costs bits, hence decode time)."""
    rng = np.random.default_rng(seed)
    n = fps * seconds
    pan_x, pan_y = n, n // 2
    cells = rng.integers(
        0,
        256,
        size=((height + pan_y) // TEXTURE_CELL + 2, (width + pan_x) // TEXTURE_CELL + 2, 3),
        dtype=np.uint8,
    )
    big = np.repeat(np.repeat(cells, TEXTURE_CELL, 0), TEXTURE_CELL, 1).astype(np.float32)
    k = TEXTURE_CELL // 2 + 1
    for axis in (0, 1):  # box blur: soft edges, like out-of-focus natural content
        c = np.cumsum(big, axis=axis)
        m = c.shape[axis]
        big = (np.take(c, range(k, m), axis=axis) - np.take(c, range(m - k), axis=axis)) / k
    texture = big.astype(np.uint8)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    side = max(8, min(width, height) // 6)
    for t in range(n):
        out[t] = texture[t // 2 : t // 2 + height, t : t + width]
        x = int((width - side) * (0.5 + 0.5 * np.sin(t / 15)))
        y = int((height - side) * t / n)
        out[t, y : y + side, x : x + side] = (230, 40, 40)
    noise = rng.integers(-NOISE, NOISE + 1, size=(n, height, width, 1), dtype=np.int16)
    return np.clip(out + noise, 0, 255).astype(np.uint8)


def _render_one(path: Path, seed: int, width: int, height: int, fps: int, seconds: int) -> None:
    import av

    frames = render_frames(seed, width, height, fps, seconds)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # x264 defaults otherwise (High profile, B-frames, keyframe every 250 frames).
            stream.options = {"crf": CRF, "preset": "medium", "threads": "1"}
            for j, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts, frame.time_base = j, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_videos(
    folder: Path, count: int, width: int, height: int, fps: int, seconds: int, jobs: int = 0
) -> list[Path]:
    """Render (or reuse) ``count`` H.264 mp4 files, ``jobs`` at a time (0: one per core).

    The file name holds every option, so a file found in ``folder`` is one this function made.
    """
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        folder / f"bench{RENDER_VERSION}-{width}x{height}-{fps}fps-{seconds}s-{i:03d}.mp4"
        for i in range(count)
    ]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        t0 = time.perf_counter()
        jobs = min(jobs or len(os.sched_getaffinity(0)), len(todo))
        if jobs <= 1:
            for i in todo:
                _render_one(paths[i], i, width, height, fps, seconds)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_render_one, paths[i], i, width, height, fps, seconds) for i in todo]
                for f in futures:
                    f.result()
        print(f"# rendered {len(todo)} videos into {folder} in {time.perf_counter() - t0:.0f} s")
    return paths


def decode_ms_per_frame(paths: list[Path]) -> float:
    """Full sequential decode (every frame, no conversion): FFmpeg's cost per frame."""
    import av

    frames, t0 = 0, time.perf_counter()
    for p in paths:
        with av.open(str(p)) as c:
            frames += sum(1 for _ in c.decode(c.streams.video[0]))
    return (time.perf_counter() - t0) * 1000 / max(frames, 1)


# ------------------------------------------------------------------ measurements


def _config(model: str, image_size: int, max_frames: int, device: str) -> Any:
    from vtrbench.config import ExtractConfig

    return ExtractConfig(
        dataset="benchmark",
        dataset_fingerprint="benchmark",
        model=model,
        pretrained="none",
        max_frames=max_frames,
        image_size=image_size,
        tagger="none",
        precision="fp16" if device.startswith("cuda") else "fp32",
    )


def _index(paths: list[Path]) -> Any:
    from vtrbench.datasets.base import DatasetIndex, Split, TextEntry, VideoEntry

    # A path may be listed several times (--repeat): ids stay unique.
    videos = [VideoEntry(f"{i:05d}-{p.stem}", p) for i, p in enumerate(paths)]
    texts = [TextEntry(v.id, "a video", ("", "noun")) for v in videos]
    split = Split(tuple(v.id for v in videos), tuple(range(len(texts))))
    return DatasetIndex("benchmark", videos, texts, {"test": split}, None, "test")


def run_pipeline(
    clip: Any, paths: list[Path], config: Any, opts: Any, workdir: Path, *, stub_encoder: bool = False
) -> tuple[float, int, np.ndarray]:
    """Seconds and frames of the pipeline's video stage; (N, T, D) fp16 features it wrote.

    With ``stub_encoder`` the forward pass returns zeros: what is left is stage 1.
    """
    import h5py

    from vtrbench.cache import part_path, parts_dir
    from vtrbench.config import config_hash
    from vtrbench.extract import encode, pipeline, videos
    from vtrbench.extract.manifest import make_manifest

    index = _index(paths)
    output = workdir / f"cache-{time.monotonic_ns()}.h5"
    chash = config_hash(config)
    manifest = make_manifest(index, config, chash, clip, opts)
    parts_dir(output).mkdir(parents=True)
    summary = pipeline.ExtractSummary(output=output, config_hash=chash)
    chunks = list(range(len(manifest.chunks("videos"))))
    real = encode.encode_frames
    if stub_encoder:

        def stub(c: Any, pixels: torch.Tensor, *, patch_tokens: bool = False) -> tuple[torch.Tensor, None]:
            return torch.zeros(pixels.shape[0], clip.embed_dim, device=pixels.device), None

        encode.encode_frames = stub
    try:
        sync(opts.device)
        t0 = time.perf_counter()
        videos.run_videos(clip, manifest, config, output, chunks, opts, summary, None)
        sync(opts.device)
        seconds = time.perf_counter() - t0
    finally:
        encode.encode_frames = real
    feats = []
    for k in chunks:
        with h5py.File(part_path(output, "videos", k), "r") as f:
            if (f["status"][:] != 0).any():
                raise RuntimeError(f"a benchmark video failed to decode: {f['error'].asstr()[:]}")
            feats.append(f["frames"][:])
    return seconds, summary.frames, np.concatenate(feats)


def predecode(paths: list[Path], config: Any, device: str) -> list[torch.Tensor]:
    """Each video's preprocessed frames, as the pipeline's workers hand them over (pinned on CUDA)."""
    from vtrbench.extract.workers import DecodeJobs

    cuda = device.startswith("cuda")
    jobs = DecodeJobs([str(p) for p in paths], config, torch.float16 if cuda else torch.float32)
    out = []
    for i in range(len(jobs)):
        _, pix, _, err, *_ = jobs[i]  # (position, pixels, frame numbers, error, file sha256)
        if pix is None:
            raise RuntimeError(f"cannot decode {paths[i]}: {err}")
        out.append(pix.pin_memory() if cuda else pix)
    return out


def run_encode_stage(clip: Any, pixels: list[torch.Tensor], config: Any, opts: Any) -> tuple[float, int]:
    """Seconds and frames of stage 2 alone: the pipeline's own batching and encoding code."""
    from vtrbench.extract.encode import encode_frames
    from vtrbench.extract.pipeline import auto_batch_size
    from vtrbench.extract.videos import ChunkArrays

    device = torch.device(opts.device)
    batch = opts.batch_size or auto_batch_size(opts.device, config.image_size)
    T = config.max_frames
    frames = 0
    sync(device)
    t0 = time.perf_counter()
    for start in range(0, len(pixels), opts.video_chunk):
        group = pixels[start : start + opts.video_chunk]
        chunk = ChunkArrays(len(group), T, clip.embed_dim)
        for j, pix in enumerate(group):
            t = min(pix.shape[0], T)
            chunk.add(j, pix[:t], device)
            frames += t
            if chunk.pending_frames >= batch:
                chunk.flush(clip, device, config.patch_tokens, encode_frames)
        chunk.flush(clip, device, config.patch_tokens, encode_frames)
    sync(device)
    return time.perf_counter() - t0, frames


def _seek_frame(container: Any, stream: Any, index: int, fps: Fraction) -> np.ndarray:
    """Frame number ``index`` by seeking to the keyframe before it and decoding forward (OpenCV's
    ``CAP_PROP_POS_FRAMES``); constant frame rate assumed, as OpenCV does."""
    tb = stream.time_base
    start = stream.start_time or 0
    target = start + int(round(Fraction(index) / fps / tb))
    half = int(Fraction(1, 2) / fps / tb)
    container.seek(target, stream=stream, backward=True, any_frame=False)
    for frame in container.decode(stream):
        if frame.pts is not None and frame.pts >= target - half:
            return frame.to_ndarray(format="rgb24")
    raise RuntimeError(f"frame {index} not found")


def run_naive(clip: Any, paths: list[Path], config: Any, device: str) -> tuple[float, int, list[np.ndarray]]:
    """CLIP4Clip's video loading: seek per sampled frame, PIL preprocessing per frame, one forward
    per video. Returns seconds, frames and each video's (T, D) features."""
    import av
    from PIL import Image
    from torchvision import transforms

    from vtrbench.extract.decode import sample_frame_indices
    from vtrbench.extract.encode import encode_frames
    from vtrbench.extract.preprocess import CLIP_MEAN, CLIP_STD

    size = config.image_size
    transform = transforms.Compose(
        [
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            lambda image: image.convert("RGB"),
            transforms.ToTensor(),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
    dev = torch.device(device)
    out, frames = [], 0
    sync(dev)
    t0 = time.perf_counter()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = Fraction(stream.guessed_rate or stream.average_rate)
            # Every second's frame first (CLIP4Clip reads them all), then max_frames kept uniformly.
            wanted = sample_frame_indices(int(stream.frames), float(fps), rate=config.fps, max_frames=10**9)
            images = [transform(Image.fromarray(_seek_frame(container, stream, int(i), fps))) for i in wanted]
        if len(images) > config.max_frames:
            keep = np.linspace(0, len(images) - 1, config.max_frames, dtype=int)
            images = [images[k] for k in keep]
        pixels = torch.stack(images).to(dev)
        emb, _ = encode_frames(clip, pixels)
        out.append(emb.cpu().numpy())
        frames += len(images)
    sync(dev)
    return time.perf_counter() - t0, frames, out


def agreement(pipeline_feats: np.ndarray, naive_feats: list[np.ndarray]) -> float:
    """Smallest cosine between the pipeline's and the naive path's feature of the same frame."""
    worst = 1.0
    for v, emb in enumerate(naive_feats):
        a = pipeline_feats[v, : len(emb)].astype(np.float64)
        b = emb.astype(np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        worst = min(worst, float(cos.min()))
    return worst


def bench_model(
    model: str, unique: list[Path], args: argparse.Namespace, workdir: Path, opts: Any
) -> dict[str, Any]:
    """All measurements of one model. The pipeline and its stages see ``unique * args.repeat``
    videos; decoding ahead (stage 2's input) and the naive path see ``unique`` once (a rate
    per video does not depend on how often a file is listed)."""
    from vtrbench.extract.encode import encode_frames, load_clip
    from vtrbench.extract.pipeline import auto_batch_size

    paths = unique * args.repeat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights are the point here
        clip = load_clip(model, "none", device=args.device)
    config = _config(model, clip.image_size, args.max_frames, args.device)
    pixels = predecode(unique, config, args.device)
    # Warm-up with one full batch: first calls of a shape pay for kernel selection and allocation.
    batch = opts.batch_size or auto_batch_size(args.device, config.image_size)
    encode_frames(clip, torch.cat(pixels)[:batch].to(args.device))
    sync(args.device)

    res: dict[str, Any] = {"model": model, "image_size": clip.image_size, "embed_dim": clip.embed_dim}
    t, n = run_encode_stage(clip, pixels * args.repeat, config, opts)
    res["stage2_s"], res["frames"] = t, n
    del pixels
    t, n1, _ = run_pipeline(clip, paths, config, opts, workdir, stub_encoder=True)
    res["stage1_s"] = t
    t, n2, feats = run_pipeline(clip, paths, config, opts, workdir)
    res["pipeline_s"] = t
    if not n == n1 == n2:
        raise RuntimeError(f"frame counts differ between measurements: {n}, {n1}, {n2}")
    rate = {k: n / res[f"{k}_s"] for k in ("stage1", "stage2", "pipeline")}
    if args.naive:
        t, n3, naive_feats = run_naive(clip, unique, config, args.device)
        if n3 * args.repeat != n:
            raise RuntimeError(
                f"the naive path sampled {n3} frames per pass, the pipeline {n // args.repeat}"
            )
        res["naive_s"], res["naive_frames"] = t, n3
        rate["naive"] = n3 / t
        res["naive_agreement_cos"] = agreement(feats, naive_feats)
    res["fps"] = rate
    rate["bound"] = n / (res["stage1_s"] + res["stage2_s"])
    rate["slower_stage"] = min(rate["stage1"], rate["stage2"])
    res["ratio"] = {
        "pipeline/bound": ratio(rate["pipeline"], rate["bound"]),
        "pipeline/slower_stage": ratio(rate["pipeline"], rate["slower_stage"]),
        "pipeline/naive": ratio(rate["pipeline"], rate.get("naive")),
    }
    del clip
    return res


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="vtrbench-tiny,ViT-B-32", help="comma-separated open_clip models")
    ap.add_argument("--videos", type=int, default=32, help="number of videos")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=30, help="frame rate of the rendered videos")
    ap.add_argument("--seconds", type=int, default=10, help="length of the rendered videos")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="list every video this many times (more work, no more rendering)",
    )
    ap.add_argument("--render-jobs", type=int, default=0, help="processes rendering videos (0: one per core)")
    ap.add_argument("--max-frames", type=int, default=12)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, default=-1, help="decode processes (-1: automatic)")
    ap.add_argument("--batch-size", type=int, default=0, help="frames per forward pass (0: automatic)")
    ap.add_argument("--video-chunk", type=int, default=64, help="videos per part file")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the main process (0: default)")
    ap.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive reference path")
    ap.add_argument(
        "--video-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vtrbench-bench-videos",
        help="where rendered videos are cached",
    )
    ap.add_argument(
        "--reference-videos",
        type=Path,
        default=DEFAULT_REFERENCE,
        help="real clips whose decode cost is shown next to the rendered ones (skipped if absent)",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from vtrbench.extract.pipeline import RunOptions, auto_batch_size, auto_workers

    info = machine_info(args.device)
    print_machine(info)
    unique = render_videos(
        args.video_dir, args.videos, args.width, args.height, args.fps, args.seconds, args.render_jobs
    )
    paths = unique * args.repeat
    opts = RunOptions(
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        video_chunk=args.video_chunk,
        progress=False,
    )
    calibration = {"rendered_ms_per_frame": decode_ms_per_frame(unique[: min(4, len(unique))])}
    reference = sorted(args.reference_videos.glob("*.mp4")) if args.reference_videos.is_dir() else []
    if reference:
        calibration["reference_ms_per_frame"] = decode_ms_per_frame(reference)
        calibration["reference_videos"] = [str(p) for p in reference]

    from vtrbench.extract.decode import decode_video

    t0 = time.perf_counter()
    decoded = sum(len(decode_video(p, max_frames=args.max_frames).frame_index) for p in unique)
    decode_only = {"seconds": time.perf_counter() - t0, "frames": decoded}

    results = []
    with tempfile.TemporaryDirectory(prefix="vtrbench-bench-") as tmp:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            results.append(bench_model(model, unique, args, Path(tmp), opts))

    workers = auto_workers() if args.workers < 0 else args.workers
    setup = (
        f"{len(paths)} videos ({len(unique)} distinct) {args.width}x{args.height} {args.fps} fps "
        f"{args.seconds} s, "
        f"{decoded * args.repeat} sampled frames (1 per second, at most {args.max_frames}); "
        f"device {args.device}; "
        f"decode workers {workers}; random weights"
    )
    rows = [["decode+sample (1 process)", "-", decode_only["frames"] / decode_only["seconds"]] + [None] * 3]
    columns = ["path", "model", "frames/s", "pipeline / bound", "pipeline / slower stage", "pipeline / naive"]
    for r in results:
        f, q = r["fps"], r["ratio"]
        batch = args.batch_size or auto_batch_size(args.device, r["image_size"])
        rows += [
            ["stage 1: decode+sample+preprocess", r["model"], f["stage1"], None, None, None],
            [f"stage 2: encode (batch {batch})", r["model"], f["stage2"], None, None, None],
            ["bound = frames / (t1 + t2)", r["model"], f["bound"], None, None, None],
            ["pipeline", r["model"], f["pipeline"], q["pipeline/bound"], q["pipeline/slower_stage"], None],
            ["naive (CLIP4Clip-style)", r["model"], f.get("naive"), None, None, q["pipeline/naive"]],
        ]
    print_table(f"Extraction throughput ({setup})", columns, rows)

    checks = []
    cuda = args.device.startswith("cuda")
    for r in results:
        q, m = r["ratio"], r["model"]
        if cuda:
            checks.append(
                check_row(f"{m}: pipeline / slower stage", q["pipeline/slower_stage"], TARGET_GPU_OVERLAP)
            )
        elif m == "ViT-B-32":
            checks.append(check_row(f"{m}: pipeline / bound", q["pipeline/bound"], TARGET_BOUND))
        elif m == "vtrbench-tiny" and q["pipeline/naive"] is not None:
            checks.append(check_row(f"{m}: pipeline / naive", q["pipeline/naive"], TARGET_NAIVE))
    if checks:
        print_table("Targets (issue #5)", ["check", "value", "target", "verdict"], checks)
    cal = f"{calibration['rendered_ms_per_frame']:.2f} ms/frame"
    if reference:
        cal += f", real MSR-VTT clips ({len(reference)}) {calibration['reference_ms_per_frame']:.2f} ms/frame"
    notes = [f"decode cost, full sequential decode: rendered videos {cal}"]
    for r in results:
        if r.get("naive_agreement_cos") is not None:
            notes.append(
                f"{r['model']}: smallest cosine between pipeline and naive features of a frame: "
                f"{r['naive_agreement_cos']:.5f} (PIL vs batched preprocessing)"
            )
    print_notes(notes)
    payload = {
        "benchmark": "extract",
        "machine": info,
        "setup": vars(args) | {"workers_used": workers},
        "calibration": calibration,
        "decode_only": decode_only,
        "results": results,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
