"""The argument checks of :mod:`vtrbench.api`.

Every function of the API checks its arguments before any work, with the rules the command line
uses (:data:`vtrbench.config.RUN_OPTIONS` through ``check_option``; registered names; the run spec's
loss/head option and device checks). A wrong argument is one VtrbenchError
"FUNCTION: ARGUMENT must be ..., got ...", never an internal AttributeError or shape error from deep
inside. Top layer, beside api.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vtrbench.config import RECIPE_OPTIONS, OptionRule, check_option
from vtrbench.errors import VtrbenchError
from vtrbench.heads.base import HEADS, Head
from vtrbench.registry import unknown_name_message
from vtrbench.results import POSTPROCESSING
from vtrbench.runs.data import SplitData

EMBED_DIM = OptionRule("int", low=1, high=65536)
POSITIVE_INT = OptionRule("int", low=1)
SCALE = OptionRule("float", low=0, low_open=True)
# train_head's recipe: the run options fit reads, and the recipe fields only the API sets
RECIPE = ("epochs", "batch_size", "lr", "weight_decay", "precision", "compile", *RECIPE_OPTIONS)


def bad(fn: str, name: str, what: str, value: Any) -> VtrbenchError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return VtrbenchError(f"{fn}: {name} must be {what}, got {type(value).__name__} {shown}")


def path_arg(fn: str, name: str, value: Any) -> Path:
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise bad(fn, name, "a file path (str or Path)", value)
    if "\x00" in str(value):
        raise bad(fn, name, "a file path without NUL bytes", value)
    return Path(value)


def head_arg(fn: str, value: Any, name: str = "head") -> Head:
    if not isinstance(value, Head):
        raise bad(fn, name, "a vtrbench Head (api.create_head or a Head subclass)", value)
    return value


def head_name(head: Head) -> str:
    """The registered name of ``head``'s class ("" when it was never registered)."""
    names = HEADS.names_for(type(head))
    return names[0] if names else ""


def split_arg(fn: str, name: str, value: Any, head: Head | None = None) -> SplitData:
    """A SplitData whose tensors fit together and fit ``head`` (width, required fields)."""
    if not isinstance(value, SplitData):
        raise bad(fn, name, "a SplitData (api.load_split)", value)
    video, text = value.video, value.text
    if not isinstance(video, dict) or not isinstance(text, dict):
        raise VtrbenchError(f"{fn}: {name}.video and {name}.text must be dicts of tensors")
    for side, table, keys in (("video", video, ("frames", "frame_mask")), ("text", text, ("tokens", "eot"))):
        for key in keys:
            if not isinstance(table.get(key), torch.Tensor):
                raise VtrbenchError(f"{fn}: {name}.{side}[{key!r}] is missing or not a tensor")
    frames, tokens = video["frames"], text["tokens"]
    if frames.ndim != 3 or tokens.ndim != 3:
        raise VtrbenchError(
            f"{fn}: {name} must hold frames (Nv, T, D) and tokens (Nt, L, D), got {tuple(frames.shape)} "
            f"and {tuple(tokens.shape)}"
        )
    if frames.shape[-1] != tokens.shape[-1]:
        raise VtrbenchError(
            f"{fn}: {name} has frames of width {frames.shape[-1]}, tokens of {tokens.shape[-1]}"
        )
    tv = value.text_video
    if not isinstance(tv, torch.Tensor) or tv.ndim != 1 or len(tv) != tokens.shape[0]:
        raise VtrbenchError(f"{fn}: {name}.text_video must be a ({tokens.shape[0]},) tensor of video rows")
    if len(tv) and (tv.is_floating_point() or int(tv.min()) < 0 or int(tv.max()) >= frames.shape[0]):
        raise VtrbenchError(f"{fn}: {name}.text_video holds rows outside 0..{frames.shape[0] - 1}")
    if head is not None:
        width = getattr(head, "embed_dim", None)
        if isinstance(width, int) and width != frames.shape[-1]:
            raise VtrbenchError(
                f"{fn}: the head was made for features of width {width}, {name} holds width "
                f"{frames.shape[-1]} (create the head with embed_dim from the same cache)"
            )
        fields = set(video) | set(text)
        missing = sorted(set(getattr(head, "requires", ())) - fields)
        if missing:
            raise VtrbenchError(
                f"{fn}: the head needs {', '.join(missing)}, which {name} does not hold"
                + (PATCH_HINT if "patches" in missing else "")
            )
    return value


#: How a split without the patch tokens a head reads is refused (the extract option named).
PATCH_HINT = " (load_split(..., patches=True), from a cache made by `vtrbench extract --patch-tokens`)"


def posts_arg(fn: str, value: Any) -> tuple[str, ...]:
    known = POSTPROCESSING
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not value:
        raise bad(fn, "postprocessing", f"a non-empty tuple of {', '.join(known)}", value)
    for p in value:
        if p not in known:
            raise bad(fn, "postprocessing", f"a tuple of {', '.join(known)}", value)
    return tuple(value)


def eval_options(fn: str, **values: Any) -> dict[str, Any]:
    """Run options of an evaluation (dsl_tau, qb_*, v2t_protocol, mdr) through config.RUN_OPTIONS."""
    return {k: check_option(k, v, where=fn) for k, v in values.items()}


def progress_arg(fn: str, value: Any, needs: str) -> Any:
    if value is not None and not hasattr(value, needs):
        raise bad(fn, "progress", f"None or an object with .{needs}", value)
    return value


def registered(fn: str, kind: str, name: Any, names: list[str]) -> str:
    if not isinstance(name, str):
        raise bad(fn, kind, f"a registered {kind} name (str)", name)
    if name not in names:
        raise VtrbenchError(f"{fn}: " + unknown_name_message(kind, name, names))
    return name
