from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from honing._core import ConfigError, UnknownNameError
from honing.train import METRICS, default_metrics, list_metrics, resolve_mode
from honing.train._metrics import resolve_metrics

CLASSIFICATION = {
    "accuracy": lambda t, p: skm.accuracy_score(t, p),
    "f1_macro": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
    "precision": lambda t, p: skm.precision_score(t, p, average="macro", zero_division=0),
    "recall": lambda t, p: skm.recall_score(t, p, average="macro", zero_division=0),
    "precision_macro": lambda t, p: skm.precision_score(t, p, average="macro", zero_division=0),
    "recall_macro": lambda t, p: skm.recall_score(t, p, average="macro", zero_division=0),
    "balanced_accuracy": lambda t, p: skm.balanced_accuracy_score(t, p),
}
REGRESSION = {
    "mse": skm.mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", list(CLASSIFICATION))
def test_multiclass_metrics_match_sklearn(name, seed):
    g = torch.Generator().manual_seed(seed)
    n, c = 60, 6
    logits = torch.randn(n, c, generator=g)
    logits[:, 5] -= 100.0  # class 5 is never predicted (sklearn's zero_division case)
    target = torch.randint(0, c, (n,), generator=g)
    expected = CLASSIFICATION[name](target.numpy(), logits.argmax(1).numpy())
    assert METRICS.get(name)(logits, target).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", list(CLASSIFICATION))
def test_metrics_use_only_labels_present_like_sklearn(name):
    # 10 output classes, but only labels {0, 1, 3} occur in target or prediction
    logits = torch.full((6, 10), -5.0)
    pred = torch.tensor([0, 1, 1, 3, 0, 0])
    logits[torch.arange(6), pred] = 5.0
    target = torch.tensor([0, 1, 3, 3, 1, 0])
    expected = CLASSIFICATION[name](target.numpy(), pred.numpy())
    assert METRICS.get(name)(logits, target).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shape", [(40,), (40, 1)])
@pytest.mark.parametrize("name", list(CLASSIFICATION))
def test_binary_logit_metrics_match_sklearn(name, shape):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(shape, generator=g)
    target = torch.randint(0, 2, (40,), generator=g)
    expected = CLASSIFICATION[name](target.numpy(), (logits.reshape(-1) > 0).long().numpy())
    assert METRICS.get(name)(logits, target.float().reshape(shape)).item() == pytest.approx(expected, abs=1e-12)


def test_soft_targets_compare_through_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(30, 4, generator=g)
    soft = torch.softmax(torch.randn(30, 4, generator=g) * 3, dim=1)
    expected = skm.accuracy_score(soft.argmax(1).numpy(), logits.argmax(1).numpy())
    assert METRICS.get("accuracy")(logits, soft).item() == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(REGRESSION))
@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_match_sklearn(name, outputs, seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(50, outputs, generator=g)
    pred = target + 0.5 * torch.randn(50, outputs, generator=g)
    expected = REGRESSION[name](target.numpy(), pred.numpy())
    assert METRICS.get(name)(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_r2_with_a_constant_target_column_matches_sklearn():
    target = np.stack([np.full(10, 2.0), np.arange(10.0)], axis=1).astype(np.float32)
    pred = target + np.float32(0.1)
    expected = skm.r2_score(target, pred)  # the constant column scores 0 (force_finite)
    got = METRICS.get("r2")(torch.from_numpy(pred), torch.from_numpy(target)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    exact = METRICS.get("r2")(torch.from_numpy(target), torch.from_numpy(target)).item()
    assert exact == pytest.approx(1.0)


def test_default_metrics_and_registry():
    assert default_metrics("classification") == ["accuracy", "balanced_accuracy", "f1_macro", "precision_macro"]
    assert default_metrics("regression") == ["mse", "mae", "r2"]
    assert set(default_metrics("classification") + default_metrics("regression")) <= set(list_metrics())
    with pytest.raises(ConfigError, match="invalid task: got 'ranking'"):
        default_metrics("ranking")


def test_resolve_metrics_names_callables_and_mappings():
    def top_class(pred, target):
        return pred.argmax(1).float().mean()

    got = resolve_metrics(["accuracy", top_class], "classification")
    assert list(got) == ["accuracy", "top_class"] and got["top_class"] is top_class
    assert list(resolve_metrics({"acc": "accuracy"}, "classification")) == ["acc"]
    assert list(resolve_metrics(None, "regression")) == ["mse", "mae", "r2"]
    with pytest.raises(UnknownNameError):
        resolve_metrics(["accuracyy"], "classification")
    with pytest.raises(ConfigError, match="appears twice"):
        resolve_metrics(["mse", "mse"], "regression")


@pytest.mark.parametrize(
    "monitor, expected",
    [("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"), ("val_f1_macro", "max"), ("val_f1", "max"),
     ("val_precision", "max"), ("val_recall", "max"), ("val_r2", "max"), ("val_mse", "min"), ("val_mae", "min"),
     ("my_custom_auc", "max"), ("val_error_rate", "min")],
)
def test_resolve_mode_auto(monitor, expected):
    assert resolve_mode(monitor, "auto") == expected
    assert resolve_mode(monitor, "min") == "min"
