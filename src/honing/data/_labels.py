"""Suspect labels: rows whose given class a simple model, trained without them, finds unlikely
while it confidently predicts another one.

The rule is confident learning's (Northcutt, Jiang and Chuang, "Confident learning: estimating
uncertainty in dataset labels", JAIR 2021): from out-of-fold predicted probabilities, each class
``j`` gets a threshold ``t_j``, the mean probability of ``j`` over the rows labelled ``j``. A row
is confidently of the classes whose probability reaches their threshold; the most probable of
those is its likely class. A row whose likely class exists and is not its given label is a
suspect (an off-diagonal entry of the "confident joint"). Suspects are ranked by the
probability of their given label (self-confidence), lowest first.

```python
from honing.data import find_label_issues, out_of_fold_probabilities

probs = out_of_fold_probabilities(features, labels, num_classes=10, folds=5, seed=0)
issues = find_label_issues(probs, labels)
issues.rows, issues.given, issues.suggested, issues.confidence
```

``honing.data.load(check_labels="report" | "drop")`` runs it on the train+validation rows
(never the test rows) with a logistic regression on the prepared inputs, and ``drop`` leaves the
suspect training rows out (validation rows are only reported, so validation scores are not made
easier by removing hard rows).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from honing._core import ConfigError, DataError

LABEL_CHECKS = ("report", "drop")
LISTED = 50  # suspects listed in the data summary (all of them are counted)
MAX_ITER = 300  # the logistic regression's iterations (lbfgs); 784 pixels may stop it there unconverged


@dataclass
class LabelIssues:
    """Suspect rows, least self-confident first: ``rows`` (positions in the arrays checked),
    ``given`` and ``suggested`` labels, ``confidence`` (the probability of the given label), and
    the per-class ``thresholds``."""

    rows: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray
    thresholds: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def find_label_issues(probs: Any, labels: Any) -> LabelIssues:
    """The suspect rows of ``labels`` (N,) given out-of-fold class probabilities ``probs`` (N, K)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ConfigError(f"invalid probabilities and labels: got shapes {p.shape} and {y.shape}; allowed: (N, K) "
                          "and (N,)")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ConfigError(f"invalid labels: got values in [{y.min()}, {y.max()}]; allowed: 0 .. {p.shape[1] - 1}")
    k = p.shape[1]
    thresholds = np.full(k, np.inf)  # a class no row is given is never a row's likely class
    for j in range(k):
        given = y == j
        if given.any():
            thresholds[j] = p[given, j].mean()
    confident = p >= thresholds  # (N, K): the classes each row is confidently of
    likely = np.where(confident.any(1), np.where(confident, p, -np.inf).argmax(1), -1)
    suspect = (likely >= 0) & (likely != y)
    rows = np.nonzero(suspect)[0]
    rows = rows[np.argsort(p[rows, y[rows]], kind="stable")]  # the given label's probability, lowest first
    return LabelIssues(rows, y[rows], likely[rows], p[rows, y[rows]], thresholds)


def out_of_fold_probabilities(features: Any, labels: Any, *, num_classes: int, folds: int = 5,
                              seed: int = 0) -> np.ndarray:
    """(N, num_classes) class probabilities of each row from a logistic regression (scikit-learn,
    inputs standardized) fitted on the other folds: no row is scored by a model that saw its
    label. Stratified folds when every class has ``folds`` rows, else plain ones."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels).astype(np.int64)
    if len(y) < 2 * folds:
        raise DataError(f"too few rows to check labels: {len(y)}; allowed: at least {2 * folds} ({folds} folds)")
    counts = np.bincount(y, minlength=num_classes)
    present = counts[counts > 0]
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if present.min() >= folds
                else KFold(folds, shuffle=True, random_state=seed))
    out = np.zeros((len(y), num_classes))
    for train, held in splitter.split(x, y):
        if len(np.unique(y[train])) < 2:  # one class left: it is certain
            out[held, y[train][0]] = 1.0
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
        with warnings.catch_warnings():  # many inputs (pixels) stop it at MAX_ITER: its probabilities still serve
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[train], y[train])
        out[np.ix_(held, model.classes_)] = model.predict_proba(x[held])
    return out


def check_choice_of_labels(value: Any) -> str | None:
    if value is not None and value not in LABEL_CHECKS:
        raise ConfigError(f"invalid check_labels: got {value!r}; allowed: report, drop, or None (no check)")
    return value
