"""Name -> constructor registries, filled explicitly (no import side effects)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from honing._core._errors import ConfigError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    description: str = ""
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories. ``kind`` is what the names denote ("model", "optimizer", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T],
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        **meta: Any,
    ) -> Callable[..., T]:
        key = name.lower()
        if key in self._entries or key in self._aliases:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[key] = Entry(key, factory, description, tuple(aliases), dict(meta))
        for alias in aliases:
            self._aliases[alias.lower()] = key
        return factory

    def entry(self, name: str) -> Entry[T]:
        if not isinstance(name, str):
            raise UnknownNameError(
                f"{self.kind} name must be a string, got {type(name).__name__} {name!r}; "
                f"allowed: {', '.join(self.names())}"
            )
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            close = difflib.get_close_matches(key, self.names() + list(self._aliases), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Allowed: {', '.join(self.names())}"
            )
        return self._entries[key]

    def get(self, name: str) -> Callable[..., T]:
        return self.entry(name).factory

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
