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
an import error, a name that clashes with an existing one, or (``check_head`` /
``check_loss``) a head or loss that returns the wrong shape or non-finite values on a
tiny dry batch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from vtrbench import registry as _registry
from vtrbench.errors import VtrbenchError

ENTRY_POINT_GROUPS = {"head": "vtrbench.heads", "loss": "vtrbench.losses", "dataset": "vtrbench.datasets"}

# Every plugin loaded in this process, by its source, in load order.
_LOADED: dict[str, dict[str, Any]] = {}


def loaded_plugins() -> list[dict[str, Any]]:
    """The plugins loaded so far (name, version, kind, source, sha256, entries)."""
    return [dict(p) for p in _LOADED.values()]


def _sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_all_builtins() -> None:
    # Built-ins first, so that a plugin reusing a built-in name is refused instead of
    # silently shadowing it (or breaking the built-in's own registration later).
    from vtrbench.datasets.base import DATASETS
    from vtrbench.heads.base import HEADS
    from vtrbench.losses.base import LOSSES

    for reg in (HEADS, LOSSES, DATASETS):
        reg.load_builtins()


def _import_with_origin(origin: dict[str, Any], do_import: Any) -> Any:
    previous = _registry._current_plugin
    _registry._current_plugin = origin
    try:
        return do_import()
    except VtrbenchError:
        raise
    except SystemExit as e:
        raise VtrbenchError(f"plugin {origin['source']} exited while being imported ({e.code})") from None
    except Exception as e:  # noqa: BLE001 - any failure inside user code is reported as the plugin's
        raise VtrbenchError(
            f"plugin {origin['source']} failed to import: {type(e).__name__}: {e}".rstrip()
        ) from None
    finally:
        _registry._current_plugin = previous


def load_plugin(spec: str | Path) -> dict[str, Any]:
    """Import a plugin file (``path/to/file.py``) or module (``package.module``) once.

    Returns its provenance record. Raises VtrbenchError (one line, naming the plugin) when the
    file is missing, the import fails or a name clashes.
    """
    _load_all_builtins()
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
            "sha256": _sha256(path),
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

    before = _snapshot()
    module = _import_with_origin(origin, do_import)
    if origin["kind"] == "module":
        origin["sha256"] = _sha256(Path(module.__file__)) if getattr(module, "__file__", None) else None
    origin["version"] = origin["version"] or getattr(module, "__version__", None)
    entries = _new_entries(before)
    if not entries:
        raise VtrbenchError(
            f"plugin {text} registered nothing (use @register_head / @register_loss / @register_dataset)"
        )
    record = {**origin, "entries": entries}
    # The record the registry keeps per entry must carry the final version and hash too.
    _set_origins(entries, {k: v for k, v in record.items() if k != "entries"})
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


def registry_of(kind: str) -> Any:
    """The registry of ``kind`` (head, loss, dataset); importing only that one keeps
    ``vtrbench datasets list`` free of torch."""
    if kind == "dataset":
        from vtrbench.datasets.base import DATASETS

        return DATASETS
    if kind == "head":
        from vtrbench.heads.base import HEADS

        return HEADS
    from vtrbench.losses.base import LOSSES

    return LOSSES


def _registries() -> dict[str, Any]:
    return {kind: registry_of(kind) for kind in ("head", "loss", "dataset")}


def _snapshot() -> dict[str, set[str]]:
    return {kind: set(reg._entries) for kind, reg in _registries().items()}


def _new_entries(before: dict[str, set[str]]) -> list[str]:
    return [
        f"{kind}:{name}"
        for kind, reg in _registries().items()
        for name in sorted(set(reg._entries) - before[kind])
    ]


def _set_origins(entries: list[str], origin: dict[str, Any]) -> None:
    regs = _registries()
    for entry in entries:
        kind, name = entry.split(":", 1)
        regs[kind]._origins[name] = dict(origin)


# ------------------------------------------------------------------ entry points


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=group))


def entry_point_names(group: str | None) -> list[str]:
    """Names declared by installed packages in ``group`` (nothing is imported)."""
    return sorted({ep.name for ep in _entry_points(group)}) if group else []


def _entry_point_origin(ep: metadata.EntryPoint) -> dict[str, Any]:
    dist = ep.dist
    return {
        "kind": "entry point",
        "name": str(dist.name) if dist else ep.value.split(":")[0].strip(),
        "version": str(dist.version) if dist else None,
        "source": f"{ep.group}:{ep.name} = {ep.value}",
    }


def describe_entry_point(group: str, name: str) -> dict[str, Any] | None:
    """Where an installed, not yet loaded, entry ``name`` would come from (nothing is imported)."""
    eps = [ep for ep in _entry_points(group) if ep.name == name]
    return _entry_point_origin(eps[0]) if eps else None


def load_entry_point(reg: Any, name: str) -> None:
    """Import the installed plugin that declares ``name`` in ``reg``'s group, if any."""
    eps = [ep for ep in _entry_points(reg.entry_point_group) if ep.name == name]
    if not eps:
        return
    if len(eps) > 1:
        dists = ", ".join(sorted(str(ep.dist.name) if ep.dist else "?" for ep in eps))
        raise VtrbenchError(f"{reg.kind} {name!r} is declared by several installed plugins ({dists})")
    _load_all_builtins()
    ep = eps[0]
    module_name = ep.value.split(":")[0].strip()
    origin = _entry_point_origin(ep)
    before = _snapshot()
    obj = _import_with_origin(origin, ep.load)
    module = sys.modules.get(module_name)
    origin["sha256"] = _sha256(Path(module.__file__)) if module is not None and module.__file__ else None
    if name not in reg._entries and callable(obj) and not isinstance(obj, type(sys)):
        _import_with_origin(origin, lambda: reg.register(name)(obj))
    if name not in reg._entries:
        raise VtrbenchError(
            f"plugin {origin['name']} declares {reg.kind} {name!r} ({ep.value}) but registers no "
            f"such {reg.kind}"
        )
    entries = _new_entries(before) or [f"{reg.kind}:{name}"]
    _set_origins(entries, origin)
    _LOADED[origin["source"]] = {**origin, "entries": entries}


# ------------------------------------------------------------------ dry runs (before training starts)


def dry_batches(embed_dim: int, n_text: int = 3, n_video: int = 2, words: int = 6, frames: int = 4) -> Any:
    """Tiny random text and video batches with every field a head may read (see heads/base.py)."""
    import torch

    g = torch.Generator().manual_seed(0)
    token_mask = torch.ones(n_text, words, dtype=torch.bool)
    token_mask[0, words - 2 :] = False  # one shorter caption: padding must be handled
    eot = token_mask.sum(1) - 1
    text = {
        "tokens": torch.randn(n_text, words, embed_dim, generator=g),
        "token_mask": token_mask,
        "eot": eot,
        "noun_mask": torch.zeros(n_text, words, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True),
        "verb_mask": torch.zeros(n_text, words, dtype=torch.bool).index_fill_(1, torch.tensor([2]), True),
    }
    frame_mask = torch.ones(n_video, frames, dtype=torch.bool)
    frame_mask[-1, frames - 1 :] = False
    video = {"frames": torch.randn(n_video, frames, embed_dim, generator=g), "frame_mask": frame_mask}
    return text, video


# Dry batch sizes (captions x videos): not square and not equal to each other, so that a head that
# confuses the two axes, or returns a shape that only fits one batch size, is caught before training.
DRY_SIZES = ((3, 2), (5, 5))


def check_head(head: Any, name: str, embed_dim: int) -> None:
    """Dry runs of a head that is not built in, before any work: on (3 x 2) and (5 x 5) batches the
    logits must have that shape and be finite, a backward pass must reach trainable parameters
    (frozen parameters or detached logits would fail at the first step), and ``describe()`` must be
    plain JSON data with finite numbers (it goes into the config hash and the result file).

    The global RNG is left as it was (a head with dropout draws from it), so a run's numbers do not
    depend on whether the check ran.
    """
    import torch

    from vtrbench.heads.base import HEADS

    origin = HEADS.origin(name)
    if origin.get("kind") == "builtin":
        return
    who = f"plugin head {name!r} ({origin.get('source')})"
    check_describe(head, who)
    was_training = head.training
    trainable = bool(getattr(head, "trainable", True))
    params = [p for p in head.parameters() if p.requires_grad] if trainable else []
    if trainable and not params:
        raise VtrbenchError(f"{who} has no trainable parameters (all frozen): nothing would train")
    buffers = {k: b.detach().clone() for k, b in head.named_buffers()}  # e.g. BatchNorm statistics
    try:
        with torch.random.fork_rng(devices=[]):
            for n_text, n_video in DRY_SIZES:
                text, video = dry_batches(embed_dim, n_text=n_text, n_video=n_video)
                _dry_step(head, who, text, video, params)
    finally:
        head.train(was_training)
        with torch.no_grad():
            for k, b in head.named_buffers():
                if k in buffers and b.shape == buffers[k].shape:
                    b.copy_(buffers[k])


def _dry_step(head: Any, who: str, text: Any, video: Any, params: list[Any]) -> None:
    import torch

    nt, nv = text["tokens"].shape[0], video["frames"].shape[0]
    try:
        with torch.enable_grad():
            logits, aux = head.training_logits(text, video)
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(
            f"{who} failed on a dry batch: {type(e).__name__}: {e} ({nt} captions x {nv} videos)"
        ) from None
    check_logit_shape(logits, nt, nv, who)
    if not torch.isfinite(logits).all():
        raise VtrbenchError(f"{who} returned non-finite scores (NaN or inf) on a dry batch")
    for a in aux or []:
        if not isinstance(a, torch.Tensor) or tuple(a.shape) != (nt, nv) or not torch.isfinite(a).all():
            shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise VtrbenchError(f"{who} returned a bad auxiliary logit matrix (shape {shape})")
    if not params:
        return
    if not logits.requires_grad:
        raise VtrbenchError(
            f"{who} returned logits without a gradient (detached, or computed only from frozen "
            "parameters): training could not update it"
        )
    try:
        grads = torch.autograd.grad(logits.float().sum(), params, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - user code (e.g. an in-place op on a leaf)
        raise VtrbenchError(f"{who} failed in a dry backward pass: {type(e).__name__}: {e}") from None
    if all(g is None for g in grads):
        raise VtrbenchError(f"{who}: no trainable parameter receives a gradient from its logits")


def check_logit_shape(logits: Any, n_text: int, n_video: int, who: str) -> None:
    """``logits`` must be a (n_text, n_video) tensor (used on dry batches and on every training step)."""
    import torch

    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (n_text, n_video):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise VtrbenchError(
            f"{who} returned logits of shape {shape} for {n_text} captions x {n_video} videos"
        )


def check_describe(head: Any, who: str) -> None:
    """``head.describe()`` must be a JSON object of plain data with finite numbers."""
    import json

    try:
        described = head.describe()
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(f"{who}: describe() failed: {type(e).__name__}: {e}") from None
    if not isinstance(described, dict):
        kind = type(described).__name__
        raise VtrbenchError(f"{who}: describe() must return a dict of options, got {kind}")
    try:
        json.dumps(described, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise VtrbenchError(
            f"{who}: describe() must return plain JSON data (str, int, finite float, bool, None, lists, "
            f"dicts): {e}"
        ) from None


def check_loss(loss_fn: Any, name: str) -> None:
    """One dry call of a loss that is not built in: a finite scalar with a gradient."""
    import torch

    from vtrbench.losses.base import LOSSES

    origin = LOSSES.origin(name)
    if origin.get("kind") == "builtin":
        return
    who = f"plugin loss {name!r} ({origin.get('source')})"
    logits = (torch.randn(4, 4, generator=torch.Generator().manual_seed(0)) * 10).requires_grad_(True)
    try:
        value = loss_fn(logits)
    except Exception as e:  # noqa: BLE001 - user code
        raise VtrbenchError(f"{who} failed on a dry (4 x 4) logit matrix: {type(e).__name__}: {e}") from None
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        raise VtrbenchError(f"{who} must return a scalar tensor, got {getattr(value, 'shape', type(value))}")
    if not torch.isfinite(value):
        raise VtrbenchError(f"{who} returned {value.item()} on a dry (4 x 4) logit matrix")
    if not value.requires_grad:
        raise VtrbenchError(f"{who} returned a value without a gradient (detached from the logits)")


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


def construct(reg: Any, name: str, **kwargs: Any) -> Any:
    """``reg.get(name)(**kwargs)``; a plugin's factory failing (any exception) is one line naming the
    plugin. Built-ins' own errors pass through unchanged (a bug in vtrbench must not be hidden)."""
    factory = reg.get(name)
    origin = reg.origin(name)
    if origin.get("kind") == "builtin":
        return factory(**kwargs)
    try:
        return factory(**kwargs)
    except VtrbenchError as e:
        raise VtrbenchError(f"plugin {reg.kind} {name!r} ({origin.get('source')}): {e}") from None
    except Exception as e:  # noqa: BLE001 - user code
        who = f"plugin {reg.kind} {name!r} ({origin.get('source')})"
        raise VtrbenchError(f"{who} failed to build: {type(e).__name__}: {e}"[:500]) from None


def head_who(name: str) -> str:
    """How errors name a head: ``head 'meanp'`` or ``plugin head 'x' (/path/x.py)``."""
    from vtrbench.heads.base import HEADS

    try:
        origin = HEADS.origin(name)
    except VtrbenchError:
        return f"head {name!r}"
    if origin.get("kind") == "builtin":
        return f"head {name!r}"
    return f"plugin head {name!r} ({origin.get('source')})"


def provenance_for(head: str | None = None, loss: str | None = None, dataset: str | None = None) -> dict:
    """The origins of the named entries that are not built in (empty when all are built in)."""
    regs = _registries()
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
