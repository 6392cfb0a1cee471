"""Build engine components from a resolved recipe (the plain dict of ``Recipe.to_dict()``)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from honing.data import Dataset, create_augment, load
from honing.models import create_model
from honing.optim import create_optimizer, create_schedule
from honing.pipeline._transfer import build_transfer_model, continual_loss, is_few_shot, transfer_load_args
from honing.train import EarlyStopping, TrainConfig, Trainer, resolve_mode

# data-section keys that are not arguments of honing.data.load
_NOT_LOAD_ARGS = {"source", "augment"}


def load_args(recipe: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``honing.data.load`` from the data section (unset ones left out)."""
    data = recipe["data"]
    args = {k: v for k, v in data.items() if k not in _NOT_LOAD_ARGS and v is not None and v != [] and v != ()}
    args["seed"] = recipe.get("seed", 0)
    args.update(transfer_load_args(recipe))
    return args


def load_data(recipe: dict[str, Any]) -> Dataset:
    return load(recipe["data"]["source"], **load_args(recipe))


def _bag(spec: Any) -> tuple[str, dict[str, Any]]:
    """A {name, **kwargs} spec (or a bare name) -> (name, kwargs without unset values)."""
    if isinstance(spec, str):
        return spec, {}
    kw = {k: v for k, v in dict(spec).items() if k != "name" and v is not None}
    return spec["name"], kw


def build_model(recipe: dict[str, Any], data: Any, *, seed: int) -> nn.Module:
    if recipe.get("transfer"):
        return build_transfer_model(recipe, data, seed=seed)
    kw = dict(recipe["model"])
    name = kw.pop("name")
    return create_model(name, data=data, seed=seed, **kw)


def build_trainer(
    recipe: dict[str, Any],
    model: nn.Module,
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
) -> Trainer:
    """The optimizer, schedule, loss, augmentation, callbacks and config the training section asks for
    (``optimizer``: one built by the caller instead, e.g. ADMM for pruning)."""
    t = recipe["training"]
    epochs = int(epochs or t["epochs"])
    monitor = monitor_of(recipe, data.task) if with_val else "loss"
    config = TrainConfig(
        epochs=epochs,
        batch_size=t.get("batch_size"),
        eval_batch_size=t.get("eval_batch_size") or 1024,
        grad_clip_norm=t.get("grad_clip_norm"),
        grad_clip_value=t.get("grad_clip_value"),
        accumulate=t.get("accumulate") or 1,
        seed=seed,
        threads=threads if threads is not None else t.get("threads"),
        progress=False,
        monitor=monitor,
        keep_best=bool(t.get("keep_best", True)) and with_val,
        device=t.get("device") or "cpu",
        precision=str(t.get("precision") or "32"),
    )
    name, kw = _bag(t["optimizer"])
    transfer = recipe.get("transfer") or {}
    if transfer.get("layer_decay") is not None and kw.get("layer_decay") is None:
        kw["layer_decay"] = transfer["layer_decay"]
    if optimizer is not None:
        pass
    elif is_few_shot(recipe):  # prototypes, no gradient step: the Trainer only evaluates
        import torch

        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
    else:
        optimizer = create_optimizer(model, name, **kw)
    schedule = None
    if t.get("schedule"):
        sname, skw = _bag(t["schedule"])
        if sname == "plateau" and not with_val:
            skw["monitor"] = "loss"
        schedule = create_schedule(optimizer, sname, epochs=epochs,
                                   steps_per_epoch=config.steps_per_epoch(num_train), **skw)
    loss = None
    if t.get("class_weight") == "balanced" and data.task != "classification":
        from honing._core import ConfigError

        raise ConfigError(f"invalid training.class_weight: got 'balanced' for a {data.task} data set; allowed: "
                          "null (class weights apply to classification)")
    if t.get("loss") or t.get("class_weight"):
        lname, lkw = _bag(t.get("loss") or "cross_entropy")
        if lkw.get("weight") == "balanced" or (t.get("class_weight") == "balanced" and lkw.get("weight") is None):
            lkw["weight"] = data.class_weights()  # n / (K * rows of the class), from the training rows
        from honing.train import create_loss

        loss = create_loss(lname, **lkw)
    augment = None
    spec = recipe["data"].get("augment")
    if spec:
        classes = data.num_outputs if data.task == "classification" else None
        augment = create_augment(spec, num_classes=classes, seed=seed)
    callbacks = list(getattr(model, "transfer_callbacks", []))
    es = t.get("early_stopping")
    if es and early_stopping and with_val:
        callbacks.append(EarlyStopping(**{k: v for k, v in es.items() if v is not None}))
    metrics = (recipe.get("evaluate") or {}).get("metrics")
    trainer = Trainer(model, optimizer, loss=loss, task=data.task, schedule=schedule, metrics=metrics,
                      callbacks=callbacks, augment=augment, reporter=reporter, config=config)
    _metrics_in_target_units(trainer, data)
    if transfer.get("continual") and for_training:  # replay / EWC terms on the Trainer's own loss
        wrapped = continual_loss(recipe, model, trainer.loss_fn, seed=seed)
        if wrapped is not None:
            trainer.loss_fn = wrapped
    return trainer


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


def metric_of(recipe: dict[str, Any], task: str) -> str:
    """The validation metric a search optimizes: tune.metric, else the first validation
    metric among tune.objectives, else the task's default."""
    tune = recipe.get("tune") or {}
    if tune.get("metric"):
        return tune["metric"]
    for obj in tune.get("objectives") or []:
        if str(obj["metric"]).startswith("val_"):
            return obj["metric"]
    return "val_accuracy" if task == "classification" else "val_loss"


def direction_of(recipe: dict[str, Any], metric: str) -> str:
    tune = recipe.get("tune") or {}
    if tune.get("direction"):
        return tune["direction"]
    return "maximize" if resolve_mode(metric, "auto") == "max" else "minimize"


def monitor_of(recipe: dict[str, Any], task: str) -> str:
    """The metric that picks the best epoch: training.monitor, else the search metric."""
    return recipe["training"].get("monitor") or metric_of(recipe, task)


def steps(num_rows: int, batch_size: int | None) -> int:
    return 1 if not batch_size else math.ceil(num_rows / batch_size)
