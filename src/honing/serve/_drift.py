"""Drift: does a window of inputs (and the model's outputs on them) still look like the
reference saved with the model (``reference.json``, ``honing.data._profile``)?

The test per feature is chosen by rule, the rules users know from Evidently's defaults:

==========================  ===========================  ==================================
feature                     window <= 1,000 rows         window > 1,000 rows
==========================  ===========================  ==================================
numeric, > 5 distinct        Kolmogorov-Smirnov, p-value  Wasserstein distance / reference
values in the reference      < alpha                      std > 0.1
numeric with <= 5 values,   chi-square (2 x categories   Jensen-Shannon distance > 0.1
or categorical              contingency), p < alpha
==========================  ===========================  ==================================

``method="psi"`` uses the population stability index everywhere instead (> 0.1 drifts;
numeric features binned at the reference's deciles). Predictions: chi-square on the predicted
classes, or KS on predicted values. Outputs (the model's logits or values, an embedding for
any input kind): maximum mean discrepancy with a Gaussian kernel (median-distance bandwidth)
and a permutation test. Every p-value in one window (features, predictions, outputs) is
corrected together with Benjamini-Hochberg, so the chance that a window without drift is
called drifted stays at ``alpha`` (default 0.01: a server checks window after window). The
window drifts when any test drifts after correction.

Embeddings (images, text: the model's penultimate features, ``honing.data.embed``) are compared
with the reference's sample by MMD as well, or (``embedding_test="classifier"``) by a domain
classifier: a logistic regression told reference rows from window rows, its out-of-fold ROC
AUC the statistic and a one-sided Mann-Whitney test on the out-of-fold scores the p-value
(AUC 0.5: the two cannot be told apart).

For classifiers, a label-free accuracy estimate: the window's mean top-class probability
times the reference's accuracy / confidence ratio on held-out rows (the model's calibration
as measured when it was saved).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from honing._core import ConfigError, check_choice
from honing.data._profile import category_counts, numeric_values, project

__all__ = ["DEFAULT_ALPHA", "DRIFT_METHODS", "EMBEDDING_TESTS", "DriftReport", "FeatureDrift", "detect_drift"]

DRIFT_METHODS = ("auto", "psi")
EMBEDDING_TESTS = ("mmd", "classifier")
# a live server checks window after window: at 0.05 one check in twenty would raise a false
# alarm; 0.01 costs no power on the shifts that matter (see tests/serve/test_drift.py)
DEFAULT_ALPHA = 0.01
SMALL_WINDOW = 1000  # rows: p-value tests at or below, distances above
DISTANCE_THRESHOLD = 0.1
FEW_VALUES = 5  # a numeric feature with this many distinct reference values is tested as categories
MMD_PERMUTATIONS = 200
MMD_ROWS = 300


@dataclass
class FeatureDrift:
    """One test: what was compared, the statistic, its p-value (None for distances) and verdict."""

    name: str
    kind: str  # numeric | categorical | predictions | outputs | embeddings
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool = False
    rows: int = 0


@dataclass
class DriftReport:
    rows: int
    alpha: float
    method: str
    tests: list[FeatureDrift] = field(default_factory=list)
    accuracy_estimate: float | None = None
    reference_accuracy: float | None = None

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.tests)

    @property
    def share_drifted(self) -> float:
        features = [t for t in self.tests if t.kind in ("numeric", "categorical")]
        return sum(t.drifted for t in features) / len(features) if features else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "alpha": self.alpha, "method": self.method, "drifted": self.drifted,
                "share_drifted": round(self.share_drifted, 6), "accuracy_estimate": self.accuracy_estimate,
                "reference_accuracy": self.reference_accuracy, "correction": "benjamini-hochberg",
                "tests": [asdict(t) for t in self.tests]}

    def lines(self) -> list[str]:
        """A table for the console: one test per line, drifted ones marked."""
        out = [f"{'feature':<28} {'kind':<12} {'test':<16} {'statistic':>10} {'p-value':>9}  drift"]
        for t in self.tests:
            p = "" if t.p_value is None else f"{t.p_value:.4f}"
            out.append(f"{t.name[:28]:<28} {t.kind:<12} {t.test:<16} {t.statistic:>10.4f} {p:>9}  "
                       f"{'DRIFT' if t.drifted else '-'}")
        verdict = "DRIFT" if self.drifted else "no drift"
        out.append(f"{verdict}: {sum(t.drifted for t in self.tests)} of {len(self.tests)} tests drifted over "
                   f"{self.rows} rows (alpha {self.alpha}, Benjamini-Hochberg across p-values)")
        if self.accuracy_estimate is not None:
            out.append(f"label-free accuracy estimate {self.accuracy_estimate:.4f} (reference accuracy "
                       f"{self.reference_accuracy:.4f})")
        return out


def detect_drift(reference: dict[str, Any], rows: np.ndarray | None = None, *,
                 outputs: np.ndarray | None = None, embeddings: np.ndarray | None = None,
                 class_names: Sequence[str] | None = None, alpha: float = DEFAULT_ALPHA, method: str = "auto",
                 embedding_test: str = "mmd", seed: int = 0) -> DriftReport:
    """Compare a window with ``reference``. ``rows``: raw tabular rows ``(n, features)`` in the
    reference's feature order (None for images/text); ``outputs``: the model's outputs on the
    window ``(n, k)`` (logits for classification); ``embeddings``: its penultimate features
    ``(n, d)`` (``honing.data.embed``), compared when the reference has them."""
    method = check_choice("method", method, DRIFT_METHODS)
    embedding_test = check_choice("embedding_test", embedding_test, EMBEDDING_TESTS)
    if not 0 < alpha < 1:
        raise ConfigError(f"invalid alpha: got {alpha!r}; allowed: a number in (0, 1)")
    n = next((len(a) for a in (rows, outputs, embeddings) if a is not None), 0)
    report = DriftReport(rows=n, alpha=alpha, method=method)
    if n == 0:
        return report
    features = reference.get("features") or []
    if rows is not None and features:
        if rows.ndim != 2 or rows.shape[1] != len(features):
            raise ConfigError(f"invalid rows: got shape {tuple(rows.shape)}; allowed: (n, {len(features)}), the "
                              "reference's features in order")
        for j, feat in enumerate(features):
            report.tests.append(_feature_test(feat, rows[:, j], method))
    if outputs is not None and len(outputs):
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        pred = reference.get("predictions")
        if pred is not None:
            report.tests.append(_prediction_test(pred, outputs, class_names))
            if pred.get("kind") == "classes" and pred.get("accuracy") is not None and pred.get("confidence"):
                shifted = outputs - outputs.max(axis=1, keepdims=True)
                probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
                ratio = float(pred["accuracy"]) / float(pred["confidence"])
                report.accuracy_estimate = round(min(1.0, float(probs.max(axis=1).mean()) * ratio), 6)
                report.reference_accuracy = float(pred["accuracy"])
        ref_out = np.asarray(reference.get("outputs") or [], dtype=np.float64)
        if len(ref_out) and ref_out.shape[1] == outputs.shape[1]:
            report.tests.append(_mmd_test(ref_out, outputs, seed=seed))
    ref_emb = reference.get("embeddings")
    if embeddings is not None and len(embeddings) and ref_emb and ref_emb.get("rows"):
        embeddings = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
        if embeddings.shape[1] != ref_emb["width"]:
            raise ConfigError(f"invalid embeddings: got width {embeddings.shape[1]}; allowed: {ref_emb['width']}, "
                              "the reference's (the same model's penultimate features)")
        cur = project(embeddings, int(ref_emb["projection_seed"]))
        ref_rows = np.asarray(ref_emb["rows"], dtype=np.float64)
        test = _mmd_test if embedding_test == "mmd" else _classifier_test
        report.tests.append(test(ref_rows, cur, seed=seed, name="embeddings"))
    _correct(report.tests, alpha)
    return report


# --- one feature ---------------------------------------------------------------------------


def _feature_test(feat: dict[str, Any], column: np.ndarray, method: str) -> FeatureDrift:
    name = feat["name"]
    if feat["kind"] == "numeric":
        ref = np.asarray(feat["sample"], dtype=np.float64)
        cur = numeric_values(column)
        if method == "psi":
            return _psi_numeric(name, ref, cur)
        if int(feat.get("unique", FEW_VALUES + 1)) > FEW_VALUES:
            return _numeric(name, ref, cur)
        ref_counts = Counter(_category_of(v) for v in ref)
        return _categorical(name, ref_counts, Counter(_category_of(v) for v in cur), len(cur), "numeric", method)
    cur_counts = category_counts(column)
    return _categorical(name, Counter(feat["counts"]), cur_counts, sum(cur_counts.values()), "categorical", method)


def _category_of(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _numeric(name: str, ref: np.ndarray, cur: np.ndarray, kind: str = "numeric") -> FeatureDrift:
    from scipy import stats

    if len(cur) == 0 or len(ref) == 0:
        return FeatureDrift(name, kind, "no values", 0.0, None, DISTANCE_THRESHOLD, rows=len(cur))
    if len(cur) <= SMALL_WINDOW:
        res = stats.ks_2samp(ref, cur)
        return FeatureDrift(name, kind, "ks", float(res.statistic), float(res.pvalue), 0.0, rows=len(cur))
    scale = float(np.std(ref)) or 1.0
    dist = float(stats.wasserstein_distance(ref, cur)) / scale
    return FeatureDrift(name, kind, "wasserstein", dist, None, DISTANCE_THRESHOLD, dist > DISTANCE_THRESHOLD,
                        rows=len(cur))


def _categorical(name: str, ref: Counter[str], cur: Counter[str], n: int, kind: str, method: str) -> FeatureDrift:
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    cats = sorted(set(ref) | set(cur))
    r = np.array([ref.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cur.get(k, 0) for k in cats], dtype=np.float64)
    if n == 0 or r.sum() == 0:
        return FeatureDrift(name, kind, "no values", 0.0, None, DISTANCE_THRESHOLD, rows=n)
    if method == "psi":
        value = _psi(r / r.sum(), c / c.sum())
        return FeatureDrift(name, kind, "psi", value, None, DISTANCE_THRESHOLD, value > DISTANCE_THRESHOLD, rows=n)
    if n <= SMALL_WINDOW:
        if len(cats) < 2:
            return FeatureDrift(name, kind, "chi-square", 0.0, 1.0, 0.0, rows=n)
        table = np.vstack([r, c])
        table = table[:, table.sum(axis=0) > 0]
        res = stats.chi2_contingency(table, correction=False)
        return FeatureDrift(name, kind, "chi-square", float(res.statistic), float(res.pvalue), 0.0, rows=n)
    value = float(jensenshannon(r / r.sum(), c / c.sum(), base=2))
    return FeatureDrift(name, kind, "jensen-shannon", value, None, DISTANCE_THRESHOLD, value > DISTANCE_THRESHOLD,
                        rows=n)


def _psi(ref_p: np.ndarray, cur_p: np.ndarray, eps: float = 1e-4) -> float:
    ref_p, cur_p = np.clip(ref_p, eps, None), np.clip(cur_p, eps, None)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def _psi_numeric(name: str, ref: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    if len(cur) == 0 or len(ref) == 0:
        return FeatureDrift(name, "numeric", "no values", 0.0, None, DISTANCE_THRESHOLD, rows=len(cur))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11))[1:-1])
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    value = _psi(r, c)
    return FeatureDrift(name, "numeric", "psi", value, None, DISTANCE_THRESHOLD, value > DISTANCE_THRESHOLD,
                        rows=len(cur))


# --- predictions and outputs -----------------------------------------------------------------


def _prediction_test(pred: dict[str, Any], outputs: np.ndarray, class_names: Sequence[str] | None) -> FeatureDrift:
    if pred["kind"] == "classes":
        names = list(class_names) if class_names else list(pred["counts"])
        top = outputs.argmax(axis=1)
        cur = Counter(names[i] if i < len(names) else str(i) for i in top.tolist())
        return _categorical("predictions", Counter(pred["counts"]), cur, len(top), "predictions", "auto")
    ref = np.asarray(pred["sample"], dtype=np.float64)
    return _numeric("predictions", ref, outputs[:, 0], kind="predictions")


def _subsample(ref: np.ndarray, cur: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if len(ref) > MMD_ROWS:
        ref = ref[rng.choice(len(ref), MMD_ROWS, replace=False)]
    if len(cur) > MMD_ROWS:
        cur = cur[rng.choice(len(cur), MMD_ROWS, replace=False)]
    return ref, cur


def _classifier_test(ref: np.ndarray, cur: np.ndarray, *, seed: int, name: str = "embeddings") -> FeatureDrift:
    """A domain classifier: can a logistic regression tell window rows from reference rows?
    Out-of-fold ROC AUC (5 folds), and a one-sided Mann-Whitney test of the window rows' out-of-fold
    scores against the reference rows' (the same rank statistic as the AUC)."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    ref, cur = _subsample(ref, cur, rng)
    z = np.vstack([ref, cur])
    label = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    folds = min(5, len(ref), len(cur))
    if folds < 2:
        return FeatureDrift(name, name, "classifier-auc", 0.5, 1.0, 0.0, rows=len(cur))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    score = cross_val_predict(clf, z, label, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                              method="decision_function")
    res = stats.mannwhitneyu(score[label == 1], score[label == 0], alternative="greater")
    auc = float(res.statistic) / (len(cur) * len(ref))
    return FeatureDrift(name, name, "classifier-auc", auc, float(res.pvalue), 0.0, rows=len(cur))


def _mmd_test(ref: np.ndarray, cur: np.ndarray, *, seed: int, name: str = "outputs") -> FeatureDrift:
    """Maximum mean discrepancy (Gaussian kernel, median-distance bandwidth) with a permutation test."""
    rng = np.random.default_rng(seed)
    ref, cur = _subsample(ref, cur, rng)
    z = np.vstack([ref, cur])  # (n + m, k)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)  # (n + m, n + m)
    off = d2[np.triu_indices(len(z), 1)]
    bandwidth = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(ref)

    m = len(z) - n

    def mmd(is_ref: np.ndarray) -> float:  # with indicator vectors a, b: a'Ka/n^2 + b'Kb/m^2 - 2a'Kb/nm
        a = is_ref.astype(np.float64)
        ka = k @ a
        aka, akb = float(a @ ka), float((1 - a) @ ka)
        bkb = float(k.sum()) - aka - 2 * akb
        return aka / n**2 + bkb / m**2 - 2 * akb / (n * m)

    labels = np.zeros(len(z), dtype=bool)
    labels[:n] = True
    observed = mmd(labels)
    hits = sum(mmd(rng.permutation(labels)) >= observed for _ in range(MMD_PERMUTATIONS))
    p = (hits + 1) / (MMD_PERMUTATIONS + 1)
    return FeatureDrift(name, name, "mmd", observed, p, 0.0, rows=len(cur))


def _correct(tests: list[FeatureDrift], alpha: float) -> None:
    """Benjamini-Hochberg over every p-value test; distances keep their own threshold."""
    from scipy import stats

    with_p = [t for t in tests if t.p_value is not None]
    if not with_p:
        return
    adjusted = stats.false_discovery_control([min(1.0, max(0.0, t.p_value)) for t in with_p], method="bh")
    for t, q in zip(with_p, adjusted):
        t.threshold = alpha
        t.drifted = bool(q < alpha) and not math.isnan(q)
