"""Training and evaluation of heads on a feature cache (no open_clip, no PyAV).

``fit`` loads a split's tensors into memory once (fp16 at rest, cast per batch),
samples every (caption, video) pair of the train split each epoch, and trains with
the METHODS.md section 10 recipe. ``evaluate_head`` embeds the test split and
hands the embeddings to vtrbench.evaluate (chunked, with raw / dsl / qbnorm); for a
pairwise head it computes the per-item states instead and hands over the head's block
scorer (same metrics, protocols and post-processings).
"""

from __future__ import annotations

import io
import math
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench import __version__
from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.config import TrainConfig, config_hash, to_plain
from vtrbench.errors import CacheError, VtrbenchError
from vtrbench.heads.base import Batch, Head, PairwiseHead, create_head
from vtrbench.losses.base import create_loss
from vtrbench.results import POSTPROCESSING, SCHEMA, TRANSDUCTIVE, run_id
from vtrbench.threads import threads_provenance

VIDEO_KEYS = ("frames", "frame_mask", "patches")
TEXT_KEYS = ("tokens", "token_mask", "eot", "noun_mask", "verb_mask")


@dataclass
class SplitData:
    """One split in memory. Text i belongs to gallery video ``text_video[i]``."""

    name: str
    video: dict[str, torch.Tensor]
    text: dict[str, torch.Tensor]
    text_video: torch.Tensor  # (Nt,) long, row in the split's video tensors
    video_rows: np.ndarray  # rows in the cache (for provenance)
    text_rows: np.ndarray
    excluded_videos: int = 0  # failed to decode: dropped with their captions

    @property
    def n_videos(self) -> int:
        return int(self.video["frames"].shape[0])

    @property
    def n_texts(self) -> int:
        return int(self.text["tokens"].shape[0])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.video.values(), *self.text.values()])


def load_split(cache: FeatureCache, split: str, *, patches: bool = False) -> SplitData:
    """Read a split into CPU tensors; videos that failed to decode are dropped with their captions."""
    video_rows, text_rows = cache.split_rows(split)
    status = cache.read_rows("videos", "status", video_rows)
    ok = status == STATUS_OK
    video_rows_ok = video_rows[ok]
    local = {int(r): i for i, r in enumerate(video_rows_ok)}
    text_video_rows = cache.read_rows("texts", "video", text_rows)
    keep = np.array([int(r) in local for r in text_video_rows], dtype=bool)
    text_rows_ok = text_rows[keep]
    if len(video_rows_ok) == 0 or len(text_rows_ok) == 0:
        raise CacheError(f"split {split!r} of {cache.path} has no usable videos/captions")
    video = {}
    for key in VIDEO_KEYS:
        if key == "patches" and not patches:
            continue
        if key in cache.file["videos"]:
            video[key] = torch.from_numpy(cache.read_rows("videos", key, video_rows_ok))
    text = {}
    for key in TEXT_KEYS:
        if key in cache.file["texts"]:
            arr = cache.read_rows("texts", key, text_rows_ok)
            text[key] = torch.from_numpy(arr.astype(np.int64) if key == "eot" else arr)
    tv = torch.tensor([local[int(r)] for r in text_video_rows[keep]], dtype=torch.long)
    return SplitData(split, video, text, tv, video_rows_ok, text_rows_ok, int((~ok).sum()))


def take(data: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device) -> Batch:
    """Index a batch and cast fp16 storage to fp32 on the way (tensors stay fp16 at rest)."""
    out = {}
    for k, v in data.items():
        b = v.index_select(0, idx).to(device, non_blocking=True)
        out[k] = b.float() if b.dtype == torch.float16 else b
    return out


def resident_on(data: SplitData, device: torch.device, fraction: float = 0.5) -> SplitData:
    """``data`` with its tensors (still fp16) moved to a GPU ``device`` when they take at most
    ``fraction`` of its free memory; otherwise (or on CPU) ``data`` itself.

    Batches are then gathered on the GPU: no host-side gather and no copy from pageable
    memory per step. Gathering and casting are exact, so the batches are the same.
    """
    if device.type != "cuda":
        return data
    # Memory this process's allocator holds but does not use is free for the split too.
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if data.nbytes() > fraction * (torch.cuda.mem_get_info(device)[0] + cached):
        return data
    return replace(
        data,
        video={k: v.to(device) for k, v in data.video.items()},
        text={k: v.to(device) for k, v in data.text.items()},
        text_video=data.text_video.to(device),
    )


def text_for(head: Head, data: SplitData) -> SplitData:
    """``data`` reduced to what the head's text side reads.

    Heads that use only the EOT feature (``text_needs_tokens = False``) get an (N, 1, D)
    table of EOT rows with ``eot = 0``: the same feature at 1/L of the memory traffic per
    batch (the input path of meanp is otherwise dominated by gathering unused tokens).
    """
    if head.text_needs_tokens:
        return data
    n = data.n_texts
    eot = data.text["eot"]
    rows = data.text["tokens"][torch.arange(n, device=eot.device), eot]
    text = {
        "tokens": rows[:, None, :],
        "token_mask": torch.ones(n, 1, dtype=torch.bool, device=eot.device),
        "eot": torch.zeros(n, dtype=torch.long, device=eot.device),
    }
    return replace(data, text=text)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def lr_lambda(total_steps: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(round(total_steps * warmup)))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def check_requirements(head: Head, cache: FeatureCache, head_name: str) -> None:
    missing = [f for f in sorted(head.requires) if not cache.has(f)]
    if missing:
        hint = ""
        if {"noun_mask", "verb_mask"} & set(missing):
            hint = " (re-extract with --tagger pattern|spacy, or use --streams learned|eot)"
        raise CacheError(
            f"head {head_name!r} with these options needs {', '.join(missing)}, "
            f"which {cache.path} does not hold{hint}"
        )


def fit(
    head: Head,
    train: SplitData,
    config: TrainConfig,
    seed: int,
    *,
    device: str = "cpu",
    progress: Any = None,
    val: SplitData | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``head`` in place; returns the per-epoch history. Raises VtrbenchError on a non-finite loss.

    ``on_epoch(entry)`` sees each epoch's history entry (with ``val`` when ``val`` is given); it may
    raise to stop training early (``vtrbench tune`` prunes a hopeless trial this way).
    """
    dev = torch.device(device)
    gen = seed_everything(seed)
    head.to(dev).train()
    train = resident_on(text_for(head, train), dev)
    loss_fn = create_loss(config.loss, **config.loss_options)
    aux_weight = float(config.head_options.get("aux_weight", 0.0) or 0.0)
    params = [p for p in head.parameters() if p.requires_grad]
    # CLIP-style: no weight decay on gains, biases, embeddings and the logit scale.
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
    )
    n = train.n_texts
    bs = min(config.batch_size, n)
    steps_per_epoch = n // bs  # drop the last partial batch: a tiny batch is a different loss
    total = max(1, steps_per_epoch * config.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, config.warmup))
    # bf16 autocast is CUDA-only (config.precision, recorded in results; None: bf16 on CUDA, as before)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda" and config.precision in (None, "bf16")
        else torch.autocast("cpu", enabled=False)
    )
    history: list[dict[str, Any]] = []
    task = progress.add_task("train", total=total, info="") if progress is not None else None
    from vtrbench.plugins import check_logit_shape, head_who

    who = head_who(config.head) if config.head else f"head {type(head).__name__}"
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        losses = []
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs].to(train.text_video.device)
            text = take(train.text, idx, dev)
            video = take(train.video, train.text_video.index_select(0, idx), dev)
            with autocast:
                logits, aux = head.training_logits(text, video)
                # a shape check per step costs nothing and names the head (the loss would only
                # say "expected a square (B, B) logit matrix")
                check_logit_shape(logits, bs, bs, who)
                loss = loss_fn(logits.float())
                if aux and aux_weight > 0:
                    loss = loss + aux_weight * torch.stack([loss_fn(a.float()) for a in aux]).mean()
            if not torch.isfinite(loss):
                raise VtrbenchError(
                    f"the loss became {loss.item()} at epoch {epoch}, step {s + 1}; training stopped and no "
                    "result was written (try a lower --lr or another --loss temperature)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            sched.step()
            head.clamp_logit_scale()
            losses.append(loss.item())
            if task is not None:
                el = time.perf_counter() - t0
                progress.update(
                    task,
                    advance=1,
                    info=f"epoch {epoch}/{config.epochs} loss {loss.item():.3f} "
                    f"{(s + 1) * bs / max(el, 1e-9):.0f} pairs/s",
                )
        seconds = time.perf_counter() - t0
        entry: dict[str, Any] = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "seconds": round(seconds, 4),
            "pairs_per_s": round(steps_per_epoch * bs / max(seconds, 1e-9), 1),
            "logit_scale": round(float(head.logit_scale().item()), 4),
        }
        if val is not None:
            m = evaluate_head(head, val, device=device, postprocessing=("raw",))["metrics"]["raw"]
            entry["val"] = {"t2v/R@1": m["t2v"]["R@1"], "v2t/R@1": m["v2t"]["R@1"], "RSum": m["RSum"]}
            head.train()
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
    head.eval()
    return history


@torch.no_grad()
def embed(
    head: Head, data: SplitData, *, device: str = "cpu", batch: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Nt, E) text and (Nv, E) video embeddings of a split."""
    dev = torch.device(device)
    head.to(dev).eval()
    data = text_for(head, data)
    texts = [
        head.encode_text(take(data.text, torch.arange(s, min(s + batch, data.n_texts)), dev)).float().cpu()
        for s in range(0, data.n_texts, batch)
    ]
    videos = [
        head.encode_video(take(data.video, torch.arange(s, min(s + batch, data.n_videos)), dev)).float().cpu()
        for s in range(0, data.n_videos, batch)
    ]
    return torch.cat(texts), torch.cat(videos)


@torch.no_grad()
def states(
    head: PairwiseHead, data: SplitData, *, device: str = "cpu", batch: int = 1024
) -> tuple[Batch, Batch]:
    """Per-caption and per-video states of a pairwise head for a split (on ``device``)."""
    dev = torch.device(device)
    head.to(dev).eval()
    data = text_for(head, data)

    def run(fn: Callable[[Batch], Batch], table: dict[str, torch.Tensor], n: int) -> Batch:
        parts = [fn(take(table, torch.arange(s, min(s + batch, n)), dev)) for s in range(0, n, batch)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    return run(head.text_state, data.text, data.n_texts), run(head.video_state, data.video, data.n_videos)


def _bank_sample(bank: SplitData, bank_size: int) -> SplitData:
    # A fixed sample (seed 0, not the run's seed) so that every run uses the same bank.
    g = torch.Generator().manual_seed(0)
    ti = torch.randperm(bank.n_texts, generator=g)[:bank_size].sort().values
    vi = torch.randperm(bank.n_videos, generator=g)[:bank_size].sort().values
    return SplitData(
        bank.name,
        {k: v.index_select(0, vi) for k, v in bank.video.items()},
        {k: v.index_select(0, ti) for k, v in bank.text.items()},
        torch.zeros(len(ti), dtype=torch.long),
        bank.video_rows,
        bank.text_rows,
    )


def evaluate_head(
    head: Head,
    test: SplitData,
    *,
    device: str = "cpu",
    bank: SplitData | None = None,
    bank_size: int = 5000,
    dsl_tau: float = 1.0,
    qb_beta: float = 20.0,
    v2t_protocol: str = "clip4clip",
    postprocessing: tuple[str, ...] | None = None,
    progress: Any = None,
    qb_k: int = 1,
    mdr: str = "standard",
    block: tuple[int, int] | None = None,
    matrix_bytes: int | None = None,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of ``head`` on ``test``: the one entry point for factorised and pairwise heads.

    ``postprocessing``: None (a run's default) computes every one of ``results.POSTPROCESSING``,
    the bank-based ones (``postprocess.BANK_POSTS``) only with a ``bank``; ``post_options`` their
    parameters (``--post-option``).

    A factorised head's embeddings go to vtrbench.evaluate.evaluate_embeddings; a pairwise
    head's states and block scorer go to vtrbench.evaluate.evaluate_pairwise, scored in
    ``block`` (default: the head's ``eval_block``) caption x video blocks.
    ``progress``: an optional rich Progress; the ranking pass shows as one task on it.
    ``matrix_bytes``: the largest caption x video score matrix held in memory (default 1 GiB or
    ``$VTRBENCH_EVAL_MATRIX_BYTES``); a larger one is streamed to a temporary file.
    """
    from vtrbench.evaluate import evaluate_embeddings, evaluate_pairwise
    from vtrbench.postprocess import BANK_POSTS

    if postprocessing is None:
        postprocessing = tuple(p for p in POSTPROCESSING if p not in BANK_POSTS or bank is not None)
    use_bank = bank is not None and bool(set(BANK_POSTS) & set(postprocessing))
    posts = tuple(postprocessing)
    common: dict[str, Any] = dict(
        matrix_bytes=matrix_bytes,
        logit_scale=float(head.logit_scale().item()),
        dsl_tau=dsl_tau,
        qb_beta=qb_beta,
        qb_k=qb_k,
        mdr=mdr,
        v2t_protocol=v2t_protocol,
        postprocessing=posts,
        post_options=post_options,
        progress=_eval_task(progress, test),
    )
    if isinstance(head, PairwiseHead):
        text_state, video_state = states(head, test, device=device)
        bank_states: tuple[Batch | None, Batch | None] = (None, None)
        if use_bank:
            assert bank is not None
            bank_states = states(head, _bank_sample(bank, bank_size), device=device)
        pair_block = tuple(block or head.eval_block)
        out = evaluate_pairwise(
            _checked_scorer(head),
            text_state,
            video_state,
            test.text_video.to(torch.device(device)),
            block=pair_block,
            # query rows per chunk = one block side: the (chunk x gallery) score rows stay small
            chunk_size=max(pair_block),
            bank_text_state=bank_states[0],
            bank_video_state=bank_states[1],
            **common,
        )
    else:
        text_emb, video_emb = embed(head, test, device=device)
        bank_text = bank_video = None
        if use_bank:
            assert bank is not None
            bank_text, bank_video = embed(head, _bank_sample(bank, bank_size), device=device)
        out = evaluate_embeddings(
            text_emb, video_emb, test.text_video, bank_text=bank_text, bank_video=bank_video, **common
        )
    gates = gate_statistics(head, test, device=device)
    if gates is not None:
        # per query (test split order), for `vtrbench browse`: which expert each caption leans on
        out["per_query_gate"] = gates.pop("per_query")
        out["gate"] = gates
    return out


def _checked_scorer(head: PairwiseHead) -> Callable[[Batch, Batch], torch.Tensor]:
    """``head.score_states`` with its block shape checked (cheap; a plugin's wrong shape is one line)."""
    from vtrbench.heads.base import HEADS
    from vtrbench.plugins import check_logit_shape

    names = [n for n, f in HEADS._entries.items() if f is type(head)]
    from vtrbench.plugins import head_who

    who = head_who(names[0]) if names else f"head {type(head).__name__}"

    def score(text: Batch, video: Batch) -> torch.Tensor:
        out = head.score_states(text, video)
        n_text = next(iter(text.values())).shape[0]
        n_video = next(iter(video.values())).shape[0]
        check_logit_shape(out, n_text, n_video, who)
        return out

    return score


def _eval_task(progress: Any, data: SplitData) -> Callable[[int], None] | None:
    if progress is None:
        return None
    task = progress.add_task("eval", total=data.n_texts + data.n_videos, info="ranking queries")
    return lambda n: progress.update(task, advance=n)


@torch.no_grad()
def gate_statistics(
    head: Head, data: SplitData, *, device: str = "cpu", batch: int = 1024
) -> dict[str, Any] | None:
    dev = torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {}
    for s in range(0, data.n_texts, batch):
        g = head.gate_weights(take(data.text, torch.arange(s, min(s + batch, data.n_texts)), dev))
        if g is None:
            return None
        for k, v in g.items():
            parts.setdefault(k, []).append(v.float().cpu())
    weights = {k: torch.cat(v) for k, v in parts.items()}
    return {
        "per_query": {k: [round(float(x), 4) for x in v.tolist()] for k, v in weights.items()},
        "mean_weight": {k: round(float(v.mean()), 6) for k, v in weights.items()},
        "std_weight": {k: round(float(v.std()), 6) if v.numel() > 1 else 0.0 for k, v in weights.items()},
    }


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
    from vtrbench.metrics import TIE_POLICY, mdr_policy

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
        "label": head_label(head, config.head, config.plugins.get("head")) + tuned_suffix(config.tuned),
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
        "provenance": {**provenance(device), "plugins": dict(config.plugins if plugins is None else plugins)},
        **({"tuned": dict(config.tuned)} if config.tuned else {}),
    }


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
    from vtrbench.results import atomic_write_bytes

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
    from vtrbench.heads.base import list_heads

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
