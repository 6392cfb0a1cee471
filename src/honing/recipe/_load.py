"""``load_recipe``, ``parse_recipe``, ``validate_recipe``: text or mapping in, a Recipe or every
problem (with its path and line) out."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from honing.recipe._convert import translate
from honing.recipe._errors import Invalid, Loc, Problem, RecipeError, show
from honing.recipe._paths import set_path
from honing.recipe._schema import Recipe
from honing.recipe._yaml import LineMap, line_of, read_yaml

_SECTIONS = ", ".join(Recipe.model_fields)


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate the YAML recipe at ``path``; relative data paths are resolved against
    its folder. Raises RecipeError (every problem, each with its line)."""
    source = str(path)
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = (f"no such recipe file {str(file.resolve())!r}; allowed: the path of a YAML recipe "
                   "(`honing init` writes an example)")
        raise RecipeError([Problem("", None, message)], source=source) from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError([Problem("", None, f"cannot read the recipe: {err}")], source=source) from None
    return parse_recipe(text, source=source, base_dir=file.resolve().parent)


def parse_recipe(
    text_or_mapping: str | Mapping[str, Any],
    *,
    source: str = "<recipe>",
    base_dir: str | os.PathLike[str] | None = None,
) -> Recipe:
    """A Recipe from YAML text or a mapping (e.g. ``Recipe.to_dict()``). Relative data paths are
    resolved against ``base_dir`` (default: the working directory). Raises RecipeError."""
    lines: LineMap = {}
    if isinstance(text_or_mapping, str):
        data, lines, problems = read_yaml(text_or_mapping)
        if problems:
            raise RecipeError(problems, source=source)
    elif isinstance(text_or_mapping, Mapping):
        data = _plain(text_or_mapping)
    else:
        raise RecipeError([Problem("", None, f"got {type(text_or_mapping).__name__}; allowed: YAML text or a "
                                             "mapping")], source=source)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"{type(data).__name__} {show(data)}"
        raise RecipeError([Problem("", 1 if lines else None, f"got {got}; allowed: a mapping with the sections "
                                                             f"{_SECTIONS}")], source=source)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        return Recipe.model_validate(data, context={"base_dir": base})
    except ValidationError as err:
        raise _error(translate(err, Recipe), lines, source) from None
    except Invalid as err:  # raised outside pydantic's wrapping (should not happen; kept safe)
        raise _error(err.items, lines, source) from None


def validate_recipe(path: str | os.PathLike[str]) -> list[str]:
    """The problems of the recipe at ``path``, one line each (``recipe.yaml:12: path: message``);
    [] when it is valid. Raises nothing for problems of the recipe."""
    try:
        load_recipe(path)
    except RecipeError as err:
        return err.lines()
    return []


def field_line(path: str | os.PathLike[str], field: str) -> int | None:
    """The 1-based line of ``field`` (a dotted path, or its nearest parent) in the recipe file at
    ``path``; None when the file or the field cannot be read."""
    try:
        _, lines, _ = read_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return line_of(lines, tuple(field.split(".")))


def apply_params(recipe: Recipe, params: Mapping[str, Any], *, source: str = "<params>") -> Recipe:
    """``Recipe.with_params``: set dotted paths on the resolved recipe and validate it again."""
    if not isinstance(params, Mapping):
        raise RecipeError([Problem("", None, f"got {show(params)}; allowed: a mapping of dotted path -> value")],
                          source=source)
    raw = recipe.to_dict()
    problems: list[Problem] = []
    for path, value in params.items():
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            problems.append(Problem(str(path), None, f"got the path {path!r}; allowed: a dotted path such as "
                                                     "'training.optimizer.lr'"))
            continue
        try:
            set_path(raw, path, _plain(value))
        except (KeyError, ValueError, IndexError):
            problems.append(Problem(path, None, f"cannot set {path!r}: a part of it is not a mapping in the recipe"))
    if problems:
        raise RecipeError(problems, source=source)
    return parse_recipe(raw, source=source)


def _error(items: list[tuple[Loc, str]], lines: LineMap, source: str) -> RecipeError:
    problems = [Problem(".".join(map(str, loc)), line_of(lines, loc), msg) for loc, msg in items]
    seen: set[Problem] = set()
    unique = [p for p in problems if not (p in seen or seen.add(p))]
    unique.sort(key=lambda p: (p.line is None, p.line or 0))
    return RecipeError(unique, source=source)


def _plain(value: Any) -> Any:
    """A deep copy as plain JSON-style values (tuples -> lists, mappings -> dicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return copy.deepcopy(value)

