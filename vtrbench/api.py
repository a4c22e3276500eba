"""vtrbench's public Python API: caches, heads, losses, training, evaluation and result files.

Everything a user's own PyTorch code needs to put a method next to the baselines, with
vtrbench's protocol (metrics, ties, v2t conventions, post-processings) and a result file
that ``vtrbench report`` accepts. The command line is a thin layer over the same functions.
Stable in the semantic-versioning sense: the names in ``__all__`` do not disappear within a
major version (tests/test_api.py fails when one does).

Example::

    from vtrbench import api

    with api.open_cache("features/msrvtt/....h5") as cache:
        train, test = api.load_split(cache, "9k"), api.load_split(cache, "1k-A")
        head = api.create_head("meanp", embed_dim=int(cache.attrs["embed_dim"]))
    history = api.train_head(head, train, loss="dsl", seed=0, epochs=5)
    metrics = api.evaluate_head(head, test)["metrics"]["raw"]["t2v"]["R@1"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtrbench.cache import FeatureCache
from vtrbench.config import TrainConfig
from vtrbench.datasets.base import DatasetIndex, register_dataset
from vtrbench.errors import VtrbenchError
from vtrbench.evaluate import evaluate_embeddings
from vtrbench.heads.base import Batch, Head, create_head, list_heads, register_head
from vtrbench.losses.base import create_loss, list_losses, register_loss
from vtrbench.plugins import load_plugin, loaded_plugins
from vtrbench.results import read_result, write_result
from vtrbench.runner import RunSpec, run_eval, run_training
from vtrbench.train import SplitData, embed, evaluate_head, fit
from vtrbench.train import load_split as _load_split

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
    "train_head",
    "write_result",
]


def open_cache(path: str | Path) -> FeatureCache:
    """Open a feature cache made by ``vtrbench extract`` (use it as a context manager)."""
    return FeatureCache(path)


def load_split(cache: FeatureCache | str | Path, split: str, *, patches: bool = False) -> SplitData:
    """One split of a cache as in-memory tensors (fp16 at rest; videos that failed to decode are left out).

    ``split.video["frames"]`` is ``(Nv, T, D)``, ``split.text["tokens"]`` ``(Nt, L, D)``, and caption
    ``i`` belongs to video ``split.text_video[i]``.
    """
    if isinstance(cache, FeatureCache):
        return _load_split(cache, split, patches=patches)
    with FeatureCache(cache) as opened:
        return _load_split(opened, split, patches=patches)


class CaptionVideoDataset(torch.utils.data.Dataset):
    """A split as a ``torch.utils.data.Dataset`` of (caption, video) pairs, one item per caption.

    Item ``i`` is ``(text, video, video_index)``: two dicts of tensors (the batch fields of
    :class:`Head`) and the caption's gallery row. ``torch.utils.data.default_collate`` batches them.
    """

    def __init__(self, split: SplitData) -> None:
        self.split = split

    def __len__(self) -> int:
        return self.split.n_texts

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
        v = int(self.split.text_video[i])
        text = {k: t[i] for k, t in self.split.text.items()}
        video = {k: t[v] for k, t in self.split.video.items()}
        return text, video, v


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

    ``recipe`` overrides :class:`TrainConfig` fields (epochs, batch_size, lr, weight_decay, warmup,
    grad_clip, ...); unknown names are an error. Same code path as ``vtrbench train``.
    """
    fields = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(recipe) - fields)
    if unknown:
        raise VtrbenchError(f"train_head: unknown recipe option(s) {unknown} (known: {sorted(fields)})")
    options = dict(loss_options or {})
    if loss == "dsl":
        options.setdefault("temperature", 1000.0)
    config = TrainConfig(cache_hash="", head="", loss=loss, loss_options=options, **recipe)
    create_loss(loss, **options)  # a bad loss name or option fails here, before any step
    return fit(head, train, config, seed, device=device, val=val)


def evaluate_similarity(
    similarity: torch.Tensor | np.ndarray,
    query_video: torch.Tensor | np.ndarray,
    *,
    logit_scale: float = 100.0,
    v2t_protocol: str = "clip4clip",
    postprocessing: tuple[str, ...] = ("raw", "dsl"),
    dsl_tau: float = 1.0,
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
    sim = torch.as_tensor(similarity)
    if sim.ndim != 2:
        raise VtrbenchError(
            f"evaluate_similarity: similarity must be 2-D (captions x videos), got {sim.ndim}-D"
        )
    from vtrbench.postprocess import BANK_POSTS

    for post in [postprocessing] if isinstance(postprocessing, str) else postprocessing:
        if post in BANK_POSTS:
            raise VtrbenchError(f"evaluate_similarity: {post} needs a query bank; use evaluate_embeddings")
    sim = sim.to(torch.float64)
    return evaluate_embeddings(
        sim,
        torch.eye(sim.shape[1], dtype=sim.dtype),
        query_video,
        logit_scale=logit_scale,
        v2t_protocol=v2t_protocol,
        postprocessing=postprocessing,
        dsl_tau=dsl_tau,
        post_options=post_options,
    )
