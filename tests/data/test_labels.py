"""Suspect labels (confident learning): the rule on hand-made probabilities, and load(check_labels=...)
on data whose flipped labels are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

import honing
from honing._core import ConfigError
from honing.data import find_label_issues, out_of_fold_probabilities


def test_a_row_confidently_of_another_class_is_a_suspect_and_the_least_confident_comes_first():
    probs = np.array([[0.9, 0.1, 0.0],     # given 0: fine
                      [0.9, 0.1, 0.0],     # given 0: fine
                      [0.1, 0.9, 0.0],     # given 1: fine
                      [0.2, 0.8, 0.0],     # given 1: 0.8 reaches class 1's threshold: fine
                      [0.95, 0.05, 0.0],   # given 1, confidently 0: suspect
                      [0.0, 0.1, 0.9],     # given 2: fine
                      [0.02, 0.9, 0.08],   # given 2, confidently 1: suspect
                      [0.5, 0.5, 0.0]])    # given 0: no class reaches its threshold: not a suspect
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    found = find_label_issues(probs, labels)
    # each class's threshold: the mean probability of it over the rows given it
    np.testing.assert_allclose(found.thresholds, [2.3 / 3, 1.75 / 3, 0.49])
    assert found.rows.tolist() == [4, 6]  # the given label's probability 0.05, then 0.08
    assert found.given.tolist() == [1, 2] and found.suggested.tolist() == [0, 1]
    np.testing.assert_allclose(found.confidence, [0.05, 0.08])
    with pytest.raises(ConfigError, match="allowed: 0 .. 2"):
        find_label_issues(probs, np.array([0, 0, 1, 1, 1, 2, 2, 3]))


def _noisy_digits(rate: float = 0.1, seed: int = 1):
    d = load_digits()
    y = d.target.copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < rate
    y[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    return d.data.astype(np.float32), y, flip


def test_out_of_fold_probabilities_find_most_flipped_labels_and_few_clean_ones():
    x, y, flip = _noisy_digits()
    probs = out_of_fold_probabilities(x, y, num_classes=10, folds=5, seed=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    found = find_label_issues(probs, y)
    hit = flip[found.rows]
    assert hit.mean() > 0.75  # precision: measured 0.86
    assert hit.sum() / flip.sum() > 0.6  # recall: measured 0.76


def test_load_reports_or_drops_suspect_training_rows_and_never_touches_the_test_rows(tmp_path):
    x, y, flip = _noisy_digits()
    path = tmp_path / "noisy.npz"
    np.savez(path, x=x, y=y)
    plain = honing.data.load(f"npz:{path}", seed=0)
    report = honing.data.load(f"npz:{path}", seed=0, check_labels="report")
    drop = honing.data.load(f"npz:{path}", seed=0, check_labels="drop")
    r, d = report.info["label_issues"], drop.info["label_issues"]
    assert r["checked"] == len(plain.train) + len(plain.val) and r["found"] == r["train"] + r["val"] > 50
    assert r["dropped"] == 0 and len(report.train) == len(plain.train)
    assert d["dropped"] == d["train"] == r["train"] and len(drop.train) == len(plain.train) - d["dropped"]
    assert len(drop.val) == len(plain.val)  # validation rows are only reported
    assert np.array_equal(report.test.x.numpy(), plain.test.x.numpy())  # same rows, same scaling
    # the same test rows (scaled with the statistics of the training rows kept)
    assert np.array_equal(drop.test.y.numpy(), plain.test.y.numpy())
    from honing.ensemble import fit_affine

    fit_affine(drop.test.x, plain.test.x, what="the test rows")  # a per-feature rescaling of the same rows
    # rows are numbered as in the source (1 = its first row), the least likely first
    listed = r["rows"]
    assert len(listed) == 50 and listed[0]["confidence"] <= listed[-1]["confidence"]
    assert np.mean([flip[row["row"] - 1] for row in listed]) > 0.9
    assert all(str(y[row["row"] - 1]) == row["given"] for row in listed)
    assert r["row_numbers"][:50] == [row["row"] for row in listed] and len(r["row_numbers"]) == r["found"]
    assert "label_issues" in drop.summary() and "label_issues" not in plain.summary()


def test_a_csv_rows_number_is_its_data_row_and_the_check_is_for_classification(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=300)
    label = np.where(a + b > 0, "yes", "no")
    wrong = np.argsort(-(a + b))[:5]  # the five clearest "yes" rows, labelled "no"
    label[wrong] = "no"
    lines = ["a,b,note,label"] + [f"{a[i]:.4f},{b[i]:.4f},{'x' if i % 2 else 'y'},{label[i]}" for i in range(300)]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    issues = honing.data.load(f"csv:{path}", seed=0, check_labels="report", test_size=0.1).info["label_issues"]
    planted = {int(i) + 1 for i in wrong}  # data row numbers, 1 = the first row after the header
    top = issues["rows"][:3]
    assert {r["row"] for r in top} <= planted and all((r["given"], r["suggested"]) == ("no", "yes") for r in top)
    with pytest.raises(ConfigError, match="check_labels .* allowed: null"):
        honing.data.load("sklearn:diabetes", check_labels="report")
    with pytest.raises(ConfigError, match="allowed: report, drop, or None"):
        honing.data.load("sklearn:iris", check_labels="fix")


def test_a_check_made_once_is_reused_for_the_same_rows_and_refused_for_other_rows(tmp_path, monkeypatch):
    x, y, _ = _noisy_digits()
    path = tmp_path / "noisy.npz"
    np.savez(path, x=x, y=y)
    first = honing.data.load(f"npz:{path}", seed=0, check_labels="drop")
    record = first.info["label_issues"]

    def no_second_check(*args, **kwargs):
        raise AssertionError("the labels were checked again")

    monkeypatch.setattr("honing.data._load.out_of_fold_probabilities", no_second_check)
    again = honing.data.load(f"npz:{path}", seed=0, check_labels="drop", label_issues=record)
    assert again.info["label_issues"] == record and record["dropped"] > 0
    assert np.array_equal(again.train.x.numpy(), first.train.x.numpy())  # the same rows dropped, the same scaling
    assert np.array_equal(again.val.y.numpy(), first.val.y.numpy())
    with pytest.raises(ConfigError, match="not a check of these rows: .*train"):  # another split: other rows
        honing.data.load(f"npz:{path}", seed=1, check_labels="drop", label_issues=record)
    with pytest.raises(ConfigError, match="not a check of these rows: action 'drop'"):
        honing.data.load(f"npz:{path}", seed=0, check_labels="report", label_issues=record)
    with pytest.raises(ConfigError, match="given without check_labels"):
        honing.data.load(f"npz:{path}", seed=0, label_issues=record)
