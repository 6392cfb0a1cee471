"""The fairness audit of a classifier's predictions: metrics per group and the gaps between
groups, for each group column, through Fairlearn's ``MetricFrame``.

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
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from honing._core import ConfigError

__all__ = ["fairness_audit"]


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
