"""Fault cases for extraction fidelity options (issue 8): preprocessing values, time windows.

Each bad value must be refused before any work with one line naming the option or the file
and line; a window past the end of a video must fail that video alone, with its reason.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, synthetic_dataset

AREA = "fidelity"
TINY = ["--model", "vtrbench-tiny", "--pretrained", "none", "--device", "cpu", "--workers", 0, "--quiet"]


def _custom(tmp: Path, ctx: Context, header: str, rows: list[str]) -> Path:
    videos = sorted(synthetic_dataset(ctx).rglob("*.mp4"))
    csv = tmp / "data.csv"
    csv.write_text(header + "\n" + "\n".join(r.format(v0=videos[0], v1=videos[1]) for r in rows) + "\n")
    return csv


def _extract(csv: Path, out: Path, *extra: object) -> list[object]:
    return ["extract", "--dataset", "custom", "--annotations", csv, *TINY, "--output", out, *extra]


def bad_image_mean(tmp: Path, ctx: Context) -> Outcome:
    csv = _custom(tmp, ctx, "video,caption", ["{v0},a cat"])
    return expect_error(run_cli(_extract(csv, tmp / "c.h5", "--image-mean", "0.5,zero")), "--image-mean")


def zero_image_std(tmp: Path, ctx: Context) -> Outcome:
    csv = _custom(tmp, ctx, "video,caption", ["{v0},a cat"])
    return expect_error(run_cli(_extract(csv, tmp / "c.h5", "--image-std", "0")), "std")


def unknown_preprocess_tag(tmp: Path, ctx: Context) -> Outcome:
    csv = _custom(tmp, ctx, "video,caption", ["{v0},a cat"])
    return expect_error(run_cli(_extract(csv, tmp / "c.h5", "--preprocess-like", "webli")), "webli")


def window_end_before_start(tmp: Path, ctx: Context) -> Outcome:
    csv = _custom(tmp, ctx, "video,caption,start_s,end_s", ["{v0},a cat,3,1"])
    return expect_error(run_cli(_extract(csv, tmp / "c.h5")), "data.csv", "line 2", "end_s")


def window_not_a_number(tmp: Path, ctx: Context) -> Outcome:
    csv = _custom(tmp, ctx, "video,caption,start_s,end_s", ["{v0},a cat,soon,4"])
    return expect_error(run_cli(_extract(csv, tmp / "c.h5")), "data.csv", "start_s")


def window_after_the_video(tmp: Path, ctx: Context) -> Outcome:
    # the synthetic clips last 4 s: a 60..70 s window has no frames; that video fails, the other is kept
    csv = _custom(tmp, ctx, "video,caption,start_s,end_s", ["{v0},a cat,60,70", "{v1},a dog,,"])
    out = tmp / "c.h5"
    run = run_cli(_extract(csv, out, "--tagger", "none"))

    def check() -> str | None:
        from vtrbench.cache import FeatureCache

        with FeatureCache(out) as cache:
            status = cache.file["videos"]["status"][:].tolist()
            errors = cache.read_strings("videos", "error")
        if status != [1, 0] or "window" not in errors[0]:
            return f"expected the windowed video failed with its reason, got {status} {errors}"
        return None

    return expect_ok(run, check)


def cases() -> list[Case]:
    return [
        Case(AREA, "bad --image-mean", bad_image_mean),
        Case(AREA, "--image-std 0", zero_image_std),
        Case(AREA, "--preprocess-like with a tag the model lacks", unknown_preprocess_tag),
        Case(AREA, "custom window end_s before start_s", window_end_before_start),
        Case(AREA, "custom window not a number", window_not_a_number),
        Case(AREA, "custom window after the end of the video", window_after_the_video, quick=False),
    ]
