"""``RecipeError``: every problem of a recipe at once, each with its field path and YAML line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from honing._core import ConfigError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: the dotted field ``path`` (list items as ``.0``), the
    1-based YAML ``line`` (None when the recipe did not come from YAML text) and a ``message``
    saying what was got and what is allowed."""

    path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RecipeError(ConfigError):
    """A recipe that cannot be used; ``problems`` lists every problem found, ``str()`` gives one
    line per problem: ``recipe.yaml:12: training.optimizer.lr: got 'abc'; allowed: a number``."""

    def __init__(self, problems: Sequence[Problem], *, source: str = "<recipe>") -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [p.format(self.source) for p in self.problems]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.problems, self.source))


def _rebuild(problems: list[Problem], source: str) -> RecipeError:
    return RecipeError(problems, source=source)


class Invalid(ValueError):
    """Raised inside schema validators: problems at paths relative to the validated object.

    Pydantic wraps a ValueError into an error whose ``ctx["error"]`` is the exception itself, so
    the problems come back out with their own sub-paths (``model.foo``, not just ``model``).
    """

    def __init__(self, items: Iterable[tuple[Loc, str]]) -> None:
        self.items: list[tuple[Loc, str]] = list(items)
        super().__init__("; ".join(f"{'.'.join(map(str, loc)) or '<root>'}: {msg}" for loc, msg in self.items))


def show(value: Any, limit: int = 80) -> str:
    """A value as the messages quote it (repr, shortened)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_key(key: Any, allowed: Iterable[str], *, what: str = "key", owner: str = "") -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    of = f" for {owner}" if owner else ""
    return f"unknown {what} {key!r}{of}{hint}; allowed: {', '.join(allowed) if allowed else '(none)'}"


def unknown_name(value: Any, allowed: Iterable[str], *, kind: str) -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(value), allowed, n=3, cutoff=0.5) if isinstance(value, str) else []
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {kind} {show(value)}{hint}; allowed: {', '.join(allowed)}"
