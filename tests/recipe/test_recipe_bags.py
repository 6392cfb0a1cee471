"""Argument bags, driven by the registries: every entry's arguments are accepted, others are not."""

from __future__ import annotations

import inspect

import pytest
from _recipe_helpers import BASE, errors_of, line_of

from honing.data import list_augmentations
from honing.models import MODELS, list_models
from honing.optim import get_optimizer_info, list_optimizers, list_schedules
from honing.recipe import parse_recipe
from honing.recipe._bags import describe_type
from honing.train import list_losses

PLAIN = "data: {source: sklearn:iris}\nmodel: {name: mlp}\n"


@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_its_own_arguments_only(name: str) -> None:
    own = [p for p in inspect.signature(MODELS.get(name)).parameters if p not in ("input_shape", "num_outputs")]
    recipe = parse_recipe(f"data: {{source: sklearn:iris}}\nmodel: {{name: {name}, init: orthogonal, dropout: 0.0}}\n")
    assert recipe.model.name == name and recipe.model.init == "orthogonal"
    err = errors_of(f"data: {{source: sklearn:iris}}\nmodel:\n  name: {name}\n  depthh: 3\n")
    problem = err.problems[0]
    assert (problem.path, problem.line) == ("model.depthh", 4)
    assert all(arg in problem.message for arg in own)


@pytest.mark.parametrize("name", list_optimizers())
def test_every_optimizer_by_name(name: str) -> None:
    if name == "admm":  # needs k or sparsity
        err = errors_of(PLAIN + "training:\n  optimizer: {name: admm}\n")
        assert (err.problems[0].path, err.problems[0].line) == ("training.optimizer.k", 4)
    needs = {"admm": ", sparsity: 0.5"}.get(name, "")
    recipe = parse_recipe(PLAIN + f"training: {{optimizer: {{name: {name}{needs}}}}}\n")
    assert recipe.training.optimizer.name == name
    info = get_optimizer_info(name)
    if not info.has_weight_decay:
        err = errors_of(PLAIN + f"training:\n  optimizer: {{name: {name}, weight_decay: 0.1}}\n")
        assert err.problems[0].path == "training.optimizer.weight_decay"
    if info.single_group:
        err = errors_of(PLAIN + f"training:\n  optimizer: {{name: {name}, layer_decay: 0.5}}\n")
        assert err.problems[0].path == "training.optimizer.layer_decay"


@pytest.mark.parametrize("name", list_schedules())
def test_every_schedule_by_name(name: str) -> None:
    extra = ", milestones: [2, 4]" if name == "multistep" else ""
    recipe = parse_recipe(PLAIN + f"training: {{schedule: {{name: {name}, warmup_steps: 5{extra}}}}}\n")
    assert recipe.training.schedule is not None and recipe.training.schedule.name == name


def test_schedule_values_are_checked_with_the_optimizer_lr() -> None:
    text = PLAIN + "training:\n  optimizer: {name: sgd, lr: 0.01}\n  schedule: {name: cosine, min_lr: 0.5}\n"
    err = errors_of(text)
    assert (err.problems[0].path, err.problems[0].line) == ("training.schedule.min_lr", 5)
    err = errors_of(PLAIN + "training:\n  schedule: {name: multistep, milestones: [4, 2]}\n")
    assert err.problems[0].path == "training.schedule.milestones"


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_by_name_and_its_task(name: str) -> None:
    assert parse_recipe(PLAIN + f"training: {{loss: {name}}}\n").training.loss == name
    from honing.train import LOSSES

    task = LOSSES.entry(name).meta["task"]
    other = "regression" if task == "classification" else "classification"
    text = f"data: {{source: sklearn:iris, task: {other}}}\nmodel: {{name: mlp}}\ntraining:\n  loss: {name}\n"
    err = errors_of(text)
    assert (err.problems[0].path, err.problems[0].line) == ("training.loss", 4)


def test_balanced_class_weights_are_left_to_the_pipeline() -> None:
    recipe = parse_recipe(PLAIN + "training: {loss: {name: cross_entropy, weight: balanced}}\n")
    assert recipe.training.loss == {"name": "cross_entropy", "weight": "balanced"}


@pytest.mark.parametrize("key", list_augmentations())
def test_every_augmentation_key(key: str) -> None:
    value = {"scale": 0.1, "translate": 0.1, "contrast": 0.2, "mixup": 0.2, "cutmix": 0.2}.get(key, 0.5)
    recipe = parse_recipe(f"data: {{source: sklearn:digits, augment: {{{key}: {value}}}}}\nmodel: {{name: mlp}}\n")
    assert recipe.data.augment == {key: value}


def test_type_hints_in_words() -> None:
    assert describe_type(float) == "a number"
    assert describe_type(int | None) == "an integer or null"
    assert describe_type(tuple[float, float]) == "a list of 2 values (a number, a number)"
    from collections.abc import Sequence

    assert describe_type(Sequence[int]) == "a list of integers"


def test_csv_only_options_and_source_forms() -> None:
    err = errors_of("data:\n  source: sklearn:iris\n  target: y\nmodel: {name: mlp}\n")
    assert (err.problems[0].path, err.problems[0].line) == ("data.target", 3)
    err = errors_of("data:\n  source: parquet:x.pq\nmodel: {name: mlp}\n")
    assert err.problems[0].path == "data.source" and "csv:<path>" in err.problems[0].message
    err = errors_of("data:\n  source: houses.csv\nmodel: {name: mlp}\n")  # a bare file name: the form is said
    assert err.problems[0].message.endswith("(a file is named with its form: csv:houses.csv)")
    err = errors_of(BASE.replace("  test_size: 0.2", "  test_size: 0.85"))
    assert err.problems[0].path == "data.test_size" and err.problems[0].line == line_of(BASE, "test_size")
