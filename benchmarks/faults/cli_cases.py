"""Faults in command-line use: unknown names, missing inputs, pretrained weights without a network,
listings and ``inspect`` on a result file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    environment,
    expect_error,
    expect_ok,
    extract_argv,
    run_cli,
    synthetic_dataset,
)

PROXIES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def _offline_extract(**env: str) -> Callable[[Path, Context], Outcome]:
    """``--pretrained openai`` with the hub switched off or unreachable: one line naming both ways on,
    no cache file, and no retry loop (the case's time limit would catch one of ~1 minute)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        argv = extract_argv(synthetic_dataset(ctx), tmp / "c.h5")
        argv[argv.index("--model") + 1] = "ViT-B-32"
        argv[argv.index("--pretrained") + 1] = "openai"
        unset = ("HF_HUB_OFFLINE", *PROXIES) if "HF_HUB_OFFLINE" not in env else PROXIES
        with environment(unset=unset, **env):
            r = run_cli(argv)
        out = expect_error(r, "ViT-B-32/openai", "--pretrained none", "--pretrained /path/to/checkpoint.pt",
                           "--preprocess-like openai")  # fmt: skip
        if out.kind == "clear_error" and (tmp / "c.h5").exists():
            return Outcome("silently_wrong", "a cache file was written although no weights could load")
        return out

    return run


def _describe_foo(tmp: Path, ctx: Context) -> Outcome:
    r = run_cli(["heads", "describe", "foo"])
    out = expect_error(r, "unknown head 'foo'")
    return (
        Outcome("silently_wrong", "suggests a name that is not alike: " + r.err)
        if "did you mean" in r.err
        else out
    )


def _describe_options(tmp: Path, ctx: Context) -> Outcome:
    r = run_cli(["heads", "describe", "camoe"])
    want = ("head camoe (built in)", "aux_weight", "a finite number >= 0", "head.layers")
    return expect_ok(r, lambda: next((f"the description lacks {w!r}" for w in want if w not in r.out), None))


def _listing_origins(tmp: Path, ctx: Context) -> Outcome:
    r = run_cli(["heads"])
    bare = [line for line in r.out.splitlines() if line and "  " not in line]
    return expect_ok(r, lambda: f"listed without an origin: {bare}" if bare else None)


def _inspect_result(tmp: Path, ctx: Context) -> Outcome:
    from benchmarks.faults.core import tiny_results

    (path, *_) = sorted(tiny_results(ctx).rglob("*.json"))
    before = path.read_bytes()
    summary = run_cli(["inspect", path])
    whole = run_cli(["inspect", path, "--json"])
    if path.read_bytes() != before:
        return Outcome("lost", "inspect changed the result file")

    def check() -> str | None:
        if len(summary.out.splitlines()) > 60 or "per_query_ranks" in summary.out.split("not shown")[0]:
            return f"the summary is {len(summary.out.splitlines())} lines or dumps the per-query ranks"
        if json.loads(whole.out) != json.loads(before):
            return "--json does not print the whole file"
        return None if json.loads(before)["run_id"] in summary.out else "the summary lacks the run id"

    return expect_ok(summary if whole.code == 0 else whole, check)


def _inspect_cache_json(tmp: Path, ctx: Context) -> Outcome:
    from benchmarks.faults.core import tiny_cache

    return expect_error(run_cli(["inspect", tiny_cache(ctx), "--json"]), "--json")


def _unknown_dataset(tmp: Path, ctx: Context) -> Outcome:
    return expect_error(run_cli(["extract", "--dataset", "msrvt", "--annotations", tmp]), "msrvt")


def _report_missing_path(tmp: Path, ctx: Context) -> Outcome:
    missing = tmp / "no-such-results"
    return expect_error(run_cli(["report", missing]), str(missing))


def _inspect_missing_file(tmp: Path, ctx: Context) -> Outcome:
    missing = tmp / "nothing.h5"
    return expect_error(run_cli(["inspect", missing]), "nothing.h5")


def cases() -> list[Case]:
    return [
        Case("cli", "unknown-dataset", _unknown_dataset),
        Case("cli", "report-missing-path", _report_missing_path),
        Case("cli", "inspect-missing-file", _inspect_missing_file),
        Case("cli", "report-of-fixture", _report_of_fixture),
        Case("cli", "extract-pretrained-with-hub-offline", _offline_extract(HF_HUB_OFFLINE="1")),
        Case(
            "cli",
            "extract-pretrained-hub-unreachable",
            _offline_extract(HF_ENDPOINT="http://127.0.0.1:9"),  # the discard port: nothing listens
            quick=False,
        ),
        Case("cli", "heads-describe-unlike-name", _describe_foo),
        Case("cli", "heads-describe-options", _describe_options, quick=False),
        Case("cli", "heads-list-origins", _listing_origins, quick=False),
        Case("cli", "inspect-result-summary-and-json", _inspect_result, quick=False),
        Case("cli", "inspect-cache-with-json", _inspect_cache_json, quick=False),
    ]


def _report_of_fixture(tmp: Path, ctx: Context) -> Outcome:
    from benchmarks.faults.core import expect_ok, tiny_results

    results = tiny_results(ctx)
    run = run_cli(["report", results])
    return expect_ok(run, lambda: None if "meanp" in run.text else "the report does not show meanp")
