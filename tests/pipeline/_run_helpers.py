"""Small recipes for the pipeline and CLI tests: the recipe tests' BASE (iris, an MLP, a
few trials) made single-threaded and short, changed by dotted paths."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

_RECIPE_TESTS = str(Path(__file__).resolve().parent.parent / "recipe")
if _RECIPE_TESTS not in sys.path:
    sys.path.insert(0, _RECIPE_TESTS)

from _recipe_helpers import BASE  # noqa: E402

from honing.tune import StudyResult, load_study_result  # noqa: E402

_TINY = yaml.safe_load(BASE)
_TINY["training"].update(epochs=3, threads=1)
_TINY["tune"]["cv"] = None  # the validation split: fast (tune.cv: auto would cross-validate iris)
_TINY["tune"]["warm_start"] = False  # sibling runs in one tmp folder stay independent (tests/tune/test_warm_start.py)


def tiny(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """BASE with 3 epochs and 1 thread, then ``{"dotted.path": value}`` changes (``None`` deletes
    the key); a dotted path walks the sections, so set ``tune.space`` as a whole."""
    recipe = copy.deepcopy(_TINY)
    for path, value in (changes or {}).items():
        *parents, key = path.split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def results_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def journal_of(out: Path, name: str = "tiny") -> StudyResult:
    """The study as its journal in the output folder records it."""
    return load_study_result(str(out / "study.journal"), name)
