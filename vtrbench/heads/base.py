"""The head interface.

A head maps cached frozen-CLIP features to one embedding per text and one per
video such that the retrieval similarity is their dot product::

    sim(t, v) = encode_text(t) @ encode_video(v)        # cosine-scale, in [-1, 1]
    logits    = logit_scale() * sim                     # what the losses see

Keeping similarity a plain dot product lets evaluation run in row chunks over any
gallery size without knowing which head produced the embeddings. A mixture of
experts fits this form by folding its text-only gate into the text embedding:
sum_k g_k(t) cos(t_k, v_k) = [g_1 t_1, ..., g_K t_K] . [v_1, ..., v_K] with
unit-norm t_k and v_k.

Pairwise heads (:class:`PairwiseHead`, ``pairwise = True``) cannot be written as a dot
product: they score every (caption, video) pair jointly, e.g. a caption attending over a
video's frames. They split the work into per-item *states* (``text_state``,
``video_state``: dicts of tensors with the items on dim 0, computed once per caption or
video) and ``score_states``, which scores a block of ``Bq`` caption states against ``Bv``
video states as a ``(Bq, Bv)`` similarity. Training scores the in-batch ``(B, B)`` block;
evaluation (:func:`vtrbench.runs.scoring.evaluate_head`) scores the test split block by block, so
its memory is bounded by one block (``eval_block``) whatever the gallery size.

Batches are dicts of tensors (names match the cache, see features/README.md):

text batch:  tokens (B, L, D) float, token_mask (B, L) bool, eot (B,) long,
             noun_mask (B, L) bool, verb_mask (B, L) bool   [masks may be absent]
video batch: frames (B, T, D) float, frame_mask (B, T) bool,
             patches (B, T, P, D) float                      [optional]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from vtrbench.config import OptionRule, check_head_options
from vtrbench.defaults import LOGIT_SCALE_INIT
from vtrbench.errors import VtrbenchError
from vtrbench.registry import Registry

Batch = dict[str, torch.Tensor]

LOGIT_SCALE_MAX = 100.0

#: ``logit_scale`` head option: ``learned`` (vtrbench's default: trained at the head's lr, clamped
#: to <= 100) or ``fixed`` at its initial value 100 (CLIP's trained scale, which CLIP4Clip, X-Pool
#: and DRL keep in effect: they train it at CLIP's tiny learning rate).
LOGIT_SCALE_MODES = ("learned", "fixed")
#: The default ``logit_scale`` mode.
LOGIT_SCALE_MODE = LOGIT_SCALE_MODES[0]
#: The schema entry every trainable head with a logit scale adds to its ``option_schema``.
#: ``logit_scale_init``: the scale's starting value (and, with ``logit_scale=fixed``, its value
#: throughout), i.e. an initial temperature of 1/logit_scale_init; 100 by default
#: (``vtrbench.defaults.LOGIT_SCALE_INIT``, re-exported here). In (0, 100] because the learned
#: scale is clamped to <= 100 after every step.
LOGIT_SCALE_OPTION: dict[str, OptionRule] = {
    "logit_scale": OptionRule("choice", choices=LOGIT_SCALE_MODES),
    "logit_scale_init": OptionRule("float", low=0.0, low_open=True, high=LOGIT_SCALE_MAX),
}
#: ``vtrbench tune``'s range for ``logit_scale_init`` (every head with a logit scale adds it).
LOGIT_SCALE_SPACE: dict[str, dict[str, Any]] = {"logit_scale_init": {"low": 10.0, "high": 100.0, "log": True}}


class Head(nn.Module):
    """Base class; factorised heads implement encode_text / encode_video."""

    #: True for heads that score (caption, video) pairs jointly (see :class:`PairwiseHead`).
    pairwise: bool = False

    #: False for heads with nothing to train (``zeroshot``).
    trainable: bool = True
    #: Cache fields this head needs beyond frames/tokens (e.g. {"noun_mask", "verb_mask"}).
    requires: frozenset[str] = frozenset()
    #: ``vtrbench tune``'s search space (see vtrbench/tune/space.py): parameter -> ``{"low", "high",
    #: "log"}`` or ``{"choices": [...]}``. The training recipe's keys (lr, weight_decay, epochs,
    #: warmup, batch_size) are declared here for every head; a head adds its own options
    #: (``search_space = {**Head.search_space, "layers": {...}}``); ``"max_epochs"`` is --max-epochs.
    search_space: dict[str, dict[str, Any]] = {
        "lr": {"low": 1e-5, "high": 3e-2, "log": True},
        "weight_decay": {"low": 0.0, "high": 0.5},
        "epochs": {"low": 1, "high": "max_epochs"},
        "warmup": {"low": 0.0, "high": 0.3},
        "batch_size": {"choices": [16, 32, 64, 128, 256]},
    }
    #: False for heads whose text side reads only the EOT feature: the trainer then keeps one
    #: (N, D) row per caption instead of (N, L, D) tokens, 1/L of the bytes gathered per step.
    text_needs_tokens: bool = True
    #: The head's options, name -> :class:`vtrbench.config.OptionRule` (type, range, choices);
    #: ``create_head``, ``RunSpec``, ``--head-option`` and grid files check options against it.
    #: None (plugin heads that declare nothing): options pass through to the constructor unchecked.
    option_schema: ClassVar[Mapping[str, OptionRule] | None] = None

    def __init__(
        self, embed_dim: int, logit_scale_init: float = LOGIT_SCALE_INIT, logit_scale: str = LOGIT_SCALE_MODE
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        if logit_scale not in LOGIT_SCALE_MODES:
            raise VtrbenchError(
                f"option logit_scale must be one of {', '.join(LOGIT_SCALE_MODES)}, got {logit_scale!r}"
            )
        self.logit_scale_mode = logit_scale
        self.logit_scale_init = float(logit_scale_init)
        # Stored as a log like CLIP; clamped to <= LOGIT_SCALE_MAX after every step.
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(logit_scale_init)), requires_grad=logit_scale == "learned"
        )

    def scale_options(self) -> dict[str, Any]:
        """``{"logit_scale": "fixed", "logit_scale_init": ...}``, each only when not the default: for
        ``describe()``. Defaults (learned, 100) are left out so that the config hash, and so the run
        id, of every run made before the options existed stays the same."""
        out: dict[str, Any] = {"logit_scale": "fixed"} if self.logit_scale_mode == "fixed" else {}
        if self.logit_scale_init != LOGIT_SCALE_INIT:
            out["logit_scale_init"] = self.logit_scale_init
        return out

    def scale_label(self) -> list[str]:
        """Label extras for the logit scale options (empty for the defaults)."""
        out = ["logit_scale=fixed"] if self.logit_scale_mode == "fixed" else []
        if self.logit_scale_init != LOGIT_SCALE_INIT:
            out.append(f"logit_scale_init={self.logit_scale_init:g}")
        return out

    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp()

    def clamp_logit_scale(self) -> None:
        with torch.no_grad():
            self.log_logit_scale.clamp_(max=math.log(LOGIT_SCALE_MAX))

    def encode_text(self, batch: Batch) -> torch.Tensor:
        """(B, E) text embeddings; the similarity is the dot product with encode_video."""
        raise NotImplementedError

    def encode_video(self, batch: Batch) -> torch.Tensor:
        """(B, E) video embeddings."""
        raise NotImplementedError

    def score(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bt, Bv) similarity of every text in ``text`` with every video in ``video``."""
        return self.encode_text(text) @ self.encode_video(video).t()

    def training_logits(self, text: Batch, video: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main (B, B) logits and optional auxiliary logit matrices (per-expert losses)."""
        return self.logit_scale() * self.score(text, video), []

    def gate_weights(self, text: Batch) -> dict[str, torch.Tensor] | None:
        """Per-expert gate weights (B,) keyed by expert name; None for heads without a gate."""
        return None

    def describe(self) -> dict[str, Any]:
        """The head's options as plain data (goes into result files and report labels)."""
        return {}

    def eval_protocol(self) -> dict[str, Any]:
        """What else fixes the head's evaluation, as plain data (e.g. tmass's inference noise seed,
        drawn from the run's seed): recorded in the result's ``protocol.head``, not in the run id."""
        return {}


class PairwiseHead(Head):
    """A head whose similarity does not factorise: subclasses implement ``text_state``,
    ``video_state`` and ``score_states``.

    Every tensor of a state has the items (captions or videos) on dim 0, so that a block is
    a row slice of it; a state holds what can be computed once per item (projections,
    normalised features, token weights), and ``score_states`` does only the per-pair work.
    """

    pairwise = True
    #: (captions, videos) scored at once in evaluation; the head's per-pair intermediates
    #: scale with their product, so this bounds evaluation memory independently of the split.
    eval_block: tuple[int, int] = (128, 128)

    def text_state(self, batch: Batch) -> Batch:
        """Per-caption tensors (B, ...) that ``score_states`` reads."""
        raise NotImplementedError

    def video_state(self, batch: Batch) -> Batch:
        """Per-video tensors (B, ...) that ``score_states`` reads."""
        raise NotImplementedError

    def score_states(self, text: Batch, video: Batch) -> torch.Tensor:
        """(Bq, Bv) similarity of ``Bq`` caption states with ``Bv`` video states."""
        raise NotImplementedError

    def score(self, text: Batch, video: Batch) -> torch.Tensor:
        return self.score_states(self.text_state(text), self.video_state(video))

    def encode_text(self, batch: Batch) -> torch.Tensor:
        raise VtrbenchError(f"{type(self).__name__} is pairwise: it has no text embedding; use score()")

    def encode_video(self, batch: Batch) -> torch.Tensor:
        raise VtrbenchError(f"{type(self).__name__} is pairwise: it has no video embedding; use score()")


def slice_state(state: Batch, rows: slice) -> Batch:
    """The rows ``rows`` of every tensor of a pairwise state."""
    return {k: v[rows] for k, v in state.items()}


HeadFactory = Callable[..., Head]
# The built-in heads, by module: imported on first use by the registry (base.py never imports them).
BUILTIN_MODULES = tuple(
    f"vtrbench.heads.{m}"
    for m in (
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
)
HEADS: Registry[HeadFactory] = Registry(
    "head", entry_point_group="vtrbench.heads", builtin_modules=BUILTIN_MODULES
)


def register_head(name: str) -> Callable[[HeadFactory], HeadFactory]:
    """Decorator: register a Head subclass (or factory taking ``embed_dim`` and options) as ``name``."""
    return HEADS.register(name)


def list_heads() -> list[str]:
    """Names of the built-in, plugin and installed (entry point) heads."""
    return HEADS.available()  # built-ins, loaded plugins and installed entry points


def is_pairwise(name: str) -> bool:
    """Whether the registered head ``name`` scores pairs jointly (no text/video embeddings)."""
    return bool(getattr(HEADS.get(name), "pairwise", False))


def head_option_schema(name: str) -> dict[str, OptionRule] | None:
    """The declared option schema of the registered head ``name`` (None: a plugin head without one)."""
    schema = getattr(HEADS.get(name), "option_schema", None)
    return dict(schema) if schema is not None else None


def validate_head_options(
    name: str, options: Mapping[str, Any], *, where: str | None = None
) -> dict[str, Any]:
    """``options`` checked against head ``name``'s schema and normalised (see
    :func:`vtrbench.config.check_head_options`); passed through for a head without a schema."""
    schema = head_option_schema(name)
    if schema is None:
        return dict(options)
    checked = check_head_options(name, dict(options), schema, where=where)
    # rules between options (tmass: prior_std only with prior=normal), before any cache is opened
    together = getattr(HEADS.get(name), "check_option_combination", None)
    if callable(together):
        together(checked, where=where)
    return checked


def __getattr__(name: str) -> Any:
    # Deprecated re-export: create_head moved to vtrbench.factory (above the families), which this
    # family's base must not import at module level; the lazy import keeps old callers working.
    if name == "create_head":
        from vtrbench.factory import create_head

        warnings.warn(
            "vtrbench.heads.base.create_head moved to vtrbench.factory.create_head",
            DeprecationWarning,
            stacklevel=2,
        )
        return create_head
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
