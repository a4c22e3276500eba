"""One small generic registry, shared by datasets, heads and losses.

A new entry is one decorated definition (``@HEADS.register("camoe")``); an unknown
name gets a "did you mean" answer instead of a KeyError.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from vtrbench.errors import VtrbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lowercase names to objects of one kind (``kind`` is used in messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if name != name.lower():
            raise ValueError(f"{self.kind} names are lowercase: {name!r}")

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise VtrbenchError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    """'unknown head 'camo'; did you mean 'camoe'? (available: ...)'"""
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (available: {', '.join(available)})"
