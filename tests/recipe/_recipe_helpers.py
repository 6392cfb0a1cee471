"""A small valid recipe whose lines the error tests point into, and helpers."""

from __future__ import annotations

import pytest

from honing.recipe import RecipeError, parse_recipe

BASE = """\
name: tiny
seed: 0
data:
  source: sklearn:iris
  val_size: 0.2
  test_size: 0.2
model:
  name: mlp
  hidden: [16]
  dropout: 0.1
training:
  epochs: 5
  batch_size: 16
  optimizer: {name: adam, lr: 0.01}
  early_stopping: {monitor: val_loss, patience: 3}
tune:
  n_trials: 4
  sampler: tpe
  pruner: median
  metric: val_accuracy
  space:
    training.optimizer.lr: {float: [1.0e-3, 1.0e-1], log: true}
    model.hidden: {choice: [[8], [16, 8]]}
"""


def line_of(text: str, snippet: str) -> int:
    """The 1-based line of the first line of ``text`` that contains ``snippet``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if snippet in line:
            return i
    raise AssertionError(f"{snippet!r} not in the text")


def errors_of(text: str, **kwargs: object) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, source="r.yaml", **kwargs)  # type: ignore[arg-type]
    return info.value
