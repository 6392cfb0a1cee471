"""The fairness audit of a model's predictions: metrics per group and the gaps between groups,
for each group column, through Fairlearn's ``MetricFrame``.

A classifier (``fairness_audit``):

Per group: rows, accuracy, F1 (the positive class's for two classes, macro otherwise), the
positive rate (how often the positive class is predicted), and the true-positive,
false-positive and false-negative rates. Gaps between groups:

* ``demographic_parity_difference``: the largest minus the smallest positive rate (0 is parity);
  ``demographic_parity_ratio``: smallest over largest (the "80% rule" asks >= 0.8);
* ``equalized_odds_difference``: the larger of the TPR gap and the FPR gap (0: equal error rates);
* ``accuracy_difference``: the best group's accuracy minus the worst's.

With more than two classes each class is in turn the positive one (one against the rest); the
per-group rates are then averaged over classes (macro) and each gap is the largest over classes,
with the class it comes from. A group with fewer than ``min_rows`` rows is listed in
``few_rows``: its rates are noise.

A regression model (``regression_audit``), in the target's units: per group, rows, the mean
absolute error, the root mean squared error, the mean error (prediction minus truth: above 0,
the group is over-predicted) and the mean prediction and target. Gaps: ``mae_difference`` (worst
group's MAE minus the best's), ``mean_error_difference`` (the spread of the groups' mean errors:
0 when the model errs the same way for every group) and ``mean_prediction_difference`` (the
regression counterpart of demographic parity; it also reflects real differences between the
groups' targets, shown beside it as ``mean_target_difference``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from honing._core import ConfigError

__all__ = ["fairness_audit", "regression_audit"]


def _fairlearn() -> Any:
    try:
        import fairlearn.metrics as fm
    except ImportError:  # pragma: no cover - the extra is in the test lock
        raise ConfigError("the fairness audit needs Fairlearn: pip install 'honing[fairness]'") from None
    return fm


def _number(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def _binary_frame(fm: Any, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> Any:
    from sklearn.metrics import accuracy_score, f1_score

    metrics = {
        "accuracy": accuracy_score,
        "f1": lambda t, p: f1_score(t, p, zero_division=0),
        "positive_rate": fm.selection_rate,
        "tpr": fm.true_positive_rate,
        "fpr": fm.false_positive_rate,
        "fnr": fm.false_negative_rate,
    }
    with warnings.catch_warnings():  # a group without positives (or negatives) has an undefined rate
        warnings.simplefilter("ignore")
        return fm.MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)


def _gaps(frame: Any) -> dict[str, float | None]:
    table = frame.by_group
    rates = table["positive_rate"].astype(float)
    tpr, fpr = table["tpr"].astype(float), table["fpr"].astype(float)
    hi = float(rates.max())
    return {
        "demographic_parity_difference": _number(hi - rates.min()),
        "demographic_parity_ratio": _number(rates.min() / hi) if hi > 0 else None,
        "equalized_odds_difference": _number(max(tpr.max() - tpr.min(), fpr.max() - fpr.min())),
    }


def fairness_audit(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    class_names: Sequence[str] | None = None,
    positive: int = 1,
    min_rows: int = 30,
) -> dict[str, Any]:
    """Per-group metrics and gaps for each group column (``groups``: column -> each row's group).
    ``y_true`` and ``y_pred`` are class indices; ``positive``: the positive class of a two-class
    task (default the second). JSON-able."""
    fm = _fairlearn()
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    if len(y_true) != len(y_pred):
        raise ConfigError(f"y_true and y_pred differ in length: {len(y_true)} != {len(y_pred)}")
    k = int(max(y_true.max(initial=0), y_pred.max(initial=0)) + 1)
    k = max(k, len(class_names) if class_names is not None else 0, 2)
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    binary = k == 2
    out: dict[str, Any] = {"rows": int(len(y_true)), "classes": k,
                           "positive_class": names[positive] if binary else None, "columns": {}}
    for column, values in groups.items():
        g = np.asarray(values, dtype=object)
        if len(g) != len(y_true):
            raise ConfigError(f"group column {column!r} has {len(g)} values for {len(y_true)} rows")
        labels = sorted(set(g.tolist()), key=str)
        counts = {str(v): int((g == v).sum()) for v in labels}
        targets = [positive] if binary else list(range(k))
        frames = [(c, _binary_frame(fm, (y_true == c).astype(int), (y_pred == c).astype(int), g)) for c in targets]
        per_group: dict[str, dict[str, Any]] = {}
        for v in labels:
            mask = g == v
            right = float((y_true[mask] == y_pred[mask]).mean()) if mask.any() else None
            row: dict[str, Any] = {"rows": counts[str(v)], "accuracy": right}
            for name in ("f1", "positive_rate", "tpr", "fpr", "fnr"):
                vals = [_number(frame.by_group.loc[v, name]) for _, frame in frames]
                vals = [x for x in vals if x is not None]
                row[name] = float(np.mean(vals)) if vals else None
            per_group[str(v)] = row
        gaps: dict[str, Any] = {}
        for key in ("demographic_parity_difference", "equalized_odds_difference"):
            by_class = [(c, _gaps(frame)[key]) for c, frame in frames]
            by_class = [(c, x) for c, x in by_class if x is not None]
            c, worst = max(by_class, key=lambda t: t[1]) if by_class else (None, None)
            gaps[key] = worst
            if not binary and c is not None:
                gaps[key + "_class"] = names[c]
        ratios = [_gaps(frame)["demographic_parity_ratio"] for _, frame in frames]
        ratios = [r for r in ratios if r is not None]
        gaps["demographic_parity_ratio"] = min(ratios) if ratios else None
        accs = {v: r["accuracy"] for v, r in per_group.items() if r["accuracy"] is not None}
        gaps["accuracy_difference"] = max(accs.values()) - min(accs.values()) if accs else None
        out["columns"][column] = {
            "groups": per_group, **gaps,
            "worst_group": min(accs, key=accs.get) if accs else None,
            "few_rows": [v for v, n in counts.items() if n < min_rows],
        }
    return out


def regression_audit(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    groups: Mapping[str, Sequence[Any] | np.ndarray],
    *,
    min_rows: int = 30,
) -> dict[str, Any]:
    """Per-group errors and gaps of a regression model for each group column (``groups``: column
    -> each row's group). ``y_true`` and ``y_pred``: (N,) or (N, k) in the target's units; with
    several outputs each figure is the mean over them. JSON-able."""
    fm = _fairlearn()
    y_true = np.asarray(y_true, dtype=float).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape:
        raise ConfigError(f"y_true and y_pred differ in shape: {y_true.shape} != {y_pred.shape}")
    metrics = {
        "mae": lambda t, p: float(np.abs(p - t).mean()),
        "rmse": lambda t, p: float(np.sqrt(((p - t) ** 2).mean())),
        "mean_error": lambda t, p: float((p - t).mean()),
        "mean_prediction": lambda t, p: float(p.mean()),
        "mean_target": lambda t, p: float(t.mean()),
    }
    out: dict[str, Any] = {"task": "regression", "rows": int(len(y_true)), "outputs": int(y_true.shape[1]),
                           "columns": {}}
    for column, values in groups.items():
        g = np.asarray(values, dtype=object)
        if len(g) != len(y_true):
            raise ConfigError(f"group column {column!r} has {len(g)} values for {len(y_true)} rows")
        frames = [fm.MetricFrame(metrics=metrics, y_true=y_true[:, j], y_pred=y_pred[:, j], sensitive_features=g)
                  for j in range(y_true.shape[1])]
        labels = sorted(set(g.tolist()), key=str)
        per_group = {str(v): {"rows": int((g == v).sum()),
                              **{m: float(np.mean([f.by_group.loc[v, m] for f in frames])) for m in metrics}}
                     for v in labels}
        spread = lambda m: max(r[m] for r in per_group.values()) - min(r[m] for r in per_group.values())  # noqa: E731
        maes = {v: r["mae"] for v, r in per_group.items()}
        out["columns"][column] = {
            "groups": per_group,
            "mae_difference": spread("mae"), "mean_error_difference": spread("mean_error"),
            "mean_prediction_difference": spread("mean_prediction"), "mean_target_difference": spread("mean_target"),
            "worst_group": max(maes, key=maes.get),
            "few_rows": [v for v, r in per_group.items() if r["rows"] < min_rows],
        }
    return out
