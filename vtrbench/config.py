"""Canonical config serialisation and hashing.

Every artifact (cache, result) stores the canonical JSON of the config that made
it and a short hash of it; two configs are "the same run" exactly when their
canonical JSON is equal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples, paths → JSON-ready plain data (dict keys sorted later)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace; floats as Python prints them."""
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON, truncated (16 hex chars = 64 bits)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that determines the numbers in a feature cache (and nothing else).

    Device, batch size and worker count are not here: they change speed, not values
    (except fp16 on CUDA, which ``precision`` records).
    """

    dataset: str
    dataset_fingerprint: str  # hash of the video ids and captions the cache covers
    model: str
    pretrained: str
    max_frames: int = 12
    fps: int = 1  # frames taken per second of video (CLIP4Clip's feature_framerate)
    sampling: str = "uniform"
    image_size: int = 224
    max_words: int = 32
    patch_tokens: bool = False
    tagger: str = "pattern"
    precision: str = "fp32"  # "fp32" on CPU; "fp16" autocast on CUDA
    # Image preprocessing (open_clip's inference transform), resolved per model/tag by
    # vtrbench.extract.preprocess_cfg; the defaults are OpenAI CLIP's.
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    schema: int = 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained head's numbers, except the seed.

    Defaults are METHODS.md section 10 (CLIP4Clip's recipe adapted to frozen features).
    """

    cache_hash: str  # the feature cache's own config hash
    head: str
    loss: str
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_split: str = ""
    test_split: str = ""
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup: float = 0.1  # fraction of steps with linear warm-up, then cosine decay
    grad_clip: float = 1.0
    val_fraction: float = 0.0
    v2t_protocol: str = "clip4clip"
    dsl_tau: float = 1.0  # inference DSL temperature on logit-scaled scores
    qb_bank: int = 5000
    qb_beta: float = 20.0
    schema: int = 1
