"""The contract a head keeps, checked on tiny dry batches before any work.

A head that is not built in (a plugin) is run once on (3 x 2) and (5 x 5) random batches when it is
created (:func:`check_head`, called by :func:`vtrbench.factory.create_head`); training checks the
logit shape of every step with :func:`check_logit_shape`. Plugin authors can run the same checks on
their own heads.

Family layer (heads/): imports only heads.base and the ground below it.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from vtrbench.errors import VtrbenchError
from vtrbench.heads.base import HEADS


def dry_batches(embed_dim: int, n_text: int = 3, n_video: int = 2, words: int = 6, frames: int = 4) -> Any:
    """Tiny random text and video batches with every field a head may read (see heads/base.py)."""
    g = torch.Generator().manual_seed(0)
    token_mask = torch.ones(n_text, words, dtype=torch.bool)
    token_mask[0, words - 2 :] = False  # one shorter caption: padding must be handled
    eot = token_mask.sum(1) - 1
    text = {
        "tokens": torch.randn(n_text, words, embed_dim, generator=g),
        "token_mask": token_mask,
        "eot": eot,
        "noun_mask": torch.zeros(n_text, words, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True),
        "verb_mask": torch.zeros(n_text, words, dtype=torch.bool).index_fill_(1, torch.tensor([2]), True),
    }
    frame_mask = torch.ones(n_video, frames, dtype=torch.bool)
    frame_mask[-1, frames - 1 :] = False
    video = {
        "frames": torch.randn(n_video, frames, embed_dim, generator=g),
        "frame_mask": frame_mask,
        # patch tokens (heads that declare ``requires = {"patches"}`` read them): 5 per frame
        "patches": torch.randn(n_video, frames, 5, embed_dim, generator=g),
    }
    return text, video


# Dry batch sizes (captions x videos): not square and not equal to each other, so that a head that
# confuses the two axes, or returns a shape that only fits one batch size, is caught before training.
DRY_SIZES = ((3, 2), (5, 5))


def check_head(head: Any, name: str, embed_dim: int) -> None:
    """Dry runs of a head that is not built in, before any work: on (3 x 2) and (5 x 5) batches the
    logits must have that shape and be finite, a backward pass must reach trainable parameters
    (frozen parameters or detached logits would fail at the first step), and ``describe()`` must be
    plain JSON data with finite numbers (it goes into the config hash and the result file).

    The global RNG is left as it was (a head with dropout draws from it), so a run's numbers do not
    depend on whether the check ran.
    """
    origin = HEADS.origin(name)
    if origin.get("kind") == "builtin":
        return
    who = f"plugin head {name!r} ({origin.get('source')})"
    check_describe(head, who)
    was_training = head.training
    trainable = bool(getattr(head, "trainable", True))
    params = [p for p in head.parameters() if p.requires_grad] if trainable else []
    if trainable and not params:
        raise VtrbenchError(f"{who} has no trainable parameters (all frozen): nothing would train")
    buffers = {k: b.detach().clone() for k, b in head.named_buffers()}  # e.g. BatchNorm statistics
    try:
        with torch.random.fork_rng(devices=[]):
            for n_text, n_video in DRY_SIZES:
                text, video = dry_batches(embed_dim, n_text=n_text, n_video=n_video)
                _dry_step(head, who, text, video, params)
    finally:
        head.train(was_training)
        with torch.no_grad():
            for k, b in head.named_buffers():
                if k in buffers and b.shape == buffers[k].shape:
                    b.copy_(buffers[k])


def _dry_step(head: Any, who: str, text: Any, video: Any, params: list[Any]) -> None:
    nt, nv = text["tokens"].shape[0], video["frames"].shape[0]
    try:
        with torch.enable_grad():
            logits, aux = head.training_logits(text, video)
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(
            f"{who} failed on a dry batch: {type(e).__name__}: {e} ({nt} captions x {nv} videos)"
        ) from None
    check_logit_shape(logits, nt, nv, who)
    if not torch.isfinite(logits).all():
        raise VtrbenchError(f"{who} returned non-finite scores (NaN or inf) on a dry batch")
    for a in aux or []:
        if not isinstance(a, torch.Tensor) or tuple(a.shape) != (nt, nv) or not torch.isfinite(a).all():
            shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise VtrbenchError(f"{who} returned a bad auxiliary logit matrix (shape {shape})")
    if not params:
        return
    if not logits.requires_grad:
        raise VtrbenchError(
            f"{who} returned logits without a gradient (detached, or computed only from frozen "
            "parameters): training could not update it"
        )
    try:
        grads = torch.autograd.grad(logits.float().sum(), params, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - user code (e.g. an in-place op on a leaf)
        raise VtrbenchError(f"{who} failed in a dry backward pass: {type(e).__name__}: {e}") from None
    if all(g is None for g in grads):
        raise VtrbenchError(f"{who}: no trainable parameter receives a gradient from its logits")


def check_logit_shape(logits: Any, n_text: int, n_video: int, who: str) -> None:
    """``logits`` must be a (n_text, n_video) tensor (used on dry batches and on every training step)."""
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (n_text, n_video):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise VtrbenchError(
            f"{who} returned logits of shape {shape} for {n_text} captions x {n_video} videos"
        )


def check_describe(head: Any, who: str) -> None:
    """``head.describe()`` must be a JSON object of plain data with finite numbers."""
    try:
        described = head.describe()
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(f"{who}: describe() failed: {type(e).__name__}: {e}") from None
    if not isinstance(described, dict):
        kind = type(described).__name__
        raise VtrbenchError(f"{who}: describe() must return a dict of options, got {kind}")
    try:
        json.dumps(described, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise VtrbenchError(
            f"{who}: describe() must return plain JSON data (str, int, finite float, bool, None, lists, "
            f"dicts): {e}"
        ) from None


def head_who(name: str) -> str:
    """How errors name a head: ``head 'meanp'`` or ``plugin head 'x' (/path/x.py)``."""
    try:
        origin = HEADS.origin(name)
    except VtrbenchError:
        return f"head {name!r}"
    if origin.get("kind") == "builtin":
        return f"head {name!r}"
    return f"plugin head {name!r} ({origin.get('source')})"
