"""Each default is declared once, in vtrbench/defaults.py, and every way in reads it from there.

The command line (the defaults click holds and the ``[default: …]`` its ``--help`` prints), the
Python API's signatures, ``RunSpec`` (which grid files and tuning build on), ``TrainConfig`` and the
evaluation options are compared with that one module. A default changed there moves them all;
one written again anywhere else, with another value, fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import click
import pytest
from vtrbench.eval import EvalOptions

from vtrbench import api, defaults
from vtrbench.cli import cli
from vtrbench.config import TrainConfig, check_post_options
from vtrbench.runs.grid import Grid, grid_specs
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
EVERY = {**RECIPE, **INFERENCE, "overwrite": defaults.OVERWRITE}


def _command(name: str) -> click.Command:
    return cli.commands[name]


def _help(name: str) -> str:
    ctx = click.Context(_command(name), info_name=name)
    return re.sub(r"\s+", " ", _command(name).get_help(ctx))


@pytest.mark.parametrize("command", ["train", "ablate", "eval"])
def test_the_command_line_defaults_are_the_one_place(command: str) -> None:
    params = {p.name: p for p in _command(command).params}
    checked = 0
    for name, value in EVERY.items():
        if name not in params:
            continue
        assert params[name].default == value, f"{command} --{name}"
        flag = "--" + name.replace("_", "-")
        shown = re.search(re.escape(flag) + r"[^\[]*\[default: ([^\]]+)\]", _help(command))
        assert shown is not None, f"{command} {flag} does not show its default"
        assert shown.group(1) == str(value), f"{command} {flag} shows {shown.group(1)}"
        checked += 1
    assert checked >= (12 if command != "eval" else 6)


def test_the_post_processing_help_names_the_defaults() -> None:
    text = _help("train")
    for key, value in defaults.POST_DEFAULTS.items():
        assert re.search(rf"{key} \([^)]*{value:g}\)", text), key


@pytest.mark.parametrize(
    "function", ["evaluate_head", "evaluate_embeddings", "evaluate_similarity", "train_head", "run_eval"]
)
def test_the_api_signatures_are_the_one_place(function: str) -> None:
    params = inspect.signature(getattr(api, function)).parameters
    aliases = {"bank_size": "qb_bank"}
    seen = 0
    for pname, p in params.items():
        name = aliases.get(pname, pname)
        if name in EVERY and p.default is not inspect.Parameter.empty:
            assert p.default == EVERY[name], f"api.{function}({pname}=...)"
            seen += 1
    assert seen or function == "train_head"


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
    base = RunSpec(cache_path=tmp_path / "c.h5", head="meanp", loss="infonce")
    (spec,) = [s for s, _ in grid_specs(Grid(heads=["meanp"], losses=["infonce"], seeds=[0]), base)]
    for name, value in EVERY.items():
        assert getattr(spec, name) == value, f"grid point {name}"


def test_evaluation_options_are_the_one_place() -> None:
    opts = EvalOptions()
    for name in ("is_beta", "csls_k", "sinkhorn_iters", "sinkhorn_eps"):
        assert getattr(opts, name) == defaults.POST_DEFAULTS[name]
    assert check_post_options({}, complete=True) == dict(defaults.POST_DEFAULTS)


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
        if pattern.search(line)
    ]
    assert not hits, "\n".join(hits)
