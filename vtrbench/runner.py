"""One run = (cache, head, loss, options, seed) -> one result file. Used by train, eval and ablate.

Every way of building a run (command line, grid file, Python) ends in a :class:`RunSpec`, whose
construction validates the options (:func:`vtrbench.config.validate_options`); what needs the
cache (head options, splits, the train/test overlap, the output places) is checked by
:func:`preflight` before any training starts.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vtrbench.cache import FeatureCache
from vtrbench.config import (
    RUN_OPTIONS,
    OptionRule,
    TrainConfig,
    check_post_options,
    check_seed,
    check_value,
    config_hash,
    validate_options,
)
from vtrbench.errors import VtrbenchError
from vtrbench.heads.base import HEADS, create_head, list_heads, validate_head_options
from vtrbench.losses.base import list_losses
from vtrbench.plugins import identities, provenance_for
from vtrbench.registry import unknown_name_message
from vtrbench.results import read_result, result_path, run_id, write_result
from vtrbench.threads import set_threads

# RunSpec fields that are plain run options: exactly those vtrbench.config.RUN_OPTIONS validates
_CHECKED_FIELDS = tuple(RUN_OPTIONS)
LOSS_OPTIONS = {"dsl": ("temperature",), "triplet": ("margin", "reduction")}
# The ranges of those options (one rule each, as config.RUN_OPTIONS for run options).
LOSS_OPTION_RULES = {
    ("dsl", "temperature"): OptionRule("float", low=0, low_open=True),
    ("triplet", "margin"): OptionRule("float", low=0, low_open=True),
    ("triplet", "reduction"): OptionRule("choice", choices=("sum", "hardest")),
}


@dataclass(frozen=True)
class RunSpec:
    """The options of one run. Constructing one (also via ``dataclasses.replace``) validates them."""

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
    warmup: float = 0.1
    val_fraction: float = 0.0
    v2t_protocol: str = "clip4clip"
    dsl_tau: float = 1.0
    qb_bank: int = 5000
    qb_beta: float = 20.0
    qb_k: int = 1
    mdr: str = "standard"
    post_options: dict[str, Any] = field(default_factory=dict)  # --post-option KEY=VALUE
    precision: str | None = None  # None: bf16 autocast on CUDA, fp32 elsewhere
    allow_overlap: bool = False
    threads: int | None = None  # None: vtrbench.threads.set_threads chooses from the free cores
    device: str = "cpu"
    results_dir: Path = Path("results")
    overwrite: str = "never"
    progress: bool = True
    tuned: dict[str, Any] = field(default_factory=dict)  # vtrbench.tune's record of a tuned configuration

    def __post_init__(self) -> None:
        validate_spec(self)


def validate_spec(spec: RunSpec, *, where: str | None = None) -> None:
    """The one validation of a run's options (ranges, types, names, head/loss options' shape)."""
    validate_options({k: getattr(spec, k) for k in _CHECKED_FIELDS}, where=where)
    _check_names(spec.head, spec.loss)
    for name in ("cache_path", "results_dir"):
        if not isinstance(getattr(spec, name), (str, os.PathLike)):
            got = type(getattr(spec, name)).__name__
            raise VtrbenchError(f"RunSpec.{name} must be a path (str or Path), got {got}")
    if not isinstance(spec.progress, bool):
        raise VtrbenchError(f"RunSpec.progress must be true or false, got {spec.progress!r}")
    if not isinstance(spec.head_options, dict):
        raise VtrbenchError(f"head options must be a mapping, got {type(spec.head_options).__name__}")
    # the head's declared option schema (unknown key, type, range), before any cache is opened
    validate_head_options(spec.head, spec.head_options, where=where)
    check_head_options(spec.head_options)
    check_loss_options(spec.loss, spec.loss_options)
    check_device(spec.device, spec.precision)
    if not isinstance(spec.tuned, dict):
        raise VtrbenchError(f"tuned must be a mapping, got {type(spec.tuned).__name__}")


def check_head_options(options: Any, label: str = "head options") -> None:
    """A mapping of option names to values; NaN would train and then fail to serialise, and a
    negative loss weight inverts an objective."""
    if not isinstance(options, dict):
        raise VtrbenchError(f"{label} must be a mapping, got {type(options).__name__}")
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise VtrbenchError(f"{label}: option names must be non-empty strings, got {key!r}")
        if isinstance(value, float) and (not math.isfinite(value) or (key == "aux_weight" and value < 0)):
            raise VtrbenchError(f"--{key.replace('_', '-')} must be a finite number >= 0, got {value!r}")


def check_loss_options(loss: str, options: Any, label: str = "loss options") -> None:
    """The options a built-in loss takes (:data:`LOSS_OPTIONS`), each in range; a plugin loss's own
    options only need to be plain, finite values (its factory checks the rest)."""
    from vtrbench.losses.base import LOSSES

    if not isinstance(options, dict):
        raise VtrbenchError(f"{label} must be a mapping, got {type(options).__name__}")
    builtin = LOSSES.origin(loss).get("kind") == "builtin"
    allowed = LOSS_OPTIONS.get(loss, ())
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise VtrbenchError(f"{label}: option names must be non-empty strings, got {key!r}")
        if builtin and key not in allowed:
            raise VtrbenchError(
                f"--{key} does not apply to --loss {loss}"
                + (f" (its options: {', '.join(allowed)})" if allowed else "")
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise VtrbenchError(f"--{key.replace('_', '-')} of --loss {loss} must be finite, got {value!r}")
        rule = LOSS_OPTION_RULES.get((loss, key)) if builtin else None
        if rule is not None:
            check_value(rule, value, f"--{key.replace('_', '-')}")


def check_device(device: Any, precision: Any = None, label: str = "--device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; bf16 autocast only on CUDA."""
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise VtrbenchError(f"{label} {device!r}: use cpu, cuda or cuda:N")
    if precision == "bf16" and not device.startswith("cuda"):
        raise VtrbenchError(f"--precision bf16 is bf16 autocast on CUDA; this run is on {device} (use fp32)")
    return device


def resolved_precision(spec: RunSpec) -> str:
    return spec.precision or ("bf16" if spec.device.startswith("cuda") else "fp32")


@dataclass
class Outcome:
    path: Path
    result: dict[str, Any] | None
    skipped: bool = False


def _check_names(head: Any, loss: Any) -> None:
    if not isinstance(head, str) or head not in list_heads():
        raise VtrbenchError(unknown_name_message("head", str(head), list_heads()))
    if not isinstance(loss, str) or loss not in list_losses():
        raise VtrbenchError(unknown_name_message("loss", str(loss), list_losses()))
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


# ---------------------------------------------------------------- checks before the work starts


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output that cannot be written: a folder in the file's place,
    a parent that is a file, or a folder this process cannot create files in (probed for real,
    since permission bits say nothing for root and nothing about read-only mounts)."""
    path = Path(path)
    if path.is_dir():
        raise VtrbenchError(f"cannot write {what} {path}: it is a folder")
    probe = path.parent
    while not probe.exists():
        if probe.is_symlink():
            raise VtrbenchError(f"cannot write {what} {path}: {probe} is a broken symbolic link")
        if probe == probe.parent:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise VtrbenchError(f"cannot write {what} {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vtrbench-probe-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise VtrbenchError(
            f"cannot write {what} {path}: folder {probe} is not writable ({e.strerror})"
        ) from None


def _video_keys(cache: FeatureCache, rows: Any) -> dict[int, tuple[str, str | None]]:
    """cache row -> (video id, file sha256 or None)."""
    ids = cache.read_strings("videos", "id")
    hashes = getattr(cache, "file_hashes", None)  # per-video file sha256, when the cache stores them

    def file_hash(row: int) -> str | None:
        if hashes is None:
            return None
        try:
            h = hashes.get(ids[row]) if isinstance(hashes, dict) else hashes[row]
        except (IndexError, KeyError, TypeError):
            return None
        h = h.decode() if isinstance(h, bytes) else h
        return str(h) if h else None

    return {int(r): (ids[int(r)], file_hash(int(r))) for r in rows}


def split_overlap(cache: FeatureCache, train: str, test: str) -> list[str]:
    """Test videos that are also train videos: the same id, or (when the cache stores per-video file
    hashes) the same file content under another name."""
    train_rows = cache.split_rows(train)[0]
    test_rows = cache.split_rows(test)[0]
    keys = _video_keys(cache, [*train_rows, *test_rows])
    train_ids = {keys[int(r)][0] for r in train_rows}
    train_hashes = {keys[int(r)][1]: keys[int(r)][0] for r in train_rows if keys[int(r)][1]}
    found: list[str] = []
    for r in test_rows:
        vid, h = keys[int(r)]
        if vid in train_ids:
            found.append(vid)
        elif h is not None and h in train_hashes:
            found.append(f"{vid} (same file as train video {train_hashes[h]})")
    return sorted(set(found))


def check_overlap(cache: FeatureCache, train: str | None, test: str, allow: bool) -> int:
    """Refuse a train/test overlap (leakage) unless ``allow``; returns the number of shared videos."""
    if not train or train == test:
        return 0
    shared = split_overlap(cache, train, test)
    if shared and not allow:
        first = ", ".join(shared[:5]) + (", ..." if len(shared) > 5 else "")
        raise VtrbenchError(
            f"{len(shared)} video(s) of test split {test!r} are also in train split {train!r} of "
            f"{cache.path}: {first} (leakage; pass --allow-overlap to run anyway, it is recorded)"
        )
    return len(shared)


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
    from vtrbench.train import load_checkpoint

    try:
        _, ckpt = load_checkpoint(path)
        ok = config_hash(ckpt["config"]) == chash and int(ckpt["seed"]) == seed
    except (VtrbenchError, KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        _warn(console, f"checkpoint {path} is not this run's; redoing the run to replace it")
    return ok


def _warn(console: Any, message: str) -> None:
    from rich.markup import escape

    if console is not None:
        console.print(f"[yellow]warning:[/] {escape(message)}")


def make_config(spec: RunSpec, cache: FeatureCache) -> TrainConfig:
    train, test = _splits(cache, spec.train_split, spec.test_split)
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
        post_options=check_post_options(spec.post_options),
        precision=resolved_precision(spec),
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


def check_qb_k(cache: FeatureCache, test_split: str, qb_k: int) -> None:
    """Refuse a QB-Norm k the test gallery cannot give, before any work (evaluate refuses it too)."""
    from vtrbench.cache import STATUS_OK
    from vtrbench.evaluate import qb_k_message

    rows = cache.split_rows(test_split)[0]
    n_ok = int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())
    if qb_k > n_ok:
        raise VtrbenchError(qb_k_message(qb_k, n_ok, test_split))


def check_csls_k(cache: FeatureCache, test_split: str, train_split: str | None, config: TrainConfig) -> None:
    """Refuse a CSLS k beyond the test gallery or the bank, before any work (evaluate refuses it too)."""
    from vtrbench.cache import STATUS_OK
    from vtrbench.evaluate import csls_k_message

    if "csls_k" not in config.post_options:  # the default is lowered to a small gallery, not refused
        return
    k = int(config.post_options["csls_k"])

    def usable(split: str) -> int:
        rows = cache.split_rows(split)[0]
        return int((cache.read_rows("videos", "status", rows) == STATUS_OK).sum())

    n_test = usable(test_split)
    if k > n_test:
        raise VtrbenchError(csls_k_message(k, "csls-test", n_test))
    if train_split and train_split != test_split:  # a bank: its videos, at most qb_bank of them
        n_bank = min(config.qb_bank, usable(train_split))
        if k > n_bank:
            raise VtrbenchError(csls_k_message(k, "csls-bank", n_bank))


def preflight(
    spec: RunSpec,
    cache: FeatureCache,
    seeds: list[int],
    checkpoints: dict[int, Path | None] | None = None,
) -> dict[int, tuple[TrainConfig, Path]]:
    """Everything that can be checked before training: the config against the cache (head options,
    splits), the train/test overlap, the seeds and every output place. Returns seed -> (config, path)."""
    from vtrbench.train import check_requirements

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
    if config is not None:
        check_overlap(cache, config.train_split, config.test_split, spec.allow_overlap)
        check_qb_k(cache, config.test_split, config.qb_k)
        check_csls_k(cache, config.test_split, config.train_split or None, config)
        head = create_head(spec.head, embed_dim=int(cache.attrs["embed_dim"]), **spec.head_options)
        check_requirements(head, cache, spec.head)  # e.g. noun/verb masks the cache does not hold
        if config.val_fraction > 0:
            from vtrbench.cache import STATUS_OK

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

    own = cache is None
    cache = cache or FeatureCache(spec.cache_path)
    try:
        config, path = preflight(spec, cache, [seed], {seed: checkpoint})[seed]
        if is_done(spec, config, path, seed, checkpoint, console):
            return Outcome(path, None, skipped=True)
        set_threads(spec.threads)  # recorded in the result's provenance
        n_shared = check_overlap(cache, config.train_split, config.test_split, spec.allow_overlap)
        embed_dim = int(cache.attrs["embed_dim"])
        head_options, note = resolve_head_options(spec, cache)
        shown = getattr(console, "_vtrbench_notes", set())
        if note and console is not None and note not in shown:
            # once per console: a grid shares one, and would otherwise repeat it for every point
            console._vtrbench_notes = shown | {note}
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
        if train.n_texts < 2:
            raise VtrbenchError(
                f"train split {config.train_split!r} of {cache.path} has {train.n_texts} usable caption(s) "
                "left for training; contrastive training needs at least 2"
            )
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
                qb_k=config.qb_k,
                mdr=config.mdr,
                v2t_protocol=config.v2t_protocol,
                progress=progress,
                post_options=config.post_options,
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
            protocol_extra={"allow_overlap": spec.allow_overlap, "train_test_shared_videos": n_shared},
            plugins=provenance_for(head=spec.head, loss=spec.loss),
        )
        # The checkpoint first, the result last: a result on disk means its checkpoint is too.
        try:
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint, head, config, seed, embed_dim, plugins=provenance_for(spec.head, spec.loss)
                )
            write_result(path, result)
        except OSError as e:
            raise VtrbenchError(f"cannot write {e.filename or path}: {e.strerror or e}") from None
        return Outcome(path, result)
    finally:
        if own:
            cache.close()


def held_out_videos(n_videos: int, fraction: float) -> int:
    """How many of ``n_videos`` train videos ``--val-fraction`` holds out (at least one, never all)."""
    n_val = max(1, int(round(n_videos * fraction)))
    if n_val >= n_videos:
        raise VtrbenchError(
            f"--val-fraction {fraction} holds out {n_val} of the {n_videos} usable train videos and leaves "
            "none to train on; use a smaller fraction"
        )
    return n_val


def holdout(train: Any, fraction: float) -> tuple[Any, Any]:
    """Split train videos (seeded, not by the run seed) into train and validation parts."""
    if not 0 < fraction < 1:
        raise VtrbenchError(f"--val-fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(12345)
    perm = torch.randperm(train.n_videos, generator=g)
    n_val = held_out_videos(train.n_videos, fraction)
    is_val = torch.zeros(train.n_videos, dtype=torch.bool)
    is_val[perm[:n_val]] = True
    return keep_videos(train, ~is_val), keep_videos(train, is_val)


def keep_videos(train: Any, keep: torch.Tensor) -> Any:
    """The part of split data ``train`` holding the videos where ``keep`` (bool, one per video) is
    true and exactly their captions, rows renumbered (validation hold-outs are carved this way)."""
    from vtrbench.train import SplitData

    vids = torch.nonzero(keep).flatten()
    remap = torch.full((train.n_videos,), -1, dtype=torch.long)
    remap[vids] = torch.arange(len(vids))
    texts = torch.nonzero(keep[train.text_video]).flatten()
    return SplitData(
        train.name,
        {k: v.index_select(0, vids) for k, v in train.video.items()},
        {k: v.index_select(0, texts) for k, v in train.text.items()},
        remap[train.text_video[texts]],
        train.video_rows[vids.numpy()],
        train.text_rows[texts.numpy()],
    )


def _eval_plugins(
    head: str, ckpt: dict[str, Any] | None, checkpoint: Path | None, console: Any
) -> dict[str, Any]:
    """The plugin origins an evaluation depends on: the head's code as loaded now (it computes the
    scores; an edited plugin is another run, not a finished one) and the loss that trained the
    checkpoint (as the checkpoint recorded it). Warns when the loaded head plugin is not the one
    that trained the checkpoint."""
    from vtrbench.plugins import identity

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
    from vtrbench.train import build_result, check_requirements, evaluate_head, load_checkpoint, load_split

    opts = validate_options(
        {k: kw[k] for k in (*_EVAL_KEYS, "post_options") if k in kw}
        | {"overwrite": kw.get("overwrite", "never"), "allow_overlap": bool(kw.get("allow_overlap", False))}
        | {k: kw.get(k) for k in ("train_split", "test_split", "threads")}
    )
    results_dir = Path(kw["results_dir"])
    if checkpoint is not None:
        head, ckpt = load_checkpoint(checkpoint)  # before the cache: a bad file is the first thing said
    with FeatureCache(cache_path) as cache:
        embed_dim = int(cache.attrs["embed_dim"])
        if checkpoint is not None:
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
            check_requirements(head, cache, str(ckpt["head"]))
            name, loss, seed = ckpt["head"], saved["loss"], int(ckpt["seed"])
            head_options, loss_options = dict(ckpt["head_options"]), dict(saved.get("loss_options", {}))
            epochs = int(saved.get("epochs", 0))
        else:
            head = create_head("zeroshot", embed_dim=embed_dim)
            name, loss, seed, head_options, loss_options, epochs = "zeroshot", "none", 0, {}, {}, 0
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
            v2t_protocol=opts.get("v2t_protocol", "clip4clip"),
            dsl_tau=opts.get("dsl_tau", 1.0),
            qb_bank=opts.get("qb_bank", 5000),
            qb_beta=opts.get("qb_beta", 20.0),
            qb_k=opts.get("qb_k", 1),
            mdr=opts.get("mdr", "standard"),
            post_options=opts.get("post_options", {}),
            precision="fp32",  # evaluation embeds in fp32; a checkpoint's own value replaces it below
            cache_content=_content_hash(cache),
        )
        plugin_origins = _eval_plugins(name, ckpt if checkpoint is not None else None, checkpoint, console)
        config = replace(config, plugins=identities(plugin_origins))
        if checkpoint is not None:
            copied = (
                "batch_size",
                "lr",
                "weight_decay",
                "warmup",
                "grad_clip",
                "val_fraction",
                "eps",
                "precision",
            )
            config = replace(config, **{k: v for k, v in saved.items() if k in copied})
        rid = run_id(str(cache.attrs["dataset"]), name, loss, config_hash(config), seed)
        path = result_path(results_dir, str(cache.attrs["dataset"]), rid)
        check_output_file(path, "result")
        # the bank's split, and the split the checkpoint was trained on, must not hold test videos
        trained_on = str(saved.get("train_split") or "") if checkpoint is not None else ""
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
        set_threads(opts["threads"])  # recorded in the result's provenance
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
            qb_k=config.qb_k,
            mdr=config.mdr,
            v2t_protocol=config.v2t_protocol,
            post_options=config.post_options,
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
            protocol_extra={"allow_overlap": opts["allow_overlap"], "train_test_shared_videos": n_shared},
            plugins=plugin_origins,
        )
        try:
            write_result(path, result)
        except OSError as e:
            raise VtrbenchError(f"cannot write {path}: {e.strerror or e}") from None
        return Outcome(path, result)
