"""``example_recipe``: the commented recipes ``honing init`` writes (the first is the one in
docs/recipe.md)."""

from __future__ import annotations

from honing._core import UnknownNameError
from honing.recipe._errors import unknown_name

_DIGITS_MLP = """\
name: digits-mlp                 # names the default output folder runs/<name>
seed: 0                          # 0 .. 2**32-1
data:
  source: sklearn:digits         # any honing.data.load source
  val_size: 0.15
  test_size: 0.15
  scale: standard                # standard | minmax | null
  augment: null                  # e.g. {rotation: 10, translate: [0.1, 0.1], mixup: 0.2}
model:
  name: mlp                      # mlp | cnn | mobilenet | cellnet | rnn | transformer | snn; other keys: its arguments
  hidden: [128, 64]
  dropout: 0.1
training:
  epochs: 40                     # 1 .. 100000
  batch_size: 64                 # 1 .. 2**24 (eval_batch_size too)
  optimizer: {name: adamw, lr: 0.001, weight_decay: 0.01}
  schedule: {name: cosine, warmup_steps: 50}      # or null
  loss: cross_entropy            # or {name: focal, gamma: 2}
  early_stopping: {monitor: val_loss, patience: 8}
  grad_clip_norm: null
  threads: 1
tune:
  n_trials: 30                   # 1 .. 1000000
  timeout: null                  # seconds
  sampler: auto                  # auto | grid | random | qmc | tpe | gp | cmaes | nsga2 (or {name: tpe, ...options})
  pruner: auto                   # none | median | percentile | asha | hyperband | auto (early stopping, by the budget)
  metric: val_accuracy
  direction: maximize
  cv: auto                       # auto (5-fold below 1000 train+val rows) | k (2 .. 100): k-fold | null: the val split
  final: retrain                 # retrain (on train+validation) | best_trial (keep the best trial's weights)
  space:
    training.optimizer.lr: {float: [1.0e-4, 1.0e-1], log: true}
    training.batch_size: {int: [16, 256], log: true}
    model.hidden: {choice: [[64], [128, 64], [256, 128]]}
    model.dropout: {float: [0.0, 0.5]}
    training.optimizer.name: {choice: [adamw, sgd]}
    training.optimizer.momentum: {float: [0.5, 0.99], when: {training.optimizer.name: sgd}}
evaluate:
  metrics: null                  # null: the task's defaults
output:
  dir: null                      # null: runs/<name>
  report: true
"""

_EXAMPLES = {"digits-mlp": _DIGITS_MLP}


def list_examples() -> list[str]:
    """Names ``example_recipe`` accepts."""
    return sorted(_EXAMPLES)


def example_recipe(name: str = "digits-mlp") -> str:
    """A commented, valid YAML recipe (``honing init`` writes it)."""
    if name not in _EXAMPLES:
        raise UnknownNameError(unknown_name(name, _EXAMPLES, kind="example recipe"))
    return _EXAMPLES[name]
