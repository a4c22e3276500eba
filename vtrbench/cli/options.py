"""The options shared by ``train`` and ``ablate``, and their one conversion into a ``RunSpec``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vtrbench import defaults
from vtrbench.cli._app import RESULTS_ROOT, resolve_device
from vtrbench.config import MDR_CHOICES, OVERWRITE_CHOICES, PRECISION_CHOICES, V2T_CHOICES
from vtrbench.errors import VtrbenchError


def _parse_experts(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def head_options_from_cli(
    head: str,
    experts: str | None,
    streams: str | None,
    gate: str | None,
    aux_weight: float | None,
    no_adapter: bool,
    init: str | None = None,
    layers: int | None = None,
) -> dict[str, Any]:
    """CAMoE alignment options are only accepted for camoe, --init/--layers only for the heads with
    a temporal transformer (a clear error otherwise)."""
    opts: dict[str, Any] = {}
    temporal_only = {"--init": init, "--layers": layers}
    given_temporal = [k for k, v in temporal_only.items() if v is not None]
    if head not in ("seqtransf", "camoe") and given_temporal:
        raise VtrbenchError(
            f"{', '.join(given_temporal)} only apply to --head seqtransf or camoe (got --head {head})"
        )
    if init is not None:
        opts["init"] = init
    if layers is not None:
        opts["layers"] = layers
    camoe_only = {"--experts": experts, "--streams": streams, "--gate": gate, "--aux-weight": aux_weight}
    given = [k for k, v in camoe_only.items() if v is not None]
    if head != "camoe" and given:
        raise VtrbenchError(f"{', '.join(given)} only apply to --head camoe (got --head {head})")
    if head == "camoe":
        if experts:
            opts["experts"] = sorted(_parse_experts(experts) or [])
        if streams:
            opts["streams"] = streams
        if gate:
            opts["gate"] = gate
        if aux_weight is not None:
            opts["aux_weight"] = aux_weight
    if no_adapter:
        opts["adapter"] = False
    return opts


def parse_head_option_flags(head: str, pairs: Any) -> dict[str, Any]:
    """``--head-option KEY=VALUE`` (repeatable) for ``head``: values typed and checked by the head's
    declared option schema (vtrbench.config.check_head_options, the rules create_head and grid files
    use); a plugin head without a schema gets best-guess typed values passed through."""
    from vtrbench.config import parse_head_option_pairs
    from vtrbench.heads.base import head_option_schema

    pairs = list(pairs or ())
    if not pairs:
        return {}
    return parse_head_option_pairs(head, pairs, head_option_schema(head), where="--head-option")


def merge_head_options(head: str, flags: dict[str, Any], generic: dict[str, Any]) -> dict[str, Any]:
    """The dedicated flags' options plus ``--head-option``'s; one option set both ways is an error."""
    both = sorted(set(flags) & set(generic))
    if both:
        raise VtrbenchError(
            f"--head-option {both[0]}=... repeats an option another flag already sets for head {head!r} "
            f"(e.g. --{both[0].replace('_', '-')} or --no-adapter): give it once"
        )
    return {**flags, **generic}


def head_options_for_grid(heads: Any, pairs: Any) -> dict[str, dict[str, tuple[Any, ...]]]:
    """``ablate --head-option KEY=VALUE``: the options for every head of the grid, parsed and checked
    per head (a key one of the heads does not take is an error naming that head)."""
    if not pairs:
        return {}
    return {h: {k: (v,) for k, v in parse_head_option_flags(h, pairs).items()} for h in heads}


def _loss_options(
    loss: str, temperature: float | None, margin: float | None = None, reduction: str | None = None
) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if temperature is not None:
        if loss != "dsl":
            raise VtrbenchError("--temperature only applies to --loss dsl")
        opts["temperature"] = temperature
    for flag, key, value in (("--margin", "margin", margin), ("--reduction", "reduction", reduction)):
        if value is not None:
            if loss != "triplet":
                raise VtrbenchError(f"{flag} only applies to --loss triplet")
            opts[key] = value
    return opts


def run_spec_from_options(kw: dict[str, Any]) -> Any:
    """The shared train/ablate options -> a runner.RunSpec (head/loss options validated here)."""
    from vtrbench.runs.spec import RunSpec

    head_opts = head_options_from_cli(
        kw["head"],
        kw.get("experts"),
        kw.get("streams"),
        kw.get("gate"),
        kw.get("aux_weight"),
        kw.get("no_adapter", False),
        kw.get("init"),
        kw.get("layers"),
    )
    from vtrbench.heads.base import validate_head_options

    for key, value in head_opts.items():  # a bad value from a dedicated flag names that flag
        validate_head_options(kw["head"], {key: value}, where=f"--{key.replace('_', '-')}")
    generic = parse_head_option_flags(kw["head"], kw.get("head_option"))
    head_opts = merge_head_options(kw["head"], head_opts, generic)
    return RunSpec(
        cache_path=kw["cache_path"],
        head=kw["head"],
        loss=kw["loss"],
        head_options=head_opts,
        loss_options=_loss_options(kw["loss"], kw.get("temperature"), kw.get("margin"), kw.get("reduction")),
        train_split=kw.get("train_split"),
        test_split=kw.get("test_split"),
        epochs=kw["epochs"],
        batch_size=kw["batch_size"],
        lr=kw["lr"],
        weight_decay=kw["weight_decay"],
        val_fraction=kw["val_fraction"],
        v2t_protocol=kw["v2t_protocol"],
        dsl_tau=kw["dsl_tau"],
        qb_bank=kw["qb_bank"],
        qb_beta=kw["qb_beta"],
        qb_k=kw.get("qb_k", defaults.QB_K),
        mdr=kw.get("mdr", defaults.MDR),
        post_options=dict(kw.get("post_options") or {}),
        precision=kw.get("precision"),
        compile=kw.get("compile", defaults.COMPILE),
        allow_overlap=bool(kw.get("allow_overlap", False)),
        threads=kw.get("threads"),
        device=resolve_device(kw["device"]),
        results_dir=kw["results_dir"],
        overwrite=kw["overwrite"],
        progress=not kw.get("quiet", False),
        tensorboard=kw.get("tensorboard", defaults.TENSORBOARD),
    )


# long function: one declarative list of the click options train and ablate share, one entry per
# option (splitting it would only scatter the list).
def _shared_train_options() -> list[Any]:
    return [
        click.option(
            "--cache",
            "cache_path",
            required=True,
            type=click.Path(path_type=Path),
            help="Feature cache made by `vtrbench extract`.",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(min=0, min_open=True),
            help="DSL training temperature [default: 1000, official].",
        ),
        click.option(
            "--margin",
            type=click.FloatRange(min=0, min_open=True),
            help="Triplet (VSE++) margin on cosine similarities [default: 0.2].",
        ),
        click.option(
            "--reduction",
            type=click.Choice(["sum", "hardest"]),
            help="Triplet negatives: sum of hinges or the hardest in the batch [default: sum].",
        ),
        click.option(
            "--no-adapter", is_flag=True, help="Switch off the residual linear text/video adapters."
        ),
        click.option(
            "--head-option",
            "head_option",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any option of the head (repeatable), e.g. --head-option logit_scale=fixed "
            "--head-option agg=seqtransf (docs/heads.md lists every head's options). With ablate: "
            "applied to every head of the grid (per-head values: [head_options.HEAD] in a --grid file).",
        ),
        click.option("--train-split", help="[default: the dataset's standard train split]"),
        click.option("--test-split", help="[default: the dataset's standard test split]"),
        click.option("--epochs", type=click.IntRange(min=1), default=defaults.EPOCHS, show_default=True),
        click.option(
            "--batch-size", type=click.IntRange(min=2), default=defaults.BATCH_SIZE, show_default=True
        ),
        click.option(
            "--lr", type=click.FloatRange(min=0, min_open=True), default=defaults.LR, show_default=True
        ),
        click.option(
            "--weight-decay", type=click.FloatRange(min=0), default=defaults.WEIGHT_DECAY, show_default=True
        ),
        click.option(
            "--val-fraction",
            type=click.FloatRange(min=0, max=1, max_open=True),
            default=defaults.VAL_FRACTION,
            show_default=True,
            help="Hold out this fraction of train videos for validation (never the test split).",
        ),
        click.option(
            "--v2t-protocol",
            type=click.Choice(V2T_CHOICES),
            default=defaults.V2T_PROTOCOL,
            show_default=True,
            help="v2t with several captions per video.",
        ),
        click.option(
            "--dsl-tau",
            type=click.FloatRange(min=0, min_open=True),
            default=defaults.DSL_TAU,
            show_default=True,
            help="Inference DSL temperature on logit-scaled scores (transductive post-processing).",
        ),
        click.option(
            "--qb-bank",
            type=click.IntRange(min=1),
            default=defaults.QB_BANK,
            show_default=True,
            help="QB-Norm query bank size.",
        ),
        click.option(
            "--qb-beta",
            type=click.FloatRange(min=0, min_open=True),
            default=defaults.QB_BETA,
            show_default=True,
        ),
        *eval_protocol_options(),
        click.option(
            "--precision",
            type=click.Choice(PRECISION_CHOICES),
            help="Training precision: bf16 autocast (CUDA only) or fp32 "
            "[default: bf16 on CUDA, fp32 on CPU].",
        ),
        compile_option(),
        click.option("--device", default="auto", show_default=True),
        click.option(
            "--results",
            "results_dir",
            type=click.Path(path_type=Path),
            default=RESULTS_ROOT,
            show_default=True,
        ),
        click.option(
            "--overwrite",
            type=click.Choice(OVERWRITE_CHOICES),
            default=defaults.OVERWRITE,
            show_default=True,
            help="never: skip a run whose result file exists; always: replace it.",
        ),
        click.option(
            "--tensorboard",
            type=str,  # click.Path stats the value and raises on a NUL byte; _folder_option checks it
            callback=_folder_option,
            default=defaults.TENSORBOARD,
            metavar="DIR",
            help="Also write each run's per-epoch loss, lr, logit scale and validation metrics as "
            "TensorBoard event files under DIR/<run id>/ (needs: pip install 'vtrbench[tensorboard]').",
        ),
        click.option("--quiet", is_flag=True),
    ]


def compile_option(tune: bool = False) -> Any:
    """``--compile MODE`` (train, ablate, tune): torch.compile of the training step."""
    what = (
        "Compiles every trial's step: speed only, not part of a study's identity."
        if tune
        else "A compiled run rounds differently, so it is its own configuration (its own run id)."
    )
    return click.option(
        "--compile",
        "compile",
        type=click.Choice(defaults.COMPILE_MODES),
        default=defaults.COMPILE,
        show_default=True,
        help="torch.compile the training step (forward + loss; backward through AOTAutograd) in this "
        "mode; reduce-overhead also captures it as a CUDA graph on CUDA; none: eager. " + what,
    )


def _nonempty_path(value: str | None, noun: str) -> Path | None:
    """An empty path (an unset shell variable) is refused, not read as the current folder (click's
    Path type turns '' into '.'), and so is a NUL byte (click.Path raises on it)."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter(f"needs {noun}, got an empty path")
    if "\x00" in value:
        raise click.BadParameter("a path cannot hold a NUL byte")
    return Path(value)


def _folder_option(ctx: Any, param: Any, value: str | None) -> Path | None:
    return _nonempty_path(value, "a folder")


def output_option(ctx: Any, param: Any, value: str | None) -> Path | None:
    """Callback of every ``--output``-like option (``type=str``): a non-empty path; the command then
    checks that it can write there with :func:`vtrbench.io.check_output_path` before any work."""
    return _nonempty_path(value, "a path")


def _post_options(ctx: Any, param: Any, values: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs -> a dict of numbers, checked by config.check_post_options (one path)."""
    from vtrbench.config import check_post_options

    out: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        value: Any = text.strip()
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        key = key.strip()
        if key in out:  # as --head-option: the last value silently winning hid a typo
            raise click.BadParameter(f"{key} is given twice ({out[key]} and {value})")
        out[key] = value
    return check_post_options(out)


def eval_protocol_options() -> list[Any]:
    """Evaluation protocol options shared by train, ablate and eval (all recorded in results)."""
    return [
        click.option(
            "--post-option",
            "post_options",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_post_options,
            help="A parameter of the hubness post-processings, repeatable: is_beta (inverted softmax, "
            f"default {defaults.IS_BETA:g}), csls_k (CSLS neighbours, {defaults.CSLS_K}), sinkhorn_iters "
            f"(at most {defaults.SINKHORN_ITERS_MAX}; {defaults.SINKHORN_ITERS}), sinkhorn_eps "
            f"({defaults.SINKHORN_EPS:g}), sinkhorn_tol (stop once no scaling moves by more; off at "
            f"{defaults.SINKHORN_TOL:g}); emcl (factorised heads): emcl_k (bases, {defaults.EMCL_POST_K}), "
            f"emcl_iters (EM iterations, at most {defaults.EMCL_ITERS_MAX}; {defaults.EMCL_POST_ITERS}), "
            f"emcl_lambda ({defaults.EMCL_POST_LAMBDA:g}), emcl_beta ({defaults.EMCL_POST_BETA:g}), "
            f"emcl_seed ({defaults.EMCL_POST_SEED}).",
        ),
        click.option(
            "--qb-k",
            type=click.IntRange(min=1),
            default=defaults.QB_K,
            show_default=True,
            help="QB-Norm: the top-k gallery items of each bank query are hubs (official default 1).",
        ),
        click.option(
            "--mdr",
            type=click.Choice(MDR_CHOICES),
            default=defaults.MDR,
            show_default=True,
            help="MdR convention: standard = np.median; clip4clip = torch.median (lower middle) for t2v "
            "with several captions per video, as CLIP4Clip.",
        ),
        click.option(
            "--allow-overlap",
            is_flag=True,
            help="Run even when test videos also appear in the train split (by id or file content); "
            "recorded in the result.",
        ),
        click.option(
            "--threads",
            type=int,
            default=None,
            help="CPU threads for torch [default: the cores free when the run starts, by the "
            "1-minute load average; recorded in the result].",
        ),
    ]


def _apply(options: list[Any], f: Any) -> Any:
    for opt in reversed(options):
        f = opt(f)
    return f


def shared_train_options(f: Any) -> Any:
    return _apply(_shared_train_options(), f)


def train_options(f: Any) -> Any:
    return _apply(
        [
            click.option(
                "--head",
                default="camoe",
                show_default=True,
                help="meanp, seqtransf, camoe (zeroshot: use `vtrbench eval`).",
            ),
            click.option("--loss", default="dsl", show_default=True, help="infonce or dsl."),
            click.option("--experts", help="camoe: comma list of fusion,action,entity,scene [default: all]."),
            click.option("--streams", help="camoe: pos (noun/verb masks), learned, eot [default: pos]."),
            click.option("--gate", help="camoe: single or uniform [default: single]."),
            click.option(
                "--aux-weight",
                type=click.FloatRange(min=0),
                help="camoe: weight of per-expert auxiliary losses [default: 0].",
            ),
            click.option(
                "--init",
                type=click.Choice(["clip", "random"]),
                help="seqtransf, camoe: start the temporal transformer from CLIP's text layers as "
                "CLIP4Clip (clip) or at random [default: clip when the cache stores CLIP's text "
                "layers, else random with a note].",
            ),
            click.option(
                "--layers",
                type=click.IntRange(min=1),
                help="seqtransf, camoe: temporal transformer depth [default: seqtransf 4 (CLIP4Clip), "
                "camoe 2 per temporal expert].",
            ),
            *_shared_train_options(),
        ],
        f,
    )
