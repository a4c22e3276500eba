"""What a run leaves behind: its result record (provenance, cache info, labels) and checkpoints."""

from __future__ import annotations

import io
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench import __version__
from vtrbench.cache import FeatureCache
from vtrbench.config import TrainConfig, config_hash, to_plain
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.heads.base import Head, list_heads
from vtrbench.metrics import TIE_POLICY, mdr_policy
from vtrbench.results import SCHEMA, TRANSDUCTIVE, atomic_write_bytes, run_id
from vtrbench.runs.data import SplitData
from vtrbench.threads import threads_provenance


def provenance(device: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    sha, dirty = None, None
    try:
        sha = (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
        if sha:
            dirty = bool(
                subprocess.run(
                    ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout.strip()
            )
    except (OSError, subprocess.SubprocessError):
        pass
    dev_name = (
        torch.cuda.get_device_name(torch.device(device))
        if device.startswith("cuda")
        else platform.processor() or "cpu"
    )
    return {
        "vtrbench": __version__,
        "git_sha": sha,
        "dirty": dirty,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": device,
        "device_name": dev_name,
        "platform": platform.platform(),
        **threads_provenance(),  # threads in use and the rule that chose them
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
    }


def cache_info(cache: FeatureCache) -> dict[str, Any]:
    a = cache.attrs
    return {
        "path": str(cache.path),
        "config_hash": cache.config_hash,
        "fingerprint": cache.fingerprint(),
        "model": a.get("model"),
        "pretrained": a.get("pretrained"),
        "embed_dim": a.get("embed_dim"),
        "random_weights": bool(a.get("random_weights", False)),
        "dataset": a.get("dataset"),
        # what the features are, not only how they were made (None for caches without one)
        "content_hash": getattr(cache, "content_hash", None),
        # how frames were preprocessed and sampled, and how often CAMoE's POS streams fell back
        "preprocess": a.get("preprocess"),
        "windows": a.get("windows"),
        "pos_coverage": a.get("pos_coverage"),
        "pos_no_verb_share": a.get("pos_no_verb_share"),
        "pos_no_noun_share": a.get("pos_no_noun_share"),
    }


def head_label(head: Head, name: str, plugin: dict[str, Any] | None = None) -> str:
    label = getattr(head, "label", None)
    text = label() if callable(label) else name
    if plugin:  # a plugin's version (or source hash) is part of the method's name in every table
        text += f" [{plugin.get('version') or 'sha256:' + str(plugin.get('sha256') or '?')[:8]}]"
    return text


def build_result(
    *,
    kind: str,
    config: TrainConfig,
    seed: int,
    head: Head,
    cache: FeatureCache,
    test: SplitData,
    evaluation: dict[str, Any],
    history: list[dict[str, Any]],
    timing: dict[str, float],
    device: str,
    protocol_extra: dict[str, Any] | None = None,
    plugins: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result dict of one run. ``plugins``: the full origins (with paths) of the plugin entries
    used, for ``provenance.plugins``; the config holds only their identities (name, version, sha256)."""
    chash = config_hash(config)
    dataset = str(cache.attrs.get("dataset"))
    loss = config.loss
    return {
        "schema": SCHEMA,
        "run_id": run_id(dataset, config.head, loss, chash, seed),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "dataset": dataset,
        "head": config.head,
        "head_options": head.describe(),
        "loss": loss,
        "loss_options": dict(config.loss_options),
        "label": head_label(head, config.head, config.plugins.get("head"))
        + tuned_suffix(config.tuned)
        + compile_suffix(config.compile),
        "config": to_plain(config),
        "config_hash": chash,
        "seed": seed,
        "cache": cache_info(cache),
        "protocol": {
            "train_split": config.train_split or None,
            "test_split": config.test_split,
            "n_queries": test.n_texts,
            "n_gallery": test.n_videos,
            "excluded_failed_videos": test.excluded_videos,
            "v2t_multi_caption": config.v2t_protocol,
            "ties": evaluation["protocol"].get("ties", TIE_POLICY),
            "tie_tolerance": evaluation["protocol"].get("tie_tolerance"),
            "dsl_inference_tau": config.dsl_tau,
            "qbnorm": {
                # the bank actually used: min(asked, the train split's captions/videos), or None
                # when qbnorm was not evaluated (no train split); the asked size is in config.qb_bank
                "bank_size": ((evaluation.get("protocol") or {}).get("qbnorm") or {}).get("bank_size"),
                "bank_size_asked": config.qb_bank,
                "beta": config.qb_beta,
                "k": config.qb_k,
                "bank_split": config.train_split or None,
                "t2v": "official QB-Norm (Bogolin et al. 2022): bank of training captions",
                "v2t": "vtrbench extension (the official method is text-to-video only): "
                "bank of training videos",
            },
            # parameters of the hubness post-processings computed (vtrbench.postprocess; absent:
            # results made before them), and their banks' real sizes (the qbnorm banks)
            "post_options": (evaluation.get("protocol") or {}).get("post_options"),
            "post_bank_size": (evaluation.get("protocol") or {}).get("post_bank_size"),
            "mdr": mdr_policy(config.mdr),
            "precision": config.precision,
            # the head's own evaluation facts (tmass: its inference noise seed); None for most heads
            "head": head.eval_protocol() or None,
            **(protocol_extra or {}),
        },
        "metrics": evaluation["metrics"],
        "transductive": {p: TRANSDUCTIVE[p] for p in evaluation["metrics"]},
        "per_query_ranks": evaluation["per_query_ranks"],
        "per_query": evaluation["per_query"],
        "topk": evaluation["topk"],
        "topk_scores": evaluation.get("topk_scores"),
        "history": history,
        "gate": evaluation.get("gate"),
        "per_query_gate": evaluation.get("per_query_gate"),  # {expert: [weight per test caption]}
        "timing": timing,
        "provenance": {
            **provenance(device),
            "plugins": dict(config.plugins if plugins is None else plugins),
            "compile": config.compile,  # torch.compile mode of the training step ("none": eager)
        },
        **({"tuned": dict(config.tuned)} if config.tuned else {}),
    }


def compile_suffix(mode: str) -> str:
    """A compiled run's method name says so in every table (`` [compiled]``, or the mode when it is not
    torch's default): it rounds differently from the eager run, so report keeps the two apart."""
    if mode == "none":
        return ""
    return " [compiled]" if mode == "default" else f" [compiled {mode}]"


def tuned_suffix(tuned: dict[str, Any]) -> str:
    """`` (tuned, 40 trials)`` for a configuration from ``vtrbench ablate --tuned``, else empty."""
    return f" (tuned, {tuned['trials']} trials)" if tuned else ""


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def save_checkpoint(
    path: Path,
    head: Head,
    config: TrainConfig,
    seed: int,
    embed_dim: int,
    plugins: dict[str, Any] | None = None,
) -> None:
    """A plain dict of tensors and primitives, loadable with torch.load(weights_only=True).

    ``plugins``: the origins of the plugin head/loss (name, version, sha256, source), so that
    ``eval`` can say which plugin to load when it is missing."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": "vtrbench-head-1",
            "head": config.head,
            "head_options": dict(config.head_options),
            "embed_dim": embed_dim,
            "config": to_plain(config),
            "seed": seed,
            "plugins": to_plain(plugins if plugins is not None else config.plugins),
            "state_dict": {k: v.cpu() for k, v in head.state_dict().items()},
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def _check_checkpoint_head_known(path: Path, ckpt: dict[str, Any]) -> None:
    """A checkpoint of a plugin head needs that plugin loaded: say which one, not "damaged"."""
    name = ckpt.get("head")
    if not isinstance(name, str) or name in list_heads():
        return
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    origins = ckpt.get("plugins") if isinstance(ckpt.get("plugins"), dict) else None
    origin = (origins or config.get("plugins") or {}).get("head")
    if not isinstance(origin, dict):
        raise VtrbenchError(
            f"{path} holds head {name!r}, which is neither built in nor loaded: load the plugin that "
            "defines it with --plugin FILE_OR_MODULE"
        )
    version = f" {origin['version']}" if origin.get("version") else ""
    sha = f", sha256 {str(origin['sha256'])[:12]}" if origin.get("sha256") else ""
    source = origin.get("source")
    how = f"--plugin {source}" if source and origin.get("kind") in ("file", "module") else "--plugin FILE"
    if origin.get("kind") == "entry point":
        how = f"install {origin.get('name')}{version}"
    raise VtrbenchError(
        f"{path} holds head {name!r} of plugin {origin.get('name')}{version}{sha}, which is not loaded "
        f"(no head {name!r} is registered): {how}"[:600]
    )


def load_checkpoint(path: Path) -> tuple[Head, dict[str, Any]]:
    """A head saved by :func:`save_checkpoint`; anything else is a one-line VtrbenchError."""
    path = Path(path)
    if path.is_dir():
        raise VtrbenchError(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise VtrbenchError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch's messages (and their weights_only advice) stay out
        raise VtrbenchError(
            f"{path} is not a vtrbench head checkpoint (unreadable as a torch file: {type(e).__name__}); "
            "checkpoints come from `vtrbench train --save-checkpoint`"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "vtrbench-head-1":
        raise VtrbenchError(f"{path} is not a vtrbench head checkpoint (no format tag)")
    _check_checkpoint_head_known(path, ckpt)
    try:
        embed_dim = int(ckpt["embed_dim"])
        head = create_head(str(ckpt["head"]), embed_dim=embed_dim, **dict(ckpt["head_options"]))
        head.load_state_dict(ckpt["state_dict"])
        config = ckpt["config"]
        if not isinstance(config, dict) or "loss" not in config:
            raise KeyError("config")
        int(ckpt["seed"])
    except VtrbenchError as e:
        raise VtrbenchError(f"{path}: damaged checkpoint ({e})") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else type(e).__name__
        raise VtrbenchError(
            f"{path}: damaged checkpoint (its weights do not fit head {ckpt.get('head')!r}: {what})"
        ) from None
    head.eval()
    return head, ckpt
