"""The HDF5 feature cache: the contract between ``extract`` and ``train``.

The final layout is documented in features/README.md. This module is the only
place that writes or reads it with h5py.

Crash safety: extraction writes each finished chunk of videos or captions to its
own part file in ``<cache>.parts/`` (written under a temporary name, fsynced, then
renamed), so a ``kill -9`` loses at most the chunk in flight. When every part is
present, :func:`assemble` copies them into ``<cache>.tmp`` and renames that onto the
cache path. A file at the cache path is therefore always complete.

The backbone weights ``--init clip`` starts the temporal heads from (vtrbench/extract/backbone.py)
are one more part, ``backbone.h5``, copied into ``/backbone`` at assembly; when the manifest
promises them, assembly refuses to run without them.

The parts layout is also the unit of sharding: chunk ``k`` of ``n`` can be made by
any process, and assembly refuses to run while any part is missing (never silent
zeros).

Integrity: every numeric dataset carries HDF5's Fletcher32 checksum (verified by HDF5 on
every read), object headers are checksummed (file format 1.10), and each dataset gets a
``sha256`` attribute (of its dtype, shape and bytes) at assembly; the file's
``content_sha256`` combines them. Variable-length strings cannot take a filter, so their
digests are checked whenever a cache is opened. A cache is validated when opened
(attributes, shapes, row indices), so a damaged file stops with one line naming it.

Layout of this package (split by concern so that extraction-side and reading-side work do not collide):
``_io`` (constants, crash-safe writes, free-space checks, digests), ``parts`` (part files and the
manifest), ``assembly`` (parts -> final file), ``reader`` (:class:`FeatureCache`). Everything is
re-exported here; code that monkeypatches must patch the submodule that uses the name.
"""

from __future__ import annotations

from vtrbench.cache._io import (
    HASH_BLOCK_BYTES,
    IN_MEMORY_BYTES,
    LIBVER,
    SCHEMA,
    SPACE_MARGIN,
    STATUS_FAILED,
    STATUS_OK,
    STR,
    TEXT_FIELDS,
    VIDEO_FIELDS,
    check_free_space,
    combine_digests,
    dataset_digest,
    disk_free,
    fsync_dir,
    seal,
    write_failed,
)
from vtrbench.cache.assembly import assemble
from vtrbench.cache.parts import (
    IDENTITY_KEYS,
    Manifest,
    PartMismatch,
    backbone_part_is_valid,
    backbone_part_path,
    missing_parts,
    part_failures,
    part_identity,
    part_is_valid,
    part_path,
    parts_dir,
    write_part,
)
from vtrbench.cache.reader import (
    READ_BLOCK_ROWS,
    REQUIRED_ATTRS,
    REQUIRED_TEXTS,
    REQUIRED_VIDEOS,
    FeatureCache,
)

__all__ = [
    "HASH_BLOCK_BYTES", "IDENTITY_KEYS", "IN_MEMORY_BYTES", "LIBVER", "READ_BLOCK_ROWS", "REQUIRED_ATTRS",
    "REQUIRED_TEXTS", "REQUIRED_VIDEOS", "SCHEMA", "SPACE_MARGIN", "STATUS_FAILED", "STATUS_OK", "STR",
    "TEXT_FIELDS", "VIDEO_FIELDS", "FeatureCache", "Manifest", "PartMismatch", "assemble",
    "backbone_part_is_valid", "backbone_part_path", "check_free_space", "combine_digests", "dataset_digest",
    "disk_free", "fsync_dir", "missing_parts", "part_failures", "part_identity", "part_is_valid",
    "part_path", "parts_dir", "seal", "write_failed", "write_part",
]  # fmt: skip
