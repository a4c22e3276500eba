"""Faults of the ``tmass`` head's options (issue 26): ``samples``, ``aux_weight``, ``prior``,
``prior_std``, ``frames``. A bad value is one line naming the head and the option, before any cache
is opened (the flag cases point ``--cache`` at a file that does not exist); sample counts and frame
widths are bounded; the defaults spelled out give the same run (same run id, same metrics: the
inference noise follows the seed); ``heads describe`` writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "tmass"
FAST = ["--device", "cpu", "--epochs", "1", "--batch-size", "8", "--loss", "infonce", "--quiet"]


def _bad_flag(option: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = ["train", "--cache", tmp / "no-cache.h5", "--results", tmp / "r", "--head", "tmass"]
        out = run_cli([*argv, "--head-option", option, "--quiet"])
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before the tmass option was checked")
        return expect_error(out, "tmass", *mentions)

    return run


def _bad_grid(body: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        grid = tmp / "grid.toml"
        grid.write_text('heads = ["tmass"]\n[head_options.tmass]\n' + body)
        out = run_cli(["ablate", "--cache", tmp / "no-cache.h5", "--grid", grid, "--results", tmp / "r"])
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before [head_options] was checked")
        return expect_error(out, "grid.toml", "tmass", *mentions)

    return run


def _train(ctx: Context, results: Path, *options: str) -> Any:
    argv = ["train", "--cache", tiny_cache(ctx), "--head", "tmass", "--results", results, *FAST]
    for option in options:
        argv += ["--head-option", option]
    return run_cli([*argv, "--seed", "7"])


def _defaults_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    first = _train(ctx, tmp / "a")
    if first.code != 0:
        return expect_ok(first)
    spelled = ["heads=1", "samples=20", "aux_weight=0.8", "prior=uniform01", "prior_std=1", "frames=12"]
    second = _train(ctx, tmp / "b", *spelled, "adapter=true", "logit_scale=learned", "logit_scale_init=100")

    def check() -> str | None:
        a = [json.loads(p.read_text()) for p in (tmp / "a").rglob("*.json")]
        b = [json.loads(p.read_text()) for p in (tmp / "b").rglob("*.json")]
        if len(a) != 1 or len(b) != 1:
            return f"{len(a)} and {len(b)} result files"
        if a[0]["run_id"] != b[0]["run_id"] or a[0]["label"] != "tmass" or b[0]["label"] != "tmass":
            return (
                f"run ids/labels differ: {a[0]['run_id']} {a[0]['label']} vs {b[0]['run_id']} {b[0]['label']}"
            )
        if a[0]["metrics"] != b[0]["metrics"]:
            return "the same run gave other metrics: the inference noise does not follow the seed"
        seed = (a[0]["protocol"].get("head") or {}).get("noise_seed")
        if not isinstance(seed, int) or seed != (b[0]["protocol"].get("head") or {}).get("noise_seed"):
            return f"the noise seed is not recorded, or differs: {a[0]['protocol'].get('head')}"
        return None

    return expect_ok(second, check)


def _frames_below_the_cache(tmp: Path, ctx: Context) -> Outcome:
    # the radius reads one cosine per frame: a cache with more frames than `frames` is refused
    out = _train(ctx, tmp / "r", "frames=1")
    if list((tmp / "r").rglob("*.json")):
        return Outcome(
            "silently_wrong", "a result was written although the radius is narrower than the video"
        )
    return expect_error(out, "frames")


def _describe_writes_nothing(tmp: Path, ctx: Context) -> Outcome:
    import os

    before = set(os.listdir(tmp))
    here = os.getcwd()
    os.chdir(tmp)
    try:
        out = run_cli(["heads", "describe", "tmass"])
    finally:
        os.chdir(here)

    def check() -> str | None:
        if set(os.listdir(tmp)) != before:
            return f"heads describe wrote {sorted(set(os.listdir(tmp)) - before)}"
        missing = [
            o for o in ("samples", "aux_weight", "prior_std", "frames", "search space") if o not in out.text
        ]
        return f"describe does not show {missing}" if missing else None

    return expect_ok(out, check)


def cases() -> list[Case]:
    flags = [
        ("samples-zero", "samples=0", ("samples",)),
        ("samples-negative", "samples=-3", ("samples",)),
        ("samples-huge", "samples=1000000000", ("samples", "1024")),
        ("samples-nan", "samples=nan", ("samples",)),
        ("samples-fraction", "samples=2.5", ("samples",)),
        ("aux-nan", "aux_weight=nan", ("aux_weight",)),
        ("aux-inf", "aux_weight=inf", ("aux_weight",)),
        ("aux-negative", "aux_weight=-0.1", ("aux_weight",)),
        ("aux-huge", "aux_weight=1e9", ("aux_weight", "100")),
        ("prior-unknown", "prior=gauss", ("prior", "normal")),
        ("prior-std-zero", "prior_std=0", ("prior_std",)),
        ("prior-std-negative", "prior_std=-1", ("prior_std",)),
        ("prior-std-nan", "prior_std=nan", ("prior_std",)),
        ("prior-std-inf", "prior_std=inf", ("prior_std",)),
        ("prior-std-without-normal", "prior_std=0.003", ("prior_std", "normal")),
        ("frames-zero", "frames=0", ("frames",)),
        ("frames-huge", "frames=100000", ("frames", "1024")),
        ("unknown-option", "sample=5", ("sample", "samples")),
    ]
    quick = {"samples-zero", "samples-huge", "aux-nan", "prior-std-without-normal"}
    out = [Case(AREA, f"flag-{name}", _bad_flag(opt, *m), quick=name in quick) for name, opt, m in flags]
    grids = [
        ("samples-zero", "samples = 0\n", ("samples",)),
        ("aux-nan", "aux_weight = nan\n", ("aux_weight",)),
        ("prior-std-string", 'prior_std = "wide"\n', ("prior_std",)),
    ]
    out += [Case(AREA, f"grid-{name}", _bad_grid(body, *m), quick=False) for name, body, m in grids]
    out.append(Case(AREA, "defaults-spelled-out-same-run", _defaults_spelled_out, quick=False))
    out.append(Case(AREA, "frames-below-the-cache", _frames_below_the_cache, quick=False))
    out.append(Case(AREA, "describe-writes-nothing", _describe_writes_nothing, quick=True))
    return out
