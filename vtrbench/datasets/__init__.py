"""Dataset loaders (one module each, registered by name)."""

from vtrbench.datasets.base import (
    DatasetIndex,
    Split,
    TextEntry,
    VideoEntry,
    list_datasets,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DatasetIndex",
    "Split",
    "TextEntry",
    "VideoEntry",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
