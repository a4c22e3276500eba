"""One small generic registry, shared by datasets, heads and losses.

A new entry is one decorated definition (``@HEADS.register("camoe")``); an unknown
name gets a "did you mean" answer instead of a KeyError. Each entry remembers where it
came from (built in, a plugin file or module, an installed package's entry point), so
that results can say which version of a method made them.

Names that are not built in are looked up lazily in the registry's entry-point group
(``vtrbench.heads``, ``vtrbench.losses``, ``vtrbench.datasets``) the first time they are
asked for: installed plugins cost nothing until they are used.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
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


# Set by vtrbench.plugins while a plugin is being imported: every registration made meanwhile
# is attributed to it (and a clash with an existing name becomes that plugin's error).
_current_plugin: dict[str, Any] | None = None


class Registry(Generic[T]):
    """Maps lowercase names to objects of one kind (``kind`` is used in messages)."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, dict[str, Any]] = {}
        self._builtins_loader: Callable[[], None] | None = None

    def builtins(self, loader: Callable[[], None]) -> None:
        """Say how to import the built-in entries (lazily, to keep ``--help`` fast)."""
        self._builtins_loader = loader

    def load_builtins(self) -> None:
        if self._builtins_loader is not None:
            loader, self._builtins_loader = self._builtins_loader, None
            loader()

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
            from vtrbench.plugins import load_entry_point

            load_entry_point(self, name)
        try:
            return self._entries[name]
        except KeyError:
            raise VtrbenchError(unknown_name_message(self.kind, name, self.available())) from None

    def names(self) -> list[str]:
        """Registered names (built-ins and plugins loaded so far)."""
        self.load_builtins()
        return sorted(self._entries)

    def available(self) -> list[str]:
        """Registered names plus installed entry points not loaded yet (nothing is imported)."""
        from vtrbench.plugins import entry_point_names

        extra = entry_point_names(self.entry_point_group) if self.entry_point_group else []
        # An installed entry point whose name could not be registered is not offered (print_registry
        # lists it as unusable, with the reason).
        return sorted(set(self.names()) | {n for n in extra if name_problem(n) is None})

    def origin(self, name: str) -> dict[str, Any]:
        """Where ``name`` came from: ``{"kind": "builtin"}`` or the plugin's name/version/source/sha256."""
        self.get(name)
        return dict(self._origins.get(name, BUILTIN))

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


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    """'unknown head 'camo'; did you mean 'camoe'? (available: ...)'"""
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (available: {', '.join(available)})"
