"""Every head option from the command line and grid files (issue 18.5), and the logit scale option.

One validation: a head's declared ``option_schema`` (vtrbench.config.OptionRule entries) is what
``create_head``, ``RunSpec``, ``--head-option KEY=VALUE`` and a grid file's ``[head_options]`` all
check against, so a value is refused with the same words whichever way it comes in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vtrbench.config import check_head_options, parse_head_option_pairs
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.heads._layers import option_names
from vtrbench.heads.base import HEADS, head_option_schema, list_heads
from vtrbench.runs.grid import ALL_HEADS, Grid, load_grid, validate_grid

D = 32
FAST = ("--epochs", "1", "--batch-size", "8", "--device", "cpu", "--quiet")
BUILTIN = (
    "camoe",
    "meanp",
    "seqlstm",
    "seqtransf",
    "tighttransf",
    "tmass",
    "ucofia",
    "wti",
    "xpool",
    "zeroshot",
)


# ---------------------------------------------------------------- the schemas


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_head_declares_exactly_its_constructor_options(name: str) -> None:
    """The schema is the list of options: a constructor keyword missing from it would be
    unreachable (refused as unknown), a schema key the constructor lacks would crash."""
    cls = HEADS.get(name)
    assert set(head_option_schema(name) or {"-"}) == set(option_names(cls)) or (
        name == "zeroshot" and head_option_schema(name) == {} and option_names(cls) == []
    )


def test_constructor_signatures_list_the_shared_options_where_they_always_stood() -> None:
    """The logit-scale keywords join a constructor's signature from heads/_common.py; the signature
    is the option list ``vtrbench tune`` names in its errors, so its order is part of the message."""
    scale = ["logit_scale", "logit_scale_init"]
    # a factorised head's EMCL options (issue 26) come last; a pairwise head has none
    emcl = ["emcl", "emcl_k", "emcl_iters", "emcl_lambda", "emcl_beta", "emcl_momentum"]
    assert option_names(HEADS.get("meanp")) == ["adapter", *scale, *emcl]
    assert option_names(HEADS.get("xpool")) == ["heads", "adapter", *scale]
    temporal = ["layers", "init", "heads", "max_frames"]
    assert option_names(HEADS.get("seqtransf")) == [*temporal, "adapter", "activation", *scale, *emcl]
    assert option_names(HEADS.get("wti"))[-3:] == [*scale, "padding"]
    fixed = HEADS.get("meanp")(D, logit_scale="fixed", logit_scale_init=20.0)  # direct construction
    assert fixed.describe() == {"adapter": True, "logit_scale": "fixed", "logit_scale_init": 20.0}


def test_logit_scale_is_an_option_of_every_trainable_head_with_a_scale() -> None:
    with_scale = {n for n in list_heads() if "logit_scale" in (head_option_schema(n) or {})}
    # tighttransf's score is the logit (scale fixed at 1, as CLIP4Clip); zeroshot trains nothing
    assert with_scale == set(BUILTIN) - {"tighttransf", "zeroshot"}


def test_describe_of_a_default_head_is_unchanged_so_run_ids_stay_the_same() -> None:
    """A default (learned) logit scale and wti's default agg=none are left out of describe(), which
    feeds the config hash: run ids of results made before these options existed still match."""
    assert create_head("meanp", embed_dim=D).describe() == {"adapter": True}
    assert create_head("xpool", embed_dim=D).describe() == {"heads": 1, "adapter": True}
    assert create_head("wti", embed_dim=D).describe() == {"mlp_layers": 2, "adapter": True}
    fixed = create_head("meanp", embed_dim=D, logit_scale="fixed")
    assert fixed.describe() == {"adapter": True, "logit_scale": "fixed"}
    assert fixed.label() == "meanp[logit_scale=fixed]"


@pytest.mark.parametrize("name", sorted(set(BUILTIN) - {"tighttransf", "zeroshot"}))
def test_logit_scale_init_starts_the_scale_and_is_searched(name: str) -> None:
    """``logit_scale_init`` is where the scale starts (and stays when fixed); tune searches it for every
    head that has a scale; its default (100) is left out of describe(), another value is in it."""
    assert "logit_scale_init" in head_option_schema(name)
    assert "logit_scale_init" in HEADS.get(name).search_space
    default = create_head(name, embed_dim=D)
    assert "logit_scale_init" not in default.describe()
    assert float(default.logit_scale().detach()) == pytest.approx(100.0)
    soft = create_head(name, embed_dim=D, logit_scale_init=20.0, logit_scale="fixed")
    assert float(soft.logit_scale().detach()) == pytest.approx(20.0)
    assert not soft.log_logit_scale.requires_grad
    assert soft.describe()["logit_scale_init"] == 20.0
    assert "logit_scale_init=20" in soft.label()
    learned = create_head(name, embed_dim=D, logit_scale_init=20.0)
    assert learned.log_logit_scale.requires_grad
    assert float(learned.logit_scale().detach()) == pytest.approx(20.0)


@pytest.mark.parametrize("value", [0, -1.0, 100.5, float("nan"), float("inf"), "big"])
def test_logit_scale_init_out_of_range_is_one_line(value) -> None:
    message = "head 'meanp' option logit_scale_init must be a finite number > 0"
    with pytest.raises(VtrbenchError, match=message):
        create_head("meanp", embed_dim=D, logit_scale_init=value)


@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "zeroshot"])
def test_describe_round_trips_through_create_head(name: str) -> None:
    """Checkpoints rebuild a head from describe(): every described value passes the schema."""
    options: dict = {"logit_scale": "fixed"} if "logit_scale" in head_option_schema(name) else {}
    if options:
        options["logit_scale_init"] = 30.0
    if name == "wti":
        options["agg"] = "seqtransf"
    head = create_head(name, embed_dim=D, **options)
    again = create_head(name, embed_dim=D, **head.describe())
    assert again.describe() == head.describe() and again.label() == head.label()


# ---------------------------------------------------------------- one validation, every way in

# (head, option, Python value, KEY=VALUE text, how the message starts, what it ends with)
BAD = [
    ("xpool", "heads", 0, "0", "head 'xpool' option heads must be an integer >= 1, got 0", ""),
    ("xpool", "heads", "two", "two", "head 'xpool' option heads must be an integer >= 1, got 'two'", ""),
    ("wti", "mlp_layers", 4, "4", "head 'wti' option mlp_layers must be 1, 2 or 3, got 4", ""),
    (
        "wti",
        "agg",
        "seqtrans",
        "seqtrans",
        "head 'wti' option agg must be one of none, seqtransf",
        "mean 'seqtransf'?",
    ),
    (
        "camoe",
        "aux_weight",
        float("nan"),
        "nan",
        "head 'camoe' option aux_weight must be a finite number",
        "nan",
    ),
    (
        "camoe",
        "aux_weight",
        -0.5,
        "-0.5",
        "head 'camoe' option aux_weight must be a finite number >= 0",
        "-0.5",
    ),
    (
        "camoe",
        "aux_weight",
        float("inf"),
        "inf",
        "head 'camoe' option aux_weight must be a finite number >= 0",
        "inf",
    ),
    ("seqtransf", "adapter", 1, "maybe", "head 'seqtransf' option adapter must be true or false, got", ""),
    (
        "meanp",
        "logit_scale",
        "frozen",
        "frozen",
        "head 'meanp' option logit_scale must be one of learned, fixed",
        "",
    ),
    (
        "tighttransf",
        "init",
        "clp",
        "clp",
        "head 'tighttransf' option init must be one of clip, random",
        "mean 'clip'?",
    ),
    (
        "camoe",
        "experts",
        ["scenes"],
        "scenes",
        "head 'camoe' option experts must be a non-empty list of names",
        "('scenes' is not one; did you mean 'scene'?)",
    ),
]


@pytest.mark.parametrize(("head", "key", "value", "text", "start", "end"), BAD)
def test_a_bad_value_is_refused_the_same_way_by_python_cli_and_grid(
    head: str, key: str, value: Any, text: str, start: str, end: str, tmp_path: Path
) -> None:
    from vtrbench.runs.spec import RunSpec

    message = _re(start) + ".*" + _re(end) + "$"
    with pytest.raises(VtrbenchError, match="^" + message):
        create_head(head, embed_dim=D, **{key: value})
    with pytest.raises(VtrbenchError, match="^" + message):
        RunSpec(cache_path=tmp_path / "c.h5", head=head, loss="dsl", head_options={key: value})
    with pytest.raises(VtrbenchError, match="^--head-option: " + message):
        parse_head_option_pairs(head, [f"{key}={text}"], head_option_schema(head), where="--head-option")
    grid = tmp_path / "g.toml"
    toml_value = json.dumps(value) if not (isinstance(value, float) and not math.isfinite(value)) else text
    grid.write_text(f'heads = ["{head}"]\n[head_options.{head}]\n{key} = {toml_value}\n')
    with pytest.raises(VtrbenchError, match=rf"g.toml: \[head_options.{head}\] " + message):
        load_grid(grid)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_unknown_key_names_the_head_and_lists_its_options(tmp_path: Path) -> None:
    with pytest.raises(VtrbenchError) as e:
        create_head("xpool", embed_dim=D, head=2)
    msg = str(e.value)
    assert "unknown xpool option 'head'; did you mean 'heads'?" in msg
    assert "(available: adapter, heads, logit_scale, logit_scale_init)" in msg and "\n" not in msg
    with pytest.raises(
        VtrbenchError, match=r"--head-option: unknown wti option 'layer'.*available: activation"
    ):
        parse_head_option_pairs("wti", ["layer=2"], head_option_schema("wti"), where="--head-option")
    # an option of another head is an unknown option of this one
    with pytest.raises(
        VtrbenchError, match=r"unknown meanp option 'mlp_layers'.*available: adapter, emcl.*logit_scale"
    ):
        create_head("meanp", embed_dim=D, mlp_layers=2)
    with pytest.raises(VtrbenchError, match="unknown tighttransf option 'logit_scale'"):
        create_head("tighttransf", embed_dim=D, logit_scale="fixed")
    with pytest.raises(VtrbenchError, match="head 'zeroshot' takes no options; got logit_scale"):
        create_head("zeroshot", embed_dim=D, logit_scale="fixed")


def test_key_value_text_is_typed_by_the_schema() -> None:
    parse = parse_head_option_pairs
    got = parse(
        "camoe",
        ["layers=2", "adapter=false", "aux_weight=0.5", "experts=scene, fusion", "heads=auto"],
        head_option_schema("camoe"),
        where="--head-option",
    )
    assert got == {
        "layers": 2,
        "adapter": False,
        "aux_weight": 0.5,
        "experts": ["scene", "fusion"],
        "heads": None,
    }
    assert type(got["layers"]) is int and type(got["aux_weight"]) is float
    assert parse("wti", ["agg = seqtransf"], head_option_schema("wti"), where="--head-option") == {
        "agg": "seqtransf"
    }
    schema = head_option_schema("seqtransf")
    with pytest.raises(VtrbenchError, match="--head-option 'layers': expected KEY=VALUE"):
        parse("seqtransf", ["layers"], schema, where="--head-option")
    with pytest.raises(VtrbenchError, match="--head-option '=2': expected KEY=VALUE"):
        parse("seqtransf", ["=2"], schema, where="--head-option")
    with pytest.raises(VtrbenchError, match="--head-option: layers is given twice"):
        parse("seqtransf", ["layers=2", "layers=3"], schema, where="--head-option")
    with pytest.raises(VtrbenchError, match="option layers must be an integer >= 1, got '2.5'"):
        parse("seqtransf", ["layers=2.5"], schema, where="--head-option")


def test_heads_divides_width_is_still_checked_by_the_head() -> None:
    """What a schema cannot know (the embedding width) stays in the constructor, before training."""
    with pytest.raises(VtrbenchError, match="heads=3 does not divide the embedding width 32"):
        create_head("xpool", embed_dim=D, heads=3)


# ---------------------------------------------------------------- plugin heads without a schema


def test_a_plugin_head_without_a_schema_gets_its_options_passed_through() -> None:
    from vtrbench.heads.base import Head, register_head

    class Bare(Head):
        def __init__(
            self, embed_dim: int, width: int = 1, rate: float = 0.0, flag: bool = False, name: str = ""
        ) -> None:
            super().__init__(embed_dim)
            self.seen = {"width": width, "rate": rate, "flag": flag, "name": name}

    register_head("test-bare-head")(Bare)
    try:
        assert head_option_schema("test-bare-head") is None
        got = parse_head_option_pairs(
            "test-bare-head", ["width=3", "rate=0.5", "flag=true", "name=x"], None, where="--head-option"
        )
        assert got == {"width": 3, "rate": 0.5, "flag": True, "name": "x"}
        head = Bare(D, **got)
        assert head.seen == got
        with pytest.raises(VtrbenchError, match="--head-option: width is given twice"):
            parse_head_option_pairs("test-bare-head", ["width=3", "width=4"], None, where="--head-option")
    finally:
        HEADS._entries.pop("test-bare-head", None)
        HEADS._origins.pop("test-bare-head", None)


# ---------------------------------------------------------------- the logit scale option


def test_fixed_logit_scale_is_not_trained_and_learned_is() -> None:
    from vtrbench.heads.base import LOGIT_SCALE_MAX

    fixed = create_head("xpool", embed_dim=D, logit_scale="fixed")
    learned = create_head("xpool", embed_dim=D)
    assert not fixed.log_logit_scale.requires_grad and learned.log_logit_scale.requires_grad
    assert float(fixed.logit_scale()) == pytest.approx(LOGIT_SCALE_MAX)
    # the trainer optimises exactly the parameters that require a gradient (vtrbench.runs.train.fit)
    for head in (fixed, learned):
        (head.logit_scale() + sum(p.sum() for p in head.parameters() if p.requires_grad)).backward()
    assert fixed.log_logit_scale.grad is None and learned.log_logit_scale.grad is not None


def test_train_with_head_options_records_them_in_config_label_and_history(
    synth_cache: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    r = run_cli(
        "train",
        "--cache",
        synth_cache,
        "--head",
        "meanp",
        "--loss",
        "infonce",
        "--lr",
        "0.05",
        "--head-option",
        "logit_scale=fixed",
        "--results",
        tmp_path,
        *FAST,
    )
    assert r.code == 0, r.text
    (path,) = tmp_path.rglob("*.json")
    result = json.loads(path.read_text())
    assert result["label"] == "meanp[logit_scale=fixed]"
    assert result["config"]["head_options"] == {"adapter": True, "logit_scale": "fixed"}
    assert [e["logit_scale"] for e in result["history"]] == [100.0]
    # meanp without adapters has nothing to train but its logit scale: fixing that too is refused
    r = run_cli(
        "train",
        "--cache",
        synth_cache,
        "--head",
        "meanp",
        "--no-adapter",
        "--head-option",
        "logit_scale=fixed",
        "--results",
        tmp_path / "none",
        *FAST,
    )
    assert r.code == 2 and "has nothing to train" in r.err and "Traceback" not in r.text
    assert not (tmp_path / "none").exists() or not list((tmp_path / "none").rglob("*.json"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--head", "xpool", "--head-option", "heads=0"], "--head-option: head 'xpool' option heads must be"),
        (["--head", "xpool", "--head-option", "layers=2"], "unknown xpool option 'layers'"),
        (
            ["--head", "camoe", "--head-option", "layers=2", "--layers", "3"],
            "--head-option layers=... repeats",
        ),
        (["--head", "meanp", "--no-adapter", "--head-option", "adapter=true"], "repeats an option"),
        (
            ["--head", "wti", "--head-option", "agg=none", "--head-option", "agg=seqtransf"],
            "agg is given twice",
        ),
        (["--head", "wti", "--head-option", "layers=2"], "only apply with agg=seqtransf"),
        (["--head", "seqtransf", "--head-option", "max_frames=nan"], "max_frames must be an integer"),
    ],
)
def test_cli_head_option_errors_are_one_line_before_any_work(
    argv: list[str], message: str, synth_cache: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    r = run_cli("train", "--cache", synth_cache, *argv, "--results", tmp_path, *FAST)
    assert r.code == 2, r.text
    assert message in r.err and "Traceback" not in r.text and len(r.err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.json"))


# ---------------------------------------------------------------- grids


def test_grid_head_options_are_axes_per_head_and_for_all(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        'heads = ["meanp", "wti"]\nlosses = ["dsl"]\nseeds = [0]\n'
        '[head_options]\nlogit_scale = ["learned", "fixed"]\n'
        '[head_options.wti]\nagg = ["none", "seqtransf"]\nmlp_layers = 1\n'
    )
    grid = load_grid(path)
    assert grid.head_options == {
        ALL_HEADS: {"logit_scale": ("learned", "fixed")},
        "wti": {"agg": ("none", "seqtransf"), "mlp_layers": (1,)},
    }
    points = [(h, o) for h, _, o, _ in grid.points()]
    assert points == [
        ("meanp", {"logit_scale": "learned"}),
        ("meanp", {"logit_scale": "fixed"}),
        ("wti", {"agg": "none", "logit_scale": "learned", "mlp_layers": 1}),
        ("wti", {"agg": "none", "logit_scale": "fixed", "mlp_layers": 1}),
        ("wti", {"agg": "seqtransf", "logit_scale": "learned", "mlp_layers": 1}),
        ("wti", {"agg": "seqtransf", "logit_scale": "fixed", "mlp_layers": 1}),
    ]
    saved = tmp_path / "saved.toml"
    saved.write_text(grid.to_toml())
    assert load_grid(saved) == grid
    # a grid without head options saves exactly as before (its file name hash is unchanged)
    assert "head_options" not in Grid(heads=("meanp",)).to_toml()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'heads = ["meanp"]\n[head_options.xpool]\nheads = [2]\n',
            r"\[head_options.xpool\]: 'xpool' is not one of",
        ),
        (
            'heads = ["meanp", "tighttransf"]\n[head_options]\nlogit_scale = "fixed"\n',
            r"\[head_options\] unknown tighttransf option 'logit_scale'",
        ),
        ('heads = ["wti"]\n[head_options.wti]\nagg = []\n', r"\[head_options.wti\] agg is an empty list"),
        (
            'heads = ["wti"]\n[head_options.wti]\nmlp_layers = [2, 7]\n',
            "option mlp_layers must be 1, 2 or 3, got 7",
        ),
        (
            'heads = ["camoe"]\n[camoe]\ngate = ["single"]\n[head_options.camoe]\ngate = ["uniform"]\n',
            r"\[head_options.camoe\] gate is also a \[camoe\] axis",
        ),
        (
            'heads = ["seqtransf"]\n[temporal]\nlayers = [2]\n[head_options]\nlayers = [3]\n',
            r"\[head_options\] layers is also a \[temporal\] axis",
        ),
        ('heads = ["meanp"]\nhead_options = 3\n', "head_options must be a table"),
        ('heads = ["meanp"]\n[head_options.meanp]\nadapter = "no"\n', "option adapter must be true or false"),
        ('heads = ["meanp"]\n[head_options]\nlogit_scale = nan\n', "option logit_scale must be one of"),
    ],
)
def test_grid_head_option_errors_name_the_file_and_the_head(body: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(body)
    with pytest.raises(VtrbenchError, match="g.toml: .*" + message):
        load_grid(path)


def test_cli_grid_head_options_apply_to_every_head_of_the_grid() -> None:
    from vtrbench.cli.options import head_options_for_grid

    opts = head_options_for_grid(("meanp", "xpool"), ["logit_scale=fixed"])
    grid = validate_grid(Grid(heads=("meanp", "xpool"), losses=("dsl",), head_options=opts))
    assert [o for _, _, o, _ in grid.points()] == [{"logit_scale": "fixed"}] * 2
    with pytest.raises(VtrbenchError, match="unknown meanp option 'heads'"):
        head_options_for_grid(("xpool", "meanp"), ["heads=2"])


def test_ablate_runs_head_option_axes(synth_cache: Path, run_cli: Callable[..., Any], tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(
        'heads = ["meanp"]\nlosses = ["infonce"]\nseeds = [0]\n[head_options.meanp]\n'
        'logit_scale = ["learned", "fixed"]\n[train]\nepochs = 1\nbatch_size = 8\n'
    )
    r = run_cli("ablate", "--cache", synth_cache, "--grid", grid, "--results", tmp_path / "r", "--quiet")
    assert r.code == 0, r.text
    labels = sorted(json.loads(p.read_text())["label"] for p in (tmp_path / "r").rglob("*.s0.json"))
    assert labels == ["meanp", "meanp[logit_scale=fixed]"]
    r = run_cli(
        "ablate",
        "--cache",
        synth_cache,
        "--grid",
        grid,
        "--head-option",
        "adapter=false",
        "--results",
        tmp_path / "r2",
        "--quiet",
    )
    assert r.code == 2 and "put the head options in the grid file's [head_options]" in r.err


def test_check_head_options_normalises() -> None:
    schema = head_option_schema("camoe")
    assert check_head_options("camoe", {"experts": "fusion,fusion, scene", "aux_weight": 1}, schema) == {
        "experts": ["fusion", "scene"],
        "aux_weight": 1.0,
    }


def test_docs_list_every_option_of_every_head() -> None:
    """docs/heads.md's "Head options" table names each declared option in its head's row."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "heads.md").read_text()
    rows = {}
    section = doc.split("## Head options", 1)[1].split("\n## ", 1)[0]
    for line in section.split("\n"):
        if line.startswith("| `"):
            names, options = line.split("|")[1:3]
            for name in names.replace("`", "").split(","):
                rows[name.strip()] = options
    assert set(rows) == set(BUILTIN)
    for name in BUILTIN:
        for option in head_option_schema(name) or {}:
            assert f"`{option}`" in rows[name], (name, option)


def test_new_options_survive_a_checkpoint_round_trip(
    synth_cache: Path, run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """wti agg=seqtransf with a fixed scale: trained, saved, re-evaluated from the checkpoint."""
    ckpt = tmp_path / "wti.pt"
    r = run_cli(
        "train", "--cache", synth_cache, "--head", "wti", "--head-option", "agg=seqtransf",
        "--head-option", "layers=1", "--head-option", "logit_scale=fixed", "--loss", "infonce",
        "--results", tmp_path / "tr", "--save-checkpoint", ckpt, *FAST,
    )  # fmt: skip
    assert r.code == 0, r.text
    assert "note:" in r.err and "init=random" in r.err  # the synthetic cache holds no CLIP layers
    trained = json.loads(next((tmp_path / "tr").rglob("*.json")).read_text())
    assert trained["label"] == "wti[agg=seqtransf,layers=1,init=random,logit_scale=fixed]"
    ev = tmp_path / "ev"
    r = run_cli("eval", "--cache", synth_cache, "--checkpoint", ckpt, "--results", ev, "--device", "cpu")
    assert r.code == 0, r.text
    evaluated = json.loads(next((tmp_path / "ev").rglob("*.json")).read_text())
    assert evaluated["metrics"] == trained["metrics"] and evaluated["label"] == trained["label"]
