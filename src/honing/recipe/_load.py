"""``load_recipe``, ``parse_recipe``, ``validate_recipe``: text or mapping in, a Recipe or every
problem (with its path and line) out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from honing.recipe._apply import plain, validate_mapping
from honing.recipe._errors import Problem, RecipeError, show
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
        data = plain(text_or_mapping)
    else:
        raise RecipeError([Problem("", None, f"got {type(text_or_mapping).__name__}; allowed: YAML text or a "
                                             "mapping")], source=source)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"{type(data).__name__} {show(data)}"
        raise RecipeError([Problem("", 1 if lines else None, f"got {got}; allowed: a mapping with the sections "
                                                             f"{_SECTIONS}")], source=source)
    return validate_mapping(Recipe, data, lines=lines, source=source, base_dir=base_dir)


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
