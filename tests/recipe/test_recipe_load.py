"""Loading, the example recipes, the resolved form and its round trip."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _recipe_helpers import BASE, errors_of, line_of
from pydantic import ValidationError

from honing._core import ConfigError, UnknownNameError
from honing.train import TrainConfig
from honing.recipe import Recipe, RecipeError, example_recipe, load_recipe, parse_recipe, validate_recipe

ROOT = Path(__file__).resolve().parents[2]


def _docs_recipe() -> str:
    text = (ROOT / "docs" / "recipe.md").read_text()
    match = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert match is not None
    return match.group(1)


def test_example_recipe_is_the_documented_one_and_valid() -> None:
    text = example_recipe()
    assert text == _docs_recipe()
    assert "#" in text  # commented for `honing init`
    recipe = parse_recipe(text)
    assert recipe.name == "digits-mlp"
    assert recipe.model.name == "mlp" and recipe.model.hidden == [128, 64]
    assert recipe.training.optimizer.name == "adamw" and recipe.training.optimizer.lr == 0.001
    assert recipe.tune is not None and recipe.tune.n_trials == 30
    assert recipe.space is not None and "training.optimizer.momentum" in recipe.space.paths


def test_unknown_example_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="digits-mlp"):
        example_recipe("digits-mpl")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_are_valid(path: Path) -> None:
    assert validate_recipe(path) == []


def test_to_dict_is_json_with_every_default_filled_and_round_trips() -> None:
    recipe = parse_recipe(BASE)
    d = recipe.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["training"]["threads"] == 1 and d["training"]["keep_best"] is True
    assert d["training"]["eval_batch_size"] == TrainConfig().eval_batch_size == 256 and d["training"]["precision"] == "32"
    assert d["output"] == {"dir": None, "report": True, "save_model": True}
    assert d["evaluate"] == {"metrics": None, "baselines": True, "groups": None, "group_inputs": True}
    assert d["data"]["scale"] == "standard" and d["data"]["drop_columns"] == []
    assert d["tune"]["final"] == "retrain" and d["tune"]["select"] == {"rule": "best", "metric": None}
    assert d["tune"]["direction"] == "maximize"  # from metric val_accuracy
    again = parse_recipe(d)
    assert again == recipe
    assert again.to_dict() == d


def test_defaults_of_a_minimal_recipe() -> None:
    recipe = parse_recipe("data: {source: sklearn:wine}\nmodel: {name: mlp}\n")
    assert recipe.name == "honing-run" and recipe.seed == 0 and recipe.tune is None and recipe.space is None
    assert recipe.training.epochs == 20 and recipe.training.batch_size == 32
    assert recipe.training.optimizer.name == "adam" and recipe.training.optimizer.lr is None
    assert recipe.training.loss is None and recipe.training.schedule is None
    assert parse_recipe(recipe.to_dict()) == recipe


def test_empty_sections_are_the_defaults() -> None:
    recipe = parse_recipe("data: {source: sklearn:wine}\nmodel: {name: mlp}\ntraining:\n  optimizer:\n"
                          "evaluate:\noutput:\ntune:\n")
    assert recipe == parse_recipe("data: {source: sklearn:wine}\nmodel: {name: mlp}\n")
    assert "data: got None" in str(errors_of("data:\nmodel: {name: mlp}\n"))


def test_tune_defaults_depend_on_other_fields() -> None:
    one = parse_recipe(BASE.replace("  metric: val_accuracy\n", "  metric: val_loss\n"))
    assert one.tune is not None and one.tune.direction == "minimize"
    several = parse_recipe(BASE.replace("  sampler: tpe\n  pruner: median\n  metric: val_accuracy\n",
                                        "  objectives: [{metric: val_accuracy}, {metric: params}]\n"))
    assert several.tune is not None
    assert several.tune.sampler == "nsga2" and several.tune.pruner == "none"
    assert [(o.metric, o.direction) for o in several.tune.objectives or []] == [
        ("val_accuracy", "maximize"), ("params", "minimize")]
    grid = parse_recipe(BASE.replace("  n_trials: 4\n", "").replace("sampler: tpe", "sampler: grid")
                        .replace("{float: [1.0e-3, 1.0e-1], log: true}", "{choice: [0.001, 0.01, 0.1]}"))
    assert grid.tune is not None and grid.tune.n_trials == 6  # 3 x 2 grid points


def test_numbers_in_e_notation_are_numbers() -> None:
    recipe = parse_recipe(BASE.replace("lr: 0.01", "lr: 1e-2"))
    assert recipe.training.optimizer.lr == 0.01


def test_load_resolves_data_paths_against_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("a,b,y\n1,2,0\n3,4,1\n")
    text = BASE.replace("source: sklearn:iris", "source: csv:data/rows.csv")
    (tmp_path / "recipe.yaml").write_text(text)
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.data.source == f"csv:{(tmp_path / 'data' / 'rows.csv').resolve()}"
    assert parse_recipe(recipe.to_dict()) == recipe  # the absolute path survives the round trip
    # the same text elsewhere does not find the file: an error at data.source, on its line
    err = errors_of(text, base_dir=tmp_path / "data")
    assert f"r.yaml:{line_of(text, 'source:')}: data.source:" in str(err)
    assert "rows.csv" in str(err)


def test_missing_recipe_file_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such recipe file") as info:
        load_recipe(tmp_path / "nope.yaml")
    assert isinstance(info.value, ConfigError)
    assert validate_recipe(tmp_path / "nope.yaml")[0].startswith(str(tmp_path / "nope.yaml"))


def test_validate_recipe_returns_problem_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    assert validate_recipe(good) == []
    text = BASE.replace("epochs: 5", "epochs: zero").replace("dropout: 0.1", "dropout: 0.1\n  foo: 1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    lines = validate_recipe(bad)
    assert f"{bad}:{line_of(text, 'foo:')}: model.foo: unknown argument 'foo'" in lines[0]
    assert lines[1] == (f"{bad}:{line_of(text, 'epochs:')}: training.epochs: got 'zero'; allowed: an integer >= 1 "
                        "and <= 100000")


def test_recipe_is_frozen() -> None:
    recipe = parse_recipe(BASE)
    with pytest.raises(ValidationError, match="frozen"):
        recipe.seed = 3  # type: ignore[misc]
    assert isinstance(recipe, Recipe) and recipe.seed == 0


def test_import_and_validation_do_not_import_optuna() -> None:
    code = ("import sys; from honing.recipe import parse_recipe, example_recipe; "
            "parse_recipe(example_recipe()); print('optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
