"""Faults of head options (issue 18.5): ``--head-option KEY=VALUE`` on train / ablate and a grid
file's ``[head_options]``. Every bad option must be one line naming the head and the option,
before any cache is opened: the cases point ``--cache`` at a file that does not exist, so an error
about the cache instead of the option means the option was checked too late.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import Case, Context, Outcome, expect_error, expect_ok, run_cli, tiny_cache

AREA = "head_options"


def _train(tmp: Path, *extra: Any) -> list[Any]:
    return ["train", "--cache", tmp / "no-cache.h5", "--results", tmp / "r", "--quiet", *extra]


def _bad_flag(extra: list[str], *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        out = run_cli(_train(tmp, *extra))
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before the head option was checked")
        return expect_error(out, *mentions)

    return run


def _bad_grid(body: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        grid = tmp / "grid.toml"
        grid.write_text(body)
        out = run_cli(["ablate", "--cache", tmp / "no-cache.h5", "--grid", grid, "--results", tmp / "r"])
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before [head_options] was checked")
        return expect_error(out, "grid.toml", *mentions)

    return run


def _ablate_flag_for_every_head(tmp: Path, ctx: Context) -> Outcome:
    # --heads meanp,xpool --head-option heads=2: xpool takes it, meanp does not: name meanp
    argv = ["ablate", "--cache", tmp / "no-cache.h5", "--heads", "meanp,xpool", "--head-option", "heads=2"]
    return expect_error(run_cli([*argv, "--results", tmp / "r"]), "meanp", "heads")


def _fixed_scale_is_recorded(tmp: Path, ctx: Context, init: float | None = None) -> Outcome:
    """A valid option trains, and the result says so (config, label, a scale that did not move from
    its start: 100, or ``logit_scale_init``)."""
    cache = tiny_cache(ctx)
    results = tmp / "r"
    argv = [
        "train",
        "--cache",
        cache,
        "--head",
        "xpool",
        "--loss",
        "infonce",
        "--epochs",
        1,
        "--batch-size",
        8,
    ]
    if init is not None:
        argv += ["--head-option", f"logit_scale_init={init:g}"]
    run = run_cli(
        [*argv, "--device", "cpu", "--results", results, "--quiet", "--head-option", "logit_scale=fixed"]
    )
    start = 100.0 if init is None else init

    def check() -> str | None:
        files = list(results.rglob("*.json"))
        if len(files) != 1:
            return f"{len(files)} result files"
        r = json.loads(files[0].read_text())
        if r["config"]["head_options"].get("logit_scale") != "fixed" or "logit_scale=fixed" not in r["label"]:
            return f"the option is not recorded: {r['label']} {r['config']['head_options']}"
        if init is not None and (
            r["config"]["head_options"].get("logit_scale_init") != init
            or f"logit_scale_init={init:g}" not in r["label"]
        ):
            return f"logit_scale_init is not recorded: {r['label']} {r['config']['head_options']}"
        if any(abs(e["logit_scale"] - start) > 1e-4 * start for e in r["history"]):
            return f"the fixed logit scale moved from {start}: {[e['logit_scale'] for e in r['history']]}"
        return None

    return expect_ok(run, check)


def cases() -> list[Case]:
    flags = [
        ("unknown-key", ["--head", "xpool", "--head-option", "layer=2"], ("xpool", "layer", "heads")),
        ("bad-type", ["--head", "seqtransf", "--head-option", "layers=two"], ("seqtransf", "layers")),
        ("nan", ["--head", "camoe", "--head-option", "aux_weight=nan"], ("camoe", "aux_weight")),
        ("inf", ["--head", "camoe", "--head-option", "aux_weight=inf"], ("camoe", "aux_weight")),
        ("out-of-range", ["--head", "wti", "--head-option", "mlp_layers=4"], ("wti", "mlp_layers")),
        ("other-head", ["--head", "meanp", "--head-option", "mlp_layers=2"], ("meanp", "mlp_layers")),
        ("bad-choice", ["--head", "wti", "--head-option", "agg=lstm"], ("wti", "agg", "seqtransf")),
        ("no-equals", ["--head", "xpool", "--head-option", "heads"], ("--head-option", "KEY=VALUE")),
        (
            "duplicate",
            ["--head", "xpool", "--head-option", "heads=2", "--head-option", "heads=4"],
            ("heads",),
        ),
        ("twice-with-flag", ["--head", "camoe", "--layers", "2", "--head-option", "layers=3"], ("layers",)),
        (
            "scale-of-tighttransf",
            ["--head", "tighttransf", "--head-option", "logit_scale=fixed"],
            ("tighttransf",),
        ),
        ("empty-experts", ["--head", "camoe", "--head-option", "experts=,"], ("camoe", "experts")),
        (
            "scale-init-zero",
            ["--head", "meanp", "--head-option", "logit_scale_init=0"],
            ("meanp", "logit_scale_init"),
        ),
        (
            "scale-init-above-clamp",
            ["--head", "xpool", "--head-option", "logit_scale_init=150"],
            ("xpool", "100"),
        ),
        (
            "scale-init-nan",
            ["--head", "wti", "--head-option", "logit_scale_init=nan"],
            ("wti", "logit_scale_init"),
        ),
        (
            "scale-init-of-tighttransf",
            ["--head", "tighttransf", "--head-option", "logit_scale_init=50"],
            ("tighttransf", "logit_scale_init"),
        ),
    ]
    quick = {"unknown-key", "nan", "out-of-range", "other-head", "duplicate"}
    out = [Case(AREA, f"flag-{name}", _bad_flag(argv, *m), quick=name in quick) for name, argv, m in flags]
    grids = [
        ("unknown-head-table", 'heads = ["meanp"]\n[head_options.xpool]\nheads = 2\n', ("xpool",)),
        ("bad-value", 'heads = ["wti"]\n[head_options.wti]\nmlp_layers = [2, 9]\n', ("wti", "mlp_layers")),
        ("nan", 'heads = ["camoe"]\n[head_options.camoe]\naux_weight = nan\n', ("camoe", "aux_weight")),
        (
            "not-for-every-head",
            'heads = ["meanp", "tighttransf"]\n[head_options]\nlogit_scale = "fixed"\n',
            ("tighttransf", "logit_scale"),
        ),
        ("empty-axis", 'heads = ["wti"]\n[head_options.wti]\nagg = []\n', ("agg",)),
        (
            "also-camoe-axis",
            'heads = ["camoe"]\n[camoe]\ngate = ["single"]\n[head_options.camoe]\ngate = "uniform"\n',
            ("gate",),
        ),
        ("not-a-table", 'heads = ["meanp"]\nhead_options = 1\n', ("head_options",)),
        ("string-bool", 'heads = ["meanp"]\n[head_options.meanp]\nadapter = "no"\n', ("meanp", "adapter")),
        (
            "negative-scale-init",
            'heads = ["camoe"]\n[head_options]\nlogit_scale_init = [30.0, -1.0]\n',
            ("camoe", "logit_scale_init"),
        ),
    ]
    out += [
        Case(AREA, f"grid-{name}", _bad_grid(body, *m), quick=name == "bad-value") for name, body, m in grids
    ]
    out.append(Case(AREA, "ablate-flag-for-every-head", _ablate_flag_for_every_head, quick=False))
    out.append(Case(AREA, "fixed-logit-scale-is-recorded", _fixed_scale_is_recorded, quick=False))
    out.append(
        Case(
            AREA,
            "logit-scale-init-is-recorded",
            lambda tmp, ctx: _fixed_scale_is_recorded(tmp, ctx, init=30.0),
            quick=False,
        )
    )
    return out
