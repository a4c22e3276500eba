"""One run = (cache, head, loss, options, seed) -> one result file. Used by train, eval and ablate.

The spec is validated when it is built (:mod:`vtrbench.runs.spec`); :func:`preflight` checks what
needs the cache (head options, splits, the train/test overlap, the output places) before any
training starts; :func:`run_training` and :func:`run_eval` do the work and write the result.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.markup import escape

from vtrbench import defaults
from vtrbench.cache import STATUS_OK, FeatureCache
from vtrbench.config import TrainConfig, check_post_options, check_seed, config_hash, validate_options
from vtrbench.errors import VtrbenchError
from vtrbench.factory import create_head
from vtrbench.plugins import identities, identity, provenance_for
from vtrbench.progress import LineProgress, make_progress, progress_every, scoped, stage
from vtrbench.results import read_result, result_path, run_id, write_result
from vtrbench.runs import record, scoring
from vtrbench.runs import train as train_mod
from vtrbench.runs.checks import (
    check_csls_k,
    check_emcl_post,
    check_output_file,
    check_overlap,
    check_qb_k,
    resolve_head_options,
    resolve_splits,
)
from vtrbench.runs.compiled import check_compile
from vtrbench.runs.data import held_out_videos, holdout, load_split
from vtrbench.runs.spec import Outcome, RunSpec, resolved_precision
from vtrbench.runs.tensorboard_log import check_log_folder, epoch_log
from vtrbench.threads import set_threads


def _load_ok(path: Path, rid: str, console: Any) -> bool:
    """True when ``path`` reads back as the result of run ``rid``; otherwise warn that it is redone."""
    if not path.is_file():  # a folder is refused before; a link to a device or nowhere is not a result
        _warn(console, f"{path} is not a regular file; redoing the run and replacing it")
        return False
    try:
        data = read_result(path)
    except VtrbenchError as e:
        reason = str(e)
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as e:  # until read_result says so
        reason = f"{path}: unreadable ({type(e).__name__})"
    else:
        if data.get("run_id") == rid:
            return True
        reason = f"{path} holds run {data.get('run_id')!r}, not {rid!r}"
    _warn(console, f"the existing result is not valid ({reason}); redoing the run and replacing it")
    return False


def _checkpoint_ok(path: Path, chash: str, seed: int, console: Any) -> bool:
    """True when ``path`` is this run's checkpoint (a result without its asked-for checkpoint is not done)."""
    if not path.is_file():
        _warn(console, f"checkpoint {path} is missing; redoing the run to write it")
        return False
    try:
        _, ckpt = record.load_checkpoint(path)
        ok = config_hash(ckpt["config"]) == chash and int(ckpt["seed"]) == seed
    except (VtrbenchError, KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        _warn(console, f"checkpoint {path} is not this run's; redoing the run to replace it")
    return ok


def _warn(console: Any, message: str) -> None:
    if console is not None:
        console.print(f"[yellow]warning:[/] {escape(message)}")


def identity_post_options(values: dict[str, Any]) -> dict[str, Any]:
    """The ``--post-option`` values that are part of a run's identity: those that differ from their
    default. A default spelled out (``--post-option is_beta=20``, or a grid file writing it) is the
    same run as leaving it out, with the same run id; recording it made a second configuration that
    ``report`` then refused to mix with the first."""
    checked = check_post_options(values)
    return {k: v for k, v in checked.items() if v != defaults.POST_DEFAULTS.get(k)}


def make_config(spec: RunSpec, cache: FeatureCache) -> TrainConfig:
    train, test = resolve_splits(cache, spec.train_split, spec.test_split)
    # Head defaults are filled in by building the head once, so that the config hash of
    # `--head camoe` equals that of `--head camoe --experts action,entity,fusion,scene`.
    options, _ = resolve_head_options(spec, cache)
    try:
        head = create_head(spec.head, embed_dim=int(cache.attrs["embed_dim"]), **options)
    except TypeError as e:  # a head option of the wrong type (e.g. a number where a list goes)
        raise VtrbenchError(f"head {spec.head!r}: bad option ({e})") from None
    if head.trainable and not any(p.requires_grad for p in head.parameters()):
        raise VtrbenchError(
            f"head {spec.head!r} with options {spec.head_options} has nothing to train (every parameter "
            "is fixed, e.g. no adapter and logit_scale=fixed): drop one of those options"
        )
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
        warmup=spec.warmup,
        val_fraction=spec.val_fraction,
        v2t_protocol=spec.v2t_protocol,
        dsl_tau=spec.dsl_tau,
        qb_bank=spec.qb_bank,
        qb_beta=spec.qb_beta,
        tuned=dict(spec.tuned),
        # name, version and content hash only: the plugin's path is provenance, not identity
        plugins=identities(provenance_for(head=spec.head, loss=spec.loss)),
        qb_k=spec.qb_k,
        mdr=spec.mdr,
        post_options=identity_post_options(spec.post_options),
        precision=resolved_precision(spec),
        compile=spec.compile,
        cache_content=_content_hash(cache),
    )


def _content_hash(cache: FeatureCache) -> str | None:
    value = getattr(cache, "content_hash", None)  # None for caches written before content hashing
    return None if value is None else str(value)


def planned_path(spec: RunSpec, cache: FeatureCache, seed: int) -> tuple[TrainConfig, Path]:
    config = make_config(spec, cache)
    rid = run_id(str(cache.attrs["dataset"]), spec.head, spec.loss, config_hash(config), seed)
    return config, result_path(spec.results_dir, str(cache.attrs["dataset"]), rid)


def checkpoint_paths(save_checkpoint: Path | None, seeds: list[int]) -> dict[int, Path | None]:
    """Per-seed checkpoint file: ``{seed}`` in the name is replaced; several seeds without it get ``.sN``."""
    out: dict[int, Path | None] = {}
    for seed in seeds:
        if save_checkpoint is None:
            out[seed] = None
        elif "{seed}" in str(save_checkpoint):
            out[seed] = Path(str(save_checkpoint).replace("{seed}", str(seed)))
        elif len(seeds) > 1:
            out[seed] = save_checkpoint.with_name(f"{save_checkpoint.stem}.s{seed}{save_checkpoint.suffix}")
        else:
            out[seed] = Path(save_checkpoint)
    return out


def preflight(
    spec: RunSpec,
    cache: FeatureCache,
    seeds: list[int],
    checkpoints: dict[int, Path | None] | None = None,
) -> dict[int, tuple[TrainConfig, Path]]:
    """Everything that can be checked before training: the config against the cache (head options,
    splits), the train/test overlap, the seeds and every output place. Returns seed -> (config, path)."""
    plans: dict[int, tuple[TrainConfig, Path]] = {}
    config = None
    for seed in seeds:
        check_seed(seed)
        config, path = planned_path(spec, cache, seed)
        check_output_file(path, "result")
        ckpt = (checkpoints or {}).get(seed)
        if ckpt is not None:
            check_output_file(ckpt, "checkpoint")
            if Path(ckpt).resolve() == path.resolve():
                raise VtrbenchError(f"--save-checkpoint {ckpt} is the result file's own path")
        plans[seed] = (config, path)
    if spec.tensorboard is not None:
        check_log_folder(spec.tensorboard)
    check_compile(spec.compile, spec.device)  # torch.compile unavailable: one line, before any training
    if config is not None:
        check_overlap(cache, config.train_split, config.test_split, spec.allow_overlap)
        check_qb_k(cache, config.test_split, config.qb_k)
        check_csls_k(cache, config.test_split, config.train_split or None, config)
        head = create_head(spec.head, embed_dim=int(cache.attrs["embed_dim"]), **spec.head_options)
        train_mod.check_requirements(head, cache, spec.head)  # e.g. noun/verb masks the cache does not hold
        check_emcl_post(head, spec.head, config)
        if config.val_fraction > 0:
            rows = cache.split_rows(config.train_split)[0]
            held_out_videos(
                int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum()), config.val_fraction
            )
    return plans


def is_done(
    spec: RunSpec, config: TrainConfig, path: Path, seed: int, checkpoint: Path | None, console: Any
) -> bool:
    """The one rule of train, eval and ablate: with ``--overwrite never`` a run is skipped only when
    its result reads back as this run's result (and its asked-for checkpoint is there)."""
    if spec.overwrite != "never" or not (path.exists() or path.is_symlink()):
        return False
    rid = path.name[: -len(".json")]
    if not _load_ok(path, rid, console):
        return False
    return checkpoint is None or _checkpoint_ok(checkpoint, config_hash(config), seed, console)


def run_training(
    spec: RunSpec,
    seed: int,
    *,
    checkpoint: Path | None = None,
    console: Any = None,
    cache: FeatureCache | None = None,
    data: dict[str, Any] | None = None,
    display: Any = None,
) -> Outcome:
    """Train + evaluate + write the result. ``data`` caches loaded splits across runs (ablate).

    ``display``: a progress display of :mod:`vtrbench.progress` that the run's tasks join (a grid's);
    None: the run makes its own when ``spec.progress``."""
    progress_every()  # a bad VTRBENCH_PROGRESS_EVERY is refused before any work
    own = cache is None
    cache = cache or FeatureCache(spec.cache_path)
    try:
        config, path = preflight(spec, cache, [seed], {seed: checkpoint})[seed]
        if is_done(spec, config, path, seed, checkpoint, console):
            return Outcome(path, None, skipped=True)
        set_threads(spec.threads)  # recorded in the result's provenance
        n_shared = check_overlap(cache, config.train_split, config.test_split, spec.allow_overlap)
        embed_dim = int(cache.attrs["embed_dim"])
        head = _seeded_head(spec, cache, seed, console)
        data = data if data is not None else {}
        want_patches = "patches" in head.requires
        # reading a large split takes a while: a log says so (a grid's display, or the run's own)
        shown = isinstance(display, LineProgress) or (display is None and spec.progress)
        for split in (config.train_split, config.test_split):
            # a grid's earlier head may have loaded the split without patch tokens (meanp before ucofia)
            if split not in data or (want_patches and "patches" not in data[split].video):
                with stage(console, f"[data] reading split {split} of {cache.path}", enabled=shown):
                    data[split] = load_split(cache, split, patches=want_patches)
        train, test = data[config.train_split], data[config.test_split]
        val = None
        if config.val_fraction > 0:
            train, val = holdout(train, config.val_fraction)
        if train.n_texts < 2:
            raise VtrbenchError(
                f"train split {config.train_split!r} of {cache.path} has {train.n_texts} usable caption(s) "
                "left for training; contrastive training needs at least 2"
            )
        log = epoch_log(spec.tensorboard, path.name[: -len(".json")])  # DIR/<run id>/
        try:
            history, evaluation, timing = _fit_and_evaluate(
                spec, seed, head, config, (train, test, val), console, display, on_epoch=log
            )
        finally:
            if log is not None:
                log.close()
        result = record.build_result(
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
            protocol_extra={"allow_overlap": spec.allow_overlap, "train_test_shared_videos": n_shared},
            plugins=provenance_for(head=spec.head, loss=spec.loss),
        )
        # The checkpoint first, the result last: a result on disk means its checkpoint is too.
        try:
            if checkpoint is not None:
                record.save_checkpoint(
                    checkpoint, head, config, seed, embed_dim, plugins=provenance_for(spec.head, spec.loss)
                )
            write_result(path, result)
        except OSError as e:
            raise VtrbenchError(f"cannot write {e.filename or path}: {e.strerror or e}") from None
        return Outcome(path, result)
    finally:
        if own:
            cache.close()


def _seeded_head(spec: RunSpec, cache: FeatureCache, seed: int, console: Any) -> Any:
    """The run's head, initialised under the run's seed (the initialisation is part of what the
    seed fixes), from CLIP's text tower where ``init=clip`` asks for it."""
    head_options, note = resolve_head_options(spec, cache)
    shown = getattr(console, "_vtrbench_notes", set())
    if note and console is not None and note not in shown:
        # once per console: a grid shares one, and would otherwise repeat it for every point
        console._vtrbench_notes = shown | {note}
        console.print(f"[yellow]note:[/] {note}")
    train_mod.seed_everything(seed)  # the head's initialisation is part of what the seed fixes
    head = create_head(spec.head, embed_dim=int(cache.attrs["embed_dim"]), **head_options)
    if getattr(head, "init", None) == "clip":
        # CLIP4Clip's start: the temporal transformer from CLIP's text tower, stored in the cache.
        head.init_from(cache.backbone_weights() or {}, cache.backbone_info())
    train_mod.check_requirements(head, cache, spec.head)
    return head


def _fit_and_evaluate(
    spec: RunSpec,
    seed: int,
    head: Any,
    config: TrainConfig,
    splits: tuple[Any, Any, Any],
    console: Any,
    display: Any = None,
    on_epoch: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """Train on ``train`` (validating on ``val``), evaluate on ``test`` (``splits``: train, test, val);
    the history, the evaluation and the timing. Progress goes to ``display`` (a grid's: the run's
    tasks print no first and last line of their own, the grid's line says which run) or to a display
    of its own (rich bars on a terminal, plain lines in a log). ``on_epoch``: fit's per-epoch callback
    (the TensorBoard log)."""
    train, test, val = splits
    own = display is None
    if own:
        display = make_progress(console, enabled=spec.progress, transient=True)
    with (
        display if own else nullcontext(),
        scoped(display, f"{spec.head}/{spec.loss} s{seed}", ends=own) as view,
    ):
        t0 = time.perf_counter()
        history = train_mod.fit(
            head, train, config, seed, device=spec.device, progress=view, val=val, on_epoch=on_epoch
        )
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        evaluation = evaluate_as_configured(head, test, train, config, spec.device, view)
        eval_s = time.perf_counter() - t1
    pairs = sum(h["pairs_per_s"] * h["seconds"] for h in history)
    timing = {
        "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3),
        "pairs_per_s": round(pairs / max(train_s, 1e-9), 1),
    }
    return history, evaluation, timing


def evaluate_as_configured(
    head: Any, test: Any, bank: Any, config: TrainConfig, device: str, progress: Any = None
) -> dict[str, Any]:
    """``head`` on ``test`` with the evaluation options ``config`` records (the same for a trained run
    and for ``vtrbench eval``); ``bank``: the split QB-Norm's and the other bank post-processings read."""
    return scoring.evaluate_head(
        head,
        test,
        device=device,
        bank=bank,
        bank_size=config.qb_bank,
        dsl_tau=config.dsl_tau,
        qb_beta=config.qb_beta,
        qb_k=config.qb_k,
        mdr=config.mdr,
        v2t_protocol=config.v2t_protocol,
        progress=progress,
        post_options=config.post_options,
    )


def _eval_plugins(
    head: str, ckpt: dict[str, Any] | None, checkpoint: Path | None, console: Any
) -> dict[str, Any]:
    """The plugin origins an evaluation depends on: the head's code as loaded now (it computes the
    scores; an edited plugin is another run, not a finished one) and the loss that trained the
    checkpoint (as the checkpoint recorded it). Warns when the loaded head plugin is not the one
    that trained the checkpoint."""
    origins: dict[str, Any] = dict(provenance_for(head=head))
    if ckpt is None:
        return origins
    saved_config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    saved = ckpt.get("plugins") if isinstance(ckpt.get("plugins"), dict) else None
    saved = saved if saved is not None else (saved_config.get("plugins") or {})
    if isinstance(saved.get("loss"), dict):
        origins["loss"] = dict(saved["loss"])
    trained = saved.get("head")
    now = origins.get("head")
    if isinstance(trained, dict) and now is not None and identity(trained) != identity(now):
        _warn(
            console,
            f"{checkpoint} was trained with plugin {trained.get('name')} "
            f"{trained.get('version') or ''} (sha256 {str(trained.get('sha256'))[:12]}); the loaded one is "
            f"{now.get('version') or ''} (sha256 {str(now.get('sha256'))[:12]}): evaluated with the "
            "loaded code, recorded as another run",
        )
        origins["trained_head"] = dict(trained)  # (trained with A, scored with B) is its own run
    return origins


_EVAL_KEYS = ("v2t_protocol", "dsl_tau", "qb_bank", "qb_beta", "qb_k", "mdr")


def run_eval(cache_path: Path, *, checkpoint: Path | None, console: Any = None, **kw: Any) -> Outcome:
    """Evaluate ``zeroshot`` (checkpoint None) or a saved head; writes one result file."""
    opts = validate_options(
        {k: kw[k] for k in (*_EVAL_KEYS, "post_options") if k in kw}
        | {
            "overwrite": kw.get("overwrite", defaults.OVERWRITE),
            "allow_overlap": bool(kw.get("allow_overlap", False)),
        }
        | {k: kw.get(k) for k in ("train_split", "test_split", "threads")}
    )
    results_dir = Path(kw["results_dir"])
    ckpt = None
    if checkpoint is not None:
        head, ckpt = record.load_checkpoint(
            checkpoint
        )  # before the cache: a bad file is the first thing said
    with FeatureCache(cache_path) as cache:
        if ckpt is None:
            head = create_head("zeroshot", embed_dim=int(cache.attrs["embed_dim"]))
        config, test, train, plugin_origins = _eval_config(
            cache, cache_path, opts, head, checkpoint, ckpt, console
        )
        rid = run_id(
            str(cache.attrs["dataset"]), config.head, config.loss, config_hash(config), _eval_seed(ckpt)
        )
        path = result_path(results_dir, str(cache.attrs["dataset"]), rid)
        check_output_file(path, "result")
        # the bank's split, and the split the checkpoint was trained on, must not hold test videos
        trained_on = str(ckpt["config"].get("train_split") or "") if ckpt is not None else ""
        n_shared = check_overlap(cache, train, test, opts["allow_overlap"])
        if trained_on and trained_on != train and trained_on in cache.splits:
            n_shared = max(n_shared, check_overlap(cache, trained_on, test, opts["allow_overlap"]))
        if (
            opts["overwrite"] == "never"
            and (path.exists() or path.is_symlink())
            and _load_ok(path, rid, console)
        ):
            return Outcome(path, None, skipped=True)
        if train and train != test:  # a bank, hence qbnorm, will be used
            check_qb_k(cache, test, config.qb_k)
        check_csls_k(cache, test, train if train != test else None, config)
        check_emcl_post(head, config.head, config)
        set_threads(opts["threads"])  # recorded in the result's provenance
        test_data = load_split(cache, test)
        bank = load_split(cache, train) if train and train != test else None
        t1 = time.perf_counter()
        evaluation = evaluate_as_configured(head, test_data, bank, config, kw["device"])
        timing = {"train_s": 0.0, "eval_s": round(time.perf_counter() - t1, 3), "pairs_per_s": 0.0}
        result = record.build_result(
            kind="eval",
            config=config,
            seed=_eval_seed(ckpt),
            head=head,
            cache=cache,
            test=test_data,
            evaluation=evaluation,
            history=[],
            timing=timing,
            device=kw["device"],
            protocol_extra={"allow_overlap": opts["allow_overlap"], "train_test_shared_videos": n_shared},
            plugins=plugin_origins,
        )
        try:
            write_result(path, result)
        except OSError as e:
            raise VtrbenchError(f"cannot write {path}: {e.strerror or e}") from None
        return Outcome(path, result)


def _eval_seed(ckpt: dict[str, Any] | None) -> int:
    return int(ckpt["seed"]) if ckpt is not None else 0


# Recipe fields an evaluation copies from the checkpoint's config (they are part of what trained it).
_COPIED_FROM_CHECKPOINT = (
    "batch_size",
    "lr",
    "weight_decay",
    "warmup",
    "grad_clip",
    "val_fraction",
    "eps",
    "precision",
    "compile",
)


def _eval_config(
    cache: FeatureCache,
    cache_path: Path,
    opts: dict[str, Any],
    head: Any,
    checkpoint: Path | None,
    ckpt: dict[str, Any] | None,
    console: Any,
) -> tuple[TrainConfig, str, str | None, dict[str, Any]]:
    """The config an evaluation is recorded under (a checkpoint checked against the cache), its test
    and bank splits, and the plugin origins it depends on."""
    embed_dim = int(cache.attrs["embed_dim"])
    if ckpt is not None:
        saved = ckpt["config"]
        if saved.get("cache_hash") != cache.config_hash:
            raise VtrbenchError(
                f"{checkpoint} was trained on a cache with config {saved.get('cache_hash')}, "
                f"not {cache.config_hash} ({cache_path})"
            )
        if int(ckpt["embed_dim"]) != embed_dim:
            raise VtrbenchError(
                f"{checkpoint} is a head of width {ckpt['embed_dim']}, {cache_path} holds features of "
                f"width {embed_dim}"
            )
        train_mod.check_requirements(head, cache, str(ckpt["head"]))
        name, loss = ckpt["head"], saved["loss"]
        head_options, loss_options = dict(ckpt["head_options"]), dict(saved.get("loss_options", {}))
        epochs = int(saved.get("epochs", 0))
    else:
        name, loss, head_options, loss_options, epochs = "zeroshot", "none", {}, {}, 0
    test = opts.get("test_split") or str(cache.attrs.get("default_test") or "")
    train = opts.get("train_split") or str(cache.attrs.get("default_train") or "") or None
    for split in (test, train):
        if split:
            cache.split_rows(split)  # an unknown split is a clear error, before any work
    if not test:
        raise VtrbenchError(f"{cache_path} has no standard test split; pass --test-split")
    config = TrainConfig(
        cache_hash=cache.config_hash,
        head=name,
        loss=loss,
        head_options=head_options,
        loss_options=loss_options,
        train_split=train or "",
        test_split=test,
        epochs=epochs,
        v2t_protocol=opts.get("v2t_protocol", defaults.V2T_PROTOCOL),
        dsl_tau=opts.get("dsl_tau", defaults.DSL_TAU),
        qb_bank=opts.get("qb_bank", defaults.QB_BANK),
        qb_beta=opts.get("qb_beta", defaults.QB_BETA),
        qb_k=opts.get("qb_k", defaults.QB_K),
        mdr=opts.get("mdr", defaults.MDR),
        post_options=identity_post_options(opts.get("post_options", {})),
        precision="fp32",  # evaluation embeds in fp32; a checkpoint's own value replaces it below
        cache_content=_content_hash(cache),
    )
    plugin_origins = _eval_plugins(name, ckpt, checkpoint, console)
    config = replace(config, plugins=identities(plugin_origins))
    if ckpt is not None:
        config = replace(config, **{k: v for k, v in ckpt["config"].items() if k in _COPIED_FROM_CHECKPOINT})
    return config, test, train, plugin_origins
