"""Evaluation metrics as torch functions ``metric(pred, target) -> 0-dim tensor``.

``pred`` is what the model outputs: logits (N, C) for classification (binary: (N,) or (N, 1)
logits, positive when > 0), values (N, K) for regression. ``target`` is class indices (N,),
class probabilities (N, C) (compared through their argmax), or float values (N, K).
The macro averages follow scikit-learn: over the labels present in target or prediction, a
class never predicted has precision 0 (``zero_division=0``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from honing._core import ConfigError, Registry, check_choice

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

METRICS: Registry[MetricFn] = Registry("metric")

TASKS = ("classification", "regression")


def _labels(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Predicted and true class indices (N,) and the number of classes."""
    if pred.dim() == 2 and pred.shape[1] > 1:
        predicted = pred.argmax(dim=1)
        num_classes = pred.shape[1]
    else:  # binary logits
        predicted = (pred.reshape(-1) > 0).long()
        num_classes = 2
    if target.dim() == 2 and target.shape[1] > 1:
        true = target.argmax(dim=1)
    elif target.dtype.is_floating_point:
        true = (target.reshape(-1) >= 0.5).long()
    else:
        true = target.reshape(-1).long()
    if true.shape != predicted.shape:
        raise ConfigError(
            f"metric: {predicted.shape[0]} predictions but {true.shape[0]} targets "
            f"(prediction {tuple(pred.shape)}, target {tuple(target.shape)})"
        )
    if true.numel():
        num_classes = max(num_classes, int(true.max()) + 1)
    return predicted, true.to(predicted.device), num_classes


def _per_class_counts(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """True positives, predicted counts, true counts per class, and the mask of present labels."""
    predicted, true, c = _labels(pred, target)
    confusion = torch.bincount(true * c + predicted, minlength=c * c).reshape(c, c).double()  # (true, pred)
    tp = confusion.diagonal()
    predicted_count = confusion.sum(dim=0)
    true_count = confusion.sum(dim=1)
    present = (predicted_count + true_count) > 0
    return tp, predicted_count, true_count, present


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    predicted, true, _ = _labels(pred, target)
    return (predicted == true).double().mean()


def precision_macro(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    tp, pc, _, present = _per_class_counts(pred, target)
    return _safe_ratio(tp, pc)[present].mean()


def recall_macro(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    tp, _, tc, present = _per_class_counts(pred, target)
    return _safe_ratio(tp, tc)[present].mean()


def f1_macro(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    tp, pc, tc, present = _per_class_counts(pred, target)
    return _safe_ratio(2.0 * tp, pc + tc)[present].mean()  # 2PR/(P+R) == 2TP/(2TP+FP+FN)


def _values(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        if pred.numel() != target.numel() or pred.dim() > 2 or target.dim() > 2:
            raise ConfigError(
                f"metric: prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}"
            )
        target = target.reshape(pred.shape)
    pred, target = pred.double(), target.double()
    if pred.dim() == 1:
        pred, target = pred.unsqueeze(1), target.unsqueeze(1)
    return pred, target  # (N, K)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p, t = _values(pred, target)
    return ((p - t) ** 2).mean()


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p, t = _values(pred, target)
    return (p - t).abs().mean()


def r2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination, averaged over outputs; a constant target scores 1 if
    predicted exactly, else 0 (scikit-learn's ``force_finite``)."""
    p, t = _values(pred, target)
    ss_res = ((t - p) ** 2).sum(dim=0)  # (K,)
    ss_tot = ((t - t.mean(dim=0)) ** 2).sum(dim=0)  # (K,)
    score = torch.where(ss_tot > 0, 1.0 - ss_res / ss_tot.clamp(min=torch.finfo(torch.float64).tiny), (ss_res == 0).double())
    return score.mean()


METRICS.register("accuracy", accuracy, description="fraction of correct predictions", aliases=("acc",),
                 task="classification", greater_is_better=True)
METRICS.register("f1_macro", f1_macro, description="F1 averaged over classes (macro)", aliases=("f1",),
                 task="classification", greater_is_better=True)
METRICS.register("balanced_accuracy", recall_macro, description="accuracy averaged over classes (macro recall): "
                 "each class counts the same, however rare", task="classification", greater_is_better=True)
METRICS.register("precision_macro", precision_macro, description="precision averaged over classes (macro)",
                 aliases=("precision",), task="classification", greater_is_better=True)
METRICS.register("recall_macro", recall_macro, description="recall averaged over classes (macro; = balanced_accuracy)",
                 aliases=("recall",), task="classification", greater_is_better=True)
METRICS.register("mse", mse, description="mean squared error", task="regression", greater_is_better=False)
METRICS.register("mae", mae, description="mean absolute error", task="regression", greater_is_better=False)
METRICS.register("r2", r2, description="coefficient of determination", task="regression", greater_is_better=True)

_DEFAULTS = {"classification": ["accuracy", "balanced_accuracy", "f1_macro", "precision_macro"],
             "regression": ["mse", "mae", "r2"]}


def default_metrics(task: str) -> list[str]:
    check_choice("task", task, TASKS)
    return list(_DEFAULTS[task])


def list_metrics() -> list[str]:
    return METRICS.names()


def resolve_metrics(metrics: Iterable[str | MetricFn] | Mapping[str, str | MetricFn] | None, task: str) -> dict[str, MetricFn]:
    """``None`` -> the task's defaults; names, callables, or a name -> metric mapping -> {key: fn}.

    The key is the log name (``val_<key>``): the name as given, or a callable's ``__name__``.
    """
    if metrics is None:
        metrics = default_metrics(task)
    items: Iterable[tuple[str, Any]]
    if isinstance(metrics, Mapping):
        items = metrics.items()
    elif isinstance(metrics, (str, bytes)) or not isinstance(metrics, Iterable):
        raise ConfigError(f"invalid metrics: got {metrics!r}; allowed: a list of metric names/callables, a mapping, or None")
    else:
        items = ((m if isinstance(m, str) else getattr(m, "__name__", type(m).__name__), m) for m in metrics)
    out: dict[str, MetricFn] = {}
    for key, m in items:
        fn = METRICS.get(m) if isinstance(m, str) else m
        if not callable(fn):
            raise ConfigError(f"invalid metric {key!r}: got {m!r}; allowed: a name ({', '.join(METRICS.names())}) or a callable")
        if key in out or key == "loss":
            raise ConfigError(f"invalid metrics: the name {key!r} appears twice (or clashes with 'loss')")
        out[key] = fn
    return out


_HIGHER_IS_BETTER_WORDS = ("acc", "f1", "precision", "recall", "r2", "auc", "score")


def resolve_mode(monitor: str, mode: str) -> str:
    """``"min"`` or ``"max"``; ``"auto"`` is max for accuracy/f1/precision/recall/r2, min otherwise."""
    check_choice("mode", mode, ("auto", "min", "max"))
    if mode != "auto":
        return mode
    base = monitor
    for prefix in ("val_", "test_", "train_"):
        if base.startswith(prefix):
            base = base[len(prefix):]
            break
    if base in METRICS:
        return "max" if METRICS.entry(base).meta.get("greater_is_better") else "min"
    if "loss" in base or "error" in base:
        return "min"
    return "max" if any(w in base.lower() for w in _HIGHER_IS_BETTER_WORDS) else "min"
