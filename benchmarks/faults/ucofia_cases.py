"""Faults of the ``ucofia`` head (issue 26): every option's bad values (one line naming the head and
the option, before the cache is opened), a cache without patch tokens (one line naming
``--patch-tokens``, before training, on ``train``, ``ablate``, ``tune`` and the API), a top-k above
the cache's patches per frame or frames above the ISA size (one line), the defaults spelled out
(the same run, found as done), and a grid of meanp then ucofia on a patch-token cache (both trained).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    extract_argv,
    run_cli,
    synthetic_dataset,
    tiny_cache,
)

AREA = "ucofia"
FAST = ["--loss", "infonce", "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--quiet"]
# the defaults of every ucofia option, spelled out (UCoFiA's MSR-VTT configuration)
DEFAULTS = [
    "topk=3",
    "topk_samples=500",
    "topk_sigma=0.05",
    "tau=0.01",
    "isa_words=32",
    "isa_frames=12",
    "sinkhorn=none",
    "sinkhorn_iters=4",
    "layers=4",
    "max_frames=64",
    "activation=quick_gelu",
    "logit_scale=learned",
    "logit_scale_init=100",
]


def patch_cache(ctx: Context) -> Path:
    """The tiny synthetic cache extracted with ``--patch-tokens`` (read-only for cases)."""

    def make(folder: Path) -> Path:
        out = folder / "tiny-patches.h5"
        run = run_cli(extract_argv(synthetic_dataset(ctx), out, "--patch-tokens"))
        if run.code != 0 or not out.is_file():
            raise RuntimeError(f"fixture: vtrbench extract --patch-tokens failed: {run.text[-300:]}")
        return out

    return ctx.once("tiny-patch-cache", make)


def _bad_option(option: str, *mentions: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = ["train", "--cache", tmp / "no-cache.h5", "--results", tmp / "r", "--head", "ucofia"]
        out = run_cli([*argv, "--head-option", option, "--quiet"])
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before the head option was checked")
        return expect_error(out, "ucofia", *mentions)

    return run


def _no_results(results: Path, out: Outcome) -> Outcome:
    if out.kind == "clear_error" and results.exists() and any(results.rglob("*.json")):
        return Outcome("silently_wrong", "a result was written although the run was refused")
    return out


def _without_patches(command: str) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        cache, results = tiny_cache(ctx), tmp / "r"
        if command == "train":
            argv = ["train", "--cache", cache, "--head", "ucofia", *FAST, "--results", results]
        elif command == "ablate":
            argv = [
                "ablate",
                "--cache",
                cache,
                "--heads",
                "meanp,ucofia",
                "--losses",
                "infonce",
                "--seeds",
                "0",
            ]
            argv += ["--epochs", 1, "--batch-size", 8, "--device", "cpu", "--results", results]
        else:
            argv = ["tune", "--cache", cache, "--heads", "ucofia", "--trials", 1, "--max-epochs", 1]
            argv += ["--study", tmp / "study.db", "--device", "cpu"]
        out = run_cli(argv)
        if "Epoch" in out.text or "epoch 1" in out.text:
            return Outcome("silently_wrong", "training started before the missing patch tokens were refused")
        return _no_results(results, expect_error(out, "ucofia", "--patch-tokens"))

    return run


def _api_without_patches(tmp: Path, ctx: Context) -> Outcome:
    """The API: a split loaded without patch tokens (``load_split(..., patches=False)``), trained."""
    from vtrbench import api
    from vtrbench.errors import VtrbenchError

    try:
        cache = tiny_cache(ctx)
        train = api.load_split(cache, "train")
        head = api.create_head("ucofia", embed_dim=int(train.video["frames"].shape[-1]))
        api.train_head(head, train, epochs=1, batch_size=8)
    except VtrbenchError as e:
        text = str(e)
        if "\n" in text or "--patch-tokens" not in text or "patches" not in text:
            return Outcome("unclear", f"not one line naming --patch-tokens: {text[:300]}")
        return Outcome("clear_error", text)
    except Exception as e:  # noqa: BLE001 - the case reports what escaped
        return Outcome("traceback", f"{type(e).__name__}: {e}")
    return Outcome("silently_wrong", "api.train_head accepted a split without patch tokens for ucofia")


def _on_patches(*options: str, mentions: tuple[str, ...]) -> Callable[[Path, Context], Outcome]:
    """A run on the patch-token cache refused with one line (options the cache's shapes decide)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = ["train", "--cache", patch_cache(ctx), "--head", "ucofia", *FAST, "--results", tmp / "r"]
        for o in options:
            argv += ["--head-option", o]
        return _no_results(tmp / "r", expect_error(run_cli(argv), "ucofia", *mentions))

    return run


def _defaults_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    cache, results = patch_cache(ctx), tmp / "r"
    base = ["train", "--cache", cache, "--head", "ucofia", *FAST, "--results", results]
    first = run_cli(base)
    if first.code != 0:
        return Outcome("traceback" if "Traceback" in first.text else "unclear", first.text[-300:])
    spelled: list[Any] = []
    for option in DEFAULTS:
        spelled += ["--head-option", option]
    again = run_cli([*base, *spelled])

    def check() -> str | None:
        files = sorted(results.rglob("*.json"))
        if len(files) != 1:
            return f"{len(files)} result files for one configuration: {[f.name for f in files]}"
        if "skipped" not in again.text:
            return "the spelled-out defaults were trained again instead of being found as done"
        label = json.loads(files[0].read_text())["label"]
        if not label.startswith("ucofia"):
            return f"label {label!r}"
        return None

    return expect_ok(again, check)


def _non_default_in_label(tmp: Path, ctx: Context) -> Outcome:
    """A run with non-default options (the Sinkhorn bank bias among them) trains, evaluates with the
    run's bank and says so in its label and config."""
    results = tmp / "r"
    argv = ["train", "--cache", patch_cache(ctx), "--head", "ucofia", *FAST, "--results", results]
    run = run_cli(
        [*argv, "--head-option", "topk=2", "--head-option", "tau=0.05", "--head-option", "sinkhorn=bank"]
    )

    def check() -> str | None:
        files = list(results.rglob("*.json"))
        if len(files) != 1:
            return f"{len(files)} result files"
        r = json.loads(files[0].read_text())
        if any(x not in r["label"] for x in ("topk=2", "tau=0.05", "sinkhorn=bank")):
            return f"the non-default options are not in the label: {r['label']}"
        if r["config"]["head_options"].get("topk") != 2:
            return f"topk is not recorded: {r['config']['head_options']}"
        return None

    return expect_ok(run, check)


def _mixed_grid(tmp: Path, ctx: Context) -> Outcome:
    """``ablate --heads meanp,ucofia`` on the patch-token cache (as benchmarks/tune.py runs it): meanP
    loads the splits first, without patch tokens; ucofia must still get them, not a refusal."""
    results = tmp / "r"
    fast = ["--seeds", 0, *FAST[2:]]  # ablate takes --losses, not --loss
    argv = ["ablate", "--cache", patch_cache(ctx), "--heads", "meanp,ucofia", "--losses", "infonce", *fast]
    run = run_cli([*argv, "--results", results])

    def check() -> str | None:
        heads = sorted(json.loads(f.read_text())["head"] for f in results.rglob("*.s0.json"))
        return None if heads == ["meanp", "ucofia"] else f"results for {heads}, not meanp and ucofia"

    return expect_ok(run, check)


def cases() -> list[Case]:
    bad = [
        ("topk-zero", "topk=0", ("topk",)),
        ("topk-huge", "topk=1000000000", ("topk", "1024")),
        ("topk-float", "topk=2.5", ("topk",)),
        ("samples-zero", "topk_samples=0", ("topk_samples",)),
        ("samples-huge", "topk_samples=10000000000", ("topk_samples",)),
        ("sigma-zero", "topk_sigma=0", ("topk_sigma",)),
        ("sigma-negative", "topk_sigma=-0.05", ("topk_sigma",)),
        ("sigma-nan", "topk_sigma=nan", ("topk_sigma",)),
        ("tau-zero", "tau=0", ("tau",)),
        ("tau-inf", "tau=inf", ("tau",)),
        ("tau-nan", "tau=nan", ("tau",)),
        ("isa-words-zero", "isa_words=0", ("isa_words",)),
        ("isa-frames-huge", "isa_frames=100000", ("isa_frames",)),
        ("sinkhorn-bogus", "sinkhorn=test", ("sinkhorn", "bank")),
        ("sinkhorn-iters-zero", "sinkhorn_iters=0", ("sinkhorn_iters",)),
        ("sinkhorn-iters-huge", "sinkhorn_iters=1000000", ("sinkhorn_iters",)),
        ("layers-zero", "layers=0", ("layers",)),
        ("init-bogus", "init=imagenet", ("init",)),
        ("heads-zero", "heads=0", ("heads",)),
        ("max-frames-negative", "max_frames=-1", ("max_frames",)),
        ("activation-bogus", "activation=relu", ("activation",)),
        ("adapter-not-an-option", "adapter=false", ("adapter",)),
        ("scale-init-nan", "logit_scale_init=nan", ("logit_scale_init",)),
        ("scale-bogus", "logit_scale=frozen", ("logit_scale",)),
    ]
    quick = {"topk-huge", "tau-nan", "sigma-zero"}
    out = [Case(AREA, f"option-{n}", _bad_option(o, *m), quick=n in quick) for n, o, m in bad]
    out += [
        Case(AREA, "no-patch-tokens-train", _without_patches("train"), quick=False),
        Case(AREA, "no-patch-tokens-ablate", _without_patches("ablate"), quick=False),
        Case(AREA, "no-patch-tokens-tune", _without_patches("tune"), quick=False),
        Case(AREA, "no-patch-tokens-api", _api_without_patches, quick=False),
        Case(
            AREA, "topk-above-patches", _on_patches("topk=1000", mentions=("topk=1000", "patch")), quick=False
        ),
        Case(AREA, "frames-above-isa", _on_patches("isa_frames=2", mentions=("isa_frames",)), quick=False),
        Case(AREA, "words-above-isa", _on_patches("isa_words=3", mentions=("isa_words",)), quick=False),
        Case(AREA, "defaults-spelled-out", _defaults_spelled_out, quick=False),
        Case(AREA, "non-default-in-label", _non_default_in_label, quick=False),
        Case(AREA, "mixed-grid-on-patch-cache", _mixed_grid, quick=False),
    ]
    return out
