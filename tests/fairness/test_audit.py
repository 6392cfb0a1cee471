"""The fairness audit on hand-made predictions: every figure checked by hand."""

from __future__ import annotations

import pytest

from honing import ConfigError
from honing.fairness import fairness_audit


def test_two_classes_by_hand():
    # group a: y 1 1 0 0, predicted 1 0 0 0 -> positive rate 1/4, TPR 1/2, FPR 0, accuracy 3/4
    # group b: y 1 1 0 0, predicted 1 1 1 0 -> positive rate 3/4, TPR 1, FPR 1/2, accuracy 3/4
    y = [1, 1, 0, 0, 1, 1, 0, 0]
    p = [1, 0, 0, 0, 1, 1, 1, 0]
    out = fairness_audit(y, p, {"sex": ["a"] * 4 + ["b"] * 4}, class_names=["no", "yes"], min_rows=2)
    c = out["columns"]["sex"]
    assert out["positive_class"] == "yes" and out["rows"] == 8
    assert c["groups"]["a"] == pytest.approx({"rows": 4, "accuracy": 0.75, "f1": 2 / 3, "positive_rate": 0.25,
                                              "tpr": 0.5, "fpr": 0.0, "fnr": 0.5})
    assert c["groups"]["b"] == pytest.approx({"rows": 4, "accuracy": 0.75, "f1": 0.8, "positive_rate": 0.75,
                                              "tpr": 1.0, "fpr": 0.5, "fnr": 0.0})
    assert c["demographic_parity_difference"] == pytest.approx(0.5)
    assert c["demographic_parity_ratio"] == pytest.approx(1 / 3)
    assert c["equalized_odds_difference"] == pytest.approx(0.5)  # max(TPR gap 0.5, FPR gap 0.5)
    assert c["accuracy_difference"] == pytest.approx(0.0) and c["few_rows"] == []


def test_parity_and_the_small_groups():
    # equal positive rates (1/2 each) but one group is always wrong
    y = [1, 0, 1, 0, 1, 0]
    p = [1, 0, 0, 1, 1, 0]
    out = fairness_audit(y, p, {"g": ["x", "x", "y", "y", "z", "z"]})
    c = out["columns"]["g"]
    assert c["demographic_parity_difference"] == pytest.approx(0.0)
    assert c["equalized_odds_difference"] == pytest.approx(1.0)  # TPR 1 vs 0
    assert c["accuracy_difference"] == pytest.approx(1.0) and c["worst_group"] == "y"
    assert c["few_rows"] == ["x", "y", "z"]  # fewer than 30 rows each


def test_three_classes_take_the_worst_class():
    # class 2 is predicted for every row of group y and never for group x
    y = [0, 1, 2, 0, 1, 2]
    p = [0, 1, 1, 2, 2, 2]
    out = fairness_audit(y, p, {"g": ["x"] * 3 + ["y"] * 3}, class_names=["a", "b", "c"])
    c = out["columns"]["g"]
    assert out["positive_class"] is None and out["classes"] == 3
    assert c["demographic_parity_difference"] == pytest.approx(1.0) and c["demographic_parity_difference_class"] == "c"
    assert c["demographic_parity_ratio"] == pytest.approx(0.0)


def test_lengths_must_match():
    with pytest.raises(ConfigError, match="3 values for 2 rows"):
        fairness_audit([0, 1], [0, 1], {"g": ["a", "b", "c"]})


def test_regression_errors_by_hand():
    from honing.fairness import regression_audit

    # group a: truth 10 20, predicted 12 22 -> errors +2 +2: MAE 2, RMSE 2, mean error +2
    # group b: truth 30 50, predicted 27 45 -> errors -3 -5: MAE 4, RMSE sqrt(17), mean error -4
    out = regression_audit([10, 20, 30, 50], [12, 22, 27, 45], {"region": ["a", "a", "b", "b"]}, min_rows=2)
    c = out["columns"]["region"]
    assert out["task"] == "regression" and out["rows"] == 4 and out["outputs"] == 1
    assert c["groups"]["a"] == pytest.approx({"rows": 2, "mae": 2.0, "rmse": 2.0, "mean_error": 2.0,
                                              "mean_prediction": 17.0, "mean_target": 15.0})
    assert c["groups"]["b"] == pytest.approx({"rows": 2, "mae": 4.0, "rmse": 17 ** 0.5, "mean_error": -4.0,
                                              "mean_prediction": 36.0, "mean_target": 40.0})
    assert c["mae_difference"] == pytest.approx(2.0) and c["mean_error_difference"] == pytest.approx(6.0)
    assert c["mean_prediction_difference"] == pytest.approx(19.0) and c["mean_target_difference"] == pytest.approx(25.0)
    assert c["worst_group"] == "b" and c["few_rows"] == []
    two = regression_audit([[1, 10], [3, 30]], [[2, 10], [3, 20]], {"g": ["x", "y"]})  # two outputs: the mean
    assert two["columns"]["g"]["groups"]["y"]["mae"] == pytest.approx(5.0)
    assert two["columns"]["g"]["few_rows"] == ["x", "y"]
    with pytest.raises(ConfigError, match="differ in shape"):
        regression_audit([1, 2], [1, 2, 3], {"g": ["x", "y"]})
