"""The recipe's ``transfer`` section in the pipeline: a plan, not side channels.

``transfer_plan`` builds the model (backbone from ``transfer.from``, a new head, the strategy
applied; ``few_shot`` fits its prototypes) and returns what the Trainer needs beside it: the
strategy's callbacks, a wrapper of the Trainer's loss (replay / EWC on the old task of a
``honing:`` source) and whether the model trains at all. ``transfer_results`` is the
``transfer`` entry of results.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from honing._core import ConfigError
from honing.data import Dataset, load


@dataclass
class ModelPlan:
    """A built model and what its training needs beside the recipe's training section."""

    model: nn.Module
    callbacks: list[Any] = field(default_factory=list)
    wrap_loss: Callable[[Any], Any] | None = None  # base loss -> the loss the Trainer minimizes
    trains: bool = True  # False: few-shot prototypes, nothing to train
    layer_decay: float | None = None  # transfer.layer_decay, when the optimizer section sets none


class DataMemo:
    """Data sets a run (or one worker process) loads once: the run's own and a source model's
    old task, one of each kind (the part of the key before ':'): a trial that searches a data
    option replaces the set it keeps. Owned by the run context or the objective; never global."""

    def __init__(self) -> None:
        self._sets: dict[str, Dataset] = {}

    def get(self, key: str, loader: Callable[[], Dataset]) -> Dataset:
        if key not in self._sets:
            self.put(key, loader())
        return self._sets[key]

    def put(self, key: str, data: Dataset) -> None:
        kind = key.partition(":")[0]
        for other in [k for k in self._sets if k.partition(":")[0] == kind]:
            del self._sets[other]
        self._sets[key] = data

    def clear(self) -> None:
        self._sets.clear()


def transfer_plan(recipe: Any, data: Dataset, *, seed: int, memo: DataMemo | None = None) -> ModelPlan:
    from honing.transfer import LoraConfig, TransferConfig, TransferModel, fit_prototypes, load_backbone, prepare

    t = recipe.transfer
    backbone = load_backbone(t.source, **({"image_size": t.image_size} if t.image_size else {}))
    _check_input(backbone, data, t.source)
    torch.manual_seed(seed)  # the new head's initial weights
    model = TransferModel(backbone, data.num_outputs, hidden=list(t.head.hidden), dropout=t.head.dropout)
    lora = t.lora
    config = TransferConfig(
        strategy=t.strategy, freeze_blocks=t.freeze_blocks, unfreeze=t.unfreeze, layer_decay=t.layer_decay,
        shots=t.shots,
        lora=LoraConfig(r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                        targets=tuple(lora.targets) if lora.targets else None),
    )
    callbacks = prepare(model, config)
    few_shot = t.strategy == "few_shot"
    if few_shot:
        if data.task != "classification":
            raise ConfigError(f"invalid transfer.strategy: few_shot needs a classification task; got {data.task}")
        fit_prototypes(model, data.train.x, data.train.y, shots=config.shots, seed=seed)
    return ModelPlan(model, list(callbacks), _continual_wrapper(recipe, model, seed=seed, memo=memo),
                     trains=not few_shot, layer_decay=t.layer_decay)


def _check_input(backbone: Any, data: Dataset, source: str) -> None:
    meta = getattr(backbone, "source_meta", None)
    if meta is not None and tuple(meta["input_shape"]) != tuple(data.input_shape):
        raise ConfigError(f"invalid transfer.from {source!r}: the model takes inputs of shape "
                          f"{tuple(meta['input_shape'])}, the data set's are {tuple(data.input_shape)}")
    if backbone.kind == "image" and len(data.input_shape) not in (2, 3):
        raise ConfigError(f"invalid transfer.from {source!r}: an image backbone needs image data; got rows of "
                          f"shape {tuple(data.input_shape)} (for sklearn:digits set data.image: true)")


# ------------------------------------------------------------------------------- continual

def old_task(recipe: Any, model: nn.Module, memo: DataMemo | None) -> Dataset | None:
    """The old task's data set of a ``honing:`` source (loaded as the source's own run did)."""
    import json

    from honing.recipe import load_args

    t = recipe.transfer
    source_recipe = getattr(getattr(model, "backbone", None), "source_recipe", None)
    if t is None or t.continual is None or source_recipe is None:
        return None
    key = "old-task:" + json.dumps(source_recipe.get("data"), sort_keys=True)
    loader = lambda: load(source_recipe["data"]["source"], **load_args(source_recipe))  # noqa: E731
    return (memo or DataMemo()).get(key, loader)


def _continual_wrapper(recipe: Any, model: nn.Module, *, seed: int, memo: DataMemo | None) -> Any:
    """base loss -> the loss with replay / EWC terms (None when the recipe asks for neither)."""
    c = recipe.transfer.continual
    if c is None or (not c.replay and not c.ewc):
        return None

    def wrap(base: Any) -> Any:
        from honing.transfer import EWC, ContinualLoss, Replay

        old = old_task(recipe, model, memo)
        if old is None:
            return base
        replay = Replay(old.train.x, old.train.y, size=c.replay, seed=seed) if c.replay else None
        ewc = EWC(model, old.train.x, old.train.y, seed=seed) if c.ewc else None
        return ContinualLoss(base, model, ewc=ewc, ewc_lambda=c.ewc or 0.0, replay=replay,
                             replay_weight=c.replay_weight)

    return wrap


def transfer_results(recipe: Any, model: nn.Module, memo: DataMemo | None = None) -> dict[str, Any]:
    """The ``transfer`` entry of results.json: strategy, parameters trained, the old task's score."""
    from honing.models import count_parameters
    from honing.transfer import TransferModel, forgetting, load_backbone, old_task_accuracy

    t = recipe.transfer
    out: dict[str, Any] = {"from": t.source, "strategy": t.strategy,
                           "parameters": count_parameters(model, trainable_only=False),
                           "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    old = old_task(recipe, model, memo)
    if old is not None and old.test is not None:
        untouched = TransferModel(load_backbone(t.source), model.num_outputs)
        before = old_task_accuracy(untouched, old.test.x, old.test.y)
        out["old_task"] = {"source": old.source, **forgetting(before, old_task_accuracy(model, old.test.x, old.test.y))}
    return out
