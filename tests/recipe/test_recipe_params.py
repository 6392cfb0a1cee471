"""``Recipe.with_params`` and the search space checked against the recipe."""

from __future__ import annotations

import pytest
from _recipe_helpers import BASE, errors_of, line_of

from honing.recipe import RecipeError, example_recipe, parse_recipe
from honing.tune import SearchSpace


@pytest.fixture(scope="module")
def recipe():
    return parse_recipe(BASE)


def test_with_params_sets_nested_paths_and_lists(recipe) -> None:
    new = recipe.with_params({"training.optimizer.lr": 0.05, "model.hidden": [32, 16], "training.batch_size": None,
                              "data.val_size": 0.25, "seed": 7})
    assert new.training.optimizer.lr == 0.05 and new.model.hidden == [32, 16]
    assert new.training.batch_size is None and new.data.val_size == 0.25 and new.seed == 7
    assert recipe.training.optimizer.lr == 0.01 and recipe.model.hidden == [16]  # the original is unchanged
    assert new.to_dict()["model"]["hidden"] == [32, 16]
    assert new.with_params({"model.hidden.0": 64}).model.hidden == [64, 16]  # a list item by index
    assert recipe.with_params({"model.hidden": (4, 2)}).model.hidden == [4, 2]  # tuples become lists


def test_with_params_fills_null_sections_and_bags(recipe) -> None:
    new = recipe.with_params({"training.schedule.name": "step", "training.schedule.gamma": 0.5,
                              "training.loss.name": "cross_entropy", "training.loss.label_smoothing": 0.1,
                              "data.augment.noise": 0.05})
    assert new.training.schedule is not None and new.training.schedule.name == "step"
    assert new.training.schedule.gamma == 0.5 and new.training.schedule.warmup_steps == 0
    assert new.training.loss == {"name": "cross_entropy", "label_smoothing": 0.1}
    assert new.data.augment == {"noise": 0.05}
    assert new.with_params({"training.loss": "focal"}).training.loss == "focal"


def test_with_params_revalidates_and_names_the_path(recipe) -> None:
    with pytest.raises(RecipeError) as info:
        recipe.with_params({"model.dropout": 1.5, "training.optimizer.lr": "fast"})
    paths = {p.path: p.message for p in info.value.problems}
    assert set(paths) == {"model.dropout", "training.optimizer.lr"}
    assert "1.5" in paths["model.dropout"] and "got 'fast'" in paths["training.optimizer.lr"]
    with pytest.raises(RecipeError, match=r"model\.hidden: got 'wide'; allowed: a list of integers"):
        recipe.with_params({"model.hidden": "wide"})
    with pytest.raises(RecipeError, match=r"training\.optimizer\.momentum: unknown argument 'momentum'"):
        recipe.with_params({"training.optimizer.momentum": 0.9})  # adam has no momentum
    with pytest.raises(RecipeError, match=r"training\.optimizr: unknown key 'optimizr'"):
        recipe.with_params({"training.optimizr.lr": 0.1})


def test_with_params_of_a_trial_point_including_a_conditional_argument() -> None:
    recipe = parse_recipe(example_recipe())
    params = {"training.optimizer.name": "sgd", "training.optimizer.momentum": 0.9, "model.hidden": [64],
              "training.batch_size": 32, "training.optimizer.lr": 0.01, "model.dropout": 0.2}
    trial = recipe.with_params(params)
    assert trial.training.optimizer.name == "sgd" and trial.training.optimizer.momentum == 0.9
    assert parse_recipe(trial.to_dict()) == trial
    assert recipe.with_params({"tune.n_trials": 3}).tune.n_trials == 3


def test_space_is_the_search_space_of_the_recipe(recipe) -> None:
    space = recipe.space
    assert isinstance(space, SearchSpace)
    assert space == SearchSpace.from_spec(recipe.tune.space)
    assert space.paths == ["training.optimizer.lr", "model.hidden"]


def test_space_may_name_arguments_of_a_searched_bag_name() -> None:
    momentum = "    training.optimizer.momentum: {float: [0.5, 0.9], when: {training.optimizer.name: sgd}}\n"
    text = BASE.replace("    model.hidden:", "    training.optimizer.name: {choice: [adam, sgd]}\n" + momentum
                        + "    model.hidden:")
    recipe = parse_recipe(text)  # momentum is absent from the recipe, but valid for sgd, a searched name
    assert "training.optimizer.momentum" in recipe.space.paths
    model = BASE.replace("    model.hidden: {choice: [[8], [16, 8]]}",
                         "    model.name: {choice: [mlp, cnn]}\n"
                         "    model.channels: {choice: [[4], [8]], when: {model.name: cnn}}\n"
                         "    model.hidden: {choice: [[8], [16, 8]], when: {model.name: mlp}}")
    assert parse_recipe(model).space is not None
    err = errors_of(BASE.replace("    model.hidden:", "    model.channels: {choice: [[4]]}\n    model.hidden:"))
    assert "unknown path 'model.channels'" in str(err)  # the model stays an mlp: no channels


def test_a_searched_argument_must_suit_every_searched_name() -> None:
    text = BASE.replace("    model.hidden:", "    training.optimizer.name: {choice: [adam, sgd]}\n"
                                            "    training.optimizer.momentum: {float: [0.5, 0.9]}\n    model.hidden:")
    err = errors_of(text)
    problem = err.problems[0]
    assert problem.path == "tune.space.training.optimizer.momentum"
    assert problem.line == line_of(text, "training.optimizer.momentum:")
    assert "'adam'" in problem.message and "when: {training.optimizer.name: [sgd]}" in problem.message


def test_space_value_checks_follow_when_conditions() -> None:
    text = BASE.replace("    model.hidden:", "    training.optimizer.name: {choice: [adam, sgd]}\n"
                                            "    training.optimizer.momentum: {float: [-0.5, 0.9], when: "
                                            "{training.optimizer.name: sgd}}\n    model.hidden:")
    err = errors_of(text)
    problem = err.problems[0]
    assert problem.path == "tune.space.training.optimizer.momentum"
    assert problem.line == line_of(text, "training.optimizer.momentum:")
    assert "-0.5" in problem.message and "momentum" in problem.message


def test_space_values_of_a_bag_name_are_checked() -> None:
    text = BASE.replace("    model.hidden:", "    training.optimizer.name: {choice: [adam, sgdd]}\n    model.hidden:")
    err = errors_of(text)
    assert err.problems[0].path == "tune.space.training.optimizer.name"
    assert "'sgdd'" in err.problems[0].message and "did you mean 'sgd'" in err.problems[0].message


def test_when_must_refer_to_a_parameter_or_a_field() -> None:
    text = BASE.replace("{choice: [[8], [16, 8]]}", "{choice: [[8], [16, 8]], when: {model.activaton: relu}}")
    err = errors_of(text)
    assert err.problems[0].path == "tune.space.model.hidden.when.model.activaton"
    assert "did you mean 'model.activation'" in err.problems[0].message


def test_space_cannot_search_the_tune_section() -> None:
    err = errors_of(BASE.replace("    model.hidden:", "    tune.n_trials: {int: [1, 2]}\n    model.hidden:"))
    assert err.problems[0].path == "tune.space.tune.n_trials"
    assert "cannot be searched" in err.problems[0].message


def test_space_into_a_null_bag_says_what_to_set() -> None:
    gamma = "    training.schedule.gamma: {float: [0.1, 0.5]}\n    model.hidden:"
    err = errors_of(BASE.replace("    model.hidden:", gamma))
    assert err.problems[0].path == "tune.space.training.schedule.gamma"
    assert "training.schedule is null" in err.problems[0].message
    ok = BASE.replace("  batch_size: 16", "  batch_size: 16\n  schedule: {name: step}").replace(
        "    model.hidden:", "    training.schedule.gamma: {float: [0.1, 0.5]}\n    model.hidden:")
    assert "training.schedule.gamma" in parse_recipe(ok).space.paths


def test_multi_objective_rules() -> None:
    head = "  sampler: tpe\n  pruner: median\n  metric: val_accuracy\n"
    two = "  objectives: [{metric: val_accuracy}, {metric: val_f1_macro}]\n"
    err = errors_of(BASE.replace(head, two))
    assert err.problems[0].path == "tune.objectives.1.metric"
    pruned = "  pruner: asha\n  objectives: [{metric: val_accuracy}, {metric: latency_ms}]\n"
    assert errors_of(BASE.replace(head, pruned)).problems[0].path == "tune.pruner"
    knee = "  metric: val_accuracy\n  select: {rule: knee}\n"
    assert errors_of(BASE.replace(head, knee)).problems[0].path == "tune.select.rule"


def test_a_parameter_that_is_never_active_is_not_checked() -> None:
    never = "    model.dropout: {float: [0.0, 2.0], when: {model.name: cnn}}\n    model.hidden:"
    assert parse_recipe(BASE.replace("    model.hidden:", never)).space is not None  # the model is an mlp
    active = "    model.dropout: {float: [0.0, 2.0], when: {model.name: mlp}}\n    model.hidden:"
    err = errors_of(BASE.replace("    model.hidden:", active))
    assert err.problems[0].path == "tune.space.model.dropout" and "2.0" in err.problems[0].message


def test_searching_the_loss_needs_a_metric_that_does_not_depend_on_it() -> None:
    loss = "    training.loss: {choice: [mse, huber]}\n    model.hidden:"
    regression = "  source: sklearn:diabetes\n  task: regression\n"
    text = BASE.replace("    model.hidden:", loss).replace("  metric: val_accuracy\n", "")
    text = text.replace("  source: sklearn:iris\n", regression)
    err = errors_of(text)
    assert err.problems[0].path == "tune.metric" and "val_mse" in err.problems[0].message
    assert parse_recipe(text.replace("  pruner: median\n", "  pruner: median\n  metric: val_mse\n")).space
