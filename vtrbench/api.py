"""vtrbench's public Python API: caches, heads, losses, training, evaluation and result files.

Everything a user's own PyTorch code needs to put a method next to the baselines, with
vtrbench's protocol (metrics, ties, v2t conventions, post-processings) and a result file
that ``vtrbench report`` accepts. The command line is a thin layer over the same functions.
Stable in the semantic-versioning sense: the names in ``__all__`` do not disappear within a
major version (tests/top/test_api.py fails when one does).

Example::

    from vtrbench import api

    with api.open_cache("features/msrvtt/....h5") as cache:
        train, test = api.load_split(cache, "9k"), api.load_split(cache, "1k-A")
        head = api.create_head("meanp", embed_dim=int(cache.attrs["embed_dim"]))
    history = api.train_head(head, train, loss="dsl", seed=0, epochs=5)
    metrics = api.evaluate_head(head, test)["metrics"]["raw"]["t2v"]["R@1"]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench import defaults
from vtrbench import factory as _factory
from vtrbench import results as _results
from vtrbench.api_args import (
    EMBED_DIM,
    POSITIVE_INT,
    RECIPE,
    SCALE,
    bad,
    eval_options,
    head_arg,
    head_name,
    path_arg,
    posts_arg,
    progress_arg,
    registered,
    split_arg,
)
from vtrbench.cache import FeatureCache
from vtrbench.config import OptionRule, TrainConfig, check_option, check_seed
from vtrbench.config import check_value as _check_value
from vtrbench.datasets.base import DatasetIndex, register_dataset
from vtrbench.errors import VtrbenchError
from vtrbench.eval import evaluate_embeddings as _evaluate_embeddings
from vtrbench.eval.postprocess import BANK_POSTS, EMBEDDING_POSTS
from vtrbench.heads.base import Batch, Head, list_heads, register_head
from vtrbench.heads.contract import check_describe
from vtrbench.losses.base import list_losses, register_loss
from vtrbench.plugins import load_plugin as _load_plugin
from vtrbench.plugins import loaded_plugins
from vtrbench.runs import data as _data
from vtrbench.runs import scoring as _scoring
from vtrbench.runs import train as _train
from vtrbench.runs.data import SplitData
from vtrbench.runs.runner import run_eval as _run_eval
from vtrbench.runs.runner import run_training as _run_training
from vtrbench.runs.spec import RunSpec, check_device, check_head_options, check_loss_options
from vtrbench.search import search as _search

__all__ = [
    "Batch",
    "CaptionVideoDataset",
    "DatasetIndex",
    "FeatureCache",
    "Head",
    "RunSpec",
    "SplitData",
    "TrainConfig",
    "VtrbenchError",
    "create_head",
    "create_loss",
    "embed",
    "evaluate_embeddings",
    "evaluate_head",
    "evaluate_similarity",
    "list_heads",
    "list_losses",
    "load_plugin",
    "load_split",
    "loaded_plugins",
    "open_cache",
    "read_result",
    "register_dataset",
    "register_head",
    "register_loss",
    "run_eval",
    "run_training",
    "search",
    "train_head",
    "write_result",
]


# ---------------------------------------------------------------- the API


def open_cache(path: str | Path) -> FeatureCache:
    """Open a feature cache made by ``vtrbench extract`` (use it as a context manager)."""
    return FeatureCache(path_arg("open_cache", "path", path))


def load_split(cache: FeatureCache | str | Path, split: str, *, patches: bool = False) -> SplitData:
    """One split of a cache as in-memory tensors (fp16 at rest; videos that failed to decode are left out).

    ``split.video["frames"]`` is ``(Nv, T, D)``, ``split.text["tokens"]`` ``(Nt, L, D)``, and caption
    ``i`` belongs to video ``split.text_video[i]``.
    """
    fn = "load_split"
    if not isinstance(split, str) or not split.strip():
        raise bad(fn, "split", "a split name (str)", split)
    if not isinstance(patches, bool):
        raise bad(fn, "patches", "true or false", patches)
    if isinstance(cache, FeatureCache):
        if not getattr(cache.file, "id", None) or not cache.file.id.valid:
            raise VtrbenchError(f"{fn}: cache {cache.path} is closed")
        return _data.load_split(cache, split, patches=patches)
    with FeatureCache(path_arg(fn, "cache", cache)) as opened:
        return _data.load_split(opened, split, patches=patches)


class CaptionVideoDataset(torch.utils.data.Dataset):
    """A split as a ``torch.utils.data.Dataset`` of (caption, video) pairs, one item per caption.

    Item ``i`` is ``(text, video, video_index)``: two dicts of tensors (the batch fields of
    :class:`Head`) and the caption's gallery row. ``torch.utils.data.default_collate`` batches them.
    """

    def __init__(self, split: SplitData) -> None:
        self.split = split_arg("CaptionVideoDataset", "split", split)

    def __len__(self) -> int:
        return self.split.n_texts

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
        v = int(self.split.text_video[i])
        text = {k: t[i] for k, t in self.split.text.items()}
        video = {k: t[v] for k, t in self.split.video.items()}
        return text, video, v


def create_head(name: str, embed_dim: int, **options: Any) -> Head:
    """Build a registered head for features of width ``embed_dim`` (the cache's ``embed_dim``).

    ``options`` are the head's own keyword arguments (``vtrbench heads`` lists them); a wrong name,
    width or option is a VtrbenchError naming it.
    """
    fn = "create_head"
    name = registered(fn, "head", name, list_heads())
    embed_dim = _check_value(EMBED_DIM, embed_dim, f"{fn}: embed_dim")
    check_head_options(options, f"{fn}: options")
    try:
        head = _factory.create_head(name, embed_dim=embed_dim, **options)
    except VtrbenchError as e:
        raise VtrbenchError(f"{fn}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:
        raise VtrbenchError(f"{fn}: head {name!r}: bad option ({type(e).__name__}: {e})"[:400]) from None
    check_describe(head, f"{fn}: head {name!r}")
    return head


def create_loss(name: str, **options: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Build a registered loss: a callable on the ``(B, B)`` logit matrix returning a scalar."""
    fn = "create_loss"
    name = registered(fn, "loss", name, list_losses())
    try:
        check_loss_options(name, options, f"{fn}: options")
        return _factory.create_loss(name, **options)
    except VtrbenchError as e:
        raise VtrbenchError(f"{fn}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise VtrbenchError(f"{fn}: loss {name!r}: bad option ({type(e).__name__}: {e})"[:400]) from None


def train_head(
    head: Head,
    train: SplitData,
    *,
    loss: str = "infonce",
    loss_options: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
    val: SplitData | None = None,
    **recipe: Any,
) -> list[dict[str, Any]]:
    """Train ``head`` in place with the standard recipe; returns the per-epoch history.

    ``recipe`` overrides the recipe (epochs, batch_size, lr, weight_decay, precision, compile, warmup,
    grad_clip, eps, betas), checked by the command line's rules (``config.RUN_OPTIONS``): ``epochs=0``,
    ``batch_size=1`` or a negative weight decay are errors, not an empty or zero-loss history.
    Same training code as ``vtrbench train``.
    """
    fn = "train_head"
    head = head_arg(fn, head)
    if not head.trainable:
        raise VtrbenchError(f"{fn}: head {head_name(head) or type(head).__name__!r} has nothing to train")
    allowed = (*RECIPE, "betas")
    unknown = sorted(set(recipe) - set(allowed))
    if unknown:
        raise VtrbenchError(f"{fn}: unknown recipe option(s) {unknown} (known: {sorted(allowed)})")
    values = {k: check_option(k, v, where=fn) for k, v in recipe.items() if k != "betas"}
    if "betas" in recipe:
        betas = recipe["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise bad(fn, "betas", "a pair of numbers in [0, 1)", betas)
        rule = OptionRule("float", low=0, high=1, high_open=True)
        values["betas"] = tuple(_check_value(rule, b, f"{fn}: betas[{i}]") for i, b in enumerate(betas))
    seed = check_seed(seed, option=f"{fn}: seed")
    check_device(device, values.get("precision"), f"{fn}: device")
    train = split_arg(fn, "train", train, head)
    if val is not None:
        val = split_arg(fn, "val", val, head)
    if train.n_texts < 2:
        raise VtrbenchError(
            f"{fn}: train holds {train.n_texts} caption(s); contrastive training needs at least 2"
        )
    loss = registered(fn, "loss", loss, list_losses())
    if loss_options is not None and not isinstance(loss_options, dict):
        raise bad(fn, "loss_options", "a dict or None", loss_options)
    options = dict(loss_options or {})
    if loss == "dsl":
        options.setdefault("temperature", 1000.0)
    create_loss(loss, **options)  # a bad loss name or option fails here, before any step
    # the head's own options (e.g. camoe's aux_weight) as the trainer reads them from a run's config
    config = TrainConfig(
        cache_hash="",
        head=head_name(head),
        loss=loss,
        head_options=dict(head.describe()),
        loss_options=options,
        **values,
    )
    return _train.fit(head, train, config, seed, device=device, val=val)


def embed(
    head: Head, data: SplitData, *, device: str = "cpu", batch: int = defaults.EMBED_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Nt, E)`` text and ``(Nv, E)`` video embeddings of a split (factorised heads)."""
    fn = "embed"
    head = head_arg(fn, head)
    if getattr(head, "pairwise", False):
        raise VtrbenchError(f"{fn}: a pairwise head has no embeddings; use evaluate_head")
    data = split_arg(fn, "data", data, head)
    check_device(device, None, f"{fn}: device")
    batch = _check_value(POSITIVE_INT, batch, f"{fn}: batch")
    return _scoring.embed(head, data, device=device, batch=batch)


def evaluate_head(
    head: Head,
    test: SplitData,
    *,
    device: str = "cpu",
    bank: SplitData | None = None,
    bank_size: int = defaults.QB_BANK,
    dsl_tau: float = defaults.DSL_TAU,
    qb_beta: float = defaults.QB_BETA,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    postprocessing: tuple[str, ...] | None = None,
    progress: Any = None,
    qb_k: int = defaults.QB_K,
    mdr: str = defaults.MDR,
    block: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Metrics of ``head`` on ``test`` (factorised or pairwise), as ``vtrbench eval`` computes them.

    ``bank``: the training split whose captions/videos are QB-Norm's query bank (a fixed sample of
    ``bank_size``). ``postprocessing``: None computes the default ones the inputs allow
    (``defaults.POSTPROCESSING``; the bank-based ones only with a ``bank``); named ones are computed
    or refused. Options follow the command line's rules.
    """
    fn = "evaluate_head"
    head = head_arg(fn, head)
    test = split_arg(fn, "test", test, head)
    if bank is not None:
        bank = split_arg(fn, "bank", bank, head)
    check_device(device, None, f"{fn}: device")
    opts = eval_options(fn, qb_bank=bank_size, dsl_tau=dsl_tau, qb_beta=qb_beta, v2t_protocol=v2t_protocol,
                         qb_k=qb_k, mdr=mdr)  # fmt: skip
    if postprocessing is None:
        postprocessing = tuple(p for p in defaults.POSTPROCESSING if bank is not None or p not in BANK_POSTS)
    posts = posts_arg(fn, postprocessing)
    needs_bank = [p for p in posts if p in BANK_POSTS]
    if needs_bank and bank is None:
        raise VtrbenchError(
            f"{fn}: postprocessing {', '.join(needs_bank)} needs a bank of training queries: pass "
            "bank=load_split(cache, TRAIN_SPLIT), or leave postprocessing at None (the default ones "
            "the inputs allow)"
        )
    progress_arg(fn, progress, "add_task")
    if block is not None:
        if not isinstance(block, (tuple, list)) or len(block) != 2:
            raise bad(fn, "block", "None or a pair of block sizes (captions, videos)", block)
        block = tuple(_check_value(POSITIVE_INT, b, f"{fn}: block[{i}]") for i, b in enumerate(block))
    return _scoring.evaluate_head(
        head, test, device=device, bank=bank, bank_size=opts["qb_bank"], dsl_tau=opts["dsl_tau"],
        qb_beta=opts["qb_beta"], v2t_protocol=opts["v2t_protocol"], postprocessing=posts, progress=progress,
        qb_k=opts["qb_k"], mdr=opts["mdr"], block=block,
    )  # fmt: skip


def _matrix(fn: str, name: str, value: Any) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise bad(fn, name, "a 2-D numeric tensor or array", value) from None
    if (
        t.ndim != 2
        or t.dtype == torch.bool
        or t.is_complex()
        or not (t.is_floating_point() or t.dtype.is_signed)
    ):
        raise bad(fn, name, "a 2-D real-valued tensor or array", value if t.ndim == 0 else t.shape)
    if t.numel() == 0:
        raise VtrbenchError(f"{fn}: {name} is empty (shape {tuple(t.shape)})")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise VtrbenchError(f"{fn}: {name} holds NaN or inf")
    return t


def _query_video(fn: str, value: Any, n_queries: int, n_videos: int) -> torch.Tensor:
    try:
        qv = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise bad(fn, "query_video", f"a ({n_queries},) integer array of gallery columns", value) from None
    if (
        qv.ndim != 1
        or len(qv) != n_queries
        or qv.is_floating_point()
        or qv.dtype == torch.bool
        or qv.is_complex()
    ):
        raise bad(fn, "query_video", f"a ({n_queries},) integer array of gallery columns", value)
    if int(qv.min()) < 0 or int(qv.max()) >= n_videos:
        raise VtrbenchError(f"{fn}: query_video holds columns outside 0..{n_videos - 1}")
    missing = n_videos - int(torch.unique(qv).numel())
    if missing:
        raise VtrbenchError(
            f"{fn}: {missing} gallery video(s) have no caption in query_video (every video is a v2t query)"
        )
    return qv


def evaluate_embeddings(
    text_emb: torch.Tensor | np.ndarray,
    video_emb: torch.Tensor | np.ndarray,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float,
    bank_text: torch.Tensor | np.ndarray | None = None,
    bank_video: torch.Tensor | np.ndarray | None = None,
    dsl_tau: float = defaults.DSL_TAU,
    qb_beta: float = defaults.QB_BETA,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    chunk_size: int = defaults.CHUNK_SIZE,
    postprocessing: tuple[str, ...] = defaults.POSTPROCESSING,
    progress: Callable[[int], None] | None = None,
    qb_k: int = defaults.QB_K,
    mdr: str = defaults.MDR,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of ``(Nq, E)`` caption and ``(Nv, E)`` video embeddings (similarity = dot product).

    ``query_video[i]`` is caption ``i``'s gallery row; ``bank_text``/``bank_video`` are the query
    banks of QB-Norm and the bank-based hubness post-processings (both or neither);
    ``post_options`` their parameters (``--post-option``'s keys). See
    :func:`vtrbench.eval.evaluate_embeddings` for the result.
    """
    fn = "evaluate_embeddings"
    text = _matrix(fn, "text_emb", text_emb)
    video = _matrix(fn, "video_emb", video_emb)
    if text.shape[1] != video.shape[1]:
        raise VtrbenchError(f"{fn}: text_emb has width {text.shape[1]}, video_emb {video.shape[1]}")
    _query_video(fn, query_video, text.shape[0], video.shape[0])
    if (bank_text is None) != (bank_video is None):
        raise VtrbenchError(f"{fn}: qbnorm needs both bank_text and bank_video, or neither")
    for name, bank in (("bank_text", bank_text), ("bank_video", bank_video)):
        if bank is not None and _matrix(fn, name, bank).shape[1] != text.shape[1]:
            raise VtrbenchError(f"{fn}: {name} must have width {text.shape[1]}")
    scale = _check_value(SCALE, logit_scale, f"{fn}: logit_scale")
    opts = eval_options(fn, dsl_tau=dsl_tau, qb_beta=qb_beta, v2t_protocol=v2t_protocol, qb_k=qb_k, mdr=mdr)
    if post_options is not None:
        opts["post_options"] = check_option("post_options", post_options, where=fn)
    chunk_size = _check_value(POSITIVE_INT, chunk_size, f"{fn}: chunk_size")
    posts = posts_arg(fn, postprocessing)
    if progress is not None and not callable(progress):
        raise bad(fn, "progress", "None or a callable progress(n)", progress)
    return _evaluate_embeddings(
        text_emb, video_emb, query_video, logit_scale=scale, bank_text=bank_text, bank_video=bank_video,
        chunk_size=chunk_size, postprocessing=posts, progress=progress, **opts,
    )  # fmt: skip


def evaluate_similarity(
    similarity: torch.Tensor | np.ndarray,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float = 100.0,
    v2t_protocol: str = defaults.V2T_PROTOCOL,
    postprocessing: tuple[str, ...] = ("raw", "dsl"),
    dsl_tau: float = defaults.DSL_TAU,
    post_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of any ``(Nq, Nv)`` caption x video similarity, with vtrbench's ranking and ties.

    ``query_video[i]`` is the gallery column of caption ``i``'s video. ``dsl`` applies test-time
    DSL to ``logit_scale * similarity`` (transductive); the test-based hubness post-processings
    (``is-test``, ``csls-test``, ``sinkhorn``) work too, with ``post_options`` as
    :func:`evaluate_embeddings`. Returns the same dict as
    :func:`evaluate_embeddings`. The matrix is scored as ``similarity @ I``, which is exact; for
    galleries far beyond ~10k videos use :func:`evaluate_embeddings` with embeddings instead.
    """
    fn = "evaluate_similarity"
    sim = _matrix(fn, "similarity", similarity)
    _query_video(fn, query_video, sim.shape[0], sim.shape[1])
    posts = posts_arg(fn, postprocessing)
    for post in posts:
        if post in BANK_POSTS:
            raise VtrbenchError(f"{fn}: {post} needs a query bank; use evaluate_embeddings")
        if post in EMBEDDING_POSTS:
            raise VtrbenchError(f"{fn}: {post} transforms embeddings; use evaluate_embeddings")
    scale = _check_value(SCALE, logit_scale, f"{fn}: logit_scale")
    opts = eval_options(fn, v2t_protocol=v2t_protocol, dsl_tau=dsl_tau)
    # the scores keep their own precision: a float32 matrix carries float32 rounding, and the tie bands
    # (eval.postprocess) follow the dtype they are handed (similarity @ I is exact in any float dtype)
    sim = sim if sim.is_floating_point() else sim.to(torch.float64)
    return _evaluate_embeddings(
        sim, torch.eye(sim.shape[1], dtype=sim.dtype), query_video, logit_scale=scale, postprocessing=posts,
        post_options=post_options, **opts,
    )  # fmt: skip


def load_plugin(spec: str | Path) -> dict[str, Any]:
    """Import a plugin file (``path/to/file.py``) or module (``package.module``) once; returns its
    provenance record (name, version, source, sha256, entries)."""
    if isinstance(spec, bool) or not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise bad("load_plugin", "spec", "a plugin file path or module name", spec)
    return _load_plugin(spec)


def read_result(path: str | Path) -> dict[str, Any]:
    """Read and validate one result file (any problem is one VtrbenchError naming the file)."""
    return _results.read_result(path_arg("read_result", "path", path))


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Write a result dict atomically; refused (nothing written) unless ``read_result`` would accept it."""
    _results.write_result(path_arg("write_result", "path", path), result)


def run_training(
    spec: RunSpec,
    seed: int,
    *,
    checkpoint: str | Path | None = None,
    console: Any = None,
    cache: FeatureCache | None = None,
    data: dict[str, Any] | None = None,
) -> Any:
    """Train and evaluate one run of ``spec`` and write its result file (as ``vtrbench train``)."""
    fn = "run_training"
    if not isinstance(spec, RunSpec):
        raise bad(fn, "spec", "a RunSpec", spec)
    seed = check_seed(seed, option=f"{fn}: seed")
    checkpoint = None if checkpoint is None else path_arg(fn, "checkpoint", checkpoint)
    if cache is not None and not isinstance(cache, FeatureCache):
        raise bad(fn, "cache", "None or an open FeatureCache", cache)
    if data is not None and not isinstance(data, dict):
        raise bad(fn, "data", "None or a dict (splits loaded once, shared across runs)", data)
    if console is not None and not hasattr(console, "print"):
        raise bad(fn, "console", "None or a rich Console", console)
    return _run_training(spec, seed, checkpoint=checkpoint, console=console, cache=cache, data=data)


_EVAL_KW = ("v2t_protocol", "dsl_tau", "qb_bank", "qb_beta", "qb_k", "mdr", "overwrite", "allow_overlap",
            "train_split", "test_split", "post_options", "threads")  # fmt: skip


def run_eval(
    cache_path: str | Path,
    *,
    checkpoint: str | Path | None,
    console: Any = None,
    results_dir: str | Path = defaults.RESULTS_DIR,
    device: str = "cpu",
    **options: Any,
) -> Any:
    """Evaluate ``zeroshot`` (``checkpoint=None``) or a saved head and write one result file
    (as ``vtrbench eval``). ``options``: v2t_protocol, dsl_tau, qb_bank, qb_beta, qb_k, mdr,
    overwrite, allow_overlap, train_split, test_split, post_options, threads (the command line's
    rules)."""
    fn = "run_eval"
    cache_path = path_arg(fn, "cache_path", cache_path)
    checkpoint = None if checkpoint is None else path_arg(fn, "checkpoint", checkpoint)
    results_dir = path_arg(fn, "results_dir", results_dir)
    check_device(device, None, f"{fn}: device")
    unknown = sorted(set(options) - set(_EVAL_KW))
    if unknown:
        raise VtrbenchError(f"{fn}: unknown option(s) {unknown} (known: {', '.join(_EVAL_KW)})")
    options = {k: check_option(k, v, where=fn) for k, v in options.items()}
    if console is not None and not hasattr(console, "print"):
        raise bad(fn, "console", "None or a rich Console", console)
    return _run_eval(
        cache_path, checkpoint=checkpoint, console=console, results_dir=results_dir, device=device, **options
    )


def search(
    cache: str | Path,
    queries: str | list[str],
    *,
    checkpoint: str | Path | None = None,
    k: int = 10,
    split: str | None = None,
    device: str = "cpu",
    clip_weights: str | None = None,
) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """Free-text retrieval over a cache, as ``vtrbench search``: the hits of one query (a str),
    or one list of hits per query (a list).

    Each hit is ``{rank, video, score, path, query, truncated}`` (plus ``gate``, CAMoE's expert
    weights for the query). The query is encoded with the CLIP the cache was extracted with and
    scored by the head of ``checkpoint`` (``zeroshot`` when None); ``split`` restricts the gallery.
    Imports open_clip (the only API function that does).
    """
    fn = "search"
    cache = path_arg(fn, "cache", cache)
    many = not isinstance(queries, str)
    if many and (not isinstance(queries, (list, tuple)) or not all(isinstance(q, str) for q in queries)):
        raise bad(fn, "queries", "a str or a list of str", queries)
    checkpoint = None if checkpoint is None else path_arg(fn, "checkpoint", checkpoint)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise bad(fn, "k", "an integer >= 1", k)
    if split is not None and (not isinstance(split, str) or not split.strip()):
        raise bad(fn, "split", "None or a split name", split)
    check_device(device, None, f"{fn}: device")
    clip_weights = None if clip_weights is None else str(path_arg(fn, "clip_weights", clip_weights))
    outcome = _search(
        cache,
        list(queries) if many else [queries],
        checkpoint=checkpoint,
        k=k,
        split=split,
        device=device,
        clip_weights=clip_weights,
    )
    hits = [r.to_rows() for r in outcome.results]
    return hits if many else hits[0]
