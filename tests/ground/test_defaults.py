"""Each default is declared once, in vtrbench/defaults.py, and every way in reads it from there.

The command line (the defaults click holds and the ``[default: …]`` its ``--help`` prints), the
Python API's signatures, ``RunSpec`` (which grid files and tuning build on), ``TrainConfig`` and the
evaluation options are compared with that one module. Equal values could still be copies, so
``test_every_way_in_reads_the_one_place`` runs the same checks again in a fresh process in which
every default was changed in defaults.py before anything else was imported: a copy keeps the old
value and fails there.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import click
import pytest

from vtrbench import api, defaults
from vtrbench.cli import cli
from vtrbench.cli.options import run_spec_from_options
from vtrbench.config import TrainConfig, check_post_options
from vtrbench.eval import EvalOptions
from vtrbench.eval.options import PostParams
from vtrbench.runs.grid import load_grid
from vtrbench.runs.spec import RunSpec

# option name -> its value in defaults.py
RECIPE = {
    "epochs": defaults.EPOCHS,
    "batch_size": defaults.BATCH_SIZE,
    "lr": defaults.LR,
    "weight_decay": defaults.WEIGHT_DECAY,
    "warmup": defaults.WARMUP,
    "val_fraction": defaults.VAL_FRACTION,
}
INFERENCE = {
    "v2t_protocol": defaults.V2T_PROTOCOL,
    "mdr": defaults.MDR,
    "dsl_tau": defaults.DSL_TAU,
    "qb_bank": defaults.QB_BANK,
    "qb_beta": defaults.QB_BETA,
    "qb_k": defaults.QB_K,
}
EVERY = {**RECIPE, **INFERENCE, "overwrite": defaults.OVERWRITE, "compile": defaults.COMPILE}


def _command(name: str) -> click.Command:
    return cli.commands[name]


def _help(name: str) -> str:
    ctx = click.Context(_command(name), info_name=name)
    return re.sub(r"\s+", " ", _command(name).get_help(ctx))


def _shown_default(command: str, param: click.Parameter) -> str | None:
    """The value ``--help`` prints in the option's ``[default: …]`` (click appends the range after ';')."""
    record = param.get_help_record(click.Context(_command(command), info_name=command))
    found = re.search(r"\[default: ([^;\]]+)", re.sub(r"\s+", " ", record[1])) if record else None
    return found.group(1) if found else None


@pytest.mark.parametrize("command", ["train", "ablate", "eval"])
def test_the_command_line_defaults_are_the_one_place(command: str) -> None:
    params = {p.name: p for p in _command(command).params}
    checked = 0
    for name, value in EVERY.items():
        if name not in params:
            continue
        assert params[name].default == value, f"{command} --{name}"
        assert _shown_default(command, params[name]) == str(value), f"{command} --help: {name}"
        checked += 1
    assert checked >= (12 if command != "eval" else 6)


def test_the_post_processing_help_names_the_defaults() -> None:
    text = _help("train")
    for key, value in defaults.POST_DEFAULTS.items():
        assert re.search(rf"{key} \([^)]*{value:g}\)", text), key


API_DEFAULTS = {
    **EVERY,
    "bank_size": defaults.QB_BANK,
    "chunk_size": defaults.CHUNK_SIZE,
    "batch": defaults.EMBED_BATCH,
    "results_dir": defaults.RESULTS_DIR,
}


@pytest.mark.parametrize(
    "function, least",
    [
        ("evaluate_head", 6),
        ("evaluate_embeddings", 6),
        ("evaluate_similarity", 2),
        ("embed", 1),
        ("run_eval", 1),
    ],
)
def test_the_api_signatures_are_the_one_place(function: str, least: int) -> None:
    params = inspect.signature(getattr(api, function)).parameters
    seen = 0
    for name, p in params.items():
        if name in API_DEFAULTS and p.default is not inspect.Parameter.empty:
            assert p.default == API_DEFAULTS[name], f"api.{function}({name}=...)"
            seen += 1
    assert seen >= least
    if function == "evaluate_embeddings":  # evaluate_head: None, the defaults the inputs allow
        assert params["postprocessing"].default == defaults.POSTPROCESSING


def test_run_spec_and_train_config_are_the_one_place() -> None:
    spec_fields = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    config_fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, value in EVERY.items():
        assert spec_fields[name] == value, f"RunSpec.{name}"
        if name in config_fields:
            assert config_fields[name] == value, f"TrainConfig.{name}"
    for name in ("betas", "eps", "grad_clip"):
        assert config_fields[name] == getattr(defaults, name.upper())


def test_a_grid_file_without_values_runs_the_defaults(tmp_path: Any) -> None:
    # what `vtrbench ablate --grid FILE` does: the command line's options (here all defaults), then
    # the grid file's [train] table on top
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text('heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n[train]\n')
    ctx = cli.commands["ablate"].make_context("ablate", ["--cache", str(tmp_path / "c.h5")])
    base = run_spec_from_options({**ctx.params, "head": "meanp", "loss": "infonce", "device": "cpu"})
    spec = dataclasses.replace(base, **load_grid(grid_file).train)
    for name, value in EVERY.items():
        assert getattr(spec, name) == value, f"grid point {name}"


def test_evaluation_options_are_the_one_place() -> None:
    opts = EvalOptions(logit_scale=1.0)
    assert (opts.dsl_tau, opts.qb_beta, opts.qb_k) == (defaults.DSL_TAU, defaults.QB_BETA, defaults.QB_K)
    assert (opts.v2t_protocol, opts.mdr, opts.chunk_size) == (
        defaults.V2T_PROTOCOL,
        defaults.MDR,
        defaults.CHUNK_SIZE,
    )
    params = {f.name: f.default for f in dataclasses.fields(PostParams)}
    for name in ("is_beta", "csls_k", "sinkhorn_iters", "sinkhorn_eps", "sinkhorn_tol"):
        assert params[name] == defaults.POST_DEFAULTS[name]
    assert check_post_options({}, complete=True) == dict(defaults.POST_DEFAULTS)


def test_report_tests_read_the_one_place() -> None:
    # the level of the report's tests and the decomposition's target cell (issue 27)
    from vtrbench.report import stats
    from vtrbench.report.decomposition import decompose

    assert stats.ALPHA == defaults.SIGNIFICANCE
    assert inspect.signature(decompose).parameters["alpha"].default == defaults.SIGNIFICANCE
    assert ":".join(defaults.DECOMPOSITION_TARGET) in _help("report")


# Other values for every default, set before vtrbench's other modules are imported.
SENTINELS = {
    "EPOCHS": 7,
    "BATCH_SIZE": 96,
    "LR": 3e-4,
    "WEIGHT_DECAY": 0.3,
    "WARMUP": 0.2,
    "VAL_FRACTION": 0.05,
    "V2T_PROTOCOL": "any-caption",
    "MDR": "clip4clip",
    "DSL_TAU": 2.0,
    "QB_BANK": 4000,
    "QB_BETA": 21.5,
    "QB_K": 2,
    "IS_BETA": 19.5,
    "CSLS_K": 9,
    "SINKHORN_ITERS": 6,
    "SINKHORN_EPS": 0.04,
    "SINKHORN_TOL": 1e-7,
    "SIGNIFICANCE": 0.01,
    "DECOMPOSITION_TARGET": ("dsl", "sinkhorn"),
    "OVERWRITE": "always",
    "COMPILE": "max-autotune",
    "CHUNK_SIZE": 512,
    "EMBED_BATCH": 256,
    "RESULTS_DIR": "results-elsewhere",
}
CHANGED = """
import sys, types
import pytest
from vtrbench import defaults
for name, value in {sentinels!r}.items():
    setattr(defaults, name, value)
defaults.POST_DEFAULTS = types.MappingProxyType({{
    "is_beta": defaults.IS_BETA, "csls_k": defaults.CSLS_K,
    "sinkhorn_iters": defaults.SINKHORN_ITERS, "sinkhorn_eps": defaults.SINKHORN_EPS,
    "sinkhorn_tol": defaults.SINKHORN_TOL}})
assert not [m for m in sys.modules if m.startswith("vtrbench.") and m != "vtrbench.defaults"]
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", {path!r}, "-k", "not reads_the_one_place"]))
"""


def test_every_way_in_reads_the_one_place(tmp_path: Any) -> None:
    import subprocess
    import sys

    code = CHANGED.format(sentinels=SENTINELS, path=__file__)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def test_no_module_writes_a_default_again() -> None:
    # the literal values of the defaults most often copied, next to their option names, anywhere in
    # vtrbench/ but defaults.py
    import pathlib

    root = pathlib.Path(api.__file__).parent
    pattern = re.compile(
        r"\b(qb_beta|dsl_tau|v2t_protocol|qb_bank|csls_k|is_beta|sinkhorn_iters|sinkhorn_eps)\b"
        r"\s*(?::\s*[\w|\[\], ]+)?\s*=\s*(20\.0|1\.0|\"clip4clip\"|5000|10|5|0\.05)\b"
    )
    hits = [
        f"{p.relative_to(root.parent)}:{i}: {line.strip()}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "defaults.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line.split("#")[0])
    ]
    assert not hits, "\n".join(hits)
