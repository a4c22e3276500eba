"""Deprecated: moved to vtrbench.datasets.synthetic.

The synthetic video/caption generator now lives in the dataset family, beside its loader;
this module only re-exports its public names so that ``from vtrbench.synthetic import X``
keeps working. Import from :mod:`vtrbench.datasets.synthetic` instead.
"""

from __future__ import annotations

from vtrbench.datasets.synthetic import (
    CAPTIONS_FILE,
    COLOURS,
    GENERATOR,
    GENERATOR_VERSION,
    KINDS,
    MARKER_FILE,
    MAX_CAPTIONS_PER_VIDEO,
    META_FILE,
    SCENES,
    SHAPES,
    SPLITS,
    VIDEO_DIR,
    Caption,
    Entity,
    SynthConfig,
    VideoSpec,
    plan,
    render_dataset,
    render_video,
)

__all__ = [
    "CAPTIONS_FILE",
    "COLOURS",
    "GENERATOR",
    "GENERATOR_VERSION",
    "KINDS",
    "MARKER_FILE",
    "MAX_CAPTIONS_PER_VIDEO",
    "META_FILE",
    "SCENES",
    "SHAPES",
    "SPLITS",
    "VIDEO_DIR",
    "Caption",
    "Entity",
    "SynthConfig",
    "VideoSpec",
    "plan",
    "render_dataset",
    "render_video",
]
