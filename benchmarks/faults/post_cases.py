"""Faults of the hubness post-processings (issue 22): their parameters and their bank.

Classes covered:

- ``--post-option`` values a user can get wrong (beta <= 0, NaN, zero iterations or more than the
  cap, a negative, NaN or infinite ``sinkhorn_tol``, a float k, an unknown key, no ``=``), on train,
  eval and a grid file: refused with one line before any work, nothing written.
- ``csls_k`` larger than the test gallery or the bank: refused before training, naming the option.
- a bank-based post-processing asked through the Python API without a bank: one line naming the fix.
- a result file whose new blocks are mislabelled (``transductive.is-test = false``): report refuses it.
- a valid ``--post-option`` is recorded in the result (config and protocol) and changes the run id;
  with ``sinkhorn_tol`` the iterations Sinkhorn ran are recorded too, within the cap.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from benchmarks.faults.core import (
    Case,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    tiny_cache,
    tiny_results,
    train_argv,
)

AREA = "post"

BAD = {
    "beta-zero": ("is_beta=0", "is_beta"),
    "beta-negative": ("is_beta=-2", "is_beta"),
    "eps-nan": ("sinkhorn_eps=nan", "sinkhorn_eps"),
    "iters-zero": ("sinkhorn_iters=0", "sinkhorn_iters"),
    "iters-beyond-cap": ("sinkhorn_iters=1001", "sinkhorn_iters"),
    "iters-huge": ("sinkhorn_iters=100000000", "sinkhorn_iters"),
    # issue 28: factors whose float32 normalisers overflow; they were refused only after training
    "beta-huge": ("is_beta=1e300", "is_beta"),
    "beta-past-bound": ("is_beta=2e6", "is_beta"),
    "eps-tiny": ("sinkhorn_eps=1e-300", "sinkhorn_eps"),
    "tol-negative": ("sinkhorn_tol=-1e-6", "sinkhorn_tol"),
    "tol-nan": ("sinkhorn_tol=nan", "sinkhorn_tol"),
    "tol-inf": ("sinkhorn_tol=inf", "sinkhorn_tol"),
    "k-float": ("csls_k=2.5", "csls_k"),
    "unknown-key": ("beta=3", "beta"),
    "no-equals": ("is_beta", "KEY=VALUE"),
}


def _nothing_written(results: Path) -> str | None:
    left = list(results.rglob("*.json")) if results.exists() else []
    return f"a result was written: {left[0]}" if left else None


def _bad_option(name: str, command: str) -> Callable[[Path, Context], Outcome]:
    option, mention = BAD[name]

    def run(tmp: Path, ctx: Context) -> Outcome:
        results = tmp / "results"
        cache = tiny_cache(ctx)
        if command == "train":
            r = run_cli(train_argv(cache, results, "--post-option", option))
        elif command == "eval":
            r = run_cli(["eval", "--cache", cache, "--head", "zeroshot", "--device", "cpu",
                         "--results", results, "--post-option", option])  # fmt: skip
        else:  # a grid file: [train] post_options = {KEY = VALUE}
            key, _, value = option.partition("=")
            grid = tmp / "grid.toml"
            toml_value = {"nan": "nan", "": '"x"'}.get(value, value)
            grid.write_text(
                'heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n'
                f"[train]\nepochs = 1\nbatch_size = 8\npost_options = {{ {key} = {toml_value} }}\n"
            )
            r = run_cli(["ablate", "--cache", cache, "--grid", grid, "--device", "cpu", "--quiet",
                         "--results", results])  # fmt: skip
        out = expect_error(r, mention)
        if out.kind == "clear_error" and (problem := _nothing_written(results)):
            return Outcome("silently_wrong", problem)
        if out.kind == "clear_error" and "epoch" in r.text.lower() and command != "eval":
            return Outcome("silently_wrong", "refused only after training")
        return out

    return run


def _csls_k_too_large(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    r = run_cli(train_argv(tiny_cache(ctx), results, "--post-option", "csls_k=100000"))
    out = expect_error(r, "csls_k 100000")
    if out.kind == "clear_error" and (problem := _nothing_written(results)):
        return Outcome("silently_wrong", problem)
    if out.kind == "clear_error" and "epoch" in r.text.lower():
        return Outcome("silently_wrong", "refused only after training")
    return out


def _bank_post_without_bank(tmp: Path, ctx: Context) -> Outcome:
    import numpy as np

    from vtrbench.errors import VtrbenchError
    from vtrbench.eval import evaluate_embeddings

    rng = np.random.default_rng(0)
    text, video = rng.normal(size=(12, 8)), rng.normal(size=(6, 8))
    try:
        evaluate_embeddings(text, video, np.arange(12) % 6, logit_scale=100.0, postprocessing=["csls-bank"])
    except VtrbenchError as e:
        msg = str(e)
        if "\n" in msg or "bank_text" not in msg or "--train-split" not in msg:
            return Outcome("silently_wrong", f"the refusal does not name the fix: {msg[:200]}")
        return Outcome("clear_error", msg[:200])
    except Exception as e:  # noqa: BLE001 - any other exception is the fault being looked for
        return Outcome("traceback", f"{type(e).__name__}: {e}"[:200])
    return Outcome("silently_wrong", "csls-bank without a bank was evaluated")


def _api_bound(where: str, option: dict[str, float]) -> Callable[[Path, Context], Outcome]:
    """Past the float32 bound through the Python API (RunSpec, evaluate_embeddings): one line naming
    the key, before any work (issue 28: they trained the whole run, then failed on the top-k scores)."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        from vtrbench import api
        from vtrbench.errors import VtrbenchError

        (key,) = option
        try:
            if where == "RunSpec":
                api.RunSpec(cache_path=tiny_cache(ctx), head="meanp", loss="infonce", post_options=option)
            else:
                eye = [[1.0, 0.0], [0.0, 1.0]]
                api.evaluate_embeddings(eye, eye, [0, 1], logit_scale=100.0, postprocessing=["is-test",
                                        "sinkhorn"], post_options=option)  # fmt: skip
        except VtrbenchError as e:
            msg = str(e)
            ok = key in msg and "\n" not in msg
            return Outcome("clear_error" if ok else "silently_wrong", msg[:200])
        except Exception as e:  # noqa: BLE001 - any other exception is the fault being looked for
            return Outcome("traceback", f"{type(e).__name__}: {e}"[:200])
        return Outcome("silently_wrong", f"{where} accepted {option}")

    return run


def _mislabelled_block(tmp: Path, ctx: Context) -> Outcome:
    results = tmp / "results"
    shutil.copytree(tiny_results(ctx), results)
    path = sorted(results.rglob("*.json"))[0]
    data = json.loads(path.read_text())
    if "is-test" not in data.get("transductive", {}):
        return Outcome("silently_wrong", "the tiny results have no is-test block (not computed by default)")
    data["transductive"]["is-test"] = False
    path.write_text(json.dumps(data))
    return expect_error(run_cli(["report", results]), path.name)


def _option_recorded(tmp: Path, ctx: Context) -> Outcome:
    from vtrbench.results import read_result

    results = tmp / "results"
    r = run_cli(train_argv(tiny_cache(ctx), results, "--post-option", "sinkhorn_iters=40",
                           "--post-option", "csls_k=2", "--post-option", "sinkhorn_tol=1e-4"))  # fmt: skip

    def check() -> str | None:
        (path,) = results.rglob("*.json")
        data = read_result(path)
        if data["config"].get("post_options") != {"sinkhorn_iters": 40, "csls_k": 2, "sinkhorn_tol": 1e-4}:
            return f"config.post_options recorded as {data['config'].get('post_options')!r}"
        sinkhorn = dict(data["protocol"].get("post_options", {}).get("sinkhorn") or {})
        ran = sinkhorn.pop("iterations_run", None)
        if sinkhorn != {"sinkhorn_iters": 40, "sinkhorn_eps": 0.05, "sinkhorn_tol": 1e-4}:
            return f"protocol.post_options recorded as {data['protocol'].get('post_options')!r}"
        if not isinstance(ran, int) or not 1 <= ran <= 40:
            return f"iterations_run recorded as {ran!r}"
        default = next(tiny_results(ctx).rglob("*.s0.json"))
        if read_result(default)["config_hash"] == data["config_hash"]:
            return "a run with other post options has the default run's config hash"
        return None

    return expect_ok(r, check)


def cases() -> list[Case]:
    out = [
        Case(AREA, f"post-option-{name}-train", _bad_option(name, "train"), quick=name == "eps-nan")
        for name in BAD
    ]
    out += [Case(AREA, f"post-option-{name}-eval", _bad_option(name, "eval"), quick=False) for name in BAD]
    out += [
        Case(AREA, f"post-option-{name}-grid", _bad_option(name, "grid"), quick=False)
        for name in BAD
        if name != "no-equals"
    ]
    out += [
        Case(AREA, "csls-k-beyond-gallery", _csls_k_too_large, quick=True),
        Case(AREA, "beta-huge-runspec-api", _api_bound("RunSpec", {"is_beta": 1e300}), quick=False),
        Case(AREA, "eps-tiny-evaluate-api", _api_bound("evaluate", {"sinkhorn_eps": 1e-300}), quick=False),
        Case(AREA, "bank-post-without-bank-api", _bank_post_without_bank, quick=True),
        Case(AREA, "mislabelled-is-test-block", _mislabelled_block, quick=False),
        Case(AREA, "post-option-recorded", _option_recorded, quick=False),
    ]
    return out
