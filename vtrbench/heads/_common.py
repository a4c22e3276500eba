"""Head set-up that several built-in heads share, written once.

- :class:`AdaptedHead` (:class:`AdaptedPairwiseHead` for pairwise heads): the options every
  trainable head with a logit scale takes, :data:`ADAPTED_OPTIONS`, and their set-up; with
  :func:`takes_scale_options` a head's constructor declares the logit-scale keywords without
  spelling them out. A factorised subclass also takes :data:`EMCL_OPTIONS` (EMCL's training module,
  ``emcl=true``), added to its schema and signature when the class is created.
- :class:`EotTextHead`: CLIP4Clip's text side, a residual linear adapter on the unit EOT feature
  (meanp, seqlstm, seqtransf); :class:`BasicEotHead` adds the constructor of the heads whose
  options are only the shared ones (meanp, seqlstm).
- :class:`ClipStart`: the start of a head's transformer from CLIP's text tower (``init="clip"``).

None of it creates a module or draws a random number on its own, except the EMCL module of a head
built with ``emcl=true`` (its ``emcl_step.bases`` buffer, drawn from a generator of its own): every
head still creates its parameters itself and in its own order, so their ``state_dict`` keys and the
seeded draws that initialise them (checkpoints and result files depend on both) are the head's alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from vtrbench import defaults
from vtrbench.config import OptionRule, check_value
from vtrbench.defaults import LOGIT_SCALE_INIT
from vtrbench.errors import VtrbenchError
from vtrbench.heads._emcl import EmclModule
from vtrbench.heads._layers import (
    ACTIVATIONS,
    BOOL_OPTION,
    INITS,
    TemporalEncoder,
    adapt_unit,
    backbone_misfit,
    choose_one,
    eot_input,
    option_names,
    positive_int,
    reject_unknown_options,
    resolve_heads,
    resolve_init,
    unit_adapter,
)
from vtrbench.heads.base import (
    LOGIT_SCALE_MODE,
    LOGIT_SCALE_OPTION,
    LOGIT_SCALE_SPACE,
    Batch,
    Head,
    PairwiseHead,
)

#: The options of every trainable built-in head with a logit scale (all but tighttransf and
#: zeroshot): ``adapter`` (default True: the head's residual linear adapters, the identity at
#: initialisation; False puts the identity in their place) and ``logit_scale`` ("learned" | "fixed"
#: at ``logit_scale_init``, default 100; see :class:`vtrbench.heads.base.Head`).
ADAPTED_OPTIONS: dict[str, OptionRule] = {"adapter": BOOL_OPTION, **LOGIT_SCALE_OPTION}
#: The logit-scale keywords of a head's constructor and their defaults.
SCALE_DEFAULTS: dict[str, Any] = {"logit_scale": LOGIT_SCALE_MODE, "logit_scale_init": LOGIT_SCALE_INIT}
_SCALE_PARAMETERS = tuple(
    inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=type(default).__name__
    )
    for name, default in SCALE_DEFAULTS.items()
)

#: EMCL as a training module (:class:`vtrbench.heads._emcl.EmclModule`), an option of every
#: factorised head (its batch's videos and captions go through the EM step before the logits):
#: ``emcl`` (default False) and its parameters, EMCL-Net's MSR-VTT setting by default. A factorised
#: subclass of :class:`AdaptedHead` gets them in its schema and signature without listing them.
EMCL_OPTIONS: dict[str, OptionRule] = {
    "emcl": BOOL_OPTION,
    "emcl_k": OptionRule("int", low=1, high=defaults.EMCL_K_MAX),
    "emcl_iters": OptionRule("int", low=1, high=defaults.EMCL_ITERS_MAX),
    "emcl_lambda": OptionRule("float", low=defaults.EMCL_LAMBDA_MIN),
    "emcl_beta": OptionRule("float", low=0, low_open=True, high=defaults.EMCL_BETA_MAX),
    "emcl_momentum": OptionRule("float", low=0, high=1),
}
EMCL_DEFAULTS: dict[str, Any] = {
    "emcl": False,
    "emcl_k": defaults.EMCL_TRAIN_K,
    "emcl_iters": defaults.EMCL_TRAIN_ITERS,
    "emcl_lambda": defaults.EMCL_TRAIN_LAMBDA,
    "emcl_beta": defaults.EMCL_TRAIN_BETA,
    "emcl_momentum": defaults.EMCL_TRAIN_MOMENTUM,
}
#: ``vtrbench tune``'s range for EMCL, for a ``--space`` file (``[head.meanp] emcl = {choices =
#: [false, true]}``, examples/tune_emcl.toml): it is not in the heads' own ``search_space``, so that
#: the searches behind the README's tuned table stay what they were.
EMCL_SPACE: dict[str, dict[str, Any]] = {"emcl": {"choices": [False, True]}}
_EMCL_PARAMETERS = tuple(
    inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=type(default).__name__
    )
    for name, default in EMCL_DEFAULTS.items()
)

Init = TypeVar("Init", bound=Callable[..., None])


def takes_scale_options(before: str | None = None) -> Callable[[Init], Init]:
    """Decorator of an :class:`AdaptedHead` subclass's ``__init__`` that ends in ``**options``: the
    logit-scale keywords (:data:`SCALE_DEFAULTS`) join its signature, before the keyword ``before``
    or else last, and :class:`AdaptedHead` takes their values out of ``options``.

    The signature is the head's list of options (``_layers.option_names``, ``vtrbench tune``,
    ``help()``), so the keywords stand in it, in the order the head declares, as if written out.
    """

    def decorate(init: Init) -> Init:
        sig = inspect.signature(init)
        params = list(sig.parameters.values())
        if params[-1].kind is not inspect.Parameter.VAR_KEYWORD:
            raise TypeError(f"{init.__qualname__} must end in **options to take the logit-scale options")
        at = [p.name for p in params].index(before) if before else len(params) - 1
        init.__signature__ = sig.replace(parameters=[*params[:at], *_SCALE_PARAMETERS, *params[at:]])
        init.takes_scale_options = True  # type: ignore[attr-defined]
        return init

    return decorate


def bracket_label(name: str, extras: list[str], sep: str = ",") -> str:
    """``name[extra,extra]``, or ``name`` alone without extras."""
    return f"{name}[{sep.join(extras)}]" if extras else name


class AdaptedHead(Head):
    """A head with the options :data:`ADAPTED_OPTIONS`. A subclass's ``__init__`` declares its own
    options and ``adapter`` as keywords, takes the logit-scale ones with
    :func:`takes_scale_options`, passes ``adapter`` and ``**options`` here first, then validates
    its own options and builds its modules."""

    #: The head's registered name, as its errors and its label spell it.
    head_name: ClassVar[str] = ""
    search_space = {**Head.search_space, **LOGIT_SCALE_SPACE}  # the recipe and the logit scale

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.pairwise:
            _add_emcl_options(cls)

    def __init__(self, embed_dim: int, options: Mapping[str, Any], adapter: bool) -> None:
        """``options``: the logit-scale options given, a factorised head's EMCL ones, and any unknown."""
        unknown = dict(options)
        scale = {name: unknown.pop(name, default) for name, default in SCALE_DEFAULTS.items()}
        emcl = {} if self.pairwise else {name: unknown.pop(name, d) for name, d in EMCL_DEFAULTS.items()}
        reject_unknown_options(self.head_name, unknown, option_names(type(self)))
        super().__init__(embed_dim, **scale)
        self.adapter = bool(adapter)
        self.emcl_options = self._checked_emcl(emcl, options)
        self.emcl_step: EmclModule | None = None
        if self.emcl_options:
            # its bases are drawn from a generator of their own, seeded by the process's seed: the
            # head's parameters keep the seeded draws of a head without EMCL
            generator = torch.Generator().manual_seed(torch.initial_seed())
            opts = {k.removeprefix("emcl_"): v for k, v in self.emcl_options.items() if k != "emcl"}
            self.emcl_step = EmclModule(lamd=opts.pop("lambda"), generator=generator, **opts)

    def _checked_emcl(self, emcl: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        """The EMCL options when ``emcl`` is on (all of them: a default spelled out is the same
        head), else {}; a parameter given without ``emcl=true`` is refused."""
        if not emcl:
            return {}
        out = {
            k: check_value(EMCL_OPTIONS[k], v, f"head {self.head_name!r} option {k}") for k, v in emcl.items()
        }
        if not out["emcl"]:
            stray = sorted(k for k in given if k in EMCL_OPTIONS and k != "emcl")
            if stray:
                raise VtrbenchError(f"head {self.head_name!r} option {stray[0]} needs emcl=true")
            return {}
        return out

    def training_logits(self, text: Batch, video: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.emcl_step is None:
            return super().training_logits(text, video)
        return self.emcl_logits(self.encode_text(text), self.encode_video(video)), []

    def emcl_logits(self, text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """Logit-scaled ``text @ video.T`` of a training batch, through the EMCL step when it is on.

        Evaluation scores the head's own embeddings: the EM step reads the whole set it is given, so
        a pair's score would depend on the other items of its block; ``--post emcl`` applies it to
        the whole test split instead (transductive; docs/heads.md, EMCL)."""
        if self.emcl_step is not None:
            text, video = self.emcl_step(text, video)
        return self.logit_scale() * (text @ video.t())

    def emcl_describe(self) -> dict[str, Any]:
        """The EMCL options for ``describe()``: all of them when on, none when off (run ids of heads
        without it stay those of earlier releases)."""
        return dict(self.emcl_options)

    def emcl_label(self) -> list[str]:
        """Label extras: ``emcl`` and each of its parameters that is not the default."""
        if not self.emcl_options:
            return []
        return ["emcl"] + [
            f"{k}={v:g}" for k, v in self.emcl_options.items() if k != "emcl" and v != EMCL_DEFAULTS[k]
        ]

    def new_adapter(self) -> nn.Module:
        """A residual linear adapter of the embedding width, or the identity with ``adapter=False``."""
        return unit_adapter(self.embed_dim, self.adapter)

    def option_extras(self) -> list[str]:
        """Label extras of the shared options (empty for their defaults)."""
        return ([] if self.adapter else ["no-adapter"]) + self.scale_label() + self.emcl_label()


def _add_emcl_options(cls: type[AdaptedHead]) -> None:
    """:data:`EMCL_OPTIONS` into a factorised head's schema, and their keywords into the signature of
    its constructor (when it declares the logit-scale ones with :func:`takes_scale_options`)."""
    schema = cls.__dict__.get("option_schema")
    if schema is not None and "emcl" not in schema:
        cls.option_schema = {**schema, **EMCL_OPTIONS}
    init = cls.__dict__.get("__init__")
    if init is None or not getattr(init, "takes_scale_options", False):
        return
    sig = inspect.signature(init)
    params = list(sig.parameters.values())
    if "emcl" not in sig.parameters:
        init.__signature__ = sig.replace(parameters=[*params[:-1], *_EMCL_PARAMETERS, params[-1]])


class AdaptedPairwiseHead(AdaptedHead, PairwiseHead):
    """A pairwise head (see :class:`vtrbench.heads.base.PairwiseHead`) with the shared options."""


class EotTextHead(AdaptedHead):
    """Text = unit(A_t(unit(EOT))): CLIP4Clip's sentence feature through the residual linear
    adapter ``text_adapter``, which the subclass creates."""

    text_needs_tokens = False  # text = adapted EOT feature only
    text_adapter: nn.Module

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm adapted EOT features."""
        return adapt_unit(self.text_adapter, eot_input(batch, self.log_logit_scale.dtype))


class BasicEotHead(EotTextHead):
    """An :class:`EotTextHead` whose options are the shared ones only, :data:`ADAPTED_OPTIONS`
    (meanp, seqlstm). The subclass creates its modules in :meth:`build`."""

    option_schema = ADAPTED_OPTIONS

    @takes_scale_options()
    def __init__(self, embed_dim: int, *, adapter: bool = True, **options: Any) -> None:
        super().__init__(embed_dim, options, adapter)
        self.build()

    def build(self) -> None:
        """Create the head's modules, in the order their random initialisation is drawn."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, **self.scale_options(), **self.emcl_describe()}

    def label(self) -> str:
        return bracket_label(self.head_name, self.option_extras())


class ClipStart:
    """Mixin of the heads whose transformer can start from CLIP's text tower (``init="clip"``,
    CLIP4Clip's start): :meth:`resolve_options` decides ``init`` from the cache (see
    ``_layers.resolve_init``), :meth:`init_from` checks that the cache's backbone fits the head's
    options, then the head's :meth:`load_clip` copies the weights."""

    head_name: ClassVar[str]
    #: ``layers`` when the options do not say.
    default_layers: ClassVar[int]
    #: The frames CLIP's text positions must cover: None, the head's ``max_frames`` option; a
    #: number for a head whose frame rows past CLIP's context keep their random start.
    clip_frames: ClassVar[int | None] = None
    training: bool
    embed_dim: int
    init: str
    layers: int
    heads: int
    max_frames: int
    activation: str
    backbone_loaded: bool

    @classmethod
    def has_transformer(cls, options: Mapping[str, Any]) -> bool:
        """Whether the head built with ``options`` has a transformer for ``init`` to start."""
        return True

    @classmethod
    def resolve_options(
        cls, options: Mapping[str, Any], backbone: Mapping[str, Any], embed_dim: int
    ) -> tuple[dict[str, Any], str | None]:
        """Options with ``init`` decided from the cache's backbone info (see _layers.resolve_init);
        without a transformer ``init`` does not apply and the options stay as given."""
        if not cls.has_transformer(options):
            return dict(options), None
        # without a max_frames option (tighttransf) CLIP's positions are checked against clip_frames
        given = options if cls.clip_frames is None else {**options, "max_frames": cls.clip_frames}
        opts, note = resolve_init(
            cls.head_name, given, backbone, embed_dim, default_layers=cls.default_layers
        )
        if cls.clip_frames is not None:
            opts.pop("max_frames")
        return opts, note

    def set_temporal_options(
        self, layers: Any, init: Any, heads: Any, max_frames: Any, activation: Any
    ) -> None:
        """Check and keep the options of a temporal transformer (``_layers.temporal_schema``)."""
        self.layers = positive_int(self.head_name, "layers", layers)
        self.init = choose_one(self.head_name, "init", init, INITS)
        self.heads = resolve_heads(self.head_name, self.embed_dim, heads)
        self.max_frames = positive_int(self.head_name, "max_frames", max_frames)
        self.activation = choose_one(self.head_name, "activation", activation, ACTIVATIONS)

    def new_temporal_encoder(self) -> TemporalEncoder:
        """A temporal transformer with the head's options (see :meth:`set_temporal_options`)."""
        return TemporalEncoder(self.embed_dim, self.layers, self.heads, self.max_frames, self.activation)

    def load_clip(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Copy CLIP's text positions and layers into the head's transformer."""
        raise NotImplementedError

    def init_from(self, weights: Mapping[str, torch.Tensor], backbone: Mapping[str, Any]) -> None:
        """Start the head's transformer from CLIP's text tower (init="clip"), as CLIP4Clip does."""
        misfit = backbone_misfit(
            backbone,
            width=self.embed_dim,
            layers=self.layers,
            heads=self.heads,
            max_frames=self.max_frames if self.clip_frames is None else self.clip_frames,
        )
        if misfit is None and backbone.get("activation") != self.activation:
            misfit = f"CLIP's text layers use {backbone.get('activation')}, the head {self.activation}"
        if misfit is not None:
            raise VtrbenchError(f"{self.head_name} init=clip: {misfit}")
        self.load_clip(weights)
        self.backbone_loaded = True

    def check_clip_loaded(self) -> None:
        """Refuse to train a head built with init="clip" before :meth:`init_from` ran."""
        if self.training and self.init == "clip" and not self.backbone_loaded:
            raise VtrbenchError(
                f"{self.head_name} init=clip: training started before init_from() loaded CLIP's layers"
            )
