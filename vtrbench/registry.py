"""One small generic registry, shared by datasets, heads and losses.

A new entry is one decorated definition (``@HEADS.register("camoe")``); an unknown
name gets a "did you mean" answer instead of a KeyError. Each entry remembers where it
came from (built in, a plugin file or module, an installed package's entry point), so
that results can say which version of a method made them.

Names that are not built in are looked up lazily in the registry's entry-point group
(``vtrbench.heads``, ``vtrbench.losses``, ``vtrbench.datasets``) the first time they are
asked for: installed plugins cost nothing until they are used.

Ground layer: this module imports no other vtrbench module than :mod:`vtrbench.errors`. The
built-in entries are named by module path (``"vtrbench.heads.camoe"``) and imported by
:meth:`Registry.load_builtins` only when a name is first asked for (as timm's model registry and
lm-evaluation-harness's ``"module:object"`` placeholders do), so that a family's ``base.py`` never
imports its concrete modules and nothing here imports a layer above.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import re
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from vtrbench.errors import VtrbenchError

T = TypeVar("T")

BUILTIN: dict[str, Any] = {"kind": "builtin"}

# Registered names become parts of file names (``results/DATASET/DATASET.HEAD.LOSS.HASH.sN.json``) and
# of run ids split on ".", so they are plain identifiers: a lowercase letter or digit first, then
# lowercase letters, digits, "_" or "-"; at most NAME_MAX characters. No "/", "..", "." or blanks.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
NAME_MAX = 40
NAME_RULE = f"[a-z0-9][a-z0-9_-]* (lowercase letters, digits, '_' and '-'), at most {NAME_MAX} characters"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a registered name (None when it can)."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not NAME_PATTERN.fullmatch(name) or len(name) > NAME_MAX:
        return f"must match {NAME_RULE} (this one has {len(name)})"
    return None


# Set while a plugin is being imported (:func:`import_with_origin`): every registration made meanwhile
# is attributed to it (and a clash with an existing name becomes that plugin's error).
_current_plugin: dict[str, Any] | None = None

# Every registry by kind ("head", "loss", "dataset"), filled as the families' base modules create them.
_REGISTRIES: dict[str, Registry[Any]] = {}
# The module that creates each family's registry: imported (lazily) when all registries are needed.
FAMILY_MODULES = {
    "head": "vtrbench.heads.base",
    "loss": "vtrbench.losses.base",
    "dataset": "vtrbench.datasets.base",
}
# Every plugin loaded in this process, by its source, in load order (vtrbench.plugins reads it).
LOADED: dict[str, dict[str, Any]] = {}


class Registry(Generic[T]):
    """Maps lowercase names to objects of one kind (``kind`` is used in messages)."""

    def __init__(
        self, kind: str, entry_point_group: str | None = None, builtin_modules: Iterable[str] = ()
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, dict[str, Any]] = {}
        # modules whose import registers the built-in entries; imported on first use, which keeps
        # ``--help`` fast and lets a family's base module name its concrete modules without importing them
        self._builtin_modules: tuple[str, ...] = tuple(builtin_modules)
        _REGISTRIES.setdefault(kind, self)

    def load_builtins(self) -> None:
        if self._builtin_modules:
            modules, self._builtin_modules = self._builtin_modules, ()
            for module in modules:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` as ``name``; the name is checked here, for built-ins and plugins
        alike (see :data:`NAME_PATTERN`), so that no entry can name a file outside ``--results``."""
        origin = dict(_current_plugin) if _current_plugin is not None else None
        problem = name_problem(name)
        if problem is not None:
            shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
            who = f"plugin {origin['source']} registers" if origin is not None else "cannot register"
            raise VtrbenchError(f"{who} {self.kind} name {shown}: a {self.kind} name {problem}")

        def decorator(obj: T) -> T:
            if not callable(obj):
                who = f"plugin {origin['source']}: " if origin is not None else ""
                raise VtrbenchError(
                    f"{who}{self.kind} {name!r} must be registered on a class or factory, got "
                    f"{type(obj).__name__}"
                )
            if name in self._entries and self._entries[name] is not obj:
                if origin is not None:
                    was = self._origins.get(name, BUILTIN)
                    where = "built in" if was.get("kind") == "builtin" else f"from {was.get('source')}"
                    raise VtrbenchError(
                        f"plugin {origin['source']} registers {self.kind} {name!r}, which is already "
                        f"registered ({where}): give it another name"
                    )
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            module = str(getattr(obj, "__module__", ""))
            if origin is not None:
                self._origins[name] = origin
            elif module.startswith("vtrbench.") or module == "vtrbench":
                self._origins[name] = dict(BUILTIN)
            else:  # registered from the user's own Python code
                self._origins[name] = {"kind": "python", "source": module}
            return obj

        return decorator

    def get(self, name: str) -> T:
        self.load_builtins()
        if not isinstance(name, str):
            got = f"{type(name).__name__} {name!r}"[:80]
            raise VtrbenchError(f"a {self.kind} name must be a string, got {got}")
        if name not in self._entries and self.entry_point_group is not None:
            load_entry_point(self, name)
        try:
            return self._entries[name]
        except KeyError:
            raise VtrbenchError(unknown_name_message(self.kind, name, self.available())) from None

    def names(self) -> list[str]:
        """Registered names (built-ins and plugins loaded so far)."""
        self.load_builtins()
        return sorted(self._entries)

    def names_for(self, obj: object) -> list[str]:
        """The names under which ``obj`` itself is registered (loaded entries only)."""
        return [n for n, f in self._entries.items() if f is obj]

    def available(self) -> list[str]:
        """Registered names plus installed entry points not loaded yet (nothing is imported)."""
        extra = entry_point_names(self.entry_point_group) if self.entry_point_group else []
        # An installed entry point whose name could not be registered is not offered (print_registry
        # lists it as unusable, with the reason).
        return sorted(set(self.names()) | {n for n in extra if name_problem(n) is None})

    def origin(self, name: str) -> dict[str, Any]:
        """Where ``name`` came from: ``{"kind": "builtin"}`` or the plugin's name/version/source/sha256."""
        self.get(name)
        return dict(self._origins.get(name, BUILTIN))

    def construct(self, name: str, **kwargs: Any) -> T:
        """``self.get(name)(**kwargs)``; a plugin's factory failing (any exception) is one line naming
        the plugin. Built-ins' own errors pass through unchanged (a bug in vtrbench must not be hidden)."""
        factory = self.get(name)
        origin = self.origin(name)
        if origin.get("kind") == "builtin":
            return factory(**kwargs)
        try:
            return factory(**kwargs)
        except VtrbenchError as e:
            raise VtrbenchError(f"plugin {self.kind} {name!r} ({origin.get('source')}): {e}") from None
        except Exception as e:  # noqa: BLE001 - user code
            who = f"plugin {self.kind} {name!r} ({origin.get('source')})"
            raise VtrbenchError(f"{who} failed to build: {type(e).__name__}: {e}"[:500]) from None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.names():
            return True
        try:
            self.get(name)
        except VtrbenchError:
            return False
        return True


#: How alike (difflib's ratio, 2 x matching characters / both lengths) a name must be to be suggested:
#: difflib's own default. 0.5 let "foo" suggest "xpool" (the "oo": 4 of 8 characters).
SUGGEST_CUTOFF = 0.6


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    """'unknown head 'camo'; did you mean 'camoe'? (available: ...)'"""
    close = difflib.get_close_matches(name, available, n=1, cutoff=SUGGEST_CUTOFF)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (available: {', '.join(available)})"


# ------------------------------------------------------------------ the registries of all families


def registry_of(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (head, loss, dataset); importing only that family keeps
    ``vtrbench datasets list`` free of torch."""
    importlib.import_module(FAMILY_MODULES[kind])
    return _REGISTRIES[kind]


def registries() -> dict[str, Registry[Any]]:
    """Every family's registry, by kind."""
    return {kind: registry_of(kind) for kind in FAMILY_MODULES}


def load_all_builtins() -> None:
    """Built-ins first, so that a plugin reusing a built-in name is refused instead of silently
    shadowing it (or breaking the built-in's own registration later)."""
    for reg in registries().values():
        reg.load_builtins()


def snapshot() -> dict[str, set[str]]:
    """The names registered so far, by kind (to find what a plugin's import added)."""
    return {kind: set(reg._entries) for kind, reg in registries().items()}


def new_entries(before: dict[str, set[str]]) -> list[str]:
    """``kind:name`` of every entry registered since :func:`snapshot` returned ``before``."""
    return [
        f"{kind}:{name}"
        for kind, reg in registries().items()
        for name in sorted(set(reg._entries) - before[kind])
    ]


def set_origins(entries: list[str], origin: dict[str, Any]) -> None:
    """Record ``origin`` as where each ``kind:name`` entry came from."""
    regs = registries()
    for entry in entries:
        kind, name = entry.split(":", 1)
        regs[kind]._origins[name] = dict(origin)


def sha256_of(path: Path | None) -> str | None:
    """The sha256 of a plugin's source file (None when there is no file)."""
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_with_origin(origin: dict[str, Any], do_import: Callable[[], Any]) -> Any:
    """Run ``do_import`` with every registration attributed to ``origin``; any failure inside the
    plugin's code is one VtrbenchError line naming it."""
    global _current_plugin
    previous = _current_plugin
    _current_plugin = origin
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
        _current_plugin = previous


# ------------------------------------------------------------------ entry points (installed plugins)


def entry_points(group: str) -> list[metadata.EntryPoint]:
    """The installed entry points of ``group`` (nothing is imported)."""
    return list(metadata.entry_points(group=group))


def entry_point_names(group: str | None) -> list[str]:
    """Names declared by installed packages in ``group`` (nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group)}) if group else []


def entry_point_origin(ep: metadata.EntryPoint) -> dict[str, Any]:
    """The provenance record of an entry point: its distribution's name and version."""
    dist = ep.dist
    return {
        "kind": "entry point",
        "name": str(dist.name) if dist else ep.value.split(":")[0].strip(),
        "version": str(dist.version) if dist else None,
        "source": f"{ep.group}:{ep.name} = {ep.value}",
    }


def describe_entry_point(group: str, name: str) -> dict[str, Any] | None:
    """Where an installed, not yet loaded, entry ``name`` would come from (nothing is imported)."""
    eps = [ep for ep in entry_points(group) if ep.name == name]
    return entry_point_origin(eps[0]) if eps else None


def load_entry_point(reg: Registry[Any], name: str) -> None:
    """Import the installed plugin that declares ``name`` in ``reg``'s group, if any."""
    eps = [ep for ep in entry_points(reg.entry_point_group or "") if ep.name == name]
    if not eps:
        return
    if len(eps) > 1:
        dists = ", ".join(sorted(str(ep.dist.name) if ep.dist else "?" for ep in eps))
        raise VtrbenchError(f"{reg.kind} {name!r} is declared by several installed plugins ({dists})")
    load_all_builtins()
    ep = eps[0]
    module_name = ep.value.split(":")[0].strip()
    origin = entry_point_origin(ep)
    before = snapshot()
    obj = import_with_origin(origin, ep.load)
    module = sys.modules.get(module_name)
    origin["sha256"] = sha256_of(Path(module.__file__)) if module is not None and module.__file__ else None
    if name not in reg._entries and callable(obj) and not isinstance(obj, type(sys)):
        import_with_origin(origin, lambda: reg.register(name)(obj))
    if name not in reg._entries:
        raise VtrbenchError(
            f"plugin {origin['name']} declares {reg.kind} {name!r} ({ep.value}) but registers no "
            f"such {reg.kind}"
        )
    entries = new_entries(before) or [f"{reg.kind}:{name}"]
    set_origins(entries, origin)
    LOADED[origin["source"]] = {**origin, "entries": entries}
