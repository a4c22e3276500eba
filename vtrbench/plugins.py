"""Plugins: heads, losses and datasets from outside vtrbench.

Two ways in, both recorded in every result's provenance (name, version, source file, sha256):

* an installed package declares entry points in the groups ``vtrbench.heads``,
  ``vtrbench.losses`` or ``vtrbench.datasets`` (the entry point's name is the registered
  name; its object is the factory, or a module whose import registers it). They are
  looked up lazily, only when a name is not built in.
* ``--plugin path/to/file.py`` or ``--plugin package.module`` (repeatable, on extract,
  train, eval, ablate and demo; ``plugins = [...]`` in a grid file) imports a file or
  module whose decorators (``@register_head("name")`` ...) register its entries.

A broken plugin gets one line naming it and what went wrong, before any work starts:
an import error, a name that clashes with an existing one, or (``heads.contract.check_head`` /
``losses.contract.check_loss``, run by :mod:`vtrbench.factory`) a head or loss that returns the
wrong shape or non-finite values on a tiny dry batch.

Layer 3 (above the families): the registry (ground) resolves entry points itself; this module
loads ``--plugin`` files and modules and says where each entry came from.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from vtrbench.errors import VtrbenchError
from vtrbench.registry import (
    LOADED as _LOADED,
)
from vtrbench.registry import (
    describe_entry_point,
    entry_point_names,
    import_with_origin,
    load_all_builtins,
    load_entry_point,
    new_entries,
    registries,
    registry_of,
    set_origins,
    sha256_of,
    snapshot,
)

ENTRY_POINT_GROUPS = {"head": "vtrbench.heads", "loss": "vtrbench.losses", "dataset": "vtrbench.datasets"}

__all__ = [
    "ENTRY_POINT_GROUPS",
    "construct",
    "describe_entry_point",
    "entry_point_names",
    "identities",
    "identity",
    "load_entry_point",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "provenance_for",
    "registry_of",
    "replay_specs",
]

# Kept for code that reached into these (tests isolate the registries through them).
_registries = registries


# The dry-run checks moved to the families' contracts (heads.contract, losses.contract); they stay
# importable from here for plugin authors, resolved on first use: importing them at the top would
# make every command that reads --plugin import torch (`vtrbench --help` must not).
_CONTRACT_NAMES = {
    "DRY_SIZES": "heads",
    "check_describe": "heads",
    "check_head": "heads",
    "check_logit_shape": "heads",
    "dry_batches": "heads",
    "head_who": "heads",
    "check_loss": "losses",
}


def __getattr__(name: str) -> Any:
    family = _CONTRACT_NAMES.get(name)
    if family == "heads":
        from vtrbench.heads import contract as heads_contract

        return getattr(heads_contract, name)
    if family == "losses":
        from vtrbench.losses import contract as losses_contract

        return getattr(losses_contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def construct(reg: Any, name: str, **kwargs: Any) -> Any:
    """``reg.construct(name, **kwargs)`` (kept for callers of earlier releases): a plugin's failing
    factory is one line naming the plugin."""
    return reg.construct(name, **kwargs)


def loaded_plugins() -> list[dict[str, Any]]:
    """The plugins loaded so far (name, version, kind, source, sha256, entries)."""
    return [dict(p) for p in _LOADED.values()]


def load_plugin(spec: str | Path) -> dict[str, Any]:
    """Import a plugin file (``path/to/file.py``) or module (``package.module``) once.

    Returns its provenance record. Raises VtrbenchError (one line, naming the plugin) when the
    file is missing, the import fails or a name clashes.
    """
    load_all_builtins()
    text = str(spec)
    looks_like_file = text.endswith(".py") or "/" in text or "\\" in text
    if looks_like_file:
        path = Path(text).expanduser().resolve()
        key = str(path)
        if key in _LOADED:
            return dict(_LOADED[key])
        if not path.is_file():
            raise VtrbenchError(f"--plugin {text}: no such file")
        origin = {
            "kind": "file",
            "name": path.stem,
            "version": None,
            "source": str(path),
            "sha256": sha256_of(path),
        }
        module_name = f"vtrbench_plugin_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"

        def do_import() -> Any:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise VtrbenchError(f"--plugin {text}: not an importable Python file")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
            return module

    else:
        key = text
        if key in _LOADED:
            return dict(_LOADED[key])
        found = importlib.util.find_spec(text.split(".")[0]) if text.split(".")[0] else None
        if found is None:
            raise VtrbenchError(f"--plugin {text}: no such module (and not a .py file)")
        origin = {"kind": "module", "name": text, "version": _module_version(text), "source": text}

        def do_import() -> Any:
            return importlib.import_module(text)

    before = snapshot()
    module = import_with_origin(origin, do_import)
    if origin["kind"] == "module":
        origin["sha256"] = sha256_of(Path(module.__file__)) if getattr(module, "__file__", None) else None
    origin["version"] = origin["version"] or getattr(module, "__version__", None)
    entries = new_entries(before)
    if not entries:
        raise VtrbenchError(
            f"plugin {text} registered nothing (use @register_head / @register_loss / @register_dataset)"
        )
    record = {**origin, "entries": entries}
    # The record the registry keeps per entry must carry the final version and hash too.
    set_origins(entries, {k: v for k, v in record.items() if k != "entries"})
    _LOADED[key] = record
    return dict(record)


def load_plugins(specs: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    return [load_plugin(s) for s in specs]


def _module_version(module: str) -> str | None:
    top = module.split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def identity(origin: dict[str, Any]) -> dict[str, Any]:
    """What makes two plugins the same code: name, version and the sha256 of the source.

    This, not the origin, goes into a run's config (and so its run id): the same file copied to
    another folder is the same run, an edited file is another. The path stays in the result's
    ``provenance.plugins`` only. Without a hash (a module with no file) the module name stands in.
    """
    out = {k: origin.get(k) for k in ("name", "version", "sha256")}
    if out["sha256"] is None and origin.get("kind") != "file":
        out["source"] = origin.get("source")
    return out


def identities(origins: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`identity` of each entry of a :func:`provenance_for` mapping."""
    return {kind: identity(origin) for kind, origin in origins.items()}


def replay_specs(origins: list[dict[str, Any]]) -> list[str]:
    """``--plugin`` arguments that load these origins again (files by absolute path, modules by name);
    entry points load themselves and code registered from the user's own script cannot be replayed."""
    specs: list[str] = []
    for origin in origins:
        if origin.get("kind") in ("file", "module") and origin.get("source"):
            if str(origin["source"]) not in specs:
                specs.append(str(origin["source"]))
    return specs


def provenance_for(head: str | None = None, loss: str | None = None, dataset: str | None = None) -> dict:
    """The origins of the named entries that are not built in (empty when all are built in)."""
    regs = registries()
    out: dict[str, Any] = {}
    for kind, name in (("head", head), ("loss", loss), ("dataset", dataset)):
        if name and name not in ("none", ""):
            try:
                origin = regs[kind].origin(name)
            except VtrbenchError:
                continue
            if origin.get("kind") != "builtin":
                out[kind] = origin
    return out
