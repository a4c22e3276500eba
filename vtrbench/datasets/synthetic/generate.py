"""Rendering the synthetic dataset to disk: videos, captions and meta.json.

Output folder (serves as both ``--annotations`` and ``--video-root``)::

    videos/<id>.mp4   H.264, yuv420p, size x size pixels, fps frames/s, seconds*fps frames
    captions.jsonl    {"video": id, "caption": ..., "roles": [...], "split": "train"|"test"}
    meta.json         generator version, seed, options, factor lists, split sizes, per-video factors
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench._imports import try_import
from vtrbench.config import config_hash, to_plain
from vtrbench.datasets.synthetic.factors import (
    COLOURS,
    GENERATOR,
    GENERATOR_VERSION,
    KINDS,
    SCENES,
    SHAPES,
    SPLITS,
)
from vtrbench.datasets.synthetic.folder import (
    CAPTIONS_FILE,
    MARKER_FILE,
    META_FILE,
    VIDEO_DIR,
    describe,
    folder_state,
    is_synthetic,
    swap,
    write_atomically,
)
from vtrbench.datasets.synthetic.planning import SynthConfig, VideoSpec, plan
from vtrbench.datasets.synthetic.render import render_video
from vtrbench.errors import VtrbenchError


def render_dataset(
    config: SynthConfig,
    out_dir: str | Path,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Render every planned video into ``out_dir`` and write its annotation files.

    Resumable: a video already in ``out_dir/videos`` that this generator made from the
    same spec and options (a fingerprint stored in the mp4's ``comment`` tag) is kept;
    every other one is (re)written to a temporary name and renamed, so a killed run
    never leaves half a video. While rendering, the folder holds a marker with the
    planned ``meta.json``; the annotation files are written (atomically) only once all
    videos exist, so a folder with a ``meta.json`` is always complete.

    A folder holding anything else (another synthetic dataset, other files) is refused;
    with ``overwrite`` a synthetic dataset there is replaced as a whole: the new one is
    rendered beside it and swapped in when complete (never a mix of old and new videos).
    ``progress(done, total)`` is called after each video. Returns ``out_dir``.
    """
    av = try_import("av", hint="rendering the synthetic dataset needs PyAV: pip install 'vtrbench[extract]'")
    out = Path(out_dir)
    specs = plan(config)
    meta_text = json.dumps(_meta(config, specs), indent=1, sort_keys=True) + "\n"
    state = folder_state(out, meta_text, specs)
    if state == "other":
        if not overwrite:
            raise VtrbenchError(
                f"synthetic: {out} is not empty ({describe(out)}); use --overwrite to replace it, "
                "or choose an empty folder"
            )
        if not is_synthetic(out):
            raise VtrbenchError(
                f"synthetic: {out} holds files that are not a synthetic dataset ({describe(out)}); "
                "refusing to replace them: choose an empty folder"
            )
        side = out.with_name(f".{out.name}.synth-new")
        if side.exists() and folder_state(side, meta_text, specs) == "other":
            shutil.rmtree(side, ignore_errors=True)
        _render_into(side, config, specs, meta_text, progress, av)
        swap(side, out)
        shutil.rmtree(side, ignore_errors=True)
        return out
    _render_into(out, config, specs, meta_text, progress, av)
    return out


def _render_into(
    out: Path,
    config: SynthConfig,
    specs: Sequence[VideoSpec],
    meta_text: str,
    progress: Callable[[int, int], None] | None,
    av: Any,
) -> None:
    meta_path = out / META_FILE
    try:
        (out / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
        if meta_path.exists() and meta_path.read_text(encoding="utf-8") != meta_text:
            meta_path.unlink()
        if not meta_path.exists():
            write_atomically(out / MARKER_FILE, lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
    except OSError as e:
        raise VtrbenchError(f"synthetic: cannot write to {out} ({e.strerror})") from None
    for done, spec in enumerate(specs, start=1):
        path = out / VIDEO_DIR / f"{spec.id}.mp4"
        tag = _fingerprint(spec, config)
        if _read_tag(path, av) != tag:
            write_atomically(
                path,
                lambda tmp, spec=spec, tag=tag: _encode(tmp, render_video(spec, config), config, tag, av),
            )
        if progress is not None:
            progress(done, len(specs))
    lines = []
    for spec in specs:
        for caption in spec.captions:
            record = {
                "video": spec.id,
                "caption": caption.text,
                "roles": list(caption.roles),
                "split": spec.split,
            }
            lines.append(json.dumps(record, ensure_ascii=True) + "\n")
    write_atomically(out / CAPTIONS_FILE, lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))
    write_atomically(meta_path, lambda tmp: tmp.write_text(meta_text, encoding="utf-8"))
    (out / MARKER_FILE).unlink(missing_ok=True)


def _meta(config: SynthConfig, specs: Sequence[VideoSpec]) -> dict[str, object]:
    splits = {
        name: {
            "videos": sum(s.split == name for s in specs),
            "captions": sum(len(s.captions) for s in specs if s.split == name),
        }
        for name in SPLITS
    }
    return {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "config": to_plain(config),
        "frames_per_video": config.frames,
        "encoding": {"codec": "libx264", "pix_fmt": "yuv420p", "qp": config.qp, "gop": 1},
        "factors": {
            "shapes": list(SHAPES),
            "colours": {k: list(v) for k, v in COLOURS.items()},
            "scenes": {k: list(v) for k, v in SCENES.items()},
            "kinds": {k: list(v) for k, v in KINDS.items()},
        },
        "splits": splits,
        "videos": [s.factors() for s in specs],
    }


def _fingerprint(spec: VideoSpec, config: SynthConfig) -> str:
    pixels = {k: v for k, v in to_plain(config).items() if k in ("size", "fps", "seconds", "qp")}
    digest = config_hash({"version": GENERATOR_VERSION, "spec": spec.factors(), "render": pixels})
    return f"{GENERATOR} v{GENERATOR_VERSION} {digest}"


def _read_tag(path: Path, av: Any) -> str | None:
    if not path.is_file():
        return None
    try:
        with av.open(str(path), mode="r") as container:
            return container.metadata.get("comment")
    except Exception:  # any unreadable file is simply rendered again
        return None


def _encode(path: Path, frames: np.ndarray, config: SynthConfig, tag: str, av: Any) -> None:
    """H.264 intra-only at constant quantiser: every decoded frame depends on its own pixels only."""
    with av.open(str(path), mode="w", format="mp4") as container:
        container.metadata["comment"] = tag
        stream = container.add_stream("libx264", rate=config.fps)
        stream.width = stream.height = config.size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qp": str(config.qp), "g": "1", "preset": "veryfast", "threads": "1"}
        time_base = Fraction(1, config.fps)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
