"""One run = (cache, head, loss, options, seed) -> one result file. Used by train, eval and ablate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vtrbench.cache import FeatureCache
from vtrbench.config import TrainConfig, config_hash
from vtrbench.errors import VtrbenchError
from vtrbench.heads.base import HEADS, create_head, list_heads
from vtrbench.losses.base import list_losses
from vtrbench.plugins import provenance_for
from vtrbench.registry import unknown_name_message
from vtrbench.results import read_result, result_path, run_id, write_result


@dataclass(frozen=True)
class RunSpec:
    cache_path: Path
    head: str
    loss: str
    head_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    train_split: str | None = None
    test_split: str | None = None
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.2
    val_fraction: float = 0.0
    v2t_protocol: str = "clip4clip"
    dsl_tau: float = 1.0
    qb_bank: int = 5000
    qb_beta: float = 20.0
    device: str = "cpu"
    results_dir: Path = Path("results")
    overwrite: str = "never"
    progress: bool = True


@dataclass
class Outcome:
    path: Path
    result: dict[str, Any] | None
    skipped: bool = False


def _check_names(head: str, loss: str) -> None:
    if head not in list_heads():
        raise VtrbenchError(unknown_name_message("head", head, list_heads()))
    if loss not in list_losses():
        raise VtrbenchError(unknown_name_message("loss", loss, list_losses()))
    if head == "zeroshot":
        raise VtrbenchError("zeroshot has nothing to train: use `vtrbench eval --head zeroshot`")


def _splits(cache: FeatureCache, train: str | None, test: str | None) -> tuple[str, str]:
    attrs = cache.attrs
    train = train or str(attrs.get("default_train") or "")
    test = test or str(attrs.get("default_test") or "")
    if not train:
        raise VtrbenchError(
            f"{cache.path} has no standard train split; pass --train-split (splits: "
            f"{', '.join(cache.splits)})"
        )
    for s in (train, test):
        cache.split_rows(s)  # raises a clear error for an unknown split
    if train == test:
        raise VtrbenchError(
            f"train and test split are both {train!r}: vtrbench does not select or train on the test split"
        )
    return train, test


def resolve_head_options(spec: RunSpec, cache: FeatureCache) -> tuple[dict[str, Any], str | None]:
    """The head options with what depends on the cache decided (a head class may define
    ``resolve_options``: seqtransf/camoe pick ``init`` from the cache's backbone weights), and a
    note for the user or None."""
    if spec.head not in list_heads():
        raise VtrbenchError(unknown_name_message("head", spec.head, list_heads()))
    resolve = getattr(HEADS.get(spec.head), "resolve_options", None)
    if resolve is None:
        return dict(spec.head_options), None
    return resolve(spec.head_options, cache.backbone_info(), int(cache.attrs["embed_dim"]))


def make_config(spec: RunSpec, cache: FeatureCache) -> TrainConfig:
    train, test = _splits(cache, spec.train_split, spec.test_split)
    # Head defaults are filled in by building the head once, so that the config hash of
    # `--head camoe` equals that of `--head camoe --experts action,entity,fusion,scene`.
    options, _ = resolve_head_options(spec, cache)
    head = create_head(spec.head, embed_dim=int(cache.attrs["embed_dim"]), **options)
    head_options = dict(head.describe())
    loss_options = dict(spec.loss_options)
    if spec.loss == "dsl":
        loss_options.setdefault("temperature", 1000.0)
    return TrainConfig(
        cache_hash=cache.config_hash,
        head=spec.head,
        loss=spec.loss,
        head_options=head_options,
        loss_options=loss_options,
        train_split=train,
        test_split=test,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        val_fraction=spec.val_fraction,
        v2t_protocol=spec.v2t_protocol,
        dsl_tau=spec.dsl_tau,
        qb_bank=spec.qb_bank,
        qb_beta=spec.qb_beta,
        plugins=provenance_for(head=spec.head, loss=spec.loss),
    )


def planned_path(spec: RunSpec, cache: FeatureCache, seed: int) -> tuple[TrainConfig, Path]:
    config = make_config(spec, cache)
    rid = run_id(str(cache.attrs["dataset"]), spec.head, spec.loss, config_hash(config), seed)
    return config, result_path(spec.results_dir, str(cache.attrs["dataset"]), rid)


def run_training(
    spec: RunSpec,
    seed: int,
    *,
    checkpoint: Path | None = None,
    console: Any = None,
    cache: FeatureCache | None = None,
    data: dict[str, Any] | None = None,
) -> Outcome:
    """Train + evaluate + write the result. ``data`` caches loaded splits across runs (ablate)."""
    from vtrbench.train import (
        build_result,
        check_requirements,
        evaluate_head,
        fit,
        load_split,
        save_checkpoint,
        seed_everything,
    )

    _check_names(spec.head, spec.loss)
    own = cache is None
    cache = cache or FeatureCache(spec.cache_path)
    try:
        config, path = planned_path(spec, cache, seed)
        if path.exists() and spec.overwrite == "never":
            try:
                read_result(path)
                return Outcome(path, None, skipped=True)
            except VtrbenchError:
                pass  # an unreadable old file is replaced
        embed_dim = int(cache.attrs["embed_dim"])
        head_options, note = resolve_head_options(spec, cache)
        if note and console is not None:
            console.print(f"[yellow]note:[/] {note}")
        seed_everything(seed)  # the head's initialisation is part of what the seed fixes
        head = create_head(spec.head, embed_dim=embed_dim, **head_options)
        if getattr(head, "init", None) == "clip":
            # CLIP4Clip's start: the temporal transformer from CLIP's text tower, stored in the cache.
            head.init_from(cache.backbone_weights() or {}, cache.backbone_info())
        check_requirements(head, cache, spec.head)
        data = data if data is not None else {}
        want_patches = "patches" in head.requires
        for split in (config.train_split, config.test_split):
            if split not in data:
                data[split] = load_split(cache, split, patches=want_patches)
        train, test = data[config.train_split], data[config.test_split]
        val = None
        if config.val_fraction > 0:
            train, val = holdout(train, config.val_fraction)
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn(f"[bold]{spec.head}/{spec.loss} s{seed}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not spec.progress,
            transient=True,
        )
        with progress:
            t0 = time.perf_counter()
            history = fit(head, train, config, seed, device=spec.device, progress=progress, val=val)
            train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            evaluation = evaluate_head(
                head,
                test,
                device=spec.device,
                bank=train,
                bank_size=config.qb_bank,
                dsl_tau=config.dsl_tau,
                qb_beta=config.qb_beta,
                v2t_protocol=config.v2t_protocol,
                progress=progress,
            )
            eval_s = time.perf_counter() - t1
        pairs = sum(h["pairs_per_s"] * h["seconds"] for h in history)
        timing = {
            "train_s": round(train_s, 3),
            "eval_s": round(eval_s, 3),
            "pairs_per_s": round(pairs / max(train_s, 1e-9), 1),
        }
        result = build_result(
            kind="train",
            config=config,
            seed=seed,
            head=head,
            cache=cache,
            test=test,
            evaluation=evaluation,
            history=history,
            timing=timing,
            device=spec.device,
        )
        write_result(path, result)
        if checkpoint is not None:
            save_checkpoint(checkpoint, head, config, seed, embed_dim)
        return Outcome(path, result)
    finally:
        if own:
            cache.close()


def holdout(train: Any, fraction: float) -> tuple[Any, Any]:
    """Split train videos (seeded, not by the run seed) into train and validation parts."""
    from vtrbench.train import SplitData

    if not 0 < fraction < 1:
        raise VtrbenchError(f"--val-fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(12345)
    perm = torch.randperm(train.n_videos, generator=g)
    n_val = max(1, int(round(train.n_videos * fraction)))
    is_val = torch.zeros(train.n_videos, dtype=torch.bool)
    is_val[perm[:n_val]] = True

    def part(keep_videos: torch.Tensor) -> SplitData:
        vids = torch.nonzero(keep_videos).flatten()
        remap = torch.full((train.n_videos,), -1, dtype=torch.long)
        remap[vids] = torch.arange(len(vids))
        texts = torch.nonzero(keep_videos[train.text_video]).flatten()
        return SplitData(
            train.name,
            {k: v.index_select(0, vids) for k, v in train.video.items()},
            {k: v.index_select(0, texts) for k, v in train.text.items()},
            remap[train.text_video[texts]],
            train.video_rows[vids.numpy()],
            train.text_rows[texts.numpy()],
        )

    return part(~is_val), part(is_val)


def run_eval(cache_path: Path, *, checkpoint: Path | None, console: Any = None, **kw: Any) -> Outcome:
    """Evaluate ``zeroshot`` (checkpoint None) or a saved head; writes one result file."""
    from vtrbench.train import build_result, evaluate_head, load_checkpoint, load_split

    with FeatureCache(cache_path) as cache:
        if checkpoint is not None:
            head, ckpt = load_checkpoint(checkpoint)
            saved = ckpt["config"]
            if saved.get("cache_hash") != cache.config_hash:
                raise VtrbenchError(
                    f"{checkpoint} was trained on a cache with config {saved.get('cache_hash')}, "
                    f"not {cache.config_hash} ({cache_path})"
                )
            name, loss, seed = ckpt["head"], saved["loss"], int(ckpt["seed"])
            head_options, loss_options = dict(ckpt["head_options"]), dict(saved.get("loss_options", {}))
            epochs = int(saved.get("epochs", 0))
        else:
            head = create_head("zeroshot", embed_dim=int(cache.attrs["embed_dim"]))
            name, loss, seed, head_options, loss_options, epochs = "zeroshot", "none", 0, {}, {}, 0
        test = kw.get("test_split") or str(cache.attrs.get("default_test"))
        train = kw.get("train_split") or str(cache.attrs.get("default_train") or "") or None
        config = TrainConfig(
            cache_hash=cache.config_hash,
            head=name,
            loss=loss,
            head_options=head_options,
            loss_options=loss_options,
            train_split=train or "",
            test_split=test,
            epochs=epochs,
            v2t_protocol=kw["v2t_protocol"],
            dsl_tau=kw["dsl_tau"],
            qb_bank=kw["qb_bank"],
            qb_beta=kw["qb_beta"],
        )
        if checkpoint is not None:
            config = replace(
                config,
                **{
                    k: v
                    for k, v in saved.items()
                    if k in ("batch_size", "lr", "weight_decay", "warmup", "grad_clip", "val_fraction", "eps")
                },
            )
        rid = run_id(str(cache.attrs["dataset"]), name, loss, config_hash(config), seed)
        path = result_path(kw["results_dir"], str(cache.attrs["dataset"]), rid)
        if path.exists() and kw.get("overwrite", "never") == "never":
            return Outcome(path, None, skipped=True)
        test_data = load_split(cache, test)
        bank = load_split(cache, train) if train and train != test else None
        t1 = time.perf_counter()
        evaluation = evaluate_head(
            head,
            test_data,
            device=kw["device"],
            bank=bank,
            bank_size=config.qb_bank,
            dsl_tau=config.dsl_tau,
            qb_beta=config.qb_beta,
            v2t_protocol=config.v2t_protocol,
        )
        timing = {"train_s": 0.0, "eval_s": round(time.perf_counter() - t1, 3), "pairs_per_s": 0.0}
        result = build_result(
            kind="eval",
            config=config,
            seed=seed,
            head=head,
            cache=cache,
            test=test_data,
            evaluation=evaluation,
            history=[],
            timing=timing,
            device=kw["device"],
        )
        write_result(path, result)
        return Outcome(path, result)
