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
