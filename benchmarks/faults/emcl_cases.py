"""Faults of EMCL (issue 26): the head option ``emcl=true`` (+ its parameters) of the factorised heads
and the transductive post-processing ``emcl`` (``--post-option emcl_*``).

Classes covered:

- head option values a user can get wrong (not a bool, 0, negative, NaN, a huge iteration count, a
  momentum above 1): one line naming the head and the option, before any cache is opened; ``emcl`` on
  a pairwise head is an unknown option of that head; a parameter without ``emcl=true``: one line, no
  result.
- post options (NaN, 0, negative, a huge iteration count, a negative seed): refused before training,
  nothing written; ``--post-option emcl_*`` on a pairwise head: refused before training; ``emcl`` asked
  of a pairwise head's evaluation through the API: one line.
- defaults spelled out (``--post-option emcl_k=7``, ``--head-option emcl=false``, ``emcl=true`` with
  ``emcl_k=32``) give the run id of the run that leaves them out.
- a valid ``emcl=true`` run trains, records the option, and its result has an ``emcl`` block labelled
  transductive; a pairwise run has none.
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
    expect_refused_before_training,
    run_cli,
    tiny_cache,
    tiny_results,
    train_argv,
)

AREA = "emcl"

BAD_HEAD = {
    "not-bool": ("meanp", "emcl=maybe", "emcl"),
    "k-zero": ("seqtransf", "emcl_k=0", "emcl_k"),
    "lambda-nan": ("meanp", "emcl_lambda=nan", "emcl_lambda"),
    "lambda-zero": ("seqlstm", "emcl_lambda=0", "emcl_lambda"),
    "beta-negative": ("camoe", "emcl_beta=-1", "emcl_beta"),
    "iters-huge": ("meanp", "emcl_iters=100000000", "emcl_iters"),
    "momentum-above-1": ("meanp", "emcl_momentum=1.5", "emcl_momentum"),
    "on-pairwise-xpool": ("xpool", "emcl=true", "emcl"),
    "on-pairwise-wti": ("wti", "emcl=true", "emcl"),
}
BAD_POST = {
    "lambda-nan": ("emcl_lambda=nan", "emcl_lambda"),
    "lambda-zero": ("emcl_lambda=0", "emcl_lambda"),
    "beta-zero": ("emcl_beta=0", "emcl_beta"),
    "beta-negative": ("emcl_beta=-4", "emcl_beta"),
    "beta-inf": ("emcl_beta=inf", "emcl_beta"),
    "iters-zero": ("emcl_iters=0", "emcl_iters"),
    "iters-huge": ("emcl_iters=100000000", "emcl_iters"),
    "k-huge": ("emcl_k=1000000", "emcl_k"),
    "seed-negative": ("emcl_seed=-1", "emcl_seed"),
}


def _bad_head_option(name: str) -> Callable[[Path, Context], Outcome]:
    head, option, mention = BAD_HEAD[name]

    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = ["train", "--cache", tmp / "no-cache.h5", "--head", head, "--head-option", option]
        out = run_cli([*argv, "--results", tmp / "r", "--quiet"])
        if "no-cache.h5" in out.text:
            return Outcome("silently_wrong", "the cache was looked at before the head option was checked")
        return expect_error(out, head, mention)

    return run


def _refused_before_training(argv: list[Any], results: Path, *mentions: str) -> Outcome:
    return expect_refused_before_training(run_cli(argv), results, *mentions)


def _bad_post_option(name: str) -> Callable[[Path, Context], Outcome]:
    option, mention = BAD_POST[name]

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        return _refused_before_training(
            train_argv(tiny_cache(ctx), results, "--post-option", option), results, mention
        )

    return run


def _param_without_emcl(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    argv = train_argv(tiny_cache(ctx), results, "--head-option", "emcl_k=16")
    return _refused_before_training(argv, results, "emcl_k", "emcl=true")


def _post_option_on_pairwise(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    argv = train_argv(tiny_cache(ctx), results, "--post-option", "emcl_k=3")
    argv[argv.index("meanp")] = "xpool"
    return _refused_before_training(argv, results, "emcl_k", "xpool", "pairwise")


def _pairwise_api(tmp: Path, ctx: Context) -> Outcome:
    import torch

    from vtrbench.errors import VtrbenchError
    from vtrbench.eval import evaluate_pairwise

    x = torch.randn(6, 4)
    try:
        evaluate_pairwise(
            lambda a, b: a["x"] @ b["x"].T, {"x": x}, {"x": x}, torch.arange(6), logit_scale=100.0,
            block=(2, 2), postprocessing=["emcl"],
        )  # fmt: skip
    except VtrbenchError as e:
        msg = str(e)
        if "\n" in msg or "emcl" not in msg:
            return Outcome("silently_wrong", f"the refusal does not name emcl in one line: {msg[:200]}")
        return Outcome("clear_error", msg[:200])
    except Exception as e:  # noqa: BLE001 - any other exception is the fault being looked for
        return Outcome("traceback", f"{type(e).__name__}: {e}"[:200])
    return Outcome("silently_wrong", "emcl was computed for a pairwise head")


def _config_hash(results: Path) -> str | None:
    files = sorted(results.rglob("*.s0.json"))
    return json.loads(files[0].read_text())["config_hash"] if files else None


def _same_id(extra: list[str], baseline_extra: list[str] | None) -> Callable[[Path, Context], Outcome]:
    """The run with ``extra`` has the run id of the one with ``baseline_extra`` (None: the tiny results)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        cache = tiny_cache(ctx)
        if baseline_extra is None:
            baseline = _config_hash(tiny_results(ctx))
        else:
            base_run = run_cli(train_argv(cache, tmp / "base", *baseline_extra))
            if base_run.code != 0:
                return Outcome("silently_wrong", f"the baseline run failed: {base_run.text[-200:]}")
            baseline = _config_hash(tmp / "base")
        r = run_cli(train_argv(cache, tmp / "results", *extra))

        def check() -> str | None:
            got = _config_hash(tmp / "results")
            return None if got == baseline else f"config hash {got} differs from {baseline}"

        return expect_ok(r, check)

    return run


def _trains_and_labels(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    r = run_cli(
        train_argv(tiny_cache(ctx), results, "--head-option", "emcl=true", "--head-option", "emcl_k=4")
    )

    def check() -> str | None:
        (path,) = results.rglob("*.json")
        data = json.loads(path.read_text())
        options = data["config"]["head_options"]
        if options.get("emcl") is not True or options.get("emcl_k") != 4 or "emcl" not in data["label"]:
            return f"the option is not recorded: {data['label']} {options}"
        if "emcl" not in data["metrics"] or data.get("transductive", {}).get("emcl") is not True:
            return "no emcl block labelled transductive in the result"
        recorded = (data["protocol"].get("post_options") or {}).get("emcl") or {}
        if recorded.get("k") != 7 or recorded.get("seed") != 0:
            return f"the post-processing's parameters are not recorded: {recorded}"
        return None

    return expect_ok(r, check)


def _pairwise_run_has_no_emcl(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    argv = train_argv(tiny_cache(ctx), results, "--epochs", "1")
    argv[argv.index("meanp")] = "xpool"
    r = run_cli(argv)

    def check() -> str | None:
        (path,) = results.rglob("*.json")
        data = json.loads(path.read_text())
        return "a pairwise run reports an emcl block" if "emcl" in data["metrics"] else None

    return expect_ok(r, check)


def cases() -> list[Case]:
    quick_head = {"lambda-nan", "iters-huge", "on-pairwise-xpool"}
    out = [Case(AREA, f"head-option-{n}", _bad_head_option(n), quick=n in quick_head) for n in BAD_HEAD]
    out += [Case(AREA, f"post-option-{n}", _bad_post_option(n), quick=n == "lambda-nan") for n in BAD_POST]
    out += [
        Case(AREA, "head-param-without-emcl", _param_without_emcl, quick=False),
        Case(AREA, "post-option-on-pairwise-head", _post_option_on_pairwise, quick=False),
        Case(AREA, "emcl-post-pairwise-api", _pairwise_api, quick=True),
        Case(
            AREA,
            "post-defaults-spelled-out-same-id",
            _same_id(["--seed", "0", "--post-option", "emcl_k=7", "--post-option", "emcl_beta=4"], None),
            quick=False,
        ),
        Case(AREA, "head-emcl-false-same-id", _same_id(["--head-option", "emcl=false"], None), quick=False),
        Case(
            AREA,
            "head-emcl-defaults-spelled-out-same-id",
            _same_id(
                ["--head-option", "emcl=true", "--head-option", "emcl_k=32", "--head-option", "emcl_beta=3"],
                ["--head-option", "emcl=true"],
            ),
            quick=False,
        ),
        Case(AREA, "emcl-trains-and-is-labelled", _trains_and_labels, quick=False),
        Case(AREA, "pairwise-run-has-no-emcl-block", _pairwise_run_has_no_emcl, quick=False),
    ]
    return out
