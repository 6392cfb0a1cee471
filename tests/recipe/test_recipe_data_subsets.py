"""``data.classes`` and ``data.train_fraction``: defaults, round trip, load arguments, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from _recipe_helpers import BASE, errors_of, line_of

from honing.pipeline._build import load_data
from honing.recipe import load_args, parse_recipe

ANCHOR = "  test_size: 0.2\n"


def _with(lines: str) -> str:
    assert ANCHOR in BASE
    return BASE.replace(ANCHOR, ANCHOR + lines + "\n", 1)


def test_defaults_change_nothing() -> None:
    recipe = parse_recipe(BASE)
    assert recipe.data.classes is None and recipe.data.train_fraction is None
    args = load_args(recipe.to_dict())
    assert "classes" not in args and "train_fraction" not in args


def test_round_trip_and_load_arguments() -> None:
    recipe = parse_recipe(_with("  classes: [virginica, 0]\n  train_fraction: 0.5"))
    assert recipe.data.classes == ["virginica", 0] and recipe.data.train_fraction == 0.5
    d = recipe.to_dict()
    assert d["data"]["classes"] == ["virginica", 0] and d["data"]["train_fraction"] == 0.5
    assert parse_recipe(d) == recipe
    args = load_args(d)
    assert args["classes"] == ["virginica", 0] and args["train_fraction"] == 0.5
    data = load_data(recipe)
    assert data.class_names == ["virginica", "setosa"] and data.num_outputs == 2
    assert data.info["train_fraction"]["rows_after"] == round(data.info["train_fraction"]["rows_before"] / 2)


def test_train_fraction_of_one_is_allowed() -> None:
    assert parse_recipe(_with("  train_fraction: 1")).data.train_fraction == 1.0


# (id, lines added to the data section, expected path, snippet of the offending line, words the message has)
CASES = [
    ("empty classes", "  classes: []", "data.classes", "classes:", ["got []", "non-empty list"]),
    ("classes not a list", "  classes: 5", "data.classes", "classes:", ["got 5", "list"]),
    ("repeated class", "  classes: [1, 2, 1]", "data.classes.2", "classes:", ["got 1 again", "unique"]),
    ("float class", "  classes: [1, 2.5]", "data.classes.1", "classes:", ["got 2.5", "an integer", "a class name"]),
    ("bool class", "  classes: [true]", "data.classes.0", "classes:", ["got True"]),
    ("empty class name", "  classes: ['']", "data.classes.0", "classes:", ["non-empty string"]),
    ("classes of a regression", "  task: regression\n  classes: [1]", "data.classes", "classes:",
     ["classification only"]),
    ("zero fraction", "  train_fraction: 0", "data.train_fraction", "train_fraction:", ["got 0", "> 0 and <= 1"]),
    ("fraction above one", "  train_fraction: 1.5", "data.train_fraction", "train_fraction:", ["got 1.5"]),
    ("fraction text", "  train_fraction: tenth", "data.train_fraction", "train_fraction:", ["got 'tenth'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_values_name_path_and_line(case: tuple) -> None:
    _, lines, path, snippet, words = case
    text = _with(lines)
    err = errors_of(text)
    line = line_of(text, snippet)
    assert any(row.startswith(f"r.yaml:{line}: {path}: ") for row in str(err).splitlines()), str(err)
    problem = next(p for p in err.problems if p.path == path)
    assert problem.line == line
    for word in words:
        assert word in problem.message, problem.message


def test_classes_with_several_csv_targets(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "rows.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    text = _with("  target: [b, c]\n  classes: [1]").replace("source: sklearn:iris", "source: csv:rows.csv")
    err = errors_of(text, base_dir=folder)
    problem = next(p for p in err.problems if p.path == "data.classes")
    assert "classification only" in problem.message and problem.line == line_of(text, "classes:")
