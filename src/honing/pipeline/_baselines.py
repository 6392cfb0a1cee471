"""Quick standard baselines, fitted on the same rows and scored on the same test rows as honing's
model, so a user can tell whether the model is any good.

Every task gets the constant baseline (majority class / mean). Tabular data adds a linear model
(logistic regression / ridge) and gradient boosting (scikit-learn's histogram GBM); images and
sequences add the linear model on the prepared inputs; text adds TF-IDF + logistic regression
over the encoder's tokens (unigrams and bigrams). They learn from the training and validation
rows (what the final model learns from) with the same preprocessing, and are scored with the
same metrics, in the target's own units.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from honing.data import Dataset
from honing.train import resolve_metrics, resolve_mode

MAX_LINEAR_ROWS = {"array": 10_000, "tabular": 200_000, "text": 200_000}  # rows a baseline is fitted on (seeded)
IMBALANCE_RATIO = 3.0  # largest / smallest class in the training rows: at or above it, a set is imbalanced
# the test metric a comparison leads with, in order of preference
_PRIMARY = {"classification": ("accuracy", "f1_macro", "balanced_accuracy"),
            "imbalanced": ("f1_macro", "balanced_accuracy", "accuracy"),
            "regression": ("r2", "mse", "mae")}


def imbalance(data: Dataset) -> dict[str, Any] | None:
    """For classification: the training rows' largest/smallest class ratio and whether it is
    imbalanced (ratio >= IMBALANCE_RATIO), and the classes with too few validation or test rows."""
    if data.task != "classification":
        return None
    counts = data.info.get("class_counts") or {}
    train = np.asarray(counts.get("train") or torch.bincount(data.train.y, minlength=data.num_outputs).tolist())
    present = train[train > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    names = data.class_names or [str(i) for i in range(data.num_outputs)]
    few = {split: [names[i] for i, c in enumerate(counts[split]) if c < 5 and (train[i] > 0)]
           for split in ("val", "test") if split in counts and sum(counts[split])}
    return {"ratio": round(ratio, 2), "imbalanced": ratio >= IMBALANCE_RATIO,
            "majority_share": round(float(train.max() / max(train.sum(), 1)), 4),
            "few_rows": {k: v for k, v in few.items() if v}}


def primary_metric(task: str, metrics: dict[str, float], imbalanced: bool) -> str | None:
    """The test metric results lead with: accuracy (macro F1 for imbalanced classes), R2 for regression."""
    order = _PRIMARY["imbalanced" if imbalanced else task] if task == "classification" else _PRIMARY[task]
    return next((m for m in order if m in metrics), next(iter(metrics), None))


def fit_baselines(data: Dataset, metric_names: Any, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """{name: {"metrics": {...}, "seconds": s, "rows": n, "what": "..."}} on ``data.test``."""
    if data.test is None:
        return {}
    kind = getattr(data.preprocessor, "kind", "tabular")
    kind = kind if kind in ("tabular", "text") else "array"
    x, y = _fit_rows(data)
    rng = np.random.default_rng(seed)
    cap = MAX_LINEAR_ROWS[kind]
    sample = np.sort(rng.choice(len(y), size=cap, replace=False)) if len(y) > cap else None
    metrics = resolve_metrics(metric_names, data.task)
    out: dict[str, dict[str, Any]] = {}
    for name, what, make in _candidates(data.task, kind, seed):
        t0 = time.perf_counter()
        xs, ys = (x, y) if sample is None else ([x[i] for i in sample] if kind == "text" else x[sample], y[sample])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter of a quick baseline
                pred = make(xs, ys, _inputs(data.test.x, kind, _pad(data)))
        except (ValueError, MemoryError) as err:  # a baseline that cannot fit this data is skipped, not fatal
            out[name] = {"error": f"{type(err).__name__}: {str(err)[:200]}", "what": what}
            continue
        scores = _score(pred, data, metrics)
        out[name] = {"metrics": scores, "seconds": round(time.perf_counter() - t0, 3), "rows": int(len(ys)),
                     "what": what}
    return out


def compare(metric: str | None, test_metrics: dict[str, float],
            baselines: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """honing's model against the best baseline on ``metric`` (the primary test metric)."""
    scored = {k: v for k, v in baselines.items() if "metrics" in v}
    if metric is None or not scored:
        return None
    higher = resolve_mode(metric, "auto") == "max"
    values = {k: v["metrics"][metric] for k, v in scored.items() if metric in v["metrics"]}
    if not values:
        return None
    best = (max if higher else min)(values, key=values.get)
    model = test_metrics[metric]
    better = model > values[best] if higher else model < values[best]
    return {"metric": metric, "model": model, "best_baseline": best, "baseline": values[best], "better": bool(better)}


# --- the candidates --------------------------------------------------------------------------


def _candidates(task: str, kind: str, seed: int) -> list[tuple[str, str, Any]]:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multioutput import MultiOutputRegressor

    if task == "classification":
        out = [("majority", "the most frequent training class for every row",
                _classifier(lambda: DummyClassifier(strategy="most_frequent")))]
        if kind == "text":
            out.append(("tfidf_logistic_regression", "TF-IDF of the encoder's tokens (1-2 grams) + logistic regression",
                        _text_classifier(seed)))
            return out
        out.append(("logistic_regression", "logistic regression on the prepared inputs",
                    _classifier(lambda: LogisticRegression(max_iter=300, random_state=seed))))
        if kind == "tabular":
            out.append(("gradient_boosting", "histogram gradient boosting (scikit-learn defaults)",
                        _classifier(lambda: HistGradientBoostingClassifier(random_state=seed))))
        return out
    out = [("mean", "the mean training target for every row", _regressor(lambda: DummyRegressor()))]
    if kind == "text":
        return out
    out.append(("ridge", "ridge regression on the prepared inputs", _regressor(lambda: Ridge(alpha=1.0))))
    if kind == "tabular":
        out.append(("gradient_boosting", "histogram gradient boosting (scikit-learn defaults)",
                    _regressor(lambda: MultiOutputRegressor(HistGradientBoostingRegressor(random_state=seed)))))
    return out


def _classifier(factory: Any) -> Any:
    def run(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        model = factory().fit(x, y)
        return _proba(model, x_test)
    return run


def _regressor(factory: Any) -> Any:
    def run(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        return np.asarray(factory().fit(x, y).predict(x_test)).reshape(len(x_test), -1)
    return run


def _text_classifier(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    def grams(ids: list[int]) -> list[str]:
        words = [str(i) for i in ids]
        return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]

    def run(docs: list[list[int]], y: np.ndarray, test_docs: list[list[int]]) -> np.ndarray:
        vec = TfidfVectorizer(analyzer=grams, min_df=2, sublinear_tf=True)
        model = LogisticRegression(max_iter=1000, C=4.0, random_state=seed).fit(vec.fit_transform(docs), y)
        return _proba(model, vec.transform(test_docs))
    return run


def _proba(model: Any, x_test: Any) -> np.ndarray:
    """Probabilities over the classes the model saw (the scorer only needs the argmax)."""
    p = model.predict_proba(x_test)
    full = np.full((p.shape[0], int(max(model.classes_)) + 1), -1.0)
    full[:, model.classes_.astype(int)] = p
    return full


# --- rows and scores -------------------------------------------------------------------------


def _fit_rows(data: Dataset) -> tuple[Any, np.ndarray]:
    kind = getattr(data.preprocessor, "kind", "")
    parts = [data.train] + ([data.val] if data.val is not None else [])
    if kind == "text":  # splits are padded to their own longest row: keep token lists
        docs = [doc for s in parts for doc in _inputs(s.x, "text", _pad(data))]
        return docs, torch.cat([s.y for s in parts]).numpy()
    x = torch.cat([s.x.reshape(len(s.x), -1) for s in parts]).numpy()
    y = torch.cat([s.y for s in parts]).numpy()
    return x, y


def _inputs(x: torch.Tensor, kind: str, pad: int = 0) -> Any:
    if kind == "text":
        return [[int(t) for t in row if t != pad] for row in x.tolist()]  # token ids without padding
    return x.reshape(len(x), -1).numpy()


def _pad(data: Dataset) -> int:
    pad = getattr(data.preprocessor, "pad_token_id", 0)
    return int(pad) if pad is not None else 0


def _score(pred: np.ndarray, data: Dataset, metrics: dict[str, Any]) -> dict[str, float]:
    p = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    y = data.test.y
    if data.task == "regression":  # in the target's own units
        inverse = data.preprocessor.inverse_transform_target
        p, y = inverse(p), inverse(y.double())
    return {name: float(fn(p, y)) for name, fn in metrics.items()}
