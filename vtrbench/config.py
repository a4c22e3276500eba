"""Canonical config serialisation and hashing.

Every artifact (cache, result) stores the canonical JSON of the config that made
it and a short hash of it; two configs are "the same run" exactly when their
canonical JSON is equal.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vtrbench import defaults
from vtrbench.errors import VtrbenchError
from vtrbench.registry import unknown_name_message


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples, paths → JSON-ready plain data (dict keys sorted later)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # A field marked omit_if_empty is left out while empty, so that adding it did not
        # change the hash (and run id) of any config that does not use it.
        # omit_if_default: the same, for a field whose default is not empty (e.g. compile "none").
        return {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not (f.metadata.get("omit_if_empty") and not getattr(obj, f.name))
            and not (f.metadata.get("omit_if_default") and getattr(obj, f.name) == f.default)
        }
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace; floats as Python prints them."""
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON, truncated (16 hex chars = 64 bits)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the numbers in a feature cache (and nothing else).

    Device, batch size and worker count are not here: they change speed, not values
    (except fp16 on CUDA, which ``precision`` records).
    """

    dataset: str
    dataset_fingerprint: str  # hash of the video ids and captions the cache covers
    model: str
    pretrained: str
    max_frames: int = 12
    fps: int = 1  # frames taken per second of video (CLIP4Clip's feature_framerate)
    sampling: str = "uniform"
    image_size: int = 224
    max_words: int = 32
    patch_tokens: bool = False
    tagger: str = "pattern"
    precision: str = "fp32"  # "fp32" on CPU; "fp16" autocast on CUDA
    # Image preprocessing (open_clip's inference transform), resolved per model/tag by
    # vtrbench.extract.preprocess_cfg; the defaults are OpenAI CLIP's.
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    schema: int = 1
    # Thumbnails are on by default and this field is left out of the hash while False, so caches
    # made before thumbnails existed keep their config hash (and every result its run id).
    no_thumbnails: bool = dataclasses.field(default=False, metadata={"omit_if_empty": True})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained head's numbers, except the seed.

    Defaults are METHODS.md section 10 (CLIP4Clip's recipe adapted to frozen features).
    """

    cache_hash: str  # the feature cache's own config hash
    head: str
    loss: str
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_split: str = ""
    test_split: str = ""
    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_SIZE
    lr: float = defaults.LR
    weight_decay: float = defaults.WEIGHT_DECAY
    betas: tuple[float, float] = defaults.BETAS
    eps: float = defaults.EPS
    warmup: float = defaults.WARMUP  # fraction of steps with linear warm-up, then cosine decay
    grad_clip: float = defaults.GRAD_CLIP
    val_fraction: float = defaults.VAL_FRACTION
    v2t_protocol: str = defaults.V2T_PROTOCOL
    dsl_tau: float = defaults.DSL_TAU  # inference DSL temperature on logit-scaled scores
    qb_bank: int = defaults.QB_BANK
    qb_beta: float = defaults.QB_BETA
    qb_k: int = defaults.QB_K  # QB-Norm: a bank query's top-k gallery items are hubs (official default 1)
    mdr: str = defaults.MDR  # "standard" (np.median) or "clip4clip" (torch.median for multi-caption t2v)
    # training autocast: "fp32" or "bf16" (CUDA only); None (direct library use): bf16 on CUDA, else fp32
    precision: str | None = None
    cache_content: str | None = None  # the cache's content hash: other bytes, other run id
    schema: int = 1
    # Plugin heads/losses: {"head": {name, version, source, sha256}, ...}; two versions of a
    # plugin are two configs (different run ids), never extra seeds of one.
    plugins: dict[str, Any] = dataclasses.field(default_factory=dict, metadata={"omit_if_empty": True})
    # `vtrbench ablate --tuned`: the study, budget, space and best trial this configuration came
    # from (vtrbench.tune); a tuned row is its own configuration even where its values equal the default.
    tuned: dict[str, Any] = dataclasses.field(default_factory=dict, metadata={"omit_if_empty": True})
    # parameters of the hubness post-processings given (--post-option), the rest at their defaults
    # (defaults.POST_DEFAULTS); empty keeps the config hash of runs made before they existed
    post_options: dict[str, Any] = dataclasses.field(default_factory=dict, metadata={"omit_if_empty": True})
    # torch.compile mode of the training step (defaults.COMPILE_MODES): compiled kernels round
    # differently from eager ones, so a compiled run is its own configuration (README, "--compile");
    # "none" is left out of the hash, so eager runs keep the run ids of earlier releases.
    compile: str = dataclasses.field(default=defaults.COMPILE, metadata={"omit_if_default": True})


# ---------------------------------------------------------------- one validation for every way in
#
# The command line, grid files (``vtrbench ablate --grid``) and Python callers (``RunSpec``) all
# build a run's options; each of them passes them through :func:`validate_options`, so that a grid
# file cannot reach values the command line refuses (``epochs = 0``, ``batch_size = 1``, NaN).

V2T_CHOICES = ("clip4clip", "any-caption")
MDR_CHOICES = ("standard", "clip4clip")
PRECISION_CHOICES = ("fp32", "bf16")
OVERWRITE_CHOICES = ("never", "always")
MAX_SEED = 2**63 - 1  # torch and numpy generators take 64-bit seeds; JSON keeps them exact


@dataclasses.dataclass(frozen=True)
class OptionRule:
    """What one run option (or head option) accepts: ``kind`` is int, float, choice, str, bool or
    names (a non-empty list of ``choices``, or one comma-separated string of them, e.g. camoe's
    experts; a name given twice counts once)."""

    kind: str
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed (e.g. "the dataset's standard split")

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "names":
            return "a non-empty list of names from " + ", ".join(self.choices)
        if self.kind in ("str", "bool"):
            return "a string" if self.kind == "str" else "true or false"
        small = self.kind == "int" and self.low is not None and self.high is not None
        if small and not (self.low_open or self.high_open) and 0 < self.high - self.low <= 4:
            values = [str(v) for v in range(int(self.low), int(self.high) + 1)]  # e.g. wti mlp_layers
            return ", ".join(values[:-1]) + " or " + values[-1]
        if self.kind == "post":
            return "a table of post-processing parameters (" + ", ".join(POST_OPTIONS) + ")"
        noun = "an integer" if self.kind == "int" else "a finite number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
        return noun + (" " + " and ".join(parts) if parts else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


RUN_OPTIONS: dict[str, OptionRule] = {
    "epochs": OptionRule("int", low=1),
    "batch_size": OptionRule("int", low=2),  # InfoNCE/DSL need a negative in the batch
    "lr": OptionRule("float", low=0, low_open=True),
    "weight_decay": OptionRule("float", low=0),
    "warmup": OptionRule("float", low=0, high=1),  # fraction of steps with linear warm-up
    "val_fraction": OptionRule("float", low=0, high=1, high_open=True),
    "v2t_protocol": OptionRule("choice", choices=V2T_CHOICES),
    "dsl_tau": OptionRule("float", low=0, low_open=True),
    "qb_bank": OptionRule("int", low=1),
    "qb_beta": OptionRule("float", low=0, low_open=True),
    "qb_k": OptionRule("int", low=1),
    "mdr": OptionRule("choice", choices=MDR_CHOICES),
    "precision": OptionRule("choice", choices=PRECISION_CHOICES, optional=True),
    "train_split": OptionRule("str", optional=True),
    "test_split": OptionRule("str", optional=True),
    "overwrite": OptionRule("choice", choices=OVERWRITE_CHOICES),
    "allow_overlap": OptionRule("bool"),
    "post_options": OptionRule("post"),  # {KEY: VALUE} of POST_OPTIONS (--post-option KEY=VALUE)
    "threads": OptionRule("int", low=1, optional=True),  # None: vtrbench.threads picks (not hashed)
    "compile": OptionRule("choice", choices=defaults.COMPILE_MODES),  # torch.compile of the training step
}

# The parameters of the post-processings of vtrbench.eval (defaults.POST_DEFAULTS are the defaults).
# Each declares its bounds here, the one table every caller (--post-option, grid files, the API, the
# evaluation itself) checks against; a parameter that multiplies the raw scores also declares that
# factor in POST_SCALES, bounded by defaults.POST_SCALE_MAX so that the post-processed scores stay finite.
POST_OPTIONS: dict[str, OptionRule] = {
    "is_beta": OptionRule("float", low=0, low_open=True, high=defaults.POST_SCALE_MAX),
    "csls_k": OptionRule("int", low=1),
    "sinkhorn_iters": OptionRule("int", low=1, high=defaults.SINKHORN_ITERS_MAX),
    "sinkhorn_eps": OptionRule("float", low=1 / defaults.POST_SCALE_MAX),
    "sinkhorn_tol": OptionRule("float", low=0),  # 0: no early stop
    # emcl (EM projection of the test embeddings, transductive): bounds keep every step finite
    "emcl_k": OptionRule("int", low=1, high=defaults.EMCL_K_MAX),
    "emcl_iters": OptionRule("int", low=1, high=defaults.EMCL_ITERS_MAX),
    "emcl_lambda": OptionRule("float", low=defaults.EMCL_LAMBDA_MIN),
    "emcl_beta": OptionRule("float", low=0, low_open=True, high=defaults.EMCL_BETA_MAX),
    "emcl_seed": OptionRule("int", low=0, high=2**63 - 1),
}

# The factor each score-scaling parameter multiplies the raw scores by (is: beta s; sinkhorn: s / eps).
POST_SCALES: dict[str, Callable[[float], float]] = {
    "is_beta": lambda beta: beta,
    "sinkhorn_eps": lambda eps: 1.0 / eps,
}


def check_post_options(
    values: Any, *, complete: bool = False, where: str | None = None, section: str = ""
) -> dict[str, Any]:
    """``{KEY: VALUE}`` of :data:`POST_OPTIONS`, each checked (``--post-option KEY=VALUE``).

    ``complete``: fill in the defaults (``defaults.POST_DEFAULTS``); otherwise only the keys given
    (what a TrainConfig records, so that the defaults keep a run's id).
    """
    label = option_label("post_options", where, section) if where else "--post-option"
    if not isinstance(values, dict):
        raise VtrbenchError(f"{label} must be a table of KEY = VALUE, got {_short(values)}")
    out: dict[str, Any] = dict(defaults.POST_DEFAULTS) if complete else {}
    for key, value in values.items():
        rule = POST_OPTIONS.get(key)
        if rule is None:
            raise VtrbenchError(f"{label}: unknown key {_short(key)} (known: {', '.join(POST_OPTIONS)})")
        out[key] = check_value(rule, value, f"{label} {key}")
    return out


# Fields of the training recipe that the Python API (``api.train_head``) also takes, beyond the run
# options above; the command line and grid files keep them at METHODS.md's values.
RECIPE_OPTIONS: dict[str, OptionRule] = {
    "warmup": OptionRule("float", low=0, high=1),
    "grad_clip": OptionRule("float", low=0),
    "eps": OptionRule("float", low=0, low_open=True),
}


def option_label(name: str, where: str | None = None, section: str = "") -> str:
    """``--batch-size`` on the command line; ``FILE: train.batch_size`` for a grid file."""
    return f"--{name.replace('_', '-')}" if where is None else f"{where}: {section}{name}"


def check_option(name: str, value: Any, *, where: str | None = None, section: str = "") -> Any:
    """``value`` if option ``name`` accepts it (ints stay ints, floats become float), else VtrbenchError."""
    rule = RUN_OPTIONS.get(name) or RECIPE_OPTIONS.get(name)
    label = option_label(name, where, section)
    if rule is None:
        raise VtrbenchError(f"{label}: unknown option (known: {', '.join(RUN_OPTIONS)})")
    if rule.kind == "post":
        return check_post_options(value, where=where, section=section)
    return check_value(rule, value, label)


def check_value(rule: OptionRule, value: Any, label: str) -> Any:
    """``value`` normalised if ``rule`` accepts it, else a one-line VtrbenchError
    ``"{label} must be ..., got ..."``. Run options and head options both come here."""
    if value is None and rule.optional:
        return None
    hint = ""
    if rule.choices and isinstance(value, str) and "," not in value:
        close = difflib.get_close_matches(value.strip(), rule.choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
    bad = VtrbenchError(f"{label} must be {rule.describe()}, got {_short(value)}{hint}")
    if rule.kind == "names":
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)):
            raise bad
        names = [n.strip() if isinstance(n, str) else n for n in names]
        names = [n for n in names if n != ""]
        for n in names:
            if not isinstance(n, str) or n not in rule.choices:
                close = difflib.get_close_matches(str(n), rule.choices, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise VtrbenchError(
                    f"{label} must be {rule.describe()}, got {_short(value)} ({n!r} is not one{hint})"
                )
        if not names:
            raise bad
        return list(dict.fromkeys(names))  # a name given twice is one expert, in first-seen order
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if rule.kind in ("str", "choice"):
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise bad
        if rule.kind == "choice" and value not in rule.choices:
            raise bad
        return value
    # numbers: bool is an int subclass and a string "5" is not a number here
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if rule.kind == "int":
        if isinstance(value, float):
            raise bad
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise bad
    if rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low):
        raise bad
    if rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high):
        raise bad
    return value


def validate_options(
    values: dict[str, Any], *, where: str | None = None, section: str = ""
) -> dict[str, Any]:
    """Check every option of ``values`` (names from :data:`RUN_OPTIONS`); returns normalised copies.

    ``where`` names the file the values come from (then ``section`` prefixes the key, e.g. ``train.``).
    """
    return {k: check_option(k, v, where=where, section=section) for k, v in values.items()}


# ---------------------------------------------------------------- head options
#
# A head class declares ``option_schema`` (option name -> OptionRule; every built-in head does).
# ``create_head``, ``RunSpec``, ``--head-option KEY=VALUE`` and a grid file's ``[head_options]``
# all check a head's options with :func:`check_head_options`, so the same value is refused the
# same way whichever way it came in. Rules a schema cannot express (heads must divide the width,
# init=clip needs a temporal expert) stay in the head's constructor, which runs before training.
# A head without a schema (a plugin head) gets its options passed through to its constructor.

#: How ``KEY=VALUE`` text spells None for an optional head option (e.g. ``heads=auto``).
NONE_WORDS = ("auto", "none")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def _unknown_head_option(head: str, key: str, schema: dict[str, OptionRule], prefix: str) -> Any:
    if not schema:
        return VtrbenchError(f"{prefix}head {head!r} takes no options; got {key}")
    return VtrbenchError(prefix + unknown_name_message(f"{head} option", str(key), sorted(schema)))


def check_head_options(
    head: str, options: dict[str, Any], schema: dict[str, OptionRule], *, where: str | None = None
) -> dict[str, Any]:
    """``options`` checked against ``head``'s declared schema and normalised (ints stay ints, a
    names list becomes a list), else a one-line VtrbenchError naming the head and the option: an
    unknown key lists the head's valid options, a bad value says what the option accepts.
    ``where`` (a grid file, ``--head-option``) prefixes the message."""
    prefix = f"{where}: " if where else ""
    out = {}
    for key, value in options.items():
        rule = schema.get(key)
        if rule is None:
            raise _unknown_head_option(head, key, schema, prefix)
        out[key] = check_value(rule, value, f"{prefix}head {head!r} option {key}")
    return out


def parse_option_text(rule: OptionRule | None, text: str) -> Any:
    """A ``KEY=VALUE`` value string → the rule's type (``check_value`` then judges it; text that
    does not parse stays a string, so the error shows what was typed). Without a rule (a plugin
    head without a schema): an integer, a number, true/false, else the string itself."""
    raw = text.strip()
    low = raw.lower()
    if rule is not None and rule.optional and low in NONE_WORDS:
        return None
    kind = rule.kind if rule is not None else None
    if kind in ("int", None):
        try:
            return int(raw)
        except ValueError:
            if kind == "int":
                return raw
    if kind in ("float", None):
        try:
            return float(raw)
        except ValueError:
            if kind == "float":
                return raw
    if kind in ("bool", None):
        if low in _TRUE_WORDS:
            return True
        if low in _FALSE_WORDS:
            return False
    return raw


def parse_head_option_pairs(
    head: str, pairs: list[str] | tuple[str, ...], schema: dict[str, OptionRule] | None, *, where: str
) -> dict[str, Any]:
    """``["layers=2", "init=clip"]`` → ``{"layers": 2, "init": "clip"}`` typed by ``schema`` and
    checked by it (None: a plugin head without a schema, values best-guess typed). A pair without
    ``=``, an empty key and a key given twice are errors."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise VtrbenchError(f"{where} {pair!r}: expected KEY=VALUE, e.g. {where} layers=2")
        if key in out:
            raise VtrbenchError(f"{where}: {key} is given twice (head {head!r})")
        rule = None
        if schema is not None:
            rule = schema.get(key)
            if rule is None:
                raise _unknown_head_option(head, key, schema, f"{where}: ")
        out[key] = parse_option_text(rule, raw)
    return check_head_options(head, out, schema, where=where) if schema is not None else out


def check_seed(seed: Any, *, where: str | None = None, option: str = "--seed") -> int:
    """A seed is an integer in 0 .. 2**63 - 1 (a 20-digit seed overflows torch's generator)."""
    label = option if where is None else f"{where}: seeds"
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise VtrbenchError(f"{label}: a seed must be an integer in 0..2**63-1, got {_short(seed)}")
    return int(seed)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
