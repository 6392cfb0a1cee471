"""The one home of each rule that turns recipe sections into engine arguments.

The search metric, its direction, the metric that picks the best epoch and the arguments of
``honing.data.load`` are decided here and nowhere else (the Trainer's config in
``TrainingSection.to_train_config``); the recipe's checks and the pipeline both call these.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honing.recipe._sections import direction_for

if TYPE_CHECKING:
    from honing.recipe._schema import Recipe

DEFAULT_SEARCH_METRIC = {"classification": "val_accuracy", "regression": "val_loss"}
# data-section keys that are not arguments of honing.data.load
_NOT_LOAD_ARGS = ("source", "augment")


def search_metric(recipe: Recipe, task: str | None) -> str | None:
    """The validation metric a search optimizes: ``tune.metric``, else the first validation
    metric among ``tune.objectives``, else the task's default (None while the task is unknown)."""
    tune = recipe.tune
    if tune is not None and tune.metric:
        return tune.metric
    for obj in (tune.objectives if tune is not None else None) or []:
        if obj.metric.startswith("val_"):
            return obj.metric
    return DEFAULT_SEARCH_METRIC.get(task) if task else None


def search_directions(recipe: Recipe, task: str) -> list[str]:
    """One direction per objective: the objectives' own, else ``tune.direction``, else the
    metric's natural one (maximize accuracy-like metrics, minimize the rest)."""
    tune = recipe.tune
    if tune is not None and tune.objectives:
        return [o.direction for o in tune.objectives]
    if tune is not None and tune.direction:
        return [tune.direction]
    return [direction_for(search_metric(recipe, task) or "val_loss")]


def monitor(recipe: Recipe, task: str) -> str:
    """The metric that picks the best epoch: ``training.monitor``, else the search metric."""
    return recipe.training.monitor or search_metric(recipe, task) or "val_loss"


def load_args(recipe: Recipe | Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``honing.data.load`` from the data section (unset ones left out),
    the seed, and what a transfer source adds (a tokenizer, a honing model's preprocessing).
    Takes a Recipe, or a resolved recipe as stored in a model folder's recipe.json."""
    if not isinstance(recipe, Mapping):
        data = recipe.data.model_dump(mode="json", by_alias=True)
        transfer = recipe.transfer.model_dump(mode="json", by_alias=True) if recipe.transfer is not None else None
        seed = recipe.seed
        evaluate = recipe.evaluate.model_dump(mode="json")
    else:
        data, transfer, seed = recipe["data"], recipe.get("transfer"), recipe.get("seed", 0)
        evaluate = recipe.get("evaluate") or {}
    args = {k: v for k, v in data.items() if k not in _NOT_LOAD_ARGS and v is not None and v != [] and v != ()}
    args["seed"] = seed
    if evaluate.get("groups"):  # the fairness audit's columns: their labels kept per split
        args["groups"] = list(evaluate["groups"])
        if evaluate.get("group_inputs") is False:
            args["group_inputs"] = False
    args.update(transfer_load_args(transfer))
    return args


def transfer_load_args(transfer: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a transfer source adds to ``honing.data.load``'s arguments: the text encoder's
    tokenizer, or a ``honing:`` model's own fitted preprocessing (``transfer.preprocessing``)."""
    if not transfer:
        return {}
    from honing.transfer import tokenizer_folder

    folder = tokenizer_folder(transfer["from"])
    if folder is not None:
        return {"tokenizer": str(folder)}
    if transfer["from"].startswith("honing:") and transfer.get("preprocessing", "source") == "source":
        folder = Path(transfer["from"].partition(":")[2])
        if not (folder / "meta.json").is_file() and not (folder / "model" / "meta.json").is_file():
            from honing._core import DataError

            raise DataError(f"invalid transfer.from {transfer['from']!r}: not a honing model folder (no meta.json); "
                            "allowed: a run folder or its model/ folder written by `honing run` / `honing train`")
        return {"preprocessor": str(folder)}
    return {}
