"""Faults of a run's identity and of the small files a run reads (issue 28, the first fixes).

Classes covered:

- a post-processing default spelled out (``--post-option is_beta=20``, or in a grid file) must be the
  same run as leaving it out: same run id, found as done, so that ``report`` sees one configuration;
- the same ``--post-option`` key twice (``is_beta=10`` then ``is_beta=30``): refused, as
  ``--head-option`` refuses it, instead of the last value silently winning;
- a grid or ``--space`` file that is a device (``/dev/zero``) or far larger than any such file:
  refused in one line before anything is read whole (it filled 24 GB before the OOM killer);
- ``api.evaluate_head`` without a bank: the default post-processings are the ones the inputs allow.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    tiny_cache,
    train_argv,
)

AREA = "identity"


def _default_spelled_out(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    cache = tiny_cache(ctx)
    first = run_cli(train_argv(cache, results))
    if first.code != 0:
        return Outcome("traceback" if "Traceback" in first.text else "unclear", first.text[-300:])
    again = run_cli(train_argv(cache, results, "--post-option", "is_beta=20", "--post-option", "csls_k=10"))

    def check() -> str | None:
        files = sorted(results.rglob("*.json"))
        if len(files) != 1:
            return f"{len(files)} result files for one configuration: {[f.name for f in files]}"
        if "skipped" not in again.text:
            return "the spelled-out defaults were trained again instead of being found as done"
        report = run_cli(["report", results])
        if report.code != 0:
            return f"report refused the folder: {report.text[-200:]}"
        return None

    return expect_ok(again, check)


def _duplicate_post_option(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    r = run_cli(
        train_argv(tiny_cache(ctx), results, "--post-option", "is_beta=10", "--post-option", "is_beta=30")
    )
    out = expect_error(r, "is_beta", "twice")
    if out.kind == "clear_error" and results.exists() and any(results.rglob("*.json")):
        return Outcome("silently_wrong", "a result was written")
    return out


def _space_file_is_a_device(tmp: Path, ctx: Context) -> Outcome:
    r = run_cli(["tune", "--cache", tiny_cache(ctx), "--heads", "meanp", "--losses", "infonce", "--trials", "1",  # noqa: E501
                 "--study", tmp / "s.db", "--space", "/dev/zero", "--device", "cpu"])  # fmt: skip
    return expect_error(r, "/dev/zero", "regular file")


def _grid_file_too_large(tmp: Path, ctx: Context) -> Outcome:
    grid = tmp / "grid.toml"
    grid.write_text('heads = ["meanp"]\n# ' + "x" * (2 * 1024 * 1024) + "\n")
    r = run_cli(["ablate", "--cache", tiny_cache(ctx), "--grid", grid, "--device", "cpu", "--quiet",
                 "--results", tmp / "results"])  # fmt: skip
    return expect_error(r, str(grid), "KiB")


def _api_evaluate_head_without_bank(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench import api
    from vtrbench.errors import VtrbenchError

    try:
        with api.open_cache(tiny_cache(ctx)) as cache:
            test = api.load_split(cache, "test")
            embed_dim = int(cache.attrs["embed_dim"])
        out = api.evaluate_head(api.create_head("zeroshot", embed_dim=embed_dim), test)
    except VtrbenchError as e:
        return Outcome("silently_wrong", f"a valid call was refused: {e}"[:200])
    except Exception as e:  # noqa: BLE001 - any other exception is the fault being looked for
        return Outcome("traceback", f"{type(e).__name__}: {e}"[:200])
    if sorted(out["metrics"]) != ["dsl", "raw"]:
        return Outcome("silently_wrong", f"computed {sorted(out['metrics'])} without a bank")
    return Outcome("handled", "raw and dsl, the default post-processings a call without a bank allows")


def cases() -> list[Case]:
    return [
        Case(AREA, "post-option-default-spelled-out", _default_spelled_out, quick=False),
        Case(AREA, "post-option-twice", _duplicate_post_option, quick=True),
        Case(AREA, "space-file-is-a-device", _space_file_is_a_device, quick=True),
        Case(AREA, "grid-file-too-large", _grid_file_too_large, quick=True),
        Case(AREA, "api-evaluate-head-without-bank", _api_evaluate_head_without_bank, quick=True),
    ]
