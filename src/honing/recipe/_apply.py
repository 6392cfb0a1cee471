"""Validating a mapping as a recipe model, and ``Recipe.with_params``.

Below ``_schema`` on purpose: the functions take the model class (or an instance of it) as an
argument, so the schema imports this module and nothing here imports the schema.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from honing.recipe._convert import translate
from honing.recipe._errors import Invalid, Loc, Problem, RecipeError, show
from honing.recipe._paths import set_path
from honing.recipe._yaml import LineMap, line_of

M = TypeVar("M", bound=BaseModel)


def validate_mapping(model: type[M], data: dict[str, Any], *, lines: LineMap, source: str,
                     base_dir: str | os.PathLike[str] | None) -> M:
    """``model`` validated from ``data``, relative paths resolved against ``base_dir`` (default:
    the working directory); every problem, with its line where ``lines`` knows it, in one
    RecipeError."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        return model.model_validate(data, context={"base_dir": base})
    except ValidationError as err:
        raise error_of(translate(err, model), lines, source) from None
    except Invalid as err:  # raised outside pydantic's wrapping (should not happen; kept safe)
        raise error_of(err.items, lines, source) from None


def apply_params(recipe: M, params: Mapping[str, Any], *, source: str = "<params>") -> M:
    """``Recipe.with_params``: set dotted paths on the resolved recipe and validate it again."""
    if not isinstance(params, Mapping):
        raise RecipeError([Problem("", None, f"got {show(params)}; allowed: a mapping of dotted path -> value")],
                          source=source)
    raw = recipe.to_dict()  # type: ignore[attr-defined]
    problems: list[Problem] = []
    for path, value in params.items():
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            problems.append(Problem(str(path), None, f"got the path {path!r}; allowed: a dotted path such as "
                                                     "'training.optimizer.lr'"))
            continue
        try:
            set_path(raw, path, plain(value))
        except (KeyError, ValueError, IndexError):
            problems.append(Problem(path, None, f"cannot set {path!r}: a part of it is not a mapping in the recipe"))
    if problems:
        raise RecipeError(problems, source=source)
    return validate_mapping(type(recipe), raw, lines={}, source=source, base_dir=None)


def error_of(items: list[tuple[Loc, str]], lines: LineMap, source: str) -> RecipeError:
    problems = [Problem(".".join(map(str, loc)), line_of(lines, loc), msg) for loc, msg in items]
    seen: set[Problem] = set()
    unique = [p for p in problems if not (p in seen or seen.add(p))]
    unique.sort(key=lambda p: (p.line is None, p.line or 0))
    return RecipeError(unique, source=source)


def plain(value: Any) -> Any:
    """A deep copy as plain JSON-style values (tuples -> lists, mappings -> dicts)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return copy.deepcopy(value)
