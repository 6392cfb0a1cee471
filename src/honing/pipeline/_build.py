"""Build engine components from a typed ``Recipe``: the data, the model plan, the Trainer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from torch import nn

from honing._core import ConfigError
from honing.data import Dataset, create_augment, load
from honing.models import create_model
from honing.optim import create_optimizer, create_schedule
from honing.pipeline._transfer import DataMemo, ModelPlan, transfer_plan
from honing.train import EarlyStopping, Trainer, create_loss, default_loss


def as_recipe(recipe: Any) -> Any:
    """A Recipe from a Recipe, a YAML path or a mapping."""
    from pathlib import Path

    from honing.recipe import Recipe, load_recipe, parse_recipe

    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, (str, Path)):
        return load_recipe(recipe)
    return parse_recipe(recipe)


def load_data(recipe: Any, memo: DataMemo | None = None, *, label_issues: dict[str, Any] | None = None) -> Dataset:
    """The recipe's data set (loaded once per ``memo``: a run context's, or a worker's).
    ``label_issues``: a check of the same data made earlier (``data.check_labels``), reused."""
    args = recipe.load_args()
    if label_issues is not None:
        args["label_issues"] = label_issues
    if memo is None:
        return load(recipe.data.source, **args)
    return memo.get(data_key(recipe), lambda: load(recipe.data.source, **args))


def data_key(recipe: Any) -> str:
    """Two recipes with the same key load the same data set."""
    return "data:" + json.dumps([recipe.data.source, recipe.load_args()], sort_keys=True, default=str)


def _bag(spec: Any) -> tuple[str, dict[str, Any]]:
    """A registry-name section (name + its keyword arguments) -> (name, kwargs without unset values)."""
    if isinstance(spec, str):
        return spec, {}
    kw = {k: v for k, v in spec.model_dump(mode="json").items() if k != "name" and v is not None}
    return spec.name, kw


def build_model(recipe: Any, data: Any, *, seed: int, memo: DataMemo | None = None) -> ModelPlan:
    """The model and what its training needs (a transfer strategy's callbacks and loss wrapper)."""
    if recipe.transfer is not None:
        return transfer_plan(recipe, data, seed=seed, memo=memo)
    kw = recipe.model.model_dump(mode="json")
    name = kw.pop("name")
    return ModelPlan(create_model(name, data=data, seed=seed, **kw))


def build_trainer(
    recipe: Any,
    plan: ModelPlan | nn.Module,
    data: Dataset,
    *,
    seed: int,
    num_train: int,
    epochs: int | None = None,
    with_val: bool = True,
    reporter: Any = None,
    threads: int | None = None,
    early_stopping: bool = True,
    for_training: bool = True,
    optimizer: Any = None,
    wrap_loss: Callable[[Any], Any] | None = None,
    lr: float | None = None,
    report: str | None = None,
) -> Trainer:
    """The optimizer, schedule, loss, augmentation, callbacks and config the training section asks
    for. ``plan``: a ``build_model`` plan (or a bare module); ``optimizer``: one built by the caller
    instead (e.g. ADMM for pruning); ``wrap_loss``: base loss -> the loss minimized (distillation);
    ``lr``: replaces the optimizer section's learning rate; ``report``: the log key ``reporter``
    receives each epoch (default: the monitor)."""
    if isinstance(plan, nn.Module):
        plan = ModelPlan(plan)
    t = recipe.training
    config = t.to_train_config(seed=seed, monitor=recipe.monitor(data.task), epochs=epochs, with_val=with_val,
                               threads=threads)
    name, kw = _bag(t.optimizer)
    if lr is not None:
        kw["lr"] = lr
    if plan.layer_decay is not None and kw.get("layer_decay") is None:
        kw["layer_decay"] = plan.layer_decay
    if optimizer is None:
        if plan.trains and for_training:
            optimizer = create_optimizer(plan.model, name, **kw)
        else:  # prototypes, or an evaluation: no gradient step
            import torch

            optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
    schedule, notes = None, []
    if t.schedule is not None and plan.trains and for_training:  # an evaluation takes no step
        sname, skw = _bag(t.schedule)
        if sname == "plateau" and not with_val:
            skw["monitor"] = "loss"
        spe = config.steps_per_epoch(num_train)
        note = _fit_warmup(skw, config.epochs * spe, num_train=num_train, epochs=config.epochs)
        if note:
            notes.append(note)
        schedule = create_schedule(optimizer, sname, epochs=config.epochs, steps_per_epoch=spe, **skw)
    loss = _loss(t, data)
    for wrap in (plan.wrap_loss if for_training else None, wrap_loss):
        if wrap is not None:
            loss = wrap(loss if loss is not None else default_loss(data.task))
    augment = None
    if data_augment := recipe.data.augment:
        classes = data.num_outputs if data.task == "classification" else None
        augment = create_augment(data_augment, num_classes=classes, seed=seed)
    callbacks = list(plan.callbacks)
    es = t.early_stopping
    if es is not None and early_stopping and with_val:
        callbacks.append(EarlyStopping(**es.model_dump()))
    step = None
    if t.adversarial is not None and plan.trains and for_training:
        step = adversarial_step(t.adversarial, data, seed=seed, accumulate=t.accumulate)
    trainer = Trainer(plan.model, optimizer, loss=loss, task=data.task, schedule=schedule,
                      metrics=recipe.evaluate.metrics, callbacks=callbacks, augment=augment, reporter=reporter,
                      config=config, report=report, step=step)
    _metrics_in_target_units(trainer, data)
    trainer.notes = notes  # what the trainer changed of the recipe's training section, to be said
    return trainer


def _fit_warmup(skw: dict[str, Any], total: int, *, num_train: int, epochs: int) -> str | None:
    """Shorten a warm-up that would not leave the schedule room in this training to a quarter
    of its steps (in ``skw``), and say so. The recipe's warm-up is in steps, but how many steps a
    training has depends on the rows, the batch size (often searched) and the epochs (the final
    model retrains for the chosen trial's best epoch): 50 steps fit digits and not 150 rows at
    batch 128, where the schedule would refuse to start."""
    if skw.get("warmup_epochs") is not None:
        steps = int(round(float(skw["warmup_epochs"]) * total / max(epochs, 1)))
        key = "warmup_epochs"
    else:
        steps, key = int(skw.get("warmup_steps") or 0), "warmup_steps"
    if steps < max(total - 1, 1):
        return None
    short = total // 4
    skw.pop("warmup_epochs", None)
    skw["warmup_steps"] = short
    return (f"training.schedule.{key} ({steps} steps) does not fit this training's {total} "
            f"steps ({num_train} rows, {epochs} epochs): warm-up shortened to {short} steps")


def adversarial_step(section: Any, data: Dataset, *, seed: int, accumulate: int = 1) -> Any:
    """The step policy of ``training.adversarial``: attacks in the data's own units."""
    from honing.robust import AdversarialStep, InputSpace

    if data.task != "classification":
        raise ConfigError(f"invalid training.adversarial: got a {data.task} data set; allowed: null (adversarial "
                          "training needs a classification task)")
    space = InputSpace.from_preprocessor(data.preprocessor, data.train.x)
    return AdversarialStep(section.method, section.epsilon, space=space, steps=section.steps,
                           step_size=section.step_size, beta=section.beta, accumulate=accumulate, seed=seed)


def _loss(t: Any, data: Dataset) -> Any:
    """The training section's loss (None: the task's default), class-weighted when asked."""
    if t.class_weight == "balanced" and data.task != "classification":
        raise ConfigError(f"invalid training.class_weight: got 'balanced' for a {data.task} data set; allowed: "
                          "null (class weights apply to classification)")
    if not t.loss and not t.class_weight:
        return None
    spec = t.loss or "cross_entropy"
    lname, lkw = (spec, {}) if isinstance(spec, str) else (
        spec["name"], {k: v for k, v in spec.items() if k != "name" and v is not None})
    if lkw.get("weight") == "balanced" or (t.class_weight == "balanced" and lkw.get("weight") is None):
        lkw["weight"] = data.class_weights()  # n / (K * rows of the class), from the training rows
    return create_loss(lname, **lkw)


def _metrics_in_target_units(trainer: Trainer, data: Dataset) -> None:
    """With ``data.scale_target`` the model learns standardized targets (the loss stays in those
    units); every metric is computed on predictions and targets mapped back to the target's own
    units, so val_/test metrics mean what a user reads them as."""
    pre = data.preprocessor
    if data.task != "regression" or not getattr(pre, "scale_target", False) or pre.target_mean is None:
        return
    inverse = pre.inverse_transform_target

    def in_units(fn: Any) -> Any:
        return lambda pred, y: fn(inverse(pred), inverse(y))

    trainer.metrics = {name: in_units(fn) for name, fn in trainer.metrics.items()}
