from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from honing import ConfigError
from honing.tune import ChoiceParam, FloatParam, IntParam, SearchSpace, SpaceError

optuna.logging.set_verbosity(optuna.logging.WARNING)

RECIPE_SPACE = {
    "training.optimizer.lr": {"float": [1.0e-4, 1.0e-1], "log": True},
    "training.batch_size": {"int": [16, 256], "log": True},
    "model.hidden": {"choice": [[64], [128, 64], [256, 128]]},
    "model.dropout": {"float": [0.0, 0.5], "step": 0.1},
    "training.optimizer.name": {"choice": ["adamw", "sgd"]},
    "training.optimizer.momentum": {"float": [0.5, 0.99], "when": {"training.optimizer.name": "sgd"}},
    "training.epochs": {"grid": [10, 20]},
}


def _trials(n: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield trial
        study.tell(trial, 0.0)


def test_import_does_not_load_optuna():
    code = "import sys, honing.tune; print('optuna' in sys.modules, 'honing.recipe' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_from_spec_parses_every_recipe_form_and_round_trips():
    space = SearchSpace.from_spec(RECIPE_SPACE)
    assert space.paths == list(RECIPE_SPACE)
    lr = space["training.optimizer.lr"]
    assert isinstance(lr, FloatParam) and lr.log and lr.low == 1e-4
    bs = space["training.batch_size"]
    assert isinstance(bs, IntParam) and bs.log and (bs.low, bs.high, bs.step) == (16, 256, 1)
    hidden = space["model.hidden"]
    assert isinstance(hidden, ChoiceParam) and hidden.choices == ([64], [128, 64], [256, 128]) and not hidden.grid
    assert space["training.epochs"].grid is True
    assert space["training.optimizer.momentum"].when == {"training.optimizer.name": "sgd"}
    assert space.to_spec() == RECIPE_SPACE
    assert SearchSpace.from_spec(space.to_spec()) == space
    assert not space.is_finite and space.size is None


@pytest.mark.parametrize("entry, words", [
    ({"float": [1.0, 0.5]}, ["low 1.0 is greater than high 0.5", "low <= high"]),
    ({"int": [5, 2]}, ["low 5 is greater than high 2"]),
    ({"choice": []}, ["empty"]),
    ({"grid": "abc"}, ["needs a list"]),
    ({"float": [0.0, 1.0], "log": True}, ["log scale needs low > 0", "low=0.0"]),
    ({"int": [0, 8], "log": True}, ["log scale needs low > 0"]),
    ({"float": [1e-3, 1.0], "log": True, "step": 0.1}, ["log and step cannot be combined"]),
    ({"int": [1, 64], "log": True, "step": 2}, ["log and step cannot be combined"]),
    ({"float": [0, 1], "scale": "log"}, ["unknown key 'scale'", "allowed: float, log, step, when"]),
    ({"choice": [1, 2], "log": True}, ["unknown key 'log'", "allowed: choice, when"]),
    ({"float": [0, 1], "int": [0, 1]}, ["two kinds", "float, int"]),
    ({"low": 0, "high": 1}, ["no distribution kind", "float, int, choice, grid"]),
    ({"float": [0, 1, 2]}, ["needs [low, high]"]),
    ({"int": [0.5, 3]}, ["low must be an integer", "0.5"]),
    ({"float": ["a", 1]}, ["low must be a finite number"]),
    ({"float": [0, 1], "step": -0.1}, ["step must be > 0"]),
    ({"choice": [1, 1.0]}, ["appears twice"]),
    ({"choice": [1, 2], "when": {"a": 1}}, ["refers to the parameter itself"]),
    ({"choice": [1, 2], "when": ["b"]}, ["when must be a non-empty mapping"]),
    (0.5, ["expected a distribution mapping"]),
])
def test_space_errors_name_the_path_and_what_is_allowed(entry, words):
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_spec({"a": entry, "b": {"choice": [1, 2]}})
    assert info.value.path == "tune.space.a"
    assert isinstance(info.value, ConfigError)
    message = str(info.value)
    assert message.startswith("tune.space.a: ")
    for word in words:
        assert word in message


def test_when_cycles_are_rejected():
    spec = {"a": {"choice": [1, 2], "when": {"b": 1}}, "b": {"choice": [1, 2], "when": {"c": 1}},
            "c": {"choice": [1, 2], "when": {"a": 2}}}
    with pytest.raises(SpaceError, match="cycle: a -> b -> c -> a") as info:
        SearchSpace.from_spec(spec, where="recipe.tune.space")
    assert info.value.path.startswith("recipe.tune.space.")
    with pytest.raises(SpaceError, match="appears twice"):
        SearchSpace([IntParam("a", 0, 1), IntParam("a", 0, 2)])


def test_suggest_respects_conditions_on_params_and_base_fields():
    space = SearchSpace([
        FloatParam("momentum", 0.5, 0.99, when={"opt": "sgd"}),  # listed before what it depends on
        ChoiceParam("opt", ["adamw", "sgd", "rmsprop"]),
        FloatParam("nesterov_gain", 0.1, 1.0, when={"momentum": [0.5, 0.6]}),  # never active (float never equals)
        IntParam("decay_steps", 10, 20, when={"training.schedule.name": ["step", "multistep"]}),
        ChoiceParam("hidden", [[64], [128, 64]]),
    ])
    seen = set()
    for trial in _trials(30):
        params = space.suggest(trial, {"training": {"schedule": {"name": "step"}}})
        assert list(params)[:2] == ["opt", "momentum"] or "momentum" not in params  # dependency order
        assert ("momentum" in params) == (params["opt"] == "sgd")
        assert "nesterov_gain" not in params
        assert 10 <= params["decay_steps"] <= 20
        assert params["hidden"] in ([64], [128, 64])
        assert set(trial.params) == set(params)
        seen.add(params["opt"])
    assert seen == {"adamw", "sgd", "rmsprop"}
    trial = next(_trials(1))
    assert "decay_steps" not in space.suggest(trial, {"training.schedule.name": "cosine"})  # flat dotted base
    with pytest.raises(ConfigError, match="decay_steps: its condition refers to 'training.schedule.name'"):
        space.suggest(next(_trials(1)), {})


def test_choice_values_are_encoded_for_optuna_and_decoded_back():
    choices = [[64], [128, 64], None, "relu", {"name": "sgd", "lr": 0.1}, 3]
    space = SearchSpace([ChoiceParam("c", choices)])
    seen = []
    for trial in _trials(40, seed=1):
        value = space.suggest(trial)["c"]
        assert value in choices
        stored = trial.params["c"]
        assert isinstance(stored, (type(None), str, int))  # what Optuna holds
        assert space.decode(trial.params)["c"] == value
        seen.append(value)
    assert all(c in seen for c in choices)
    assert space.encode({"c": [128, 64]}) == {"c": "[128,64]"}
    with pytest.raises(SpaceError, match="appears twice"):
        ChoiceParam("c", ["[64]", [64]])  # a string equal to another choice's JSON text


def test_grid_enumerates_the_exact_conditional_grid():
    space = SearchSpace([
        ChoiceParam("opt", ["adam", "sgd"]),
        FloatParam("mom", 0.5, 0.9, step=0.2, when={"opt": "sgd"}),
        IntParam("layers", 1, 2),
        ChoiceParam("wd", [0, 0.01], when={"fixed.mode": ["a", "b"]}),
    ])
    grid = space.grid({"fixed": {"mode": "a"}})
    assert len(grid) == 2 * 2 + 3 * 2 * 2 == space.size
    assert {"opt": "adam", "layers": 2, "wd": 0.01} in grid
    assert {"opt": "sgd", "mom": 0.7, "layers": 1, "wd": 0} in grid
    assert all(("mom" in p) == (p["opt"] == "sgd") for p in grid)
    assert len({tuple(sorted(p.items())) for p in grid}) == len(grid)
    assert sorted({p["mom"] for p in grid if "mom" in p}) == [0.5, 0.7, 0.9]
    assert len(space.grid({"fixed": {"mode": "c"}})) == 2 + 3 * 2  # wd inactive
    assert SearchSpace([IntParam("n", 2, 10, step=4)]).grid() == [{"n": 2}, {"n": 6}, {"n": 10}]


def test_grid_of_an_infinite_space_names_the_param():
    space = SearchSpace([ChoiceParam("a", [1, 2]), FloatParam("training.lr", 1e-3, 1e-1, log=True)])
    assert not space.is_finite and space.size is None
    with pytest.raises(ConfigError, match="training.lr is a float without step"):
        space.grid()
