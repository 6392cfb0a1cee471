"""The objective of a search: one trial = one recipe with the trial's parameters, trained and validated.

Holdout: one Trainer, its validation metric reported each epoch so a weak trial stops early.
k-fold: k Trainers run in lockstep (``Trainer.iter_fit``); the fold-averaged curve is what is
reported, so early stopping of trials works under cross-validation too, and early stopping
of training watches the averaged curve.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from honing._core import atomic_save_file
from honing.data import Dataset
from honing.models import count_parameters
from honing.pipeline._build import build_model, build_trainer, load_args, load_data, metric_of
from honing.pipeline._transfer import is_few_shot
from honing.train import EarlyStopping, resolve_mode

_DATA_CACHE: dict[str, Dataset] = {}  # per process: workers load the data once


def cached_data(recipe: dict[str, Any]) -> Dataset:
    key = json.dumps([recipe["data"]["source"], load_args(recipe)], sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_data(recipe)
    return _DATA_CACHE[key]


def release_data() -> None:
    """Drop this process's cached data set (the parent of a multi-worker search does not train)."""
    _DATA_CACHE.clear()


def median_forward_ms(model: Any, x: torch.Tensor, *, repeats: int, warmup: int = 5) -> float:
    """Median wall time of ``model(x)`` in milliseconds, after ``warmup`` untimed calls
    (no autograd; ``model`` is anything callable: a module, an ONNX Runtime session, ...)."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def measure_latency_ms(model: torch.nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, repeats: int = 50) -> float:
    """Median wall time of one forward pass on random inputs (eval mode), in milliseconds."""
    model.eval()
    return median_forward_ms(model, torch.randn(batch, *input_shape), repeats=repeats)


class RecipeObjective:
    """``objective(params, reporter)`` for ``honing.tune.optimize``; picklable (crosses to workers)."""

    def __init__(self, recipe: dict[str, Any], run_dir: str, *, threads: int | None = 1,
                 save_weights: bool = False) -> None:
        self.recipe = recipe
        self.run_dir = str(run_dir)
        self.threads = threads
        self.save_weights = save_weights

    def __call__(self, params: dict[str, Any], reporter: Any) -> float | list[float]:
        from honing.recipe import parse_recipe
        from honing.tune import Pruned

        recipe = parse_recipe(self.recipe).with_params(params).to_dict()
        data = cached_data(recipe)
        metric = metric_of(recipe, data.task)
        seed = int(getattr(reporter, "seed", recipe.get("seed", 0)))
        k = (recipe.get("tune") or {}).get("cv")
        run = self._cross_validate if k else self._holdout
        self._losses: list[float] = []  # validation loss per epoch (fold-averaged): breaks ties between trials
        curve, best_epoch, model, pruned, reason = run(recipe, data, metric, seed, reporter)
        reporter.set("curve", [round(v, 6) for v in curve])
        reporter.set("best_epoch", best_epoch)
        if len(self._losses) >= best_epoch and self._losses[best_epoch - 1] == self._losses[best_epoch - 1]:
            reporter.set("val_loss", self._losses[best_epoch - 1])
        reporter.set("epochs_run", len(curve))
        reporter.set("stop_reason", reason)
        reporter.set("parameters", count_parameters(model))
        if pruned:
            raise Pruned(reason)
        if self.save_weights:
            path = Path(self.run_dir) / "trials" / f"{int(reporter.number)}.safetensors"
            state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
            atomic_save_file(path, lambda tmp: save_file(state, tmp))
        best = curve[best_epoch - 1]
        objectives = (recipe.get("tune") or {}).get("objectives")
        if not objectives:
            return best
        values = []
        for obj in objectives:
            name = obj["metric"]
            if name == "params":
                values.append(float(count_parameters(model)))
            elif name == "latency_ms":
                values.append(measure_latency_ms(model, data.input_shape))
            elif name == metric:
                values.append(best)
            else:
                raise ValueError(f"objective {name!r}: only the search metric {metric!r}, 'params' and "
                                 "'latency_ms' can be objectives")
        return values

    # --- holdout and k-fold --------------------------------------------------------------------

    def _holdout(self, recipe, data, metric, seed, reporter):
        model = build_model(recipe, data, seed=seed)
        trainer = build_trainer(recipe, model, data, seed=seed, num_train=len(data.train), threads=self.threads)
        if is_few_shot(recipe):  # prototypes: nothing to train, one evaluation
            value = float(trainer.evaluate(data.val, prefix="val_")[metric])
            reporter.report(value, 1)
            return [value], 1, model, False, "few-shot prototypes (no training)"
        curve: list[float] = []
        pruned = False
        for logs in trainer.iter_fit(data.train, data.val):
            curve.append(float(logs[metric]))
            self._losses.append(float(logs.get("val_loss", float("nan"))))
            reporter.report(curve[-1], int(logs["epoch"]))
            if reporter.should_prune():
                pruned = True
                trainer.request_stop(f"pruned at epoch {logs['epoch']}")
        result = trainer.result
        best_epoch = _best_epoch(curve, resolve_mode(metric, "auto"))
        return curve, best_epoch, model, pruned, result.stop_reason

    def _cross_validate(self, recipe, data, metric, seed, reporter):
        k = int(recipe["tune"]["cv"])
        folds = data.folds(k, seed=int(recipe.get("seed", 0)))
        trainers, runs = [], []
        for train, val in folds:
            model = build_model(recipe, data, seed=seed)
            trainer = build_trainer(recipe, model, data, seed=seed, num_train=len(train), threads=self.threads,
                                    early_stopping=False)
            trainers.append(trainer)
            runs.append(trainer.iter_fit(train, val))
        es_spec = recipe["training"].get("early_stopping")
        stopper = EarlyStopping(**{k_: v for k_, v in es_spec.items() if v is not None}) if es_spec else None
        if stopper is not None and stopper.monitor != metric:
            stopper = EarlyStopping(**{**{k_: v for k_, v in es_spec.items() if v is not None}, "monitor": metric})
        curve: list[float] = []
        pruned, reason = False, None
        for logs in zip(*runs):
            epoch = int(logs[0]["epoch"])
            curve.append(sum(float(entry[metric]) for entry in logs) / k)
            self._losses.append(sum(float(entry.get("val_loss", float("nan"))) for entry in logs) / k)
            reporter.report(curve[-1], epoch)
            if reporter.should_prune():
                pruned, reason = True, f"pruned at epoch {epoch}"
            elif stopper is not None:
                stop, why = stopper.check(curve[-1], epoch)
                if stop:
                    reason = f"{why} (fold-averaged)"
            if reason is not None:
                for trainer in trainers:
                    trainer.request_stop(reason)
        for run in runs:  # let each fold finish its bookkeeping
            for _ in run:
                pass
        best_epoch = _best_epoch(curve, resolve_mode(metric, "auto"))
        return curve, best_epoch, trainers[0].model, pruned, reason or f"completed {len(curve)} epochs"


def _best_epoch(curve: list[float], mode: str) -> int:
    pick = max if mode == "max" else min
    return 1 + curve.index(pick(curve))
